// Shared by batch-norm's per-element passes over `[N, C, P]`: the element an invocation takes and
// its channel, as (index, channel), or (NO_ELEMENT, 0) past the end. With GRID3 the grid is
// (positions, channels, items), so that an invocation finds its element without dividing (on CPU
// drivers a division by a run-time extent is a scalar division per SIMD lane) and a channel's values
// are the same for the whole workgroup; else (fewer than 16 positions, or extents past the grid's
// limits) it is one-dimensional.

const NO_ELEMENT: u32 = 0xffffffffu;

fn channel_element(gid: vec3<u32>) -> vec2<u32> {
    if (GRID3) {
        if (gid.x >= shape.P) {
            return vec2<u32>(NO_ELEMENT, 0u);
        }
        return vec2<u32>((gid.z * shape.C + gid.y) * shape.P + gid.x, gid.y);
    }
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= shape.N * shape.C * shape.P) {
        return vec2<u32>(NO_ELEMENT, 0u);
    }
    return vec2<u32>(index, (index / shape.P) % shape.C);
}
