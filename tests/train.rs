//! Training parity with PyTorch (`tests/fixtures/train.json`, made by
//! `tests/fixtures/generate_train.py` in float64), on the CPU reference trainer from identical initial
//! weights and sample order: the book's LeNet, 200 steps of Adam (lr 1e-3, batch 8), and ResNet-18
//! with batch-norm in training mode, 20 steps of Adam (lr 1e-3, batch 4, 64×64 images). Every step's
//! loss must be PyTorch's within 1e-6 relative, and the final weights and running statistics within
//! 1e-6 (their digests: norm and two probe products per tensor).

use std::path::Path;

use cnnc::runtime::synthetic;
use cnnc::runtime::train::{CpuTrainer, Optimizer, OptimizerState, Schedule, StepOptions};

mod common;

use common::{digest, digest_close, lenet_batch as batch, pattern_batch, resnet18_64};

#[test]
fn lenet_adam_follows_pytorch_step_by_step() {
    let fixtures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("tests/fixtures/train.json").unwrap()).unwrap();
    let want = &fixtures["lenet_adam"];
    let (steps, size) = (want["steps"].as_u64().unwrap() as usize, want["batch"].as_u64().unwrap() as usize);
    let (_, model) = cnnc::compiler::compile_model_path(Path::new("specs/lenet.yaml")).unwrap();
    let graph = model.unwrap().graph;
    let optimizer = OptimizerState::new(Optimizer::adam(), want["lr"].as_f64().unwrap(), Schedule::Constant);
    let mut trainer =
        CpuTrainer::new(&graph, &synthetic::weights(&graph, 0), |_| true, optimizer, StepOptions::default()).unwrap();
    for step in 0..steps {
        let (x, y) = batch(step, size);
        let loss = trainer.step(&x, &y).unwrap();
        let theirs = want["losses"][step].as_f64().unwrap();
        assert!((loss - theirs).abs() <= 1e-6 * theirs.abs(), "step {step}: loss {loss}, PyTorch {theirs}");
    }
    assert_eq!(trainer.steps(), steps as u64);
    for (name, theirs) in want["weights"].as_object().unwrap() {
        let theirs: Vec<f64> = theirs.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let t = trainer.params().get(name).unwrap();
        let ours = digest(name, &t.data);
        assert!(digest_close(&ours, &theirs, t.len(), 1e-6, 0.0), "{name}: digest {ours:?}, PyTorch {theirs:?}");
    }
    // It learned: a fresh batch is classified well in inference mode.
    let (x, y) = batch(steps, 64);
    let eval = trainer.evaluate(&x, &y).unwrap();
    assert!(eval.correct >= 60, "{} of 64 right after training", eval.correct);
}

#[test]
fn slow_resnet18_adam_with_batch_norm_follows_pytorch_step_by_step() {
    let fixtures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("tests/fixtures/train.json").unwrap()).unwrap();
    let want = &fixtures["resnet18_adam"];
    let (steps, size) = (want["steps"].as_u64().unwrap() as usize, want["batch"].as_u64().unwrap() as usize);
    let graph = resnet18_64();
    let optimizer = OptimizerState::new(Optimizer::adam(), want["lr"].as_f64().unwrap(), Schedule::Constant);
    let mut trainer =
        CpuTrainer::new(&graph, &synthetic::weights(&graph, 0), |_| true, optimizer, StepOptions::default()).unwrap();
    let mut worst = 0f64;
    for step in 0..steps {
        let (x, y) = pattern_batch(step, size, &[3, 64, 64], 10);
        let loss = trainer.step(&x, &y).unwrap();
        let theirs = want["losses"][step].as_f64().unwrap();
        worst = worst.max((loss - theirs).abs() / theirs.abs());
        assert!((loss - theirs).abs() <= 1e-6 * theirs.abs(), "step {step}: loss {loss}, PyTorch {theirs}");
    }
    println!("worst loss difference {worst:.1e}");
    let mut checked = 0;
    for (name, theirs) in want["weights"].as_object().unwrap() {
        let theirs: Vec<f64> = theirs.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let t = trainer.params().get(name).unwrap_or_else(|| panic!("no {name}"));
        let ours = digest(name, &t.data);
        assert!(digest_close(&ours, &theirs, t.len(), 1e-6, 0.0), "{name}: digest {ours:?}, PyTorch {theirs:?}");
        checked += 1;
    }
    assert_eq!(checked, 62 + 40, "ResNet-18's 62 trainable tensors and 40 running statistics");
}

/// A frozen backbone's batch norms run on their running statistics while training (torchvision's
/// `FrozenBatchNorm2d`): ResNet-18 with all but `fc` frozen computes in its first training step the
/// loss that inference computes, where with its batch norms in training mode the loss differs.
#[test]
fn frozen_batch_norms_train_as_they_infer() {
    use cnnc::runtime::train::{freeze_batch_norms, CrossEntropy};
    let graph = resnet18_64();
    let weights = synthetic::weights(&graph, 3);
    let frozen = |p: &cnnc::compiler::graph::Param| !p.name.starts_with("fc.");
    let (frozen_graph, kept) = freeze_batch_norms(&graph, &weights, frozen).unwrap();
    assert_eq!(kept.names().iter().filter(|n| n.ends_with("running_var")).count(), 20, "ResNet-18's 20 batch norms");
    assert!(frozen_graph.weight_table().params.iter().all(|p| !p.name.contains("bn")));
    let (x, y) = pattern_batch(0, 4, &[3, 64, 64], 10);
    let inferred = cnnc::runtime::cpu::run(&graph, &weights, &x).unwrap().convert::<f64>();
    let (inferred, _) = CrossEntropy::default().loss_and_grad(&inferred, &y).unwrap();
    let first_loss = |g: &cnnc::Graph| {
        let optimizer = OptimizerState::new(Optimizer::sgd(), 0.1, Schedule::Constant);
        let mut trainer = CpuTrainer::new(g, &weights, |p| !frozen(p), optimizer, StepOptions::default()).unwrap();
        trainer.step(&x, &y).unwrap()
    };
    let frozen_loss = first_loss(&frozen_graph);
    // Inference runs in float32 data (with float64 sums), training in float64.
    assert!((frozen_loss - inferred).abs() <= 1e-6 * inferred, "training {frozen_loss}, inference {inferred}");
    let batch_statistics = first_loss(&graph);
    assert!((batch_statistics - inferred).abs() > 1e-4 * inferred, "{batch_statistics} against {inferred}");
}
