// Input gradient of a convolution: one invocation per (item, tile of C_TILE input channels of a group,
// input position) gathers dy · w over the output positions whose window reads that position (taps
// that do not land on a stride step are skipped), tap by tap, each tap's output channels summed in
// order; each dy is loaded once for the tile's channels. In a partial last tile, channels past the
// group's end repeat its last one and are not written.
//
// Baked constants: KH, KW, DY, DX, C_TILE (4, or 1 where a group has fewer than 4 input channels:
// depthwise); extents in `shape`: N, IC, IH, IW, OC, OH, OW, ICG, OCG, SY, SX, PT, PL.

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    let tiles = (shape.ICG + C_TILE - 1u) / C_TILE;
    let groups = shape.IC / shape.ICG;
    let positions = shape.IH * shape.IW;
    if (index >= shape.N * groups * tiles * positions) {
        return;
    }
    let ix = index % shape.IW;
    let iy = (index / shape.IW) % shape.IH;
    let tile = (index / positions) % (groups * tiles);
    let n = index / (positions * groups * tiles);
    let g = tile / tiles;
    let first = (tile % tiles) * C_TILE;
    var cig: array<u32, C_TILE>;
    for (var j = 0u; j < C_TILE; j++) {
        cig[j] = min(first + j, shape.ICG - 1u);
    }
    // Which taps land on a stride step is the same for every channel: it is worked out once per tap
    // (integer divisions are dear), then the output channels are summed.
    let o0 = g * shape.OCG;
    var acc: array<f32, C_TILE>;
    for (var ky = 0u; ky < KH; ky++) {
        let sy = window_source(iy, shape.PT, ky * DY, shape.SY, shape.OH);
        if (sy < 0) {
            continue;
        }
        let oy = u32(sy);
        for (var kx = 0u; kx < KW; kx++) {
            let sx = window_source(ix, shape.PL, kx * DX, shape.SX, shape.OW);
            if (sx < 0) {
                continue;
            }
            let ox = u32(sx);
            var at = ((n * shape.OC + o0) * shape.OH + oy) * shape.OW + ox;
            var w = (o0 * shape.ICG * KH + ky) * KW + kx;
            var tap: array<f32, C_TILE>;
            for (var o = 0u; o < shape.OCG; o++) {
                let g = dy[at];
                for (var j = 0u; j < C_TILE; j++) {
                    tap[j] += g * weight[w + cig[j] * KH * KW];
                }
                at += shape.OH * shape.OW;
                w += shape.ICG * KH * KW;
            }
            for (var j = 0u; j < C_TILE; j++) {
                acc[j] += tap[j];
            }
        }
    }
    for (var j = 0u; j < min(C_TILE, shape.ICG - first); j++) {
        let ci = g * shape.ICG + first + j;
        dx[((n * shape.IC + ci) * shape.IH + iy) * shape.IW + ix] = acc[j];
    }
}
