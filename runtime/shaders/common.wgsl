// Shared by every kernel: activation functions selected by a baked-in constant.
// ACT: 0 none, 1 relu, 2 relu6, 3 leaky_relu (ACT_ARG = slope), 4 silu, 5 sigmoid,
//      6 hardswish, 7 hardsigmoid, 8 tanh, 9 gelu (erf, Abramowitz–Stegun 7.1.26); the convolutions
//      also have 10, bounds from their `shape` uniform (`epilogue.wgsl`)

fn erf_approx(x: f32) -> f32 {
    let s = sign(x);
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
    return s * y;
}

// NaN tested by its bits: WGSL lets a compiler assume floats are never NaN, so `x != x` may fold.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// ±∞, tested by its bits like NaN.
fn is_inf(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u;
}

// A sum that starts at +0.0, as every convolution's and linear layer's does (PyTorch's too), is
// never -0.0 (-0 + +0 is +0); a driver that assumes no signed zeros may fold the first `0 + x` to
// `x`, so a zero sum's sign is cleared by its bits.
fn sum_sign(x: f32) -> f32 {
    let bits = bitcast<u32>(x);
    return bitcast<f32>(select(bits, 0u, bits == 0x80000000u));
}

// A quiet NaN, made from its bits.
fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// A running max as PyTorch's pooling takes it: `b` replaces `a` when `b > a` or `b` is NaN, so NaN
// stays once seen and of equal values the first is kept (-0.0 before 0.0 stays -0.0); WGSL's `max`
// may return either operand.
fn max_nan(a: f32, b: f32) -> f32 {
    return select(a, b, b > a || is_nan(b));
}

// -inf, the start of a max over a window (a window of -inf gives -inf, as in PyTorch).
fn neg_inf() -> f32 {
    return bitcast<f32>(0xff800000u);
}

fn activate(x: f32) -> f32 {
    switch ACT {
        case 1u: { return select(x, 0.0, x < 0.0); }
        // Selects, not clamp: clamp(-0.0, 0.0, 6.0) may give +0.0, and PyTorch keeps -0.0.
        case 2u: { return select(select(x, 0.0, x < 0.0), 6.0, x > 6.0); }
        case 3u: { return select(x * ACT_ARG, x, x >= 0.0); }
        case 4u: { return x / (1.0 + exp(-x)); }
        case 5u: { return 1.0 / (1.0 + exp(-x)); }
        case 6u: { return select(x * clamp(x + 3.0, 0.0, 6.0) / 6.0, x, is_nan(x)); }
        case 7u: { return select(clamp(x + 3.0, 0.0, 6.0) / 6.0, x, is_nan(x)); }
        case 8u: { return tanh(x); }
        case 9u: { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752)); }
        default: { return x; }
    }
}
