//! The runtime's errors are typed: each case here gets the variant that names what went wrong, with
//! the tensor, layer, limit and value it is about, on both executors and in the GPU builder.

use std::path::Path;

use cnnc::runtime::gpu::{self, PlanOptions, Prepared};
use cnnc::runtime::{cpu, synthetic, RuntimeError, Tensor};
use cnnc::{inference_plan, Expanded, Graph};

fn compile(spec: &str) -> Graph {
    let text = format!("model: errors\n{spec}\n");
    match cnnc::compile_bytes(Path::new("errors.yaml"), text.into_bytes()).result {
        Ok(Expanded::Model(g)) => g,
        other => panic!("the spec compiles: {other:?}"),
    }
}

#[test]
fn training_names_what_exceeds_a_storage_binding_and_where_the_spec_declares_it() {
    let graph = compile("input: [3, 8, 8]\nbody: [conv(4, 3, pad=1), relu, flatten, linear(10)]");
    assert!(gpu::check_binding_limits(&graph, 2, 1 << 20).is_ok());
    // The convolution's value at batch 2 is 2·4·8·8·4 = 2,048 bytes.
    match gpu::check_binding_limits(&graph, 2, 2000) {
        Err(e @ RuntimeError::BindingLimit { .. }) => {
            let text = e.to_string();
            assert!(text.contains("`0`") && text.contains("batch 2") && text.contains("--batch"), "{text}");
            assert!(e.span().is_some(), "the error points at the layer in the spec");
        }
        other => panic!("expected BindingLimit, got {other:?}"),
    }
    // The linear layer's weight is 10·256·4 = 10,240 bytes, bound in blocks of rows; every value at
    // batch 1 fits.
    assert!(gpu::check_binding_limits(&graph, 1, 10_000).is_ok());
    // A convolution's weight is bound whole: 8·4·3·3·4 = 1,152 bytes.
    let graph = compile("input: [4, 2, 2]\nbody: [conv(8, 3, pad=1), flatten, linear(2)]");
    match gpu::check_binding_limits(&graph, 1, 1_000) {
        Err(e @ RuntimeError::BindingLimit { .. }) => {
            let text = e.to_string();
            // The way out names the commands that take --cpu (`cnnc bench` measures the GPU only).
            assert!(text.contains("weight `0.weight`") && text.contains("`--cpu` of cnnc train"), "{text}");
            assert!(e.span().is_some(), "the error points at the layer in the spec");
        }
        other => panic!("expected BindingLimit, got {other:?}"),
    }
    // Blocks of a linear weight start at 256-byte offsets: rows of 250 floats (1,000 bytes) go in
    // blocks of 32 (32,000 bytes), more than 10,000.
    let graph = compile("input: [10, 5, 5]\nbody: [flatten, linear(40)]");
    match gpu::check_binding_limits(&graph, 1, 10_000) {
        Err(e @ RuntimeError::BindingLimit { .. }) => {
            let text = e.to_string();
            assert!(text.contains("a block of 32 rows of weight `1.weight`") && text.contains("32000"), "{text}");
        }
        other => panic!("expected BindingLimit, got {other:?}"),
    }
}

#[test]
fn the_cpu_executor_names_the_input_shape_and_missing_weights() {
    let graph = compile("input: [3, 8, 8]\nbody: [conv(4, 3, pad=1), relu]");
    let weights = synthetic::weights(&graph, 0);
    let wrong = synthetic::input(0, vec![1, 3, 8, 7]);
    match cpu::run(&graph, &weights, &wrong) {
        Err(RuntimeError::InputShape { item, found }) => assert_eq!((item, found), (vec![3, 8, 8], vec![1, 3, 8, 7])),
        other => panic!("expected InputShape, got {other:?}"),
    }
    let empty = cnnc::runtime::weights::Weights::default();
    match cpu::run(&graph, &empty, &synthetic::input(0, vec![1, 3, 8, 8])) {
        Err(RuntimeError::MissingWeight { name }) => assert_eq!(name, "0.weight"),
        other => panic!("expected MissingWeight, got {other:?}"),
    }
}

