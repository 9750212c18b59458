// Weight gradient of a 1×1 convolution (stride 1, no padding, one group) as a GEMM, first pass:
// `dW[o][i] = Σ_n Σ_p dy[n][o][p] · x[n][i][p]`. A workgroup takes one item and chunk of CHUNK
// positions (`workgroup_id.z`), a tile of 16 channels on one side (`workgroup_id.y`) and 256 on the
// other (`workgroup_id.x`), 4 per invocation. At each position an invocation loads its own 4
// channels' values and the tile's 16, which are the same for the whole workgroup, for 64
// multiply-adds: the arithmetic per load of the pointwise forward (`pointwise.wgsl`). On CPU drivers
// such as lavapipe, whose SIMD lanes are invocations, a load at one address for every lane is one
// load, where a load at a different address per lane is one per lane. LANES_OUT puts the
// invocations on the output channels (when there are more of them than input channels), else on the
// input channels. Results go to `partials[(w·N + n)·K + k]` (w = o·IC + i); `reduce_partials` adds
// them in order (or they are the result when N·K = 1). Channels past either end repeat the last one
// and are not written.
//
// Baked constants: CHUNK, LANES_OUT; extents in `shape`: N, IC, OC, P (positions per item), K
// (chunks per item).

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

// A value of an invocation's own channels, and of the tile's (LANES_OUT is baked: no branch remains).
fn own_value(at: u32) -> f32 {
    if (LANES_OUT) {
        return dy[at];
    }
    return x[at];
}

fn tile_value(at: u32) -> f32 {
    if (LANES_OUT) {
        return x[at];
    }
    return dy[at];
}

