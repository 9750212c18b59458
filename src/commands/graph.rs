//! `cnnc graph`: draw a model's graph as DOT or SVG.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{compile_model, emit, SpecPath};

#[derive(Copy, Clone, clap::ValueEnum)]
enum Format {
    /// Graphviz DOT text.
    Dot,
    /// An SVG picture, laid out by cnnc itself.
    Svg,
}

#[derive(clap::Args)]
pub struct Args {
    /// The spec to draw.
    #[arg(value_name = "SPEC")]
    spec: SpecPath,
    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    format: Format,
    /// Write to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    let graph = match compile_model(&args.spec) {
        Ok(model) => model.graph,
        Err(code) => return code,
    };
    let text = match args.format {
        Format::Dot => cnnc::view::to_dot(&graph),
        Format::Svg => cnnc::view::to_svg(&graph),
    };
    emit(args.output.as_deref(), &text)
}
