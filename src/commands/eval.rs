//! `cnnc eval`: a model's accuracy and loss on a dataset split, per class and as a confusion matrix.
//! Training evaluates each epoch with the same code ([`evaluate`]).

use super::stdout::errln;
use super::stdout::{out, outln};
use std::path::PathBuf;
use std::process::ExitCode;

use cnnc::compiler::graph::Graph;
use cnnc::compiler::Model;
use cnnc::runtime::data::prefetch::prefetch;
use cnnc::runtime::data::{self, Augment, Dataset, ReadOptions, Split, Transform};
use cnnc::runtime::gpu::{self, Gpu, Prepared};
use cnnc::runtime::weights::{self, Weights};
use cnnc::runtime::{cpu, RuntimeError, Tensor};

use super::progress::Progress;
use super::{group, SpecPath};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitArg {
    Train,
    /// The held-out split: the test images, or an image folder's `val` folder.
    #[value(alias = "val")]
    Test,
}

impl From<SplitArg> for Split {
    fn from(s: SplitArg) -> Split {
        match s {
            SplitArg::Train => Split::Train,
            SplitArg::Test => Split::Test,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// The model spec.
    #[arg(value_name = "SPEC")]
    spec: SpecPath,
    /// Give one of the spec's `let` bindings, or a parameter of the module its body calls, a value
    /// of the spec language: `--set num_classes=2` makes a zoo model's head two-way.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = super::parse_setting)]
    set: Vec<(String, String)>,
    /// Checkpoint to evaluate (.safetensors or .pth), matched by name against the spec's weight table.
    #[arg(long, value_name = "FILE")]
    weights: PathBuf,
    /// The dataset, as FORMAT:PATH: `idx:DIR` (MNIST and Fashion-MNIST files, gzipped or not),
    /// `cifar10:DIR` (CIFAR-10's Python batches, `cifar-10-batches-py`, or binary ones) or
    /// `imagefolder:DIR`
    /// (`DIR/train/<class>/*.jpg` and `DIR/val/<class>/*.jpg`, as torchvision's ImageFolder; a
    /// split whose decoded images take more than 2 GiB, or CNNC_DATASET_MEMORY_MIB, is decoded batch
    /// by batch).
    #[arg(long, value_name = "FORMAT:PATH")]
    data: String,
    /// Which split to evaluate.
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    /// Evaluate only N images, spread evenly over the split.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Leave out images of an image folder that cannot be decoded (their count is reported)
    /// instead of stopping at the first.
    #[arg(long)]
    skip_bad: bool,
    /// Images per forward pass [default: up to 256, fewer for a model whose activations would
    /// not fit in 64 MiB per tensor].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    batch: Option<u64>,
    /// Print one JSON object: accuracy, loss, images, per_class (in class order) and confusion
    /// (rows: true class, columns: predicted class).
    #[arg(long)]
    json: bool,
    /// Run on the CPU reference executor instead of the GPU.
    #[arg(long)]
    cpu: bool,
    /// The GPU adapter to use: part of its name, or a backend; see `cnnc devices`.
    #[arg(long, value_name = "NAME")]
    adapter: Option<String>,
}

/// Where inference runs: the GPU (the model built once for a batch size) or the CPU reference.
pub enum Engine<'m> {
    Gpu(Box<Prepared>),
    Cpu(&'m Model, Weights),
}

impl<'m> Engine<'m> {
    /// `model` with `weights` on `gpu`, or on the CPU reference when `gpu` is `None`.
    ///
    /// # Errors
    /// What building the model on the GPU reports.
    pub fn new(
        model: &'m Model,
        weights: &Weights,
        gpu: Option<&Gpu>,
        batch: usize,
    ) -> Result<Engine<'m>, RuntimeError> {
        Ok(match gpu {
            Some(gpu) => Engine::Gpu(Box::new(Prepared::new(gpu, &model.plan, weights, batch)?)),
            None => Engine::Cpu(model, weights.clone()),
        })
    }

    fn run(&self, x: &Tensor) -> Result<Tensor, RuntimeError> {
        match self {
            Engine::Gpu(prepared) => prepared.run(x),
            Engine::Cpu(model, weights) => cpu::run(&model.graph, weights, x),
        }
    }
}

/// How a model did on a dataset split.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Mean cross-entropy of the logits.
    pub loss: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

impl Evaluation {
    pub fn images(&self) -> u64 {
        self.confusion.iter().flatten().sum()
    }

    pub fn correct(&self) -> u64 {
        (0..self.confusion.len()).map(|c| self.confusion[c][c]).sum()
    }

