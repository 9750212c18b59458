// Input gradient of batch-norm in training mode, one invocation per element of `[N, C, P]`:
// `dx = γ/σ · (dy − dβ/M − x̂·dγ/M)`, M = N·P, with the forward's `stats` ([mean | var | scale |
// shift]) and the parameter gradients `dγ = Σ dy·x̂`, `dβ = Σ dy` (summed by `batch_norm_partials`
// and `reduce_partials`); the element and its channel found by `channel_element.wgsl`.
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
    let e = channel_element(gid);
    if (e.x == NO_ELEMENT) {
        return;
    }
    let index = e.x;
    let c = e.y;
    let C = shape.C;
    let inv_std = 1.0 / sqrt(stats[C + c] + EPS);
    let xhat = (x[index] - stats[c]) * inv_std;
    let count = f32(shape.N * shape.P);
    dx[index] = gamma[c] * inv_std * (dy[index] - dbeta[c] / count - xhat * dgamma[c] / count);
}
