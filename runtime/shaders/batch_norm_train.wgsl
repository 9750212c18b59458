// Batch-norm in training mode over `[N, C, P]`, PyTorch's `BatchNorm2d` in `train()`, after
// `batch_norm_partials`. MODE 0: one invocation per channel adds the channel's partial sums in order
// (N·K of each), and from them writes the batch mean and biased variance with the normalising scale
// `γ/√(var + ε)` and shift `β − mean·scale` to `stats` ([mean | var | scale | shift], C each), and
// updates the running statistics: `running = (1 − momentum)·running + momentum·batch`, with the
// unbiased variance. MODE 1: one invocation per element applies `y = x·scale + shift`.
//
// Baked constants: MODE, EPS, MOMENTUM; extents in `shape`: N, C, P, K.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> running_var: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x + gid.y * 65535u * 64u;
    let C = shape.C;
    if (c >= C) {
        return;
    }
    let nk = shape.N * shape.K;
    var sum = 0.0;
    var squares = 0.0;
    for (var i = 0u; i < nk; i++) {
        sum += partials[c * nk + i];
        squares += partials[(C + c) * nk + i];
    }
    let count = f32(shape.N * shape.P);
    let shifted_mean = sum / count;
    let mean = x[c * shape.P] + shifted_mean;
    let variance = max(squares / count - shifted_mean * shifted_mean, 0.0);
    let scale = gamma[c] / sqrt(variance + EPS);
    stats[c] = mean;
    stats[C + c] = variance;
    stats[2u * C + c] = scale;
    stats[3u * C + c] = beta[c] - mean * scale;
    running_mean[c] = (1.0 - MOMENTUM) * running_mean[c] + MOMENTUM * mean;
    running_var[c] = (1.0 - MOMENTUM) * running_var[c] + MOMENTUM * variance * count / (count - 1.0);
}
