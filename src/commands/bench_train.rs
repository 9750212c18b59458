//! `cnnc bench --train`: training steps per second on the GPU.

use std::process::ExitCode;
use std::time::Instant;

use cnnc::compiler::graph::Graph;
use cnnc::runtime::gpu::{Gpu, GpuTrainer};
use cnnc::runtime::train::{Optimizer, OptimizerState, Schedule, StepOptions};
use cnnc::runtime::{synthetic, RuntimeError};
use serde_json::json;

use super::progress::Progress;

/// What one training benchmark measured.
struct Measured {
    first_step_s: f64,
    /// Seconds per step, sorted.
    steps: Vec<f64>,
}

/// Times whole training steps (forward, loss, backward, Adam), each waited for by reading its loss
/// back: the first one (pipelines and buffers made, weights uploaded) apart, then `iters` after
/// `warmup` untimed ones.
fn measure(gpu: &Gpu, graph: &Graph, batch: usize, warmup: u64, iters: u64) -> Result<Measured, RuntimeError> {
    let mut shape = vec![batch];
    shape.extend(graph.node(graph.input).shape.dims());
    let input = synthetic::input(0, shape);
    let classes = graph.node(graph.output).shape.elements() as usize;
    let labels: Vec<usize> = (0..batch).map(|i| i % classes).collect();
    let adam = OptimizerState::new(Optimizer::adam(), 1e-3, Schedule::Constant);
    let progress = Progress::start("preparing the training step, first step");
    let start = Instant::now();
    let options = StepOptions::default();
    let mut trainer = GpuTrainer::new(gpu, graph, &synthetic::weights(graph, 0), |_| true, adam, &options, batch)?;
    trainer.step(&input, &labels)?;
    trainer.losses()?;
    let first_step_s = start.elapsed().as_secs_f64();
    progress.stage("warming up");
    for _ in 0..warmup {
        trainer.step(&input, &labels)?;
    }
    trainer.losses()?;
    let mut steps = Vec::with_capacity(iters as usize);
    for i in 0..iters {
        progress.stage(format!("timing training step {} of {iters}", i + 1));
        let t = Instant::now();
        trainer.step(&input, &labels)?;
        trainer.losses()?;
        steps.push(t.elapsed().as_secs_f64());
    }
    steps.sort_by(f64::total_cmp);
    Ok(Measured { first_step_s, steps })
}

/// Runs the training benchmark and prints it (as JSON with `json`).
pub fn run(gpu: &Gpu, graph: &Graph, batch: usize, warmup: u64, iters: u64, json: bool) -> ExitCode {
    let m = match measure(gpu, graph, batch, warmup, iters) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let median = m.steps[m.steps.len() / 2];
    let adapter = format!("{} ({:?}, {})", gpu.info.name, gpu.info.backend, gpu.info.driver_info);
    let images_per_s = batch as f64 / median;
    if json {
        let out = json!({
            "model": graph.meta.name,
            "mode": "train",
            "optimizer": "adam",
            "batch": batch,
            "iters": iters,
            "images_per_s": images_per_s,
            "step_ms_median": median * 1e3,
            "step_ms_min": m.steps[0] * 1e3,
            "step_ms_max": m.steps[m.steps.len() - 1] * 1e3,
            "first_step_s": m.first_step_s,
            "adapter": adapter,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialise"));
    } else {
        println!("{} training (Adam) on {adapter}, batch {batch}", graph.meta.name);
        println!("  throughput:        {images_per_s:.2} images/s");
        println!(
            "  step (median):     {:.2} ms  (min {:.2}, max {:.2}, {} steps)",
            median * 1e3,
            m.steps[0] * 1e3,
            m.steps[m.steps.len() - 1] * 1e3,
            m.steps.len()
        );
        println!("  first step:        {:.2} s  (pipelines, weights, one step)", m.first_step_s);
    }
    ExitCode::SUCCESS
}
