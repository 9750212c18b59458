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

fn activate(x: f32) -> f32 {
    switch ACT {
        case 1u: { return max(x, 0.0); }
        case 2u: { return clamp(x, 0.0, 6.0); }
        case 3u: { return select(x * ACT_ARG, x, x >= 0.0); }
        case 4u: { return x / (1.0 + exp(-x)); }
        case 5u: { return 1.0 / (1.0 + exp(-x)); }
        case 6u: { return x * clamp(x + 3.0, 0.0, 6.0) / 6.0; }
        case 7u: { return clamp(x + 3.0, 0.0, 6.0) / 6.0; }
        case 8u: { return tanh(x); }
        case 9u: { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752)); }
        default: { return x; }
    }
}
