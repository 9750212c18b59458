//! Stage 6b — Rust code generation: a checked model becomes a Rust module holding one struct named
//! after the model, with one field per layer (its GPU work, built once) and a `forward` that
//! records them in order. The command line (`cnnc build`) and the `model!` macro both call
//! [`generate`], so their output is the same.
//!
//! The module is built as tokens with `quote` (one literal function per compiler type in
//! `literal.rs`), formatted with `prettyplease`, and given a comment per layer (`model.rs`).

mod krate;
mod literal;
mod model;
mod modules;
mod names;

pub use krate::{main_rs, manifest, package_name};
pub use model::generate;
pub use names::struct_name;
