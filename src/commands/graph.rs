//! `cnnc graph`: draw a model's graph as DOT or SVG.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{compile, Compiled, SpecPath, EXIT_SPEC_ERROR, EXIT_USAGE};

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
    let graph = match compile(&args.spec) {
        Compiled::Model(graph) => graph,
        Compiled::Library(_) => {
            eprintln!("error: `{}` is a library of modules, not a model", args.spec.display());
            return ExitCode::from(EXIT_SPEC_ERROR);
        }
        Compiled::Failed(code) => return ExitCode::from(code),
    };
    let text = match args.format {
        Format::Dot => cnnc::view::to_dot(&graph),
        Format::Svg => cnnc::view::to_svg(&graph),
    };
    match &args.output {
        None => print!("{text}"),
        Some(path) => {
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("error: cannot write `{}`: {e}", path.display());
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    ExitCode::SUCCESS
}
