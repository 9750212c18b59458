//! `cnnc train`: trains a model on a dataset, evaluates it on the test split after every epoch, and
//! writes checkpoints and a metrics log.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cnnc::compiler::graph::Param;
use cnnc::compiler::Model;
use cnnc::runtime::data::{self, Augment, Dataset, Split};
use cnnc::runtime::gpu::{self, GpuTrainer};
use cnnc::runtime::train::{rng, CpuTrainer, Optimizer, OptimizerState, Schedule, StepOptions};
use cnnc::runtime::weights::{self, Weights};
use cnnc::runtime::{synthetic, RuntimeError, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

use super::eval::{class_names, evaluate, normalisation, report, Engine, Evaluation};
use super::{group, SpecPath};

/// The augmentation's draws, apart from the dropout masks' (keyed by node index) and the shuffle's.
const AUGMENT_STREAM: usize = 0xA065;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OptimizerArg {
    Sgd,
    Adam,
    Adamw,
}

#[derive(clap::Args)]
pub struct Args {
    /// The model spec.
    #[arg(value_name = "SPEC")]
    spec: SpecPath,
    /// The dataset, as FORMAT:PATH: `idx:DIR` (MNIST and Fashion-MNIST files, gzipped or not,
    /// such as /usr/share/datasets/fashion-mnist from Debian's `dataset-fashion-mnist`) or
    /// `cifar10:DIR` (CIFAR-10's binary batches, `cifar-10-batches-bin`).
    #[arg(long, value_name = "FORMAT:PATH")]
    data: String,
    /// Where to write `last.safetensors` (after every epoch), `best.safetensors` (the epoch with the
    /// best test accuracy) and `metrics.jsonl`.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Passes over the training split.
    #[arg(long, default_value_t = 1, value_name = "N")]
    epochs: u64,
    /// Images per training step. Each epoch's last images that do not fill a batch are left out
    /// (PyTorch's `drop_last=True`).
    #[arg(long, default_value_t = 8, value_name = "B")]
    batch: usize,
    /// The optimizer, with PyTorch's semantics (`torch.optim.SGD`, `Adam`, `AdamW`).
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: OptimizerArg,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3, value_name = "LR")]
    lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0, value_name = "M")]
    momentum: f64,
    /// Weight decay: L2 for SGD and Adam (default 0), decoupled for AdamW (default 0.01, PyTorch's).
    #[arg(long, value_name = "W")]
    weight_decay: Option<f64>,
    /// Augment the training images, in order, as torchvision's transforms do:
    /// `random_crop(SIZE, pad=P)` (RandomCrop with zero padding) and `hflip`
    /// (RandomHorizontalFlip), for example `--augment "random_crop(32, pad=4), hflip"`.
    #[arg(long, value_name = "STEPS")]
    augment: Option<String>,
    /// Seed of the initial weights, the sample order, the augmentation and the dropout masks.
    #[arg(long, default_value_t = 0, value_name = "S")]
    seed: u64,
    /// Start from this checkpoint (.safetensors or .pth, names as in the spec's weight table)
    /// instead of PyTorch's initialisation.
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// With `--strict false`, load every tensor of --weights whose name and shape match the spec
    /// and initialise the rest as PyTorch does (a new classifier head when fine-tuning), reporting
    /// both; by default the checkpoint must match exactly.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL", requires = "weights")]
    strict: bool,
    /// Keep the parameters under these layer paths as they are (`--freeze features` trains only
    /// the rest, as `requires_grad = False` does); nothing below the lowest trained layer gets a
    /// gradient.
    #[arg(long, value_name = "PREFIX", num_args = 1..)]
    freeze: Vec<String>,
    /// Use only the first N images of each split.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Log the mean training loss every N steps (to metrics.jsonl, and as a line when stderr is not
    /// a terminal).
    #[arg(long, default_value_t = 500, value_name = "N")]
    log_every: u64,
    /// Train on the CPU reference executor (float64) instead of the GPU.
    #[arg(long)]
    cpu: bool,
    /// The GPU adapter to use: part of its name, or a backend; see `cnnc devices`.
    #[arg(long, value_name = "NAME")]
    adapter: Option<String>,
}

