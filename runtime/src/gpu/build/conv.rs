//! Convolutions: weights (with a folded batch-norm) laid out for the kernel [`choose_conv`] picks,
//! then the pointwise GEMM or the direct convolution, and the residual pass where it runs apart.

use cnnc_ir::graph::Conv2d;
use cnnc_ir::plan::Layer;

use super::arena::{Bind, BufferId};
use super::choice::{choose_conv, ConvChoice, ConvShape};
use super::relayout::{pointwise_weights, tiled_weights};
use super::{image, Builder};
use crate::fold;
use crate::gpu::kernels::{DirectConv, DirectVariant, ElementwiseOp, Epilogue, Pointwise, UnrolledConv};
use crate::gpu::record::TexelFormat;
use crate::RuntimeError;

/// What every convolution kernel binds besides its input and weights.
struct ConvOutput {
    bias: Option<BufferId>,
    residual: Option<BufferId>,
    out: BufferId,
}

impl Builder<'_> {
    pub(super) fn conv(&mut self, layer: &Layer, c: &Conv2d) -> Result<(), RuntimeError> {
        let own_bias = c.bias.then(|| self.param(layer, "bias"));
        let own_weight = self.param(layer, "weight");
        let (weight, bias) = match &layer.batch_norm {
            Some(bn) => {
                // `build` checked that every planned weight is present.
                let (w, b) = fold::fold_into_conv(own_weight, own_bias, bn, self.weights)
                    .expect("a valid plan lists the folded batch-norm's tensors");
                (w.data, Some(b.data))
            }
            None => (own_weight.data.clone(), own_bias.map(|b| b.data.clone())),
        };
        let shape = ConvShape {
            conv: c,
            chunk: self.chunk,
            input: image(&layer.inputs[0].shape),
            output: image(&layer.shape),
            residual: layer.residual,
            into_concat: layer.into_concat.is_some(),
        };
        let residual = layer.residual.then(|| self.buffer_of(layer.inputs[layer.inputs.len() - 1].value));
        let bias = bias.as_ref().map(|b| self.arena.data_buffer(b, "bias"));
        match choose_conv(&shape, self.textures, self.unrolled.allows(self.chunk)) {
            ConvChoice::Pointwise { textured, subsample } => {
                let out = ConvOutput { bias, residual, out: self.output_for(layer) };
                self.pointwise_conv(layer, &shape, &weight, textured, subsample, out);
            }
            ConvChoice::Unrolled => {
                let params = UnrolledConv::fits(shape.chunk, shape.input, shape.output, c)
                    .expect("the choice checked that it fits");
                // A folded batch-norm brings a bias the convolution itself may not have.
                let conv = Conv2d { bias: bias.is_some(), ..params.conv.clone() };
                let params = UnrolledConv { activation: layer.activation, conv, ..params };
                let weight = self.arena.uniform_data_buffer(&weight, &format!("{}.weight", layer.path));
                let out = self.output_for(layer);
                self.dispatch(
                    &params,
                    &[
                        Bind::Buffer(self.buffer_of(layer.inputs[0].value)),
                        Bind::Buffer(weight),
                        bias.into(),
                        Bind::Buffer(out),
                    ],
                );
            }
            ConvChoice::Direct { variant, oc_tile, bake_shape, separate_residual } => {
                let (out_c, out_offset) = layer.out_channels();
                let direct = |epilogue| DirectConv {
                    variant,
                    n: shape.chunk,
                    input: shape.input,
                    output: shape.output,
                    conv: c.clone(),
                    oc_tile,
                    out_c,
                    out_offset,
                    has_bias: bias.is_some(),
                    epilogue,
                    bake_shape,
                };
                let out = self.output_for(layer);
                if separate_residual {
                    let [oc, oh, ow] = shape.output;
                    let before = self.arena.activation_buffer(self.chunk * oc * oh * ow * 4, "before the residual add");
                    let params = direct(Epilogue { activation: None, residual: false });
                    self.direct_conv(layer, &params, &weight, ConvOutput { bias, residual: None, out: before });
                    let add = self.elementwise(ElementwiseOp::Add, oc, oh * ow, oh * ow, layer.activation);
                    self.dispatch(
                        &add,
                        &[Bind::Buffer(before), residual.into(), Bind::Unused, Bind::Unused, Bind::Buffer(out)],
                    );
                } else {
                    let params = direct(Epilogue { activation: layer.activation, residual: residual.is_some() });
                    self.direct_conv(layer, &params, &weight, ConvOutput { bias, residual, out });
                }
            }
        }
        Ok(())
    }

    /// The 1×1 convolution as a GEMM, over a subsampled copy of the input when strided.
    fn pointwise_conv(
        &mut self,
        layer: &Layer,
        shape: &ConvShape,
        weight: &[f32],
        textured: bool,
        subsample: bool,
        out: ConvOutput,
    ) {
        let ([ic, _, _], [oc, oh, ow]) = (shape.input, shape.output);
        let source = &layer.inputs[0];
        let input =
            if subsample { self.subsample(source, shape.conv.stride, oh, ow) } else { self.buffer_of(source.value) };
        let t = pointwise_weights(weight, oc, ic);
        let label = format!("{}.weight", layer.path);
        let (input, weight) = if textured {
            let mirror = if subsample {
                self.mirror_buffer(input, self.chunk * ic * oh * ow, TexelFormat::Vec4, "subsampled input (texture)")
            } else {
                self.mirror(source, TexelFormat::Vec4, &layer.path)
            };
            (Bind::Texture(mirror), Bind::Texture(self.arena.data_texture(&t, TexelFormat::Vec4, &label)))
        } else {
            (Bind::Buffer(input), Bind::Buffer(self.arena.data_buffer(&t, &label)))
        };
        let (out_c, out_offset) = layer.out_channels();
        let params = Pointwise {
            textured,
            n: self.chunk,
            in_channels: ic,
            out_channels: oc,
            positions: oh * ow,
            out_c,
            out_offset,
            has_bias: out.bias.is_some(),
            epilogue: Epilogue { activation: layer.activation, residual: out.residual.is_some() },
        };
        self.dispatch(&params, &[input, weight, out.bias.into(), out.residual.into(), Bind::Buffer(out.out)]);
    }

    /// The direct convolution, reading through textures or buffers as `params` say.
    fn direct_conv(&mut self, layer: &Layer, params: &DirectConv, weight: &[f32], out: ConvOutput) {
        let label = format!("{}.weight", layer.path);
        let (input, weight) = if params.variant == DirectVariant::Buffer {
            let input = self.buffer_of(layer.inputs[0].value);
            (Bind::Buffer(input), Bind::Buffer(self.arena.data_buffer(weight, &label)))
        } else {
            let t = tiled_weights(weight, params.output[0], params.taps(), params.oc_tile);
            let input = self.mirror(&layer.inputs[0], TexelFormat::Scalar, &layer.path);
            (Bind::Texture(input), Bind::Texture(self.arena.data_texture(&t, TexelFormat::Vec4, &label)))
        };
        self.dispatch(params, &[input, weight, out.bias.into(), out.residual.into(), Bind::Buffer(out.out)]);
    }
}
