//! The code generator: a snapshot of the whole generated module for a plain model, inline snapshots
//! of one generated layer per kind of op for a branching one, every zoo spec's module parsing as
//! Rust, and `cnnc build` writing the same text as the library call.

use std::path::{Path, PathBuf};

use cnnc::compiler::codegen;
use cnnc::Expanded;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The generated module for `specs/{name}.yaml`.
fn generate(name: &str) -> String {
    let path = root().join("specs").join(format!("{name}.yaml"));
    let compilation = cnnc::compile_path(&path).expect("readable spec");
    match compilation.result {
        Ok(Expanded::Model(graph)) => {
            codegen::generate(&cnnc::compiler::Model::new(graph).expect("a valid plan"), &compilation.sources)
        }
        _ => panic!("{name} is not a checked model"),
    }
}

#[test]
fn lenet_module() {
    insta::assert_snapshot!("lenet", generate("lenet"));
}

/// The generated function `pub fn {name}() -> Layer` of a module, with its doc comment, unindented.
fn layer_fn(code: &str, name: &str) -> String {
    let start = code.find(&format!("        pub fn {name}() -> Layer {{")).unwrap_or_else(|| panic!("no `{name}`"));
    let doc = code[..start].rfind("        ///").expect("a doc comment");
    let end = start + code[start..].find("\n        }\n").expect("the function's end") + "\n        }".len();
    code[doc..end].lines().map(|l| l.strip_prefix("        ").unwrap_or(l)).collect::<Vec<_>>().join("\n")
}

static GOOGLENET: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| generate("googlenet"));

