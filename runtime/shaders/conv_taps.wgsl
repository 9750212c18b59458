// Shared by the direct convolution kernels: where the 4 output positions px0..px0+3 (flattened over
// batch and space; those past the end clamped to the last position) read their input — the plane of
// their group's first input channel, and the top-left tap's row and column (negative in padding).

struct Taps {
    base: vec4<i32>,
    y: vec4<i32>,
    x: vec4<i32>,
}

// The 4 positions, those past the end clamped to the last one.
fn positions(px0: u32) -> vec4<u32> {
    return min(vec4<u32>(px0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(shape.PIXELS - 1u));
}

fn taps(px0: u32, group: u32) -> Taps {
    let q = positions(px0);
    let spatial = q % shape.PLANE;
    let base = vec4<i32>((q / shape.PLANE * shape.IC + group * shape.ICG) * shape.IN_PLANE);
    let y = vec4<i32>(spatial / shape.OW * shape.SY) - i32(shape.PT);
    let x = vec4<i32>(spatial % shape.OW * shape.SX) - i32(shape.PL);
    return Taps(base, y, x);
}
