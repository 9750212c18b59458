//! `cnnc run`: run a model on a batch and print or save its outputs.

use super::stdout::errln;
use super::stdout::out;
use std::path::PathBuf;
use std::process::ExitCode;

use cnnc::compiler::Model;
use cnnc::runtime::{classify, cpu, gpu, image_input, npy, synthetic, weights, RuntimeError};

use super::progress::Progress;
use super::SpecPath;

/// Where the input batch comes from: exactly one of these.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct Source {
    /// Input batch: a float32 .npy array of shape [N, C, H, W].
    #[arg(long, value_name = "X.npy")]
    input: Option<PathBuf>,
    /// Images (PNG, JPEG, BMP or PNM), preprocessed as the spec's `preprocess` says (resize, centre crop,
    /// normalise, as torchvision does); one batch item each.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    image: Vec<PathBuf>,
    /// Use a deterministic pseudo-random input batch instead of a file.
    #[arg(long)]
    random_input: bool,
}

#[derive(clap::Args)]
#[group(id = "model_weights", required = true, multiple = false)]
pub struct Args {
    /// The model spec.
    #[arg(value_name = "SPEC")]
    spec: SpecPath,
    /// Give one of the spec's `let` bindings, or a parameter of the module its body calls, a value
    /// of the spec language: `--set num_classes=2` makes a zoo model's head two-way.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = super::parse_setting)]
    set: Vec<(String, String)>,
    /// Checkpoint to load (.safetensors, or a PyTorch .pth/.pt such as torchvision's), matched by
    /// name against the spec's weight table; or give --seed instead.
    #[arg(long, value_name = "FILE", group = "model_weights")]
    weights: Option<PathBuf>,
    /// Initialise the weights as PyTorch does (uniform in ±1/√fan_in; batch norms at one and zero)
    /// from this seed, instead of loading a checkpoint (--weights).
    #[arg(long, value_name = "N", group = "model_weights")]
    seed: Option<u64>,
    #[command(flatten)]
    source: Source,
    /// Batch size of the random input.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    batch: u64,
    /// Write the outputs (logits) to this float32 .npy file, shape [N, classes].
    #[arg(long, value_name = "Y.npy")]
    output: Option<PathBuf>,
    /// How many of the highest-scoring classes to print per input.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Run on the CPU reference executor instead of the GPU.
    #[arg(long)]
    cpu: bool,
    /// The GPU adapter to use: part of its name, or a backend (vulkan, metal, dx12); see `cnnc devices`.
    #[arg(long, value_name = "NAME")]
    adapter: Option<String>,
    /// Require the checkpoint to match the spec exactly; with `--strict false`, missing tensors are
    /// initialised pseudo-randomly and unexpected ones ignored (both reported).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    strict: bool,
}

pub fn run(args: Args) -> ExitCode {
    super::with_model_set(&args.spec, &args.set, |model| execute(&args, model))
}

fn execute(args: &Args, model: &Model) -> Result<(), RuntimeError> {
    let graph = &model.graph;
    let progress = Progress::start("loading weights");
    let weights = match (&args.weights, args.seed) {
        (Some(path), _) => {
            progress.stage(format!("reading {}", path.display()));
            let file = super::read_weights(path, &graph.weight_table())?;
            let mut bound = weights::bind(&graph.weight_table(), file, args.strict)?;
            if !bound.tolerated.is_clean() {
                errln!(
                    "warning: the checkpoint does not match the spec exactly (allowed by --strict false):\n{}",
                    bound.tolerated
                );
                if !bound.tolerated.missing.is_empty() {
                    errln!(
                        "warning: {} missing tensors are initialised pseudo-randomly",
                        bound.tolerated.missing.len()
                    );
                }
                weights::fill_missing(&graph.weight_table(), &mut bound.weights);
            }
            bound.weights
        }
        (None, seed) => {
            let params = graph.weight_table().params;
            cnnc::runtime::memory::reserve_weights(&params)?;
            synthetic::pytorch_init(&params, seed.unwrap_or(0))
        }
    };
    progress.stage("reading the input");
    let input = match &args.source.input {
        Some(path) => npy::read(path)?,
        None if !args.source.image.is_empty() => image_input::load_batch(&args.source.image, graph)?,
        None => {
            let mut shape = vec![args.batch as usize];
            shape.extend(graph.node(graph.input).shape.dims());
            synthetic::input(args.seed.unwrap_or(0), shape)
        }
    };
    if input.data.iter().any(|v| !v.is_finite()) {
        errln!("warning: the input holds NaN or infinite values; they flow through the model as in PyTorch");
    }
    let output = if args.cpu {
        progress.stage(format!("running {} input(s) on the CPU", input.batch()));
        cpu::run(graph, &weights, &input)?
    } else {
        progress.stage("opening the GPU");
        let gpu = gpu::open(args.adapter.as_deref())?;
        progress.stage("preparing kernels and uploading weights");
        let prepared = gpu::Prepared::new(&gpu, &model.plan, &weights, input.batch())?;
        progress.stage(format!("running {} input(s) on {}", input.batch(), gpu.info.name));
        let output = prepared.run(&input)?;
        errln!("ran on {} ({:?})", gpu.info.name, gpu.info.backend);
        output
    };
    drop(progress);
    if let Some(path) = &args.output {
        npy::write(path, &output)?;
    }
    let name = |b| classify::item_name(b, &args.source.image);
    out!("{}", classify::top_classes_of(&output, graph.meta.labels.as_deref(), args.top, name));
    Ok(())
}
