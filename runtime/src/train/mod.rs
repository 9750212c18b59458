//! Training: the loss, the counter-based random numbers of dropout, and the CPU reference training
//! step (f64 throughout) over the backward work that `cnnc_ir::autodiff` plans.

mod loss;
pub mod reference;
pub mod rng;

pub use loss::CrossEntropy;
pub use reference::{step, StepOptions, StepResult};
