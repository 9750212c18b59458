//! `cnnc train`: trains a model on a dataset, evaluates it on the test split after every epoch, and
//! writes checkpoints and a metrics log.

use super::stdout::errln;
use super::stdout::outln;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cnnc::compiler::graph::Param;
use cnnc::compiler::{Model, SourceMap};
use cnnc::runtime::data::augment::Placement;
use cnnc::runtime::data::{self, Dataset, Split, Transform};
use cnnc::runtime::gpu::{self, Gpu, GpuTrainer, HeldImages};
use cnnc::runtime::train::{
    freeze_batch_norms, rng, CpuTrainer, CrossEntropy, Optimizer, OptimizerState, Schedule, StepOptions,
};
use cnnc::runtime::weights::{self, Weights};
use cnnc::runtime::{cpu, synthetic, RuntimeError, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

use super::eval::{class_names, eval_batch, evaluate, read_dataset, report, transform, Engine, Evaluation};
use super::recipe::{Given, OptimizerArg, Recipe};
use super::schedule;
use super::train_state::{self, Position, Saved};
use super::{group, SpecPath};

/// The augmentation's draws, apart from the dropout masks' (keyed by node index) and the shuffle's.
const AUGMENT_STREAM: usize = 0xA065;

#[derive(clap::Args)]
pub struct Args {
    /// The model spec.
    #[arg(value_name = "SPEC")]
    spec: SpecPath,
    /// Give one of the spec's `let` bindings, or a parameter of the module its body calls, a value
    /// of the spec language: `--set num_classes=2` makes a zoo model's head two-way.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = super::parse_setting)]
    set: Vec<(String, String)>,
    /// The dataset, as FORMAT:PATH: `idx:DIR` (MNIST and Fashion-MNIST files, gzipped or not,
    /// such as /usr/share/datasets/fashion-mnist from Debian's `dataset-fashion-mnist`),
    /// `cifar10:DIR` (CIFAR-10's Python batches, `cifar-10-batches-py`, or binary ones) or
    /// `imagefolder:DIR`
    /// (`DIR/train/<class>/*.jpg` and `DIR/val/<class>/*.jpg`, as torchvision's ImageFolder; a
    /// split whose decoded images take up to 2 GiB is held in memory, a larger one decoded batch by
    /// batch: the environment variable CNNC_DATASET_MEMORY_MIB sets that limit).
    #[arg(long, value_name = "FORMAT:PATH")]
    data: String,
    /// Where to write `last.safetensors` (after every epoch), `best.safetensors` (the epoch with the
    /// best test accuracy), `metrics.jsonl` and `train_state.safetensors` (what --resume needs).
    #[arg(long, value_name = "DIR", required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in DIR (its --out) from its last checkpoint, or from where Ctrl-C stopped
    /// it, taking exactly the steps the uninterrupted run would have; give the run's other options
    /// again (--epochs may grow, unless a cosine or onecycle --schedule spans the run).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "weights"])]
    resume: Option<PathBuf>,
    #[command(flatten)]
    recipe: Given,
    /// Start from this checkpoint (.safetensors or .pth, names as in the spec's weight table)
    /// instead of PyTorch's initialisation.
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// With `--strict false`, load every tensor of --weights whose name and shape match the spec
    /// and initialise the rest as PyTorch does (a new classifier head when fine-tuning), reporting
    /// both; by default the checkpoint must match exactly.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL", requires = "weights")]
    strict: bool,
    /// Use only N images of each split, spread evenly over it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Leave out images of an image folder that cannot be decoded (their count is reported)
    /// instead of stopping at the first.
    #[arg(long)]
    skip_bad: bool,
    /// Log the mean training loss and accuracy of the last N steps every N steps (to metrics.jsonl,
    /// on the progress bar, and as a line when stderr is not a terminal).
    #[arg(long, default_value_t = 500, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    log_every: u64,
    /// Train on the CPU reference executor (float64) instead of the GPU.
    #[arg(long)]
    cpu: bool,
    /// Make every batch on the host and upload it, even when the training images could stay on
    /// the GPU as bytes with each batch made there (images of one size whose augmentation only
    /// crops and flips, within one storage binding). Both give the same batches, bit for bit.
    #[arg(long)]
    host_batches: bool,
    /// The GPU adapter to use: part of its name, or a backend; see `cnnc devices`.
    #[arg(long, value_name = "NAME")]
    adapter: Option<String>,
}

pub fn run(args: Args) -> ExitCode {
    let code = match super::compile_model_set(&args.spec, &args.set) {
        Ok((model, sources)) => match execute(&args, &model, &sources) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                errln!("error: {e}");
                super::print_layer_location(e.downcast_ref::<RuntimeError>(), &sources);
                ExitCode::from(1)
            }
        },
        Err(code) => code,
    };
    // A run Ctrl-C stopped has written its checkpoint; it still did not finish (130: SIGINT's).
    if train_state::stopped() {
        ExitCode::from(130)
    } else {
        code
    }
}

