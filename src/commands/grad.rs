//! `cnnc grad`: one training-mode forward and backward on a batch; writes the loss, every trainable
//! parameter's gradient and the batch-norm running statistics after the step.

use super::stdout::errln;
use super::stdout::outln;
use std::path::PathBuf;
use std::process::ExitCode;

use cnnc::compiler::ir::autodiff;
use cnnc::compiler::Model;
use cnnc::runtime::gpu::{self, GpuTrainer};
use cnnc::runtime::train::{self, CrossEntropy, Optimizer, OptimizerState, Schedule, StepOptions};
use cnnc::runtime::{npy, synthetic, weights, RuntimeError, Tensor};

use super::progress::Progress;
use super::SpecPath;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(clap::Args)]
pub struct Args {
    /// The model spec.
    #[arg(value_name = "SPEC")]
    spec: SpecPath,
    /// Checkpoint to start from (.safetensors or .pth), matched by name against the spec's weight table.
    #[arg(long, value_name = "FILE", required_unless_present = "seed", conflicts_with = "seed")]
    weights: Option<PathBuf>,
    /// Use deterministic pseudo-random weights from this seed instead of a checkpoint.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Input batch: a float32 .npy array [N, C, H, W].
    #[arg(long, value_name = "X.npy")]
    input: PathBuf,
    /// Class labels: an int64 or int32 .npy vector [N].
    #[arg(long, value_name = "Y.npy")]
    labels: PathBuf,
    /// Where to write the loss (`loss`, shape [1]), each trainable parameter's gradient under the
    /// parameter's state_dict name, and each batch-norm's running mean and variance after the step.
    #[arg(long, short, value_name = "G.safetensors")]
    output: PathBuf,
    /// Run on the CPU reference executor (float64 throughout) instead of the GPU (float32).
    #[arg(long)]
    cpu: bool,
    /// The GPU adapter to use: part of its name, or a backend (vulkan, metal, dx12); see `cnnc devices`.
    #[arg(long, value_name = "NAME")]
    adapter: Option<String>,
    /// Dropout and stochastic depth: `on` draws masks from --dropout-seed as training does, `off`
    /// makes them the identity (to compare with a framework's gradients).
    #[arg(long, value_enum, default_value = "on", value_name = "on|off")]
    dropout: Switch,
    /// Seed of the dropout masks.
    #[arg(long, default_value_t = 0, value_name = "N")]
    dropout_seed: u64,
    /// Cross-entropy label smoothing, in [0, 1] (PyTorch's `label_smoothing`).
    #[arg(long, default_value_t = 0.0, value_name = "EPS")]
    label_smoothing: f64,
    /// Write float32 tensors instead of float64 (the GPU always writes float32).
    #[arg(long)]
    f32: bool,
}

pub fn run(args: Args) -> ExitCode {
    if !(0.0..=1.0).contains(&args.label_smoothing) {
        errln!("error: --label-smoothing must be in [0, 1], not {}", args.label_smoothing);
        return ExitCode::from(super::EXIT_USAGE);
    }
    super::with_model(&args.spec, |model| execute(&args, model))
}

fn execute(args: &Args, model: &Model) -> Result<(), RuntimeError> {
    let graph = &model.graph;
    let backward = autodiff::differentiate(graph, |_| true)?;
    let progress = Progress::start("loading weights");
    let weights = match &args.weights {
        Some(path) => {
            weights::bind(&graph.weight_table(), super::read_weights(path, &graph.weight_table())?, true)?.weights
        }
        None => {
            cnnc::runtime::memory::reserve_weights(&graph.weight_table().params)?;
            synthetic::weights(graph, args.seed.unwrap_or(0))
        }
    };
    progress.stage("reading the batch");
    let input: Tensor<f64> = npy::read(&args.input)?.convert();
    let labels = npy::read_labels(&args.labels)?;
    let options = StepOptions {
        loss: CrossEntropy { label_smoothing: args.label_smoothing, class_weights: None },
        dropout: args.dropout == Switch::On,
        seed: args.dropout_seed,
        step: 0,
    };
    let (loss, gradients, running) = if args.cpu {
        progress.stage(format!("forward and backward on {} input(s) on the CPU", input.batch()));
        let result = train::step(graph, &backward, &weights.convert(), &input, &labels, &options)?;
        (result.loss, result.gradients, result.running)
    } else {
        progress.stage("opening the GPU");
        let gpu = gpu::open(args.adapter.as_deref())?;
        progress.stage("preparing kernels and uploading weights");
        let unused = OptimizerState::new(Optimizer::sgd(), 0.0, Schedule::Constant);
        let mut trainer = GpuTrainer::new(&gpu, graph, &weights, |_| true, unused, &options, input.batch())?;
        progress.stage(format!("forward and backward on {} input(s) on the GPU", input.batch()));
        let (loss, gradients) = trainer.gradients(&input.convert(), &labels)?;
        let after = trainer.weights()?;
        let mut running = weights::Weights::default();
        for p in graph.training_nodes().flat_map(|(_, n)| &n.params).filter(|p| !p.kind.is_trainable()) {
            running.insert(p.name.clone(), after.get(&p.name).expect("every weight is read back").clone());
        }
        (f64::from(loss), gradients.convert(), running.convert())
    };
    drop(progress);
    let mut tensors = vec![("loss".to_string(), Tensor::new(vec![1], vec![loss]))];
    for p in &backward.trainable {
        tensors.push((p.name.clone(), gradients.get(&p.name).expect("one gradient per trainable").clone()));
    }
    for p in graph.training_nodes().flat_map(|(_, n)| &n.params) {
        if let Some(stat) = running.get(&p.name) {
            tensors.push((p.name.clone(), stat.clone()));
        }
    }
    weights::write_safetensors(&args.output, &tensors, args.f32 || !args.cpu)?;
    outln!(
        "loss {loss:.6} over {} input(s); wrote {} gradients and {} running statistics to {}",
        input.batch(),
        backward.trainable.len(),
        running.len(),
        args.output.display()
    );
    Ok(())
}
