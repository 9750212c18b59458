//! Helpers the training tests share: the training batches of `tests/fixtures/generate_train.py`, its
//! ResNet-18 at 64×64, the digest `generate_grads.py` stores for each tensor, and the optimizer cases
//! of `generate_optim.py`.
#![allow(dead_code)] // each test crate uses some of them

use cnnc::runtime::train::{Optimizer, OptimizerState, Schedule};
use cnnc::runtime::{synthetic, Tensor};

/// Batch `step` of `generate_train.py` for LeNet ([3, 32, 32] items, 10 classes).
pub fn lenet_batch(step: usize, size: usize) -> (Tensor, Vec<usize>) {
    pattern_batch(step, size, &[3, 32, 32], 10)
}

/// Batch `step` of `generate_train.py`: `size` items of shape `item`, item `i` with label
/// `y = (7·(size·step + i) + 3) mod classes` and the values of the f32 rounding of
/// `0.5 · noise + pattern[y]`.
pub fn pattern_batch(step: usize, size: usize, item: &[usize], classes: usize) -> (Tensor, Vec<usize>) {
    let len: usize = item.iter().product();
    let labels: Vec<usize> = (0..size).map(|i| (7 * (size * step + i) + 3) % classes).collect();
    let mut data = Vec::with_capacity(size * len);
    for (i, y) in labels.iter().enumerate() {
        let noise = synthetic::values(0, &format!("train{step}:{i}"), len, -1.0, 1.0);
        let pattern = synthetic::values(0, &format!("pattern{y}"), len, -1.0, 1.0);
        data.extend(noise.iter().zip(&pattern).map(|(n, p)| (0.5 * f64::from(*n) + f64::from(*p)) as f32));
    }
    let mut shape = vec![size];
    shape.extend(item);
    (Tensor::new(shape, data), labels)
}

/// ResNet-18 as `specs/resnet18.yaml` declares it, on `[3, 64, 64]` inputs instead of
/// `[3, 224, 224]` (the training parity run's size), without the ImageNet resize and crop.
pub fn resnet18_64() -> cnnc::Graph {
    let path = std::path::Path::new("specs/resnet18.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("input: [3, 224, 224]"), "specs/resnet18.yaml declares its input differently");
    let text = text.replace("input: [3, 224, 224]", "input: [3, 64, 64]").replace("resize: 256, crop: 224, ", "");
    match cnnc::compile_bytes(path, text.into_bytes()).result {
        Ok(cnnc::Expanded::Model(graph)) => graph,
        _ => panic!("resnet18 at 64×64 compiles"),
    }
}

/// `[norm, probe0 · t, probe1 · t]` of a tensor's values, as the fixture generators compute it.
pub fn digest(name: &str, data: &[f64]) -> [f64; 3] {
    let probe = |k: usize| synthetic::values(0, &format!("probe{k}:{name}"), data.len(), -1.0, 1.0);
    let dot = |p: Vec<f32>| data.iter().zip(p).map(|(a, b)| a * b as f64).sum::<f64>();
    [data.iter().map(|v| v * v).sum::<f64>().sqrt(), dot(probe(0)), dot(probe(1))]
}

/// Whether a digest is within `tolerance` of the fixture's, relative to the tensor's scale (probe
/// products scale with the norm times √(n/3), the probes' own norm), plus an absolute `floor`.
pub fn digest_close(ours: &[f64; 3], theirs: &[f64], len: usize, tolerance: f64, floor: f64) -> bool {
    let scale = theirs[0] * (len as f64 / 3.0).sqrt();
    ours.iter().zip(theirs).all(|(a, b)| (a - b).abs() <= tolerance * scale + floor)
}

/// The text of the whole-model gradient fixture: `tests/fixtures/grads.json`, or the file
/// `CNNC_GRADS` names (`scripts/zoo_grads.sh` makes one for the whole zoo).
pub fn grads_fixture() -> String {
    let path = std::env::var("CNNC_GRADS").unwrap_or_else(|_| "tests/fixtures/grads.json".to_string());
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Rust spelling of each case of `generate_optim.py` (one-cycle schedules span `steps`).
pub fn optimizer_case(name: &str, steps: u64) -> OptimizerState {
    let sgd =
        |momentum, dampening, nesterov, weight_decay| Optimizer::Sgd { momentum, dampening, nesterov, weight_decay };
    match name {
        "sgd" => OptimizerState::new(Optimizer::sgd(), 0.1, Schedule::Constant),
        "sgd_momentum_dampening_decay" => OptimizerState::new(sgd(0.9, 0.1, false, 1e-2), 0.05, Schedule::Constant),
        "sgd_nesterov_step" => {
            OptimizerState::new(sgd(0.9, 0.0, true, 5e-4), 0.1, Schedule::Step { step_size: 5, gamma: 0.5 })
        }
        "adam_multistep" => {
            OptimizerState::new(Optimizer::adam(), 1e-2, Schedule::MultiStep { milestones: vec![5, 12], gamma: 0.3 })
        }
        "adam_decay_betas" => OptimizerState::new(
            Optimizer::Adam { betas: (0.8, 0.99), eps: 1e-6, weight_decay: 1e-2, decoupled: false },
            1e-2,
            Schedule::Constant,
        ),
        "adamw_cosine" => OptimizerState::new(
            Optimizer::Adam { betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.05, decoupled: true },
            1e-2,
            Schedule::Cosine { t_max: 20, eta_min: 1e-4 },
        ),
        "sgd_momentum_one_cycle" => {
            OptimizerState::new(sgd(0.9, 0.0, false, 0.0), 0.1, Schedule::one_cycle(0.5, steps))
        }
        "adamw_one_cycle" => OptimizerState::new(Optimizer::adamw(), 1e-3, Schedule::one_cycle(0.05, steps)),
        other => panic!("no Rust spelling for case {other}"),
    }
}
