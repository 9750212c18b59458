//! Stage 3 — shape checking: each op's pure shape rule, and the window arithmetic they share.
//! The expander calls these as it builds the graph, so every node's shape is known and checked.

mod rules;
pub mod window;

pub use rules::{check_size, infer, join, Blame, Declared, ShapeError, MAX_ELEMENTS};
