//! Passes 3 and 4: epilogue fusion. A residual add whose one operand is a convolution read only by
//! the add (and whose other operand is computed before that convolution) becomes part of the
//! convolution; an activation that is the only reader of a node with an epilogue runs in it.

use std::collections::HashMap;

use super::rewrite::merge_into;
use crate::graph::{Activation, Graph, NodeId, Op};

/// Whether `op`'s kernels can apply an activation to their result.
fn has_epilogue(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv2d(_)
            | Op::Linear { .. }
            | Op::BatchNorm { .. }
            | Op::MaxPool(_)
            | Op::AvgPool(_)
            | Op::AdaptiveAvgPool { .. }
            | Op::AdaptiveMaxPool { .. }
            | Op::Add
            | Op::Mul
            | Op::LocalResponseNorm { .. }
            | Op::ChannelAffine { .. }
    )
}

/// The graph with two-operand residual adds fused into the convolution that produces one operand.
pub fn fuse_residual_add(graph: &Graph) -> Graph {
    let readers = graph.readers();
    // Convolution → (the add, the other operand).
    let mut fusions: HashMap<NodeId, (NodeId, NodeId)> = HashMap::new();
    for (id, node) in graph.inference_nodes() {
        let (Op::Add, &[a, b]) = (&node.op, &node.inputs[..]) else { continue };
        for (conv, other) in [(a, b), (b, a)] {
            let producer = graph.node(conv);
            let fusable = matches!(producer.op, Op::Conv2d(_))
                && !producer.fused.residual
                && producer.fused.activation.is_none()
                && readers[conv.index()] == [id]
                && conv != graph.output
                && other < conv;
            if fusable {
                fusions.insert(conv, (id, other));
                break;
            }
        }
    }
    let fused_adds: HashMap<NodeId, NodeId> = fusions.iter().map(|(conv, (add, _))| (*add, *conv)).collect();
    merge_into(graph, &fused_adds, |id, kept| {
        if let Some((_, other)) = fusions.get(&id) {
            kept.inputs.push(*other);
            kept.fused.residual = true;
        }
    })
}

/// The graph with each activation fused into its producer where the producer has an epilogue and
/// no other reader.
pub fn fuse_activation(graph: &Graph) -> Graph {
    let readers = graph.readers();
    // Producer → (the activation node, its function).
    let mut fusions: HashMap<NodeId, (NodeId, Activation)> = HashMap::new();
    for (id, node) in graph.inference_nodes() {
        let Op::Activation(act) = node.op else { continue };
        let input = node.inputs[0];
        let producer = graph.node(input);
        if has_epilogue(&producer.op)
            && producer.fused.activation.is_none()
            && readers[input.index()] == [id]
            && input != graph.output
        {
            fusions.insert(input, (id, act));
        }
    }
    let fused_acts: HashMap<NodeId, NodeId> = fusions.iter().map(|(p, (act, _))| (*act, *p)).collect();
    merge_into(graph, &fused_acts, |id, kept| {
        if let Some((_, act)) = fusions.get(&id) {
            kept.fused.activation = Some(*act);
        }
    })
}
