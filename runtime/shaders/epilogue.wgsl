// Shared by the convolution kernels' epilogues: the fused activation. No activation, ReLU and ReLU6
// are bounds read from the `shape` uniform (ACT = 10: BOUNDS bit 0 clamps below at LOW, bit 1 above
// at HIGH), so layers that differ only in those share one compiled pipeline; any other activation is
// baked in (`activate`).

fn finish(sum: f32) -> f32 {
    let x = sum_sign(sum);
    if (ACT == 10u) {
        let low = select(x, max(x, shape.LOW), (shape.BOUNDS & 1u) != 0u);
        let bounded = select(low, min(low, shape.HIGH), (shape.BOUNDS & 2u) != 0u);
        // NaN stays NaN, as in PyTorch (WGSL's max and min may drop it).
        return select(bounded, x, is_nan(x));
    }
    return activate(x);
}
