// Weight gradient of a convolution, first pass: one invocation per (weight element, item, chunk of
// ROWS output rows) sums dy · x over those positions, row by row, into
// `partials[(w·N + n)·K + k]`; `reduce_partials` adds them in order (or they are the result when
// N·K = 1).
//
// Baked constants: KH, KW, DY, DX, ROWS; extents in `shape`: N, IC, IH, IW, OC, OH, OW, ICG, OCG, SY,
// SX, PT, PL, K (chunks per item).

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    let nk = shape.N * shape.K;
    if (index >= shape.OC * shape.ICG * KH * KW * nk) {
        return;
    }
    let k = index % shape.K;
    let n = (index / shape.K) % shape.N;
    let w = index / nk;
    let kx = w % KW;
    let ky = (w / KW) % KH;
    let cig = (w / (KW * KH)) % shape.ICG;
    let o = w / (KW * KH * shape.ICG);
    let ci = (o / shape.OCG) * shape.ICG + cig;
    let plane = (n * shape.IC + ci) * shape.IH;
    let out = (n * shape.OC + o) * shape.OH;
    var acc = 0.0;
    for (var oy = k * ROWS; oy < min((k + 1u) * ROWS, shape.OH); oy++) {
        let iy = i32(oy * shape.SY + ky * DY) - i32(shape.PT);
        if (iy < 0 || iy >= i32(shape.IH)) {
            continue;
        }
        var row = 0.0;
        for (var ox = 0u; ox < shape.OW; ox++) {
            let ix = i32(ox * shape.SX + kx * DX) - i32(shape.PL);
            if (ix < 0 || ix >= i32(shape.IW)) {
                continue;
            }
            row += dy[(out + oy) * shape.OW + ox] * x[(plane + u32(iy)) * shape.IW + u32(ix)];
        }
        acc += row;
    }
    partials[index] = acc;
}
