//! Training: the loss, optimizers and learning-rate schedules, the counter-based random numbers of
//! dropout, and the CPU reference training step and trainer (f64 throughout) over the backward work
//! that `cnnc_ir::autodiff` plans.

mod freeze;
mod loss;
mod optim;
pub mod reference;
pub mod rng;
mod trainer;

pub use freeze::freeze_batch_norms;
pub use loss::CrossEntropy;
pub use optim::{Optimizer, OptimizerState, Schedule};
pub use reference::{branch_nodes, step, step_on_branches, BranchReport, StepOptions, StepResult};
pub use trainer::{CpuTrainer, Evaluation};
