// Gradients of a linear layer `[R, K] → [R, OUT]`, for the PART output features from ROW0 (all of
// them, or one block of rows of a weight too large for one binding), as a product `[A, S] · [S, K]`
// whose every invocation computes a 4 × 4 tile of the `[A, K]` result (each operand loaded once for
// four products; elements past the edges are clamped and not written), each element summed over s
// in order:
// MODE 0, the input gradient `dx[r, k] = Σ_o dy[r, ROW0 + o] · w[o, k]` over the block's rows o
// (`other` is the block of w; A = R, S = PART), added to `result` with ACCUMULATE (the blocks after
// the first, in order);
// MODE 1, the weight gradient `dw[o, k] = Σ_r dy[r, ROW0 + o] · x[r, k]` of the block (`other` is x;
// A = PART, S = R).
// With BIAS (MODE 1) the invocations of the first column tile also write the bias gradient
// `db[ROW0 + o] = Σ_r dy[r, ROW0 + o]` into `bias_grad`, summed in the same order.
// Where K (VEC_K) and OUT, ROW0 and PART (VEC_OUT) are multiples of 4, four consecutive floats are
// one vec4 load (on CPU drivers every storage load is a loop over the lanes, so fewer loads is most
// of the speed).
//
// Baked constants: MODE, BIAS, ACCUMULATE, VEC_K, VEC_OUT; extents in `shape`: R, K, OUT, ROW0, PART.

@group(0) @binding(0) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> other: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> result: array<f32>;
@group(0) @binding(3) var<storage, read_write> bias_grad: array<f32>;

fn dy_at(i: u32) -> f32 {
    return dy[i / 4u][i % 4u];
}

fn other_at(i: u32) -> f32 {
    return other[i / 4u][i % 4u];
}

// other[row + k.x], …, other[row + k.w] (k consecutive from k0 unless clamped at the edge).
fn other4(row: u32, k0: u32, k: vec4<u32>) -> vec4<f32> {
    if (VEC_K) {
        return other[(row + k0) / 4u];
    }
    return vec4<f32>(other_at(row + k.x), other_at(row + k.y), other_at(row + k.z), other_at(row + k.w));
}

// The left operand at (a.x, s), …, (a.w, s): dy[a, s] for the input gradient, dy[s, a] for the
// weight gradient.
fn lhs4(a0: u32, a: vec4<u32>, s: u32) -> vec4<f32> {
    if (MODE == 0u) {
        let o = shape.OUT;
        let t = shape.ROW0 + s;
        return vec4<f32>(dy_at(a.x * o + t), dy_at(a.y * o + t), dy_at(a.z * o + t), dy_at(a.w * o + t));
    }
    if (VEC_OUT) {
        return dy[(s * shape.OUT + shape.ROW0 + a0) / 4u];
    }
    let row = s * shape.OUT + shape.ROW0;
    return vec4<f32>(dy_at(row + a.x), dy_at(row + a.y), dy_at(row + a.z), dy_at(row + a.w));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    var rows = shape.R;
    var sums = shape.PART;
    if (MODE == 1u) {
        rows = shape.PART;
        sums = shape.R;
    }
    let col_tiles = (shape.K + 3u) / 4u;
    if (index >= ((rows + 3u) / 4u) * col_tiles) {
        return;
    }
    let a0 = (index / col_tiles) * 4u;
    let k0 = (index % col_tiles) * 4u;
    let a = min(vec4<u32>(a0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(rows - 1u));
    let k = min(vec4<u32>(k0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(shape.K - 1u));
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var bias_acc = vec4<f32>(0.0);
    let sums_bias = BIAS && k0 == 0u;
    if (MODE == 0u && VEC_OUT) {
        // Four sums at a time: each row of dy is read as vec4s along s.
        let o = shape.OUT / 4u;
        let first = shape.ROW0 / 4u;
        for (var s = 0u; s < sums; s += 4u) {
            let l0 = dy[a.x * o + first + s / 4u];
            let l1 = dy[a.y * o + first + s / 4u];
            let l2 = dy[a.z * o + first + s / 4u];
            let l3 = dy[a.w * o + first + s / 4u];
            for (var t = 0u; t < 4u; t++) {
                let b = other4((s + t) * shape.K, k0, k);
                acc0 += l0[t] * b;
                acc1 += l1[t] * b;
                acc2 += l2[t] * b;
                acc3 += l3[t] * b;
            }
        }
    } else {
        for (var s = 0u; s < sums; s++) {
            let b = other4(s * shape.K, k0, k);
            let l = lhs4(a0, a, s);
            if (sums_bias) {
                bias_acc += l;
            }
            acc0 += l.x * b;
            acc1 += l.y * b;
            acc2 += l.z * b;
            acc3 += l.w * b;
        }
    }
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    if (sums_bias) {
        for (var i = 0u; i < min(4u, rows - a0); i++) {
            bias_grad[shape.ROW0 + a0 + i] = bias_acc[i];
        }
    }
    for (var i = 0u; i < min(4u, rows - a0); i++) {
        for (var j = 0u; j < min(4u, shape.K - k0); j++) {
            let at = (a0 + i) * shape.K + k0 + j;
            if (ACCUMULATE) {
                result[at] += accs[i][j];
            } else {
                result[at] = accs[i][j];
            }
        }
    }
}