/// googlenet's `conv1_conv`: a convolution with its batch-norm folded in and a fused ReLU.
#[test]
fn googlenet_conv1_conv() {
    insta::assert_snapshot!(layer_fn(&GOOGLENET, "conv1_conv"), @r#"
/// `conv1.conv` (basic_conv.yaml:6:15): conv 3→64 7×7 stride 2 + batch-norm + relu → [64, 112, 112]
pub fn conv1_conv() -> Layer {
    Layer {
        path: "conv1.conv".to_string(),
        span: Span::new(FileId::new(2), 224, 277),
        op: Op::Conv2d(Conv2d {
            in_channels: 3,
            out_channels: 64,
            kernel: [7, 7],
            stride: [2, 2],
            padding: Pad4::uniform(3),
            dilation: [1, 1],
            groups: 1,
            bias: false,
        }),
        inputs: Vec::from([Operand::new(INPUT, &[3, 224, 224])]),
        value: CONV1_CONV,
        shape: Shape::of(&[64, 112, 112]),
        slot: Some(SlotId(1)),
        params: Vec::from([
            Param::new("conv1.conv.weight", ParamKind::Weight, &[64, 3, 7, 7]),
        ]),
        batch_norm: Some(FoldedBatchNorm {
            eps: 0.001,
            params: Vec::from([
                Param::new("conv1.bn.weight", ParamKind::Weight, &[64]),
                Param::new("conv1.bn.bias", ParamKind::Bias, &[64]),
                Param::new(
                    "conv1.bn.running_mean",
                    ParamKind::RunningMean,
                    &[64],
                ),
                Param::new("conv1.bn.running_var", ParamKind::RunningVar, &[64]),
            ]),
        }),
        residual: false,
        activation: Some(Activation::Relu),
        into_concat: None,
    }
}
"#);
}
/// googlenet's `maxpool1`: max pooling with ceil_mode.
#[test]
fn googlenet_maxpool1() {
    insta::assert_snapshot!(layer_fn(&GOOGLENET, "maxpool1"), @r#"
/// `maxpool1` (googlenet.yaml:47:19): maxpool → [64, 56, 56]
pub fn maxpool1() -> Layer {
    Layer {
        path: "maxpool1".to_string(),
        span: Span::new(FileId::new(1), 1652, 1688),
        op: Op::MaxPool(Pool2d {
            kernel: [3, 3],
            stride: [2, 2],
            padding: Pad4::uniform(0),
            dilation: [1, 1],
            ceil_mode: true,
            count_include_pad: false,
        }),
        inputs: Vec::from([Operand::new(CONV1_CONV, &[64, 112, 112])]),
        value: MAXPOOL1,
        shape: Shape::of(&[64, 56, 56]),
        slot: Some(SlotId(0)),
        params: Vec::new(),
        batch_norm: None,
        residual: false,
        activation: None,
        into_concat: None,
    }
}
"#);
}
/// googlenet's `inception3a_branch1_conv`: a convolution writing its slice of a concat in place.
#[test]
fn googlenet_inception3a_branch1_conv() {
    insta::assert_snapshot!(layer_fn(&GOOGLENET, "inception3a_branch1_conv"), @r#"
/// `inception3a.branch1.conv` (basic_conv.yaml:6:15): conv 192→64 1×1 + batch-norm + relu → [64, 28, 28] (into concat channels 0..)
pub fn inception3a_branch1_conv() -> Layer {
    Layer {
        path: "inception3a.branch1.conv".to_string(),
        span: Span::new(FileId::new(2), 224, 277),
        op: Op::Conv2d(Conv2d {
            in_channels: 192,
            out_channels: 64,
            kernel: [1, 1],
            stride: [1, 1],
            padding: Pad4::uniform(0),
            dilation: [1, 1],
            groups: 1,
            bias: false,
        }),
        inputs: Vec::from([Operand::new(MAXPOOL2, &[192, 28, 28])]),
        value: INCEPTION3A_BRANCH1_CONV,
        shape: Shape::of(&[64, 28, 28]),
        slot: Some(SlotId(0)),
        params: Vec::from([
            Param::new(
                "inception3a.branch1.conv.weight",
                ParamKind::Weight,
                &[64, 192, 1, 1],
            ),
        ]),
        batch_norm: Some(FoldedBatchNorm {
            eps: 0.001,
            params: Vec::from([
                Param::new(
                    "inception3a.branch1.bn.weight",
                    ParamKind::Weight,
                    &[64],
                ),
                Param::new(
                    "inception3a.branch1.bn.bias",
                    ParamKind::Bias,
                    &[64],
                ),
                Param::new(
                    "inception3a.branch1.bn.running_mean",
                    ParamKind::RunningMean,
                    &[64],
                ),
                Param::new(
                    "inception3a.branch1.bn.running_var",
                    ParamKind::RunningVar,
                    &[64],
                ),
            ]),
        }),
        residual: false,
        activation: Some(Activation::Relu),
        into_concat: Some(ConcatTarget {
            channels: 256,
            offset: 0,
        }),
    }
}
"#);
}
/// googlenet's `inception3a_branch4_0`: a pooling branch writing its own buffer.
#[test]
fn googlenet_inception3a_branch4_0() {
    insta::assert_snapshot!(layer_fn(&GOOGLENET, "inception3a_branch4_0"), @r#"
/// `inception3a.branch4.0` (googlenet.yaml:16:15): maxpool → [192, 28, 28]
pub fn inception3a_branch4_0() -> Layer {
    Layer {
        path: "inception3a.branch4.0".to_string(),
        span: Span::new(FileId::new(1), 530, 573),
        op: Op::MaxPool(Pool2d {
            kernel: [3, 3],
            stride: [1, 1],
            padding: Pad4::uniform(1),
            dilation: [1, 1],
            ceil_mode: true,
            count_include_pad: false,
        }),
        inputs: Vec::from([Operand::new(MAXPOOL2, &[192, 28, 28])]),
        value: INCEPTION3A_BRANCH4_0,
        shape: Shape::of(&[192, 28, 28]),
        slot: Some(SlotId(2)),
        params: Vec::new(),
        batch_norm: None,
        residual: false,
        activation: None,
        into_concat: None,
    }
}
"#);
}
/// googlenet's `inception3a`: the concat, which copies only what was not written in place.
#[test]
fn googlenet_inception3a() {
    insta::assert_snapshot!(layer_fn(&GOOGLENET, "inception3a"), @r#"
/// `inception3a` (googlenet.yaml:7:7): concat → [256, 28, 28]
pub fn inception3a() -> Layer {
    Layer {
        path: "inception3a".to_string(),
        span: Span::new(FileId::new(1), 251, 689),
        op: Op::Concat,
        inputs: Vec::from([
            Operand::in_place(INCEPTION3A_BRANCH1_CONV, &[64, 28, 28]),
            Operand::in_place(INCEPTION3A_BRANCH2_1_CONV, &[128, 28, 28]),
            Operand::in_place(INCEPTION3A_BRANCH3_1_CONV, &[32, 28, 28]),
            Operand::in_place(INCEPTION3A_BRANCH4_1_CONV, &[32, 28, 28]),
        ]),
        value: INCEPTION3A,
        shape: Shape::of(&[256, 28, 28]),
        slot: Some(SlotId(0)),
        params: Vec::new(),
        batch_norm: None,
        residual: false,
        activation: None,
        into_concat: None,
    }
}
"#);
}
/// googlenet's `avgpool`: adaptive average pooling.
#[test]
fn googlenet_avgpool() {
    insta::assert_snapshot!(layer_fn(&GOOGLENET, "avgpool"), @r#"
/// `avgpool` (googlenet.yaml:72:18): adaptive_avgpool → [1024, 1, 1]
pub fn avgpool() -> Layer {
    Layer {
        path: "avgpool".to_string(),
        span: Span::new(FileId::new(1), 2786, 2805),
        op: Op::AdaptiveAvgPool {
            size: [1, 1],
        },
        inputs: Vec::from([Operand::new(INCEPTION5B, &[1024, 7, 7])]),
        value: AVGPOOL,
        shape: Shape::of(&[1024, 1, 1]),
        slot: Some(SlotId(0)),
        params: Vec::new(),
        batch_norm: None,
        residual: false,
        activation: None,
        into_concat: None,
    }
}
"#);
}
/// googlenet's `layer_19`: a flatten: no slot, it reads its input's buffer.
#[test]
fn googlenet_layer_19() {
    insta::assert_snapshot!(layer_fn(&GOOGLENET, "layer_19"), @r#"
/// `19` (googlenet.yaml:73:9): flatten → [1024]
pub fn layer_19() -> Layer {
    Layer {
        path: "19".to_string(),
        span: Span::new(FileId::new(1), 2814, 2821),
        op: Op::Flatten,
        inputs: Vec::from([Operand::new(AVGPOOL, &[1024, 1, 1])]),
        value: LAYER_19,
        shape: Shape::of(&[1024]),
        slot: None,
        params: Vec::new(),
        batch_norm: None,
        residual: false,
        activation: None,
        into_concat: None,
    }
}
"#);
}
/// googlenet's `fc`: the classifier.
#[test]
fn googlenet_fc() {
    insta::assert_snapshot!(layer_fn(&GOOGLENET, "fc"), @r#"
/// `fc` (googlenet.yaml:75:13): linear 1024→1000 → [1000]
pub fn fc() -> Layer {
    Layer {
        path: "fc".to_string(),
        span: Span::new(FileId::new(1), 2868, 2887),
        op: Op::Linear {
            in_features: 1024,
            out_features: 1000,
            bias: true,
        },
        inputs: Vec::from([Operand::new(LAYER_19, &[1024])]),
        value: FC,
        shape: Shape::of(&[1000]),
        slot: Some(SlotId(2)),
        params: Vec::from([
            Param::new("fc.weight", ParamKind::Weight, &[1000, 1024]),
            Param::new("fc.bias", ParamKind::Bias, &[1000]),
        ]),
        batch_norm: None,
        residual: false,
        activation: None,
        into_concat: None,
    }
}
"#);
}

#[test]
fn every_zoo_module_parses_as_rust() {
    let mut failures = Vec::new();
    let mut count = 0;
    for entry in std::fs::read_dir(root().join("specs")).expect("specs folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let code = generate(&name);
        count += 1;
        if let Err(e) = syn::parse_file(&code) {
            failures.push(format!("{name}: {e}"));
        }
        assert!(code.starts_with("// @generated by cnnc"), "{name}: no generated marker");
    }
    assert!(count >= 47, "only {count} zoo specs found");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn cli_writes_the_library_output() {
    let out = std::env::temp_dir().join(format!("cnnc-build-{}.rs", std::process::id()));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(["build", "specs/lenet.yaml", "-o"])
        .arg(&out)
        .current_dir(root())
        .status()
        .expect("cnnc runs");
    assert!(status.success());
    let written = std::fs::read_to_string(&out).expect("module written");
    std::fs::remove_file(&out).ok();
    assert_eq!(written, generate("lenet"));
}

#[test]
fn modules_become_structs_shared_by_their_instances() {
    let code = generate("resnet50");
    assert_eq!(code.matches("pub struct Bottleneck {").count(), 1);
    assert_eq!(code.matches(": Bottleneck,").count(), 16, "one field per block");
    // Only some blocks have a projection shortcut.
    assert!(code.contains("pub downsample_0: Option<rt::gpu::GpuLayer>,"));
    assert!(code.contains("downsample_0: None,") && code.contains("downsample_0: Some(layer1_0_downsample_0),"));
    let code = generate("googlenet");
    assert_eq!(code.matches(": Inception,").count(), 9);
    assert!(code.contains("pub struct BasicConv {"));
}