/// A step's input: floats made on the host, or the indices and placements of images the GPU
/// trainer holds.
enum Made {
    Floats(Tensor),
    Held(Vec<(usize, Placement)>),
}

/// The training split's images and their `[C, H, W]`, when the GPU trainer can hold them as bytes
/// and make each batch itself: images of one shape, whose transform only moves pixels (crops and
/// flips, no resampling), within one storage binding.
fn held_images<'d>(gpu: Option<&Gpu>, train: &'d Dataset, transform: &Transform) -> Option<([usize; 3], &'d [u8])> {
    let (Some(gpu), data::Images::Same { bytes, shape }) = (gpu, &train.images) else { return None };
    transform.placement(*shape, 0, 0)?;
    GpuTrainer::can_hold(gpu, bytes.len()).then_some((*shape, bytes.as_slice()))
}

/// Either executor's trainer.
enum Trainer<'g> {
    Gpu(Box<GpuTrainer>),
    /// The CPU trainer and its steps' losses and right answers not yet handed out.
    Cpu(Box<CpuTrainer<'g>>, Vec<(f32, usize)>),
}

impl Trainer<'_> {
    fn step(&mut self, x: &Tensor, labels: &[usize]) -> Result<(), RuntimeError> {
        match self {
            Trainer::Gpu(t) => t.step(x, labels),
            Trainer::Cpu(t, results) => {
                let loss = t.step(x, labels)? as f32;
                results.push((loss, t.last_correct()));
                Ok(())
            }
        }
    }

    /// A step on `made`: floats on either trainer, held images' placements on the GPU trainer that
    /// holds them.
    fn step_on(&mut self, made: &Made, labels: &[usize]) -> Result<(), RuntimeError> {
        match (self, made) {
            (Trainer::Gpu(t), Made::Held(items)) => t.step_held(items, labels),
            (Trainer::Cpu(..), Made::Held(_)) => Err(RuntimeError::NotHolding),
            (trainer, Made::Floats(x)) => trainer.step(x, labels),
        }
    }

    /// Each step's loss and the items its training-mode forward classified right, since the last
    /// call.
    fn step_results(&mut self) -> Result<Vec<(f32, usize)>, RuntimeError> {
        match self {
            Trainer::Gpu(t) => t.step_results(),
            Trainer::Cpu(_, results) => Ok(std::mem::take(results)),
        }
    }

    /// The parameters (with running statistics) and the optimizer's state, as the trainer holds them.
    fn state(&self) -> Result<(Weights<f64>, Weights<f64>), RuntimeError> {
        match self {
            Trainer::Gpu(t) => Ok((t.weights()?.convert(), t.optimizer_state()?.convert())),
            Trainer::Cpu(t, _) => Ok((t.params().clone(), t.optimizer_state())),
        }
    }

    fn resume(&mut self, saved: Saved) -> Result<(), RuntimeError> {
        let steps = saved.position.steps;
        match self {
            Trainer::Gpu(t) => t.resume(&saved.params.convert(), &saved.optimizer.convert(), steps),
            Trainer::Cpu(t, _) => t.resume(saved.params, &saved.optimizer, steps),
        }
    }

    /// The learning rate of the last step taken (the first step's before any).
    fn last_lr(&self) -> f64 {
        let o = match self {
            Trainer::Gpu(t) => t.optimizer(),
            Trainer::Cpu(t, _) => t.optimizer(),
        };
        o.schedule.lr(o.lr, o.steps.saturating_sub(1))
    }

    /// Whether it trains in float32 on the GPU (else float64 on the CPU).
    fn is_gpu(&self) -> bool {
        matches!(self, Trainer::Gpu(_))
    }
}

