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
        let rows_per_part = (self.binding_limit / (in_features * 4)).max(1).min(out_features);
        for row0 in (0..out_features).step_by(rows_per_part) {
            let rows = rows_per_part.min(out_features - row0);
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
