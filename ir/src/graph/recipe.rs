//! A spec's `train:` section, evaluated: the recipe `cnnc train` follows where its command line
//! says nothing (Caffe kept it in `solver.prototxt`, Darknet in its `[net]` section).

use crate::span::Span;

/// The training recipe a spec declares; each value is optional, and `spans` says where each given
/// one is written, by key, for messages about it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainRecipe {
    /// `sgd`, `adam` or `adamw` (`torch.optim.SGD`, `Adam`, `AdamW`).
    pub optimizer: Option<String>,
    /// Base learning rate.
    pub lr: Option<f64>,
    /// SGD's momentum, in [0, 1).
    pub momentum: Option<f64>,
    /// Weight decay, 0 or more.
    pub weight_decay: Option<f64>,
    /// Images per step.
    pub batch: Option<usize>,
    /// Passes over the training split.
    pub epochs: Option<u64>,
    /// A learning-rate schedule in `cnnc train --schedule`'s syntax (`step(7, gamma=0.1)`).
    pub schedule: Option<String>,
    /// Training augmentation in `cnnc train --augment`'s syntax (`random_crop(32, pad=4), hflip`).
    pub augment: Option<String>,
    /// Layer paths whose parameters stay as they are.
    pub freeze: Vec<String>,
    /// Seed of the initial weights, sample order, augmentation and dropout.
    pub seed: Option<u64>,
    /// Cross-entropy's label smoothing `ε`, in [0, 1).
    pub label_smoothing: Option<f64>,
    /// Where each given value is written, by key.
    pub spans: Vec<(String, Span)>,
}

impl TrainRecipe {
    /// Where the value of `key` is written, when the spec gives it.
    pub fn span(&self, key: &str) -> Option<Span> {
        self.spans.iter().find(|(k, _)| k == key).map(|(_, s)| *s)
    }
}
