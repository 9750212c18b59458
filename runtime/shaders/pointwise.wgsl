// 1×1 convolution with stride 1 and no padding, as a GEMM over vec4s: the positions of one image
// are contiguous, so 4 of them load and store as one vec4. Each invocation computes 4 positions ×
// 16 output channels in 16 named vec4 accumulators. The weights are transposed at load time to
// [IC][OC8] (OC padded to a multiple of 16), so one input channel's 16 weights are four vec4 loads.
// Used when groups = 1 and positions per image are a multiple of 4.
//
// Baked constants: HAS_BIAS, HAS_RESIDUAL, ACT, ACT_ARG; extents in `shape`: N, IC, OC, OC8 (OC
// rounded up to 16), P4 (positions per image / 4), OUT_C, OUT_OFFSET (the output's channels and this
// result's first one: a concat's slice, or OC and 0).

@group(0) @binding(0) var<storage, read> input: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> output: array<vec4<f32>>;

fn store(n: u32, oc: u32, p4: u32, value: vec4<f32>) {
    if (oc >= shape.OC) {
        return;
    }
    var v = value;
    if (HAS_BIAS) {
        v += vec4<f32>(bias[oc]);
    }
    if (HAS_RESIDUAL) {
        v += residual[(n * shape.OC + oc) * shape.P4 + p4];
    }
    let at = (n * shape.OUT_C + shape.OUT_OFFSET + oc) * shape.P4 + p4;
    output[at] = vec4<f32>(activate(sum_sign(v.x)), activate(sum_sign(v.y)), activate(sum_sign(v.z)), activate(sum_sign(v.w)));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let tile = gid.x;
    if (tile >= shape.N * shape.P4) {
        return;
    }
    let n = tile / shape.P4;
    let p4 = tile % shape.P4;
    let oc0 = gid.y * 16u;
    let src = n * shape.IC * shape.P4 + p4;
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
    for (var ci = 0u; ci < shape.IC; ci++) {
        let v = input[src + ci * shape.P4];
        let wa = weight[(ci * shape.OC8 + oc0) / 4u];
        let wb = weight[(ci * shape.OC8 + oc0) / 4u + 1u];
        let wc = weight[(ci * shape.OC8 + oc0) / 4u + 2u];
        let wd = weight[(ci * shape.OC8 + oc0) / 4u + 3u];
        a0 += v * wa.x;
        a1 += v * wa.y;
        a2 += v * wa.z;
        a3 += v * wa.w;
        a4 += v * wb.x;
        a5 += v * wb.y;
        a6 += v * wb.z;
        a7 += v * wb.w;
        a8 += v * wc.x;
        a9 += v * wc.y;
        a10 += v * wc.z;
        a11 += v * wc.w;
        a12 += v * wd.x;
        a13 += v * wd.y;
        a14 += v * wd.z;
        a15 += v * wd.w;
    }
    store(n, oc0, p4, a0);
    store(n, oc0 + 1u, p4, a1);
    store(n, oc0 + 2u, p4, a2);
    store(n, oc0 + 3u, p4, a3);
    store(n, oc0 + 4u, p4, a4);
    store(n, oc0 + 5u, p4, a5);
    store(n, oc0 + 6u, p4, a6);
    store(n, oc0 + 7u, p4, a7);
    store(n, oc0 + 8u, p4, a8);
    store(n, oc0 + 9u, p4, a9);
    store(n, oc0 + 10u, p4, a10);
    store(n, oc0 + 11u, p4, a11);
    store(n, oc0 + 12u, p4, a12);
    store(n, oc0 + 13u, p4, a13);
    store(n, oc0 + 14u, p4, a14);
    store(n, oc0 + 15u, p4, a15);
}
