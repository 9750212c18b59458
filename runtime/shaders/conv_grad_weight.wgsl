// Weight gradient of a convolution, first pass: one invocation per (tile of O_TILE output channels,
// input channel, row of KW taps, item, chunk of ROWS output rows) sums dy · x over those positions,
// row by row, for its O_TILE × KW weights (each dy loaded once for KW taps, each x once for the
// tile's channels; channels past a group's end in a partial last tile are not written), into
// `partials[(w·N + n)·K + k]`; `reduce_partials` adds them in order (or they are the result when
// N·K = 1).
//
// Baked constants: KH, KW, DY, DX, ROWS, O_TILE (4, or 1 where a group has fewer than 4 output
// channels: depthwise); extents in `shape`: N, IC, IH, IW, OC, OH, OW, ICG, OCG, SY,
// SX, PT, PL, K (chunks per item).

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    let nk = shape.N * shape.K;
    let tiles = (shape.OCG + O_TILE - 1u) / O_TILE;
    let groups = shape.OC / shape.OCG;
    if (index >= groups * tiles * shape.ICG * KH * nk) {
        return;
    }
    let k = index % shape.K;
    let n = (index / shape.K) % shape.N;
    let rest = index / nk;
    let ky = rest % KH;
    let cig = (rest / KH) % shape.ICG;
    let tile = rest / (KH * shape.ICG);
    let g = tile / tiles;
    // The tile's output channels within its group; those past the group's end (a partial last tile)
    // repeat its last channel and are not written.
    let first = (tile % tiles) * O_TILE;
    let ci = g * shape.ICG + cig;
    let plane = (n * shape.IC + ci) * shape.IH;
    var out: array<u32, O_TILE>;
    for (var j = 0u; j < O_TILE; j++) {
        out[j] = (n * shape.OC + g * shape.OCG + min(first + j, shape.OCG - 1u)) * shape.OH;
    }
    var acc: array<f32, O_TILE * KW>;
    for (var oy = k * ROWS; oy < min((k + 1u) * ROWS, shape.OH); oy++) {
        let iy = i32(oy * shape.SY + ky * DY) - i32(shape.PT);
        if (iy < 0 || iy >= i32(shape.IH)) {
            continue;
        }
        let x_row = (plane + u32(iy)) * shape.IW;
        var row: array<f32, O_TILE * KW>;
        for (var ox = 0u; ox < shape.OW; ox++) {
            var g4: array<f32, O_TILE>;
            for (var j = 0u; j < O_TILE; j++) {
                g4[j] = dy[(out[j] + oy) * shape.OW + ox];
            }
            let x0 = i32(ox * shape.SX) - i32(shape.PL);
            for (var kx = 0u; kx < KW; kx++) {
                let ix = x0 + i32(kx * DX);
                if (ix >= 0 && ix < i32(shape.IW)) {
                    let v = x[x_row + u32(ix)];
                    for (var j = 0u; j < O_TILE; j++) {
                        row[j * KW + kx] += g4[j] * v;
                    }
                }
            }
        }
        for (var i = 0u; i < O_TILE * KW; i++) {
            acc[i] += row[i];
        }
    }
    for (var j = 0u; j < min(O_TILE, shape.OCG - first); j++) {
        let o = g * shape.OCG + first + j;
        let w = ((o * shape.ICG + cig) * KH + ky) * KW;
        for (var kx = 0u; kx < KW; kx++) {
            partials[((w + kx) * shape.N + n) * shape.K + k] = acc[j * KW + kx];
        }
    }
}
