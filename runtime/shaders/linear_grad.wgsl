// Gradients of a linear layer `[R, K] → [R, OUT]`, for the PART output features from ROW0 (all of
// them, or one block of rows of a weight too large for one binding), as a product
// `result[a, k] = Σ_s lhs(a, s) · other[s, k]` of `[A, S] · [S, K]`, each element summed over s in
// order:
// MODE 0, the input gradient `dx[r, k] = Σ_o dy[r, ROW0 + o] · w[o, k]` over the block's rows o
// (`other` is the block of w; A = R, S = PART), added to `result` with ACCUMULATE (the blocks after
// the first, in order);
// MODE 1, the weight gradient `dw[o, k] = Σ_r dy[r, ROW0 + o] · x[r, k]` of the block (`other` is x;
// A = PART, S = R).
// With BIAS (MODE 1) the invocations of column 0 also write the bias gradient
// `db[ROW0 + o] = Σ_r dy[r, ROW0 + o]` into `side`, summed in the same order. With RELU_MASK
// (MODE 0) the layer's input is a ReLU's output, bound as `side`, and the result is the gradient of
// the ReLU's input: zero where that output is <= 0 (PyTorch's `threshold_backward` on the result,
// which lets NaN through), saving the ReLU's own dispatch.
// Each workgroup takes a tile of TILE rows a (16, or all A if fewer) and 256 columns k, 4 per
// invocation (workgroup w of the grid, `x + 65,535 · y`, takes column group w mod COL_GROUPS and
// row tile w / COL_GROUPS). Per s an invocation loads its own 4 values of `other` and the tile's
// rows of `dy`, which are the same for the whole workgroup, for 64 multiply-adds (with 16 rows). On
// CPU drivers such as lavapipe, whose SIMD lanes are invocations, a load at one address for every
// lane is one load, where a load at a different address per lane is one per lane, and lavapipe
// (Mesa 22) makes the one load only from a uniform buffer: `dy` is bound as one
// (`linear_grad_dy_uniform.wgsl`, DY4 vec4s) where it fits 64 KiB, else as a storage buffer
// (`linear_grad_dy_storage.wgsl`). Where K is a multiple of 4 (VEC_K) the 4 values of `other` are
// one vec4 load. Rows past A repeat the last one and columns past K read zero; neither is written.
//
// Baked constants: MODE, BIAS, RELU_MASK, ACCUMULATE, VEC_K, TILE, COL_GROUPS, DY4; extents in
// `shape` (baked too): R, K, OUT, ROW0, PART.

@group(0) @binding(1) var<storage, read> other: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> result: array<f32>;
// The bias gradient `[OUT]` (written, MODE 1 with BIAS) or the ReLU's output `[R, K]` (read, MODE 0
// with RELU_MASK).
@group(0) @binding(3) var<storage, read_write> side: array<f32>;

// other[s, k0], …, other[s, k0 + 3], zero past K.
fn other4(s: u32, k0: u32) -> vec4<f32> {
    let at = s * shape.K + k0;
    if (VEC_K) {
        return other[at / 4u];
    }
    let rows = select(shape.R, shape.PART, MODE == 0u);
    let last = rows * shape.K - 1u;
    var v = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        if (k0 + i < shape.K) {
            v[i] = other[min(at + i, last) / 4u][(at + i) % 4u];
        }
    }
    return v;
}

// The left operand at (a, s): dy[a, ROW0 + s] for the input gradient, dy[s, ROW0 + a] for the weight
// gradient.
fn lhs(a: u32, s: u32) -> f32 {
    if (MODE == 0u) {
        return dy_at(a * shape.OUT + shape.ROW0 + s);
    }
    return dy_at(s * shape.OUT + shape.ROW0 + a);
}