    /// Correct over all images (0 for no images).
    pub fn accuracy(&self) -> f64 {
        self.correct() as f64 / self.images().max(1) as f64
    }
}

/// Runs every image of `dataset` through `transform` and `engine` in batches of `batch`, and scores
/// the logits against the labels (`classes` outputs).
///
/// # Errors
/// What running the model reports.
pub fn evaluate(
    engine: &Engine,
    dataset: &Dataset,
    transform: &Transform,
    classes: usize,
    batch: usize,
) -> Result<Evaluation, RuntimeError> {
    let mut confusion = vec![vec![0u64; classes]; classes];
    let mut loss = 0.0;
    let indices: Vec<usize> = (0..dataset.len()).collect();
    // Each batch is made on a thread of its own while the one before it runs.
    let plan: Vec<(usize, &[usize])> = indices.chunks(batch.max(1)).map(|chunk| (0, chunk)).collect();
    prefetch(dataset, transform, 0, &plan, |batches| {
        for (made, (_, chunk)) in batches.zip(&plan) {
            let (x, labels) = made?;
            let logits = engine.run(&x)?;
            for ((row, &label), &index) in logits.data.chunks(classes).zip(&labels).zip(chunk.iter()) {
                if let Some(v) = row.iter().find(|v| !v.is_finite()) {
                    return Err(RuntimeError::NonFinite {
                        what: format!("the model's output for image {index}"),
                        value: *v,
                    });
                }
                let predicted = (0..classes).fold(0, |best, i| if row[i] > row[best] { i } else { best });
                confusion[label][predicted] += 1;
                // Cross-entropy through a log-sum-exp shifted by the largest logit.
                let top = f64::from(row[predicted]);
                let sum: f64 = row.iter().map(|v| (f64::from(*v) - top).exp()).sum();
                loss += top + sum.ln() - f64::from(row[label]);
            }
        }
        Ok(())
    })?;
    Ok(Evaluation { loss: loss / dataset.len().max(1) as f64, confusion })
}

/// How a model takes a dataset's images: its `preprocess` (resize, centre crop, per-channel mean
/// and std; 0 and 1 when it declares none), after the training augmentation `augment`.
///
/// # Errors
/// [`RuntimeError::NotAnImageModel`] for an input that is not `[C, H, W]`;
/// [`RuntimeError::Preprocess`] when mean or std has neither one value nor one per input channel.
pub fn transform(model: &Model, augment: Vec<Augment>) -> Result<Transform, RuntimeError> {
    let dims = model.graph.node(model.graph.input).shape.dims().to_vec();
    let [channels, h, w] = dims[..] else {
        return Err(RuntimeError::NotAnImageModel { input: dims });
    };
    let meta = &model.graph.meta;
    let (mean, std) = cnnc::runtime::image_input::normalisation(meta, channels)?;
    Ok(Transform { input: [channels, h, w], augment, resize: meta.resize, centre_crop: meta.crop.is_some(), mean, std })
}

/// The environment variable that sets how many MiB of decoded images a split may hold in memory
/// before an image folder is decoded batch by batch instead.
pub const DATASET_MEMORY_VAR: &str = "CNNC_DATASET_MEMORY_MIB";

/// [`ReadOptions::max_decoded_bytes`] from [`DATASET_MEMORY_VAR`], or the default (2 GiB).
fn dataset_memory(name: &str) -> Result<u64, RuntimeError> {
    let Ok(text) = std::env::var(DATASET_MEMORY_VAR) else { return Ok(ReadOptions::DEFAULT_MAX_DECODED_BYTES) };
    text.trim().parse::<u64>().ok().and_then(|mib| mib.checked_mul(1 << 20)).ok_or_else(|| RuntimeError::Dataset {
        path: name.split_once(':').map_or(name, |(_, path)| path).into(),
        message: format!(
            "{DATASET_MEMORY_VAR}={text} is not a whole number of MiB (0 decodes every batch from the files)"
        ),
    })
}

/// Reads split `split` of the dataset `name` (`FORMAT:PATH`) for `model`, keeping `limit` images
/// spread over it, and checks that `transform` brings every image to the model's input and that
/// its labels are among the model's `classes` (warning when it names another number of classes).
///
/// # Errors
/// What reading or checking the dataset finds wrong, naming the file.
pub fn read_dataset(
    name: &str,
    split: Split,
    limit: Option<u64>,
    skip_bad: bool,
    transform: &Transform,
    classes: usize,
) -> Result<Dataset, RuntimeError> {
    let max_decoded_bytes = dataset_memory(name)?;
    let options = ReadOptions { skip_bad, max_decoded_bytes, ..ReadOptions::new(transform.input[0]) };
    let mut dataset = data::open(name, split, options)?;
    if let Some(n) = limit {
        dataset.subset(n as usize);
    }
    dataset.check_fits(transform, classes)?;
    if let Some(note) = dataset.class_count_note(classes) {
        errln!("warning: {note}");
    }
    if let Some((path, message)) = dataset.skipped.first() {
        errln!(
            "skipped {} unreadable image(s) of the {} split (the first: {}: {message})",
            dataset.skipped.len(),
            split.name(),
            path.display()
        );
    }
    Ok(dataset)
}

/// Images per evaluation pass: `requested`, else up to 256, as many as keep every activation
/// tensor within 64 MiB (half of the smallest storage-binding limit wgpu guarantees).
pub fn eval_batch(graph: &Graph, requested: Option<u64>) -> usize {
    const ACTIVATION_BYTES: u64 = 64 << 20;
    if let Some(n) = requested {
        return n as usize;
    }
    let largest = graph.nodes().map(|(_, n)| n.shape.elements()).max().unwrap_or(1).max(1);
    (ACTIVATION_BYTES / (4 * largest)).clamp(1, 256) as usize
}

/// The class names: the spec's labels, else the dataset's, else the class numbers.
pub fn class_names(model: &Model, dataset: &Dataset, classes: usize) -> Vec<String> {
    model
        .graph
        .meta
        .labels
        .clone()
        .or_else(|| dataset.class_names.clone())
        .filter(|n| n.len() == classes)
        .unwrap_or_else(|| (0..classes).map(|c| c.to_string()).collect())
}

pub fn run(args: Args) -> ExitCode {
    super::with_model_set(&args.spec, &args.set, |model| execute(&args, model))
}

fn execute(args: &Args, model: &Model) -> Result<(), Box<dyn std::error::Error>> {
    let progress = Progress::start("reading the dataset");
    let graph = &model.graph;
    let classes = graph.node(graph.output).shape.elements() as usize;
    let transform = transform(model, Vec::new())?;
    let dataset = read_dataset(&args.data, args.split.into(), args.limit, args.skip_bad, &transform, classes)?;
    progress.stage("loading weights");
    let weights =
        weights::bind(&graph.weight_table(), super::read_weights(&args.weights, &graph.weight_table())?, true)?.weights;
    let gpu = if args.cpu { None } else { Some(gpu::open(args.adapter.as_deref())?) };
    progress.stage(format!("evaluating {} images", group(dataset.len() as u64)));
    let batch = eval_batch(graph, args.batch).min(dataset.len());
    let engine = Engine::new(model, &weights, gpu.as_ref(), batch)?;
    let result = evaluate(&engine, &dataset, &transform, classes, batch)?;
    drop(progress);
    let names = class_names(model, &dataset, classes);
    if args.json {
        outln!("{}", json(&result, &names));
    } else {
        out!("{}", report(&result, &names, &dataset.split));
    }
    Ok(())
}

/// The evaluation as one JSON object.
fn json(result: &Evaluation, names: &[String]) -> serde_json::Value {
    let per_class: Vec<serde_json::Value> = result
        .confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let images: u64 = row.iter().sum();
            serde_json::json!({
                "class": c,
                "name": names[c],
                "images": images,
                "correct": row[c],
                "accuracy": if images == 0 { serde_json::Value::Null } else { (row[c] as f64 / images as f64).into() },
            })
        })
        .collect();
    serde_json::json!({
        "accuracy": result.accuracy(),
        "loss": result.loss,
        "images": result.images(),
        "correct": result.correct(),
        "per_class": per_class,
        "confusion": result.confusion,
    })
}

