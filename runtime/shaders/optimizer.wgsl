// One optimizer step over a parameter tensor (or a pack of them), one invocation per 4 elements,
// with torch.optim's formulas (see `runtime/src/train/optim.rs`). KIND 0 is SGD (state1: momentum
// buffer), KIND 1 Adam or AdamW (state1, state2: first and second moments). The step's values come
// in `hyper`, each computed in f64 on the host and rounded once, as torch.optim's Python scalars
// are: [slot, lr, momentum or β₁, lr / (1 − β₁ᵗ), √(1 − β₂ᵗ), first step (1 or 0), 1 − β₁, 1 − lr·wd].
// Every tensor is bound as vec4s (LEN4 of them: packs are multiples of 4 floats, their gaps zero,
// which every rule leaves at zero): on CPU drivers such as lavapipe a vec4 load costs about what a
// scalar one does, and the `hyper` loads are shared by 4 elements; the arithmetic is per component,
// the same as one element at a time.
//
// Baked constants: KIND, NESTEROV, DECOUPLED, MOMENTUM_ON, WD, ONE_MINUS_DAMPENING, BETA2,
// ONE_MINUS_BETA2, EPS_ADAM; extents in `shape`: LEN4.

@group(0) @binding(0) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> hyper: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> state1: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> state2: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= shape.LEN4) {
        return;
    }
    let lr = hyper[1];
    let mu = hyper[2];
    var p = param[i];
    if (KIND == 0u) {
        var d = grad[i] + WD * p;
        if (MOMENTUM_ON) {
            var b = d;
            if (hyper[5] == 0.0) {
                b = mu * state1[i] + ONE_MINUS_DAMPENING * d;
            }
            state1[i] = b;
            d = select(b, d + mu * b, NESTEROV);
        }
        param[i] = p - lr * d;
        return;
    }
    var g = grad[i];
    if (DECOUPLED) {
        p = p * hyper[7];
    } else {
        g = g + WD * p;
    }
    // exp_avg.lerp_(grad, 1 − β₁), in the two forms of PyTorch's lerp (ATen's `lerp`).
    let w = hyper[6];
    let m0 = state1[i];
    let m = select(g - (g - m0) * (1.0 - w), m0 + w * (g - m0), w < 0.5);
    let v = BETA2 * state2[i] + ONE_MINUS_BETA2 * g * g;
    state1[i] = m;
    state2[i] = v;
    param[i] = p - hyper[3] * m / (sqrt(v) / hyper[4] + EPS_ADAM);
}
