// Partial sums of `[N, C, P]` per channel (bias gradients): one invocation per (channel, item,
// chunk of CHUNK positions) writes `partials[(c·N + n)·K + k]`, summing in blocks of 256; the
// partials are then added in order by `reduce_partials` (or are the result when N·K = 1).
//
// Baked constants: CHUNK; extents in `shape`: N, C, P, K (chunks per item).

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= shape.C * shape.N * shape.K) {
        return;
    }
    let k = index % shape.K;
    let n = (index / shape.K) % shape.N;
    let c = index / (shape.K * shape.N);
    let base = (n * shape.C + c) * shape.P;
    let end = min((k + 1u) * CHUNK, shape.P);
    var acc = 0.0;
    for (var p0 = k * CHUNK; p0 < end; p0 += 256u) {
        var block = 0.0;
        for (var p = p0; p < min(p0 + 256u, end); p++) {
            block += dy[base + p];
        }
        acc += block;
    }
    partials[index] = acc;
}
