// Batch-norm's normalisation, one invocation per element of `[N, C, P]`: `y = x·scale + shift` with
// the per-channel values of `stats` ([mean | var | scale | shift]), the element and its channel
// found by `channel_element.wgsl`.
//
// Baked constants: GRID3; extents in `shape`: N, C, P.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = channel_element(gid);
    if (e.x == NO_ELEMENT) {
        return;
    }
    y[e.x] = x[e.x] * stats[2u * shape.C + e.y] + stats[3u * shape.C + e.y];
}
