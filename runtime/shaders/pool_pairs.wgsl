// Max and average pooling with 2x2 windows at stride 2 that tile the input exactly (no padding or
// dilation, IH = 2·OH, IW = 2·OW), one output element per invocation reading its window as two
// vec2 loads, one per row, where `pool.wgsl` makes four scalar ones (on CPU drivers such as
// lavapipe every storage load is a loop over the lanes, whatever its width). The window's values
// are taken in `pool.wgsl`'s order, so the results are the same: the maximum from -inf through
// `max_nan` (NaN wins), or the sum from 0 divided by 4.
//
// Baked constants: N, C, OH, OW, IS_MAX, OUT_C, OUT_OFFSET (the output's channels and this result's
// first one: a concat's slice, or C and 0), ACT, ACT_ARG.

@group(0) @binding(0) var<storage, read> input: array<vec2<f32>>;
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
    // Row 2·oy of the plane starts at pair (plane · 2·OH + 2·oy) · OW: IW / 2 = OW pairs a row.
    let top = input[(plane * 2u * OH + 2u * oy) * OW + ox];
    let bottom = input[(plane * 2u * OH + 2u * oy + 1u) * OW + ox];
    var result = 0.0;
    if (IS_MAX) {
        result = max_nan(max_nan(max_nan(max_nan(neg_inf(), top.x), top.y), bottom.x), bottom.y);
    } else {
        var sum = 0.0;
        sum += top.x;
        sum += top.y;
        sum += bottom.x;
        sum += bottom.y;
        result = sum / 4.0;
    }
    let at = ((plane / C) * OUT_C + OUT_OFFSET + plane % C) * OH * OW + index % (OH * OW);
    output[at] = activate(result);
}
