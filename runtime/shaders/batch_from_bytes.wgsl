// A training batch made from images held on the device as bytes. Item n of the batch is held image
// `placements[n].x`, its pixels moved as the placement says (`runtime/src/data/augment.rs`: pixel
// (y, x) of the result is image pixel (top + y, left + step·x) = (.y + y, .z + .w·x), a zero where
// that lies outside the image) and normalised through `table` (`Transform::normalized_bytes`: entry
// c·256 + v is byte v of channel c), so the batch equals the host's bit for bit.
//
// Baked constants: C, H, W (each held image), OUT_H, OUT_W; extents in `shape`: LEN (the batch's floats).

@group(0) @binding(0) var<storage, read> images: array<u32>;
@group(0) @binding(1) var<storage, read> placements: array<vec4<i32>>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> batch: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= shape.LEN) {
        return;
    }
    let x = index % OUT_W;
    let y = (index / OUT_W) % OUT_H;
    let c = (index / (OUT_W * OUT_H)) % C;
    let n = index / (OUT_W * OUT_H * C);
    let at = placements[n];
    let sy = at.y + i32(y);
    let sx = at.z + at.w * i32(x);
    var value = 0u;
    if (sy >= 0 && sy < i32(H) && sx >= 0 && sx < i32(W)) {
        // Four bytes to a word, the first in the lowest bits.
        let byte = ((u32(at.x) * C + c) * H + u32(sy)) * W + u32(sx);
        value = (images[byte >> 2u] >> ((byte & 3u) * 8u)) & 0xffu;
    }
    batch[index] = table[c * 256u + value];
}
