//! One module per verb of the command line.

use stdout::out;
use stdout::{err, errln};
mod bench;
mod bench_train;
mod build;
mod check;
mod conformance;
mod devices;
mod eval;
mod fmt;
mod grad;
mod graph;
mod plot;
mod progress;
mod recipe;
mod run;
mod schedule;
mod stdout;
mod summary;
mod train;
mod train_state;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cnnc::compiler::{Expanded, Model, SourceMap};
use cnnc::runtime::RuntimeError;

/// Exit code for errors in a spec.
pub const EXIT_SPEC_ERROR: u8 = 1;
/// Exit code for usage errors (bad arguments, unreadable files).
pub const EXIT_USAGE: u8 = 2;

/// cnnc — compile declarative CNN specs: check every shape before anything runs.
#[derive(Parser)]
#[command(name = "cnnc", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, expand and shape-check specs; print `ok` and a one-line summary per file.
    ///
    /// Every error is reported with its file:line:column, the layer path and a hint.
    /// Exit status: 0 when all files are fine, 1 when a spec has errors, 2 for usage errors.
    ///
    /// Example: cnnc check specs/resnet50.yaml specs/lenet.yaml
    Check(check::Args),
    /// Print a per-layer table: path, op, output shape, parameters, MACs, and totals.
    ///
    /// With --json, print one JSON object with name, input, output, params, macs,
    /// layers, weights (every checkpoint tensor's name and shape) and peak activation memory.
    ///
    /// Example: cnnc summary specs/resnet50.yaml --batch 8
    Summary(summary::Args),
    /// Print a spec in canonical form, in YAML or the DSL (comments are not kept).
    ///
    /// Both spellings describe the same model: converting either way and back gives the same graph.
    ///
    /// Example: cnnc fmt specs/resnet50.yaml --to dsl -o resnet50.cnn
    Fmt(fmt::Args),
    /// Draw the checked graph: Graphviz DOT, or SVG laid out without Graphviz.
    ///
    /// Nodes show the layer path, the op and its output shape; training-only branches are dashed.
    ///
    /// Example: cnnc graph specs/googlenet.yaml --format svg -o googlenet.svg
    Graph(graph::Args),
    /// Run a model on a batch: print the top classes, optionally save the logits.
    ///
    /// Weights come from a .safetensors checkpoint (names as in the spec's weight table, which
    /// reproduces torchvision's) or from --seed; the input from a float32 .npy [N, C, H, W] or
    /// --random-input.
    ///
    /// Example: cnnc run specs/resnet18.yaml --weights resnet18.safetensors --input x.npy --output y.npy
    Run(run::Args),
    /// List the GPU adapters wgpu can use, best first, with the limits that matter.
    ///
    /// Choose one for `run` with `--adapter NAME` or the CNNC_ADAPTER environment variable.
    ///
    /// Example: cnnc devices
    Devices(devices::Args),
    /// Run the shader conformance suite on this machine's GPU and driver.
    ///
    /// Every kernel family runs a sweep of shapes and attributes (edge cases included) and is
    /// compared with the CPU reference; prints the adapter and a pass/fail table with the worst
    /// error per kernel. Exit status 1 if any case fails.
    ///
    /// Example: cnnc conformance --adapter vulkan
    Conformance(conformance::Args),
    /// Measure a model on the GPU: median throughput and latency after warm-up (the latency's
    /// quartiles, minimum and maximum too), time to first result (pipeline creation included),
    /// device memory, and optionally a per-layer breakdown.
    ///
    /// Weights and inputs are deterministic pseudo-random values; only timing is reported. With
    /// --train, whole training steps are timed instead (forward, loss, backward, Adam), each waited
    /// for and, for a second rate, back to back as `cnnc train` runs them.
    ///
    /// Example: cnnc bench specs/resnet50.yaml --batch 8 --iters 5 --json
    Bench(bench::Args),
    /// Generate Rust for a model: a module with a struct named after it (one field per layer, its
    /// GPU work built once), constructors from a checkpoint or a seed, and a `forward`.
    ///
    /// The module goes to standard output or -o FILE; --crate DIR writes a standalone crate whose
    /// binary runs the model like `cnnc run`. The `model!` macro generates the same module.
    ///
    /// Example: cnnc build specs/resnet50.yaml --crate resnet50 && cd resnet50 && cargo build --release
    Build(build::Args),
    /// One training-mode forward and backward on a batch: write the loss, every trainable
    /// parameter's gradient and the batch-norm running statistics after the step.
    ///
    /// Batch-norm normalises with the batch statistics and updates its running ones as PyTorch
    /// does; dropout and stochastic depth are active (`--dropout off` for comparisons). The loss is
    /// cross-entropy over the model's output. Tensors are named as in the spec's weight table
    /// (torchvision's state_dict names), so they compare directly with PyTorch's `.grad`s.
    ///
    /// The GPU computes in float32 and writes float32; `--cpu` runs the float64 reference.
    ///
    /// Example: cnnc grad specs/lenet.yaml --seed 0 --input x.npy --labels y.npy -o grads.safetensors
    Grad(grad::Args),
    /// Train a model on a dataset: evaluate it on the test split after every epoch, and write
    /// checkpoints and a metrics log.
    ///
    /// Weights start from PyTorch's initialisation (from --seed) or a checkpoint (--weights).
    /// Every epoch writes OUT/last.safetensors, OUT/best.safetensors when the test accuracy is the
    /// best so far (both with PyTorch's state_dict names, written atomically),
    /// OUT/train_state.safetensors (what --resume continues from) and OUT/metrics.jsonl (one JSON
    /// object per logged step and per epoch: kind, epoch, step, loss, test_loss, accuracy (of the
    /// training batches on step lines, of the test split on epoch lines), lr, images_per_s,
    /// seconds; `cnnc plot OUT` draws it). Images are resized, cropped and
    /// normalised as the spec's `preprocess` says. Ctrl-C writes a checkpoint and stops; a loss
    /// that becomes NaN or infinite stops training, naming the first layer gone non-finite.
    ///
    /// Example: cnnc train specs/lenet_fashion.yaml --data idx:/usr/share/datasets/fashion-mnist --epochs 2 --out runs/fashion
    ///
    /// Example: cnnc train specs/mobilenet_v2.yaml --set num_classes=2 --data imagefolder:sneakers --weights mobilenet_v2-b0353104.pth --strict false --freeze features --optimizer sgd --momentum 0.9 --augment hflip --epochs 3 --out runs/sneakers
    Train(train::Args),
    /// Evaluate a checkpoint on a dataset split: accuracy, loss, per-class accuracy and the
    /// confusion matrix (--json for one JSON object).
    ///
    /// Example: cnnc eval specs/lenet_fashion.yaml --weights runs/fashion/best.safetensors --data idx:/usr/share/datasets/fashion-mnist
    Eval(eval::Args),
    /// Draw a training run's curves from its metrics.jsonl as SVG: training and test loss against
    /// steps, test accuracy against epochs.
    ///
    /// Example: cnnc plot runs/fashion -o runs/fashion/curves.svg
    Plot(plot::Args),
}

