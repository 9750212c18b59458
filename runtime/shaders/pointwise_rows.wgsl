// 1×1 convolution with stride 1 and no padding, as `pointwise.wgsl` computes it, for any number of
// positions per image: each invocation computes 4 consecutive positions of the flattened (item,
// position) index, which may straddle two images, read and written as scalars, × 16 output channels
// in 16 named vec4 accumulators (one lane per position). Positions past the end are clamped to the
// last one: they compute its value again and store it to the same place. Weights laid out [IC][OC8]
// as for `pointwise.wgsl`.
//
// Baked constants: HAS_BIAS, ACT, ACT_ARG; extents in `shape`: N, IC, OC, OC8 (OC rounded up to 16),
// P (positions per image).

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

fn store(at: vec4<u32>, oc: u32, value: vec4<f32>) {
    if (oc >= shape.OC) {
        return;
    }
    var v = value;
    if (HAS_BIAS) {
        v += vec4<f32>(bias[oc]);
    }
    let o = at + vec4<u32>(oc * shape.P);
    output[o.x] = activate(sum_sign(v.x));
    output[o.y] = activate(sum_sign(v.y));
    output[o.z] = activate(sum_sign(v.z));
    output[o.w] = activate(sum_sign(v.w));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let total = shape.N * shape.P;
    let q0 = gid.x * 4u;
    if (q0 >= total) {
        return;
    }
    let q = min(vec4<u32>(q0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(total - 1u));
    let n = q / vec4<u32>(shape.P);
    let p = q - n * vec4<u32>(shape.P);
    let src = n * vec4<u32>(shape.IC * shape.P) + p;
    let dst = n * vec4<u32>(shape.OC * shape.P) + p;
    let oc0 = gid.y * 16u;
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
        let at = src + vec4<u32>(ci * shape.P);
        let v = vec4<f32>(input[at.x], input[at.y], input[at.z], input[at.w]);
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
    store(dst, oc0 + 0u, a0);
    store(dst, oc0 + 1u, a1);
    store(dst, oc0 + 2u, a2);
    store(dst, oc0 + 3u, a3);
    store(dst, oc0 + 4u, a4);
    store(dst, oc0 + 5u, a5);
    store(dst, oc0 + 6u, a6);
    store(dst, oc0 + 7u, a7);
    store(dst, oc0 + 8u, a8);
    store(dst, oc0 + 9u, a9);
    store(dst, oc0 + 10u, a10);
    store(dst, oc0 + 11u, a11);
    store(dst, oc0 + 12u, a12);
    store(dst, oc0 + 13u, a13);
    store(dst, oc0 + 14u, a14);
    store(dst, oc0 + 15u, a15);
}