// Writes row a's 4 columns from k0 (those inside the result).
fn store(a: u32, k0: u32, value: vec4<f32>) {
    let rows = select(shape.PART, shape.R, MODE == 0u);
    if (a >= rows) {
        return;
    }
    for (var j = 0u; j < min(4u, shape.K - k0); j++) {
        let at = a * shape.K + k0 + j;
        var v = value[j];
        if (RELU_MASK) {
            v = select(v, 0.0, side[at] <= 0.0);
        }
        if (ACCUMULATE) {
            result[at] += v;
        } else {
            result[at] = v;
        }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) local: u32) {
    var rows = shape.R;
    var sums = shape.PART;
    if (MODE == 1u) {
        rows = shape.PART;
        sums = shape.R;
    }
    let w = wid.x + wid.y * 65535u;
    let k0 = ((w % COL_GROUPS) * 64u + local) * 4u;
    let first = (w / COL_GROUPS) * TILE;
    if (k0 >= shape.K || first >= rows) {
        return;
    }
    let bias_column = BIAS && k0 == 0u;
    let r0 = min(first + 0u, rows - 1u);
    let r1 = min(first + 1u, rows - 1u);
    let r2 = min(first + 2u, rows - 1u);
    let r3 = min(first + 3u, rows - 1u);
    let r4 = min(first + 4u, rows - 1u);
    let r5 = min(first + 5u, rows - 1u);
    let r6 = min(first + 6u, rows - 1u);
    let r7 = min(first + 7u, rows - 1u);
    let r8 = min(first + 8u, rows - 1u);
    let r9 = min(first + 9u, rows - 1u);
    let r10 = min(first + 10u, rows - 1u);
    let r11 = min(first + 11u, rows - 1u);
    let r12 = min(first + 12u, rows - 1u);
    let r13 = min(first + 13u, rows - 1u);
    let r14 = min(first + 14u, rows - 1u);
    let r15 = min(first + 15u, rows - 1u);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    var a8 = vec4<f32>(0.0);
    var a9 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0);
    var a11 = vec4<f32>(0.0);
    var a12 = vec4<f32>(0.0);
    var a13 = vec4<f32>(0.0);
    var a14 = vec4<f32>(0.0);
    var a15 = vec4<f32>(0.0);
    var b0 = 0.0;
    var b1 = 0.0;
    var b2 = 0.0;
    var b3 = 0.0;
    var b4 = 0.0;
    var b5 = 0.0;
    var b6 = 0.0;
    var b7 = 0.0;
    var b8 = 0.0;
    var b9 = 0.0;
    var b10 = 0.0;
    var b11 = 0.0;
    var b12 = 0.0;
    var b13 = 0.0;
    var b14 = 0.0;
    var b15 = 0.0;
    for (var s = 0u; s < sums; s++) {
        let o = other4(s, k0);
        let l0 = lhs(r0, s);
        let l1 = lhs(r1, s);
        let l2 = lhs(r2, s);
        let l3 = lhs(r3, s);
        let l4 = lhs(r4, s);
        let l5 = lhs(r5, s);
        let l6 = lhs(r6, s);
        let l7 = lhs(r7, s);
        let l8 = lhs(r8, s);
        let l9 = lhs(r9, s);
        let l10 = lhs(r10, s);
        let l11 = lhs(r11, s);
        let l12 = lhs(r12, s);
        let l13 = lhs(r13, s);
        let l14 = lhs(r14, s);
        let l15 = lhs(r15, s);
        a0 += l0 * o;
        if (TILE > 1u) { a1 += l1 * o; }
        if (TILE > 2u) { a2 += l2 * o; }
        if (TILE > 3u) { a3 += l3 * o; }
        if (TILE > 4u) { a4 += l4 * o; }
        if (TILE > 5u) { a5 += l5 * o; }
        if (TILE > 6u) { a6 += l6 * o; }
        if (TILE > 7u) { a7 += l7 * o; }
        if (TILE > 8u) { a8 += l8 * o; }
        if (TILE > 9u) { a9 += l9 * o; }
        if (TILE > 10u) { a10 += l10 * o; }
        if (TILE > 11u) { a11 += l11 * o; }
        if (TILE > 12u) { a12 += l12 * o; }
        if (TILE > 13u) { a13 += l13 * o; }
        if (TILE > 14u) { a14 += l14 * o; }
        if (TILE > 15u) { a15 += l15 * o; }
        if (bias_column) {
            b0 += l0;
            if (TILE > 1u) { b1 += l1; }
            if (TILE > 2u) { b2 += l2; }
            if (TILE > 3u) { b3 += l3; }
            if (TILE > 4u) { b4 += l4; }
            if (TILE > 5u) { b5 += l5; }
            if (TILE > 6u) { b6 += l6; }
            if (TILE > 7u) { b7 += l7; }
            if (TILE > 8u) { b8 += l8; }
            if (TILE > 9u) { b9 += l9; }
            if (TILE > 10u) { b10 += l10; }
            if (TILE > 11u) { b11 += l11; }
            if (TILE > 12u) { b12 += l12; }
            if (TILE > 13u) { b13 += l13; }
            if (TILE > 14u) { b14 += l14; }
            if (TILE > 15u) { b15 += l15; }
        }
    }
    store(first + 0u, k0, a0);
    if (TILE > 1u) { store(first + 1u, k0, a1); }
    if (TILE > 2u) { store(first + 2u, k0, a2); }
    if (TILE > 3u) { store(first + 3u, k0, a3); }
    if (TILE > 4u) { store(first + 4u, k0, a4); }
    if (TILE > 5u) { store(first + 5u, k0, a5); }
    if (TILE > 6u) { store(first + 6u, k0, a6); }
    if (TILE > 7u) { store(first + 7u, k0, a7); }
    if (TILE > 8u) { store(first + 8u, k0, a8); }
    if (TILE > 9u) { store(first + 9u, k0, a9); }
    if (TILE > 10u) { store(first + 10u, k0, a10); }
    if (TILE > 11u) { store(first + 11u, k0, a11); }
    if (TILE > 12u) { store(first + 12u, k0, a12); }
    if (TILE > 13u) { store(first + 13u, k0, a13); }
    if (TILE > 14u) { store(first + 14u, k0, a14); }
    if (TILE > 15u) { store(first + 15u, k0, a15); }
    if (bias_column) {
        if (first + 0u < rows) { side[shape.ROW0 + first + 0u] = b0; }
        if (TILE > 1u && first + 1u < rows) { side[shape.ROW0 + first + 1u] = b1; }
        if (TILE > 2u && first + 2u < rows) { side[shape.ROW0 + first + 2u] = b2; }
        if (TILE > 3u && first + 3u < rows) { side[shape.ROW0 + first + 3u] = b3; }
        if (TILE > 4u && first + 4u < rows) { side[shape.ROW0 + first + 4u] = b4; }
        if (TILE > 5u && first + 5u < rows) { side[shape.ROW0 + first + 5u] = b5; }
        if (TILE > 6u && first + 6u < rows) { side[shape.ROW0 + first + 6u] = b6; }
        if (TILE > 7u && first + 7u < rows) { side[shape.ROW0 + first + 7u] = b7; }
        if (TILE > 8u && first + 8u < rows) { side[shape.ROW0 + first + 8u] = b8; }
        if (TILE > 9u && first + 9u < rows) { side[shape.ROW0 + first + 9u] = b9; }
        if (TILE > 10u && first + 10u < rows) { side[shape.ROW0 + first + 10u] = b10; }
        if (TILE > 11u && first + 11u < rows) { side[shape.ROW0 + first + 11u] = b11; }
        if (TILE > 12u && first + 12u < rows) { side[shape.ROW0 + first + 12u] = b12; }
        if (TILE > 13u && first + 13u < rows) { side[shape.ROW0 + first + 13u] = b13; }
        if (TILE > 14u && first + 14u < rows) { side[shape.ROW0 + first + 14u] = b14; }
        if (TILE > 15u && first + 15u < rows) { side[shape.ROW0 + first + 15u] = b15; }
    }
}
