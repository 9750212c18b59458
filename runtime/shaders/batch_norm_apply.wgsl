// Batch-norm's normalisation, one invocation per element of `[N, C, P]`: `y = x·scale + shift` with
// the per-channel values of `stats` ([mean | var | scale | shift]).
//
// Extents in `shape`: N, C, P.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= shape.N * shape.C * shape.P) {
        return;
    }
    let c = (index / shape.P) % shape.C;
    y[index] = x[index] * stats[2u * shape.C + c] + stats[3u * shape.C + c];
}
