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

/// `train::step_on_branches` takes the branches another executor's forward gave: a ReLU's pieces
/// from its given output, a max-pooling's window maxima from its given input. On a model whose f64
/// forward is known by hand (`[1, 2]` through a 1×1 convolution of weight 0.5, a ReLU, a 1×2
/// max-pooling and a linear layer), the expected gradients follow without the rule under test: a
/// ReLU said to block everywhere leaves the convolution no gradient, and a pooling said to take
/// the first element instead of the second halves the convolution's weight gradient (its input
/// there is 1, not 2).
#[test]
fn the_backward_takes_the_branches_another_executor_took() {
    use cnnc::compiler::graph::{Activation, Op};
    use cnnc::conformance::net::{self, Net};
    use cnnc::runtime::train::{self, step_on_branches};
    use cnnc::runtime::{RuntimeError, Tensor};

    let (mut m, x) = Net::new(&[1, 1, 2]);
    let conv = m.apply(x, Op::Conv2d(cnnc::compiler::graph::Conv2d { bias: false, ..net::conv(1, 1) }));
    let relu = m.apply(conv, net::act(Activation::Relu));
    let pairs = cnnc::compiler::graph::Pool2d { kernel: [1, 2], stride: [1, 2], ..net::window(1) };
    let pool = m.apply(relu, net::max_pool(pairs));
    let flat = m.apply(pool, Op::Flatten);
    let out = m.apply(flat, net::linear(2, true));
    let graph = m.finish(out);
    let mut weights = synthetic::weights(&graph, 0).convert::<f64>();
    weights.insert("l0.weight".into(), Tensor::new(vec![1, 1, 1, 1], vec![0.5]));
    let input = Tensor::new(vec![1, 1, 1, 2], vec![1.0, 2.0]);
    let backward = cnnc::compiler::ir::autodiff::differentiate(&graph, |_| true).unwrap();
    let options = StepOptions { dropout: false, ..StepOptions::default() };
    let plain = train::step(&graph, &backward, &weights, &input, &[1], &options).unwrap();
    let on = |branches: &[(cnnc::compiler::graph::NodeId, Tensor<f32>)]| {
        step_on_branches(&graph, &backward, &weights, &input, &[1], &options, branches)
    };
    // The output's input is the flattening, whose input is the pooling, whose input is the ReLU.
    let input_of = |id: cnnc::compiler::graph::NodeId| graph.node(id).inputs[0];
    let relu_id = input_of(input_of(input_of(graph.output)));
    assert_eq!(graph.node(relu_id).op, net::act(Activation::Relu));
    let grad = |r: &train::StepResult, name: &str| r.gradients.get(name).unwrap().data.clone();
    let conv_grad = grad(&plain, "l0.weight")[0];
    assert!(conv_grad.abs() > 1e-3, "the convolution has a gradient to lose: {conv_grad}");

    // The given ReLU output is 0 where the f64 one is 0.5 and 1: both elements took the other piece.
    let (blocked, reports) = on(&[(relu_id, Tensor::new(vec![1, 1, 1, 2], vec![0.0, 0.0]))]).unwrap();
    assert_eq!(grad(&blocked, "l0.weight"), [0.0]);
    assert_eq!(grad(&blocked, "l4.weight"), grad(&plain, "l4.weight"));
    assert_eq!(blocked.loss, plain.loss);
    let relu_report = reports.iter().find(|r| r.node == relu_id).expect("the ReLU reports");
    assert_eq!(relu_report.flips, [(0, 0.5), (1, 1.0)]);

    // The given pooling input has its maximum first; the ReLU keeps both pieces.
    let (first, reports) = on(&[(relu_id, Tensor::new(vec![1, 1, 1, 2], vec![1.0, 0.5]))]).unwrap();
    assert_eq!(grad(&first, "l0.weight")[0], conv_grad / 2.0);
    let pool_report = reports.iter().find(|r| r.node != relu_id).expect("the pooling reports");
    // The given input is 0.5 from the f64 one at both elements: a gap moves by twice that.
    assert_eq!((pool_report.flips.as_slice(), pool_report.explained), (&[(0, 0.5)][..], 1.0));
    assert!(reports.iter().find(|r| r.node == relu_id).unwrap().flips.is_empty());
    assert_eq!(train::branch_nodes(&graph), [relu_id]);

    // Given values that do not fit the step are refused by name.
    let wrong_shape = on(&[(relu_id, Tensor::new(vec![1, 2], vec![0.0, 0.0]))]).unwrap_err();
    assert!(matches!(&wrong_shape, RuntimeError::Branch(m) if m.contains("l1")), "{wrong_shape}");
}
