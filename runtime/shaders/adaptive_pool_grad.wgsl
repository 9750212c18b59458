// Input gradient of adaptive average or max pooling over `[N·C, IH, IW]`, PyTorch's cells
// (cell i covers [⌊i·IN/OUT⌋, ⌈(i+1)·IN/OUT⌉), so neighbouring cells may share inputs). One invocation
// per input element gathers from every cell that holds it: average pooling shares a cell's gradient
// out evenly, max pooling gives it to the cell's first largest element in scan order (PyTorch's tie
// rule), recomputed from the input.
//
// Baked constants: MAX; extents in `shape`: NC, IH, IW, OH, OW.

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

fn cell_start(i: u32, len: u32, cells: u32) -> u32 {
    return (i * len) / cells;
}

fn cell_end(i: u32, len: u32, cells: u32) -> u32 {
    return ((i + 1u) * len + cells - 1u) / cells;
}

// The first cell that may hold input index `at` of `len`, split into `cells`.
fn first_cell(at: u32, len: u32, cells: u32) -> u32 {
    return max((at * cells) / len, 1u) - 1u;
}

// Whether the cell at (oy, ox) of plane `base` has its first maximum at (iy, ix).
fn is_argmax(base: u32, oy: u32, ox: u32, iy: u32, ix: u32) -> bool {
    var best = 0.0;
    var at = 0xffffffffu;
    for (var y = cell_start(oy, shape.IH, shape.OH); y < cell_end(oy, shape.IH, shape.OH); y++) {
        for (var xx = cell_start(ox, shape.IW, shape.OW); xx < cell_end(ox, shape.IW, shape.OW); xx++) {
            let v = x[base + y * shape.IW + xx];
            if (at == 0xffffffffu || v > best || is_nan(v)) {
                best = v;
                at = y * shape.IW + xx;
            }
        }
    }
    return at == iy * shape.IW + ix;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let index = gid.x + gid.y * 65535u * 64u;
    if (index >= shape.NC * shape.IH * shape.IW) {
        return;
    }
    let ix = index % shape.IW;
    let iy = (index / shape.IW) % shape.IH;
    let plane = index / (shape.IW * shape.IH);
    let base = plane * shape.IH * shape.IW;
    var acc = 0.0;
    for (var oy = first_cell(iy, shape.IH, shape.OH); oy < shape.OH; oy++) {
        let ys = cell_start(oy, shape.IH, shape.OH);
        let ye = cell_end(oy, shape.IH, shape.OH);
        if (ys > iy) {
            break;
        }
        if (ye <= iy) {
            continue;
        }
        for (var ox = first_cell(ix, shape.IW, shape.OW); ox < shape.OW; ox++) {
            let xs = cell_start(ox, shape.IW, shape.OW);
            let xe = cell_end(ox, shape.IW, shape.OW);
            if (xs > ix) {
                break;
            }
            if (xe <= ix) {
                continue;
            }
            let g = dy[(plane * shape.OH + oy) * shape.OW + ox];
            if (MAX) {
                if (is_argmax(base, oy, ox, iy, ix)) {
                    acc += g;
                }
            } else {
                acc += g / f32((ye - ys) * (xe - xs));
            }
        }
    }
    dx[index] = acc;
}
