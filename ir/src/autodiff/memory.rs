//! What a training step keeps in memory: the forward values the backward rules read, and the
//! gradient buffers, over the timeline forward then backward.

use super::{Backward, GradStep};
use crate::graph::{Graph, Node, Op, ParamKind};

/// Which forward values a node's backward step reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    /// Per input of the node.
    pub inputs: Vec<bool>,
    /// The node's own output (softmax's backward reads it).
    pub output: bool,
}

/// The forward values `step` reads: a convolution's or linear layer's input only for its weight
/// gradient, the inputs of rules that depend on them (batch-norm, activations, max-pooling, LRN, the
/// other factors of a product), softmax's output; shape-only rules (average pooling, adds, concats,
/// copies, dropout, whose masks are recomputed) read nothing.
pub fn saved(node: &Node, step: &GradStep) -> Saved {
    let weight_grad = step.param_grads.iter().any(|p| p.kind == ParamKind::Weight);
    let first = |read: bool| {
        let mut inputs = vec![false; node.inputs.len()];
        if let Some(i) = inputs.first_mut() {
            *i = read;
        }
        inputs
    };
    let (inputs, output) = match &node.op {
        Op::Conv2d(_) | Op::Linear { .. } => (first(weight_grad), false),
        Op::BatchNorm { .. }
        | Op::Activation(_)
        | Op::MaxPool(_)
        | Op::AdaptiveMaxPool { .. }
        | Op::LocalResponseNorm { .. } => (first(true), false),
        Op::Mul => (vec![true; node.inputs.len()], false),
        Op::Softmax => (first(false), true),
        _ => (first(false), false),
    };
    Saved { inputs, output }
}

/// The memory of one training step at some batch size, in f32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepMemory {
    /// The most bytes of activations and activation gradients live at once.
    pub peak_bytes: u64,
    /// Forward values still live when the forward ends (kept for the backward pass).
    pub saved_bytes: u64,
}

/// The step's activation memory at `batch`: each forward value lives from its node until its last
/// forward reader or backward step that reads it, and each gradient from its first contribution to
/// its node's backward step. Parameters, their gradients and optimizer state are not included.
pub fn step_memory(graph: &Graph, backward: &Backward, batch: u64) -> StepMemory {
    let nodes: Vec<_> = graph.training_nodes().collect();
    let forward_len = nodes.len();
    let bytes = |id: crate::graph::NodeId| graph.node(id).shape.elements() * batch * 4;
    let mut position = vec![usize::MAX; graph.len()];
    for (t, (id, _)) in nodes.iter().enumerate() {
        position[id.index()] = t;
    }
    // Value lifetimes: [born, dies] in timeline positions (forward 0.., then backward steps).
    let mut dies: Vec<usize> = (0..graph.len()).map(|i| position[i]).collect();
    for (t, (_, node)) in nodes.iter().enumerate() {
        for i in &node.inputs {
            dies[i.index()] = dies[i.index()].max(t);
        }
    }
    let mut grad_born = vec![usize::MAX; graph.len()];
    let mut grad_dies = vec![usize::MAX; graph.len()];
    // The loss reads the logits of the output and of each auxiliary head.
    for (head, _) in &backward.losses {
        dies[head.index()] = forward_len;
        grad_born[head.index()] = forward_len;
    }
    for (k, step) in backward.steps.iter().enumerate() {
        let t = forward_len + 1 + k;
        let node = graph.node(step.node);
        let s = saved(node, step);
        for (i, input) in node.inputs.iter().enumerate() {
            if s.inputs[i] {
                dies[input.index()] = dies[input.index()].max(t);
            }
            if step.input_grads[i] {
                grad_born[input.index()] = grad_born[input.index()].min(t);
            }
        }
        if s.output {
            dies[step.node.index()] = dies[step.node.index()].max(t);
        }
        grad_dies[step.node.index()] = t;
    }
    let end = forward_len + 1 + backward.steps.len();
    let mut live = vec![0u64; end + 1];
    for (id, _) in &nodes {
        let i = id.index();
        for slot in &mut live[position[i]..=dies[i].min(end)] {
            *slot += bytes(*id);
        }
        if grad_born[i] != usize::MAX && grad_dies[i] != usize::MAX {
            for slot in &mut live[grad_born[i]..=grad_dies[i]] {
                *slot += bytes(*id);
            }
        }
    }
    let saved_bytes = nodes.iter().filter(|(id, _)| dies[id.index()] >= forward_len).map(|(id, _)| bytes(*id)).sum();
    StepMemory { peak_bytes: live.into_iter().max().unwrap_or(0), saved_bytes }
}
