// Fully connected layer: output[n, o] = Σ_k input[n, k] · weight[o, k] + bias[o], register-tiled
// 4 rows × 4 batch items per invocation. A weight larger than one storage binding is split by rows:
// each dispatch covers rows [ROW0, ROW0 + ROWS) of the full matrix with its own weight buffer.
// Where K is a multiple of 4 (VEC_K), four consecutive inputs and weights are one vec4 load each,
// 8 loads for 64 multiply-adds instead of 8 for 16 (on CPU drivers every storage load is a loop
// over the lanes); the products are added in the same order either way.
//
// Baked constants: N, K, OUT, ROW0, ROWS, HAS_BIAS, VEC_K, ACT, ACT_ARG.

@group(0) @binding(0) var<storage, read> input: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

fn input_at(i: u32) -> f32 {
    return input[i / 4u][i % 4u];
}

fn weight_at(i: u32) -> f32 {
    return weight[i / 4u][i % 4u];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r0 = gid.x * 4u;
    let n0 = gid.y * 4u;
    if (r0 >= ROWS || n0 >= N) {
        return;
    }
    var acc: array<array<f32, 4>, 4>;
    if (VEC_K) {
        for (var k = 0u; k < K; k += 4u) {
            var xs: array<vec4<f32>, 4>;
            for (var j = 0u; j < 4u; j++) {
                xs[j] = input[(min(n0 + j, N - 1u) * K + k) / 4u];
            }
            for (var i = 0u; i < 4u; i++) {
                let w = weight[(min(r0 + i, ROWS - 1u) * K + k) / 4u];
                for (var j = 0u; j < 4u; j++) {
                    let x = xs[j];
                    acc[i][j] += w.x * x.x;
                    acc[i][j] += w.y * x.y;
                    acc[i][j] += w.z * x.z;
                    acc[i][j] += w.w * x.w;
                }
            }
        }
    } else {
        for (var k = 0u; k < K; k++) {
            var xs: array<f32, 4>;
            for (var j = 0u; j < 4u; j++) {
                xs[j] = input_at(min(n0 + j, N - 1u) * K + k);
            }
            for (var i = 0u; i < 4u; i++) {
                let w = weight_at(min(r0 + i, ROWS - 1u) * K + k);
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] += w * xs[j];
                }
            }
        }
    }
    for (var i = 0u; i < 4u; i++) {
        let row = r0 + i;
        if (row >= ROWS) {
            break;
        }
        let o = ROW0 + row;
        var b = 0.0;
        if (HAS_BIAS) {
            b = bias[o];
        }
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + j;
            if (n >= N) {
                break;
            }
            output[n * OUT + o] = activate(sum_sign(acc[i][j] + b));
        }
    }
}
