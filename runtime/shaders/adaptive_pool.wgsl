// Adaptive average / max pooling: output cell i covers [floor(i·in/out), ceil((i+1)·in/out)).
//
// Baked constants: N, C, IH, IW, OH, OW, IS_MAX, OUT_C, OUT_OFFSET (the output's channels and this
// result's first one: a concat's slice, or C and 0), ACT, ACT_ARG.

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
    let ys = (oy * IH) / OH;
    let ye = ((oy + 1u) * IH + OH - 1u) / OH;
    let xs = (ox * IW) / OW;
    let xe = ((ox + 1u) * IW + OW - 1u) / OW;
    let src = plane * IH * IW;
    var best = neg_inf();
    var sum = 0.0;
    for (var y = ys; y < ye; y++) {
        for (var x = xs; x < xe; x++) {
            let v = input[src + y * IW + x];
            best = max_nan(best, v);
            sum += v;
        }
    }
    var result = sum / f32((ye - ys) * (xe - xs));
    if (IS_MAX) {
        result = best;
    }
    let at = ((plane / C) * OUT_C + OUT_OFFSET + plane % C) * OH * OW + index % (OH * OW);
    output[at] = activate(result);
}