/// The optimizer `r` asks for; `origin` names where a value came from, for messages.
fn optimizer(r: &Recipe, origin: &dyn Fn(&str) -> String) -> Result<OptimizerState, String> {
    if !(r.lr.is_finite() && r.lr > 0.0) {
        return Err(format!("{} must be a positive number, not {}", origin("lr"), r.lr));
    }
    let decay = r.weight_decay;
    if decay.is_some_and(|w| !(w.is_finite() && w >= 0.0)) {
        return Err(format!("{} must be 0 or more, not {}", origin("weight_decay"), decay.unwrap_or_default()));
    }
    if !(0.0..1.0).contains(&r.momentum) {
        return Err(format!("{} must be in [0, 1), not {}", origin("momentum"), r.momentum));
    }
    if r.momentum != 0.0 && r.optimizer != OptimizerArg::Sgd {
        return Err(format!("{} is SGD's; Adam and AdamW take their betas", origin("momentum")));
    }
    let optimizer = match (r.optimizer, decay) {
        (OptimizerArg::Sgd, decay) => {
            Optimizer::Sgd { momentum: r.momentum, dampening: 0.0, nesterov: false, weight_decay: decay.unwrap_or(0.0) }
        }
        (OptimizerArg::Adam | OptimizerArg::Adamw, decay) => {
            let defaults = if r.optimizer == OptimizerArg::Adam { Optimizer::adam() } else { Optimizer::adamw() };
            match (defaults, decay) {
                (Optimizer::Adam { betas, eps, decoupled, .. }, Some(weight_decay)) => {
                    Optimizer::Adam { betas, eps, weight_decay, decoupled }
                }
                (defaults, _) => defaults,
            }
        }
    };
    Ok(OptimizerState::new(optimizer, r.lr, Schedule::Constant))
}

/// Writes `weights` as a PyTorch-loadable checkpoint (see [`weights::write_checkpoint`]) atomically
/// ([`train_state::atomically`]).
fn save(path: &Path, weights: &Weights, steps: u64, metadata: &[(String, String)]) -> Result<(), RuntimeError> {
    train_state::atomically(path, |partial| weights::write_checkpoint(partial, weights, steps, metadata))
}

/// The metrics log: one JSON object per line.
struct Metrics {
    file: std::fs::File,
    path: PathBuf,
    /// Bytes in the file: what a resumed run keeps of it.
    bytes: u64,
}

impl Metrics {
    /// Appends `value` as one line, in one write, so that a run stopped part-way leaves whole lines.
    fn log(&mut self, value: serde_json::Value) -> Result<(), RuntimeError> {
        let line = format!("{value}\n");
        self.file
            .write_all(line.as_bytes())
            .map_err(|source| RuntimeError::Write { path: self.path.clone(), source })?;
        self.bytes += line.len() as u64;
        Ok(())
    }
}

