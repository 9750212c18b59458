// Gradient of an activation: `dx = dy · f'(x)`, with PyTorch's choices at the kinks (relu'(0) = 0,
// relu6 and hardsigmoid pass the gradient only strictly inside their linear range, leaky relu'(0) =
// slope, hardswish'(x) = x/3 + 1/2 on [-3, 3]).
//
// Baked constants: ACT, ACT_ARG (the codes of `activate`); extents in `shape`: LEN.

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

fn slope(v: f32) -> f32 {
    switch ACT {
        // Zero where PyTorch's comparison holds, so NaN passes the gradient as in PyTorch.
        case 1u: { return select(1.0, 0.0, v <= 0.0); }
        case 2u: { return select(1.0, 0.0, v <= 0.0 || v >= 6.0); }
        case 3u: { return select(ACT_ARG, 1.0, v > 0.0); }
        case 4u: {
            let s = 1.0 / (1.0 + exp(-v));
            return s * (1.0 + v * (1.0 - s));
        }
        case 5u: {
            let s = 1.0 / (1.0 + exp(-v));
            return s * (1.0 - s);
        }
        case 6u: {
            if (v < -3.0) {
                return 0.0;
            }
            return select(1.0, v / 3.0 + 0.5, v <= 3.0);
        }
        case 7u: { return select(0.0, 1.0 / 6.0, v > -3.0 && v < 3.0); }
        case 8u: {
            let t = tanh(v);
            return 1.0 - t * t;
        }
        case 9u: {
            let cdf = 0.5 * (1.0 + erf_approx(v * 0.70710678118654752));
            return cdf + v * exp(-0.5 * v * v) * 0.3989422804014327;
        }
        default: { return 1.0; }
    }
}

// Where PyTorch's backward writes 0 whatever the incoming gradient (an infinite or NaN one too):
// relu's `x <= 0`, relu6's outside (0, 6), hardsigmoid's outside (-3, 3), hardswish's `x < -3`.
fn blocks(v: f32) -> bool {
    switch ACT {
        case 1u: { return v <= 0.0; }
        case 2u: { return v <= 0.0 || v >= 6.0; }
        case 6u: { return v < -3.0; }
        case 7u: { return !(v > -3.0 && v < 3.0); }
        default: { return false; }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= shape.LEN) {
        return;
    }
    let v = x[index];
    dx[index] = select(dy[index] * slope(v), 0.0, blocks(v));
}
