// Gradients of a linear layer `[R, K] → [R, OUT]`, one invocation per result element:
// MODE 0, the input gradient `dx[r, k] = Σ_o dy[r, o] · w[o, k]` (`other` is w);
// MODE 1, the weight gradient `dw[o, k] = Σ_r dy[r, o] · x[r, k]` (`other` is x).
//
// Baked constants: MODE; extents in `shape`: R, K, OUT.

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> other: array<f32>;
@group(0) @binding(2) var<storage, read_write> result: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    let k = index % shape.K;
    var acc = 0.0;
    if (MODE == 0u) {
        if (index >= shape.R * shape.K) {
            return;
        }
        let r = index / shape.K;
        for (var o = 0u; o < shape.OUT; o++) {
            acc += dy[r * shape.OUT + o] * other[o * shape.K + k];
        }
    } else {
        if (index >= shape.OUT * shape.K) {
            return;
        }
        let o = index / shape.K;
        for (var r = 0u; r < shape.R; r++) {
            acc += dy[r * shape.OUT + o] * other[r * shape.K + k];
        }
    }
    result[index] = acc;
}
