// 1×1 convolution (stride 1, no padding, groups = 1) as a GEMM, reading the input and the weights
// through textures. The input is its value's rgba32float mirror (texel t holds floats 4t..4t+3), so
// 4 positions of one channel are one texel fetch; the weights are transposed at load time to
// [IC][OC16] and stored as texels, so one input channel's 16 weights are four fetches. Each
// invocation computes 4 positions × 16 output channels in 16 named vec4 accumulators.
//
// Texture fetches are vectorised on CPU drivers (lavapipe), where storage-buffer loads inside loops
// run one lane at a time; on GPUs they go through the texture cache. Used when positions per image
// are a multiple of 4 and the tensors fit a texture (else `pointwise.wgsl`).
//
// Baked constants (they shape the code): PARTIAL_TILE (OC not a multiple of 16), TEX_W (texture width
// in texels), HAS_BIAS, HAS_RESIDUAL, ACT, ACT_ARG. Extents in the `shape` uniform (so layers of
// different sizes share one compiled pipeline): N, IC, OC, OC16 (OC rounded up to 16), P4 (positions
// per image / 4), OUT_C and OUT_OFFSET (the output's channels and this result's first one: a
// concat's slice, or OC and 0).

@group(0) @binding(0) var input: texture_2d<f32>;
@group(0) @binding(1) var weight: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> residual: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> output: array<vec4<f32>>;

fn texel(t: texture_2d<f32>, i: u32) -> vec4<f32> {
    return textureLoad(t, vec2<u32>(i % TEX_W, i / TEX_W), 0);
}

// (Only a partial last tile has channels past OC.)
fn store(n: u32, oc: u32, p4: u32, value: vec4<f32>) {
    if (PARTIAL_TILE && oc >= shape.OC) {
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
    output[at] = vec4<f32>(finish(v.x), finish(v.y), finish(v.z), finish(v.w));
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
    let w0 = oc0 / 4u;
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
    let row_texels = shape.OC16 / 4u;
    for (var ci = 0u; ci < shape.IC; ci++) {
        let v = texel(input, src + ci * shape.P4);
        let row = ci * row_texels + w0;
        let wa = texel(weight, row);
        let wb = texel(weight, row + 1u);
        let wc = texel(weight, row + 2u);
        let wd = texel(weight, row + 3u);
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
