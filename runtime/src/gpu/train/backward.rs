//! The backward work of each planned step: input gradients placed (or summed) where the fan-out
//! needs them, parameter gradients through split reductions.

use cnnc_ir::autodiff::GradStep;
use cnnc_ir::graph::{Node, Op, ParamKind};

use super::lower::Lowering;
use crate::gpu::build::arena::{Bind, BufferId};
use crate::gpu::kernels::{
    is_pointwise, ActivationGrad, AdaptivePoolGrad, BatchNormKernel, BatchNormPass, ChannelCopy, ChannelSum, ChunkGrad,
    ConvFlip, ConvGrad, Elementwise, ElementwiseOp, GateGrad, LinearGrad, LrnGrad, PointwiseGradWeight,
    PointwiseWeights, PoolGrad, ReducePartials, SoftmaxGrad, UnrolledConv, UnrolledWeightGrad,
};

impl Lowering<'_> {
    /// The backward work of one planned step; `grads_out` receives each parameter gradient's buffer.
    pub fn backward(&mut self, step: &GradStep, contributions: &[usize], param_grads: &mut Vec<(String, BufferId)>) {
        let id = step.node;
        if self.relu_masks[id.index()].is_some() {
            // The pooling or linear layer after it wrote this ReLU's input gradient.
            return;
        }
        let node = self.graph.node(id);
        let dy = self.grads[id.index()].expect("a node's readers run their backward before it");
        let n = self.batch;
        if let Op::BatchNorm { eps, .. } = node.op {
            self.batch_norm_backward(step, node, eps, param_grads);
            return;
        }
        // A convolution's or linear layer's bias gradient, when its weight gradient's kernel sums it.
        let mut bias_summed = false;
        let bias = step.param_grads.iter().find(|b| b.kind == ParamKind::Bias);
        for p in &step.param_grads {
            let buffer = (self.param_grad)(&p.name);
            param_grads.push((p.name.clone(), buffer));
            match (&node.op, p.kind) {
                (Op::Conv2d(c), ParamKind::Weight) => {
                    let x = node.inputs[0];
                    let params =
                        ConvGrad { n, input: self.chw(x), output: self.chw(id), conv: c.clone(), weight: true };
                    let xv = self.value(x);
                    let len = p.shape.iter().product();
                    let binds = |to| [Bind::Buffer(dy), Bind::Buffer(xv), Bind::Buffer(to)];
                    let [_, oh, ow] = self.chw(id);
                    let gemm = is_pointwise(c).then(|| PointwiseGradWeight {
                        n,
                        in_channels: c.in_channels,
                        out_channels: c.out_channels,
                        positions: oh * ow,
                    });
                    // A workgroup per item and chunk: within the grid's 65,535 along z.
                    if let Some(gemm) = gemm.filter(|g| g.partials() <= 65_535) {
                        self.summed(buffer, len, gemm.partials(), |l, to| l.dispatch(&gemm, &binds(to)));
                        continue;
                    }
                    // The written-out kernel takes more partial sums than the generic one (shorter
                    // runs of positions each): where they would not fit one binding, the generic.
                    let limit = self.arena.gpu.limits.max_storage_buffer_binding_size;
                    let unrolled = UnrolledWeightGrad::fits(n, self.chw(x), self.chw(id), c)
                        .filter(|u| ((len + c.out_channels) * u.partials() * 4) as u64 <= limit);
                    match (unrolled, bias) {
                        (Some(unrolled), Some(bias)) => {
                            let unrolled = UnrolledWeightGrad { bias: true, ..unrolled };
                            let (oc, parts) = (c.out_channels, unrolled.partials());
                            let scratch = self.transient((len + oc) * parts);
                            self.dispatch(&unrolled, &binds(scratch));
                            let bias_grad = (self.param_grad)(&bias.name);
                            // The weights' sums, then the bias's, in one dispatch.
                            let reduce =
                                ReducePartials { results: len + oc, partials: parts, offset: 0, split: Some(len) };
                            let binds = [Bind::Buffer(scratch), Bind::Buffer(buffer), Bind::Buffer(bias_grad)];
                            self.dispatch(&reduce, &binds);
                            bias_summed = true;
                        }
                        (Some(unrolled), None) => self.summed(buffer, len, unrolled.partials(), |l, to| {
                            l.dispatch(&unrolled, &binds(to));
                        }),
                        (None, _) => self.summed(buffer, len, params.partials(), |l, to| {
                            l.dispatch(&params, &binds(to));
                        }),
                    }
                }
                (Op::Conv2d(_), _) if bias_summed => {}
                (Op::Conv2d(c), _) => {
                    let [_, oh, ow] = self.chw(id);
                    let params = ChannelSum { n, channels: c.out_channels, positions: oh * ow };
                    self.summed(buffer, c.out_channels, params.partials(), |l, to| {
                        l.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(to)]);
                    });
                }
                (Op::Linear { in_features, out_features, .. }, kind) => {
                    let x = node.inputs[0];
                    let rows = self.elements(x) / in_features;
                    if kind == ParamKind::Weight {
                        // The bias gradient comes out of the same kernel where the bias trains too.
                        let bias_grad = bias.map(|b| (self.param_grad)(&b.name));
                        let (in_features, out_features) = (*in_features, *out_features);
                        let whole = LinearGrad {
                            uniform_dy: self.fits_uniform(rows * out_features),
                            ..LinearGrad::whole(rows, in_features, out_features, true, bias.is_some())
                        };
                        // A weight too large for one binding gets its gradient a block of rows at a time.
                        let blocks = self.row_blocks(in_features, out_features);
                        for (i, &(row0, part)) in blocks.iter().enumerate() {
                            let params = LinearGrad { row0, part, ..whole.clone() };
                            let to = self.weight_rows(buffer, in_features, &blocks, i);
                            let binds =
                                [Bind::Buffer(dy), Bind::Buffer(self.value(x)), Bind::Buffer(to), bias_grad.into()];
                            self.dispatch(&params, &binds);
                        }
                        bias_summed = bias.is_some();
                    } else if !bias_summed {
                        let params = ChannelSum { n: rows, channels: *out_features, positions: 1 };
                        self.summed(buffer, *out_features, params.partials(), |l, to| {
                            l.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(to)]);
                        });
                    }
                }
                (op, kind) => unreachable!("no {kind:?} gradient for {}", op.name()),
            }
        }
        for (_, &input) in node.inputs.iter().enumerate().filter(|(i, _)| step.input_grads[*i]) {
            let identity = match node.op {
                Op::Flatten | Op::Add => true,
                Op::Dropout { p } | Op::StochasticDepth { p } => !self.dropout || p == 0.0,
                _ => false,
            };
            if identity {
                self.pass_through(input, dy, contributions);
                continue;
            }
            // A pooling or linear layer whose input is a ReLU that only it reads writes the ReLU's
            // input gradient.
            let receiver = match self.relu_masks[input.index()] {
                Some(masker) if masker == id => self.graph.node(input).inputs[0],
                _ => input,
            };
            let (target, part) = self.target(receiver);
            let x = self.value(input);
            match &node.op {
                Op::Conv2d(c) => {
                    let params =
                        ConvGrad { n, input: self.chw(input), output: self.chw(id), conv: c.clone(), weight: false };
                    let weight = self.param(node, ParamKind::Weight);
                    if self.gemm_fits(c, self.chw(id)) {
                        // dx = Wᵀ · dy, a GEMM from the output gradient's channels to the input's.
                        let (ic, oc) = (c.in_channels, c.out_channels);
                        let layout = PointwiseWeights { out_channels: oc, in_channels: ic, transpose: false };
                        self.gemm(dy, (weight, layout), None, target, self.chw(input), None);
                    } else {
                        match params.as_forward() {
                            // Stride 1: a forward convolution of dy with the flipped weights: read
                            // flipped by the unrolled kernel, else laid out flipped first.
                            Some(transposed) => {
                                let (out_chw, in_chw) = (self.chw(id), self.chw(input));
                                if let Some(unrolled) = UnrolledConv::fits(n, out_chw, in_chw, &transposed) {
                                    let unrolled = UnrolledConv { flipped: true, ..unrolled };
                                    let binds =
                                        [Bind::Buffer(dy), Bind::Buffer(weight), Bind::Unused, Bind::Buffer(target)];
                                    self.dispatch(&unrolled, &binds);
                                } else {
                                    let len = c.in_channels * (c.out_channels / c.groups) * c.kernel[0] * c.kernel[1];
                                    let flipped = self.arena.weight_buffer(len * 4, "flipped weights");
                                    let flip = ConvFlip { conv: c.clone() };
                                    self.dispatch(&flip, &[Bind::Buffer(weight), Bind::Buffer(flipped)]);
                                    self.convolution(dy, out_chw, &transposed, flipped, None, (target, in_chw), None);
                                }
                            }
                            None => {
                                self.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(weight), Bind::Buffer(target)]);
                            }
                        }
                    }
                }
                Op::Linear { in_features, out_features, .. } => {
                    let rows = self.elements(input) / in_features;
                    let (in_features, out_features) = (*in_features, *out_features);
                    let whole = LinearGrad {
                        uniform_dy: self.fits_uniform(rows * out_features),
                        ..LinearGrad::whole(rows, in_features, out_features, false, false)
                    };
                    let weight = self.param(node, ParamKind::Weight);
                    let relu_mask = receiver != input;
                    // Block by block, each after the first adding to the gradient, in order.
                    let blocks = self.row_blocks(in_features, out_features);
                    for (i, &(row0, part)) in blocks.iter().enumerate() {
                        let params = LinearGrad { row0, part, accumulate: i > 0, relu_mask, ..whole.clone() };
                        let w = Bind::Buffer(self.weight_rows(weight, in_features, &blocks, i));
                        let mask = if relu_mask { Bind::Buffer(x) } else { Bind::Unused };
                        self.dispatch(&params, &[Bind::Buffer(dy), w, Bind::Buffer(target), mask]);
                    }
                }
                Op::Activation(a) => {
                    let params = ActivationGrad { len: self.elements(input), activation: Some(*a) };
                    self.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(x), Bind::Buffer(target)]);
                }
                Op::MaxPool(window) | Op::AvgPool(window) => {
                    let [c, ih, iw] = self.chw(input);
                    let [_, oh, ow] = self.chw(id);
                    let params = PoolGrad {
                        nc: n * c,
                        input: [ih, iw],
                        output: [oh, ow],
                        window: window.clone(),
                        is_max: matches!(node.op, Op::MaxPool(_)),
                        relu_mask: receiver != input,
                    };
                    self.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(x), Bind::Buffer(target)]);
                }
                Op::AdaptiveAvgPool { .. } | Op::AdaptiveMaxPool { .. } => {
                    let [c, ih, iw] = self.chw(input);
                    let [_, oh, ow] = self.chw(id);
                    let is_max = matches!(node.op, Op::AdaptiveMaxPool { .. });
                    let params = AdaptivePoolGrad { nc: n * c, input: [ih, iw], output: [oh, ow], is_max };
                    self.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(x), Bind::Buffer(target)]);
                }
                Op::Chunk { chunks, index } => {
                    let [c, h, w] = self.chw(input);
                    let per = c / chunks;
                    let params = ChunkGrad { n, channels: c, positions: h * w, per, offset: index * per };
                    self.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(target)]);
                }
                Op::ChannelShuffle { groups } => {
                    let params = self.shuffle(id, self.chw(id)[0] / groups);
                    self.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(target)]);
                }
                Op::LocalResponseNorm { size, alpha, beta, k } => {
                    let [c, h, w] = self.chw(id);
                    let params =
                        LrnGrad { n, channels: c, positions: h * w, size: *size, alpha: *alpha, beta: *beta, k: *k };
                    self.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(x), Bind::Buffer(target)]);
                }
                Op::Softmax => {
                    let [c, h, w] = self.chw(id);
                    let params = SoftmaxGrad { n, channels: c, positions: h * w };
                    self.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(self.value(id)), Bind::Buffer(target)]);
                }
                Op::Dropout { p } | Op::StochasticDepth { p } => {
                    let key = self.keys.iter().position(|k| *k == id).expect("the forward drew a key");
                    let params = self.dropout_params(input, &node.op, *p, key);
                    self.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(self.keys_buffer), Bind::Buffer(target)]);
                }
                Op::Mul => {
                    let (full, gate) = self.mul_operands(node);
                    let [c, h, w] = self.chw(full);
                    let gate_positions = self.chw(gate)[1] * self.chw(gate)[2];
                    if input == full || gate_positions == h * w {
                        let other = if input == full { gate } else { full };
                        let other_positions = if input == full { gate_positions } else { h * w };
                        let params = Elementwise {
                            op: ElementwiseOp::Mul,
                            n,
                            channels: c,
                            positions: h * w,
                            other_positions,
                            activation: None,
                        };
                        self.dispatch(
                            &params,
                            &[
                                Bind::Buffer(dy),
                                Bind::Buffer(self.value(other)),
                                Bind::Unused,
                                Bind::Unused,
                                Bind::Buffer(target),
                            ],
                        );
                    } else {
                        let params = GateGrad { nc: n * c, positions: h * w };
                        self.dispatch(
                            &params,
                            &[Bind::Buffer(dy), Bind::Buffer(self.value(full)), Bind::Buffer(target)],
                        );
                    }
                }
                Op::ChannelAffine { scale, .. } => {
                    let scale: Vec<f32> = scale.iter().map(|v| *v as f32).collect();
                    self.affine(id, dy, &scale, &vec![0.0; scale.len()], None, target);
                }
                Op::Concat => {
                    let [oc, h, w] = self.chw(id);
                    let position = node.inputs.iter().position(|i| *i == input).expect("an input of the concat");
                    let offset: usize = node.inputs[..position].iter().map(|i| self.chw(*i)[0]).sum();
                    let c = self.chw(input)[0];
                    let params = ChannelCopy {
                        n,
                        channels: c,
                        positions: h * w,
                        in_c: oc,
                        out_c: c,
                        in_offset: offset,
                        out_offset: 0,
                        shuffle_groups: 0,
                    };
                    self.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(target)]);
                }
                op => unreachable!("`supported` refuses {} before lowering", op.name()),
            }
            if part {
                self.accumulate(receiver, target);
            }
        }
    }

    /// Batch-norm's backward: `dβ = Σ dy` and `dγ = Σ dy·x̂` (into the parameters' gradient buffers
    /// where they train, scratch buffers where not, since the input gradient needs them), then the
    /// input gradient.
    fn batch_norm_backward(
        &mut self,
        step: &GradStep,
        node: &Node,
        eps: f64,
        param_grads: &mut Vec<(String, BufferId)>,
    ) {
        let id = step.node;
        let dy = self.grads[id.index()].expect("a node's readers run their backward before it");
        let x = node.inputs[0];
        let [c, h, w] = self.chw(x);
        let batch = self.batch;
        let pass = move |pass| BatchNormKernel { pass, n: batch, channels: c, positions: h * w, eps, momentum: 0.0 };
        let stats = self.stats[id.index()].expect("the forward kept the statistics");
        let m = pass(BatchNormPass::BackwardPartials).partials();
        let partials = self.transient(2 * c * m);
        let (xb, dyb, statsb) = (Bind::Buffer(self.value(x)), Bind::Buffer(dy), Bind::Buffer(stats));
        self.dispatch(&pass(BatchNormPass::BackwardPartials), &[xb, dyb, statsb, Bind::Buffer(partials)]);
        // Rows 0..C of the partial sums are dβ's, rows C..2C dγ's.
        let [dbeta, dgamma] = [(ParamKind::Bias, 0), (ParamKind::Weight, c)].map(|(kind, offset)| {
            // A frozen batch-norm still needs dγ and dβ for its input gradient.
            let buffer = match step.param_grads.iter().find(|p| p.kind == kind) {
                Some(p) => {
                    let buffer = (self.param_grad)(&p.name);
                    param_grads.push((p.name.clone(), buffer));
                    buffer
                }
                None => self.transient(c),
            };
            let reduce = ReducePartials { results: c, partials: m, offset, split: None };
            self.dispatch(&reduce, &[Bind::Buffer(partials), Bind::Buffer(buffer)]);
            buffer
        });
        if step.input_grads[0] {
            let (target, part) = self.target(x);
            let gamma = Bind::Buffer(self.param(node, ParamKind::Weight));
            let binds = [dyb, xb, gamma, statsb, Bind::Buffer(dgamma), Bind::Buffer(dbeta), Bind::Buffer(target)];
            self.dispatch(&pass(BatchNormPass::InputGrad), &binds);
            if part {
                self.accumulate(x, target);
            }
        }
    }
}
