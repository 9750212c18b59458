//! Lowering a training step to dispatches: the training-mode forward (every value in a buffer of its
//! own, kept for the backward pass), the loss, the backward steps `cnnc_ir::autodiff` planned, and
//! one optimizer dispatch per trainable tensor.
//!
//! Gradient fan-out is resolved here, in step order: the first contribution to a value's gradient
//! is written straight into its buffer, later ones into a scratch buffer that is then added to it
//! (`accumulate`); a pass-through (flatten, add) whose input has no other contribution shares its
//! gradient buffer instead of copying.

use cnnc_ir::autodiff::GradStep;
use cnnc_ir::graph::{Graph, Node, NodeId, Op, ParamKind, Pool2d};

use crate::gpu::build::arena::{Arena, Bind, BufferId};
use crate::gpu::kernels::{
    ActivationGrad, BatchNormKernel, BatchNormPass, ChannelCopy, ChannelSum, ConvGrad, CrossEntropyKernel, DirectConv,
    DirectVariant, DropoutKernel, Elementwise, ElementwiseOp, Epilogue, GateGrad, KernelParams, Linear, LinearGrad,
    LossSum, OptimizerKernel, Pool, PoolGrad, ReducePartials, UpdateRule,
};
use crate::gpu::record::Step;
use crate::train::{CrossEntropy, Optimizer};
use crate::RuntimeError;

/// The buffers a step reads and writes besides values and gradients.
pub(super) struct Io {
    pub input: BufferId,
    pub labels: BufferId,
    pub class_weights: Option<BufferId>,
    pub hyper: BufferId,
    pub shares: BufferId,
    pub history: BufferId,
}

/// A training step being lowered.
pub(super) struct Lowering<'a> {
    pub arena: &'a mut Arena,
    pub graph: &'a Graph,
    pub batch: usize,
    /// Each parameter's buffer, by name.
    pub params: &'a dyn Fn(&str) -> BufferId,
    /// The value of each node (flatten shares its input's).
    pub values: Vec<Option<BufferId>>,
    /// The gradient of each node's output, once its first contribution is placed.
    pub grads: Vec<Option<BufferId>>,
    pub steps: Vec<Step>,
    /// Each batch-norm's statistics `[mean | var | scale | shift]`, kept for its backward.
    pub stats: Vec<Option<BufferId>>,
    /// The nodes whose dropout masks are drawn each step, in key order (empty with dropout off).
    pub keys: Vec<NodeId>,
    /// Each of those nodes' key for the step, at its index in `keys`.
    pub keys_buffer: BufferId,
    /// Dropout and stochastic depth active (else the identity).
    pub dropout: bool,
}

