// The input gradient of max or average pooling with 2x2 windows at stride 2 that tile the input
// exactly (`pool_grad.wgsl`'s TILED case for that window), one invocation per window reading its
// input and writing its gradient as two vec2s, one per row, where `pool_grad.wgsl` makes four
// scalar loads and stores (on CPU drivers such as lavapipe every storage access is a loop over the
// lanes, whatever its width). Max pooling gives the window's gradient to its first largest element
// in scan order (PyTorch's tie rule) or its last NaN, average pooling shares it equally.
// With RELU_MASK the input is a ReLU's output and the result is the gradient of the ReLU's input:
// zero where x <= 0 (PyTorch's `threshold_backward` on the result, which lets NaN through).
//
// Baked constants: MAX, RELU_MASK; extents in `shape`: NC, OH, OW.

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> dx: array<vec2<f32>>;

// `g` where the ReLU before the pooling let its input through (with RELU_MASK), per element.
fn masked(g: vec2<f32>, v: vec2<f32>) -> vec2<f32> {
    if (RELU_MASK) {
        return select(g, vec2<f32>(0.0), v <= vec2<f32>(0.0));
    }
    return g;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let window = gid.x + gid.y * 65535u * 64u;
    if (window >= shape.NC * shape.OH * shape.OW) {
        return;
    }
    let ox = window % shape.OW;
    let oy = (window / shape.OW) % shape.OH;
    let plane = window / (shape.OW * shape.OH);
    let g = dy[window];
    // Row 2·oy of the plane starts at pair (plane · 2·OH + 2·oy) · OW: IW / 2 = OW pairs a row.
    let at_top = (plane * 2u * shape.OH + 2u * oy) * shape.OW + ox;
    let at_bottom = at_top + shape.OW;
    let top = x[at_top];
    let bottom = x[at_bottom];
    if (MAX) {
        var best = top.x;
        var at = 0u;
        if (top.y > best || is_nan(top.y)) {
            best = top.y;
            at = 1u;
        }
        if (bottom.x > best || is_nan(bottom.x)) {
            best = bottom.x;
            at = 2u;
        }
        if (bottom.y > best || is_nan(bottom.y)) {
            best = bottom.y;
            at = 3u;
        }
        var receives = g;
        if (RELU_MASK) {
            receives = select(g, 0.0, best <= 0.0);
        }
        let z = vec2<f32>(0.0);
        dx[at_top] = select(z, vec2<f32>(receives), vec2<bool>(at == 0u, at == 1u));
        dx[at_bottom] = select(z, vec2<f32>(receives), vec2<bool>(at == 2u, at == 3u));
    } else {
        let share = vec2<f32>(g / 4.0);
        dx[at_top] = masked(share, top);
        dx[at_bottom] = masked(share, bottom);
    }
}
