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

pub mod attributes;
pub mod check;
#[cfg(feature = "codegen")]
pub mod codegen;
pub mod diagnostic;
pub mod expand;
pub mod limit;
/// The static graph: defined in `cnnc-ir`, re-exported as the compiler's fourth stage.
pub use cnnc_ir::graph;
pub mod passes;
#[cfg(feature = "render")]
pub mod render;
pub mod source;
pub mod spec;
pub mod summary;

use std::path::Path;

use cnnc_ir::span::{FileId, Span};

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
    compile_path_with(path, &[])
}

/// Compiles the spec at `path` and its imports with `settings`, `(NAME, VALUE)` pairs from
/// `--set NAME=VALUE` that replace the model's `let` bindings or arguments of the module its body
/// calls (see [`spec::settings`]).
pub fn compile_path_with(path: &Path, settings: &[(String, String)]) -> Result<Compilation, ReadError> {
    let mut sources = SourceMap::default();
    let mut loaded = spec::load::load(path, &mut sources)?;
    if loaded.diagnostics.is_empty() && !settings.is_empty() {
        loaded.diagnostics = spec::settings::apply(&mut loaded.files, settings, &mut sources);
    }
    Ok(finish(sources, loaded))
}

/// Compiles a spec given as bytes; `path` names it in messages and anchors its imports.
pub fn compile_bytes(path: &Path, bytes: Vec<u8>) -> Compilation {
    let mut sources = SourceMap::default();
    let loaded = spec::load::load_text(&path.display().to_string(), path, bytes, &mut sources);
    finish(sources, loaded)
}

/// A model spec compiled through the whole pipeline: parse → expand/check → lower → validate.
#[derive(Clone, Debug)]
pub struct Model {
    /// The checked graph: what the CPU executor runs and summaries, drawings and metadata read.
    pub graph: Graph,
    /// The validated inference plan: what the GPU executor and generated code build from.
    pub plan: ir::ValidPlan,
}

impl Model {
    /// The pipeline's last stages on a checked graph: lowering for inference and validation.
    ///
    /// # Errors
    /// A plan that fails validation is a compiler bug; it is reported as a `cnnc::internal::plan`
    /// diagnostic at the layer it concerns rather than run.
    pub fn new(graph: Graph) -> Result<Model, Diagnostic> {
        match inference_plan(&graph) {
            Ok(plan) => Ok(Model { graph, plan }),
            Err(e) => {
                let d = Diagnostic::error("cnnc::internal::plan", format!("cnnc made an inconsistent layer plan: {e}"))
                    .help("this is a bug in cnnc; please report it with the spec");
                Err(match &e.layer {
                    Some((_, path, span)) => d.at(*span, "in this layer").in_layer(path),
                    None => d.at(graph.node(graph.input).span, "in this model"),
                })
            }
        }
    }
}

/// The whole pipeline on the spec at `path` (and its imports): parse → expand/check → lower →
/// validate. A library spec (no `model:`) is a `cnnc::spec::not_a_model` diagnostic.
///
/// # Errors
/// The file cannot be read; diagnostics come in the second part of the result.
pub fn compile_model_path(path: &Path) -> Result<(SourceMap, Result<Model, Vec<Diagnostic>>), ReadError> {
    compile_model_path_with(path, &[])
}

/// As [`compile_model_path`], with `--set` settings (see [`compile_path_with`]).
///
/// # Errors
/// The file cannot be read; diagnostics come in the second part of the result.
pub fn compile_model_path_with(
    path: &Path,
    settings: &[(String, String)],
) -> Result<(SourceMap, Result<Model, Vec<Diagnostic>>), ReadError> {
    let compilation = compile_path_with(path, settings)?;
    let model = match compilation.result {
        Ok(Expanded::Model(graph)) => Model::new(graph).map_err(|d| vec![d]),
        // The spec is the first file the compilation read.
        Ok(Expanded::Library(_)) => Err(vec![Diagnostic::error(
            "cnnc::spec::not_a_model",
            format!("`{}` is a library of modules, not a model", path.display()),
        )
        .at(Span::new(FileId::new(0), 0, 0), "this file has no `model:`")
        .help("a spec with `model:`, `input:` and `body:` is needed")]),
        Err(diags) => Err(diags),
    };
    Ok((compilation.sources, model))
}

fn finish(sources: SourceMap, loaded: spec::load::Loaded) -> Compilation {
    let result =
        if loaded.diagnostics.is_empty() { expand::expand(&loaded.files, &sources) } else { Err(loaded.diagnostics) };
    Compilation { sources, result }
}