pub fn run(args: Args) -> ExitCode {
    super::with_model(&args.spec, |model| execute(&args, model))
}

/// Either executor's trainer.
enum Trainer<'g> {
    Gpu(Box<GpuTrainer>),
    Cpu(Box<CpuTrainer<'g>>, Vec<f32>),
}

impl Trainer<'_> {
    fn step(&mut self, x: &Tensor, labels: &[usize]) -> Result<(), RuntimeError> {
        match self {
            Trainer::Gpu(t) => t.step(x, labels),
            Trainer::Cpu(t, losses) => {
                losses.push(t.step(x, labels)? as f32);
                Ok(())
            }
        }
    }

    fn losses(&mut self) -> Result<Vec<f32>, RuntimeError> {
        match self {
            Trainer::Gpu(t) => t.losses(),
            Trainer::Cpu(_, losses) => Ok(std::mem::take(losses)),
        }
    }

    fn weights(&self) -> Result<Weights, RuntimeError> {
        match self {
            Trainer::Gpu(t) => t.weights(),
            Trainer::Cpu(t, _) => Ok(t.weights()),
        }
    }
}

fn optimizer(args: &Args) -> Result<OptimizerState, String> {
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(format!("--lr must be a positive number, not {}", args.lr));
    }
    let decay = args.weight_decay;
    if decay.is_some_and(|w| !(w.is_finite() && w >= 0.0)) {
        return Err(format!("--weight-decay must be 0 or more, not {}", decay.unwrap_or_default()));
    }
    if !(0.0..1.0).contains(&args.momentum) {
        return Err(format!("--momentum must be in [0, 1), not {}", args.momentum));
    }
    if args.momentum != 0.0 && args.optimizer != OptimizerArg::Sgd {
        return Err("--momentum is SGD's; Adam and AdamW take their betas".into());
    }
    let optimizer = match (args.optimizer, decay) {
        (OptimizerArg::Sgd, decay) => Optimizer::Sgd {
            momentum: args.momentum,
            dampening: 0.0,
            nesterov: false,
            weight_decay: decay.unwrap_or(0.0),
        },
        (OptimizerArg::Adam | OptimizerArg::Adamw, decay) => {
            let defaults = if args.optimizer == OptimizerArg::Adam { Optimizer::adam() } else { Optimizer::adamw() };
            match (defaults, decay) {
                (Optimizer::Adam { betas, eps, decoupled, .. }, Some(weight_decay)) => {
                    Optimizer::Adam { betas, eps, weight_decay, decoupled }
                }
                (defaults, _) => defaults,
            }
        }
    };
    Ok(OptimizerState::new(optimizer, args.lr, Schedule::Constant))
}

/// Writes `weights` as a PyTorch-loadable checkpoint (see [`weights::write_checkpoint`]) through a
/// temporary file that is flushed to disk and then renamed into place (the folder flushed after), so
/// that an interrupted write or a crash leaves the previous checkpoint or the new one, never part of
/// one.
fn save(path: &Path, weights: &Weights, steps: u64, metadata: &[(String, String)]) -> Result<(), RuntimeError> {
    let partial = path.with_extension("safetensors.partial");
    let failed = |source| RuntimeError::Write { path: path.to_path_buf(), source };
    let written = weights::write_checkpoint(&partial, weights, steps, metadata)
        .and_then(|()| std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(failed))
        .and_then(|()| std::fs::rename(&partial, path).map_err(failed));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written?;
    if let Some(folder) = path.parent() {
        // Makes the rename itself durable; not every platform can open a folder, which is harmless.
        if let Ok(f) = std::fs::File::open(folder) {
            let _ = f.sync_all();
        }
    }
    Ok(())
}

/// The metrics log: one JSON object per line.
struct Metrics(std::fs::File, PathBuf);

