// Local response normalisation across channels (PyTorch's local_response_norm):
// y = x / (K + ALPHA · Σ x² / SIZE)^BETA over channels [c − SIZE/2, c + (SIZE−1)/2].
//
// Baked constants: N, C, P, SIZE, ALPHA, BETA, K, ACT, ACT_ARG.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= N * C * P) {
        return;
    }
    let n = index / (C * P);
    let c = (index / P) % C;
    let p = index % P;
    let lo = max(i32(c) - i32(SIZE / 2u), 0);
    let hi = min(i32(c) + i32((SIZE - 1u) / 2u) + 1, i32(C));
    var sum = 0.0;
    for (var cc = lo; cc < hi; cc++) {
        let v = input[(n * C + u32(cc)) * P + p];
        sum += v * v;
    }
    // In PyTorch's order: the average of the squares, · ALPHA + K, then the power.
    let base = (sum / f32(SIZE)) * ALPHA + K;
    let x = input[index];
    var y = x / pow(base, BETA);
    // pow is exp2(β·log2(b)) on some drivers, which loses NaN and infinity. PyTorch's pow: b⁰ is
    // 1 for every b; NaN^β is NaN; ∞^β is ∞ for β > 0 (x / ∞: ±0, NaN for an infinite x) and 0
    // for β < 0 (x / 0: ±∞, NaN for a zero x).
    if (BETA == 0.0) {
        y = x;
    } else if (is_nan(base) || is_nan(x)) {
        y = nan();
    } else if (is_inf(base) && BETA > 0.0) {
        y = select(x / base, nan(), is_inf(x));
    } else if (is_inf(base)) {
        y = select(sign(x) * bitcast<f32>(0x7f800000u), nan(), x == 0.0);
    }
    output[index] = activate(y);
}
