//! Pooling: sliding windows, adaptive windows, and the subsampling that lets a strided 1×1
//! convolution run as a GEMM.

use cnnc_ir::graph::{Pad4, Pool2d};
use cnnc_ir::plan::{Layer, Operand};

use super::arena::{Bind, BufferId};
use super::{image, Builder};
use crate::gpu::kernels::{AdaptivePool, Pool};

impl Builder<'_> {
    /// Max or average pooling over a window.
    pub(super) fn pool(&mut self, layer: &Layer, window: &Pool2d, is_max: bool) {
        let input = self.buffer_of(layer.inputs[0].value);
        let out = self.output_for(layer);
        let [_, oh, ow] = image(&layer.shape);
        let (out_c, out_offset) = layer.out_channels();
        let params = Pool {
            n: self.chunk,
            input: image(&layer.inputs[0].shape),
            output: [oh, ow],
            window: window.clone(),
            is_max,
            out_c,
            out_offset,
            activation: layer.activation,
        };
        self.dispatch(&params, &[Bind::Buffer(input), Bind::Buffer(out)]);
    }

    /// Adaptive average or max pooling to `size`.
    pub(super) fn adaptive_pool(&mut self, layer: &Layer, size: [usize; 2], is_max: bool) {
        let input = self.buffer_of(layer.inputs[0].value);
        let out = self.output_for(layer);
        let (out_c, out_offset) = layer.out_channels();
        let params = AdaptivePool {
            n: self.chunk,
            input: image(&layer.inputs[0].shape),
            output: size,
            is_max,
            out_c,
            out_offset,
            activation: layer.activation,
        };
        self.dispatch(&params, &[Bind::Buffer(input), Bind::Buffer(out)]);
    }

    /// Every `stride`-th position of `input` (`[C, H, W]` → `[C, OH, OW]`) in a buffer of its own,
    /// by a 1×1 max pooling (an identity on one element), so a strided 1×1 convolution can run as a GEMM.
    pub(super) fn subsample(&mut self, input: &Operand, stride: [usize; 2], oh: usize, ow: usize) -> BufferId {
        let [c, ih, iw] = image(&input.shape);
        let src = self.buffer_of(input.value);
        let out = self.arena.activation_buffer(self.chunk * c * oh * ow * 4, "subsampled input");
        let window = Pool2d {
            kernel: [1, 1],
            stride,
            padding: Pad4::default(),
            dilation: [1, 1],
            ceil_mode: false,
            count_include_pad: false,
        };
        let params = Pool {
            n: self.chunk,
            input: [c, ih, iw],
            output: [oh, ow],
            window,
            is_max: true,
            out_c: c,
            out_offset: 0,
            activation: None,
        };
        self.dispatch(&params, &[Bind::Buffer(src), Bind::Buffer(out)]);
        out
    }
}
