//! `cnnc check`: parse, expand and shape-check specs.

use super::stdout::outln;
use std::process::ExitCode;

use cnnc::compiler::summary::summarize;

use super::{compile_with, group, Compiled, SpecPath};

#[derive(clap::Args)]
pub struct Args {
    /// Spec files to check (YAML `.yaml` or DSL `.cnn`).
    #[arg(required = true, value_name = "SPEC")]
    specs: Vec<SpecPath>,
    /// Give one of the spec's `let` bindings, or a parameter of the module its body calls, a value
    /// of the spec language: `--set num_classes=2` makes a zoo model's head two-way.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = super::parse_setting)]
    set: Vec<(String, String)>,
}

pub fn run(args: Args) -> ExitCode {
    let mut worst = 0u8;
    for path in &args.specs {
        match compile_with(path, &args.set) {
            Compiled::Model(model, _) => {
                let s = summarize(&model, 1);
                outln!(
                    "ok  {}: model `{}`, {} → {}, {} params, {} MACs, {} layers",
                    path.display(),
                    s.name,
                    s.input,
                    s.output,
                    group(s.params),
                    group(s.macs),
                    s.rows.len()
                );
            }
            Compiled::Library(names) => {
                outln!("ok  {}: library of {} modules ({})", path.display(), names.len(), names.join(", "));
            }
            Compiled::Failed(code) => worst = worst.max(code),
        }
    }
    ExitCode::from(worst)
}
