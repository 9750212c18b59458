//! Running a validated layer plan on the GPU: [`build`] makes every layer's pipelines, bind groups
//! and weights once, and a forward records all layers into one command buffer.

use cnnc_ir::plan::ValidPlan;

use super::build::{build, PlanOptions};
use super::program::Program;
use super::record::{can_time_dispatches, time_dispatches, time_submissions, GpuLayer, Recorder};
use super::Gpu;
use crate::weights::Weights;
use crate::{RuntimeError, Tensor};

/// A plan ready to run on a device for a fixed batch chunk.
pub struct Prepared {
    program: Program,
    layers: Vec<GpuLayer>,
    /// Batch items per forward pass.
    pub chunk: usize,
    /// Kernels dispatched per forward.
    pub dispatches: usize,
    /// Bytes of device memory this model holds (weights, activations, staging).
    pub device_bytes: u64,
    /// Each step's layer path and kernel family (`mirror` for texture copies), for per-layer timing.
    pub step_labels: Vec<(String, &'static str)>,
}

/// How [`Prepared::time_steps`] measured.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StepTiming {
    /// GPU timestamps around each dispatch, all in one submission.
    Timestamps,
    /// Wall-clock time of one submission per step.
    Submissions,
}

impl Prepared {
    /// Builds the plan for `batch` items (run in chunks if a whole batch would not fit a binding).
    pub fn new(gpu: &Gpu, plan: &ValidPlan, weights: &Weights, batch: usize) -> Result<Prepared, RuntimeError> {
        Prepared::with_options(gpu, plan, weights, batch, PlanOptions::default())
    }

    /// As [`Prepared::new`], with planning options (to exercise splitting and every kernel variant).
    pub fn with_options(
        gpu: &Gpu,
        plan: &ValidPlan,
        weights: &Weights,
        batch: usize,
        options: PlanOptions,
    ) -> Result<Prepared, RuntimeError> {
        let super::Built { layers, program } = build(gpu, plan, weights, batch, options)?;
        let step_labels =
            layers.iter().flat_map(|l| l.step_families().map(move |family| (l.path.clone(), family))).collect();
        Ok(Prepared {
            chunk: program.chunk,
            dispatches: layers.iter().map(GpuLayer::dispatches).sum(),
            device_bytes: program.device_bytes,
            step_labels,
            program,
            layers,
        })
    }

    /// Fills every activation buffer with NaN, so an element a kernel fails to write shows up.
    pub fn poison(&self) {
        self.program.poison();
    }

    /// Runs a batch `[N, ...]` and returns the outputs `[N, ...]`.
    pub fn run(&self, input: &Tensor) -> Result<Tensor, RuntimeError> {
        self.program.run(input, |r| self.record(r))
    }

    fn record(&self, recorder: &mut Recorder) {
        for layer in &self.layers {
            recorder.layer(layer);
        }
    }

    /// Times each step: with timestamp queries where the device has them (every dispatch in its own
    /// compute pass, all in one submission, so the times are the GPU's own), else one submission per
    /// step (each time then includes a submission's overhead). Seconds per step in the order of
    /// [`Prepared::step_labels`], `None` for steps a timestamp cannot bracket (mirror copies). The
    /// buffers must hold a forward's inputs.
    pub fn time_steps(&self) -> Result<(Vec<Option<f64>>, StepTiming), RuntimeError> {
        let gpu = &self.program.gpu;
        if can_time_dispatches(gpu, self.dispatches) {
            let mut seconds = time_dispatches(gpu, self.dispatches, |r| self.record(r))?.into_iter();
            let times = self
                .step_labels
                .iter()
                .map(|(_, family)| match *family {
                    "mirror" => None,
                    _ => seconds.next(),
                })
                .collect();
            return Ok((times, StepTiming::Timestamps));
        }
        let times = time_submissions(gpu, self.layers.iter().flat_map(|l| &l.steps))?;
        Ok((times.into_iter().map(Some).collect(), StepTiming::Submissions))
    }
}