impl Lowering<'_> {
    fn elements(&self, id: NodeId) -> usize {
        self.batch * self.graph.node(id).shape.elements() as usize
    }

    fn value(&self, id: NodeId) -> BufferId {
        self.values[id.index()].expect("values are lowered before their readers")
    }

    fn param(&self, node: &Node, kind: ParamKind) -> BufferId {
        let p = node.params.iter().find(|p| p.kind == kind).expect("the op declares this parameter");
        (self.params)(&p.name)
    }

    fn dispatch(&mut self, params: &impl KernelParams, binds: &[Bind]) {
        let step = self.arena.dispatch(&params.kernel(), binds);
        self.steps.push(step);
    }

    /// `[C, H, W]` of a node's output, or `[F, 1, 1]` for features.
    fn chw(&self, id: NodeId) -> [usize; 3] {
        match self.graph.node(id).shape.dims() {
            [c, h, w] => [*c, *h, *w],
            dims => [dims.iter().product(), 1, 1],
        }
    }

    /// The training-mode forward of one node.
    pub fn forward(&mut self, id: NodeId, node: &Node, io: &Io) -> Result<(), RuntimeError> {
        let identity = match node.op {
            Op::Flatten => true,
            Op::Dropout { p } | Op::StochasticDepth { p } => !self.dropout || p == 0.0,
            _ => false,
        };
        if identity {
            self.values[id.index()] = Some(self.value(node.inputs[0]));
            return Ok(());
        }
        let out = match node.op {
            Op::Input => io.input,
            _ => self.arena.activation_buffer(self.elements(id) * 4, &node.path),
        };
        self.values[id.index()] = Some(out);
        let n = self.batch;
        match &node.op {
            Op::Input => {}
            Op::Conv2d(c) => {
                let x = node.inputs[0];
                let params = DirectConv {
                    variant: DirectVariant::Buffer,
                    n,
                    input: self.chw(x),
                    output: self.chw(id),
                    conv: c.clone(),
                    oc_tile: 1,
                    out_c: c.out_channels,
                    out_offset: 0,
                    has_bias: c.bias,
                    epilogue: Epilogue { activation: None, residual: false },
                    bake_shape: false,
                };
                let bias = c.bias.then(|| self.param(node, ParamKind::Bias));
                let binds = [
                    Bind::Buffer(self.value(x)),
                    Bind::Buffer(self.param(node, ParamKind::Weight)),
                    bias.into(),
                    Bind::Unused,
                    Bind::Buffer(out),
                ];
                self.dispatch(&params, &binds);
            }
            Op::Linear { in_features, out_features, bias } => {
                let x = node.inputs[0];
                let rows = self.elements(x) / in_features;
                let params = Linear {
                    n: rows,
                    in_features: *in_features,
                    out_features: *out_features,
                    row0: 0,
                    rows: *out_features,
                    has_bias: *bias,
                    activation: None,
                };
                let b = bias.then(|| self.param(node, ParamKind::Bias));
                let binds = [
                    Bind::Buffer(self.value(x)),
                    Bind::Buffer(self.param(node, ParamKind::Weight)),
                    b.into(),
                    Bind::Buffer(out),
                ];
                self.dispatch(&params, &binds);
            }
            Op::Activation(a) => {
                let [c, h, w] = self.chw(id);
                let scale = self.arena.data_buffer(&vec![1.0; c], "ones");
                let shift = self.arena.data_buffer(&vec![0.0; c], "zeros");
                let params = Elementwise {
                    op: ElementwiseOp::Affine,
                    n,
                    channels: c,
                    positions: h * w,
                    other_positions: h * w,
                    activation: Some(*a),
                };
                let binds = [
                    Bind::Buffer(self.value(node.inputs[0])),
                    Bind::Unused,
                    Bind::Buffer(scale),
                    Bind::Buffer(shift),
                    Bind::Buffer(out),
                ];
                self.dispatch(&params, &binds);
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                let x = node.inputs[0];
                let [oc, oh, ow] = self.chw(id);
                let params = Pool {
                    n,
                    input: self.chw(x),
                    output: [oh, ow],
                    window: p.clone(),
                    is_max: matches!(node.op, Op::MaxPool(_)),
                    out_c: oc,
                    out_offset: 0,
                    activation: None,
                };
                self.dispatch(&params, &[Bind::Buffer(self.value(x)), Bind::Buffer(out)]);
            }
            Op::AdaptiveAvgPool { .. } => {
                let x = node.inputs[0];
                let window = uniform_window(self.chw(x), self.chw(id)).expect("checked by `supported`");
                let [oc, oh, ow] = self.chw(id);
                let params = Pool {
                    n,
                    input: self.chw(x),
                    output: [oh, ow],
                    window,
                    is_max: false,
                    out_c: oc,
                    out_offset: 0,
                    activation: None,
                };
                self.dispatch(&params, &[Bind::Buffer(self.value(x)), Bind::Buffer(out)]);
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
                    let to = if i + 1 == rest.len() {
                        out
                    } else {
                        self.arena.activation_buffer(self.elements(id) * 4, "partial sum")
                    };
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
                let stats = self.arena.activation_buffer(4 * c * 4, "batch statistics");
                self.stats[id.index()] = Some(stats);
                let partials = self
                    .arena
                    .activation_buffer(2 * c * pass(BatchNormPass::Stats).partials() * 4, "batch-norm partial sums");
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
                let [c, h, w] = self.chw(id);
                let params = Elementwise {
                    op: ElementwiseOp::Affine,
                    n,
                    channels: c,
                    positions: h * w,
                    other_positions: h * w,
                    activation: None,
                };
                let (scale, shift): (Vec<f32>, Vec<f32>) =
                    (scale.iter().map(|v| *v as f32).collect(), shift.iter().map(|v| *v as f32).collect());
                let (scale, shift) = (self.arena.data_buffer(&scale, "scale"), self.arena.data_buffer(&shift, "shift"));
                self.dispatch(
                    &params,
                    &[
                        Bind::Buffer(self.value(node.inputs[0])),
                        Bind::Unused,
                        Bind::Buffer(scale),
                        Bind::Buffer(shift),
                        Bind::Buffer(out),
                    ],
                );
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

    fn dropout_params(&self, x: NodeId, op: &Op, p: f64, key: usize) -> DropoutKernel {
        let item = self.graph.node(x).shape.elements() as usize;
        DropoutKernel { len: self.elements(x), item, p, per_item: matches!(op, Op::StochasticDepth { .. }), key }
    }

    /// A product's full-size operand and its per-channel gate (or the second full-size operand).
    fn mul_operands(&self, node: &Node) -> (NodeId, NodeId) {
        let [a, b] = node.inputs[..] else { unreachable!("`supported` takes products of two") };
        if self.graph.node(a).shape.elements() >= self.graph.node(b).shape.elements() {
            (a, b)
        } else {
            (b, a)
        }
    }

    /// The loss over the output's logits: per item, then summed into the loss history.
    pub fn loss(&mut self, loss: &CrossEntropy, io: &Io) {
        let out = self.graph.output;
        let classes = self.graph.node(out).shape.elements() as usize;
        let dlogits = self.arena.activation_buffer(self.elements(out) * 4, "dlogits");
        self.grads[out.index()] = Some(dlogits);
        let params = CrossEntropyKernel {
            n: self.batch,
            classes,
            label_smoothing: loss.label_smoothing,
            class_weights: loss.class_weights.is_some(),
        };
        let binds = [
            Bind::Buffer(self.value(out)),
            Bind::Buffer(io.labels),
            io.class_weights.into(),
            Bind::Buffer(dlogits),
            Bind::Buffer(io.shares),
        ];
        self.dispatch(&params, &binds);
        self.dispatch(
            &LossSum { n: self.batch },
            &[Bind::Buffer(io.shares), Bind::Buffer(io.hyper), Bind::Buffer(io.history)],
        );
    }

    /// A split reduction into `dest` (`results` floats): `partials` partial sums per result are
    /// written by `produce` into a scratch buffer and added in order, or straight into `dest` when
    /// there is one per result.
    fn summed(&mut self, dest: BufferId, results: usize, partials: usize, produce: impl FnOnce(&mut Self, BufferId)) {
        if partials == 1 {
            produce(self, dest);
            return;
        }
        let scratch = self.arena.activation_buffer(results * partials * 4, "partial sums");
        produce(self, scratch);
        self.dispatch(&ReducePartials { results, partials, offset: 0 }, &[Bind::Buffer(scratch), Bind::Buffer(dest)]);
    }

    /// Where a contribution to `input`'s gradient goes: its gradient buffer for the first, a fresh
    /// scratch buffer (added by [`Lowering::accumulate`]) for the others.
    fn target(&mut self, input: NodeId) -> (BufferId, bool) {
        match self.grads[input.index()] {
            None => {
                let b = self.arena.activation_buffer(self.elements(input) * 4, "gradient");
                self.grads[input.index()] = Some(b);
                (b, false)
            }
            Some(_) => (self.arena.activation_buffer(self.elements(input) * 4, "gradient part"), true),
        }
    }

    /// Adds a contribution to `input`'s gradient, into a new buffer (a dispatch never reads the
    /// buffer it writes), which becomes the gradient.
    fn accumulate(&mut self, input: NodeId, part: BufferId) {
        let acc = self.grads[input.index()].expect("the first contribution is placed");
        let len = self.elements(input);
        let sum = self.arena.activation_buffer(len * 4, "gradient sum");
        let add = Elementwise {
            op: ElementwiseOp::Add,
            n: 1,
            channels: 1,
            positions: len,
            other_positions: len,
            activation: None,
        };
        self.dispatch(&add, &[Bind::Buffer(acc), Bind::Buffer(part), Bind::Unused, Bind::Unused, Bind::Buffer(sum)]);
        self.grads[input.index()] = Some(sum);
    }

    /// Passes `dy` on unchanged to `input` (flatten, add): shares the buffer when this is the only
    /// contribution, else copies or adds it.
    fn pass_through(&mut self, input: NodeId, dy: BufferId, contributions: &[usize]) {
        if contributions[input.index()] == 1 {
            self.grads[input.index()] = Some(dy);
            return;
        }
        match self.grads[input.index()] {
            None => {
                let (target, _) = self.target(input);
                let copy = ActivationGrad { len: self.elements(input), activation: None };
                self.dispatch(&copy, &[Bind::Buffer(dy), Bind::Buffer(dy), Bind::Buffer(target)]);
            }
            Some(_) => self.accumulate(input, dy),
        }
    }

    /// The backward work of one planned step; `grads_out` receives each parameter gradient's buffer.
    pub fn backward(&mut self, step: &GradStep, contributions: &[usize], param_grads: &mut Vec<(String, BufferId)>) {
        let id = step.node;
        let node = self.graph.node(id);
        let dy = self.grads[id.index()].expect("a node's readers run their backward before it");
        let n = self.batch;
        if let Op::BatchNorm { eps, .. } = node.op {
            self.batch_norm_backward(step, node, eps, param_grads);
            return;
        }
        for p in &step.param_grads {
            let buffer = self.arena.activation_buffer(p.shape.iter().product::<usize>() * 4, &p.name);
            param_grads.push((p.name.clone(), buffer));
            match (&node.op, p.kind) {
                (Op::Conv2d(c), ParamKind::Weight) => {
                    let x = node.inputs[0];
                    let params =
                        ConvGrad { n, input: self.chw(x), output: self.chw(id), conv: c.clone(), weight: true };
                    let xv = self.value(x);
                    let len = p.shape.iter().product();
                    self.summed(buffer, len, params.partials(), |l, to| {
                        l.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(xv), Bind::Buffer(to)]);
                    });
                }
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
                        let params =
                            LinearGrad { rows, in_features: *in_features, out_features: *out_features, weight: true };
                        self.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(self.value(x)), Bind::Buffer(buffer)]);
                    } else {
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
            let (target, part) = self.target(input);
            let x = self.value(input);
            match &node.op {
                Op::Conv2d(c) => {
                    let params =
                        ConvGrad { n, input: self.chw(input), output: self.chw(id), conv: c.clone(), weight: false };
                    self.dispatch(
                        &params,
                        &[Bind::Buffer(dy), Bind::Buffer(self.param(node, ParamKind::Weight)), Bind::Buffer(target)],
                    );
                }
                Op::Linear { in_features, out_features, .. } => {
                    let rows = self.elements(input) / in_features;
                    let params =
                        LinearGrad { rows, in_features: *in_features, out_features: *out_features, weight: false };
                    self.dispatch(
                        &params,
                        &[Bind::Buffer(dy), Bind::Buffer(self.param(node, ParamKind::Weight)), Bind::Buffer(target)],
                    );
                }
                Op::Activation(a) => {
                    let params = ActivationGrad { len: self.elements(input), activation: Some(*a) };
                    self.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(x), Bind::Buffer(target)]);
                }
                Op::MaxPool(_) | Op::AvgPool(_) | Op::AdaptiveAvgPool { .. } => {
                    let [c, ih, iw] = self.chw(input);
                    let [_, oh, ow] = self.chw(id);
                    let window = match &node.op {
                        Op::AdaptiveAvgPool { .. } => uniform_window(self.chw(input), self.chw(id)).expect("checked"),
                        _ => p_of(&node.op).clone(),
                    };
                    let params = PoolGrad {
                        nc: n * c,
                        input: [ih, iw],
                        output: [oh, ow],
                        window,
                        is_max: matches!(node.op, Op::MaxPool(_)),
                    };
                    self.dispatch(&params, &[Bind::Buffer(dy), Bind::Buffer(x), Bind::Buffer(target)]);
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
                    let [c, h, w] = self.chw(id);
                    let params = Elementwise {
                        op: ElementwiseOp::Affine,
                        n,
                        channels: c,
                        positions: h * w,
                        other_positions: h * w,
                        activation: None,
                    };
                    let scale: Vec<f32> = scale.iter().map(|v| *v as f32).collect();
                    let (scale, shift) =
                        (self.arena.data_buffer(&scale, "scale"), self.arena.data_buffer(&vec![0.0; c], "zeros"));
                    self.dispatch(
                        &params,
                        &[
                            Bind::Buffer(dy),
                            Bind::Unused,
                            Bind::Buffer(scale),
                            Bind::Buffer(shift),
                            Bind::Buffer(target),
                        ],
                    );
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
                self.accumulate(input, target);
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
        let partials = self.arena.activation_buffer(2 * c * m * 4, "batch-norm partial sums");
        let (xb, dyb, statsb) = (Bind::Buffer(self.value(x)), Bind::Buffer(dy), Bind::Buffer(stats));
        self.dispatch(&pass(BatchNormPass::BackwardPartials), &[xb, dyb, statsb, Bind::Buffer(partials)]);
        // Rows 0..C of the partial sums are dβ's, rows C..2C dγ's.
        let [dbeta, dgamma] = [(ParamKind::Bias, 0), (ParamKind::Weight, c)].map(|(kind, offset)| {
            let buffer = self.arena.activation_buffer(c * 4, "batch-norm gradient");
            if let Some(p) = step.param_grads.iter().find(|p| p.kind == kind) {
                param_grads.push((p.name.clone(), buffer));
            }
            let reduce = ReducePartials { results: c, partials: m, offset };
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

    /// One optimizer dispatch for a trainable tensor.
    pub fn optimizer(
        &mut self,
        optimizer: &Optimizer,
        len: usize,
        param: BufferId,
        grad: BufferId,
        hyper: BufferId,
        label: &str,
    ) {
        let (rule, states) = match *optimizer {
            Optimizer::Sgd { momentum, dampening, nesterov, weight_decay } => (
                UpdateRule::Sgd { momentum: momentum != 0.0, dampening, nesterov, weight_decay },
                usize::from(momentum != 0.0),
            ),
            Optimizer::Adam { betas, eps, weight_decay, decoupled } => {
                (UpdateRule::Adam { beta2: betas.1, eps, weight_decay, decoupled }, 2)
            }
        };
        let mut state = || -> Bind {
            let b = self.arena.activation_buffer(len * 4, label);
            Bind::Buffer(b)
        };
        let s1 = if states >= 1 { state() } else { Bind::Unused };
        let s2 = if states >= 2 { state() } else { Bind::Unused };
        let binds = [Bind::Buffer(grad), Bind::Buffer(hyper), Bind::Buffer(param), s1, s2];
        self.dispatch(&OptimizerKernel { len, rule }, &binds);
    }
}

fn p_of(op: &Op) -> &Pool2d {
    match op {
        Op::MaxPool(p) | Op::AvgPool(p) => p,
        _ => unreachable!("a window pooling"),
    }
}

/// Adaptive average pooling whose cells are all the same size (each input dim a multiple of the
/// output's), as an ordinary average pooling window.
pub(super) fn uniform_window(input: [usize; 3], output: [usize; 3]) -> Option<Pool2d> {
    let ([_, ih, iw], [_, oh, ow]) = (input, output);
    if ih % oh != 0 || iw % ow != 0 {
        return None;
    }
    let (kh, kw) = (ih / oh, iw / ow);
    Some(Pool2d {
        kernel: [kh, kw],
        stride: [kh, kw],
        padding: Default::default(),
        dilation: [1, 1],
        ceil_mode: false,
        count_include_pad: true,
    })
}

/// What the GPU trainer cannot run yet, as an error naming the layer.
pub(super) fn supported(graph: &Graph) -> Result<(), RuntimeError> {
    for (_, node) in graph.inference_nodes() {
        let why = match &node.op {
            Op::Input
            | Op::Conv2d(_)
            | Op::Linear { .. }
            | Op::Activation(_)
            | Op::MaxPool(_)
            | Op::AvgPool(_)
            | Op::Add
            | Op::Flatten
            | Op::BatchNorm { .. }
            | Op::Dropout { .. }
            | Op::StochasticDepth { .. }
            | Op::ChannelAffine { .. }
            | Op::Concat => None,
            Op::Mul => {
                let shapes: Vec<&[usize]> = node.inputs.iter().map(|i| graph.node(*i).shape.dims()).collect();
                let gate = |s: &[usize]| matches!(s, [_, 1, 1]);
                let ok = match shapes[..] {
                    [a, b] => a == b || (a.len() == 3 && b.len() == 3 && a[0] == b[0] && (gate(a) || gate(b))),
                    _ => false,
                };
                (!ok).then_some("products other than of two equal shapes or a per-channel gate".to_string())
            }
            Op::AdaptiveAvgPool { .. } => {
                let input = graph.node(node.inputs[0]).shape.dims().to_vec();
                let out = node.shape.dims().to_vec();
                let ok = input.len() == 3
                    && uniform_window([input[0], input[1], input[2]], [out[0], out[1], out[2]]).is_some();
                (!ok).then_some("adaptive average pooling with unequal cells".to_string())
            }
            op => Some(format!("`{}`", op.name())),
        };
        if let Some(what) = why {
            return Err(RuntimeError::Unsupported {
                layer: node.path.clone(),
                span: node.span,
                what: format!(
                    "GPU training has no kernels for {what} yet; train this model with the CPU reference (`CpuTrainer`, `cnnc grad --cpu`)"
                ),
            });
        }
    }
    Ok(())
}
