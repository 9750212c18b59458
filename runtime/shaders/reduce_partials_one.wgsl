// `reduce_partials.wgsl`'s destination: every result `r` to `out[r]`.

@group(0) @binding(1) var<storage, read_write> out: array<f32>;

fn store(r: u32, value: f32) {
    out[r] = value;
}
