//! The training step of the CPU reference executor, all in f64: the training-mode forward (batch-norm
//! with batch statistics, dropout and stochastic depth active), the loss, and the backward work the
//! autodiff pass planned, one rule per op from `cpu::backward`. It is the oracle that GPU training is
//! judged against, and is itself checked against finite differences and PyTorch.

use cnnc_ir::autodiff::Backward;
use cnnc_ir::graph::{Activation, Graph, Node, NodeId, Op, ParamKind, Pool2d};

use super::rng;
use crate::cpu::{backward, ops};
use crate::train::CrossEntropy;
use crate::weights::Weights;
use crate::{RuntimeError, Tensor};

type T64 = Tensor<f64>;

/// How one training step runs.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOptions {
    pub loss: CrossEntropy,
    /// Dropout and stochastic depth active (`false`: both are the identity, for comparisons).
    pub dropout: bool,
    /// Seed and step number of the dropout masks.
    pub seed: u64,
    pub step: u64,
}

impl Default for StepOptions {
    fn default() -> StepOptions {
        StepOptions { loss: CrossEntropy::default(), dropout: true, seed: 0, step: 0 }
    }
}

/// What one step computes.
#[derive(Clone, Debug)]
pub struct StepResult {
    /// The mean loss over the batch (the output's cross-entropy plus each auxiliary head's, weighted).
    pub loss: f64,
    /// The training-mode forward's output, `[N, K]`.
    pub logits: T64,
    /// The gradient of every trainable parameter, under the parameter's name.
    pub gradients: Weights<f64>,
    /// Every batch-norm's running mean and variance after the step's update, under their names.
    pub running: Weights<f64>,
}

/// Batch statistics of one batch-norm: per-channel mean and biased variance.
struct BatchStats {
    mean: Vec<f64>,
    var: Vec<f64>,
}

/// Runs one training step on `input` (`[N, ...item]`) with class `labels` (one per item) and returns
/// the loss, gradients and updated running statistics; `weights` are not changed.
///
/// # Errors
/// A wrong input shape, a missing weight, labels that do not fit ([`RuntimeError::Labels`]), or a
/// batch-norm over one value per channel.
pub fn step(
    graph: &Graph,
    backward: &Backward,
    weights: &Weights<f64>,
    input: &T64,
    labels: &[usize],
    options: &StepOptions,
) -> Result<StepResult, RuntimeError> {
    Ok(step_on_branches(graph, backward, weights, input, labels, options, &[])?.0)
}

/// Where another executor's forward took other branches than this one's at one node
/// ([`step_on_branches`]).
#[derive(Clone, Debug)]
pub struct BranchReport {
    /// The activation or max-pooling.
    pub node: NodeId,
    /// Each element (its index in the node's `[N, ...shape]` output) whose branch differs, with its
    /// margin: how far the f64 forward is from the other executor's branch. For an activation, the
    /// f64 input's distance to the kink between the two pieces; for a max-pooling, the gap between
    /// its window's f64 maximum and the f64 value of the element the other executor took. Infinite
    /// where NaN is involved.
    pub flips: Vec<(usize, f64)>,
    /// The largest margin the other executor's own error in this layer explains: an activation's
    /// largest output difference from the f64 forward's (over the elements both put on one piece),
    /// twice a max-pooling's largest input difference (a gap between two inputs moves by both their
    /// errors). NaN where a given value is NaN and the f64 one is not, or the other way round.
    pub explained: f64,
}

/// The nodes whose values [`step_on_branches`] takes from another executor: every piecewise-linear
/// activation whose output tells its pieces apart exactly (ReLU, ReLU6, leaky ReLU with a slope of
/// at least 0), and the input of every max-pooling. Adaptive max-pooling's windows and the kinks
/// of hardswish and hardsigmoid are not taken.
pub fn branch_nodes(graph: &Graph) -> Vec<NodeId> {
    let mut nodes = Vec::new();
    for (id, node) in graph.training_nodes() {
        match node.op {
            Op::Activation(a) if backward::is_piecewise_linear(a) => nodes.push(id),
            Op::MaxPool(_) => nodes.push(node.inputs[0]),
            _ => {}
        }
    }
    nodes.sort_by_key(|id| id.index());
    nodes.dedup();
    nodes
}

