// Direct 2-D convolution over NCHW tensors. Each invocation computes 4 consecutive output positions
// (flattened over batch and space) for OC_TILE output channels (4 when the group's output channels
// are a multiple of 4, else 1), in named vec4 accumulators — one per output channel, one lane per
// position — so nothing spills. Bias, a residual add and the activation run in the epilogue.
//
// Baked constants: N, IC, IH, IW, OC, OH, OW, KH, KW, SY, SX, PT, PL, DY, DX, ICG, OCG, OC_TILE,
// OUT_C, OUT_OFFSET (the output's channels and this result's first one: a concat's slice, or OC
// and 0), HAS_BIAS, HAS_RESIDUAL, ACT, ACT_ARG.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> residual: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

const PIXELS: u32 = N * OH * OW;
const K: u32 = ICG * KH * KW;

// The input value at (channel plane `plane`, row y, column x), zero outside the image.
fn tap(plane: i32, y: i32, x: i32) -> f32 {
    let inside = y >= 0 && y < i32(IH) && x >= 0 && x < i32(IW);
    return select(0.0, input[u32(max(plane + y * i32(IW) + x, 0))], inside);
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

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let px0 = gid.x * 4u;
    let oc0 = gid.y * OC_TILE;
    if (px0 >= PIXELS || oc0 >= OC) {
        return;
    }
    let group = oc0 / OCG;
    let t = taps(px0, group);
    let w0 = min(oc0, OC - 1u) * K;
    let w1 = min(oc0 + 1u, OC - 1u) * K;
    let w2 = min(oc0 + 2u, OC - 1u) * K;
    let w3 = min(oc0 + 3u, OC - 1u) * K;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
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
                let k = (ci * KH + ky) * KW + kx;
                a0 += v * weight[w0 + k];
                if (OC_TILE == 4u) {
                    a1 += v * weight[w1 + k];
                    a2 += v * weight[w2 + k];
                    a3 += v * weight[w3 + k];
                }
            }
        }
    }
    store(px0, oc0, a0.x);
    store(px0 + 1u, oc0, a0.y);
    store(px0 + 2u, oc0, a0.z);
    store(px0 + 3u, oc0, a0.w);
    if (OC_TILE == 4u) {
        store(px0, oc0 + 1u, a1.x);
        store(px0 + 1u, oc0 + 1u, a1.y);
        store(px0 + 2u, oc0 + 1u, a1.z);
        store(px0 + 3u, oc0 + 1u, a1.w);
        store(px0, oc0 + 2u, a2.x);
        store(px0 + 1u, oc0 + 2u, a2.y);
        store(px0 + 2u, oc0 + 2u, a2.z);
        store(px0 + 3u, oc0 + 2u, a2.w);
        store(px0, oc0 + 3u, a3.x);
        store(px0 + 1u, oc0 + 3u, a3.y);
        store(px0 + 2u, oc0 + 3u, a3.z);
        store(px0 + 3u, oc0 + 3u, a3.w);
    }
}
