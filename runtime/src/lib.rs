//! The cnnc runtime: executes a checked graph.
//!
//! - [`cpu`]: a straightforward CPU executor (f32 data, f64 accumulation), the oracle the GPU
//!   kernels are measured against and `cnnc run --cpu`;
//! - [`weights`]: checkpoints matched by name against the graph's weight table;
//! - [`synthetic`]: deterministic pseudo-random weights and inputs, reproducible from Python;
//! - [`gpu`]: the wgpu executor and the layer-level API generated models build on ([`plan`]
//!   re-exports the layer descriptions they are built from);
//! - [`npy`]: `.npy` input and output; [`tensor`]: the host tensor type.

pub mod classify;
pub mod cpu;
pub mod error;
pub mod fold;
pub mod gpu;
pub mod image_input;
pub mod npy;
pub mod plan;
pub mod synthetic;
pub mod tensor;
pub mod weights;

pub use error::RuntimeError;
pub use tensor::Tensor;