/// [`step`], with the backward taking the branches another executor's forward took:
/// `branches` holds that executor's values of some nodes ([`branch_nodes`]), `[N, ...shape]`. A
/// piecewise-linear activation whose output is given takes, at each element, the piece the given
/// output lies on; a max-pooling whose input is given routes each gradient to the given window's
/// maximum. Float32 arithmetic puts a value within its rounding error of a kink (or of its window's
/// maximum) on either side, each equally valid, and one element's side can move a whole layer's
/// gradients. This is the f64 gradient of the branch the other executor took, which judges its
/// arithmetic apart from that choice; the reports say where the branches differ, so that a caller
/// can check each lies within float32's error of the f64 forward's. Given values of other nodes
/// (an activation that is not piecewise linear, say) are checked for shape and not used.
///
/// # Errors
/// Those of [`step`]; [`RuntimeError::Branch`] for a node outside the step or a value of the wrong
/// shape.
pub fn step_on_branches(
    graph: &Graph,
    backward: &Backward,
    weights: &Weights<f64>,
    input: &T64,
    labels: &[usize],
    options: &StepOptions,
    branches: &[(NodeId, Tensor<f32>)],
) -> Result<(StepResult, Vec<BranchReport>), RuntimeError> {
    let want = graph.node(graph.input).shape.dims();
    if input.shape.len() != want.len() + 1 || &input.shape[1..] != want || input.shape[0] == 0 {
        return Err(RuntimeError::InputShape { item: want.to_vec(), found: input.shape.clone() });
    }
    if let Some(p) = graph.training_nodes().flat_map(|(_, n)| &n.params).find(|p| weights.get(&p.name).is_none()) {
        return Err(RuntimeError::MissingWeight { name: p.name.clone() });
    }
    let mut forward = Forward::run(graph, weights, input, options)?;
    let reports = forward.take_branches(graph, branches)?;
    let logits = forward.values[graph.output.index()].clone().expect("the output runs");
    // The output's cross-entropy plus each auxiliary head's, weighted; each head's logits gradient
    // is scaled by its weight.
    let mut loss = 0.0;
    let mut seeds = Vec::new();
    for (head, weight) in &backward.losses {
        let (l, mut dlogits) = options.loss.loss_and_grad(forward.value(*head), labels)?;
        loss += weight * l;
        dlogits.data.iter_mut().for_each(|g| *g *= weight);
        seeds.push((*head, dlogits));
    }
    let gradients = forward.backward(graph, backward, weights, seeds, options);
    let running = forward.running_statistics(graph, weights);
    Ok((StepResult { loss, logits, gradients, running }, reports))
}

/// The training-mode forward: every value kept for the backward pass.
struct Forward {
    values: Vec<Option<T64>>,
    stats: Vec<Option<BatchStats>>,
    /// For an activation whose pieces another executor chose ([`step_on_branches`]), the input its
    /// backward takes: the f64 input, or a stand-in on the other piece where they differ.
    piece_inputs: Vec<Option<T64>>,
    /// For a max-pooling whose input another executor gave, that input: each window's maximum is
    /// taken from it.
    pool_inputs: Vec<Option<T64>>,
}

fn param<'w>(node: &Node, weights: &'w Weights<f64>, kind: ParamKind) -> &'w T64 {
    let p = node.params.iter().find(|p| p.kind == kind).expect("the op declares this parameter");
    weights.get(&p.name).expect("weights checked before the forward")
}

