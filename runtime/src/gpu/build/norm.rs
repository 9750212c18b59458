//! Normalisations over channels: local response normalisation and softmax.

use cnnc_ir::plan::Layer;

use super::arena::Bind;
use super::Builder;
use crate::gpu::kernels::{Lrn, Softmax};

impl Builder<'_> {
    /// PyTorch's `LocalResponseNorm(size, alpha, beta, k)`.
    pub(super) fn lrn(&mut self, layer: &Layer, size: usize, [alpha, beta, k]: [f64; 3]) {
        let (c, p) = layer.shape.channels_positions();
        let src = self.buffer_of(layer.inputs[0].value);
        let out = self.output_for(layer);
        let params =
            Lrn { n: self.chunk, channels: c, positions: p, size, alpha, beta, k, activation: layer.activation };
        self.dispatch(&params, &[Bind::Buffer(src), Bind::Buffer(out)]);
    }

    /// Softmax over channels (features).
    pub(super) fn softmax(&mut self, layer: &Layer) {
        let (c, p) = layer.shape.channels_positions();
        let src = self.buffer_of(layer.inputs[0].value);
        let out = self.output_for(layer);
        self.dispatch(&Softmax { n: self.chunk, channels: c, positions: p }, &[Bind::Buffer(src), Bind::Buffer(out)]);
    }
}