/// Prints clap's help or version text (`e` is of kind `DisplayHelp` or `DisplayVersion`) to
/// standard output as every verb prints: coloured on a terminal, and a write error ends the program
/// with status 1 (141 on a closed pipe).
pub fn write_help(e: &clap::Error) {
    use std::io::IsTerminal;
    let text = e.render();
    if std::io::stdout().is_terminal() {
        out!("{}", text.ansi());
    } else {
        out!("{text}");
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Summary(args) => summary::run(args),
        Command::Fmt(args) => fmt::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Run(args) => run::run(args),
        Command::Devices(args) => devices::run(args),
        Command::Conformance(args) => conformance::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Build(args) => build::run(args),
        Command::Grad(args) => grad::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Plot(args) => plot::run(args),
    }
}

/// The outcome of compiling one spec for a command.
pub enum Compiled {
    Model(Box<Model>, SourceMap),
    Library(Vec<String>),
    /// Errors were printed; the exit code to return.
    Failed(u8),
}

/// Compiles `path` with `--set` settings, printing any errors to stderr.
pub fn compile_with(path: &Path, settings: &[(String, String)]) -> Compiled {
    let compilation = match cnnc::compiler::compile_path_with(path, settings) {
        Ok(c) => c,
        Err(e) => {
            errln!("error: {e}");
            return Compiled::Failed(EXIT_USAGE);
        }
    };
    match compilation.result {
        Ok(Expanded::Model(graph)) => match Model::new(graph) {
            Ok(model) => Compiled::Model(Box::new(model), compilation.sources),
            Err(d) => {
                let color = std::io::stderr().is_terminal();
                err!("{}", cnnc::render::render_all(&[d], &compilation.sources, color));
                Compiled::Failed(EXIT_SPEC_ERROR)
            }
        },
        Ok(Expanded::Library(names)) => Compiled::Library(names),
        Err(diags) => {
            let color = std::io::stderr().is_terminal();
            err!("{}", cnnc::render::render_all(&diags, &compilation.sources, color));
            Compiled::Failed(EXIT_SPEC_ERROR)
        }
    }
}

