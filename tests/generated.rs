//! Generated model code (`model!`, the same module `cnnc build` writes) against the executor
//! `cnnc run` uses and against PyTorch: for the same weights and input, the generated struct's
//! logits equal the executor's bit for bit, and both match the torchvision fixtures of
//! `tests/pytorch.rs` (relative L2 ≤ 1e-4, same top-1). resnet50 and efficientnet_b0 are generated
//! and compiled too, and checked for their constants.

use std::path::Path;

use cnnc::runtime::gpu::{self, Gpu};
use cnnc::runtime::tensor::relative_l2;
use cnnc::runtime::{synthetic, Tensor};
use cnnc::Expanded;

cnnc::model!("specs/lenet.yaml");
cnnc::model!("specs/resnet18.yaml");
cnnc::model!("specs/mobilenet_v2.yaml");
cnnc::model!("specs/googlenet.yaml");
cnnc::model!("specs/densenet121.yaml");
cnnc::model!("specs/resnet50.yaml");
cnnc::model!("specs/efficientnet_b0.yaml");

fn fixture(name: &str) -> Vec<f64> {
    let bytes = std::fs::read(format!("tests/fixtures/{name}.npy")).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    npyz::NpyFile::new(&bytes[..]).unwrap().into_vec::<f64>().unwrap()
}

fn argmax(row: impl Iterator<Item = f64>) -> usize {
    row.enumerate().fold((0, f64::NEG_INFINITY), |best, (i, v)| if v > best.1 { (i, v) } else { best }).0
}

/// Runs `name` through the executor and through `generated` (a generated model's forward, built
/// from the same weights); compares the two and PyTorch.
fn check(gpu: &Gpu, name: &str, generated: &dyn Fn(&cnnc::runtime::weights::Weights, &Tensor) -> Tensor) {
    let compilation = cnnc::compile_path(Path::new(&format!("specs/{name}.yaml"))).unwrap();
    let Ok(Expanded::Model(graph)) = compilation.result else { panic!("{name} compiles") };
    let weights = synthetic::weights(&graph, 0);
    let mut shape = vec![2];
    shape.extend(graph.node(graph.input).shape.dims());
    let input = synthetic::input(0, shape);
    let plan = cnnc::inference_plan(&graph).unwrap();
    let executor = gpu::Prepared::new(gpu, &plan, &weights, 2).unwrap().run(&input).unwrap();
    let ours = generated(&weights, &input);
    assert_eq!(ours.shape, executor.shape, "{name}: output shape");
    assert!(ours.data == executor.data, "{name}: generated code and the executor differ");
    let want = fixture(name);
    let err = relative_l2(&ours.data, &want);
    let classes = ours.shape[1];
    for b in 0..2 {
        let a = argmax(ours.data[b * classes..][..classes].iter().map(|v| *v as f64));
        let p = argmax(want[b * classes..][..classes].iter().copied());
        assert_eq!(a, p, "{name}: top-1 of item {b}");
    }
    assert!(err <= 1e-4, "{name}: relative L2 error {err:.2e} against PyTorch");
    println!("{name}: identical to the executor; relative L2 error {err:.2e} against PyTorch");
}

macro_rules! generated {
    ($gpu:expr, $model:ty) => {
        &|w: &cnnc::runtime::weights::Weights, x: &Tensor| {
            <$model>::with_weights($gpu, w, x.batch()).unwrap().run(x).unwrap()
        }
    };
}

#[test]
fn generated_models_match_the_executor_and_pytorch() {
    let gpu = gpu::open(None).unwrap_or_else(|e| panic!("{e}"));
    check(&gpu, "lenet", generated!(&gpu, LeNet));
    check(&gpu, "resnet18", generated!(&gpu, ResNet18));
    check(&gpu, "mobilenet_v2", generated!(&gpu, MobileNetV2));
    check(&gpu, "googlenet", generated!(&gpu, GoogLeNet));
    check(&gpu, "densenet121", generated!(&gpu, DenseNet121));
}

#[test]
fn constants_describe_the_model() {
    assert_eq!(LeNet::INPUT_SHAPE, [3, 32, 32]);
    assert_eq!(LeNet::OUTPUT_SHAPE, [10]);
    assert_eq!(LeNet::LABELS.map(<[_]>::len), Some(10));
    // torchvision's counts (tests/reference/torchvision_facts.json).
    assert_eq!(ResNet50::PARAMETERS, 25_557_032);
    assert_eq!(ResNet50::INPUT_SHAPE, [3, 224, 224]);
    assert_eq!(EfficientNetB0::PARAMETERS, 5_288_548);
    assert_eq!(EfficientNetB0::OUTPUT_SHAPE, [1000]);
    assert_eq!(ResNet50::weight_table().params.len(), 267);
}

