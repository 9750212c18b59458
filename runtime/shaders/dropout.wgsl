// Dropout and stochastic depth, forward (`x` the input) and backward (`x` the output's gradient):
// `y = x · s`, where `s` is 0 for a dropped element and 1/(1 − p) for a kept one. The draws are the
// counter-based ones of `runtime/src/train/rng.rs` — `lowbias32` of the node's key for this step
// (`keys[KEY]`, written before each step) and the element (or, for stochastic depth, the item) — so
// the backward pass recomputes the mask instead of storing it.
//
// Baked constants: KEY, P_DROP, PER_ITEM; extents in `shape`: LEN, ITEM.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn hash32(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= shape.LEN) {
        return;
    }
    var element = index;
    if (PER_ITEM) {
        element = index / shape.ITEM;
    }
    let u = f32(hash32(keys[KEY] ^ hash32(element)) >> 8u) / 16777216.0;
    var s = 0.0;
    if (u >= P_DROP) {
        s = 1.0 / (1.0 - P_DROP);
    }
    y[index] = x[index] * s;
}
