// Input gradient of a softmax over the channels of `[N, C, P]` with output `y`:
// `dx = y · (dy − Σ_c dy_c · y_c)`. One invocation per (item, position) writes its C elements.
//
// Extents in `shape`: N, C, P.

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= shape.N * shape.P) {
        return;
    }
    let base = (index / shape.P) * shape.C * shape.P + index % shape.P;
    var dot = 0.0;
    for (var c = 0u; c < shape.C; c++) {
        let at = base + c * shape.P;
        dot += dy[at] * y[at];
    }
    for (var c = 0u; c < shape.C; c++) {
        let at = base + c * shape.P;
        dx[at] = y[at] * (dy[at] - dot);
    }
}
