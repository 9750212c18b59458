// Gradient of a per-channel gate in a broadcast product `y[n, c, p] = x[n, c, p] · g[n, c]`
// (squeeze-and-excitation): one invocation per (item, channel) sums `dy · x` over the positions, in
// blocks of 256.
//
// Extents in `shape`: NC, P.

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dg: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= shape.NC) {
        return;
    }
    var acc = 0.0;
    for (var p0 = 0u; p0 < shape.P; p0 += 256u) {
        var block = 0.0;
        for (var p = p0; p < min(p0 + 256u, shape.P); p++) {
            block += dy[index * shape.P + p] * x[index * shape.P + p];
        }
        acc += block;
    }
    dg[index] = acc;
}
