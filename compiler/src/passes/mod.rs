//! Stage 5 — lowering for inference: graph → graph passes that executors run before anything else.
//!
//! [`lower`] runs them in order: [`inference_only`] (training-only branches, dropout and stochastic
//! depth go), [`fold_batch_norm`] (into the convolution before it), [`fuse_residual_add`] and
//! [`fuse_activation`] (into the producing kernel's epilogue), [`concat_in_place`] (producers
//! write their slice of a concat's output). [`plan_buffers`] then assigns the values of the
//! lowered graph to buffers by liveness. Each pass keeps the graph's meaning; the
//! tests show each one's before and after, and the runtime's tests check the numbers are unchanged.

mod buffers;
mod concat;
mod fold_bn;
mod fuse;
mod inference;
mod layers;
mod listing;
mod rewrite;

pub use buffers::{plan_buffers, BufferPlan};
pub use concat::concat_in_place;
pub use fold_bn::fold_batch_norm;
pub use fuse::{fuse_activation, fuse_residual_add};
pub use inference::inference_only;
pub use layers::{inference_plan, layer_plan};
pub use listing::listing;

use crate::graph::Graph;

/// The graph lowered for inference: every pass, in order.
pub fn lower(graph: &Graph) -> Graph {
    let graph = inference_only(graph);
    let graph = fold_batch_norm(&graph);
    let graph = fuse_residual_add(&graph);
    let graph = fuse_activation(&graph);
    concat_in_place(&graph)
}

#[cfg(test)]
mod tests;
