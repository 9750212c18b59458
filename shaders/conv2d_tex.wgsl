// Direct 2-D convolution over NCHW tensors, reading the input and the weights through textures.
// The input is its value's r32float mirror (texel i holds float i); the weights are regrouped at load
// time to [OC / OC_TILE][K][OC_TILE] and stored as rgba32float texels (OC_TILE 16 or 4: one to four
// texels per tap; OC_TILE 1: the weight in `.x`). Each invocation computes 4 consecutive output
// positions (flattened over batch and space) for OC_TILE output channels, one named vec4
// accumulator per output channel. Bias, a residual add and the activation run in the epilogue.
//
// Texture fetches are vectorised on CPU drivers (lavapipe), where storage-buffer loads inside loops
// run one lane at a time. Used when the tensors fit a texture (else `conv2d.wgsl`).
//
// Baked constants: N, IC, IH, IW, OC, OH, OW, KH, KW, SY, SX, PT, PL, DY, DX, ICG, OCG, OC_TILE
// (16 or 4 when the group's output channels are a multiple of it, else 1), OUT_C, OUT_OFFSET (the
// output's channels and this result's first one: a concat's slice, or OC and 0), TEX_W (texture
// width in texels), HAS_BIAS, HAS_RESIDUAL, ACT, ACT_ARG.

@group(0) @binding(0) var input: texture_2d<f32>;
@group(0) @binding(1) var weight: texture_2d<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> residual: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

const PIXELS: u32 = N * OH * OW;
const K: u32 = ICG * KH * KW;
const IN_LEN: u32 = N * IC * IH * IW;
const W_TEXELS: u32 = max(OC_TILE / 4u, 1u);

fn texel(t: texture_2d<f32>, i: u32) -> vec4<f32> {
    return textureLoad(t, vec2<u32>(i % TEX_W, i / TEX_W), 0);
}

// The input value at (channel plane `plane`, row y, column x), zero outside the image.
fn tap(plane: i32, y: i32, x: i32) -> f32 {
    let inside = y >= 0 && y < i32(IH) && x >= 0 && x < i32(IW);
    let i = min(u32(max(plane + y * i32(IW) + x, 0)), IN_LEN - 1u);
    return select(0.0, texel(input, i).x, inside);
}

fn store(px: u32, oc: u32, value: f32) {
    if (px >= PIXELS || oc >= OC) {
        return;
    }
    let n = px / (OH * OW);
    let spatial = px % (OH * OW);
    var v = value;
    if (HAS_BIAS) {
        v += bias[oc];
    }
    if (HAS_RESIDUAL) {
        v += residual[(n * OC + oc) * OH * OW + spatial];
    }
    output[(n * OUT_C + OUT_OFFSET + oc) * OH * OW + spatial] = activate(v);
}

fn store4(px0: u32, oc: u32, a: vec4<f32>) {
    store(px0, oc, a.x);
    store(px0 + 1u, oc, a.y);
    store(px0 + 2u, oc, a.z);
    store(px0 + 3u, oc, a.w);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let px0 = gid.x * 4u;
    let oc0 = gid.y * OC_TILE;
    if (px0 >= PIXELS || oc0 >= OC) {
        return;
    }
    let group = oc0 / OCG;
    let t = taps(px0, group);
    let wbase = gid.y * K * W_TEXELS;
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
    for (var ci = 0u; ci < ICG; ci++) {
        let plane = i32(ci * IH * IW);
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
    store4(px0, oc0, a0);
    if (OC_TILE >= 4u) {
        store4(px0, oc0 + 1u, a1);
        store4(px0, oc0 + 2u, a2);
        store4(px0, oc0 + 3u, a3);
    }
    if (OC_TILE == 16u) {
        store4(px0, oc0 + 4u, a4);
        store4(px0, oc0 + 5u, a5);
        store4(px0, oc0 + 6u, a6);
        store4(px0, oc0 + 7u, a7);
        store4(px0, oc0 + 8u, a8);
        store4(px0, oc0 + 9u, a9);
        store4(px0, oc0 + 10u, a10);
        store4(px0, oc0 + 11u, a11);
        store4(px0, oc0 + 12u, a12);
        store4(px0, oc0 + 13u, a13);
        store4(px0, oc0 + 14u, a14);
        store4(px0, oc0 + 15u, a15);
    }
}
