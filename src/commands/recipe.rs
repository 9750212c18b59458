//! The training recipe `cnnc train` follows: each value from its command line, else from the
//! spec's `train:` section, else the default, with the spec's values located in messages.

use cnnc::compiler::graph::TrainRecipe;
use cnnc::compiler::SourceMap;

/// `--optimizer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerArg {
    Sgd,
    Adam,
    Adamw,
}

/// A count of at least 1 (`--batch`), as clap reads a value: a usage error otherwise.
fn positive_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}` is not a whole number of at least 1")),
    }
}

/// A positive finite number (`--lr`), as clap reads a value: a usage error otherwise.
fn positive_number(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("`{text}` is not a positive finite number")),
    }
}

/// The command line's recipe options (`cnnc train`'s), each `None` (or empty) where it says nothing.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Given {
    /// Passes over the training split [default: the spec's `train: epochs`, else 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: Option<u64>,
    /// Images per training step [default: the spec's `train: batch`, else 8]. Each epoch's last
    /// images that do not fill a batch are left out (PyTorch's `drop_last=True`).
    #[arg(long, value_name = "B", value_parser = positive_count)]
    pub batch: Option<usize>,
    /// The optimizer, with PyTorch's semantics (`torch.optim.SGD`, `Adam`, `AdamW`) [default: the
    /// spec's `train: optimizer`, else adam].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerArg>,
    /// Learning rate [default: the spec's `train: lr`, else 0.001].
    #[arg(long, value_name = "LR", value_parser = positive_number)]
    pub lr: Option<f64>,
    /// Learning-rate schedule, its periods in epochs: `step(E, gamma=G)` (StepLR), `multistep(E1,
    /// E2, gamma=G)` (MultiStepLR), `cosine(eta_min=M)` (CosineAnnealingLR over the run, every
    /// step) or `onecycle(max_lr=L)` (OneCycleLR over the run) [default: constant].
    #[arg(long, value_name = "SCHEDULE")]
    pub schedule: Option<String>,
    /// SGD momentum [default: the spec's `train: momentum`, else 0].
    #[arg(long, value_name = "M")]
    pub momentum: Option<f64>,
    /// Weight decay: L2 for SGD and Adam (default 0), decoupled for AdamW (default 0.01, PyTorch's).
    #[arg(long, value_name = "W")]
    pub weight_decay: Option<f64>,
    /// Augment the training images, in order, as torchvision's transforms do:
    /// `random_crop(SIZE, pad=P)` (RandomCrop with zero padding), `random_resized_crop(SIZE)`
    /// (RandomResizedCrop) and `hflip` (RandomHorizontalFlip), for example `--augment
    /// "random_crop(32, pad=4), hflip"`; `none` for no augmentation [default: the spec's `train:
    /// augment`, else none]. Without a crop here, training images are resized and centre-cropped
    /// by the spec's `preprocess` as test images are.
    #[arg(long, value_name = "STEPS")]
    pub augment: Option<String>,
    /// Seed of the initial weights, the sample order, the augmentation and the dropout masks
    /// [default: the spec's `train: seed`, else 0].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Cross-entropy's label smoothing, in [0, 1) (`nn.CrossEntropyLoss(label_smoothing=…)`)
    /// [default: the spec's `train: label_smoothing`, else 0].
    #[arg(long, value_name = "EPS")]
    pub label_smoothing: Option<f64>,
    /// Keep the parameters under these layer paths as they are (`--freeze features` trains only
    /// the rest, as `requires_grad = False` does); nothing below the lowest trained layer gets a
    /// gradient. Batch norms there normalise with their running statistics and keep them
    /// (torchvision's FrozenBatchNorm2d).
    #[arg(long, value_name = "PREFIX", num_args = 1..)]
    pub freeze: Vec<String>,
}

/// The recipe in force.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    pub epochs: u64,
    pub batch: usize,
    pub optimizer: OptimizerArg,
    pub lr: f64,
    pub momentum: f64,
    /// `None`: the optimizer's default (0, or AdamW's 0.01).
    pub weight_decay: Option<f64>,
    pub schedule: Option<String>,
    pub augment: Option<String>,
    pub freeze: Vec<String>,
    pub seed: u64,
    pub label_smoothing: f64,
    /// The keys taken from the spec's `train:` section, in its order.
    pub from_spec: Vec<String>,
}

