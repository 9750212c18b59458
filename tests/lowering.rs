//! The lowering passes leave the numbers unchanged: for zoo models that exercise each pass, the CPU
//! reference executor runs the checked graph and the graph after each successive pass on the same
//! input and weights, and the outputs agree; the GPU executor (which runs the fully lowered graph
//! with buffers reused by liveness) is checked against PyTorch in `pytorch.rs`.

use std::path::Path;

use cnnc::compiler::graph::Graph;
use cnnc::compiler::{compile_path, passes, Expanded};
use cnnc::runtime::{cpu, synthetic, Tensor};

fn model(name: &str) -> Graph {
    let path = format!("specs/{name}.yaml");
    match compile_path(Path::new(&path)).expect("spec readable").result {
        Ok(Expanded::Model(g)) => g,
        other => panic!("{path} does not compile: {other:?}"),
    }
}

/// One lowering pass.
type Pass = fn(&Graph) -> Graph;

fn relative_error(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape, b.shape);
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (x, y) in a.data.iter().zip(&b.data) {
        diff += (*x as f64 - *y as f64).powi(2);
        norm += (*x as f64).powi(2);
    }
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

/// Runs `name` unlowered and after each pass; each pass must change the graph (so the model tests
/// it) exactly where `changes` says, and keep the output within f32 rounding of the original.
fn check(name: &str, changes: [bool; 5]) {
    let graph = model(name);
    let weights = synthetic::weights(&graph, 3);
    let mut shape = vec![1];
    shape.extend(graph.node(graph.input).shape.dims());
    let input = synthetic::input(3, shape);
    let reference = cpu::run(&graph, &weights, &input).expect("original graph runs");
    let steps: [(&str, Pass); 5] = [
        ("inference_only", passes::inference_only),
        ("fold_batch_norm", passes::fold_batch_norm),
        ("fuse_residual_add", passes::fuse_residual_add),
        ("fuse_activation", passes::fuse_activation),
        ("concat_in_place", passes::concat_in_place),
    ];
    let mut current = graph.clone();
    for ((pass, run), changes) in steps.into_iter().zip(changes) {
        let next = run(&current);
        assert_eq!(
            passes::listing(&next) != passes::listing(&current),
            changes,
            "{name}: {pass} {} the graph",
            if changes { "did not change" } else { "changed" }
        );
        let got = cpu::run(&next, &weights, &input).expect("lowered graph runs");
        let error = relative_error(&reference, &got);
        assert!(error < 1e-6, "{name} after {pass}: relative error {error:e}");
        current = next;
    }
}

#[test]
fn resnet18_residual_blocks() {
    check("resnet18", [false, true, true, true, false]);
}

#[test]
fn mobilenet_v3_small_dropout_squeeze_excitation_and_hardswish() {
    check("mobilenet_v3_small", [true, true, true, true, false]);
}

#[test]
fn squeezenet_concatenated_branches() {
    check("squeezenet1_1", [true, false, false, true, true]);
}

#[test]
fn googlenet_inception_branches() {
    check("googlenet", [true, true, false, true, true]);
}
