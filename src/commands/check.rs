//! `cnnc check`: parse, expand and shape-check specs.

use super::stdout::outln;
use std::process::ExitCode;

use cnnc::compiler::summary::summarize;
use cnnc::compiler::SourceMap;
use cnnc::runtime::data;

use super::recipe::{Given, Recipe};
use super::stdout::errln;
use super::{compile_with, group, schedule, Compiled, Model, SpecPath, EXIT_SPEC_ERROR};

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
            Compiled::Model(model, sources) => {
                let problems = train_strings(&model, &sources);
                if !problems.is_empty() {
                    for problem in problems {
                        errln!("error: {problem}");
                    }
                    worst = worst.max(EXIT_SPEC_ERROR);
                    continue;
                }
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

/// The spec's `train:` strings that only the trainer reads (`schedule`, `augment`), read here as
/// `cnnc train` reads them, so that `cnnc check` refuses what training would: one message each,
/// naming the key and its place.
fn train_strings(model: &Model, sources: &SourceMap) -> Vec<String> {
    let Some(spec) = model.graph.train.as_ref() else { return Vec::new() };
    let r = Recipe::resolve(&Given::default(), Some(spec));
    let origin = |key: &str| r.origin(key, Some(spec), sources);
    let mut problems = Vec::new();
    if let Some(Err(e)) = spec.augment.as_deref().map(data::augment::parse) {
        problems.push(format!("{}: {e}", origin("augment")));
    }
    if let Some(Err(e)) = spec.schedule.as_deref().map(|text| schedule::parse(text, r.epochs, 1, r.lr)) {
        problems.push(format!("{}: {e}", origin("schedule")));
    }
    problems
}
