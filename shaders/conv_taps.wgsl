// Shared by the direct convolution kernels: where the 4 output positions px0..px0+3 (flattened over
// batch and space; those past the end clamped to the last position) read their input — the plane of
// their group's first input channel, and the top-left tap's row and column (negative in padding).

struct Taps {
    base: vec4<i32>,
    y: vec4<i32>,
    x: vec4<i32>,
}

fn taps(px0: u32, group: u32) -> Taps {
    let q = min(vec4<u32>(px0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(PIXELS - 1u));
    let base = vec4<i32>((q / (OH * OW) * IC + group * ICG) * IH * IW);
    let y = vec4<i32>((q % (OH * OW)) / OW * SY) - i32(PT);
    let x = vec4<i32>(q % OW * SX) - i32(PL);
    return Taps(base, y, x);
}
