//! Pass 1: keep only what inference runs — training-only branches go, and so do the ops that are
//! identities at inference (dropout, stochastic depth), their readers reading their input instead.

use super::rewrite::{rebuild, Fate};
use crate::graph::{Graph, Op};

/// The graph without training-only nodes, dropout and stochastic depth.
pub fn inference_only(graph: &Graph) -> Graph {
    rebuild(graph, |_, node| match node.op {
        _ if node.training_only => Fate::Drop,
        Op::Dropout { .. } | Op::StochasticDepth { .. } => Fate::Merge(node.inputs[0]),
        _ => Fate::Keep(Box::new(node.clone())),
    })
}
