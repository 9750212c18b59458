//! Weights laid out on the host the way the convolution kernels read them.

/// `[OC][IC]` → `[IC][OC16]` (`OC16` = `OC` rounded up to 16, zero-padded): one input channel's 16
/// weights of an output tile are four vec4 loads in the pointwise GEMM.
pub(crate) fn pointwise_weights(weight: &[f32], oc: usize, ic: usize) -> Vec<f32> {
    let oc16 = oc.next_multiple_of(16);
    let mut t = vec![0.0f32; ic * oc16];
    for o in 0..oc {
        for i in 0..ic {
            t[i * oc16 + o] = weight[o * ic + i];
        }
    }
    t
}

/// `[OC][K]` → `[OC / OC_TILE][K][max(OC_TILE, 4)]` texels (zero-padded): a tap's weights for a whole
/// tile of output channels are whole vec4 texels (one output channel per texel's `.x` when `OC_TILE`
/// is 1).
pub(crate) fn tiled_weights(weight: &[f32], oc: usize, k: usize, oc_tile: usize) -> Vec<f32> {
    let lanes = oc_tile.max(4);
    let mut t = vec![0.0f32; oc.div_ceil(oc_tile) * k * lanes];
    for o in 0..oc {
        let (block, lane) = (o / oc_tile, o % oc_tile);
        for j in 0..k {
            t[(block * k + j) * lanes + lane] = weight[o * k + j];
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointwise_weights_are_transposed_and_padded_to_16_outputs() {
        // 2 outputs × 3 inputs: w[o][i] = 10·o + i.
        let w = [0.0, 1.0, 2.0, 10.0, 11.0, 12.0];
        let t = pointwise_weights(&w, 2, 3);
        assert_eq!(t.len(), 3 * 16);
        for i in 0..3 {
            assert_eq!(&t[i * 16..i * 16 + 2], &[i as f32, 10.0 + i as f32]);
            assert!(t[i * 16 + 2..(i + 1) * 16].iter().all(|v| *v == 0.0));
        }
    }

    #[test]
    fn tiled_weights_put_a_tiles_outputs_side_by_side() {
        // 5 outputs × 2 taps: w[o][j] = 10·o + j, tiles of 4 (the last one partial).
        let w: Vec<f32> = (0..5).flat_map(|o| (0..2).map(move |j| (10 * o + j) as f32)).collect();
        let t = tiled_weights(&w, 5, 2, 4);
        assert_eq!(t.len(), 2 * 2 * 4);
        assert_eq!(&t[0..4], &[0.0, 10.0, 20.0, 30.0]); // tile 0, tap 0
        assert_eq!(&t[4..8], &[1.0, 11.0, 21.0, 31.0]); // tile 0, tap 1
        assert_eq!(&t[8..12], &[40.0, 0.0, 0.0, 0.0]); // tile 1, tap 0
        assert_eq!(&t[12..16], &[41.0, 0.0, 0.0, 0.0]); // tile 1, tap 1
                                                        // Tiles of 1: one output channel per texel's first lane.
        let t = tiled_weights(&w[..4], 2, 2, 1);
        assert_eq!(t, [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 11.0, 0.0, 0.0, 0.0]);
    }
}
