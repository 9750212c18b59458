// Softmax over channels: one invocation per (batch item, position), max-subtracted for stability.
//
// Baked constants: N, C, P, ACT, ACT_ARG.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= N * P) {
        return;
    }
    let n = index / P;
    let p = index % P;
    var m = -3.402823466e+38;
    for (var c = 0u; c < C; c++) {
        m = max(m, input[(n * C + c) * P + p]);
    }
    var sum = 0.0;
    for (var c = 0u; c < C; c++) {
        sum += exp(input[(n * C + c) * P + p] - m);
    }
    for (var c = 0u; c < C; c++) {
        let at = (n * C + c) * P + p;
        output[at] = activate(exp(input[at] - m) / sum);
    }
}
