//! The cnnc compiler: model spec → checked static graph.
//!
//! The pipeline, one module per stage:
//! [`spec`] (parse YAML into the AST, follow imports) → [`expand`] (instantiate modules,
//! evaluate expressions, name layers) → [`check`] (each op's shape rule) → [`graph`]
//! (the static IR) → [`passes`] (lowering for inference: folding, fusion, buffer planning) →
//! [`summary`] (what `cnnc summary` reports) and, with the `codegen` feature, `codegen` (the
//! lowered graph as a Rust module).

// Diagnostics travel in `Err` on the cold path; their size does not matter there.
#![allow(clippy::result_large_err)]

pub mod check;
#[cfg(feature = "codegen")]
pub mod codegen;
pub mod diagnostic;
pub mod expand;
/// The static graph: defined in `cnnc-ir`, re-exported as the compiler's fourth stage.
pub use cnnc_ir::graph;
pub mod passes;
#[cfg(feature = "render")]
pub mod render;
pub mod source;
pub mod spec;
pub mod summary;

use std::path::Path;

pub use cnnc_ir as ir;
pub use diagnostic::Diagnostic;
pub use expand::Expanded;
pub use graph::Graph;
pub use passes::inference_plan;
pub use source::SourceMap;
pub use spec::load::ReadError;

/// Everything a compilation produced: the sources it read (for rendering errors) and its result.
#[derive(Debug)]
pub struct Compilation {
    pub sources: SourceMap,
    pub result: Result<Expanded, Vec<Diagnostic>>,
}

/// Compiles the spec at `path` and its imports.
pub fn compile_path(path: &Path) -> Result<Compilation, ReadError> {
    let mut sources = SourceMap::default();
    let loaded = spec::load::load(path, &mut sources)?;
    Ok(finish(sources, loaded))
}

/// Compiles a spec given as bytes; `path` names it in messages and anchors its imports.
pub fn compile_bytes(path: &Path, bytes: Vec<u8>) -> Compilation {
    let mut sources = SourceMap::default();
    let loaded = spec::load::load_text(&path.display().to_string(), path, bytes, &mut sources);
    finish(sources, loaded)
}

fn finish(sources: SourceMap, loaded: spec::load::Loaded) -> Compilation {
    let result =
        if loaded.diagnostics.is_empty() { expand::expand(&loaded.files, &sources) } else { Err(loaded.diagnostics) };
    Compilation { sources, result }
}
