// Max and average pooling over NCHW, one output element per invocation (pooling is memory-bound).
// Average pooling follows PyTorch: the window is clipped to the padded input, and with
// COUNT_INCLUDE_PAD the divisor counts the padding inside it.
//
// Baked constants: N, C, IH, IW, OH, OW, KH, KW, SY, SX, PT, PB, PL, PR, DY, DX, IS_MAX,
// COUNT_INCLUDE_PAD, OUT_C, OUT_OFFSET (the output's channels and this result's first one: a
// concat's slice, or C and 0), ACT, ACT_ARG.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= N * C * OH * OW) {
        return;
    }
    let plane = index / (OH * OW);
    let oy = (index % (OH * OW)) / OW;
    let ox = index % OW;
    let src = plane * IH * IW;
    let y0 = i32(oy * SY) - i32(PT);
    let x0 = i32(ox * SX) - i32(PL);
    var result = 0.0;
    if (IS_MAX) {
        var best = neg_inf();
        for (var ky = 0u; ky < KH; ky++) {
            let y = y0 + i32(ky * DY);
            if (y < 0 || y >= i32(IH)) {
                continue;
            }
            for (var kx = 0u; kx < KW; kx++) {
                let x = x0 + i32(kx * DX);
                if (x >= 0 && x < i32(IW)) {
                    best = max_nan(best, input[src + u32(y) * IW + u32(x)]);
                }
            }
        }
        result = best;
    } else {
        let y1 = min(y0 + i32(KH), i32(IH + PB));
        let x1 = min(x0 + i32(KW), i32(IW + PR));
        let ys = max(y0, 0);
        let ye = min(y1, i32(IH));
        let xs = max(x0, 0);
        let xe = min(x1, i32(IW));
        var sum = 0.0;
        for (var y = ys; y < ye; y++) {
            for (var x = xs; x < xe; x++) {
                sum += input[src + u32(y) * IW + u32(x)];
            }
        }
        var count = (ye - ys) * (xe - xs);
        if (COUNT_INCLUDE_PAD) {
            count = (y1 - y0) * (x1 - x0);
        }
        result = sum / f32(max(count, 1));
    }
    let at = ((plane / C) * OUT_C + OUT_OFFSET + plane % C) * OH * OW + index % (OH * OW);
    output[at] = activate(result);
}
