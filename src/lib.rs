//! cnnc: a declarative CNN model-spec compiler.
//!
//! This crate is the user-facing facade: it re-exports the compiler and renders its
//! diagnostics the way the `cnnc` command prints them.

pub mod conformance;
pub mod view;

pub use cnnc_compiler as compiler;
pub use cnnc_compiler::render;
pub use cnnc_compiler::{compile_bytes, compile_path, inference_plan, Compilation, Diagnostic, Expanded, Graph};
/// `model!("specs/lenet.yaml")`: the spec as Rust, generated at compile time (see `cnnc-macros`).
pub use cnnc_macros::model;
pub use cnnc_runtime as runtime;
