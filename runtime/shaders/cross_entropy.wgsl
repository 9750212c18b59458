// Cross-entropy over logits `[N, K]` with integer labels, mean reduction, label smoothing EPS and
// optional class weights (PyTorch's `cross_entropy`), times the head's weight in the loss (1 for the
// output, the declared `loss_weight` for an auxiliary head): one invocation per item writes its share
// of the loss at `shares[OFFSET + n]` and its row of dlogits (`loss_sum` then adds the shares).
// With COUNT_HITS (the output's head) it also writes at `shares[HITS + n]` whether the item's
// largest logit (the first, on ties, as `argmax` picks it) is its label's: 1 or 0.
//
// Baked constants: EPS, HAS_WEIGHTS, WEIGHT, COUNT_HITS; extents in `shape`: N, K, OFFSET, HITS.

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read> class_weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> shares: array<f32>;

fn weight(c: u32) -> f32 {
    if (HAS_WEIGHTS) {
        return class_weights[c];
    }
    return 1.0;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.x + gid.y * 65535u * 64u;
    if (n >= shape.N) {
        return;
    }
    var total_weight = 0.0;
    for (var i = 0u; i < shape.N; i++) {
        total_weight += weight(labels[i]);
    }
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
