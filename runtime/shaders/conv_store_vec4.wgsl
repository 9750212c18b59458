// The direct convolution's epilogue when positions per image are a multiple of 4: the 4 positions
// px0..px0+3 lie in one image and start at a multiple of 4, so each channel's residual and output
// are one aligned vec4 each.

@group(0) @binding(3) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> output: array<vec4<f32>>;

// Where the 4 positions write their channel 0, in vec4 units: output and residual index, and the
// vec4s per channel plane.
struct Dest {
    out: u32,
    res: u32,
    plane: u32,
}

fn dest(px0: u32) -> Dest {
    let plane = shape.PLANE / 4u;
    let n = px0 / shape.PLANE;
    let spatial = px0 % shape.PLANE / 4u;
    return Dest((n * shape.OUT_C + shape.OUT_OFFSET) * plane + spatial, n * shape.OC * plane + spatial, plane);
}

// Channel `oc` of the 4 positions: bias, residual and activation, then one store. (Only a partial
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
        v += residual[d.res + oc * d.plane];
    }
    output[d.out + oc * d.plane] = vec4<f32>(finish(v.x), finish(v.y), finish(v.z), finish(v.w));
}
