// `reduce_partials.wgsl`'s two destinations: the first HEAD results to `head`, the rest to `tail`
// (a convolution's weight gradient and its bias gradient, whose partial sums one kernel wrote, in
// one dispatch instead of two).
//
// Extents in `shape`: HEAD.

@group(0) @binding(1) var<storage, read_write> head: array<f32>;
@group(0) @binding(2) var<storage, read_write> tail: array<f32>;

fn store(r: u32, value: f32) {
    if (r < shape.HEAD) {
        head[r] = value;
    } else {
        tail[r - shape.HEAD] = value;
    }
}