/// The evaluation as text: totals, a per-class table and the confusion matrix.
pub fn report(result: &Evaluation, names: &[String], split: &str) -> String {
    let mut out = format!(
        "{split} split: accuracy {:.2} % ({} of {}), loss {:.4}\n\n",
        100.0 * result.accuracy(),
        group(result.correct()),
        group(result.images()),
        result.loss
    );
    let width = names.iter().map(String::len).max().unwrap_or(5).max(5);
    out += &format!("{:>5}  {:<width$}  {:>8}  {:>8}\n", "class", "name", "images", "accuracy");
    for (c, row) in result.confusion.iter().enumerate() {
        let images: u64 = row.iter().sum();
        let accuracy =
            if images == 0 { "-".to_string() } else { format!("{:.1} %", 100.0 * row[c] as f64 / images as f64) };
        out += &format!("{c:>5}  {:<width$}  {:>8}  {accuracy:>8}\n", names[c], group(images));
    }
    out += "\nconfusion matrix (rows: true class, columns: predicted class):\n";
    let cell = result.confusion.iter().flatten().map(|v| v.to_string().len()).max().unwrap_or(1).max(3);
    out += &format!("{:>5} ", "");
    for c in 0..result.confusion.len() {
        out += &format!(" {c:>cell$}");
    }
    out += "\n";
    for (c, row) in result.confusion.iter().enumerate() {
        out += &format!("{c:>5} ");
        for v in row {
            out += &format!(" {v:>cell$}");
        }
        out += "\n";
    }
    out
}
