//! The training-mode forward of each op: every value in a transient buffer of its own, kept until
//! its last reader in the backward pass (a convolution or linear layer that only a ReLU reads
//! applies it, and the two share one);
//! batch-norm with batch statistics, dropout and stochastic depth with the step's masks.

use cnnc_ir::graph::{Activation, Conv2d, Node, NodeId, Op, ParamKind};

use super::lower::{Io, Lowering};
use crate::gpu::build::arena::{Bind, BufferId};
use crate::gpu::kernels::{
    is_pointwise, AdaptivePool, BatchNormKernel, BatchNormPass, ChannelCopy, DirectConv, DirectVariant, DropoutKernel,
    Elementwise, ElementwiseOp, Epilogue, Linear, Lrn, Pointwise, PointwiseRows, PointwiseWeights, Pool, Softmax,
    UnrolledConv,
};
use crate::RuntimeError;

impl Lowering<'_> {
    /// The training-mode forward of one node.
    pub fn forward(&mut self, id: NodeId, node: &Node, io: &Io) -> Result<(), RuntimeError> {
        let identity = match node.op {
            Op::Flatten => true,
            // Its input, a convolution or linear layer, applied it ([`Lowering::fused_relu`]).
            Op::Activation(Activation::Relu) => self.fused_relu[node.inputs[0].index()],
            Op::Dropout { p } | Op::StochasticDepth { p } => !self.dropout || p == 0.0,
            _ => false,
        };
        if identity {
            self.values[id.index()] = Some(self.value(node.inputs[0]));
            return Ok(());
        }
        let out = match node.op {
            Op::Input => io.input,
            _ => self.transient(self.elements(id)),
        };
        self.values[id.index()] = Some(out);
        let n = self.batch;
        let activation = self.fused_relu[id.index()].then_some(Activation::Relu);
        match &node.op {
            Op::Input => {}
            Op::Conv2d(c) => {
                let x = node.inputs[0];
                let bias = c.bias.then(|| self.param(node, ParamKind::Bias));
                let weight = self.param(node, ParamKind::Weight);
                let output = (out, self.chw(id));
                self.convolution(self.value(x), self.chw(x), c, weight, bias, output, activation);
            }
            Op::Linear { in_features, out_features, bias } => {
                let x = node.inputs[0];
                let rows = self.elements(x) / in_features;
                let b = bias.then(|| self.param(node, ParamKind::Bias));
                let weight = self.param(node, ParamKind::Weight);
                // A weight too large for one binding is applied a block of rows at a time.
                let blocks = self.row_blocks(*in_features, *out_features);
                for (i, &(row0, block)) in blocks.iter().enumerate() {
                    let params = Linear {
                        n: rows,
                        in_features: *in_features,
                        out_features: *out_features,
                        row0,
                        rows: block,
                        has_bias: *bias,
                        activation,
                    };
                    let part = self.weight_rows(weight, *in_features, &blocks, i);
                    let binds = [Bind::Buffer(self.value(x)), Bind::Buffer(part), b.into(), Bind::Buffer(out)];
                    self.dispatch(&params, &binds);
                }
            }
            Op::Activation(a) => {
                let c = self.chw(id)[0];
                self.affine(id, self.value(node.inputs[0]), &vec![1.0; c], &vec![0.0; c], Some(*a), out);
            }
            Op::MaxPool(window) | Op::AvgPool(window) => {
                let x = node.inputs[0];
                let [oc, oh, ow] = self.chw(id);
                let params = Pool {
                    n,
                    input: self.chw(x),
                    output: [oh, ow],
                    window: window.clone(),
                    is_max: matches!(node.op, Op::MaxPool(_)),
                    out_c: oc,
                    out_offset: 0,
                    activation: None,
                };
                self.dispatch(&params, &[Bind::Buffer(self.value(x)), Bind::Buffer(out)]);
            }
            Op::AdaptiveAvgPool { .. } | Op::AdaptiveMaxPool { .. } => {
                let x = node.inputs[0];
                let [oc, oh, ow] = self.chw(id);
                let params = AdaptivePool {
                    n,
                    input: self.chw(x),
                    output: [oh, ow],
                    is_max: matches!(node.op, Op::AdaptiveMaxPool { .. }),
                    out_c: oc,
                    out_offset: 0,
                    activation: None,
                };
                self.dispatch(&params, &[Bind::Buffer(self.value(x)), Bind::Buffer(out)]);
            }
            Op::Chunk { chunks, index } => {
                let [c, h, w] = self.chw(node.inputs[0]);
                let per = c / chunks;
                let params = ChannelCopy {
                    n,
                    channels: per,
                    positions: h * w,
                    in_c: c,
                    out_c: per,
                    in_offset: index * per,
                    out_offset: 0,
                    shuffle_groups: 0,
                };
                self.dispatch(&params, &[Bind::Buffer(self.value(node.inputs[0])), Bind::Buffer(out)]);
            }
            Op::ChannelShuffle { groups } => {
                let params = self.shuffle(id, *groups);
                self.dispatch(&params, &[Bind::Buffer(self.value(node.inputs[0])), Bind::Buffer(out)]);
            }
            Op::LocalResponseNorm { size, alpha, beta, k } => {
                let [c, h, w] = self.chw(id);
                let params = Lrn {
                    n,
                    channels: c,
                    positions: h * w,
                    size: *size,
                    alpha: *alpha,
                    beta: *beta,
                    k: *k,
                    activation: None,
                };
                self.dispatch(&params, &[Bind::Buffer(self.value(node.inputs[0])), Bind::Buffer(out)]);
            }
            Op::Softmax => {
                let [c, h, w] = self.chw(id);
                let params = Softmax { n, channels: c, positions: h * w };
                self.dispatch(&params, &[Bind::Buffer(self.value(node.inputs[0])), Bind::Buffer(out)]);
            }
            Op::Add => {
                let [c, h, w] = self.chw(id);
                let params = Elementwise {
                    op: ElementwiseOp::Add,
                    n,
                    channels: c,
                    positions: h * w,
                    other_positions: h * w,
                    activation: None,
                };
                // Sums of more than two go through buffers of their own: a dispatch never reads the
                // buffer it writes.
                let (first, rest) = node.inputs.split_first().expect("add has inputs");
                let mut acc = self.value(*first);
                for (i, other) in rest.iter().enumerate() {
                    let to = if i + 1 == rest.len() { out } else { self.transient(self.elements(id)) };
                    let binds = [
                        Bind::Buffer(acc),
                        Bind::Buffer(self.value(*other)),
                        Bind::Unused,
                        Bind::Unused,
                        Bind::Buffer(to),
                    ];
                    self.dispatch(&params, &binds);
                    acc = to;
                }
            }
            Op::BatchNorm { eps, momentum, .. } => {
                let x = node.inputs[0];
                let [c, h, w] = self.chw(x);
                let pass =
                    |pass| BatchNormKernel { pass, n, channels: c, positions: h * w, eps: *eps, momentum: *momentum };
                let stats = self.transient(4 * c);
                self.stats[id.index()] = Some(stats);
                let partials = self.transient(2 * c * pass(BatchNormPass::Stats).partials());
                let xb = Bind::Buffer(self.value(x));
                self.dispatch(&pass(BatchNormPass::ForwardPartials), &[xb, xb, xb, Bind::Buffer(partials)]);
                let binds = [
                    xb,
                    Bind::Buffer(partials),
                    Bind::Buffer(self.param(node, ParamKind::Weight)),
                    Bind::Buffer(self.param(node, ParamKind::Bias)),
                    Bind::Buffer(stats),
                    Bind::Buffer(self.param(node, ParamKind::RunningMean)),
                    Bind::Buffer(self.param(node, ParamKind::RunningVar)),
                ];
                self.dispatch(&pass(BatchNormPass::Stats), &binds);
                self.dispatch(&pass(BatchNormPass::Apply), &[xb, Bind::Buffer(stats), Bind::Buffer(out)]);
            }
            Op::Dropout { p } | Op::StochasticDepth { p } => {
                let x = node.inputs[0];
                let key = self.keys.len();
                self.keys.push(id);
                let params = self.dropout_params(x, &node.op, *p, key);
                self.dispatch(
                    &params,
                    &[Bind::Buffer(self.value(x)), Bind::Buffer(self.keys_buffer), Bind::Buffer(out)],
                );
            }
            Op::Mul => {
                let (full, gate) = self.mul_operands(node);
                let [c, h, w] = self.chw(full);
                let gate_positions = self.chw(gate)[1] * self.chw(gate)[2];
                let params = Elementwise {
                    op: ElementwiseOp::Mul,
                    n,
                    channels: c,
                    positions: h * w,
                    other_positions: gate_positions,
                    activation: None,
                };
                self.dispatch(
                    &params,
                    &[
                        Bind::Buffer(self.value(full)),
                        Bind::Buffer(self.value(gate)),
                        Bind::Unused,
                        Bind::Unused,
                        Bind::Buffer(out),
                    ],
                );
            }
            Op::ChannelAffine { scale, shift } => {
                let as_f32 = |v: &[f64]| v.iter().map(|v| *v as f32).collect::<Vec<f32>>();
                self.affine(id, self.value(node.inputs[0]), &as_f32(scale), &as_f32(shift), None, out);
            }
            Op::Concat => {
                let [oc, h, w] = self.chw(id);
                let mut offset = 0;
                for input in &node.inputs {
                    let c = self.chw(*input)[0];
                    let params = ChannelCopy {
                        n,
                        channels: c,
                        positions: h * w,
                        in_c: c,
                        out_c: oc,
                        in_offset: 0,
                        out_offset: offset,
                        shuffle_groups: 0,
                    };
                    self.dispatch(&params, &[Bind::Buffer(self.value(*input)), Bind::Buffer(out)]);
                    offset += c;
                }
            }
            op => unreachable!("`supported` refuses {} before lowering", op.name()),
        }
        Ok(())
    }

    /// A convolution: `input` (`[N, ...input_chw]`) convolved with `weight` (`[OC, IC / groups, KH,
    /// KW]`, a [`Arena::weight_buffer`](crate::gpu::build::arena::Arena::weight_buffer) or a view
    /// of one) plus `bias` into `output` (`out` `[N, ...output_chw]`), then `activation`. A small
    /// one of one group runs unrolled for its shape ([`UnrolledConv`]); a 1×1 one as a GEMM
    /// ([`Lowering::gemm_fits`]), its weights laid out for it first; others run the direct
    /// convolution from storage buffers, where four output channels per invocation share each input
    /// load where groups allow (one group may end in a partial tile) and short convolutions
    /// (depthwise) bake their extents, as inference does.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn convolution(
        &mut self,
        input: BufferId,
        input_chw: [usize; 3],
        conv: &Conv2d,
        weight: BufferId,
        bias: Option<BufferId>,
        (out, output_chw): (BufferId, [usize; 3]),
        activation: Option<Activation>,
    ) {
        if let Some(params) = UnrolledConv::fits(self.batch, input_chw, output_chw, conv) {
            let params = UnrolledConv { activation, ..params };
            let binds = [Bind::Buffer(input), Bind::Buffer(weight), bias.into(), Bind::Buffer(out)];
            self.dispatch(&params, &binds);
            return;
        }
        if self.gemm_fits(conv, output_chw) {
            let (ic, oc) = (conv.in_channels, conv.out_channels);
            let layout = PointwiseWeights { out_channels: oc, in_channels: ic, transpose: true };
            self.gemm(input, (weight, layout), bias, out, output_chw, activation);
            return;
        }
        let params = DirectConv {
            variant: DirectVariant::Buffer,
            n: self.batch,
            input: input_chw,
            output: output_chw,
            conv: conv.clone(),
            oc_tile: if (conv.out_channels / conv.groups).is_multiple_of(4) || conv.groups == 1 { 4 } else { 1 },
            out_c: conv.out_channels,
            out_offset: 0,
            has_bias: bias.is_some(),
            epilogue: Epilogue { activation, residual: false },
            bake_shape: (conv.in_channels / conv.groups) * conv.kernel[0] * conv.kernel[1] <= 32,
        };
        let binds = [Bind::Buffer(input), Bind::Buffer(weight), bias.into(), Bind::Unused, Bind::Buffer(out)];
        self.dispatch(&params, &binds);
    }

    /// Whether a convolution with `output_chw` runs as the pointwise GEMM, forward and input gradient:
    /// a 1×1 window, stride 1, no padding, one group ([`is_pointwise`]), and few enough quads of
    /// positions for the GEMM's grid.
    pub(super) fn gemm_fits(&self, conv: &Conv2d, output_chw: [usize; 3]) -> bool {
        let positions = output_chw[1] * output_chw[2];
        is_pointwise(conv) && (self.batch * positions).div_ceil(4).div_ceil(64) <= 65_535
    }

    /// The pointwise GEMM: `input` (`[N, C, P]`, P from `chw`) times `weight` (`[OC][IC]`, laid out
    /// first into a transient buffer as `layout` says, which also gives the GEMM's channels in and
    /// out) plus `bias`, then `activation`, into `out`: [`Pointwise`] with vec4 loads where P is a
    /// multiple of 4, else [`PointwiseRows`].
    pub(super) fn gemm(
        &mut self,
        input: BufferId,
        (weight, layout): (BufferId, PointwiseWeights),
        bias: Option<BufferId>,
        out: BufferId,
        chw: [usize; 3],
        activation: Option<Activation>,
    ) {
        let laid = self.transient(layout.floats());
        self.dispatch(&layout, &[Bind::Buffer(weight), Bind::Buffer(laid)]);
        let (in_channels, channels) = layout.gemm_channels();
        let positions = chw[1] * chw[2];
        if !positions.is_multiple_of(4) {
            let params = PointwiseRows {
                n: self.batch,
                in_channels,
                out_channels: channels,
                positions,
                has_bias: bias.is_some(),
                activation,
            };
            self.dispatch(&params, &[Bind::Buffer(input), Bind::Buffer(laid), bias.into(), Bind::Buffer(out)]);
            return;
        }
        let params = Pointwise {
            textured: false,
            n: self.batch,
            in_channels,
            out_channels: channels,
            positions,
            out_c: channels,
            out_offset: 0,
            has_bias: bias.is_some(),
            epilogue: Epilogue { activation, residual: false },
        };
        let binds = [Bind::Buffer(input), Bind::Buffer(laid), bias.into(), Bind::Unused, Bind::Buffer(out)];
        self.dispatch(&params, &binds);
    }

    /// ShuffleNet's channel shuffle of `id`'s shape in `groups` (the inverse shuffle, of a gradient,
    /// is the shuffle in `channels / groups`).
    pub(super) fn shuffle(&self, id: NodeId, groups: usize) -> ChannelCopy {
        let [c, h, w] = self.chw(id);
        ChannelCopy {
            n: self.batch,
            channels: c,
            positions: h * w,
            in_c: c,
            out_c: c,
            in_offset: 0,
            out_offset: 0,
            shuffle_groups: groups,
        }
    }

    pub(super) fn dropout_params(&self, x: NodeId, op: &Op, p: f64, key: usize) -> DropoutKernel {
        let item = self.graph.node(x).shape.elements() as usize;
        DropoutKernel { len: self.elements(x), item, p, per_item: matches!(op, Op::StochasticDepth { .. }), key }
    }

    /// A product's full-size operand and its per-channel gate (or the second full-size operand).
    pub(super) fn mul_operands(&self, node: &Node) -> (NodeId, NodeId) {
        let [a, b] = node.inputs[..] else { unreachable!("`supported` takes products of two") };
        if self.graph.node(a).shape.elements() >= self.graph.node(b).shape.elements() {
            (a, b)
        } else {
            (b, a)
        }
    }
}
