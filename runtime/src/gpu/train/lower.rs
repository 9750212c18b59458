//! Lowering a training step to dispatches: the training-mode forward (every value in a transient
//! buffer of its own, kept until its last reader in the backward pass; `forward.rs`), the loss, the backward steps `cnnc_ir::autodiff`
//! planned (`backward.rs`), and one optimizer dispatch per pack of trainable tensors (`pack.rs`). This file holds the
//! state they share, the placing of gradients, the loss, the optimizer and what is supported.
//!
//! Gradient fan-out is resolved here, in step order: the first contribution to a value's gradient
//! is written straight into its buffer, later ones into a scratch buffer that is then added to it
//! (`accumulate`); a pass-through (flatten, add) whose input has no other contribution shares its
//! gradient buffer instead of copying.

use cnnc_ir::autodiff::Backward;
use cnnc_ir::graph::{Activation, Graph, Node, NodeId, Op, ParamKind};
use cnnc_ir::Span;

use super::pack::Pack;
use crate::gpu::build::arena::{Arena, Bind, BufferId};
use crate::gpu::build::linear::weight_row_blocks;
use crate::gpu::kernels::{
    ActivationGrad, CrossEntropyKernel, Elementwise, ElementwiseOp, Kernel, KernelParams, LossSum, OptimizerKernel,
    ReducePartials, UpdateRule,
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
    /// Each trainable parameter's gradient buffer, by name.
    pub param_grad: &'a dyn Fn(&str) -> BufferId,
    /// The value of each node (flatten shares its input's; a ReLU applied by its input shares it,
    /// so that input's value is the activated one, which the ReLU's gradient reads (or the pooling
    /// or linear layer that applies it, [`relus_masked`]) and for which `y <= 0` is `x <= 0`, NaN
    /// included).
    pub values: Vec<Option<BufferId>>,
    /// Whether each node (a convolution or linear layer) applies the ReLU that is its only reader,
    /// saving a dispatch and a buffer ([`fused_relus`]).
    pub fused_relu: Vec<bool>,
    /// For a ReLU whose gradient the layer after it applies ([`relus_masked`]), that layer: the
    /// ReLU's own backward step does nothing.
    pub relu_masks: Vec<Option<NodeId>>,
    /// The gradient of each node's output, once its first contribution is placed.
    pub grads: Vec<Option<BufferId>>,
    /// The step's dispatches, in order: kernels and bindings, made into [`Step`]s by
    /// [`Lowering::finish`] once the transient buffers have device memory.
    pub pending: Vec<(Kernel, Vec<Bind>)>,
    /// For each of `pending`: what it does (`forward conv1`, `backward conv1`, `loss`, `optimizer
    /// conv1.weight`) and its kernel family.
    pub labels: Vec<(String, &'static str)>,
    /// The label of the work being lowered.
    pub doing: String,
    /// The place in the spec of the layer being lowered (none for the loss and optimizer).
    pub span: Option<Span>,
    /// The first transient buffer larger than one storage binding: what it was for, where, and
    /// its bytes. Values and gradients were checked before lowering ([`super::check_binding_limits`]),
    /// so this is a split reduction's scratch of partial sums, which grows with the batch.
    pub oversized: Option<(String, Option<Span>, u64)>,
    /// Each batch-norm's statistics `[mean | var | scale | shift]`, kept for its backward.
    pub stats: Vec<Option<BufferId>>,
    /// The nodes whose dropout masks are drawn each step, in key order (empty with dropout off).
    pub keys: Vec<NodeId>,
    /// Each of those nodes' key for the step, at its index in `keys`.
    pub keys_buffer: BufferId,
    /// Dropout and stochastic depth active (else the identity).
    pub dropout: bool,
    /// Values kept to the end of the step, so they can be read after it ([`super::GpuTrainer::keeping`]).
    pub kept: Vec<BufferId>,
}

impl Lowering<'_> {
    pub(super) fn elements(&self, id: NodeId) -> usize {
        self.batch * self.graph.node(id).shape.elements() as usize
    }

    pub(super) fn value(&self, id: NodeId) -> BufferId {
        self.values[id.index()].expect("values are lowered before their readers")
    }

    pub(super) fn param(&self, node: &Node, kind: ParamKind) -> BufferId {
        let p = node.params.iter().find(|p| p.kind == kind).expect("the op declares this parameter");
        (self.params)(&p.name)
    }

    pub(super) fn dispatch(&mut self, params: &impl KernelParams, binds: &[Bind]) {
        let kernel = params.kernel();
        self.labels.push((self.doing.clone(), kernel.family.name()));
        self.pending.push((kernel, binds.to_vec()));
    }

    /// A buffer for one step's value, gradient or scratch: it shares device memory with others
    /// whose uses in the step do not overlap its own ([`Lowering::finish`]).
    pub(super) fn transient(&mut self, floats: usize) -> BufferId {
        let bytes = floats as u64 * 4;
        if bytes > self.arena.gpu.limits.max_storage_buffer_binding_size && self.oversized.is_none() {
            self.oversized = Some((self.doing.clone(), self.span, bytes));
        }
        self.arena.transient_buffer(floats * 4)
    }

    /// The step's dispatches, after giving the transient buffers device memory: each is live from
    /// the first dispatch that binds it to the last (a kept value to the end of the step), and
    /// takes a shared buffer none of whose earlier tenants is still live (the closest in size that
    /// is large enough, else the largest, which grows), in order of first use. No kernel reads a transient buffer before the step
    /// writes it, so what an earlier tenant left there is never seen.
    /// Also returns the bytes the transient buffers take shared, and would take each in a buffer of
    /// its own.
    pub(super) fn finish(&mut self) -> (Vec<Step>, u64, u64) {
        let sizes = self.arena.transient_sizes().to_vec();
        let mut live: Vec<Option<(usize, usize)>> = vec![None; sizes.len()];
        for (i, (_, binds)) in self.pending.iter().enumerate() {
            for bind in binds {
                if let Some(t) = match bind {
                    Bind::Buffer(b) => self.arena.transient_of(*b),
                    _ => None,
                } {
                    let (first, last) = live[t].unwrap_or((i, i));
                    live[t] = Some((first.min(i), last.max(i)));
                }
            }
        }
        for t in self.kept.iter().filter_map(|b| self.arena.transient_of(*b)) {
            live[t] = live[t].map(|(first, _)| (first, usize::MAX));
        }
        let mut order: Vec<usize> = (0..sizes.len()).collect();
        order.sort_by_key(|t| live[*t].map_or(usize::MAX, |(first, _)| first));
        // Each shared buffer's size so far and the last dispatch of its current tenant.
        let mut shared: Vec<(u64, usize)> = Vec::new();
        let mut placed = vec![0usize; sizes.len()];
        for t in order {
            let Some((first, last)) = live[t] else {
                // A transient no dispatch binds gets a buffer of its own, which nothing shares.
                shared.push((sizes[t], usize::MAX));
                placed[t] = shared.len() - 1;
                continue;
            };
            let free = |(_, busy): &(u64, usize)| *busy < first;
            let fitting =
                shared.iter().enumerate().filter(|(_, s)| free(s) && s.0 >= sizes[t]).min_by_key(|(_, s)| s.0);
            let growing = || shared.iter().enumerate().filter(|(_, s)| free(s)).max_by_key(|(_, s)| s.0);
            let at = match fitting.or_else(growing) {
                Some((at, _)) => at,
                None => {
                    shared.push((0, 0));
                    shared.len() - 1
                }
            };
            shared[at] = (shared[at].0.max(sizes[t]), last);
            placed[t] = at;
        }
        self.arena.place_transients(&placed);
        let pending = std::mem::take(&mut self.pending);
        let steps = pending.iter().map(|(kernel, binds)| self.arena.dispatch(kernel, binds)).collect();
        (steps, shared.iter().map(|(bytes, _)| bytes).sum(), sizes.iter().sum())
    }

    /// `[C, H, W]` of a node's output, or `[F, 1, 1]` for features.
    pub(super) fn chw(&self, id: NodeId) -> [usize; 3] {
        match self.graph.node(id).shape.dims() {
            [c, h, w] => [*c, *h, *w],
            dims => [dims.iter().product(), 1, 1],
        }
    }

    /// `out = act(x · scale[c] + shift[c])` over `id`'s shape (an activation, a channel affine and its
    /// gradient), with `scale` and `shift` uploaded as constants.
    pub(super) fn affine(
        &mut self,
        id: NodeId,
        x: BufferId,
        scale: &[f32],
        shift: &[f32],
        activation: Option<Activation>,
        out: BufferId,
    ) {
        let [c, h, w] = self.chw(id);
        let params = Elementwise {
            op: ElementwiseOp::Affine,
            n: self.batch,
            channels: c,
            positions: h * w,
            other_positions: h * w,
            activation,
        };
        let (scale, shift) = (self.arena.data_buffer(scale, "scale"), self.arena.data_buffer(shift, "shift"));
        let binds = [Bind::Buffer(x), Bind::Unused, Bind::Buffer(scale), Bind::Buffer(shift), Bind::Buffer(out)];
        self.dispatch(&params, &binds);
    }

    /// The loss over the logits of each head in `losses` (the output, then auxiliary heads, with
    /// their weights): per item and head, then, in the last head's dispatch, summed in order into
    /// the loss history.
    pub fn loss(&mut self, loss: &CrossEntropy, losses: &[(NodeId, f64)], io: &Io) {
        let shares = self.batch * losses.len();
        for (h, (head, weight)) in losses.iter().enumerate() {
            let classes = self.graph.node(*head).shape.elements() as usize;
            let dlogits = self.transient(self.elements(*head));
            self.grads[head.index()] = Some(dlogits);
            let last = h + 1 == losses.len();
            let params = CrossEntropyKernel {
                n: self.batch,
                classes,
                label_smoothing: loss.label_smoothing,
                class_weights: loss.class_weights.is_some(),
                weight: *weight,
                offset: h * self.batch,
                hits: shares,
                count_hits: h == 0,
                sum: last.then_some(LossSum { shares, cap: super::HISTORY }),
            };
            let binds = [
                Bind::Buffer(self.value(*head)),
                Bind::Buffer(io.labels),
                io.class_weights.into(),
                Bind::Buffer(dlogits),
                Bind::Buffer(io.shares),
                // Bound on every head's dispatch, read on the last's only: placeholders here would be
                // one buffer bound read-only (as `hyper`, or the class weights') and read-write at once.
                Bind::Buffer(io.hyper),
                Bind::Buffer(io.history),
            ];
            self.dispatch(&params, &binds);
        }
    }

    /// A split reduction into `dest` (`results` floats): `partials` partial sums per result are
    /// written by `produce` into a scratch buffer and added in order, or straight into `dest` when
    /// there is one per result.
    pub(super) fn summed(
        &mut self,
        dest: BufferId,
        results: usize,
        partials: usize,
        produce: impl FnOnce(&mut Self, BufferId),
    ) {
        if partials == 1 {
            produce(self, dest);
            return;
        }
        let scratch = self.transient(results * partials);
        produce(self, scratch);
        let reduce = ReducePartials { results, partials, offset: 0, split: None };
        self.dispatch(&reduce, &[Bind::Buffer(scratch), Bind::Buffer(dest)]);
    }

    /// Where a contribution to `input`'s gradient goes: its gradient buffer for the first, a fresh
    /// scratch buffer (added by [`Lowering::accumulate`]) for the others.
    pub(super) fn target(&mut self, input: NodeId) -> (BufferId, bool) {
        match self.grads[input.index()] {
            None => {
                let b = self.transient(self.elements(input));
                self.grads[input.index()] = Some(b);
                (b, false)
            }
            Some(_) => (self.transient(self.elements(input)), true),
        }
    }

    /// Adds a contribution to `input`'s gradient, into a new buffer (a dispatch never reads the
    /// buffer it writes), which becomes the gradient.
    pub(super) fn accumulate(&mut self, input: NodeId, part: BufferId) {
        let acc = self.grads[input.index()].expect("the first contribution is placed");
        let len = self.elements(input);
        let sum = self.transient(len);
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
    pub(super) fn pass_through(&mut self, input: NodeId, dy: BufferId, contributions: &[usize]) {
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

    /// One optimizer dispatch over a pack of trainable tensors (their gaps stay zero).
    pub fn optimizer(&mut self, optimizer: &Optimizer, pack: &Pack, hyper: BufferId) {
        let rule = match *optimizer {
            Optimizer::Sgd { momentum, dampening, nesterov, weight_decay } => {
                UpdateRule::Sgd { momentum: momentum != 0.0, dampening, nesterov, weight_decay }
            }
            Optimizer::Adam { betas, eps, weight_decay, decoupled } => {
                UpdateRule::Adam { beta2: betas.1, eps, weight_decay, decoupled }
            }
        };
        // A pack larger than one binding (a single tensor too large for one) is updated in chunks,
        // each starting at a view's alignment and a multiple of 4 floats (the kernel's vec4s; both
        // are powers of two).
        let align = self.arena.view_alignment().max(4);
        let binding = self.arena.gpu.limits.max_storage_buffer_binding_size;
        let chunk = match pack.floats as u64 * 4 <= binding {
            true => pack.floats,
            false => (binding / 4) as usize / align * align,
        };
        for start in (0..pack.floats).step_by(chunk) {
            let len = chunk.min(pack.floats - start);
            let mut view = |b: BufferId| if chunk == pack.floats { b } else { self.arena.view(b, start, len) };
            let (grads, params) = (view(pack.grads), view(pack.params));
            let states: Vec<BufferId> = pack.states.iter().map(|b| view(*b)).collect();
            let state = |i: usize| states.get(i).map_or(Bind::Unused, |b| Bind::Buffer(*b));
            let binds = [Bind::Buffer(grads), Bind::Buffer(hyper), Bind::Buffer(params), state(0), state(1)];
            self.dispatch(&OptimizerKernel { len, rule: rule.clone() }, &binds);
        }
    }

    /// Block `i` of `blocks`, the row blocks of the linear weight `weight` (`in_features` floats a
    /// row), bound on its own; the weight itself when one block holds it all.
    pub(super) fn weight_rows(
        &mut self,
        weight: BufferId,
        in_features: usize,
        blocks: &[(usize, usize)],
        i: usize,
    ) -> BufferId {
        match blocks {
            [_] => weight,
            _ => {
                let (row0, rows) = blocks[i];
                self.arena.view(weight, row0 * in_features, rows * in_features)
            }
        }
    }

    /// Whether `floats` fit one uniform binding (a buffer a kernel reads at addresses the same for
    /// every invocation of a workgroup: see [`crate::gpu::kernels::Family::LinearGradUniformDy`]):
    /// 64 KiB, WebGPU's default limit, which every adapter binds (some bind more, but no test then
    /// reaches past it).
    pub(super) fn fits_uniform(&self, floats: usize) -> bool {
        let limit = self.arena.gpu.limits.max_uniform_buffer_binding_size.min(64 << 10);
        floats.max(4) as u64 * 4 <= limit
    }

    /// The row blocks of a linear layer's weight on this device ([`weight_row_blocks`]).
    pub(super) fn row_blocks(&self, in_features: usize, out_features: usize) -> Vec<(usize, usize)> {
        let limit = self.arena.gpu.limits.max_storage_buffer_binding_size;
        weight_row_blocks(in_features, out_features, limit, self.arena.view_alignment())
            .expect("check_binding_limits refused weights whose rows do not fit")
    }
}

/// For each node of `graph`, whether it is a convolution or linear layer whose value only a ReLU
/// reads, and no loss (`losses`): such a layer writes the ReLU's value itself. PyTorch's ReLU
/// gradient reads the ReLU's result too (`threshold_backward(grad, result, 0)`), so the gradient is
/// unchanged, NaN included.
pub(super) fn fused_relus(graph: &Graph, losses: &[NodeId]) -> Vec<bool> {
    let readers = graph.training_readers();
    let mut fused = vec![false; graph.len()];
    for (id, node) in graph.training_nodes() {
        let relu_reader = match readers[id.index()][..] {
            [reader] => matches!(graph.node(reader).op, Op::Activation(Activation::Relu)),
            _ => false,
        };
        fused[id.index()] =
            relu_reader && matches!(node.op, Op::Conv2d(_) | Op::Linear { .. }) && !losses.contains(&id);
    }
    fused
}

/// For each ReLU whose gradient the layer after it can apply while writing its own input
/// gradient, that layer: a max or average pooling, or a linear layer, that is the ReLU's only
/// gradient contribution (`contributions`; a loss head's gradient is not counted there, so a ReLU
/// that is one is left alone), where the backward computes both input gradients (`backward`). The
/// pooling's kernel reads the ReLU's output anyway and the linear layer's has a binding free for
/// it, so the mask costs a load per element and the ReLU's dispatch goes.
pub(super) fn relus_masked(graph: &Graph, backward: &Backward, contributions: &[usize]) -> Vec<Option<NodeId>> {
    let input_grad = |node: NodeId| backward.steps.iter().any(|s| s.node == node && s.input_grads[0]);
    let mut masks = vec![None; graph.len()];
    for (id, node) in graph.training_nodes() {
        if !matches!(node.op, Op::MaxPool(_) | Op::AvgPool(_) | Op::Linear { .. }) {
            continue;
        }
        let relu = node.inputs[0];
        let is_relu = matches!(graph.node(relu).op, Op::Activation(Activation::Relu));
        let head = backward.losses.iter().any(|(node, _)| *node == relu);
        if is_relu && !head && contributions[relu.index()] == 1 && input_grad(id) && input_grad(relu) {
            masks[relu.index()] = Some(id);
        }
    }
    masks
}

/// What the GPU trainer cannot run yet, as an error naming the layer: every op trains, but of
/// broadcast products only those of two equal shapes and per-channel gates (squeeze-and-excitation).
pub(super) fn supported(graph: &Graph) -> Result<(), RuntimeError> {
    for (_, node) in graph.training_nodes().filter(|(_, node)| matches!(node.op, Op::Mul)) {
        let shapes: Vec<&[usize]> = node.inputs.iter().map(|i| graph.node(*i).shape.dims()).collect();
        let gate = |s: &[usize]| matches!(s, [_, 1, 1]);
        let ok = match shapes[..] {
            [a, b] => a == b || (a.len() == 3 && b.len() == 3 && a[0] == b[0] && (gate(a) || gate(b))),
            _ => false,
        };
        if !ok {
            return Err(RuntimeError::Unsupported {
                layer: node.path.clone(),
                span: node.span,
                what: "GPU training has no kernels for products other than of two equal shapes or a per-channel gate \
                       yet; train this model with the CPU reference (`CpuTrainer`, `cnnc grad --cpu`)"
                    .to_string(),
            });
        }
    }
    Ok(())
}
