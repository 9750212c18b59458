//! The cnnc runtime: executes a checked graph.
//!
//! - [`cpu`]: a straightforward CPU executor (f32 data, f64 accumulation), the oracle the GPU
//!   kernels are measured against and `cnnc run --cpu`;
//! - [`weights`]: checkpoints matched by name against the graph's weight table;
//! - [`synthetic`]: deterministic pseudo-random weights and inputs, reproducible from Python;
//! - [`npy`]: `.npy` input and output; [`tensor`]: the host tensor type.

pub mod conformance;
pub mod cpu;
pub mod error;
pub mod fold;
pub mod gpu;
pub mod image_input;
pub mod npy;
pub mod synthetic;
pub mod tensor;
pub mod weights;

pub use error::RuntimeError;
pub use tensor::Tensor;
