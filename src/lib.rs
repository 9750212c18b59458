//! cnnc: a declarative CNN model-spec compiler.
//!
//! This crate is the user-facing facade: it re-exports the compiler and renders its
//! diagnostics the way the `cnnc` command prints them.

pub mod render;
pub mod view;

pub use cnnc_compiler as compiler;
pub use cnnc_compiler::{compile_bytes, compile_path, Compilation, Diagnostic, Expanded, Graph};
pub use cnnc_runtime as runtime;
