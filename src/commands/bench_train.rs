//! `cnnc bench --train`: training steps per second on the GPU.

use super::stdout::errln;
use super::stdout::outln;
use std::process::ExitCode;
use std::time::Instant;

use cnnc::compiler::graph::Graph;
use cnnc::runtime::gpu::{cpu_driver_threads, Gpu, GpuTrainer, StepProfile};
use cnnc::runtime::train::{Optimizer, OptimizerState, Schedule, StepOptions};
use cnnc::runtime::{synthetic, RuntimeError};
use serde_json::json;

use super::bench::{adapter_name, print_driver_threads, quartiles, timing_name};
use super::progress::Progress;

/// What to run: batch size, untimed and timed steps, and whether to profile one step by dispatch.
pub struct Runs {
    pub batch: usize,
    pub warmup: u64,
    pub iters: u64,
    pub layers: bool,
}

/// What one training benchmark measured.
struct Measured {
    first_step_s: f64,
    /// Bytes of device memory the trainer holds.
    device_bytes: u64,
    /// Seconds per step, sorted.
    steps: Vec<f64>,
    /// Seconds for `iters` more steps submitted back to back, the losses read back only when the
    /// trainer's history of 64 is full and at the end (as `cnnc train` runs them: the device does
    /// not wait for the host between steps).
    back_to_back: f64,
    /// One more step, dispatch by dispatch (with `--layers`).
    profile: Option<StepProfile>,
}

/// Times whole training steps (forward, loss, backward, Adam), each waited for by reading its loss
/// back: the first one (pipelines and buffers made, weights uploaded) apart, then `iters` after
/// `warmup` untimed ones; then `iters` more back to back, not waited for one by one; with `layers`,
/// one more step timed dispatch by dispatch.
fn measure(gpu: &Gpu, graph: &Graph, runs: &Runs) -> Result<Measured, RuntimeError> {
    let Runs { batch, warmup, iters, layers } = *runs;
    let mut shape = vec![batch];
    shape.extend(graph.node(graph.input).shape.dims());
    let input = synthetic::input(0, shape);
    let classes = graph.node(graph.output).shape.elements() as usize;
    let labels: Vec<usize> = (0..batch).map(|i| i % classes).collect();
    let adam = OptimizerState::new(Optimizer::adam(), 1e-3, Schedule::Constant);
    let progress = Progress::start("preparing the training step, first step");
    let start = Instant::now();
    let options = StepOptions::default();
    cnnc::runtime::memory::reserve_weights(&graph.weight_table().params)?;
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
    progress.stage(format!("timing {iters} training steps back to back"));
    let t = Instant::now();
    for _ in 0..iters {
        trainer.step(&input, &labels)?;
    }
    trainer.losses()?;
    let back_to_back = t.elapsed().as_secs_f64();
    let profile = if layers {
        progress.stage("timing each dispatch of a step");
        Some(trainer.profile(&input, &labels)?)
    } else {
        None
    };
    Ok(Measured { first_step_s, device_bytes: trainer.device_bytes(), steps, back_to_back, profile })
}

/// Each kernel family's total seconds and dispatches in a profile, slowest first.
fn by_family(profile: &StepProfile) -> Vec<(&'static str, f64, usize)> {
    let mut families: Vec<(&'static str, f64, usize)> = Vec::new();
    for (_, family, s) in &profile.dispatches {
        match families.iter_mut().find(|(f, _, _)| f == family) {
            Some(entry) => {
                entry.1 += s;
                entry.2 += 1;
            }
            None => families.push((family, *s, 1)),
        }
    }
    families.sort_by(|a, b| b.1.total_cmp(&a.1));
    families
}

/// Runs the training benchmark and prints it (as JSON with `json`).
pub fn run(gpu: &Gpu, graph: &Graph, runs: &Runs, json: bool) -> ExitCode {
    let (batch, iters) = (runs.batch, runs.iters);
    let m = match measure(gpu, graph, runs) {
        Ok(m) => m,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let [p25, median, p75] = quartiles(&m.steps);
    let adapter = adapter_name(gpu);
    let images_per_s = batch as f64 / median;
    let back_to_back_images_per_s = (batch as u64 * iters) as f64 / m.back_to_back;
    if json {
        let mut out = json!({
            "model": graph.meta.name,
            "mode": "train",
            "optimizer": "adam",
            "batch": batch,
            "iters": iters,
            "images_per_s": images_per_s,
            "back_to_back_images_per_s": back_to_back_images_per_s,
            "step_ms_median": median * 1e3,
            "step_ms_p25": p25 * 1e3,
            "step_ms_p75": p75 * 1e3,
            "step_ms_min": m.steps[0] * 1e3,
            "step_ms_max": m.steps[m.steps.len() - 1] * 1e3,
            "first_step_s": m.first_step_s,
            "device_bytes": m.device_bytes,
            "adapter": adapter,
            "cpu_driver_threads": cpu_driver_threads(&gpu.info),
        });
        if let Some(p) = &m.profile {
            out["dispatch_timing"] = json!(timing_name(p.timing));
            out["dispatches"] = p
                .dispatches
                .iter()
                .map(|(what, kernel, s)| json!({"work": what, "kernel": kernel, "ms": s * 1e3}))
                .collect();
        }
        outln!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialise"));
    } else {
        outln!("{} training (Adam) on {adapter}, batch {batch}", graph.meta.name);
        print_driver_threads(gpu);
        outln!("  throughput:        {images_per_s:.2} images/s  (median step, each waited for)");
        outln!(
            "  back to back:      {back_to_back_images_per_s:.2} images/s  ({iters} steps not waited for one by one, as `cnnc train` runs them)"
        );
        outln!(
            "  step (median):     {:.2} ms  (quartiles {:.2}–{:.2}, min {:.2}, max {:.2}, {} steps)",
            median * 1e3,
            p25 * 1e3,
            p75 * 1e3,
            m.steps[0] * 1e3,
            m.steps[m.steps.len() - 1] * 1e3,
            m.steps.len()
        );
        outln!("  first step:        {:.2} s  (pipelines, weights, one step)", m.first_step_s);
        outln!(
            "  device memory:     {:.1} MiB (parameters, gradients, Adam's state, every value and gradient of a step)",
            m.device_bytes as f64 / (1 << 20) as f64
        );
        if let Some(p) = &m.profile {
            let total: f64 = p.dispatches.iter().map(|d| d.2).sum();
            let (n, how) = (p.dispatches.len(), timing_name(p.timing));
            outln!("  per kernel ({how}; {n} dispatches, {:.2} ms in all), slowest first:", total * 1e3);
            for (family, s, count) in by_family(p) {
                outln!("    {:>8.2} ms  {:>5.1} %  {family:<18} ×{count}", s * 1e3, 100.0 * s / total);
            }
            let mut slowest: Vec<_> = p.dispatches.iter().collect();
            slowest.sort_by(|a, b| b.2.total_cmp(&a.2));
            outln!("  slowest dispatches:");
            for (what, family, s) in slowest.iter().take(12) {
                outln!("    {:>8.2} ms  {family:<18} {what}", s * 1e3);
            }
        }
    }
    ExitCode::SUCCESS
}
