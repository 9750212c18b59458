// Fully connected layer: output[n, o] = Σ_k input[n, k] · weight[o, k] + bias[o], register-tiled
// 4 rows × 4 batch items per invocation. A weight larger than one storage binding is split by rows:
// each dispatch covers rows [ROW0, ROW0 + ROWS) of the full matrix with its own weight buffer.
//
// Baked constants: N, K, OUT, ROW0, ROWS, HAS_BIAS, ACT, ACT_ARG.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r0 = gid.x * 4u;
    let n0 = gid.y * 4u;
    if (r0 >= ROWS || n0 >= N) {
        return;
    }
    var acc: array<array<f32, 4>, 4>;
    for (var k = 0u; k < K; k++) {
        var xs: array<f32, 4>;
        for (var j = 0u; j < 4u; j++) {
            xs[j] = input[min(n0 + j, N - 1u) * K + k];
        }
        for (var i = 0u; i < 4u; i++) {
            let w = weight[min(r0 + i, ROWS - 1u) * K + k];
            for (var j = 0u; j < 4u; j++) {
                acc[i][j] += w * xs[j];
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
            output[n * OUT + o] = activate(acc[i][j] + b);
        }
    }
}
