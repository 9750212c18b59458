//! Warm-up dispatches on a thread of their own.

use crate::gpu::Gpu;
use crate::RuntimeError;

/// A thread that submits one workgroup of each new pipeline's dispatch while the model is still
/// being built. CPU drivers (lavapipe) compile a pipeline's machine code at its first dispatch, during
/// the submission: doing that on this thread overlaps it with building the rest of the model (folding
/// and uploading weights, creating the next pipelines) instead of stalling the first forward. Each
/// warm-up is submitted after the uploads recorded before it, so it runs on its layer's real
/// constants. A workgroup writes only where the layer's full dispatch writes again before anything
/// reads it, and [`WarmUp::finish`] returns only when every warm-up is submitted, so all of them run
/// before any forward pass.
pub(super) struct WarmUp {
    sender: std::sync::mpsc::Sender<WarmUpJob>,
    thread: std::thread::JoinHandle<()>,
}

/// Uploads to submit, then the dispatch to warm up.
pub(super) struct WarmUpJob {
    pub uploads: wgpu::CommandBuffer,
    pub pipeline: wgpu::ComputePipeline,
    pub bind_group: wgpu::BindGroup,
}

impl WarmUp {
    pub fn start(gpu: &Gpu) -> WarmUp {
        let (sender, receiver) = std::sync::mpsc::channel::<WarmUpJob>();
        let gpu = gpu.clone();
        let thread = std::thread::spawn(move || {
            for job in receiver {
                let mut encoder =
                    gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("warm-up") });
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                    pass.set_pipeline(&job.pipeline);
                    pass.set_bind_group(0, &job.bind_group, &[]);
                    pass.dispatch_workgroups(1, 1, 1);
                }
                gpu.queue.submit([job.uploads, encoder.finish()]);
            }
        });
        WarmUp { sender, thread }
    }

    pub fn send(&self, job: WarmUpJob) {
        // A send fails only if the thread has ended, which it does only when the sender is dropped.
        let _ = self.sender.send(job);
    }

    /// Waits until every warm-up is submitted.
    pub fn finish(self) -> Result<(), RuntimeError> {
        drop(self.sender);
        let panicked =
            || RuntimeError::Device { during: "compiling pipelines", message: "the warm-up thread panicked".into() };
        self.thread.join().map_err(|_| panicked())
    }
}