impl Forward {
    fn run(graph: &Graph, weights: &Weights<f64>, input: &T64, options: &StepOptions) -> Result<Forward, RuntimeError> {
        let mut values: Vec<Option<T64>> = vec![None; graph.len()];
        let mut stats: Vec<Option<BatchStats>> = (0..graph.len()).map(|_| None).collect();
        for (id, node) in graph.training_nodes() {
            crate::memory::reserve_output::<f64>(node, input.shape[0])?;
            let x: Vec<&T64> =
                node.inputs.iter().map(|i| values[i.index()].as_ref().expect("inputs run first")).collect();
            let out = match &node.op {
                Op::Input => input.clone(),
                Op::Conv2d(c) => ops::conv2d(
                    x[0],
                    c,
                    param(node, weights, ParamKind::Weight),
                    c.bias.then(|| param(node, weights, ParamKind::Bias)),
                ),
                Op::Linear { bias, .. } => ops::linear(
                    x[0],
                    param(node, weights, ParamKind::Weight),
                    bias.then(|| param(node, weights, ParamKind::Bias)),
                ),
                Op::BatchNorm { eps, .. } => {
                    let s = batch_stats(x[0]);
                    if x[0].len() / s.mean.len() < 2 {
                        return Err(RuntimeError::BatchTooSmall { layer: node.path.clone(), span: node.span });
                    }
                    let (mean, var) = (
                        Tensor::new(vec![s.mean.len()], s.mean.clone()),
                        Tensor::new(vec![s.var.len()], s.var.clone()),
                    );
                    let y = ops::batch_norm(
                        x[0],
                        param(node, weights, ParamKind::Weight),
                        param(node, weights, ParamKind::Bias),
                        &mean,
                        &var,
                        *eps,
                    );
                    stats[id.index()] = Some(s);
                    y
                }
                Op::Activation(a) => ops::activation(x[0], *a),
                Op::MaxPool(p) => ops::max_pool(x[0], p),
                Op::AvgPool(p) => ops::avg_pool(x[0], p),
                Op::AdaptiveAvgPool { size } => ops::adaptive_pool(x[0], *size, false),
                Op::AdaptiveMaxPool { size } => ops::adaptive_pool(x[0], *size, true),
                Op::Flatten => Tensor::new(vec![x[0].batch(), x[0].item_len()], x[0].data.clone()),
                Op::Dropout { p } | Op::StochasticDepth { p } => {
                    let scales = drop_scales(id, &node.op, x[0], *p, options);
                    Tensor::new(x[0].shape.clone(), x[0].data.iter().zip(&scales).map(|(v, s)| v * s).collect())
                }
                Op::Concat => ops::concat(&x),
                Op::Add => ops::add(&x),
                Op::Mul => ops::mul(&x),
                Op::ChannelShuffle { groups } => ops::channel_shuffle(x[0], *groups),
                Op::Chunk { chunks, index } => ops::chunk(x[0], *chunks, *index),
                Op::LocalResponseNorm { size, alpha, beta, k } => ops::lrn(x[0], *size, *alpha, *beta, *k),
                Op::Softmax => ops::softmax(x[0]),
                Op::ChannelAffine { scale, shift } => ops::channel_affine(x[0], scale, shift),
            };
            values[id.index()] = Some(out);
        }
        Ok(Forward { values, stats, piece_inputs: vec![None; graph.len()], pool_inputs: vec![None; graph.len()] })
    }

    /// Takes the branches of `branches` for the backward; reports where they differ.
    fn take_branches(
        &mut self,
        graph: &Graph,
        branches: &[(NodeId, Tensor<f32>)],
    ) -> Result<Vec<BranchReport>, RuntimeError> {
        let mut given: Vec<Option<T64>> = vec![None; graph.len()];
        for (id, values) in branches {
            let ours = self.values.get(id.index()).and_then(Option::as_ref);
            let Some(ours) = ours else {
                return Err(RuntimeError::Branch(format!("node {} is not a value of the step", id.index())));
            };
            if values.shape != ours.shape {
                let path = &graph.node(*id).path;
                let (want, found) = (&ours.shape, &values.shape);
                return Err(RuntimeError::Branch(format!("`{path}` is {want:?} in this step, given {found:?}")));
            }
            given[id.index()] = Some(values.convert());
        }
        let mut reports = Vec::new();
        for (id, node) in graph.training_nodes() {
            match &node.op {
                Op::Activation(a) if backward::is_piecewise_linear(*a) => {
                    let Some(output) = &given[id.index()] else { continue };
                    let (taken, report) = self.pieces(id, node, *a, output);
                    self.piece_inputs[id.index()] = Some(taken);
                    reports.push(report);
                }
                Op::MaxPool(p) => {
                    let Some(x) = &given[node.inputs[0].index()] else { continue };
                    reports.push(self.window_maxima(id, node, p, x));
                    self.pool_inputs[id.index()] = Some(x.clone());
                }
                _ => {}
            }
        }
        Ok(reports)
    }

    /// The input an activation's backward takes where another executor's forward gave `output`:
    /// the f64 input, or a stand-in on the other piece where that output lies on another.
    fn pieces(&self, id: NodeId, node: &Node, a: Activation, output: &T64) -> (T64, BranchReport) {
        let (x, y) = (self.value(node.inputs[0]), self.value(id));
        let mut report = BranchReport { node: id, flips: Vec::new(), explained: 0.0 };
        let mut taken = x.clone();
        for (i, (g, (x, y))) in output.data.iter().zip(x.data.iter().zip(&y.data)).enumerate() {
            let stand_in = backward::input_on_piece(a, *g).expect("only piecewise-linear activations are taken");
            if backward::on_other_pieces(a, *x, stand_in) {
                report.flips.push((i, backward::distance_to_piece(a, *x, stand_in)));
                taken.data[i] = stand_in;
            } else {
                report.explained = nan_max(report.explained, difference(*g, *y));
            }
        }
        (taken, report)
    }

