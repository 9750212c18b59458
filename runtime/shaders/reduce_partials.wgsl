// The second pass of a split reduction: result `r` is `Σ_m partials[(OFFSET + r)·M + m]`, one
// invocation per result, adding the partial sums in order, and `store` (from the prefix, one or two
// destinations) writes it. Long reductions are split into partial sums over chunks (each
// invocation's loops stay short: CPU drivers such as lavapipe cut loops off after about 65,000
// iterations, and more invocations keep a GPU busy), then combined here, in a fixed order.
//
// Extents in `shape`: R, M, OFFSET (and the prefix's).

@group(0) @binding(0) var<storage, read> partials: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x + gid.y * 65535u * 64u;
    if (r >= shape.R) {
        return;
    }
    var acc = 0.0;
    let base = (shape.OFFSET + r) * shape.M;
    for (var m = 0u; m < shape.M; m++) {
        acc += partials[base + m];
    }
    store(r, acc);
}
