//! `cnnc eval`: a model's accuracy and loss on a dataset split, per class and as a confusion matrix.
//! Training evaluates each epoch with the same code ([`evaluate`]).

use std::path::PathBuf;
use std::process::ExitCode;

use cnnc::compiler::Model;
use cnnc::runtime::data::{self, Dataset, Split};
use cnnc::runtime::gpu::{self, Gpu, Prepared};
use cnnc::runtime::weights::{self, Weights};
use cnnc::runtime::{cpu, RuntimeError, Tensor};

use super::progress::Progress;
use super::{group, SpecPath};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitArg {
    Train,
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
    /// Checkpoint to evaluate (.safetensors or .pth), matched by name against the spec's weight table.
    #[arg(long, value_name = "FILE")]
    weights: PathBuf,
    /// The dataset, as FORMAT:PATH: `idx:DIR` (MNIST and Fashion-MNIST files, gzipped or not) or
    /// `cifar10:DIR` (CIFAR-10's binary batches, `cifar-10-batches-bin`).
    #[arg(long, value_name = "FORMAT:PATH")]
    data: String,
    /// Which split to evaluate.
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    /// Evaluate only the first N images of the split.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
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

/// Runs every image of `dataset` through `engine` in batches of `batch`, normalised by `mean` and
/// `std`, and scores the logits against the labels (`classes` outputs).
///
/// # Errors
/// What running the model reports.
pub fn evaluate(
    engine: &Engine,
    dataset: &Dataset,
    mean: &[f64],
    std: &[f64],
    classes: usize,
    batch: usize,
) -> Result<Evaluation, RuntimeError> {
    let mut confusion = vec![vec![0u64; classes]; classes];
    let mut loss = 0.0;
    let indices: Vec<usize> = (0..dataset.len()).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let (x, labels) = dataset.batch(chunk, mean, std);
        let logits = engine.run(&x)?;
        for ((row, &label), &index) in logits.data.chunks(classes).zip(&labels).zip(chunk) {
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
    Ok(Evaluation { loss: loss / dataset.len().max(1) as f64, confusion })
}

/// The per-channel mean and std a model's `preprocess` declares (0 and 1 when it declares none).
///
/// # Errors
/// [`RuntimeError::Preprocess`] when they do not have one value per input channel.
pub fn normalisation(model: &Model) -> Result<(Vec<f64>, Vec<f64>), RuntimeError> {
    let channels = model.graph.node(model.graph.input).shape.dims()[0];
    let meta = &model.graph.meta;
    let mean = meta.mean.clone().unwrap_or_else(|| vec![0.0; channels]);
    let std = meta.std.clone().unwrap_or_else(|| vec![1.0; channels]);
    if mean.len() != channels || std.len() != channels {
        return Err(RuntimeError::Preprocess { channels, means: mean.len(), stds: std.len() });
    }
    Ok((mean, std))
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
    super::with_model(&args.spec, |model| execute(&args, model))
}

fn execute(args: &Args, model: &Model) -> Result<(), Box<dyn std::error::Error>> {
    let progress = Progress::start("reading the dataset");
    let mut dataset = data::open(&args.data, args.split.into())?;
    if let Some(n) = args.limit {
        dataset.truncate(n as usize);
    }
    let graph = &model.graph;
    let classes = graph.node(graph.output).shape.elements() as usize;
    dataset.check_fits(graph.node(graph.input).shape.dims(), classes, &[])?;
    let (mean, std) = normalisation(model)?;
    progress.stage("loading weights");
    let weights = weights::bind(&graph.weight_table(), weights::read(&args.weights)?, true)?.weights;
    let gpu = if args.cpu { None } else { Some(gpu::open(args.adapter.as_deref())?) };
    progress.stage(format!("evaluating {} images", group(dataset.len() as u64)));
    let batch = (args.batch as usize).min(dataset.len());
    let engine = Engine::new(model, &weights, gpu.as_ref(), batch)?;
    let result = evaluate(&engine, &dataset, &mean, &std, classes, batch)?;
    drop(progress);
    let names = class_names(model, &dataset, classes);
    if args.json {
        println!("{}", json(&result, &names));
    } else {
        print!("{}", report(&result, &names, args.split.into()));
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
pub fn report(result: &Evaluation, names: &[String], split: Split) -> String {
    let mut out = format!(
        "{} split: accuracy {:.2} % ({} of {}), loss {:.4}\n\n",
        split.name(),
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