impl Metrics {
    fn log(&mut self, value: serde_json::Value) -> Result<(), RuntimeError> {
        writeln!(self.0, "{value}").map_err(|source| RuntimeError::Write { path: self.1.clone(), source })
    }
}

fn execute(args: &Args, model: &Model) -> Result<(), Box<dyn std::error::Error>> {
    if args.batch == 0 || args.epochs == 0 || args.log_every == 0 {
        return Err("--batch, --epochs and --log-every must be at least 1".into());
    }
    let optimizer = optimizer(args)?;
    let graph = &model.graph;
    let classes = graph.node(graph.output).shape.elements() as usize;
    let input = graph.node(graph.input).shape.dims().to_vec();
    let (mean, std) = normalisation(model)?;
    let augment = match &args.augment {
        Some(text) => data::augment::parse(text).map_err(|e| format!("--augment: {e}"))?,
        None => Vec::new(),
    };
    let read = |split, augment: &[Augment]| -> Result<Dataset, RuntimeError> {
        let mut d = data::open(&args.data, split)?;
        if let Some(n) = args.limit {
            d.truncate(n as usize);
        }
        d.check_fits(&input, classes, augment)?;
        Ok(d)
    };
    let (train, test) = (read(Split::Train, &augment)?, read(Split::Test, &[])?);
    let steps_per_epoch = (train.len() / args.batch) as u64;
    if steps_per_epoch == 0 {
        return Err(
            format!("the training split has {} images, fewer than one batch of {}", train.len(), args.batch).into()
        );
    }
    let initial = initial_weights(args, model)?;
    let frozen = |p: &Param| args.freeze.iter().any(|f| under(&p.name, f));
    let table = graph.weight_table();
    if let Some(f) = args.freeze.iter().find(|f| !table.params.iter().any(|p| under(&p.name, f))) {
        return Err(format!(
            "--freeze {f}: no parameter of the spec is under `{f}` (they are named like `{}`)",
            table.params[0].name
        )
        .into());
    }
    let trainable = |p: &Param| !frozen(p);
    if !table.params.iter().any(|p| p.kind.is_trainable() && trainable(p)) {
        return Err("--freeze leaves nothing to train".into());
    }
    if !args.freeze.is_empty() {
        let learned = table.params.iter().filter(|p| p.kind.is_trainable());
        let (kept, trained): (Vec<&Param>, Vec<&Param>) = learned.partition(|p| frozen(p));
        println!("frozen: {} ({} of {} tensors)", args.freeze.join(", "), kept.len(), kept.len() + trained.len());
    }
    if let Some(existing) =
        ["last.safetensors", "best.safetensors"].iter().map(|f| args.out.join(f)).find(|p| p.exists())
    {
        return Err(format!(
            "{} exists: --out {} holds an earlier run, which this one would overwrite; choose another folder or \
             remove it",
            existing.display(),
            args.out.display()
        )
        .into());
    }
    let gpu = if args.cpu { None } else { Some(gpu::open(args.adapter.as_deref())?) };
    let options = StepOptions { seed: args.seed, ..StepOptions::default() };
    let mut trainer = match &gpu {
        Some(gpu) => {
            Trainer::Gpu(Box::new(GpuTrainer::new(gpu, graph, &initial, trainable, optimizer, &options, args.batch)?))
        }
        None => Trainer::Cpu(Box::new(CpuTrainer::new(graph, &initial, trainable, optimizer, options)?), Vec::new()),
    };
    // The output folder is touched only once training can start, so a run that fails before its
    // first step leaves an earlier run's files alone.
    std::fs::create_dir_all(&args.out).map_err(|source| RuntimeError::Write { path: args.out.clone(), source })?;
    let metrics_path = args.out.join("metrics.jsonl");
    let file = std::fs::File::create(&metrics_path)
        .map_err(|source| RuntimeError::Write { path: metrics_path.clone(), source })?;
    let mut metrics = Metrics(file, metrics_path);
    let device = gpu.as_ref().map_or("the CPU reference executor".to_string(), |g| g.info.name.clone());
    println!(
        "training `{}` on {} ({} training and {} test images{}), batch {}, {} steps per epoch, on {device}",
        graph.meta.name,
        args.data,
        group(train.len() as u64),
        group(test.len() as u64),
        match train.len() % args.batch {
            0 => String::new(),
            left => format!("; the last {left} of each shuffled epoch do not fill a batch and are left out"),
        },
        args.batch,
        group(steps_per_epoch)
    );
    if let Some(text) = args.augment.as_deref().filter(|_| !augment.is_empty()) {
        println!("augmenting the training images: {text}");
    }

    let names = class_names(model, &test, classes);
    let started = Instant::now();
    let mut best: Option<f64> = None;
    let mut step = 0u64;
    let bar = progress_bar(steps_per_epoch);
    let mut last_eval: Option<Evaluation> = None;
    for epoch in 1..=args.epochs {
        let epoch_started = Instant::now();
        let order = data::shuffled(train.len(), args.seed, epoch);
        let draws = rng::key(args.seed, epoch, AUGMENT_STREAM);
        let (mut epoch_loss, mut epoch_losses) = (0f64, 0u64);
        let mut window = (Instant::now(), 0u64);
        if let Some(bar) = &bar {
            bar.reset();
            bar.set_prefix(format!("epoch {epoch}/{}", args.epochs));
        }
        for (i, chunk) in order.chunks_exact(args.batch).enumerate() {
            let (x, labels) = train.augmented_batch(chunk, &mean, &std, &augment, draws, i * args.batch);
            trainer.step(&x, &labels)?;
            step += 1;
            window.1 += 1;
            let end_of_epoch = i as u64 + 1 == steps_per_epoch;
            if step.is_multiple_of(args.log_every) || end_of_epoch {
                let losses = trainer.losses()?;
                if let Some(bad) = losses.iter().position(|l| !l.is_finite()) {
                    let kept = match epoch {
                        1 => "no checkpoint of this run was written".to_string(),
                        _ => format!("{} is from epoch {}", args.out.join("last.safetensors").display(), epoch - 1),
                    };
                    return Err(format!(
                        "the loss became {} at step {}; training stopped ({kept}). A smaller --lr often helps",
                        losses[bad],
                        step - losses.len() as u64 + bad as u64 + 1,
                    )
                    .into());
                }
                let mean_loss = losses.iter().map(|l| f64::from(*l)).sum::<f64>() / losses.len().max(1) as f64;
                epoch_loss += losses.iter().map(|l| f64::from(*l)).sum::<f64>();
                epoch_losses += losses.len() as u64;
                let rate = (window.1 * args.batch as u64) as f64 / window.0.elapsed().as_secs_f64();
                window = (Instant::now(), 0);
                metrics.log(serde_json::json!({
                    "kind": "step", "epoch": epoch, "step": step, "loss": mean_loss, "lr": args.lr,
                    "images_per_s": rate, "seconds": started.elapsed().as_secs_f64(),
                }))?;
                match &bar {
                    Some(bar) => bar.set_message(format!("loss {mean_loss:.4}, {rate:.0} images/s")),
                    None => eprintln!("epoch {epoch} step {step}: loss {mean_loss:.4}, {rate:.0} images/s"),
                }
            }
            if let Some(bar) = &bar {
                bar.inc(1);
            }
        }
        let train_seconds = epoch_started.elapsed().as_secs_f64();
        if let Some(bar) = &bar {
            bar.set_message("evaluating on the test split");
        }
        let weights = trainer.weights()?;
        let engine = Engine::new(model, &weights, gpu.as_ref(), 256.min(test.len()))?;
        let eval = evaluate(&engine, &test, &mean, &std, classes, 256)?;
        let metadata: Vec<(String, String)> = [
            ("model", graph.meta.name.clone()),
            ("spec", args.spec.display().to_string()),
            ("epoch", epoch.to_string()),
            ("step", step.to_string()),
            ("seed", args.seed.to_string()),
            ("test_accuracy", eval.accuracy().to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .to_vec();
        save(&args.out.join("last.safetensors"), &weights, step, &metadata)?;
        let improved = best.is_none_or(|b| eval.accuracy() > b);
        if improved {
            best = Some(eval.accuracy());
            save(&args.out.join("best.safetensors"), &weights, step, &metadata)?;
        }
        let train_loss = epoch_loss / epoch_losses.max(1) as f64;
        let rate = (steps_per_epoch * args.batch as u64) as f64 / train_seconds;
        metrics.log(serde_json::json!({
            "kind": "epoch", "epoch": epoch, "step": step, "loss": train_loss, "test_loss": eval.loss,
            "accuracy": eval.accuracy(), "lr": args.lr, "images_per_s": rate,
            "seconds": started.elapsed().as_secs_f64(),
        }))?;
        let line = format!(
            "epoch {epoch}/{}: train loss {train_loss:.4}, test loss {:.4}, test accuracy {:.2} % ({} of {}){}; \
             {rate:.0} images/s, {:.1} s",
            args.epochs,
            eval.loss,
            100.0 * eval.accuracy(),
            group(eval.correct()),
            group(eval.images()),
            if improved { ", best so far" } else { "" },
            epoch_started.elapsed().as_secs_f64()
        );
        match &bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
        last_eval = Some(eval);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(eval) = last_eval {
        println!("\n{}", report(&eval, &names, Split::Test));
    }
    println!(
        "wrote {} and {} (best test accuracy {:.2} %) and {}",
        args.out.join("last.safetensors").display(),
        args.out.join("best.safetensors").display(),
        100.0 * best.unwrap_or(0.0),
        args.out.join("metrics.jsonl").display()
    );
    Ok(())
}

/// Whether the parameter `name` is `path` or lies under it (`layer1` holds `layer1.0.conv1.weight`).
fn under(name: &str, path: &str) -> bool {
    name.strip_prefix(path).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// The weights training starts from: PyTorch's initialisation from the seed, or the checkpoint
/// (with `--strict false`, what matches of it, the rest initialised as PyTorch does and reported).
fn initial_weights(args: &Args, model: &Model) -> Result<Weights, Box<dyn std::error::Error>> {
    let table = model.graph.weight_table();
    let Some(path) = &args.weights else { return Ok(synthetic::pytorch_init(&table.params, args.seed)) };
    let file = weights::read(path)?;
    if args.strict {
        return weights::bind(&table, file, true).map(|b| b.weights).map_err(|e| {
            format!("{e}(to start from what matches and initialise the rest, add --strict false)").into()
        });
    }
    let bound = weights::bind_matching(&table, file)?;
    if bound.weights.is_empty() {
        return Err(format!(
            "no tensor of {} has a name and shape of the spec's (they are named like `{}`): it is not a checkpoint of \
             this model",
            path.display(),
            table.params[0].name
        )
        .into());
    }
    let mut weights = bound.weights;
    let report = bound.tolerated;
    eprintln!("loaded {} of the spec's {} tensors from {}", weights.len(), table.params.len(), path.display());
    for (name, want, found) in &report.wrong_shape {
        eprintln!("  initialised as PyTorch does: {name} {want:?} (the checkpoint's is {found:?})");
    }
    for (name, shape) in &report.missing {
        eprintln!("  initialised as PyTorch does: {name} {shape:?} (not in the checkpoint)");
    }
    for (name, shape) in &report.unexpected {
        eprintln!("  ignored: {name} {shape:?} (not in the spec)");
    }
    // The whole table is drawn so that a bias gets its weight's fan-in, as PyTorch initialises it.
    let fresh = synthetic::pytorch_init(&table.params, args.seed);
    for p in &table.params {
        if weights.get(&p.name).is_none() {
            weights.insert(p.name.clone(), fresh.get(&p.name).expect("every parameter is initialised").clone());
        }
    }
    Ok(weights)
}

/// A bar over one epoch's steps, when stderr is a terminal.
fn progress_bar(steps: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(steps);
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps, {msg} (ETA {eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(250));
    Some(bar)
}
