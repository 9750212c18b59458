// Input gradient of a convolution: one invocation per input element gathers dy · w over the
// output positions whose window reads it (taps that do not land on a stride step are skipped).
//
// Baked constants: KH, KW, DY, DX; extents in `shape`: N, IC, IH, IW, OC, OH, OW, ICG, OCG, SY, SX, PT, PL.

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= shape.N * shape.IC * shape.IH * shape.IW) {
        return;
    }
    let ix = index % shape.IW;
    let iy = (index / shape.IW) % shape.IH;
    let ci = (index / (shape.IW * shape.IH)) % shape.IC;
    let n = index / (shape.IW * shape.IH * shape.IC);
    let g = ci / shape.ICG;
    let cig = ci % shape.ICG;
    var acc = 0.0;
    for (var o = g * shape.OCG; o < (g + 1u) * shape.OCG; o++) {
        for (var ky = 0u; ky < KH; ky++) {
            let ty = i32(iy + shape.PT) - i32(ky * DY);
            if (ty < 0 || u32(ty) % shape.SY != 0u || u32(ty) / shape.SY >= shape.OH) {
                continue;
            }
            let oy = u32(ty) / shape.SY;
            for (var kx = 0u; kx < KW; kx++) {
                let tx = i32(ix + shape.PL) - i32(kx * DX);
                if (tx < 0 || u32(tx) % shape.SX != 0u || u32(tx) / shape.SX >= shape.OW) {
                    continue;
                }
                let ox = u32(tx) / shape.SX;
                acc += dy[((n * shape.OC + o) * shape.OH + oy) * shape.OW + ox]
                    * weight[((o * shape.ICG + cig) * KH + ky) * KW + kx];
            }
        }
    }
    dx[index] = acc;
}
