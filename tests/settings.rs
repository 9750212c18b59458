//! `--set NAME=VALUE`: a model's `let` bindings and the parameters of the module its body calls
//! take values from the command line, checked like the spec's own text.

use std::path::Path;
use std::process::Command;

use cnnc::compiler::compile_model_path_with;
use cnnc::compiler::graph::Resize;

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

/// A fine-tuning spec is three lines: the library, a name, the zoo module with a new head. The
/// input and preprocessing come from the module; its weights keep torchvision's state_dict names
/// (`tests/reference/torchvision_facts.json`), the last layer two-way. The DSL spelling is the same
/// model.
#[test]
fn a_fine_tuning_spec_is_three_lines() {
    let dir = std::env::temp_dir().join(format!("cnnc-three-lines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/lib/alexnet.yaml");
    let spec = dir.join("ants_bees.yaml");
    std::fs::write(&spec, format!("import: {}\nmodel: ants_bees\nbody: alexnet(num_classes=2)\n", lib.display()))
        .unwrap();
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
    // Input and preprocessing are the zoo spec's (torchvision's AlexNet_Weights transforms).
    let zoo = set("specs/alexnet.yaml", &[("num_classes", "2")]).unwrap().graph;
    assert_eq!(model.graph.node(model.graph.input).shape, zoo.node(zoo.input).shape);
    let pre = |g: &cnnc::compiler::graph::Graph| (g.meta.resize, g.meta.crop, g.meta.mean.clone(), g.meta.std.clone());
    assert_eq!(pre(&model.graph), pre(&zoo));
    let (resize, crop) = (Some(Resize::ShorterSide(256)), Some([224, 224]));
    assert_eq!(pre(&zoo), (resize, crop, Some(vec![0.485, 0.456, 0.406]), Some(vec![0.229, 0.224, 0.225])));
    let dsl = dir.join("ants_bees.cnn");
    let lib = lib.with_extension("cnn");
    let lib = if lib.exists() { lib } else { lib.with_extension("yaml") };
    std::fs::write(&dsl, format!("import {:?}\nmodel ants_bees {{ body alexnet(num_classes=2) }}\n", lib.display()))
        .unwrap();
    let spelled = set(dsl.to_str().unwrap(), &[]).unwrap_or_else(|d| panic!("{d:?}")).graph;
    let layers = |g: &cnnc::compiler::graph::Graph| -> Vec<String> {
        g.nodes().map(|(_, n)| format!("{} {:?} {:?}", n.path, n.op, n.shape)).collect()
    };
    assert_eq!(layers(&spelled), layers(&model.graph));
    assert_eq!(pre(&spelled), pre(&zoo));
    std::fs::remove_dir_all(dir).ok();
}

/// Every library module that declares an input and preprocessing declares the ones of the zoo
/// specs that call it (torchvision's weights' transforms), and such a zoo spec without its own
/// `input:` and `preprocess:` compiles to the same model. A model's own `input:` wins over the
/// module's, and takes none of the module's preprocessing with it.
#[test]
fn zoo_modules_declare_the_input_and_preprocessing_of_their_weights() {
    let dir = std::env::temp_dir().join(format!("cnnc-module-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut declared = 0;
    for entry in std::fs::read_dir("specs").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(import) = text.lines().find_map(|l| l.strip_prefix("import: ")) else { continue };
        let stripped: String = text
            .lines()
            .filter(|l| !l.starts_with("input:") && !l.starts_with("preprocess:") && !l.starts_with('#'))
            .map(|l| match l.strip_prefix("import: ") {
                Some(_) => {
                    format!("import: {}", Path::new(env!("CARGO_MANIFEST_DIR")).join("specs").join(import).display())
                }
                None => l.replace("labels: labels/", &format!("labels: {}/specs/labels/", env!("CARGO_MANIFEST_DIR"))),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let copy = dir.join(path.file_name().unwrap());
        std::fs::write(&copy, stripped).unwrap();
        let zoo = set(path.to_str().unwrap(), &[]).unwrap().graph;
        let Ok(bare) = set(copy.to_str().unwrap(), &[]) else { continue };
        declared += 1;
        let bare = bare.graph;
        let facts = |g: &cnnc::compiler::graph::Graph| {
            (
                g.node(g.input).shape.clone(),
                g.meta.resize,
                g.meta.crop,
                g.meta.mean.clone(),
                g.meta.std.clone(),
                g.len(),
            )
        };
        assert_eq!(facts(&bare), facts(&zoo), "{}", path.display());
    }
    // All but EfficientNet (whose variants differ in input size) declare theirs.
    assert!(declared >= 38, "{declared} zoo specs took their module's input");
    // The model's own input wins, without the module's preprocessing (AlexNet at 256 pixels, whose
    // module crops to 224).
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/lib/alexnet.yaml");
    let spec = dir.join("own_input.yaml");
    std::fs::write(&spec, format!("import: {}\nmodel: m\ninput: [3, 256, 256]\nbody: alexnet()\n", lib.display()))
        .unwrap();
    let own = set(spec.to_str().unwrap(), &[]).unwrap().graph;
    assert_eq!(own.node(own.input).shape.dims(), [3, 256, 256]);
    assert_eq!((own.meta.resize, own.meta.crop), (None, None));
    // A module that declares no input: the error says so, at the model and at the module.
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/lib/efficientnet.yaml");
    let spec = dir.join("no_input.yaml");
    let text = format!(
        "import: {}\nmodel: m\nbody: efficientnet(width_mult=1.0, depth_mult=1.0, dropout=0.2)\n",
        lib.display()
    );
    std::fs::write(&spec, text).unwrap();
    let diags = set(spec.to_str().unwrap(), &[]).expect_err("no input");
    assert_eq!(diags.len(), 1);
    assert!(diags[0].message.contains("has no `input:`"), "{:?}", diags[0]);
    assert!(format!("{:?}", diags[0]).contains("module `efficientnet` declares no input"), "{:?}", diags[0]);
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

/// `preprocess` takes the sizes and numbers torchvision's transforms take: `resize: [H, W]`
/// (`Resize((H, W))`), `crop: [H, W]` (`CenterCrop((H, W))`) and one mean or std for every channel
/// (`Normalize(0.5, 0.5)`), in both spellings.
#[test]
fn preprocessing_takes_torchvisions_forms() {
    let dir = std::env::temp_dir().join(format!("cnnc-preprocess-forms-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let yaml = dir.join("m.yaml");
    std::fs::write(
        &yaml,
        "model: m\ninput: [3, 20, 36]\npreprocess: {resize: [24, 40], crop: [20, 36], mean: 0.5, std: 0.25}\n\
         body:\n  - flatten\n  - linear(10)\n",
    )
    .unwrap();
    let dsl = dir.join("m.cnn");
    std::fs::write(
        &dsl,
        "model m {\n  input [3, 20, 36]\n  preprocess { resize: [24, 40], crop: [20, 36], mean: 0.5, std: 0.25 }\n  \
         body [\n    flatten\n    linear(10)\n  ]\n}\n",
    )
    .unwrap();
    for spec in [&yaml, &dsl] {
        let meta = set(spec.to_str().unwrap(), &[]).unwrap_or_else(|d| panic!("{}: {d:?}", spec.display())).graph.meta;
        assert_eq!(meta.resize, Some(Resize::Exact([24, 40])));
        assert_eq!(meta.crop, Some([20, 36]));
        assert_eq!(meta.normalisation(3), Some((vec![0.5; 3], vec![0.25; 3])));
    }
    std::fs::remove_dir_all(dir).ok();
}
