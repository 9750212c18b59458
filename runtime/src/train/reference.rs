//! The training step of the CPU reference executor, all in f64: the training-mode forward (batch-norm
//! with batch statistics, dropout and stochastic depth active), the loss, and the backward work the
//! autodiff pass planned, one rule per op from `cpu::backward`. It is the oracle that GPU training is
//! judged against, and is itself checked against finite differences and PyTorch.

use cnnc_ir::autodiff::Backward;
use cnnc_ir::graph::{Graph, Node, NodeId, Op, ParamKind};

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
    let want = graph.node(graph.input).shape.dims();
    if input.shape.len() != want.len() + 1 || &input.shape[1..] != want || input.shape[0] == 0 {
        return Err(RuntimeError::InputShape { item: want.to_vec(), found: input.shape.clone() });
    }
    if let Some(p) = graph.training_nodes().flat_map(|(_, n)| &n.params).find(|p| weights.get(&p.name).is_none()) {
        return Err(RuntimeError::MissingWeight { name: p.name.clone() });
    }
    let forward = Forward::run(graph, weights, input, options)?;
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
    Ok(StepResult { loss, logits, gradients, running })
}

/// The training-mode forward: every value kept for the backward pass.
struct Forward {
    values: Vec<Option<T64>>,
    stats: Vec<Option<BatchStats>>,
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
        Ok(Forward { values, stats })
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
            Op::Activation(a) => backward::activation(dy, x[0], *a),
            Op::MaxPool(p) => backward::max_pool(dy, x[0], p),
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
