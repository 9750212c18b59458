//! The whole pipeline in one call: a spec file becomes a `Model` (checked graph and validated
//! plan), and a library or a broken spec becomes diagnostics with their codes.

use std::path::Path;

use cnnc::compiler::compile_model_path;
use cnnc::compiler::graph::Op;

#[test]
fn a_model_spec_becomes_its_graph_and_validated_plan() {
    let (_, model) = compile_model_path(Path::new("specs/resnet18.yaml")).expect("readable");
    let model = model.expect("resnet18 compiles");
    let plan = model.plan.plan();
    // Lowering folds every batch-norm into its convolution: the plan has fewer layers than the graph.
    assert!(plan.layers.len() < model.graph.inference_nodes().count());
    assert!(plan.layers.iter().all(|l| !matches!(l.op, Op::BatchNorm { .. })));
    assert_eq!(plan.layout.output_shape, model.graph.node(model.graph.output).shape);
    assert!(plan.layers.iter().filter(|l| l.residual).count() >= 8, "residual adds fused into convolutions");
}

#[test]
fn a_library_or_a_broken_spec_gives_coded_diagnostics() {
    let (_, library) = compile_model_path(Path::new("specs/lib/resnet.yaml")).expect("readable");
    let diags = library.expect_err("a library is not a model");
    assert_eq!(diags.iter().map(|d| d.code).collect::<Vec<_>>(), ["cnnc::spec::not_a_model"]);
    assert!(diags[0].span().is_some(), "located in the spec");
    let (_, broken) = compile_model_path(Path::new("tests/bad/lenet_fc1_in_features.yaml")).expect("readable");
    let codes: Vec<&str> = broken.expect_err("a shape error").iter().map(|d| d.code).collect();
    assert_eq!(codes, ["cnnc::shape::in_channels"]);
}
