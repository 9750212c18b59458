// Batch-norm in training mode, first pass: partial sums per (channel, item, chunk of CHUNK
// positions) of `d = x − shift_c` and `d²`, where `shift_c` is the channel's first value (so that the
// squares do not cancel: the statistics are exact for any mean). MODE 0 (forward): `partials[c·NK +
// i]` = Σ d and `partials[(C + c)·NK + i]` = Σ d², i = n·K + k. MODE 1 (backward, with the forward's
// `stats` [mean | var | scale | shift]): Σ dy and Σ dy·x̂ in the same places.
//
// Baked constants: MODE, CHUNK, EPS; extents in `shape`: N, C, P, K.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    let C = shape.C;
    let nk = shape.N * shape.K;
    if (index >= C * nk) {
        return;
    }
    let i = index % nk;
    let c = index / nk;
    let k = i % shape.K;
    let n = i / shape.K;
    let base = (n * C + c) * shape.P;
    let end = min((k + 1u) * CHUNK, shape.P);
    var first = 0.0;
    var second = 0.0;
    if (MODE == 0u) {
        let shift = x[c * shape.P];
        for (var p0 = k * CHUNK; p0 < end; p0 += 256u) {
            var block = 0.0;
            var block_squares = 0.0;
            for (var p = p0; p < min(p0 + 256u, end); p++) {
                let d = x[base + p] - shift;
                block += d;
                block_squares += d * d;
            }
            first += block;
            second += block_squares;
        }
    } else {
        let mean = stats[c];
        let inv_std = 1.0 / sqrt(stats[C + c] + EPS);
        for (var p0 = k * CHUNK; p0 < end; p0 += 256u) {
            var block_dy = 0.0;
            var block_dy_xhat = 0.0;
            for (var p = p0; p < min(p0 + 256u, end); p++) {
                let g = dy[base + p];
                block_dy += g;
                block_dy_xhat += g * (x[base + p] - mean) * inv_std;
            }
            first += block_dy;
            second += block_dy_xhat;
        }
    }
    partials[c * nk + i] = first;
    partials[(C + c) * nk + i] = second;
}
