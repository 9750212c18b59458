// Channel-mapped copies over [N, C, P] tensors: concatenation (each input written into its slice of
// the output), chunk (a slice of the input) and channel shuffle (view(N, G, C/G, P) → transpose).
// Output channel of input channel c: OUT_OFFSET + shuffle(c); input channel read: IN_OFFSET + c.
//
// Baked constants: N, C (channels copied), P, IN_C, OUT_C, IN_OFFSET, OUT_OFFSET, SHUFFLE_GROUPS (0: none).

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
    var oc = c;
    if (SHUFFLE_GROUPS > 0u) {
        let per_group = C / max(SHUFFLE_GROUPS, 1u);
        oc = (c % per_group) * SHUFFLE_GROUPS + c / per_group;
    }
    output[(n * OUT_C + OUT_OFFSET + oc) * P + p] = input[(n * IN_C + IN_OFFSET + c) * P + p];
}
