// Cross-entropy over logits `[N, K]` with integer labels, mean reduction, label smoothing EPS and
// optional class weights (PyTorch's `cross_entropy`), times the head's weight in the loss (1 for the
// output, the declared `loss_weight` for an auxiliary head). One workgroup: each invocation takes
// items `local`, `local + 64`, …, writing each one's share of the loss at `shares[OFFSET + n]` and its
// row of dlogits. With COUNT_HITS (the output's head) it also writes at `shares[HITS + n]` whether
// the item's largest logit (the first, on ties, as `argmax` picks it) is its label's: 1 or 0.
// With SUM (the last head's dispatch) invocation 0 then adds the SHARES shares of all heads in order
// into the loss history, at the slot the step's `hyper[0]` names, and the N items' hits into the
// slot CAP places later: how many items the step's forward classified right. Earlier heads'
// dispatches wrote their shares before this one ran; this one's are seen after the barrier.
//
// Baked constants: EPS, HAS_WEIGHTS, WEIGHT, COUNT_HITS, SUM; extents in `shape` (baked too): N, K,
// OFFSET, HITS, SHARES, CAP.

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read> class_weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> shares: array<f32>;
@group(0) @binding(5) var<storage, read> hyper: array<f32>;
@group(0) @binding(6) var<storage, read_write> history: array<f32>;

fn weight(c: u32) -> f32 {
    if (HAS_WEIGHTS) {
        return class_weights[c];
    }
    return 1.0;
}

// Item n's share of the loss, its row of dlogits and (COUNT_HITS) its hit; `total_weight` is the
// sum of the batch's label weights (N without class weights), the mean's divisor.
fn item(n: u32, total_weight: f32) {
    let row = n * shape.K;
    let y = labels[n];
    var m = -3.402823466e+38;
    var best = 0u;
    for (var c = 0u; c < shape.K; c++) {
        let v = logits[row + c];
        if (v > logits[row + best]) {
            best = c;
        }
        m = max(m, v);
    }
    if (COUNT_HITS) {
        shares[shape.HITS + n] = select(0.0, 1.0, best == y);
    }
    var sum = 0.0;
    for (var c = 0u; c < shape.K; c++) {
        sum += exp(logits[row + c] - m);
    }
    let log_sum = log(sum) + m;
    let k = f32(shape.K);
    var loss = 0.0;
    var dsum = 0.0;
    for (var c = 0u; c < shape.K; c++) {
        let aim = select(0.0, (1.0 - EPS) * weight(y), c == y) + EPS / k * weight(c);
        loss -= aim * (logits[row + c] - log_sum);
        dsum += aim;
    }
    for (var c = 0u; c < shape.K; c++) {
        let aim = select(0.0, (1.0 - EPS) * weight(y), c == y) + EPS / k * weight(c);
        dlogits[row + c] = WEIGHT * (exp(logits[row + c] - log_sum) * dsum - aim) / total_weight;
    }
    shares[shape.OFFSET + n] = WEIGHT * loss / total_weight;
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) local: u32) {
    var total_weight = 0.0;
    for (var i = 0u; i < shape.N; i++) {
        total_weight += weight(labels[i]);
    }
    // A loop uniform across the workgroup, so that the barrier after it is reached by all.
    for (var first = 0u; first < shape.N; first += 64u) {
        if (first + local < shape.N) {
            item(first + local, total_weight);
        }
    }
    if (SUM) {
        storageBarrier();
        if (local == 0u) {
            var total = 0.0;
            for (var i = 0u; i < shape.SHARES; i++) {
                total += shares[i];
            }
            var hits = 0.0;
            for (var i = 0u; i < shape.N; i++) {
                hits += shares[shape.HITS + i];
            }
            let slot = bitcast<u32>(hyper[0]);
            history[slot] = total;
            history[shape.CAP + slot] = hits;
        }
    }
}
