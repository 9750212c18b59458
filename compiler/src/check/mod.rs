//! Stage 3 — shape checking: each op's pure shape rule, and the window arithmetic they share.
//! The expander calls these as it builds the graph, so every node's shape is known and checked.

mod rules;
/// Sliding-window arithmetic: defined in `cnnc-ir`, shared with the executors.
pub use cnnc_ir::window;

pub use rules::{check_size, infer, join, Blame, Declared, ShapeError, MAX_ELEMENTS};