fn execute(args: &Args, model: &Model, sources: &SourceMap) -> Result<(), Box<dyn std::error::Error>> {
    let spec = model.graph.train.as_ref();
    let r = Recipe::resolve(&args.recipe, spec);
    let origin = |key: &str| r.origin(key, spec, sources);
    if r.batch == 0 || r.epochs == 0 || args.log_every == 0 {
        return Err("--batch, --epochs and --log-every must be at least 1".into());
    }
    if !(0.0..1.0).contains(&r.label_smoothing) {
        return Err(format!("{} must be in [0, 1), not {}", origin("label_smoothing"), r.label_smoothing).into());
    }
    if !r.from_spec.is_empty() {
        outln!("from the spec's `train:` section: {}", r.from_spec.join(", "));
    }
    let mut optimizer = optimizer(&r, &origin)?;
    let graph = &model.graph;
    let classes = graph.node(graph.output).shape.elements() as usize;
    let augment = match &r.augment {
        Some(text) => data::augment::parse(text).map_err(|e| format!("{}: {e}", origin("augment")))?,
        None => Vec::new(),
    };
    let (train_transform, test_transform) = (transform(model, augment)?, transform(model, Vec::new())?);
    let read = |split, transform| read_dataset(&args.data, split, args.limit, args.skip_bad, transform, classes);
    let (train, test) = (read(Split::Train, &train_transform)?, read(Split::Test, &test_transform)?);
    if train.class_names != test.class_names {
        return Err(format!(
            "the training and held-out splits of {} name different classes ({:?} and {:?}); their labels would not \
             agree",
            args.data,
            train.class_names.unwrap_or_default(),
            test.class_names.unwrap_or_default()
        )
        .into());
    }
    let steps_per_epoch = (train.len() / r.batch) as u64;
    if steps_per_epoch == 0 {
        return Err(
            format!("the training split has {} images, fewer than one batch of {}", train.len(), r.batch).into()
        );
    }
    if let Some(text) = &r.schedule {
        optimizer.schedule = schedule::parse(text, r.epochs, steps_per_epoch, r.lr)
            .map_err(|e| format!("{}: {e}", origin("schedule")))?;
        if matches!(optimizer.schedule, Schedule::OneCycle { .. })
            && matches!(optimizer.optimizer, Optimizer::Sgd { momentum, .. } if momentum == 0.0)
        {
            return Err(format!(
                "{}: onecycle cycles SGD's momentum, as PyTorch's OneCycleLR does; give SGD a --momentum (0.9, say)",
                origin("schedule")
            )
            .into());
        }
    }
    let recipe = resume_recipe(args, &r, &optimizer, [&train, &test]);
    let resumed = match &args.resume {
        Some(dir) => Some(train_state::read(dir, &recipe)?),
        None => None,
    };
    let out = args.resume.as_ref().or(args.out.as_ref()).expect("clap requires --out or --resume");
    let initial = match &resumed {
        Some(saved) => saved.params.convert(),
        None => initial_weights(args, r.seed, model)?,
    };
    let frozen = |p: &Param| r.freeze.iter().any(|f| under(&p.name, f));
    let table = graph.weight_table();
    if let Some(f) = r.freeze.iter().find(|f| !table.params.iter().any(|p| under(&p.name, f))) {
        return Err(format!(
            "{} {f}: no parameter of the spec is under `{f}` (they are named like `{}`)",
            origin("freeze"),
            table.params[0].name
        )
        .into());
    }
    let trainable = |p: &Param| !frozen(p);
    if !table.params.iter().any(|p| p.kind.is_trainable() && trainable(p)) {
        return Err(format!("{} leaves nothing to train", origin("freeze")).into());
    }
    let (train_graph, frozen_norms) = freeze_batch_norms(graph, &initial, frozen)?;
    if !r.freeze.is_empty() {
        let learned = table.params.iter().filter(|p| p.kind.is_trainable());
        let (kept, trained): (Vec<&Param>, Vec<&Param>) = learned.partition(|p| frozen(p));
        let norms = frozen_norms.names().iter().filter(|n| n.ends_with("running_mean")).count();
        outln!(
            "frozen: {} ({} of {} tensors){}",
            r.freeze.join(", "),
            kept.len(),
            kept.len() + trained.len(),
            match norms {
                0 => String::new(),
                n => format!("; its {n} batch norm(s) normalise with their running statistics and keep them"),
            }
        );
    }
    // The trainer's tensors, and the frozen batch norms' it does not hold.
    let state = |trainer: &Trainer| -> Result<(Weights<f64>, Weights<f64>), RuntimeError> {
        let (mut params, optimizer) = trainer.state()?;
        for name in frozen_norms.names() {
            params.insert(name.to_string(), frozen_norms.get(name).expect("listed").convert());
        }
        Ok((params, optimizer))
    };
    if resumed.is_none() {
        if let Some(existing) =
            ["last.safetensors", "best.safetensors", train_state::FILE].iter().map(|f| out.join(f)).find(|p| p.exists())
        {
            return Err(format!(
                "{} exists: --out {} holds an earlier run, which this one would overwrite; continue it with --resume \
                 {}, or choose another folder",
                existing.display(),
                out.display(),
                out.display()
            )
            .into());
        }
    }
    let mut position = Position { epoch: 1, ..Position::default() };
    if let Some(saved) = &resumed {
        position = saved.position.clone();
        if position.batches == steps_per_epoch {
            position = Position { epoch: position.epoch + 1, batches: 0, loss_sum: 0.0, loss_count: 0, ..position };
        }
        if position.epoch > r.epochs {
            return Err(format!(
                "--resume {}: the run has finished {} epoch(s); ask for more with --epochs",
                out.display(),
                position.epoch - 1
            )
            .into());
        }
    }
    let gpu = if args.cpu { None } else { Some(gpu::open(args.adapter.as_deref())?) };
    let loss = CrossEntropy { label_smoothing: r.label_smoothing, ..CrossEntropy::default() };
    let options = StepOptions { seed: r.seed, loss, ..StepOptions::default() };
    let on_device = held_images(gpu.as_ref().filter(|_| !args.host_batches), &train, &train_transform);
    let mut trainer = match (&gpu, on_device) {
        (Some(gpu), Some((shape, bytes))) => {
            let table = train_transform.normalized_bytes();
            let images = HeldImages { bytes, shape, table: &table };
            let t = GpuTrainer::holding(gpu, &train_graph, &initial, trainable, optimizer, &options, r.batch, &images)?;
            Trainer::Gpu(Box::new(t))
        }
        (Some(gpu), None) => Trainer::Gpu(Box::new(GpuTrainer::new(
            gpu,
            &train_graph,
            &initial,
            trainable,
            optimizer,
            &options,
            r.batch,
        )?)),
        (None, _) => {
            let trainer = CpuTrainer::new(&train_graph, &initial, trainable, optimizer, options)?;
            Trainer::Cpu(Box::new(trainer), Vec::new())
        }
    };
    if let Some(saved) = resumed {
        trainer.resume(saved)?;
    }
    // The output folder is touched only once training can start, so a run that fails before its
    // first step leaves an earlier run's files alone.
    std::fs::create_dir_all(out).map_err(|source| RuntimeError::Write { path: out.clone(), source })?;
    let metrics_path = out.join("metrics.jsonl");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(args.resume.is_none())
        .open(&metrics_path)
        .map_err(|source| RuntimeError::Write { path: metrics_path.clone(), source })?;
    // A resumed run drops what was logged after its state was saved, then goes on from there.
    let kept = if args.resume.is_some() { position.metrics_bytes } else { 0 };
    let mut metrics = Metrics { file, path: metrics_path, bytes: kept };
    let positioned = metrics.file.set_len(kept).and_then(|()| {
        use std::io::Seek;
        metrics.file.seek(std::io::SeekFrom::Start(kept)).map(|_| ())
    });
    positioned.map_err(|source| RuntimeError::Write { path: metrics.path.clone(), source })?;
    let device = gpu.as_ref().map_or("the CPU reference executor".to_string(), |g| g.info.name.clone());
    outln!(
        "training `{}` on {} ({} training and {} test images{}), batch {}, {} steps per epoch, on {device}",
        graph.meta.name,
        args.data,
        group(train.len() as u64),
        group(test.len() as u64),
        match train.len() % r.batch {
            0 => String::new(),
            left => format!("; the last {left} of each shuffled epoch do not fill a batch and are left out"),
        },
        r.batch,
        group(steps_per_epoch)
    );
    if let Some(text) = r.augment.as_deref().filter(|_| !train_transform.augment.is_empty()) {
        outln!("augmenting the training images: {text}");
    }
    if let Some((_, bytes)) = on_device {
        outln!(
            "the training images stay on the GPU as bytes ({:.1} MB); each step's batch is made there",
            bytes.len() as f64 / 1e6
        );
    }
    if args.resume.is_some() {
        outln!(
            "resuming at epoch {}, after {} of its {} steps ({} steps taken in all)",
            position.epoch,
            group(position.batches),
            group(steps_per_epoch),
            group(position.steps)
        );
    }
    train_state::catch_interrupt();

    let names = class_names(model, &test, classes);
    let held = test.split.as_str();
    let started = Instant::now();
    let bar = progress_bar(steps_per_epoch);
    let mut last_eval: Option<Evaluation> = None;
    let checkpoint = |weights: &Weights, position: &Position, accuracy: Option<f64>, file: &str| {
        let mut metadata: Vec<(String, String)> = [
            ("model", graph.meta.name.clone()),
            ("spec", args.spec.display().to_string()),
            ("epoch", position.epoch.to_string()),
            ("step", position.steps.to_string()),
            ("seed", r.seed.to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .to_vec();
        if let Some(a) = accuracy {
            metadata.push(("test_accuracy".into(), a.to_string()));
        }
        save(&out.join(file), weights, position.steps, &metadata)
    };
    for epoch in position.epoch..=r.epochs {
        let epoch_started = Instant::now();
        let order = data::shuffled(train.len(), r.seed, epoch);
        let draws = rng::key(r.seed, epoch, AUGMENT_STREAM);
        let mut window = (Instant::now(), 0u64);
        let skip = position.batches as usize;
        if let Some(bar) = &bar {
            bar.reset();
            bar.set_prefix(format!("epoch {epoch}/{}", r.epochs));
            bar.set_message("waiting for the first losses");
            bar.set_position(position.batches);
        }
        // Each batch is made on a thread of its own while the step before it runs.
        let plan: Vec<(usize, &[usize])> =
            order.chunks_exact(r.batch).enumerate().skip(skip).map(|(i, chunk)| (i * r.batch, chunk)).collect();
        // Held images need only their indices and placements; others are made into floats here.
        let make = |first: usize, chunk: &[usize]| -> Result<(Made, Vec<usize>), RuntimeError> {
            match on_device {
                Some((shape, _)) => {
                    let place = |(n, &i): (usize, &usize)| {
                        (i, train_transform.placement(shape, draws, first + n).expect("held images are placed"))
                    };
                    let labels = chunk.iter().map(|&i| train.labels[i] as usize).collect();
                    Ok((Made::Held(chunk.iter().enumerate().map(place).collect()), labels))
                }
                None => train.batch(chunk, &train_transform, draws, first).map(|(x, labels)| (Made::Floats(x), labels)),
            }
        };
        let consume =
            |batches: &mut dyn Iterator<Item = Result<(Made, Vec<usize>), RuntimeError>>| -> Result<bool, Box<dyn std::error::Error>> {
                for (i, made) in (skip..).zip(batches) {
                    let (made, labels) = made?;
                    trainer.step_on(&made, &labels)?;
                    position.steps += 1;
                    position.batches += 1;
                    window.1 += 1;
                    let step = position.steps;
                    let end_of_epoch = i as u64 + 1 == steps_per_epoch;
                    let stopping = train_state::interrupted();
                    if step.is_multiple_of(args.log_every) || end_of_epoch || stopping {
                        let results = trainer.step_results()?;
                        let losses: Vec<f32> = results.iter().map(|(loss, _)| *loss).collect();
                        if let Some(bad) = losses.iter().position(|l| !l.is_finite()) {
                            let kept = match out.join("last.safetensors") {
                                last if last.exists() => format!("{} is the last good checkpoint", last.display()),
                                _ => "no checkpoint of this run was written".to_string(),
                            };
                            let weights: Weights = state(&trainer)?.0.convert();
                            // The batch of the first step whose loss was not finite (the losses read back
                            // are this epoch's last steps, up to this one), made again from the epoch's order.
                            let first_bad = i + 1 + bad - losses.len();
                            let bad_chunk = &order[first_bad * r.batch..(first_bad + 1) * r.batch];
                            let (bad_x, _) = train.batch(bad_chunk, &train_transform, draws, first_bad * r.batch)?;
                            let culprit = match cpu::first_non_finite(graph, &weights, &bad_x)? {
                                Some((layer, what)) => {
                                    format!("; the first layer with non-finite values is `{layer}` ({what})")
                                }
                                None => String::new(),
                            };
                            let bad_step = step - losses.len() as u64 + bad as u64 + 1;
                            return Err(diverged(losses[bad], bad_step, &culprit, &kept).into());
                        }
                        let sum = losses.iter().map(|l| f64::from(*l)).sum::<f64>();
                        let mean_loss = sum / losses.len().max(1) as f64;
                        // Of the training batches since the last log, in training mode (dropout on), as
                        // the book's loops count it.
                        let right: usize = results.iter().map(|(_, correct)| correct).sum();
                        let accuracy = right as f64 / (results.len() * r.batch).max(1) as f64;
                        position.loss_sum += sum;
                        position.loss_count += losses.len() as u64;
                        let rate = (window.1 * r.batch as u64) as f64 / window.0.elapsed().as_secs_f64();
                        window = (Instant::now(), 0);
                        metrics.log(serde_json::json!({
                            "kind": "step", "epoch": epoch, "step": step, "loss": mean_loss, "accuracy": accuracy,
                            "lr": trainer.last_lr(),
                            "images_per_s": rate, "seconds": started.elapsed().as_secs_f64(),
                        }))?;
                        match &bar {
                            Some(bar) => bar.set_message(format!(
                                "loss {mean_loss:.4}, accuracy {:.2} %, {rate:.0} images/s",
                                100.0 * accuracy
                            )),
                            None => errln!(
                                "epoch {epoch} step {step}: loss {mean_loss:.4}, accuracy {:.2} %, {rate:.0} images/s",
                                100.0 * accuracy
                            ),
                        }
                    }
                    if let Some(bar) = &bar {
                        bar.inc(1);
                    }
                    if stopping && !end_of_epoch {
                        let (params, optimizer) = state(&trainer)?;
                        checkpoint(&params.convert(), &position, None, "last.safetensors")?;
                        position.metrics_bytes = metrics.bytes;
                        train_state::write(out, &params, &optimizer, &position, &recipe, trainer.is_gpu())?;
                        train_state::mark_stopped();
                        if let Some(bar) = &bar {
                            bar.finish_and_clear();
                        }
                        errln!("{}", interrupted(epoch, position.batches, steps_per_epoch, out));
                        return Ok(true);
                    }
                }
                Ok(false)
            };
        if data::prefetch::prefetch_with(&plan, make, consume)? {
            return Ok(());
        }
        let train_seconds = epoch_started.elapsed().as_secs_f64();
        if let Some(bar) = &bar {
            bar.set_message(format!("evaluating on the {} split", test.split));
        }
        let (params, optimizer) = state(&trainer)?;
        let weights: Weights = params.convert();
        let batch = eval_batch(graph, None).min(test.len());
        let engine = Engine::new(model, &weights, gpu.as_ref(), batch)?;
        let eval = evaluate(&engine, &test, &test_transform, classes, batch)?;
        checkpoint(&weights, &position, Some(eval.accuracy()), "last.safetensors")?;
        let improved = position.best.is_none_or(|b| eval.accuracy() > b);
        if improved {
            position.best = Some(eval.accuracy());
            checkpoint(&weights, &position, Some(eval.accuracy()), "best.safetensors")?;
        }
        let train_loss = position.loss_sum / position.loss_count.max(1) as f64;
        let trained = position.batches - skip as u64;
        let rate = (trained * r.batch as u64) as f64 / train_seconds;
        metrics.log(serde_json::json!({
            "kind": "epoch", "epoch": epoch, "step": position.steps, "loss": train_loss, "test_loss": eval.loss,
            "accuracy": eval.accuracy(), "lr": trainer.last_lr(), "images_per_s": rate,
            "seconds": started.elapsed().as_secs_f64(),
        }))?;
        position.metrics_bytes = metrics.bytes;
        train_state::write(out, &params, &optimizer, &position, &recipe, trainer.is_gpu())?;
        let line = format!(
            "epoch {epoch}/{}: train loss {train_loss:.4}, {held} loss {:.4}, {held} accuracy {:.2} % ({} of {}){}; \
             {rate:.0} images/s, {:.1} s",
            r.epochs,
            eval.loss,
            100.0 * eval.accuracy(),
            group(eval.correct()),
            group(eval.images()),
            if improved { ", best so far" } else { "" },
            epoch_started.elapsed().as_secs_f64()
        );
        match &bar {
            Some(bar) => bar.println(line),
            None => outln!("{line}"),
        }
        last_eval = Some(eval);
        if epoch < r.epochs {
            position = Position { epoch: epoch + 1, batches: 0, loss_sum: 0.0, loss_count: 0, ..position };
        }
        if train_state::interrupted() && epoch < r.epochs {
            train_state::mark_stopped();
            errln!("interrupted after epoch {epoch}; continue with the same command and --resume {}", out.display());
            return Ok(());
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(eval) = last_eval {
        outln!("\n{}", report(&eval, &names, held));
    }
    outln!(
        "wrote {} and {} (best {held} accuracy {:.2} %) and {}",
        out.join("last.safetensors").display(),
        out.join("best.safetensors").display(),
        100.0 * position.best.unwrap_or(0.0),
        out.join("metrics.jsonl").display()
    );
    Ok(())
}

/// Why a run stopped at the step whose loss was `loss` (not finite): where, the layer `culprit`
/// names, which checkpoint is `kept`, and what usually helps.
fn diverged(loss: f32, step: u64, culprit: &str, kept: &str) -> String {
    format!("the loss became {loss} at step {step}{culprit}; training stopped ({kept}). A smaller --lr often helps")
}

/// What Ctrl-C in the middle of an epoch left in `out`, and how to continue.
fn interrupted(epoch: u64, batches: u64, steps_per_epoch: u64, out: &Path) -> String {
    format!(
        "interrupted at epoch {epoch}, step {batches} of {steps_per_epoch}: wrote {}; continue with the same command and \
         --resume {}",
        out.join("last.safetensors").display(),
        out.display()
    )
}

/// What a resumed run must share with the run it continues, for its steps to be the same.
fn resume_recipe(args: &Args, r: &Recipe, optimizer: &OptimizerState, splits: [&Dataset; 2]) -> serde_json::Value {
    serde_json::json!({
        "spec": args.spec.display().to_string(),
        "set": args.set,
        "data": args.data,
        "images": splits.map(Dataset::len),
        "classes": splits[0].class_names,
        "batch": r.batch,
        "seed": r.seed,
        "optimizer": format!("{:?}", optimizer.optimizer),
        "schedule": format!("{:?}", optimizer.schedule),
        "lr": r.lr,
        "augment": r.augment,
        "limit": args.limit,
        "freeze": r.freeze,
        "label_smoothing": r.label_smoothing,
        "skip_bad": args.skip_bad,
        "executor": if args.cpu { "cpu" } else { "gpu" },
    })
}

/// Whether the parameter `name` is `path` or lies under it (`layer1` holds `layer1.0.conv1.weight`).
fn under(name: &str, path: &str) -> bool {
    name.strip_prefix(path).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// The weights training starts from: PyTorch's initialisation from the seed, or the checkpoint
/// (with `--strict false`, what matches of it, the rest initialised as PyTorch does and reported).
fn initial_weights(args: &Args, seed: u64, model: &Model) -> Result<Weights, Box<dyn std::error::Error>> {
    let table = model.graph.weight_table();
    let Some(path) = &args.weights else {
        cnnc::runtime::memory::reserve_weights(&table.params)?;
        return Ok(synthetic::pytorch_init(&table.params, seed));
    };
    let file = super::read_weights(path, &table)?;
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
    errln!("loaded {} of the spec's {} tensors from {}", weights.len(), table.params.len(), path.display());
    for (name, want, found) in &report.wrong_shape {
        errln!("  initialised as PyTorch does: {name} {want:?} (the checkpoint's is {found:?})");
    }
    for (name, shape) in &report.missing {
        errln!("  initialised as PyTorch does: {name} {shape:?} (not in the checkpoint)");
    }
    for (name, shape) in &report.unexpected {
        errln!("  ignored: {name} {shape:?} (not in the spec)");
    }
    // The whole table is drawn so that a bias gets its weight's fan-in, as PyTorch initialises it.
    let fresh = synthetic::pytorch_init(&table.params, seed);
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
