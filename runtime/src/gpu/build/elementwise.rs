//! Elementwise layers: per-channel affine (batch-norm at inference, channel affine, a lone
//! activation), sums of several values, and broadcast products (squeeze-and-excitation gates).

use cnnc_ir::graph::{Activation, Op};
use cnnc_ir::plan::Layer;

use super::arena::Bind;
use super::{elements, Builder};
use crate::gpu::kernels::{Elementwise, ElementwiseOp};
use crate::{fold, RuntimeError};

impl Builder<'_> {
    /// Batch-norm with running statistics, as a per-channel affine.
    pub(super) fn batch_norm(&mut self, layer: &Layer, eps: f64) {
        // `build` checked that every planned weight is present.
        let [w, b, mean, var] =
            fold::batch_norm_tensors(&layer.params, self.weights).expect("a valid plan lists batch-norm's tensors");
        let (scale, shift) = fold::batch_norm_affine(w, b, mean, var, eps);
        self.affine(layer, &scale, &shift);
    }

    /// An activation on its own (or a sum of one value, then its fused activation): the value
    /// itself with the activation applied.
    pub(super) fn activation(&mut self, layer: &Layer) {
        let (c, p) = layer.shape.channels_positions();
        let src = self.buffer_of(layer.inputs[0].value);
        let own = match layer.op {
            Op::Activation(a) => Some(a),
            _ => None,
        };
        let out = self.output_for(layer);
        let params = self.elementwise(ElementwiseOp::Identity, c, p, p, own.or(layer.activation));
        self.dispatch(&params, &[Bind::Buffer(src), Bind::Unused, Bind::Unused, Bind::Unused, Bind::Buffer(out)]);
    }

    /// `y = act(x · scale[c] + shift[c])`, with the layer's own activation or the fused one.
    pub(super) fn affine(&mut self, layer: &Layer, scale: &[f64], shift: &[f64]) {
        let (c, p) = layer.shape.channels_positions();
        let src = self.buffer_of(layer.inputs[0].value);
        let own = match layer.op {
            Op::Activation(a) => Some(a),
            _ => None,
        };
        let to_f32 = |v: &[f64]| v.iter().map(|x| *x as f32).collect::<Vec<f32>>();
        let scale = self.arena.data_buffer(&to_f32(scale), "scale");
        let shift = self.arena.data_buffer(&to_f32(shift), "shift");
        let out = self.output_for(layer);
        let params = self.elementwise(ElementwiseOp::Affine, c, p, p, own.or(layer.activation));
        self.dispatch(
            &params,
            &[Bind::Buffer(src), Bind::Unused, Bind::Buffer(scale), Bind::Buffer(shift), Bind::Buffer(out)],
        );
    }

    /// The sum of the inputs, left to right, through partial sums; the activation on the last.
    pub(super) fn add(&mut self, layer: &Layer) {
        let (c, p) = layer.shape.channels_positions();
        let last = layer.inputs.len() - 1;
        if last == 0 {
            // A sum of one value: the identity, then the fused activation.
            return self.activation(layer);
        }
        let mut acc = self.buffer_of(layer.inputs[0].value);
        for (i, input) in layer.inputs.iter().enumerate().skip(1) {
            let other = self.buffer_of(input.value);
            let (act, out) = if i == last {
                (layer.activation, self.output_for(layer))
            } else {
                (None, self.arena.activation_buffer(self.chunk * elements(&layer.shape) * 4, "partial sum"))
            };
            let params = self.elementwise(ElementwiseOp::Add, c, p, p, act);
            self.dispatch(
                &params,
                &[Bind::Buffer(acc), Bind::Buffer(other), Bind::Unused, Bind::Unused, Bind::Buffer(out)],
            );
            acc = out;
        }
    }

    /// The product of two values, the smaller broadcast over positions when it has one per channel.
    pub(super) fn mul(&mut self, layer: &Layer) -> Result<(), RuntimeError> {
        let (c, p) = layer.shape.channels_positions();
        let [a, b] = &layer.inputs[..] else {
            let what = format!("the GPU multiplies two values, not {}", layer.inputs.len());
            return Err(RuntimeError::Unsupported { layer: layer.path.clone(), span: layer.span, what });
        };
        let (big, gate) = if elements(&a.shape) >= elements(&b.shape) { (a, b) } else { (b, a) };
        let (gc, gp) = gate.shape.channels_positions();
        if elements(&big.shape) != elements(&layer.shape) || gc != c || (gp != p && gp != 1) {
            let what =
                format!("the GPU multiplies [C, H, W] by [C, H, W] or [C, 1, 1] only, found {} × {}", a.shape, b.shape);
            return Err(RuntimeError::Unsupported { layer: layer.path.clone(), span: layer.span, what });
        }
        let src = self.buffer_of(big.value);
        let other = self.buffer_of(gate.value);
        let out = self.output_for(layer);
        let params = self.elementwise(ElementwiseOp::Mul, c, p, gp, layer.activation);
        self.dispatch(
            &params,
            &[Bind::Buffer(src), Bind::Buffer(other), Bind::Unused, Bind::Unused, Bind::Buffer(out)],
        );
        Ok(())
    }

    /// The elementwise kernel's parameters for `op` over this model's batch chunk.
    pub(super) fn elementwise(
        &self,
        op: ElementwiseOp,
        channels: usize,
        positions: usize,
        other_positions: usize,
        activation: Option<Activation>,
    ) -> Elementwise {
        Elementwise { op, n: self.chunk, channels, positions, other_positions, activation }
    }
}
