// The direct convolution's epilogue for any number of positions per image: each of the 4 positions
// px0..px0+3 reads its residual and writes its output on its own (they may straddle two images).
//
// Positions past the end are clamped to the last one, in `taps` as here, so they compute the last
// position's value again and store it to the same place, after the same loads: a repeated, identical
// write instead of a branch per position and channel.

@group(0) @binding(3) var<storage, read> residual: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

// Where the 4 positions (clamped) write their channel 0: output and residual indices.
struct Dest {
    out: vec4<u32>,
    res: vec4<u32>,
}

fn dest(px0: u32) -> Dest {
    let q = positions(px0);
    let n = q / shape.PLANE;
    let spatial = q % shape.PLANE;
    return Dest((n * shape.OUT_C + shape.OUT_OFFSET) * shape.PLANE + spatial, n * shape.OC * shape.PLANE + spatial);
}

// Channel `oc` of the 4 positions: bias, residual and activation, then the stores. (Only a partial
// last tile has channels past OC.)
fn store4(d: Dest, oc: u32, a: vec4<f32>) {
    if (PARTIAL_TILE && oc >= shape.OC) {
        return;
    }
    var v = a;
    if (HAS_BIAS) {
        v += vec4<f32>(bias[oc]);
    }
    if (HAS_RESIDUAL) {
        let r = d.res + vec4<u32>(oc * shape.PLANE);
        v += vec4<f32>(residual[r.x], residual[r.y], residual[r.z], residual[r.w]);
    }
    let o = d.out + vec4<u32>(oc * shape.PLANE);
    output[o.x] = finish(v.x);
    output[o.y] = finish(v.y);
    output[o.z] = finish(v.z);
    output[o.w] = finish(v.w);
}
