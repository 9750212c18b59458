// Input gradient of batch-norm in training mode, one invocation per element of `[N, C, P]`:
// `dx = γ/σ · (dy − dβ/M − x̂·dγ/M)`, M = N·P, with the forward's `stats` ([mean | var | scale |
// shift]) and the parameter gradients `dγ = Σ dy·x̂`, `dβ = Σ dy` (summed by `batch_norm_partials`
// and `reduce_partials`). The grid as `batch_norm_apply.wgsl`'s.
//
// Baked constants: GRID3, EPS; extents in `shape`: N, C, P.

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> dgamma: array<f32>;
@group(0) @binding(5) var<storage, read> dbeta: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let C = shape.C;
    var index: u32;
    var c: u32;
    if (GRID3) {
        if (gid.x >= shape.P) {
            return;
        }
        c = gid.y;
        index = (gid.z * C + c) * shape.P + gid.x;
    } else {
        index = gid.x + gid.y * 65535u * 64u;
        if (index >= shape.N * C * shape.P) {
            return;
        }
        c = (index / shape.P) % C;
    }
    let inv_std = 1.0 / sqrt(stats[C + c] + EPS);
    let xhat = (x[index] - stats[c]) * inv_std;
    let count = f32(shape.N * shape.P);
    dx[index] = gamma[c] * inv_std * (dy[index] - dbeta[c] / count - xhat * dgamma[c] / count);
}
