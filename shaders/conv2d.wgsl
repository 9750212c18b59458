// Direct 2-D convolution over NCHW tensors, register-tiled: each invocation computes OC_TILE output
// channels for PX_TILE consecutive output positions (16 accumulators with OC_TILE = PX_TILE = 4),
// with bias, residual add and activation fused into the epilogue.
//
// Baked constants (prepended by the runtime): N, IC, IH, IW, OC, OH, OW, KH, KW, SY, SX, PT, PL,
// DY, DX, ICG (input channels per group), OCG (output channels per group), OC_TILE (4 when OCG is a
// multiple of 4, else 1), PX_TILE, HAS_BIAS, HAS_RESIDUAL, ACT, ACT_ARG.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> residual: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

const PIXELS: u32 = N * OH * OW;
const K: u32 = ICG * KH * KW;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let px0 = gid.x * PX_TILE;
    let oc0 = gid.y * OC_TILE;
    if (px0 >= PIXELS || oc0 >= OC) {
        return;
    }
    // Where each of the PX_TILE output positions reads from.
    var base: array<i32, PX_TILE>;
    var iy0: array<i32, PX_TILE>;
    var ix0: array<i32, PX_TILE>;
    var valid: array<bool, PX_TILE>;
    let group = oc0 / OCG;
    for (var p = 0u; p < PX_TILE; p++) {
        let px = px0 + p;
        valid[p] = px < PIXELS;
        let pc = min(px, PIXELS - 1u);
        let n = pc / (OH * OW);
        let rem = pc % (OH * OW);
        iy0[p] = i32((rem / OW) * SY) - i32(PT);
        ix0[p] = i32((rem % OW) * SX) - i32(PL);
        base[p] = i32((n * IC + group * ICG) * IH * IW);
    }
    var acc: array<array<f32, PX_TILE>, OC_TILE>;
    for (var ci = 0u; ci < ICG; ci++) {
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx < KW; kx++) {
                var xs: array<f32, PX_TILE>;
                for (var p = 0u; p < PX_TILE; p++) {
                    let y = iy0[p] + i32(ky * DY);
                    let x = ix0[p] + i32(kx * DX);
                    let inside = y >= 0 && y < i32(IH) && x >= 0 && x < i32(IW);
                    let index = base[p] + i32(ci * IH * IW) + y * i32(IW) + x;
                    xs[p] = select(0.0, input[u32(max(index, 0))], inside);
                }
                let k = (ci * KH + ky) * KW + kx;
                for (var o = 0u; o < OC_TILE; o++) {
                    let w = weight[min(oc0 + o, OC - 1u) * K + k];
                    for (var p = 0u; p < PX_TILE; p++) {
                        acc[o][p] += w * xs[p];
                    }
                }
            }
        }
    }
    for (var o = 0u; o < OC_TILE; o++) {
        let oc = oc0 + o;
        if (oc >= OC) {
            break;
        }
        var b = 0.0;
        if (HAS_BIAS) {
            b = bias[oc];
        }
        for (var p = 0u; p < PX_TILE; p++) {
            if (!valid[p]) {
                break;
            }
            let px = px0 + p;
            let n = px / (OH * OW);
            let rem = px % (OH * OW);
            let out_index = (n * OC + oc) * OH * OW + rem;
            var v = acc[o][p] + b;
            if (HAS_RESIDUAL) {
                v += residual[out_index];
            }
            output[out_index] = activate(v);
        }
    }
}