// The result for own channel `c` and tile channel `t`, if both exist.
fn put(c: u32, t: u32, value: f32, n: u32, k: u32) {
    let lanes = select(shape.IC, shape.OC, LANES_OUT);
    let tiled = select(shape.OC, shape.IC, LANES_OUT);
    if (c >= lanes || t >= tiled) {
        return;
    }
    let w = select(t * shape.IC + c, c * shape.IC + t, LANES_OUT);
    partials[(w * shape.N + n) * shape.K + k] = value;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) local: u32) {
    let lanes = select(shape.IC, shape.OC, LANES_OUT);
    let tiled = select(shape.OC, shape.IC, LANES_OUT);
    let c0 = (wid.x * 64u + local) * 4u;
    if (c0 >= lanes) {
        return;
    }
    let t0 = wid.y * 16u;
    let k = wid.z % shape.K;
    let n = wid.z / shape.K;
    // The own channels' rows and the tile's first row, in the buffers they are read from.
    var own: u32;
    var tile: u32;
    if (LANES_OUT) {
        own = n * shape.OC * shape.P;
        tile = n * shape.IC * shape.P;
    } else {
        own = n * shape.IC * shape.P;
        tile = n * shape.OC * shape.P;
    }
    let own0 = own + min(c0 + 0u, lanes - 1u) * shape.P;
    let own1 = own + min(c0 + 1u, lanes - 1u) * shape.P;
    let own2 = own + min(c0 + 2u, lanes - 1u) * shape.P;
    let own3 = own + min(c0 + 3u, lanes - 1u) * shape.P;
    let row0 = tile + min(t0 + 0u, tiled - 1u) * shape.P;
    let row1 = tile + min(t0 + 1u, tiled - 1u) * shape.P;
    let row2 = tile + min(t0 + 2u, tiled - 1u) * shape.P;
    let row3 = tile + min(t0 + 3u, tiled - 1u) * shape.P;
    let row4 = tile + min(t0 + 4u, tiled - 1u) * shape.P;
    let row5 = tile + min(t0 + 5u, tiled - 1u) * shape.P;
    let row6 = tile + min(t0 + 6u, tiled - 1u) * shape.P;
    let row7 = tile + min(t0 + 7u, tiled - 1u) * shape.P;
    let row8 = tile + min(t0 + 8u, tiled - 1u) * shape.P;
    let row9 = tile + min(t0 + 9u, tiled - 1u) * shape.P;
    let row10 = tile + min(t0 + 10u, tiled - 1u) * shape.P;
    let row11 = tile + min(t0 + 11u, tiled - 1u) * shape.P;
    let row12 = tile + min(t0 + 12u, tiled - 1u) * shape.P;
    let row13 = tile + min(t0 + 13u, tiled - 1u) * shape.P;
    let row14 = tile + min(t0 + 14u, tiled - 1u) * shape.P;
    let row15 = tile + min(t0 + 15u, tiled - 1u) * shape.P;
    var a0_0 = 0.0;
    var a0_1 = 0.0;
    var a0_2 = 0.0;
    var a0_3 = 0.0;
    var a0_4 = 0.0;
    var a0_5 = 0.0;
    var a0_6 = 0.0;
    var a0_7 = 0.0;
    var a0_8 = 0.0;
    var a0_9 = 0.0;
    var a0_10 = 0.0;
    var a0_11 = 0.0;
    var a0_12 = 0.0;
    var a0_13 = 0.0;
    var a0_14 = 0.0;
    var a0_15 = 0.0;
    var a1_0 = 0.0;
    var a1_1 = 0.0;
    var a1_2 = 0.0;
    var a1_3 = 0.0;
    var a1_4 = 0.0;
    var a1_5 = 0.0;
    var a1_6 = 0.0;
    var a1_7 = 0.0;
    var a1_8 = 0.0;
    var a1_9 = 0.0;
    var a1_10 = 0.0;
    var a1_11 = 0.0;
    var a1_12 = 0.0;
    var a1_13 = 0.0;
    var a1_14 = 0.0;
    var a1_15 = 0.0;
    var a2_0 = 0.0;
    var a2_1 = 0.0;
    var a2_2 = 0.0;
    var a2_3 = 0.0;
    var a2_4 = 0.0;
    var a2_5 = 0.0;
    var a2_6 = 0.0;
    var a2_7 = 0.0;
    var a2_8 = 0.0;
    var a2_9 = 0.0;
    var a2_10 = 0.0;
    var a2_11 = 0.0;
    var a2_12 = 0.0;
    var a2_13 = 0.0;
    var a2_14 = 0.0;
    var a2_15 = 0.0;
    var a3_0 = 0.0;
    var a3_1 = 0.0;
    var a3_2 = 0.0;
    var a3_3 = 0.0;
    var a3_4 = 0.0;
    var a3_5 = 0.0;
    var a3_6 = 0.0;
    var a3_7 = 0.0;
    var a3_8 = 0.0;
    var a3_9 = 0.0;
    var a3_10 = 0.0;
    var a3_11 = 0.0;
    var a3_12 = 0.0;
    var a3_13 = 0.0;
    var a3_14 = 0.0;
    var a3_15 = 0.0;
    let p1 = min((k + 1u) * CHUNK, shape.P);
    for (var p = k * CHUNK; p < p1; p++) {
        let g0 = own_value(own0 + p);
        let g1 = own_value(own1 + p);
        let g2 = own_value(own2 + p);
        let g3 = own_value(own3 + p);
        let u0 = tile_value(row0 + p);
        let u1 = tile_value(row1 + p);
        let u2 = tile_value(row2 + p);
        let u3 = tile_value(row3 + p);
        let u4 = tile_value(row4 + p);
        let u5 = tile_value(row5 + p);
        let u6 = tile_value(row6 + p);
        let u7 = tile_value(row7 + p);
        let u8 = tile_value(row8 + p);
        let u9 = tile_value(row9 + p);
        let u10 = tile_value(row10 + p);
        let u11 = tile_value(row11 + p);
        let u12 = tile_value(row12 + p);
        let u13 = tile_value(row13 + p);
        let u14 = tile_value(row14 + p);
        let u15 = tile_value(row15 + p);
        a0_0 += g0 * u0;
        a0_1 += g0 * u1;
        a0_2 += g0 * u2;
        a0_3 += g0 * u3;
        a0_4 += g0 * u4;
        a0_5 += g0 * u5;
        a0_6 += g0 * u6;
        a0_7 += g0 * u7;
        a0_8 += g0 * u8;
        a0_9 += g0 * u9;
        a0_10 += g0 * u10;
        a0_11 += g0 * u11;
        a0_12 += g0 * u12;
        a0_13 += g0 * u13;
        a0_14 += g0 * u14;
        a0_15 += g0 * u15;
        a1_0 += g1 * u0;
        a1_1 += g1 * u1;
        a1_2 += g1 * u2;
        a1_3 += g1 * u3;
        a1_4 += g1 * u4;
        a1_5 += g1 * u5;
        a1_6 += g1 * u6;
        a1_7 += g1 * u7;
        a1_8 += g1 * u8;
        a1_9 += g1 * u9;
        a1_10 += g1 * u10;
        a1_11 += g1 * u11;
        a1_12 += g1 * u12;
        a1_13 += g1 * u13;
        a1_14 += g1 * u14;
        a1_15 += g1 * u15;
        a2_0 += g2 * u0;
        a2_1 += g2 * u1;
        a2_2 += g2 * u2;
        a2_3 += g2 * u3;
        a2_4 += g2 * u4;
        a2_5 += g2 * u5;
        a2_6 += g2 * u6;
        a2_7 += g2 * u7;
        a2_8 += g2 * u8;
        a2_9 += g2 * u9;
        a2_10 += g2 * u10;
        a2_11 += g2 * u11;
        a2_12 += g2 * u12;
        a2_13 += g2 * u13;
        a2_14 += g2 * u14;
        a2_15 += g2 * u15;
        a3_0 += g3 * u0;
        a3_1 += g3 * u1;
        a3_2 += g3 * u2;
        a3_3 += g3 * u3;
        a3_4 += g3 * u4;
        a3_5 += g3 * u5;
        a3_6 += g3 * u6;
        a3_7 += g3 * u7;
        a3_8 += g3 * u8;
        a3_9 += g3 * u9;
        a3_10 += g3 * u10;
        a3_11 += g3 * u11;
        a3_12 += g3 * u12;
        a3_13 += g3 * u13;
        a3_14 += g3 * u14;
        a3_15 += g3 * u15;
    }
    put(c0 + 0u, t0 + 0u, a0_0, n, k);
    put(c0 + 0u, t0 + 1u, a0_1, n, k);
    put(c0 + 0u, t0 + 2u, a0_2, n, k);
    put(c0 + 0u, t0 + 3u, a0_3, n, k);
    put(c0 + 0u, t0 + 4u, a0_4, n, k);
    put(c0 + 0u, t0 + 5u, a0_5, n, k);
    put(c0 + 0u, t0 + 6u, a0_6, n, k);
    put(c0 + 0u, t0 + 7u, a0_7, n, k);
    put(c0 + 0u, t0 + 8u, a0_8, n, k);
    put(c0 + 0u, t0 + 9u, a0_9, n, k);
    put(c0 + 0u, t0 + 10u, a0_10, n, k);
    put(c0 + 0u, t0 + 11u, a0_11, n, k);
    put(c0 + 0u, t0 + 12u, a0_12, n, k);
    put(c0 + 0u, t0 + 13u, a0_13, n, k);
    put(c0 + 0u, t0 + 14u, a0_14, n, k);
    put(c0 + 0u, t0 + 15u, a0_15, n, k);
    put(c0 + 1u, t0 + 0u, a1_0, n, k);
    put(c0 + 1u, t0 + 1u, a1_1, n, k);
    put(c0 + 1u, t0 + 2u, a1_2, n, k);
    put(c0 + 1u, t0 + 3u, a1_3, n, k);
    put(c0 + 1u, t0 + 4u, a1_4, n, k);
    put(c0 + 1u, t0 + 5u, a1_5, n, k);
    put(c0 + 1u, t0 + 6u, a1_6, n, k);
    put(c0 + 1u, t0 + 7u, a1_7, n, k);
    put(c0 + 1u, t0 + 8u, a1_8, n, k);
    put(c0 + 1u, t0 + 9u, a1_9, n, k);
    put(c0 + 1u, t0 + 10u, a1_10, n, k);
    put(c0 + 1u, t0 + 11u, a1_11, n, k);
    put(c0 + 1u, t0 + 12u, a1_12, n, k);
    put(c0 + 1u, t0 + 13u, a1_13, n, k);
    put(c0 + 1u, t0 + 14u, a1_14, n, k);
    put(c0 + 1u, t0 + 15u, a1_15, n, k);
    put(c0 + 2u, t0 + 0u, a2_0, n, k);
    put(c0 + 2u, t0 + 1u, a2_1, n, k);
    put(c0 + 2u, t0 + 2u, a2_2, n, k);
    put(c0 + 2u, t0 + 3u, a2_3, n, k);
    put(c0 + 2u, t0 + 4u, a2_4, n, k);
    put(c0 + 2u, t0 + 5u, a2_5, n, k);
    put(c0 + 2u, t0 + 6u, a2_6, n, k);
    put(c0 + 2u, t0 + 7u, a2_7, n, k);
    put(c0 + 2u, t0 + 8u, a2_8, n, k);
    put(c0 + 2u, t0 + 9u, a2_9, n, k);
    put(c0 + 2u, t0 + 10u, a2_10, n, k);
    put(c0 + 2u, t0 + 11u, a2_11, n, k);
    put(c0 + 2u, t0 + 12u, a2_12, n, k);
    put(c0 + 2u, t0 + 13u, a2_13, n, k);
    put(c0 + 2u, t0 + 14u, a2_14, n, k);
    put(c0 + 2u, t0 + 15u, a2_15, n, k);
    put(c0 + 3u, t0 + 0u, a3_0, n, k);
    put(c0 + 3u, t0 + 1u, a3_1, n, k);
    put(c0 + 3u, t0 + 2u, a3_2, n, k);
    put(c0 + 3u, t0 + 3u, a3_3, n, k);
    put(c0 + 3u, t0 + 4u, a3_4, n, k);
    put(c0 + 3u, t0 + 5u, a3_5, n, k);
    put(c0 + 3u, t0 + 6u, a3_6, n, k);
    put(c0 + 3u, t0 + 7u, a3_7, n, k);
    put(c0 + 3u, t0 + 8u, a3_8, n, k);
    put(c0 + 3u, t0 + 9u, a3_9, n, k);
    put(c0 + 3u, t0 + 10u, a3_10, n, k);
    put(c0 + 3u, t0 + 11u, a3_11, n, k);
    put(c0 + 3u, t0 + 12u, a3_12, n, k);
    put(c0 + 3u, t0 + 13u, a3_13, n, k);
    put(c0 + 3u, t0 + 14u, a3_14, n, k);
    put(c0 + 3u, t0 + 15u, a3_15, n, k);
}