impl Recipe {
    /// The command line's values over the spec's over the defaults (Adam, lr 1e-3, batch 8, one
    /// epoch, seed 0).
    /// A spec's `momentum` and `weight_decay` belong to its optimizer: an `--optimizer` of
    /// another kind does not inherit them.
    pub fn resolve(given: &Given, spec: Option<&TrainRecipe>) -> Recipe {
        let empty = TrainRecipe::default();
        let spec = spec.unwrap_or(&empty);
        let same_optimizer = match (given.optimizer, spec.optimizer.as_deref()) {
            (Some(OptimizerArg::Sgd), Some(s)) => s == "sgd",
            (Some(OptimizerArg::Adam), Some(s)) => s == "adam",
            (Some(OptimizerArg::Adamw), Some(s)) => s == "adamw",
            (Some(_), None) | (None, _) => true,
        };
        let owned = TrainRecipe { momentum: None, weight_decay: None, ..spec.clone() };
        let spec = if same_optimizer { spec } else { &owned };
        let mut from_spec = Vec::new();
        let mut pick = |key: &str, cli_given: bool, spec_given: bool| {
            if !cli_given && spec_given {
                from_spec.push(key.to_string());
            }
        };
        pick("optimizer", given.optimizer.is_some(), spec.optimizer.is_some());
        pick("lr", given.lr.is_some(), spec.lr.is_some());
        pick("momentum", given.momentum.is_some(), spec.momentum.is_some());
        pick("weight_decay", given.weight_decay.is_some(), spec.weight_decay.is_some());
        pick("batch", given.batch.is_some(), spec.batch.is_some());
        pick("epochs", given.epochs.is_some(), spec.epochs.is_some());
        pick("schedule", given.schedule.is_some(), spec.schedule.is_some());
        pick("augment", given.augment.is_some(), spec.augment.is_some());
        pick("freeze", !given.freeze.is_empty(), !spec.freeze.is_empty());
        pick("seed", given.seed.is_some(), spec.seed.is_some());
        pick("label_smoothing", given.label_smoothing.is_some(), spec.label_smoothing.is_some());
        let optimizer = given.optimizer.or(match spec.optimizer.as_deref() {
            Some("sgd") => Some(OptimizerArg::Sgd),
            Some("adamw") => Some(OptimizerArg::Adamw),
            Some(_) => Some(OptimizerArg::Adam),
            None => None,
        });
        Recipe {
            epochs: given.epochs.or(spec.epochs).unwrap_or(1),
            batch: given.batch.or(spec.batch).unwrap_or(8),
            optimizer: optimizer.unwrap_or(OptimizerArg::Adam),
            lr: given.lr.or(spec.lr).unwrap_or(1e-3),
            momentum: given.momentum.or(spec.momentum).unwrap_or(0.0),
            weight_decay: given.weight_decay.or(spec.weight_decay),
            schedule: given.schedule.clone().or_else(|| spec.schedule.clone()),
            augment: given.augment.clone().or_else(|| spec.augment.clone()),
            freeze: if given.freeze.is_empty() { spec.freeze.clone() } else { given.freeze.clone() },
            seed: given.seed.or(spec.seed).unwrap_or(0),
            label_smoothing: given.label_smoothing.or(spec.label_smoothing).unwrap_or(0.0),
            from_spec,
        }
    }

    /// How a message names the option `key`: `--key`, or the spec's `train: key` with its place
    /// when the value came from there.
    pub fn origin(&self, key: &str, spec: Option<&TrainRecipe>, sources: &SourceMap) -> String {
        let span = spec.and_then(|s| s.span(key)).filter(|_| self.from_spec.iter().any(|k| k == key));
        match span {
            Some(span) => format!("`train: {key}` ({})", sources.location(span)),
            None => format!("--{}", key.replace('_', "-")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_wins_over_the_spec_which_wins_over_the_defaults() {
        let spec = TrainRecipe {
            optimizer: Some("sgd".into()),
            lr: Some(0.01),
            epochs: Some(5),
            freeze: vec!["features".into()],
            ..TrainRecipe::default()
        };
        let given = Given { lr: Some(0.1), ..Given::default() };
        let r = Recipe::resolve(&given, Some(&spec));
        assert_eq!((r.optimizer, r.lr, r.epochs, r.batch, r.seed), (OptimizerArg::Sgd, 0.1, 5, 8, 0));
        assert_eq!(r.freeze, ["features"]);
        assert_eq!(r.from_spec, ["optimizer", "epochs", "freeze"]);
        // The spec's momentum is SGD's: Adam from the command line does not take it.
        let sgd = TrainRecipe { optimizer: Some("sgd".into()), momentum: Some(0.9), ..TrainRecipe::default() };
        let adam = Recipe::resolve(&Given { optimizer: Some(OptimizerArg::Adam), ..Given::default() }, Some(&sgd));
        assert_eq!((adam.optimizer, adam.momentum), (OptimizerArg::Adam, 0.0));
        let plain = Recipe::resolve(&Given::default(), None);
        assert_eq!((plain.optimizer, plain.lr, plain.epochs, plain.batch), (OptimizerArg::Adam, 1e-3, 1, 8));
        assert!(plain.from_spec.is_empty());
    }
}