/// Reads a checkpoint for `table` as `weights::read_for` does, saying on stderr where in the file
/// its state_dict was found when that was not the top level (`model_state_dict`, Lightning's
/// `state_dict`, …) and which others the file holds.
pub fn read_weights(
    path: &Path,
    table: &cnnc::compiler::graph::WeightTable,
) -> Result<cnnc::runtime::weights::Weights, cnnc::runtime::RuntimeError> {
    let weights = cnnc::runtime::weights::read_for(path, table)?;
    let others = weights.alternatives().iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ");
    match (weights.origin(), others.is_empty()) {
        (Some(origin), true) => errln!("note: using the state_dict under `{origin}` in {}", path.display()),
        (origin, false) => errln!(
            "note: using the state_dict under `{}` in {}, the one that names the most of the spec's tensors; the \
             checkpoint also holds {others}",
            origin.unwrap_or("(the top level)"),
            path.display()
        ),
        (None, true) => {}
    }
    Ok(weights)
}

/// Compiles a spec that must define a model through the whole pipeline (its checked graph and
/// validated plan); errors are printed and turned into an exit code.
pub fn compile_model(path: &Path) -> Result<Model, ExitCode> {
    compile_model_with_sources(path).map(|(model, _)| model)
}

/// As [`compile_model`], with the sources the spec was read from.
pub fn compile_model_with_sources(path: &Path) -> Result<(Model, SourceMap), ExitCode> {
    compile_model_set(path, &[])
}

/// As [`compile_model_with_sources`], with `--set` settings.
pub fn compile_model_set(path: &Path, settings: &[(String, String)]) -> Result<(Model, SourceMap), ExitCode> {
    match compile_with(path, settings) {
        Compiled::Model(model, sources) => Ok((*model, sources)),
        Compiled::Library(_) => {
            errln!("error: `{}` is a library of modules, not a model (a spec with `model:` is needed)", path.display());
            Err(ExitCode::from(EXIT_SPEC_ERROR))
        }
        Compiled::Failed(code) => Err(ExitCode::from(code)),
    }
}

/// Compiles the model spec at `spec` and runs `execute` on it: spec errors exit as
/// [`compile_model`] says, an error from `execute` is printed and exits 1.
pub fn with_model<E: std::fmt::Display + 'static>(
    spec: &Path,
    execute: impl FnOnce(&Model) -> Result<(), E>,
) -> ExitCode {
    with_model_set(spec, &[], execute)
}

/// As [`with_model`], the spec compiled with `--set` settings.
pub fn with_model_set<E: std::fmt::Display + 'static>(
    spec: &Path,
    settings: &[(String, String)],
    execute: impl FnOnce(&Model) -> Result<(), E>,
) -> ExitCode {
    let (model, sources) = match compile_model_set(spec, settings) {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    match execute(&model) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: {e}");
            print_layer_location((&e as &dyn std::any::Any).downcast_ref::<RuntimeError>(), &sources);
            ExitCode::from(1)
        }
    }
}

/// For a runtime error that comes from a layer, prints where the spec declares it (after the error
/// itself).
pub fn print_layer_location(error: Option<&RuntimeError>, sources: &SourceMap) {
    if let Some(span) = error.and_then(RuntimeError::span).filter(|s| s.file.index() < sources.len()) {
        errln!("  --> {} (the layer in the spec)", sources.location(span));
    }
}

/// Reads `NAME=VALUE` for `--set`.
pub fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("`{text}` is not NAME=VALUE (for example num_classes=2)")),
    }
}

/// Prints `text`, or writes it to `output` when given.
pub fn emit(output: Option<&Path>, text: &str) -> ExitCode {
    match output {
        None => out!("{text}"),
        Some(path) => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            if let Err(e) = parent.map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(path, text)) {
                errln!("error: cannot write `{}`: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Thousands separators for counts.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A spec path argument.
pub type SpecPath = PathBuf;
