//! `cnnc bench`: throughput and latency of a model on the GPU.

use super::stdout::errln;
use super::stdout::outln;
use std::process::ExitCode;
use std::time::Instant;

use cnnc::runtime::gpu::{cpu_driver_threads, CPU_DRIVER_THREADS};
use cnnc::runtime::{gpu, synthetic};
use serde_json::json;

use super::progress::Progress;
use super::{compile_model, SpecPath};

#[derive(clap::Args)]
pub struct Args {
    /// The model spec.
    #[arg(value_name = "SPEC")]
    spec: SpecPath,
    /// Batch size.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    batch: u64,
    /// Timed forward passes (after warm-up); the median is reported. With --train, timed training
    /// steps, each waited for (the median is reported), then as many again submitted back to back
    /// (as `cnnc train` runs them: the losses read back when the trainer's history of 64 is full,
    /// and at the end).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100000))]
    iters: u64,
    /// Untimed forward passes before timing.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Also time each layer on its own (GPU timestamp queries where the adapter has them, else one
    /// submission per layer); with `--train`, each dispatch of one training step, also summed per
    /// kernel family.
    #[arg(long)]
    layers: bool,
    /// Time training steps instead (training-mode forward, cross-entropy, backward, Adam), each
    /// waited for: images/s, median step time, time to the first step.
    #[arg(long)]
    train: bool,
    /// The GPU adapter: part of its name, or a backend; see `cnnc devices`.
    #[arg(long, value_name = "NAME")]
    adapter: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub(super) fn timing_name(how: gpu::StepTiming) -> &'static str {
    match how {
        gpu::StepTiming::Timestamps => "GPU timestamp queries",
        gpu::StepTiming::Submissions => "one submission each, no timestamp queries on this adapter",
    }
}

/// The adapter as bench reports it: name, backend and driver.
pub(super) fn adapter_name(device: &gpu::Gpu) -> String {
    format!("{} ({:?}, {})", device.info.name, device.info.backend, device.info.driver_info)
}

/// The text report's line of the threads a CPU adapter runs dispatches on; nothing for others.
pub(super) fn print_driver_threads(device: &gpu::Gpu) {
    if let Some(threads) = cpu_driver_threads(&device.info) {
        outln!("  driver threads:    {threads} ({CPU_DRIVER_THREADS})");
    }
}

/// The first quartile, median and third quartile of `sorted` (ascending, not empty), each the
/// element at that rank (`len · q`, rounded down): a spread that shows whether runs fall into
/// more than one mode, where the minimum and maximum show only the extremes.
pub(super) fn quartiles(sorted: &[f64]) -> [f64; 3] {
    [0.25, 0.5, 0.75].map(|q| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)])
}

pub fn run(args: Args) -> ExitCode {
    let (graph, plan) = match compile_model(&args.spec) {
        Ok(model) => (model.graph, model.plan),
        Err(code) => return code,
    };
    let device = match gpu::open(args.adapter.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let batch = args.batch as usize;
    if args.train {
        let runs = super::bench_train::Runs { batch, warmup: args.warmup, iters: args.iters, layers: args.layers };
        return super::bench_train::run(&device, &graph, &runs, args.json);
    }
    let mut shape = vec![batch];
    shape.extend(graph.node(graph.input).shape.dims());
    let input = synthetic::input(0, shape);
    if let Err(e) = cnnc::runtime::memory::reserve_weights(&graph.weight_table().params) {
        errln!("error: {e}");
        return ExitCode::from(1);
    }
    let weights = synthetic::weights(&graph, 0);
    // Time to first result: pipelines and buffers created, weights uploaded, one forward read back.
    let progress = Progress::start("preparing kernels, uploading weights, first forward pass");
    let start = Instant::now();
    let result = gpu::Prepared::new(&device, &plan, &weights, batch).and_then(|p| p.run(&input).map(|_| p));
    let prepared = match result {
        Ok(p) => p,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let first_result_s = start.elapsed().as_secs_f64();
    progress.stage("warming up");
    for _ in 0..args.warmup {
        if let Err(e) = prepared.run(&input) {
            errln!("error: {e}");
            return ExitCode::from(1);
        }
    }
    let mut times = Vec::with_capacity(args.iters as usize);
    for i in 0..args.iters {
        progress.stage(format!("timing forward pass {} of {}", i + 1, args.iters));
        let t = Instant::now();
        if let Err(e) = prepared.run(&input) {
            errln!("error: {e}");
            return ExitCode::from(1);
        }
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let [p25, median, p75] = quartiles(&times);
    let layers = if args.layers {
        progress.stage("timing each layer");
        prepared.time_steps().ok()
    } else {
        None
    };
    drop(progress);
    let adapter = adapter_name(&device);
    let images_per_s = batch as f64 / median;
    if args.json {
        let mut out = json!({
            "model": graph.meta.name,
            "batch": batch,
            "iters": args.iters,
            "images_per_s": images_per_s,
            "latency_ms_median": median * 1e3,
            "latency_ms_p25": p25 * 1e3,
            "latency_ms_p75": p75 * 1e3,
            "latency_ms_min": times[0] * 1e3,
            "latency_ms_max": times[times.len() - 1] * 1e3,
            "first_result_s": first_result_s,
            "peak_memory_bytes": prepared.device_bytes,
            "dispatches": prepared.dispatches,
            "adapter": adapter,
            "cpu_driver_threads": cpu_driver_threads(&device.info),
        });
        if let Some((l, how)) = &layers {
            out["layer_timing"] = json!(timing_name(*how));
            out["layers"] = prepared
                .step_labels
                .iter()
                .zip(l)
                .filter_map(|((path, kernel), t)| t.map(|t| json!({"layer": path, "kernel": kernel, "ms": t * 1e3})))
                .collect();
        }
        outln!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialise"));
    } else {
        outln!("{} on {adapter}, batch {batch}", graph.meta.name);
        print_driver_threads(&device);
        outln!("  throughput:        {images_per_s:.2} images/s");
        outln!(
            "  latency (median):  {:.2} ms  (quartiles {:.2}–{:.2}, min {:.2}, max {:.2}, {} runs)",
            median * 1e3,
            p25 * 1e3,
            p75 * 1e3,
            times[0] * 1e3,
            times[times.len() - 1] * 1e3,
            times.len()
        );
        outln!("  first result:      {first_result_s:.2} s  (pipelines, weights, one forward)");
        outln!(
            "  device memory:     {:.1} MiB in {} dispatches per forward",
            prepared.device_bytes as f64 / (1 << 20) as f64,
            prepared.dispatches
        );
        if let Some((l, how)) = &layers {
            let mut rows: Vec<_> =
                prepared.step_labels.iter().zip(l).filter_map(|(label, t)| t.map(|t| (label, t))).collect();
            let total: f64 = rows.iter().map(|(_, t)| t).sum();
            outln!("  per layer ({}; {:.2} ms in all), slowest first:", timing_name(*how), total * 1e3);
            rows.sort_by(|a, b| b.1.total_cmp(&a.1));
            for ((path, kernel), t) in rows.iter().take(15) {
                outln!("    {:>8.2} ms  {kernel:<13} {path}", t * 1e3);
            }
        }
    }
    ExitCode::SUCCESS
}
