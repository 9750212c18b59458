// Input gradient of max or average pooling over `[N·C, IH, IW]`: one invocation per input element
// gathers from every window that covers it. Max pooling gives a window's gradient to its first
// largest element in scan order (PyTorch's tie rule), or its last NaN (PyTorch's `val > max ||
// isnan(val)`), recomputed from the input; average pooling
// shares it out over the window with the forward's divisor. Where the windows tile the input
// exactly (TILED: stride equal to the kernel, no padding or dilation, nothing left over), one
// invocation per window reads it once and writes each of its elements (2x2 windows at stride 2 go
// to `pool_grad_pairs.wgsl` instead). With RELU_MASK the input is
// a ReLU's output and the result is the gradient of the ReLU's input: zero where x <= 0 (PyTorch's
// `threshold_backward` on the result, which lets NaN through).
//
// Baked constants: TILED, KH, KW, DY, DX, MAX, COUNT_PAD, RELU_MASK; extents in `shape`: NC, IH, IW, OH, OW, SY,
// SX, PT, PL, PB, PR.

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

// The gradient `g` of input element `i`, through the ReLU before the pooling with RELU_MASK.
fn masked(g: f32, i: u32) -> f32 {
    if (RELU_MASK) {
        return select(g, 0.0, x[i] <= 0.0);
    }
    return g;
}

// Whether the window at (oy, ox) of plane `base` has its first maximum at (iy, ix).
fn is_argmax(base: u32, oy: u32, ox: u32, iy: u32, ix: u32) -> bool {
    var best = -3.402823466e+38;
    var at = 0xffffffffu;
    for (var ky = 0u; ky < KH; ky++) {
        let y = i32(oy * shape.SY + ky * DY) - i32(shape.PT);
        if (y < 0 || y >= i32(shape.IH)) {
            continue;
        }
        for (var kx = 0u; kx < KW; kx++) {
            let xx = i32(ox * shape.SX + kx * DX) - i32(shape.PL);
            if (xx < 0 || xx >= i32(shape.IW)) {
                continue;
            }
            let v = x[base + u32(y) * shape.IW + u32(xx)];
            if (at == 0xffffffffu || v > best || is_nan(v)) {
                best = v;
                at = u32(y) * shape.IW + u32(xx);
            }
        }
    }
    return at == iy * shape.IW + ix;
}

// The forward's divisor of the average window at (oy, ox).
fn divisor(oy: u32, ox: u32) -> f32 {
    let y0 = i32(oy * shape.SY) - i32(shape.PT);
    let y1 = min(y0 + i32(KH), i32(shape.IH + shape.PB));
    let x0 = i32(ox * shape.SX) - i32(shape.PL);
    let x1 = min(x0 + i32(KW), i32(shape.IW + shape.PR));
    if (COUNT_PAD) {
        return f32((y1 - y0) * (x1 - x0));
    }
    return f32((min(y1, i32(shape.IH)) - max(y0, 0)) * (min(x1, i32(shape.IW)) - max(x0, 0)));
}

// The window `window` of a tiling pooling: its gradient to its first largest element (max) or
// shared equally (average), zero elsewhere. With RELU_MASK a max window's one receiving element is
// masked by its own value, the maximum already loaded: the window's inputs are read once.
fn tiled_window(window: u32) {
    let ox = window % shape.OW;
    let oy = (window / shape.OW) % shape.OH;
    let plane = window / (shape.OW * shape.OH);
    let g = dy[window];
    let base = (plane * shape.IH + oy * KH) * shape.IW + ox * KW;
    var at = 0u;
    var receives = g;
    if (MAX) {
        var best = x[base];
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx < KW; kx++) {
                let v = x[base + ky * shape.IW + kx];
                if (v > best || is_nan(v)) {
                    best = v;
                    at = ky * KW + kx;
                }
            }
        }
        if (RELU_MASK) {
            receives = select(g, 0.0, best <= 0.0);
        }
    }
    for (var ky = 0u; ky < KH; ky++) {
        for (var kx = 0u; kx < KW; kx++) {
            let i = base + ky * shape.IW + kx;
            if (MAX) {
                dx[i] = select(0.0, receives, ky * KW + kx == at);
            } else {
                dx[i] = masked(g / f32(KH * KW), i);
            }
        }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (TILED) {
        if (index < shape.NC * shape.OH * shape.OW) {
            tiled_window(index);
        }
        return;
    }
    if (index >= shape.NC * shape.IH * shape.IW) {
        return;
    }
    let ix = index % shape.IW;
    let iy = (index / shape.IW) % shape.IH;
    let plane = index / (shape.IW * shape.IH);
    let base = plane * shape.IH * shape.IW;
    var acc = 0.0;
    for (var ky = 0u; ky < KH; ky++) {
        let sy = window_source(iy, shape.PT, ky * DY, shape.SY, shape.OH);
        if (sy < 0) {
            continue;
        }
        let oy = u32(sy);
        for (var kx = 0u; kx < KW; kx++) {
            let sx = window_source(ix, shape.PL, kx * DX, shape.SX, shape.OW);
            if (sx < 0) {
                continue;
            }
            let ox = u32(sx);
            let g = dy[(plane * shape.OH + oy) * shape.OW + ox];
            if (MAX) {
                if (is_argmax(base, oy, ox, iy, ix)) {
                    acc += g;
                }
            } else {
                acc += g / divisor(oy, ox);
            }
        }
    }
    dx[index] = masked(acc, index);
}
