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
    let specs =
        ["alexnet", "mobilenet_v2", "resnet18", "vgg11", "squeezenet1_0", "squeezenet1_1", "lenet", "googlenet"];
    for spec in specs.map(|name| format!("specs/{name}.yaml")) {
        let spec = spec.as_str();
        let model = set(spec, &[("num_classes", "2")]).unwrap_or_else(|d| panic!("{spec}: {d:?}"));
        assert_eq!(classes(&model), 2, "{spec}");
        assert!(model.graph.meta.labels.is_none(), "{spec}: ImageNet's labels no longer fit");
        let names: Vec<String> = model.graph.weight_table().params.iter().map(|p| p.name.clone()).collect();
        let plain = set(spec, &[]).unwrap();
        let plain: Vec<String> = plain.graph.weight_table().params.iter().map(|p| p.name.clone()).collect();
        assert_eq!(names, plain, "{spec}: the state_dict names stay torchvision's");
    }
    // Two parameters at once (Inception v3's num_classes and transform_input); LeNet, above, sets a `let`.
    let model = set("specs/inception_v3.yaml", &[("num_classes", "3"), ("transform_input", "true")]).unwrap();
    assert_eq!(classes(&model), 3);
    let plain = set("specs/inception_v3.yaml", &[]).unwrap();
    assert_eq!(model.graph.len(), plain.graph.len() + 1, "transform_input adds its affine layer");
    // GoogLeNet and Inception v3 without their auxiliary classifiers (torchvision's
    // `aux_logits=False`): no training branch is left, and the inference graph is the same.
    for spec in ["specs/googlenet.yaml", "specs/inception_v3.yaml"] {
        let with = set(spec, &[]).unwrap().graph;
        let without = set(spec, &[("aux_logits", "false")]).unwrap().graph;
        let aux = |g: &cnnc::compiler::graph::Graph| g.nodes().filter(|(_, n)| n.training_only).count();
        assert!(aux(&with) > 0 && aux(&without) == 0 && without.aux_losses.is_empty(), "{spec}");
        assert_eq!(with.inference_nodes().count(), without.inference_nodes().count(), "{spec}");
    }
    // Dropout given positionally or not, the setting wins.
    let model = set("specs/alexnet.yaml", &[("dropout", "0.25")]).unwrap();
    assert!(format!("{:?}", model.graph.nodes().map(|(_, n)| &n.op).collect::<Vec<_>>()).contains("0.25"));
}

/// A fine-tuning spec is four lines: the library, a name, the input, the zoo module with a new head;
/// its weights keep torchvision's state_dict names (`tests/reference/torchvision_facts.json`), the
/// last layer two-way.
#[test]
fn a_fine_tuning_spec_is_four_lines() {
    let dir = std::env::temp_dir().join(format!("cnnc-four-lines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("ants_bees.yaml");
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/lib/alexnet.yaml");
    let text =
        format!("import: {}\nmodel: ants_bees\ninput: [3, 224, 224]\nbody: alexnet(num_classes=2)\n", lib.display());
    std::fs::write(&spec, text).unwrap();
    let model = set(spec.to_str().unwrap(), &[]).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(classes(&model), 2);
    let facts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("tests/reference/torchvision_facts.json").unwrap()).unwrap();
    let state = facts["alexnet"]["state_dict"].as_object().unwrap();
    let params = model.graph.weight_table().params;
    let mut names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    let mut want: Vec<&str> = state.keys().map(String::as_str).collect();
    names.sort_unstable();
    want.sort_unstable();
    assert_eq!(names, want);
    let head = params.iter().find(|p| p.name == "classifier.6.weight").unwrap();
    assert_eq!(head.shape, [2, 4096]);
    std::fs::remove_dir_all(dir).ok();
}

/// `specs/lib/lenet.yaml`'s module is the zoo's LeNet: `lenet()` compiles to `specs/lenet.yaml`'s
/// graph and `lenet(padding=2)` to `specs/lenet_fashion.yaml`'s (which list their layers, as the
/// book does).
#[test]
fn the_lenet_module_is_the_zoos_lenet() {
    let dir = std::env::temp_dir().join(format!("cnnc-lenet-module-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/lib/lenet.yaml");
    for (zoo, input, call) in
        [("lenet", "[3, 32, 32]", "lenet()"), ("lenet_fashion", "[1, 28, 28]", "lenet(padding=2)")]
    {
        let spec = dir.join(format!("{zoo}.yaml"));
        let text = format!("import: {}\nmodel: {zoo}\ninput: {input}\nbody: {call}\n", lib.display());
        std::fs::write(&spec, text).unwrap();
        let module = set(spec.to_str().unwrap(), &[]).unwrap_or_else(|d| panic!("{d:?}")).graph;
        let listed = set(&format!("specs/{zoo}.yaml"), &[]).unwrap().graph;
        let layers = |g: &cnnc::compiler::graph::Graph| -> Vec<String> {
            g.nodes().map(|(_, n)| format!("{} {:?} {:?}", n.path, n.op, n.shape)).collect()
        };
        assert_eq!(layers(&module), layers(&listed), "{call}");
        let two = set(spec.to_str().unwrap(), &[("num_classes", "2")]).unwrap();
        assert_eq!(classes(&two), 2);
    }
    std::fs::remove_dir_all(dir).ok();
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
