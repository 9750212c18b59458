// Gradients of a linear layer `[R, K] → [R, OUT]`, as a product `[A, S] · [S, K]` whose every
// invocation computes a 4 × 4 tile of the `[A, K]` result (each operand loaded once for four
// products; elements past the edges are clamped and not written), each element summed over s in
// order:
// MODE 0, the input gradient `dx[r, k] = Σ_o dy[r, o] · w[o, k]` (`other` is w; A = R, S = OUT);
// MODE 1, the weight gradient `dw[o, k] = Σ_r dy[r, o] · x[r, k]` (`other` is x; A = OUT, S = R).
//
// Baked constants: MODE; extents in `shape`: R, K, OUT.

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> other: array<f32>;
@group(0) @binding(2) var<storage, read_write> result: array<f32>;

// The left operand at (a, s): dy[a, s] for the input gradient, dy[s, a] for the weight gradient.
fn lhs(a: u32, s: u32) -> f32 {
    if (MODE == 0u) {
        return dy[a * shape.OUT + s];
    }
    return dy[s * shape.OUT + a];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    var rows = shape.R;
    var sums = shape.OUT;
    if (MODE == 1u) {
        rows = shape.OUT;
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
    for (var s = 0u; s < sums; s++) {
        let row = s * shape.K;
        let b = vec4<f32>(other[row + k.x], other[row + k.y], other[row + k.z], other[row + k.w]);
        acc0 += lhs(a.x, s) * b;
        acc1 += lhs(a.y, s) * b;
        acc2 += lhs(a.z, s) * b;
        acc3 += lhs(a.w, s) * b;
    }
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < min(4u, rows - a0); i++) {
        for (var j = 0u; j < min(4u, shape.K - k0); j++) {
            result[(a0 + i) * shape.K + k0 + j] = accs[i][j];
        }
    }
}
