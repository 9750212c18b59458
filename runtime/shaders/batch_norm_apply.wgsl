// Batch-norm's normalisation, one invocation per element of `[N, C, P]`: `y = x·scale + shift` with
// the per-channel values of `stats` ([mean | var | scale | shift]). With GRID3 the grid is
// (positions, channels, items), so that an invocation finds its element without dividing (on CPU
// drivers a division by a run-time extent is a scalar division per SIMD lane) and a channel's values
// are the same for the whole workgroup; else (extents past the grid's limits) it is one-dimensional.
//
// Baked constants: GRID3; extents in `shape`: N, C, P.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    var index: u32;
    var c: u32;
    if (GRID3) {
        if (gid.x >= shape.P) {
            return;
        }
        c = gid.y;
        index = (gid.z * shape.C + c) * shape.P + gid.x;
    } else {
        index = gid.x + gid.y * 65535u * 64u;
        if (index >= shape.N * shape.C * shape.P) {
            return;
        }
        c = (index / shape.P) % shape.C;
    }
    y[index] = x[index] * stats[2u * shape.C + c] + stats[3u * shape.C + c];
}
