//! Linear layers, split by rows where the weights exceed one storage binding.

use cnnc_ir::plan::Layer;

use super::arena::Bind;
use super::Builder;
use crate::gpu::kernels::Linear;
use crate::RuntimeError;

impl Builder<'_> {
    pub(super) fn linear(
        &mut self,
        layer: &Layer,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<(), RuntimeError> {
        if in_features * 4 > self.binding_limit {
            let what = format!("one weight row of `{}` ({in_features} floats)", layer.path);
            let (bytes, limit) = (in_features as u64 * 4, self.binding_limit as u64);
            let (span, fix) = (Some(layer.span), "run it on the CPU (`--cpu` of cnnc run and cnnc eval)");
            return Err(RuntimeError::BindingLimit { what, span, bytes, limit, fix });
        }
        let input = self.buffer_of(layer.inputs[0].value);
        let out = self.output_for(layer);
        let weight = &self.param(layer, "weight").data;
        let bias_buffer = bias.then(|| self.arena.data_buffer(&self.param(layer, "bias").data, "bias"));
        // Each part a buffer of its own, so any number of rows starts it (alignment 1).
        let limit = self.binding_limit as u64;
        let blocks = weight_row_blocks(in_features, out_features, limit, 1).expect("one row fits, checked above");
        for (row0, rows) in blocks {
            let part = self.arena.data_buffer(
                &weight[row0 * in_features..(row0 + rows) * in_features],
                &format!("{}.weight[{row0}..]", layer.path),
            );
            let params = Linear {
                n: self.chunk,
                in_features,
                out_features,
                row0,
                rows,
                has_bias: bias,
                activation: layer.activation,
            };
            self.dispatch(&params, &[Bind::Buffer(input), Bind::Buffer(part), bias_buffer.into(), Bind::Buffer(out)]);
        }
        Ok(())
    }
}

/// The blocks of rows `(row0, rows)` in which a linear weight `[out_features, in_features]` is
/// bound: the whole weight where it fits one storage binding of `limit` bytes, else as many rows per
/// block as fit, a multiple of the rows that keep each block's start at `align` floats (the
/// binding-offset alignment). `None` when no such block fits.
pub(crate) fn weight_row_blocks(
    in_features: usize,
    out_features: usize,
    limit: u64,
    align: usize,
) -> Option<Vec<(usize, usize)>> {
    let row = in_features as u64 * 4;
    if row * out_features as u64 <= limit {
        return Some(vec![(0, out_features)]);
    }
    let step = align.max(1) / gcd(in_features, align.max(1));
    let per_block = (limit / row) as usize / step * step;
    (per_block > 0)
        .then(|| (0..out_features).step_by(per_block).map(|row0| (row0, per_block.min(out_features - row0))).collect())
}

pub(crate) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_blocks_fit_the_limit_and_start_aligned() {
        // LeNet's fc1 ([120, 400]) on a 40,000-byte binding: 25 rows fit, 24 keep 64-float starts.
        assert_eq!(
            weight_row_blocks(400, 120, 40_000, 64),
            Some(vec![(0, 24), (24, 24), (48, 24), (72, 24), (96, 24)])
        );
        assert_eq!(weight_row_blocks(400, 120, 192_000, 64), Some(vec![(0, 120)]));
        assert_eq!(
            weight_row_blocks(400, 120, 40_000, 1),
            Some(vec![(0, 25), (25, 25), (50, 25), (75, 25), (100, 20)])
        );
        // Rows of 250 floats start at 64-float offsets only every 32 rows (32,000 bytes).
        assert_eq!(weight_row_blocks(250, 40, 10_000, 64), None);
        assert_eq!(weight_row_blocks(250, 40, 32_000, 64), Some(vec![(0, 32), (32, 8)]));
    }
}
