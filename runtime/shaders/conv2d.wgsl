// Direct 2-D convolution over NCHW tensors, read from storage buffers (the fallback when a tensor does
// not fit a texture; see `conv2d_tex.wgsl`). Each invocation computes 4 consecutive output positions
// (flattened over batch and space) for OC_TILE output channels (4 when the group's output channels
// are a multiple of 4 or there is one group, else 1), in named vec4 accumulators — one per output
// channel, one lane per position — so nothing spills. Bias, a residual add and the activation run in
// the epilogue (`conv_store.wgsl`).
//
// Baked constants: KH, KW, DY, DX, OC_TILE, PARTIAL_TILE (one group whose channels end in a partial
// tile: its missing channels read the last one's weights and are not stored), HAS_BIAS, HAS_RESIDUAL,
// ACT, ACT_ARG. In the `shape` uniform: as for `conv2d_tex.wgsl`.

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;

// The input value at (channel plane `plane`, row y, column x), zero outside the image.
fn tap(plane: i32, y: i32, x: i32) -> f32 {
    let inside = y >= 0 && y < i32(shape.IH) && x >= 0 && x < i32(shape.IW);
    return select(0.0, input[min(u32(max(plane + y * i32(shape.IW) + x, 0)), shape.IN_LEN - 1u)], inside);
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
    let w0 = min(oc0, shape.OC - 1u) * shape.K;
    let w1 = min(oc0 + 1u, shape.OC - 1u) * shape.K;
    let w2 = min(oc0 + 2u, shape.OC - 1u) * shape.K;
    let w3 = min(oc0 + 3u, shape.OC - 1u) * shape.K;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
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
    let d = dest(px0);
    store4(d, oc0, a0);
    if (OC_TILE == 4u) {
        store4(d, oc0 + 1u, a1);
        store4(d, oc0 + 2u, a2);
        store4(d, oc0 + 3u, a3);
    }
}
