// The weights of a stride-1 convolution's input gradient, run as a forward convolution of the output
// gradient: `w'[g·ICG + i][o][kh][kw] = w[g·OCG + o][i][KH−1−kh][KW−1−kw]` (input and output channels
// swapped within each group, taps flipped). One invocation per element.
//
// Baked constants: KH, KW; extents in `shape`: ICG, OCG, LEN (all weights).

@group(0) @binding(0) var<storage, read> weight: array<f32>;
@group(0) @binding(1) var<storage, read_write> flipped: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= shape.LEN) {
        return;
    }
    let kw = index % KW;
    let kh = (index / KW) % KH;
    let o = (index / (KW * KH)) % shape.OCG;
    let c = index / (KW * KH * shape.OCG);
    let g = c / shape.ICG;
    let i = c % shape.ICG;
    flipped[index] = weight[(((g * shape.OCG + o) * shape.ICG + i) * KH + (KH - 1u - kh)) * KW + (KW - 1u - kw)];
}