#[test]
fn bad_batches_and_weights_are_errors() {
    let gpu = gpu::open(None).unwrap_or_else(|e| panic!("{e}"));
    let model = LeNet::random(&gpu, 1, 2).unwrap();
    let err = model.forward(&[0.0; 100]).unwrap_err().to_string();
    assert!(err.contains("3072"), "{err}");
    let out = model.forward(&vec![0.5; 3 * 3072]).unwrap();
    assert_eq!(out.len(), 3 * 10, "three items run in chunks of two");
    assert!(out.iter().all(|v| v.is_finite()));
    let mut weights = synthetic::pytorch_init(&LeNet::weight_table().params, 0);
    weights.insert("fc3.weight".into(), Tensor::new(vec![10, 80], vec![0.0; 800]));
    let err = LeNet::with_weights(&gpu, &weights, 1).err().expect("a misshapen weight is an error").to_string();
    assert!(err.contains("fc3.weight") && err.contains("[10, 84]"), "{err}");
}

/// Every node of `g`: op, inputs, shape, path, parameters and whether it is training-only.
fn nodes(g: &cnnc::Graph) -> Vec<String> {
    g.nodes()
        .map(|(id, n)| {
            let inputs: Vec<usize> = n.inputs.iter().map(|i| i.index()).collect();
            format!("{} {:?} {inputs:?} {} {:?} {:?} {}", id.index(), n.op, n.shape, n.path, n.params, n.training_only)
        })
        .collect()
}

#[test]
fn generated_graphs_are_the_checked_graphs() {
    let graphs: [(&str, cnnc::Graph); 4] = [
        ("lenet", LeNet::graph()),
        ("googlenet", GoogLeNet::graph()),
        ("densenet121", DenseNet121::graph()),
        ("efficientnet_b0", EfficientNetB0::graph()),
    ];
    for (name, generated) in graphs {
        let compilation = cnnc::compile_path(Path::new(&format!("specs/{name}.yaml"))).unwrap();
        let Ok(Expanded::Model(checked)) = compilation.result else { panic!("{name} compiles") };
        assert_eq!(nodes(&generated), nodes(&checked), "{name}");
        assert_eq!((generated.input, generated.output), (checked.input, checked.output), "{name}");
        let aux = |g: &cnnc::Graph| g.aux_losses.iter().map(|a| (a.node, a.weight)).collect::<Vec<_>>();
        assert_eq!(aux(&generated), aux(&checked), "{name}");
        assert_eq!(format!("{:?}", generated.meta), format!("{:?}", checked.meta), "{name}");
    }
    assert_eq!(GoogLeNet::graph().aux_losses.len(), 2, "GoogLeNet trains its two auxiliary heads");
}

#[test]
fn a_generated_trainer_trains_as_the_compiled_spec_does() {
    use cnnc::runtime::gpu::GpuTrainer;
    use cnnc::runtime::train::{Optimizer, OptimizerState, Schedule, StepOptions};
    let gpu = gpu::open(None).unwrap_or_else(|e| panic!("{e}"));
    let compilation = cnnc::compile_path(Path::new("specs/lenet.yaml")).unwrap();
    let Ok(Expanded::Model(graph)) = compilation.result else { panic!("lenet compiles") };
    let weights = synthetic::pytorch_init(&LeNet::weight_table().params, 3);
    let adam = || OptimizerState::new(Optimizer::adam(), 1e-3, Schedule::Constant);
    let options = StepOptions { seed: 3, ..StepOptions::default() };
    let mut generated = LeNet::trainer(&gpu, &weights, |_| true, adam(), &options, 4).unwrap();
    let mut compiled = GpuTrainer::new(&gpu, &graph, &weights, |_| true, adam(), &options, 4).unwrap();
    let x = synthetic::input(4, vec![4, 3, 32, 32]);
    let labels = [1, 7, 3, 3];
    for _ in 0..3 {
        generated.step(&x, &labels).unwrap();
        compiled.step(&x, &labels).unwrap();
    }
    let losses = generated.losses().unwrap();
    assert_eq!(losses, compiled.losses().unwrap());
    assert!(losses[2] < losses[0], "three steps on one batch lower its loss: {losses:?}");
    let (a, b) = (generated.weights().unwrap(), compiled.weights().unwrap());
    for name in a.names() {
        assert!(a.get(name).unwrap().data == b.get(name).unwrap().data, "{name} differs");
    }
    // Only the head trains: the convolutions keep their weights.
    let mut head = LeNet::trainer(&gpu, &weights, |p| p.name.starts_with("fc"), adam(), &options, 4).unwrap();
    head.step(&x, &labels).unwrap();
    let after = head.weights().unwrap();
    assert!(after.get("cn1.weight").unwrap().data == weights.get("cn1.weight").unwrap().data);
    assert!(after.get("fc3.weight").unwrap().data != weights.get("fc3.weight").unwrap().data);
}
