//! A model being trained on the CPU reference executor: parameters in f64, the planned backward work,
//! an optimizer with its schedule, and the batch-norm running statistics, stepped batch by batch.

use cnnc_ir::autodiff::{differentiate, Backward};
use cnnc_ir::graph::{Graph, Param};

use super::{step, OptimizerState, StepOptions};
use crate::weights::Weights;
use crate::{cpu, RuntimeError, Tensor};

/// The loss and accuracy of a model on a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy over the batch.
    pub loss: f64,
    /// Items whose highest-scoring class is their label.
    pub correct: usize,
    pub items: usize,
}

/// Training on the CPU reference executor (f64 throughout): the oracle GPU training is compared with,
/// and a trainer for small models where no GPU is at hand.
pub struct CpuTrainer<'g> {
    graph: &'g Graph,
    backward: Backward,
    params: Weights<f64>,
    optimizer: OptimizerState,
    options: StepOptions,
    /// Items the last step classified right.
    last_correct: usize,
}

/// How many rows of `logits` `[N, K]` have their largest value (the first one on ties, as
/// PyTorch's `argmax`) at the item's label.
fn correct(logits: &Tensor<f64>, labels: &[usize]) -> usize {
    let k = logits.item_len();
    labels
        .iter()
        .enumerate()
        .filter(|(b, y)| {
            let row = &logits.data[b * k..][..k];
            let best = row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best });
            best == **y
        })
        .count()
}

impl<'g> CpuTrainer<'g> {
    /// A trainer for `graph` (the checked graph, not one lowered for inference) starting from
    /// `weights`, training the parameters `trainable` selects with `optimizer` on the loss in
    /// `options` (whose `seed` keys the dropout masks; `step` counts from there).
    ///
    /// # Errors
    /// [`RuntimeError::Autodiff`] when the graph cannot be trained as asked, and
    /// [`RuntimeError::MissingWeight`] when `weights` lack a tensor the model reads.
    pub fn new(
        graph: &'g Graph,
        weights: &Weights,
        trainable: impl Fn(&Param) -> bool,
        optimizer: OptimizerState,
        options: StepOptions,
    ) -> Result<CpuTrainer<'g>, RuntimeError> {
        let backward = differentiate(graph, trainable)?;
        if let Some(p) = graph.training_nodes().flat_map(|(_, n)| &n.params).find(|p| weights.get(&p.name).is_none()) {
            return Err(RuntimeError::MissingWeight { name: p.name.clone() });
        }
        Ok(CpuTrainer { graph, backward, params: weights.convert(), optimizer, options, last_correct: 0 })
    }

    /// One training step on `input` `[N, ...item]` with one class label per item: forward, loss,
    /// backward, optimizer step, running statistics updated. Returns the step's mean loss (before
    /// the update).
    ///
    /// # Errors
    /// A wrong input shape, labels that do not fit, or a batch-norm over one value per channel.
    pub fn step(&mut self, input: &Tensor, labels: &[usize]) -> Result<f64, RuntimeError> {
        let result = step(self.graph, &self.backward, &self.params, &input.convert(), labels, &self.options)?;
        self.optimizer.step(&mut self.params, &result.gradients)?;
        for name in result.running.names() {
            self.params.insert(name.to_string(), result.running.get(name).expect("listed").clone());
        }
        self.options.step += 1;
        self.last_correct = correct(&result.logits, labels);
        Ok(result.loss)
    }

    /// How many items of the last [`CpuTrainer::step`]'s batch its training-mode forward classified
    /// right (the largest logit is the label's; the first one on ties, as `argmax`).
    pub fn last_correct(&self) -> usize {
        self.last_correct
    }

    /// The loss and accuracy on a batch in inference mode (running statistics, no dropout).
    ///
    /// # Errors
    /// A wrong input shape, or labels that do not fit.
    pub fn evaluate(&self, input: &Tensor, labels: &[usize]) -> Result<Evaluation, RuntimeError> {
        let logits: Tensor<f64> = cpu::run(self.graph, &self.weights(), input)?.convert();
        let (loss, _) = self.options.loss.loss_and_grad(&logits, labels)?;
        Ok(Evaluation { loss, correct: correct(&logits, labels), items: labels.len() })
    }

    /// The current weights (parameters and running statistics), as f32 under their names.
    pub fn weights(&self) -> Weights {
        self.params.convert()
    }

    /// The current parameters in f64.
    pub fn params(&self) -> &Weights<f64> {
        &self.params
    }

    /// The planned backward work (which parameters train).
    pub fn backward(&self) -> &Backward {
        &self.backward
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> u64 {
        self.optimizer.steps
    }

    /// The optimizer, with its schedule and the steps taken.
    pub fn optimizer(&self) -> &OptimizerState {
        &self.optimizer
    }

    /// The optimizer's state tensors (see [`OptimizerState::state_tensors`]).
    pub fn optimizer_state(&self) -> Weights<f64> {
        self.optimizer.state_tensors(&self.params)
    }

    /// Continues a run from its saved parameters, optimizer state and steps taken, so that the
    /// next step is the one the run would have taken (the dropout masks included).
    ///
    /// # Errors
    /// [`RuntimeError::MissingWeight`] or [`RuntimeError::WeightShape`] when `params` lack a tensor
    /// of the model or hold one of another shape; what [`OptimizerState::restore`] refuses.
    pub fn resume(&mut self, params: Weights<f64>, state: &Weights<f64>, steps: u64) -> Result<(), RuntimeError> {
        for name in self.params.names() {
            let want = &self.params.get(name).expect("listed").shape;
            let t = params.get(name).ok_or_else(|| RuntimeError::MissingWeight { name: name.to_string() })?;
            if &t.shape != want {
                return Err(RuntimeError::WeightShape {
                    name: name.to_string(),
                    expected: want.clone(),
                    found: t.shape.clone(),
                });
            }
        }
        // The dropout masks are keyed by the step count since the trainer's first step.
        let taken = self.optimizer.steps;
        self.optimizer.restore(state, steps)?;
        self.options.step = self.options.step - taken + steps;
        self.params = params;
        Ok(())
    }
}
