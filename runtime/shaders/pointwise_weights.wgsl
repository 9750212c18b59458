// A 1×1 convolution's weights laid out for the pointwise GEMM (`pointwise.wgsl`) on the device, at
// each training step: `laid[r·COLS16 + c] = c < COLS ? source(r, c) : 0`, with `source(r, c)` =
// `weight[c·ROWS + r]` (TRANSPOSE: `[OC][IC]` → `[IC][OC16]`, the forward's) or `weight[r·COLS + c]`
// (`[OC][IC]` → `[OC][IC16]`, the input gradient's, whose GEMM reads the output gradient's channels
// as its inputs). One invocation per laid-out element.
//
// Baked constants: TRANSPOSE; extents in `shape`: ROWS, COLS, COLS16, LEN (ROWS · COLS16).

@group(0) @binding(0) var<storage, read> weight: array<f32>;
@group(0) @binding(1) var<storage, read_write> laid: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= shape.LEN) {
        return;
    }
    let c = index % shape.COLS16;
    let r = index / shape.COLS16;
    var v = 0.0;
    if (c < shape.COLS) {
        if (TRANSPOSE) {
            v = weight[c * shape.ROWS + r];
        } else {
            v = weight[r * shape.COLS + c];
        }
    }
    laid[index] = v;
}
