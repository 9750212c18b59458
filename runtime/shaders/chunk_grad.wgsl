// Input gradient of a chunk over `[N, C, P]`: the chunk's gradient `dy` (`[N, PER, P]`) in channels
// OFFSET..OFFSET+PER, zero in the others (a sibling chunk's gradient is added by the fan-out).
//
// Extents in `shape`: N, C, P, PER, OFFSET.

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= shape.N * shape.C * shape.P) {
        return;
    }
    let n = index / (shape.C * shape.P);
    let c = (index / shape.P) % shape.C;
    let p = index % shape.P;
    var g = 0.0;
    if (c >= shape.OFFSET && c < shape.OFFSET + shape.PER) {
        g = dy[(n * shape.PER + c - shape.OFFSET) * shape.P + p];
    }
    dx[index] = g;
}
