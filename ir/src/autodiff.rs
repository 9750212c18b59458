//! Autodiff on the static graph: from a checked graph, the loss on its output (plus the weighted
//! losses of its auxiliary heads) and the set of trainable parameters, the backward work of one
//! training step, decided before anything runs.
//!
//! The backward pass visits the forward nodes in reverse order. Each [`GradStep`] takes the gradient
//! of its node's output (the sum of what the node's readers contributed, added in reader order so
//! that the result never depends on scheduling) and produces the gradients of the inputs that need
//! one and of the node's trainable parameters. An input needs a gradient only when a trainable
//! parameter lies at or below it: frozen parameters get no weight gradient, and nothing below the
//! lowest trainable layer gets an input gradient, so training only a head costs little more than a
//! forward pass. A gradient has the shape of the value it belongs to, which the graph's shape rules
//! already checked.

mod memory;

pub use memory::{saved, step_memory, Saved, StepMemory};

use std::fmt;

use crate::graph::{Graph, NodeId, Op, Param};
use crate::span::Span;

/// The backward work of one node.
#[derive(Clone, Debug, PartialEq)]
pub struct GradStep {
    pub node: NodeId,
    /// For each input of the node, in order: whether its gradient is computed.
    pub input_grads: Vec<bool>,
    /// The node's parameters whose gradients are computed, in state_dict order.
    pub param_grads: Vec<Param>,
}

/// The backward work of a training step over a graph's [training nodes](Graph::training_nodes), with
/// the loss on the output node and on each auxiliary head.
#[derive(Clone, Debug, PartialEq)]
pub struct Backward {
    /// The cross-entropy terms of the loss: `(node, weight)`, the output with weight 1 first, then
    /// each auxiliary head (`[K]` class scores, like the output) with its declared weight.
    pub losses: Vec<(NodeId, f64)>,
    /// In execution order: the reverse of the forward order.
    pub steps: Vec<GradStep>,
    /// Every parameter that gets a gradient, in state_dict order.
    pub trainable: Vec<Param>,
    /// Per node (arena index): whether the gradient of its output is computed.
    needs_grad: Vec<bool>,
}

impl Backward {
    /// Whether the gradient of `node`'s output is computed.
    pub fn needs_grad(&self, node: NodeId) -> bool {
        self.needs_grad[node.index()]
    }
}

/// Why a graph cannot be differentiated.
#[derive(Clone, Debug, PartialEq)]
pub enum AutodiffError {
    /// The predicate selected no parameter the loss depends on.
    NothingTrainable,
    /// The output is not `[K]` class scores, which cross-entropy needs.
    OutputNotLogits { shape: Vec<usize> },
    /// An auxiliary head in the loss gives other scores than the output.
    AuxShape { head: String, span: Span, shape: Vec<usize>, output: Vec<usize> },
    /// The graph was lowered for inference (work fused into `node`); training takes the checked graph.
    Lowered { node: String, span: Span },
}

impl fmt::Display for AutodiffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AutodiffError::NothingTrainable => {
                write!(f, "no trainable parameter reaches the loss: unfreeze at least one layer with weights")
            }
            AutodiffError::OutputNotLogits { shape } => write!(
                f,
                "the model's output is {shape:?} per item; cross-entropy needs class scores [K] (end the model with a \
                 linear layer, or flatten)"
            ),
            AutodiffError::AuxShape { head, shape, output, .. } => write!(
                f,
                "the auxiliary head `{head}` gives {shape:?} per item but the output gives {output:?}: a head in the \
                 loss must score the same classes (end it with a linear layer to the output's class count)"
            ),
            AutodiffError::Lowered { node, .. } => {
                write!(f, "`{node}` has fused work: training needs the checked graph, not one lowered for inference")
            }
        }
    }
}

impl std::error::Error for AutodiffError {}

/// The backward work for a cross-entropy loss on `graph`'s output, computing the gradients of the
/// parameters `trainable` selects (weights and biases only: running statistics are never trained).
///
/// # Errors
/// [`AutodiffError`] when the output is not class scores, the graph was lowered, or no selected
/// parameter reaches the loss.
pub fn differentiate(graph: &Graph, trainable: impl Fn(&Param) -> bool) -> Result<Backward, AutodiffError> {
    let out_shape = graph.node(graph.output).shape.dims();
    if out_shape.len() != 1 {
        return Err(AutodiffError::OutputNotLogits { shape: out_shape.to_vec() });
    }
    if let Some((_, node)) = graph.training_nodes().find(|(_, n)| !n.fused.is_empty()) {
        return Err(AutodiffError::Lowered { node: node.path.clone(), span: node.span });
    }
    let mut losses = vec![(graph.output, 1.0)];
    for aux in &graph.aux_losses {
        let head = graph.node(aux.node);
        if head.shape.dims() != out_shape {
            return Err(AutodiffError::AuxShape {
                head: head.path.clone(),
                span: head.span,
                shape: head.shape.dims().to_vec(),
                output: out_shape.to_vec(),
            });
        }
        losses.push((aux.node, aux.weight));
    }
    let trained = |p: &Param| p.kind.is_trainable() && trainable(p);
    // Forward: whether a trainable parameter lies at or below each node.
    let mut upstream = vec![false; graph.len()];
    for (id, node) in graph.training_nodes() {
        upstream[id.index()] = node.params.iter().any(trained) || node.inputs.iter().any(|i| upstream[i.index()]);
    }
    // Backward: whether the loss reads each node.
    let mut reaches = vec![false; graph.len()];
    for (head, _) in &losses {
        reaches[head.index()] = true;
    }
    let order: Vec<(NodeId, &_)> = graph.training_nodes().collect();
    for (id, node) in order.iter().rev() {
        if reaches[id.index()] {
            for i in &node.inputs {
                reaches[i.index()] = true;
            }
        }
    }
    let needs_grad: Vec<bool> = upstream.iter().zip(&reaches).map(|(u, r)| *u && *r).collect();
    let steps: Vec<GradStep> = order
        .iter()
        .rev()
        .filter(|(id, node)| needs_grad[id.index()] && !matches!(node.op, Op::Input))
        .map(|(id, node)| GradStep {
            node: *id,
            input_grads: node.inputs.iter().map(|i| needs_grad[i.index()]).collect(),
            param_grads: node.params.iter().filter(|p| trained(p)).cloned().collect(),
        })
        .collect();
    let trainable: Vec<Param> = order
        .iter()
        .filter(|(id, _)| needs_grad[id.index()])
        .flat_map(|(_, node)| node.params.iter().filter(|p| trained(p)).cloned())
        .collect();
    if trainable.is_empty() {
        return Err(AutodiffError::NothingTrainable);
    }
    Ok(Backward { losses, steps, trainable, needs_grad })
}

#[cfg(test)]
mod tests;
