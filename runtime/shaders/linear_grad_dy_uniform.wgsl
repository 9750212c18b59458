// `linear_grad.wgsl`'s output gradient `dy` `[R, OUT]` in a uniform buffer of DY4 vec4s (uniform
// arrays have a 16-byte stride): read at an address the same for the whole workgroup, it is one
// scalar load on CPU drivers and comes from the constant cache on GPUs.

@group(0) @binding(0) var<uniform> dy: array<vec4<f32>, DY4>;

fn dy_at(i: u32) -> f32 {
    return dy[i / 4u][i % 4u];
}
