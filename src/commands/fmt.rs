//! `cnnc fmt`: print a spec in canonical form, in either spelling.

use super::stdout::{err, errln};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use cnnc::compiler::source::SourceMap;
use cnnc::compiler::spec::load::{parse_one, syntax_of, Syntax};
use cnnc::compiler::spec::print::{to_dsl, to_yaml};

use super::{emit, EXIT_SPEC_ERROR, EXIT_USAGE};

#[derive(Copy, Clone, clap::ValueEnum)]
enum Spelling {
    Yaml,
    Dsl,
}

#[derive(clap::Args)]
pub struct Args {
    /// The spec to print (.yaml or .cnn); its imports are left as they are.
    #[arg(value_name = "SPEC")]
    spec: PathBuf,
    /// The spelling to print; defaults to the spec's own.
    #[arg(long, value_enum)]
    to: Option<Spelling>,
    /// Write to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    let mut sources = SourceMap::default();
    let spec = match parse_one(&args.spec, &mut sources) {
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
        Ok(Err(diags)) => {
            err!("{}", cnnc::render::render_all(&diags, &sources, std::io::stderr().is_terminal()));
            return ExitCode::from(EXIT_SPEC_ERROR);
        }
        Ok(Ok(spec)) => spec,
    };
    let to = args.to.unwrap_or(match syntax_of(&args.spec) {
        Some(Syntax::Dsl) => Spelling::Dsl,
        _ => Spelling::Yaml,
    });
    let text = match to {
        Spelling::Yaml => to_yaml(&spec),
        Spelling::Dsl => to_dsl(&spec),
    };
    emit(args.output.as_deref(), &text)
}
