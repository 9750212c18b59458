//! GPU execution through wgpu: the device, the WGSL kernels, and the executor.

pub mod device;
pub mod executor;
pub mod kernels;

pub use device::{adapters, open, AdapterSummary, Gpu};
pub use executor::{PlanOptions, Prepared, StepTiming};
