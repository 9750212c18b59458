// `linear_grad.wgsl`'s output gradient `dy` `[R, OUT]` in a storage buffer (too large for a uniform
// binding).

@group(0) @binding(0) var<storage, read> dy: array<f32>;

fn dy_at(i: u32) -> f32 {
    return dy[i];
}
