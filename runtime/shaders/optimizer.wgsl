// One optimizer step over a parameter tensor, one invocation per element, with torch.optim's
// formulas (see `runtime/src/train/optim.rs`). KIND 0 is SGD (state1: momentum buffer), KIND 1 Adam
// or AdamW (state1, state2: first and second moments). The step's values come in `hyper`:
// [slot, lr, momentum or β₁, 1 − β₁ᵗ, √(1 − β₂ᵗ), first step (1 or 0)].
//
// Baked constants: KIND, NESTEROV, DECOUPLED, MOMENTUM_ON, WD, DAMPENING, BETA2, EPS_ADAM; extents
// in `shape`: LEN.

@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read> hyper: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> state1: array<f32>;
@group(0) @binding(4) var<storage, read_write> state2: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= shape.LEN) {
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
                b = mu * state1[i] + (1.0 - DAMPENING) * d;
            }
            state1[i] = b;
            d = select(b, d + mu * b, NESTEROV);
        }
        param[i] = p - lr * d;
        return;
    }
    var g = grad[i];
    if (DECOUPLED) {
        p = p * (1.0 - lr * WD);
    } else {
        g = g + WD * p;
    }
    let m = mu * state1[i] + (1.0 - mu) * g;
    let v = BETA2 * state2[i] + (1.0 - BETA2) * g * g;
    state1[i] = m;
    state2[i] = v;
    param[i] = p - lr / hyper[3] * m / (sqrt(v) / hyper[4] + EPS_ADAM);
}
