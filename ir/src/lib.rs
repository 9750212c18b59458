//! cnnc's intermediate representation: what the compiler produces and the runtime and generated
//! code consume, with no parser or diagnostics renderer attached.
//!
//! - [`graph`]: the static graph (nodes in an arena addressed by typed `NodeId`s, a closed `Op`,
//!   shapes, parameters with their state_dict names, the weight table, model metadata);
//! - [`plan`]: the lowered graph as a [`plan::LayerPlan`] over typed values and buffer slots, checked
//!   once into a [`plan::ValidPlan`];
//! - [`autodiff`]: the backward work of a training step, planned on the static graph;
//! - [`window`]: sliding-window arithmetic (PyTorch's output-size formulas);
//! - [`span`]: byte spans into spec files, which nodes and layers keep.

pub mod autodiff;
pub mod graph;
pub mod plan;
pub mod span;
pub mod window;

pub use graph::Graph;
pub use plan::{LayerPlan, PlanError, ValidPlan};
pub use span::Span;
