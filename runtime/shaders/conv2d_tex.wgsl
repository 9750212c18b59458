// Direct 2-D convolution over NCHW tensors, reading the input and the weights through textures.
// The input is its value's r32float mirror (texel i holds float i); the weights are regrouped at load
// time to [OC / OC_TILE][K][OC_TILE] and stored as rgba32float texels (OC_TILE 16 or 4: one to four
// texels per tap; OC_TILE 1: the weight in `.x`). Each invocation computes 4 consecutive output
// positions (flattened over batch and space) for OC_TILE output channels, one named vec4
// accumulator per output channel. Bias, a residual add and the activation run in the epilogue, whose
// `dest` and `store4` come from `conv_store.wgsl` (any positions) or `conv_store_vec4.wgsl` (positions
// per image a multiple of 4: one vec4 load and store per channel instead of four scalar ones).
//
// Texture fetches are vectorised on CPU drivers (lavapipe), where storage-buffer loads inside loops
// run one lane at a time. Used when the tensors fit a texture (else `conv2d.wgsl`).
//
// Baked constants (they shape the code): KH, KW, DY, DX, OC_TILE (16 or 4 when the group's output
// channels are a multiple of it, else 1), PARTIAL_TILE (OC not a multiple of OC_TILE), TEX_W (texture
// width in texels), HAS_BIAS, HAS_RESIDUAL, ACT, ACT_ARG.
// In the `shape` uniform (so layers of different sizes share one compiled pipeline): SY, SX, PT, PL
// (used once per invocation), IC, IH, IW, OC, OW, ICG, OCG, OUT_C and OUT_OFFSET (the output's
// channels and this result's first one: a concat's slice, or OC and 0), PIXELS (N·OH·OW), PLANE
// (OH·OW), IN_PLANE (IH·IW), IN_LEN (N·IC·IH·IW), K (ICG·KH·KW), and the activation bounds
// (`epilogue.wgsl`).

@group(0) @binding(0) var input: texture_2d<f32>;
@group(0) @binding(1) var weight: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;

const W_TEXELS: u32 = max(OC_TILE / 4u, 1u);

fn texel(t: texture_2d<f32>, i: u32) -> vec4<f32> {
    return textureLoad(t, vec2<u32>(i % TEX_W, i / TEX_W), 0);
}

// The input value at (channel plane `plane`, row y, column x), zero outside the image.
fn tap(plane: i32, y: i32, x: i32) -> f32 {
    let inside = y >= 0 && y < i32(shape.IH) && x >= 0 && x < i32(shape.IW);
    let i = min(u32(max(plane + y * i32(shape.IW) + x, 0)), shape.IN_LEN - 1u);
    return select(0.0, texel(input, i).x, inside);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let px0 = gid.x * 4u;
    let oc0 = gid.y * OC_TILE;
    if (px0 >= shape.PIXELS || oc0 >= shape.OC) {
        return;
    }
    let group = oc0 / shape.OCG;
    let t = taps(px0, group);
    let wbase = gid.y * shape.K * W_TEXELS;
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
    for (var ci = 0u; ci < shape.ICG; ci++) {
        let plane = i32(ci * shape.IN_PLANE);
        for (var ky = 0u; ky < KH; ky++) {
            let dy = i32(ky * DY);
            for (var kx = 0u; kx < KW; kx++) {
                let dx = i32(kx * DX);
                let v = vec4<f32>(
                    tap(t.base.x + plane, t.y.x + dy, t.x.x + dx),
                    tap(t.base.y + plane, t.y.y + dy, t.x.y + dx),
                    tap(t.base.z + plane, t.y.z + dy, t.x.z + dx),
                    tap(t.base.w + plane, t.y.w + dy, t.x.w + dx),
                );
                let w = wbase + ((ci * KH + ky) * KW + kx) * W_TEXELS;
                let wa = texel(weight, w);
                a0 += v * wa.x;
                if (OC_TILE >= 4u) {
                    a1 += v * wa.y;
                    a2 += v * wa.z;
                    a3 += v * wa.w;
                }
                if (OC_TILE == 16u) {
                    let wb = texel(weight, w + 1u);
                    let wc = texel(weight, w + 2u);
                    let wd = texel(weight, w + 3u);
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
            }
        }
    }
    let d = dest(px0);
    store4(d, oc0, a0);
    if (OC_TILE >= 4u) {
        store4(d, oc0 + 1u, a1);
        store4(d, oc0 + 2u, a2);
        store4(d, oc0 + 3u, a3);
    }
    if (OC_TILE == 16u) {
        store4(d, oc0 + 4u, a4);
        store4(d, oc0 + 5u, a5);
        store4(d, oc0 + 6u, a6);
        store4(d, oc0 + 7u, a7);
        store4(d, oc0 + 8u, a8);
        store4(d, oc0 + 9u, a9);
        store4(d, oc0 + 10u, a10);
        store4(d, oc0 + 11u, a11);
        store4(d, oc0 + 12u, a12);
        store4(d, oc0 + 13u, a13);
        store4(d, oc0 + 14u, a14);
        store4(d, oc0 + 15u, a15);
    }
}
