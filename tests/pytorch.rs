//! The zoo against PyTorch: each model, with the deterministic weights and input batch of
//! `runtime/src/synthetic.rs`, must give torchvision's logits (`tests/fixtures/<model>.npy`, made by
//! `tests/fixtures/generate.py` in float64): relative L2 error ≤ 1e-4 and the same top-1, on the CPU
//! reference executor and on the GPU (Mesa's lavapipe where there is no GPU).
//!
//! CI runs a representative subset; `CNNC_ZOO=all cargo test --release --test pytorch -- --nocapture`
//! runs every model, and `CNNC_ZOO=resnet18,vgg11` the ones named.

use std::path::Path;

use cnnc::runtime::{cpu, gpu, synthetic, tensor::relative_l2, weights::Weights, RuntimeError, Tensor};
use cnnc::Expanded;
use cnnc::Graph;

const CI_SUBSET: &[&str] = &[
    "lenet",
    "resnet18",
    "vgg11",
    "googlenet",
    "inception_v3",
    "densenet121",
    "squeezenet1_1",
    "shufflenet_v2_x0_5",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "resnext50_32x4d",
];

fn reference(name: &str) -> (Vec<usize>, Vec<f64>) {
    let bytes =
        std::fs::read(format!("tests/fixtures/{name}.npy")).unwrap_or_else(|e| panic!("fixture for {name}: {e}"));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<f64>().unwrap())
}

fn argmax(row: impl Iterator<Item = f64>) -> usize {
    row.enumerate().fold((0, f64::NEG_INFINITY), |best, (i, v)| if v > best.1 { (i, v) } else { best }).0
}

/// Runs one model with `run`; returns a description of any disagreement with PyTorch.
fn compare(name: &str, run: &dyn Fn(&Graph, &Weights, &Tensor) -> Result<Tensor, RuntimeError>) -> Option<String> {
    let compilation = cnnc::compile_path(Path::new(&format!("specs/{name}.yaml"))).unwrap();
    let Ok(Expanded::Model(graph)) = compilation.result else { return Some(format!("{name}: spec does not compile")) };
    let weights = synthetic::weights(&graph, 0);
    let mut shape = vec![2];
    shape.extend(graph.node(graph.input).shape.dims());
    let input = synthetic::input(0, shape);
    let out = match run(&graph, &weights, &input) {
        Ok(out) => out,
        Err(e) => return Some(format!("{name}: {e}")),
    };
    let (want_shape, want) = reference(name);
    if out.shape != want_shape {
        return Some(format!("{name}: output {:?}, PyTorch {:?}", out.shape, want_shape));
    }
    let err = relative_l2(&out.data, &want);
    let classes = want_shape[1];
    let top1: Vec<(usize, usize)> = (0..2)
        .map(|b| {
            let ours = argmax(out.data[b * classes..][..classes].iter().map(|v| *v as f64));
            let theirs = argmax(want[b * classes..][..classes].iter().copied());
            (ours, theirs)
        })
        .collect();
    println!("{name}: relative L2 error {err:.2e}, top-1 {top1:?}");
    if err > 1e-4 || top1.iter().any(|(a, b)| a != b) {
        return Some(format!("{name}: relative L2 error {err:.2e}, top-1 (ours, PyTorch) {top1:?}"));
    }
    None
}

/// The models to check: `CNNC_ZOO` (`all`, or a comma-separated list), else the CI subset.
fn chosen() -> Vec<String> {
    match std::env::var("CNNC_ZOO").unwrap_or_default().as_str() {
        "" => CI_SUBSET.iter().map(|s| s.to_string()).collect(),
        "all" => {
            let text = std::fs::read_to_string("tests/reference/torchvision_facts.json").unwrap();
            let facts: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
            facts.keys().cloned().collect()
        }
        list => list.split(',').map(|s| s.trim().to_string()).collect(),
    }
}

#[test]
fn slow_cpu_executor_gives_pytorchs_logits() {
    let failures: Vec<String> = chosen().iter().filter_map(|n| compare(n, &cpu::run)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn slow_gpu_executor_gives_pytorchs_logits() {
    let device = gpu::open(None).unwrap_or_else(|e| panic!("{e}"));
    println!("adapter: {} ({:?})", device.info.name, device.info.backend);
    let run = |g: &Graph, w: &Weights, x: &Tensor| {
        gpu::Prepared::new(&device, &cnnc::inference_plan(g)?, w, x.batch())?.run(x)
    };
    let failures: Vec<String> = chosen().iter().filter_map(|n| compare(n, &run)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
