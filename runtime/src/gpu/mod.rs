//! GPU execution through wgpu: the device, the WGSL kernels, building a validated layer plan's
//! layers ([`build`]), recording them ([`Recorder`]) and running them ([`Program`]); [`Prepared`]
//! does all of it for a plan.

mod build;
pub mod device;
pub mod executor;
pub mod kernels;
mod program;
mod record;
pub mod train;
mod upload;

pub use build::{build, Built, PlanOptions, UnrolledPolicy};
pub use device::{adapters, cpu_driver_threads, open, AdapterSummary, Gpu, CPU_DRIVER_THREADS};
pub use executor::{Prepared, StepTiming};
pub use program::Program;
pub use record::{GpuLayer, Recorder};
pub use train::{check_binding_limits, GpuTrainer, HeldImages, StepProfile};