    /// Where a max-pooling's window maxima over another executor's input `x` differ from the f64
    /// forward's.
    fn window_maxima(&self, id: NodeId, node: &Node, p: &Pool2d, x: &T64) -> BranchReport {
        let ours = self.value(node.inputs[0]);
        let mut report = BranchReport { node: id, flips: Vec::new(), explained: 0.0 };
        let theirs = backward::max_pool_argmax(x, p);
        for (i, pair) in backward::max_pool_argmax(ours, p).into_iter().zip(theirs).enumerate() {
            if let (Some(a), Some(b)) = pair {
                if a != b {
                    let gap = ours.data[a] - ours.data[b];
                    report.flips.push((i, if gap.is_nan() { f64::INFINITY } else { gap }));
                }
            }
        }
        let error = x.data.iter().zip(&ours.data).map(|(g, v)| difference(*g, *v)).fold(0.0, nan_max);
        report.explained = 2.0 * error;
        report
    }

    fn value(&self, id: NodeId) -> &T64 {
        self.values[id.index()].as_ref().expect("the forward keeps every value")
    }

    /// Runs the planned backward steps from the loss's gradient for each head's logits; returns the
    /// parameter gradients.
    fn backward(
        &self,
        graph: &Graph,
        plan: &Backward,
        weights: &Weights<f64>,
        seeds: Vec<(NodeId, T64)>,
        options: &StepOptions,
    ) -> Weights<f64> {
        let mut grads: Vec<Option<T64>> = vec![None; graph.len()];
        for (head, dlogits) in seeds {
            grads[head.index()] = Some(dlogits);
        }
        let mut out = Weights::default();
        for step in &plan.steps {
            let node = graph.node(step.node);
            let dy = grads[step.node.index()].take().expect("a node's readers run their backward before it");
            let x: Vec<&T64> = node.inputs.iter().map(|i| self.value(*i)).collect();
            for (i, input) in node.inputs.iter().enumerate().filter(|(i, _)| step.input_grads[*i]) {
                let dx = self.input_grad(step.node, node, i, &x, &dy, weights, options);
                match &mut grads[input.index()] {
                    Some(acc) => acc.data.iter_mut().zip(&dx.data).for_each(|(a, d)| *a += d),
                    slot => *slot = Some(dx),
                }
            }
            for p in &step.param_grads {
                out.insert(p.name.clone(), self.param_grad(step.node, node, p.kind, &x, &dy));
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn input_grad(
        &self,
        id: NodeId,
        node: &Node,
        i: usize,
        x: &[&T64],
        dy: &T64,
        weights: &Weights<f64>,
        options: &StepOptions,
    ) -> T64 {
        match &node.op {
            Op::Input => unreachable!("the input has no backward step"),
            Op::Conv2d(c) => backward::conv2d_input(dy, c, param(node, weights, ParamKind::Weight), &x[0].shape),
            Op::Linear { .. } => backward::linear_input(dy, param(node, weights, ParamKind::Weight), &x[0].shape),
            Op::BatchNorm { eps, .. } => {
                let s = self.stats[id.index()].as_ref().expect("batch-norm keeps its statistics");
                backward::batch_norm_input(dy, x[0], param(node, weights, ParamKind::Weight), &s.mean, &s.var, *eps)
            }
            Op::Activation(a) => backward::activation(dy, self.piece_inputs[id.index()].as_ref().unwrap_or(x[0]), *a),
            Op::MaxPool(p) => backward::max_pool(dy, self.pool_inputs[id.index()].as_ref().unwrap_or(x[0]), p),
            Op::AvgPool(p) => backward::avg_pool(dy, &x[0].shape, p),
            Op::AdaptiveAvgPool { size } => backward::adaptive_pool(dy, x[0], *size, false),
            Op::AdaptiveMaxPool { size } => backward::adaptive_pool(dy, x[0], *size, true),
            Op::Flatten => Tensor::new(x[0].shape.clone(), dy.data.clone()),
            Op::Dropout { p } | Op::StochasticDepth { p } => {
                let scales = drop_scales(id, &node.op, x[0], *p, options);
                Tensor::new(dy.shape.clone(), dy.data.iter().zip(&scales).map(|(g, s)| g * s).collect())
            }
            Op::Concat => {
                let offset = x[..i].iter().map(|t| t.shape[1]).sum();
                backward::channel_slice(dy, offset, x[i].shape[1])
            }
            Op::Add => dy.clone(),
            Op::Mul => backward::mul(dy, x, i),
            Op::ChannelShuffle { groups } => ops::channel_shuffle(dy, dy.shape[1] / groups),
            Op::Chunk { chunks, index } => backward::chunk(dy, &x[0].shape, *chunks, *index),
            Op::LocalResponseNorm { size, alpha, beta, k } => backward::lrn(dy, x[0], *size, *alpha, *beta, *k),
            Op::Softmax => backward::softmax(dy, self.value(id)),
            Op::ChannelAffine { scale, .. } => backward::channel_affine(dy, scale),
        }
    }

    fn param_grad(&self, id: NodeId, node: &Node, kind: ParamKind, x: &[&T64], dy: &T64) -> T64 {
        match (&node.op, kind) {
            (Op::Conv2d(c), ParamKind::Weight) => backward::conv2d_weight(dy, c, x[0]),
            (Op::Linear { in_features, .. }, ParamKind::Weight) => backward::linear_weight(dy, x[0], *in_features),
            (Op::Linear { out_features, .. }, ParamKind::Bias) => {
                let mut sums = vec![0f64; *out_features];
                for row in dy.data.chunks(*out_features) {
                    sums.iter_mut().zip(row).for_each(|(s, g)| *s += g);
                }
                Tensor::new(vec![*out_features], sums)
            }
            (Op::BatchNorm { eps, .. }, ParamKind::Weight) => {
                let s = self.stats[id.index()].as_ref().expect("batch-norm keeps its statistics");
                backward::batch_norm_weight(dy, x[0], &s.mean, &s.var, *eps)
            }
            (Op::Conv2d(_) | Op::BatchNorm { .. }, ParamKind::Bias) => backward::channel_sum(dy),
            (op, kind) => unreachable!("autodiff trains only weights and biases, not {kind:?} of {}", op.name()),
        }
    }

    /// Running mean and variance after PyTorch's update:
    /// `running = (1 − momentum)·running + momentum·batch`, with the unbiased batch variance.
    fn running_statistics(&self, graph: &Graph, weights: &Weights<f64>) -> Weights<f64> {
        let mut out = Weights::default();
        for (id, node) in graph.training_nodes() {
            let (Op::BatchNorm { momentum, .. }, Some(s)) = (&node.op, &self.stats[id.index()]) else { continue };
            let count = (self.value(node.inputs[0]).len() / s.mean.len()) as f64;
            for (kind, batch) in [
                (ParamKind::RunningMean, s.mean.clone()),
                (ParamKind::RunningVar, s.var.iter().map(|v| v * count / (count - 1.0)).collect()),
            ] {
                let p = node.params.iter().find(|p| p.kind == kind).expect("batch-norm declares running statistics");
                let old = weights.get(&p.name).expect("weights checked before the forward");
                let new = old.data.iter().zip(&batch).map(|(r, b)| (1.0 - momentum) * r + momentum * b).collect();
                out.insert(p.name.clone(), Tensor::new(old.shape.clone(), new));
            }
        }
        out
    }
}

/// How far apart two values of one element are: 0 where equal (infinities too), NaN where one is NaN.
fn difference(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs()
    }
}

/// The larger of `a` and `b`, NaN if either is, so that a NaN difference is not passed over.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Per-channel mean and biased variance over batch and positions (two passes, for accuracy).
fn batch_stats(x: &T64) -> BatchStats {
    let (n, c) = (x.batch(), x.shape[1]);
    let inner = x.item_len() / c;
    let count = (n * inner) as f64;
    let channel = |ch: usize| (0..n).flat_map(move |b| (b * c + ch) * inner..(b * c + ch + 1) * inner);
    let mean: Vec<f64> = (0..c).map(|ch| channel(ch).map(|i| x.data[i]).sum::<f64>() / count).collect();
    let var = (0..c).map(|ch| channel(ch).map(|i| (x.data[i] - mean[ch]).powi(2)).sum::<f64>() / count).collect();
    BatchStats { mean, var }
}

/// The scale of every element of a dropout (one draw per element) or stochastic depth (one draw per
/// item, torchvision's "row" mode) in this step; all 1 when dropout is off.
fn drop_scales(id: NodeId, op: &Op, x: &T64, p: f64, options: &StepOptions) -> Vec<f64> {
    if !options.dropout {
        return vec![1.0; x.len()];
    }
    let key = rng::key(options.seed, options.step, id.index());
    let per_item = matches!(op, Op::StochasticDepth { .. });
    let item = x.item_len();
    (0..x.len()).map(|e| rng::keep_scale(key, if per_item { e / item } else { e }, p)).collect()
}
