//! A long training run holds its memory steady: a GPU training step allocates nothing that outlives
//! it. Each test file is a process of its own, and its tests take turns (`ONE_AT_A_TIME`), so the
//! process's resident memory is the running test's.
//! (On lavapipe, Mesa 22.3, a kernel whose extents came from a uniform made a new shader variant at
//! every dispatch and grew the process by about 1 MB a LeNet step.)

#![cfg(target_os = "linux")]

use std::path::Path;

use cnnc::conformance::backward;
use cnnc::runtime::gpu::{self, GpuTrainer};
use cnnc::runtime::synthetic;
use cnnc::runtime::train::{Optimizer, OptimizerState, Schedule, StepOptions};

mod common;

/// Held by each test while it measures.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The process's resident memory, in kB (`VmRSS` of `/proc/self/status`).
fn resident_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn lenet_training_steps_hold_memory_steady() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (_, model) = cnnc::compiler::compile_model_path(Path::new("specs/lenet.yaml")).unwrap();
    let graph = model.unwrap().graph;
    let gpu = gpu::open(None).unwrap();
    let adam = OptimizerState::new(Optimizer::adam(), 1e-3, Schedule::Constant);
    let weights = synthetic::weights(&graph, 0);
    let mut trainer = GpuTrainer::new(&gpu, &graph, &weights, |_| true, adam, &StepOptions::default(), 8).unwrap();
    let batches: Vec<_> = (0..10).map(|step| common::lenet_batch(step, 8)).collect();
    let mut run = |steps: usize| {
        for step in 0..steps {
            let (x, y) = &batches[step % batches.len()];
            trainer.step(x, y).unwrap();
        }
        trainer.losses().unwrap();
    };
    // Warm-up: the pipelines, the driver's caches and the allocator's pools settle.
    run(100);
    let before = resident_kb();
    run(500);
    let grown = resident_kb().saturating_sub(before);
    assert!(grown < 50 << 10, "500 training steps grew the process by {} MB", grown >> 10);
}

/// Every backward kernel family, through the small models of the backward conformance cases (the
/// named ones and the sweep's): 150 steps of each after 20 of warm-up grow the process by less
/// than 8 MB (a kernel that made a shader variant at each dispatch grew it by about 60 MB in as
/// many).
#[test]
fn every_kernel_family_trains_without_growing() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let gpu = gpu::open(None).unwrap();
    let (mut grown, mut most) = (Vec::new(), 0);
    for case in &backward::cases() {
        let (weights, x, labels) = backward::step_data(case);
        let adam = OptimizerState::new(Optimizer::adam(), 1e-3, Schedule::Constant);
        let mut trainer =
            GpuTrainer::new(&gpu, &case.graph, &weights, |_| true, adam, &case.options, case.batch).unwrap();
        let mut run = |steps: usize| {
            for _ in 0..steps {
                trainer.step(&x, &labels).unwrap();
            }
            trainer.losses().unwrap();
        };
        run(20);
        let before = resident_kb();
        run(150);
        let kb = resident_kb().saturating_sub(before);
        most = most.max(kb);
        if kb >= 8 << 10 {
            grown.push(format!("{} / {}: {} MB", case.family, case.name, kb >> 10));
        }
    }
    println!("the most any case grew the process: {most} kB");
    assert!(grown.is_empty(), "150 training steps grew the process:\n{}", grown.join("\n"));
}