#[test]
fn the_gpu_builder_names_weights_limits_and_input_shapes() {
    let device = gpu::open(None).unwrap_or_else(|e| panic!("{e}"));
    let graph = compile("input: [3, 8, 8]\nbody: [conv(4, 3, pad=1), relu, flatten, linear(10)]");
    let plan = inference_plan(&graph).expect("a valid plan");
    let weights = synthetic::weights(&graph, 0);

    let mut wrong = weights.clone();
    wrong.insert("3.weight".into(), Tensor::new(vec![10, 255], vec![0.0; 2550]));
    match Prepared::new(&device, &plan, &wrong, 1) {
        Err(RuntimeError::WeightShape { name, expected, found }) => {
            assert_eq!((name.as_str(), expected, found), ("3.weight", vec![10, 256], vec![10, 255]))
        }
        Err(e) => panic!("expected WeightShape, got {e:?}"),
        Ok(_) => panic!("expected WeightShape, got a model"),
    }

    // The convolution's output for one item is 4·8·8·4 = 1,024 bytes: the error names the layer.
    let tight = PlanOptions { binding_limit: Some(1000), ..PlanOptions::default() };
    match Prepared::with_options(&device, &plan, &weights, 1, tight) {
        Err(e) => match &e {
            RuntimeError::ActivationTooLarge { layer, bytes, limit, .. } => {
                assert_eq!((layer.as_str(), *bytes, *limit), ("0", 1024, 1000));
                assert!(e.span().is_some(), "the error points at the layer in the spec");
                assert!(e.to_string().contains("--cpu"), "{e}");
            }
            _ => panic!("expected ActivationTooLarge, got {e:?}"),
        },
        Ok(_) => panic!("expected ActivationTooLarge, got a model"),
    }

    // A larger output reusing the input's buffer slot is named itself, not the slot's first user.
    let graph = compile("input: [3, 8, 8]\nbody: [conv(4, 3, pad=1), conv(8, 3, pad=1), flatten, linear(10)]");
    let grown = inference_plan(&graph).expect("a valid plan");
    let limit = PlanOptions { binding_limit: Some(1500), ..PlanOptions::default() };
    match Prepared::with_options(&device, &grown, &synthetic::weights(&graph, 0), 1, limit) {
        Err(RuntimeError::ActivationTooLarge { layer, shape, bytes, .. }) => {
            assert_eq!((layer.as_str(), shape.as_str(), bytes), ("1", "[8, 8, 8]", 2048))
        }
        Err(e) => panic!("expected ActivationTooLarge, got {e:?}"),
        Ok(_) => panic!("expected ActivationTooLarge, got a model"),
    }

    // An input past the limit is named as the input, not as a layer.
    let limit = PlanOptions { binding_limit: Some(700), ..PlanOptions::default() };
    match Prepared::with_options(&device, &grown, &synthetic::weights(&graph, 0), 1, limit) {
        Err(e @ RuntimeError::BindingLimit { .. }) => {
            assert!(e.to_string().contains("the model's input ([3, 8, 8] per input) needs 768 bytes"), "{e}");
            assert!(e.span().is_some(), "the error points at the spec's input");
        }
        Err(e) => panic!("expected BindingLimit, got {e:?}"),
        Ok(_) => panic!("expected BindingLimit, got a model"),
    }

    let prepared = Prepared::new(&device, &plan, &weights, 1).expect("builds");
    match prepared.run(&synthetic::input(0, vec![1, 3, 4, 4])) {
        Err(RuntimeError::InputShape { item, found }) => assert_eq!((item, found), (vec![3, 8, 8], vec![1, 3, 4, 4])),
        other => panic!("expected InputShape, got {other:?}"),
    }
}

#[test]
fn an_unknown_adapter_names_what_was_asked_for_and_found() {
    match gpu::open(Some("no-such-adapter-anywhere")) {
        Err(e @ RuntimeError::NoAdapter { .. }) => {
            let RuntimeError::NoAdapter { requested, found } = &e else { unreachable!() };
            assert_eq!(requested.as_deref(), Some("no-such-adapter-anywhere"));
            assert!(!found.is_empty(), "the suite needs an adapter (lavapipe in CI)");
            let message = e.to_string();
            assert!(
                message.contains("matching `no-such-adapter-anywhere`") && message.contains(&found[0]),
                "{message}"
            );
        }
        Err(e) => panic!("expected NoAdapter, got {e:?}"),
        Ok(_) => panic!("an adapter matched a made-up name"),
    }
}
