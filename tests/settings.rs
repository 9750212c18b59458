//! `--set NAME=VALUE`: a model's `let` bindings and the parameters of the module its body calls
//! take values from the command line, checked like the spec's own text.

use std::path::Path;
use std::process::Command;

use cnnc::compiler::compile_model_path_with;

fn set(spec: &str, settings: &[(&str, &str)]) -> Result<cnnc::compiler::Model, Vec<cnnc::Diagnostic>> {
    let settings: Vec<(String, String)> = settings.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    compile_model_path_with(Path::new(spec), &settings).unwrap().1
}

fn classes(model: &cnnc::compiler::Model) -> u64 {
    model.graph.node(model.graph.output).shape.elements()
}

#[test]
fn a_zoo_models_head_and_lets_are_set_from_the_command_line() {
    for spec in ["specs/alexnet.yaml", "specs/mobilenet_v2.yaml", "specs/resnet18.yaml", "specs/vgg11.yaml"] {
        let model = set(spec, &[("num_classes", "2")]).unwrap_or_else(|d| panic!("{spec}: {d:?}"));
        assert_eq!(classes(&model), 2, "{spec}");
        assert!(model.graph.meta.labels.is_none(), "{spec}: ImageNet's labels no longer fit");
        let names: Vec<String> = model.graph.weight_table().params.iter().map(|p| p.name.clone()).collect();
        let plain = set(spec, &[]).unwrap();
        let plain: Vec<String> = plain.graph.weight_table().params.iter().map(|p| p.name.clone()).collect();
        assert_eq!(names, plain, "{spec}: the state_dict names stay torchvision's");
    }
    // A `let` binding (Inception v3 declares num_classes and transform_input as lets).
    let model = set("specs/inception_v3.yaml", &[("num_classes", "3"), ("transform_input", "true")]).unwrap();
    assert_eq!(classes(&model), 3);
    let plain = set("specs/inception_v3.yaml", &[]).unwrap();
    assert_eq!(model.graph.len(), plain.graph.len() + 1, "transform_input adds its affine layer");
    // Dropout given positionally or not, the setting wins.
    let model = set("specs/alexnet.yaml", &[("dropout", "0.25")]).unwrap();
    assert!(format!("{:?}", model.graph.nodes().map(|(_, n)| &n.op).collect::<Vec<_>>()).contains("0.25"));
}

#[test]
fn settings_that_do_not_fit_are_located_diagnostics() {
    let codes = |r: Result<cnnc::compiler::Model, Vec<cnnc::Diagnostic>>| -> Vec<String> {
        r.expect_err("refused").iter().map(|d| d.code.to_string()).collect()
    };
    assert_eq!(codes(set("specs/mobilenet_v2.yaml", &[("num_clases", "2")])), ["cnnc::args::set"]);
    assert_eq!(codes(set("specs/mobilenet_v2.yaml", &[("num_classes", "2.5")])), ["cnnc::args::type"]);
    assert_eq!(codes(set("specs/lenet.yaml", &[("width", "2")])), ["cnnc::args::set"]);
    assert!(!codes(set("specs/mobilenet_v2.yaml", &[("num_classes", "2 +")])).is_empty());
    let o = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(["run", "specs/mobilenet_v2.yaml", "--seed", "1", "--random-input", "--set", "num_clases=2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("--set:1:1") && text.contains("`num_classes` (of `mobilenet_v2`)"), "{text}");
    let o = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(["run", "specs/mobilenet_v2.yaml", "--seed", "1", "--random-input", "--set", "num_classes"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not NAME=VALUE"));
}
