//! The `cnnc` command line as a user runs it: output, exit codes, and every verb's `--help`.

use std::process::{Command, Output};

fn cnnc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnc")).args(args).output().expect("cnnc runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_prints_ok_and_a_summary_line_per_file() {
    let o = cnnc(&["check", "specs/lenet.yaml", "specs/resnet50.cnn"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("ok  specs/lenet.yaml: model `lenet`, [3, 32, 32] → [10], 62,006 params"), "{out}");
    assert!(out.contains("ok  specs/resnet50.cnn: model `resnet50`"), "{out}");
}

/// `check` and `summary` take `--set` as `train` does, so a changed head can be looked at first.
#[test]
fn check_and_summary_take_settings() {
    let o = cnnc(&["check", "specs/alexnet.yaml", "specs/squeezenet1_1.yaml", "--set", "num_classes=2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("ok  specs/alexnet.yaml: model `alexnet`, [3, 224, 224] → [2]"), "{}", stdout(&o));
    assert!(stdout(&o).contains("specs/squeezenet1_1.yaml: model `squeezenet1_1`, [3, 224, 224] → [2]"));
    let o = cnnc(&["summary", "specs/googlenet.yaml", "--json", "--set", "num_classes=3"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["output"], serde_json::json!([3]), "{v}");
    let o = cnnc(&["check", "specs/lenet.yaml", "--set", "nope=2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("settable here: `num_classes`"), "{}", stderr(&o));
}

#[test]
fn spec_errors_exit_1_and_usage_errors_exit_2() {
    let o = cnnc(&["check", "tests/bad/lenet_fc1_in_features.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("tests/bad/lenet_fc1_in_features.yaml:12:25"), "{}", stderr(&o));
    assert_eq!(cnnc(&["check", "no/such/spec.yaml"]).status.code(), Some(2));
    assert_eq!(cnnc(&["summary", "specs/lenet.yaml", "--batch", "0"]).status.code(), Some(2));
    assert_eq!(cnnc(&["frobnicate"]).status.code(), Some(2));
    // Training options out of range are usage errors too, before any data is read.
    for bad in [["--batch", "0"], ["--epochs", "0"], ["--lr", "inf"], ["--lr", "nan"], ["--log-every", "0"]] {
        let o = cnnc(
            &[&["train", "specs/lenet.yaml", "--data", "idx:/no/such/folder", "--out", "/tmp/unused"][..], &bad]
                .concat(),
        );
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(bad[0]), "{bad:?}: {}", stderr(&o));
    }
    // A call cut in two by a YAML flow mapping's comma is explained.
    let spec = spec_file("flow_let.yaml", "model: m\ninput: [3, 8, 8]\nlet: {x: max(10, 0)}\nbody:\n  - relu\n");
    let o = cnnc(&["check", spec.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("`0)` is not valid as a binding name") && stderr(&o).contains("a comma ends a value"));
}

#[test]
fn summary_json_has_the_documented_fields() {
    let o = cnnc(&["summary", "specs/lenet.yaml", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["name"], "lenet");
    assert_eq!(v["input"], serde_json::json!([3, 32, 32]));
    assert_eq!(v["output"], serde_json::json!([10]));
    assert_eq!(v["params"], 62006);
    assert_eq!(v["macs"], 651720);
    assert_eq!(v["layers"].as_array().unwrap().len(), 12);
    assert_eq!(v["weights"]["fc1.weight"], serde_json::json!([120, 400]));
    assert_eq!(v["weights"].as_object().unwrap().len(), 10);
}

#[test]
fn summary_table_scales_activation_memory_with_the_batch() {
    let one = stdout(&cnnc(&["summary", "specs/resnet18.yaml"]));
    let eight = stdout(&cnnc(&["summary", "specs/resnet18.yaml", "--batch", "8"]));
    assert!(one.contains("layer4.1.conv2"), "{one}");
    assert!(one.contains("Total params:            11,689,512"), "{one}");
    let peak = |s: &str| -> f64 {
        let line = s.lines().find(|l| l.starts_with("Peak activation memory")).unwrap();
        line.split_whitespace().nth(3).unwrap().parse().unwrap()
    };
    assert!((peak(&eight) / peak(&one) - 8.0).abs() < 0.01);
    let planned = |s: &str| -> f64 {
        let line = s.lines().find(|l| l.starts_with("Planned activations")).unwrap();
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    assert!((planned(&eight) / planned(&one) - 8.0).abs() < 0.01);
}

#[test]
fn fmt_converts_between_spellings() {
    let dsl = cnnc(&["fmt", "specs/lenet.yaml", "--to", "dsl"]);
    assert_eq!(dsl.status.code(), Some(0));
    assert!(stdout(&dsl).contains("model lenet {"));
    assert!(stdout(&dsl).contains("fc1: linear(120, in=400)"));
    let yaml = cnnc(&["fmt", "specs/lenet.cnn", "--to", "yaml"]);
    assert!(stdout(&yaml).contains("- fc1: linear(120, in=400)"), "{}", stdout(&yaml));
}

#[test]
fn graph_draws_every_node_and_edge() {
    let o = cnnc(&["graph", "specs/squeezenet1_1.yaml"]);
    assert_eq!(o.status.code(), Some(0));
    let dot = stdout(&o);
    assert!(dot.starts_with("digraph \"squeezenet1_1\""));
    // 66 layers and the input; each fire module's concat has two inputs.
    assert_eq!(dot.lines().filter(|l| l.contains(" [label=")).count(), 67);
    assert_eq!(dot.lines().filter(|l| l.contains(" -> ")).count(), 66 + 8);
    let svg = stdout(&cnnc(&["graph", "specs/lenet.yaml", "--format", "svg"]));
    assert!(svg.contains("<svg") && svg.contains("fc3"), "{svg}");

    // The SVG: a box and a path label per node, one arrow per edge, an opaque background, the
    // main path in one column and a fire module's branches left to right in spec order.
    let svg = stdout(&cnnc(&["graph", "specs/squeezenet1_1.yaml", "--format", "svg"]));
    assert_eq!(svg.matches("<rect x=").count(), 67);
    assert_eq!(svg.matches("marker-end=").count(), 66 + 8);
    assert!(svg.contains("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"));
    let x = |path: &str| -> f64 {
        let line = svg.lines().find(|l| l.ends_with(&format!(">{path}</text>"))).unwrap_or_else(|| panic!("{path}"));
        line.split("x=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().parse().unwrap()
    };
    let main = x("features.0");
    for path in ["features.3.squeeze", "features.3.expand1x1", "features.3", "features.12.expand1x1", "classifier.1"] {
        assert_eq!(x(path), main, "{path} is on the main path's column");
    }
    assert!(x("features.3.expand3x3") > main, "the second branch is right of the first");
}

#[test]
fn every_verb_explains_itself_with_an_example() {
    let verbs = [
        "check",
        "summary",
        "fmt",
        "graph",
        "run",
        "devices",
        "conformance",
        "bench",
        "build",
        "grad",
        "train",
        "eval",
    ];
    for verb in verbs {
        let o = cnnc(&[verb, "--help"]);
        assert_eq!(o.status.code(), Some(0));
        assert!(stdout(&o).contains("Example: cnnc"), "{verb} --help has no example");
    }
}

#[test]
fn bench_reports_the_documented_figures_and_every_layer() {
    let out = cnnc(&["bench", "specs/lenet.yaml", "--iters", "2", "--warmup", "0", "--layers", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bench --json prints JSON");
    for key in
        ["images_per_s", "latency_ms_median", "latency_ms_p25", "latency_ms_p75", "first_result_s", "peak_memory_bytes"]
    {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    assert!(v["adapter"].as_str().is_some_and(|a| !a.is_empty()), "{v}");
    // One timed entry per dispatch (lenet: two convolutions with their pools, three linear layers).
    let layers = v["layers"].as_array().expect("layers");
    assert_eq!(layers.len() as u64, v["dispatches"].as_u64().unwrap(), "{v}");
    assert!(layers.iter().all(|l| l["ms"].as_f64().is_some_and(|ms| ms >= 0.0)), "{v}");
    assert!(layers.iter().any(|l| l["layer"] == "fc3"), "{v}");
}

/// On a CPU adapter (lavapipe), cnnc runs Mesa's driver on twice as many threads as cores unless
/// `LP_NUM_THREADS` says otherwise, and reports the count; other adapters report none.
#[test]
fn bench_reports_the_cpu_drivers_threads() {
    let threads = |set: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cnnc"));
        command.args(["bench", "specs/lenet.yaml", "--iters", "1", "--warmup", "0", "--json"]);
        match set {
            Some(n) => command.env("LP_NUM_THREADS", n),
            None => command.env_remove("LP_NUM_THREADS"),
        };
        let out = command.output().expect("cnnc runs");
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        (v["adapter"].as_str().unwrap_or_default().contains("llvmpipe"), v["cpu_driver_threads"].clone())
    };
    let (cpu, default) = threads(None);
    let (_, chosen) = threads(Some("3"));
    if cpu {
        let cores = std::thread::available_parallelism().unwrap().get() as u64;
        assert_eq!(default.as_u64(), Some((2 * cores).min(32)), "{default}");
        assert_eq!(chosen.as_u64(), Some(3), "the user's setting is kept: {chosen}");
    } else {
        assert!(default.is_null() && chosen.is_null(), "{default} {chosen}");
    }
}

#[test]
fn bench_train_times_whole_training_steps() {
    let out =
        cnnc(&["bench", "specs/lenet.yaml", "--train", "--batch", "4", "--iters", "2", "--warmup", "1", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bench --train --json prints JSON");
    assert_eq!(v["mode"], "train");
    for key in ["images_per_s", "back_to_back_images_per_s", "step_ms_median", "first_step_s"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    // The spread, in order: min ≤ first quartile ≤ median ≤ third quartile ≤ max.
    let spread = ["step_ms_min", "step_ms_p25", "step_ms_median", "step_ms_p75", "step_ms_max"]
        .map(|key| v[key].as_f64().unwrap_or_else(|| panic!("{key}: {v}")));
    assert!(spread.windows(2).all(|w| w[0] <= w[1]), "{v}");
    assert!(v.get("dispatches").is_none(), "no profile without --layers: {v}");
}

#[test]
fn bench_train_layers_times_each_dispatch_of_a_step() {
    let args = ["bench", "specs/lenet.yaml", "--train", "--batch", "2", "--iters", "1", "--warmup", "0", "--layers"];
    let out = cnnc(&[&args[..], &["--json"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let dispatches = v["dispatches"].as_array().expect("a profile");
    let work: Vec<&str> = dispatches.iter().map(|d| d["work"].as_str().unwrap()).collect();
    // Forward first, then the loss, the backward in reverse, the optimizer last.
    assert!(work[0].starts_with("forward cn1"), "{work:?}");
    let loss = work.iter().rposition(|w| *w == "loss").expect("the loss dispatches");
    assert!(work[loss + 1].starts_with("backward fc3"), "{work:?}");
    assert!(work.last().unwrap().starts_with("optimizer "), "{work:?}");
    assert!(dispatches.iter().all(|d| d["ms"].as_f64().is_some_and(|ms| ms >= 0.0)), "{v}");
    let kernels: Vec<&str> = dispatches.iter().map(|d| d["kernel"].as_str().unwrap()).collect();
    // LeNet's convolutions are small enough for the unrolled kernels.
    assert!(kernels.contains(&"conv_grad_weight_unrolled") && kernels.contains(&"optimizer"), "{kernels:?}");
    let table = stdout(&cnnc(&args));
    assert!(table.contains("per kernel") && table.contains("conv_grad_weight"), "{table}");
}

#[test]
fn build_refuses_what_it_cannot_generate_or_must_not_overwrite() {
    let o = cnnc(&["build", "tests/bad/lenet_fc1_in_features.yaml"]);
    assert_eq!(o.status.code(), Some(1), "a spec error");
    assert!(stderr(&o).contains("tests/bad/lenet_fc1_in_features.yaml:12:25"), "{}", stderr(&o));
    let o = cnnc(&["build", "specs/lib/common.yaml"]);
    assert_eq!(o.status.code(), Some(1), "a library");
    assert!(stderr(&o).contains("library"), "{}", stderr(&o));

    let dir = std::env::temp_dir().join(format!("cnnc-build-cli-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let dir_arg = dir.to_str().unwrap();
    let o = cnnc(&["build", "specs/lenet.yaml", "--crate", dir_arg, "--runtime", "/no/such/runtime"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--runtime"), "{}", stderr(&o));
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    let o = cnnc(&["build", "specs/lenet.yaml", "--crate", dir_arg]);
    assert_eq!(o.status.code(), Some(2), "a file cnnc did not write is kept");
    assert!(stderr(&o).contains("not generated by cnnc"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(dir.join("src/main.rs")).unwrap(), "fn main() {}\n");
    std::fs::remove_file(dir.join("src/main.rs")).unwrap();
    assert_eq!(cnnc(&["build", "specs/lenet.yaml", "--crate", dir_arg]).status.code(), Some(0));
    assert_eq!(cnnc(&["build", "specs/lenet.yaml", "--crate", dir_arg]).status.code(), Some(0), "regenerating is fine");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn summary_train_reports_what_a_step_costs() {
    let o = cnnc(&["summary", "specs/lenet.yaml", "--train", "--json", "--batch", "64"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let t = &v["train"];
    assert_eq!(t["trainable_params"], 62006);
    assert_eq!(t["gradient_bytes"], 62006 * 4);
    assert_eq!(t["adam_state_bytes"], 62006 * 8);
    let (peak, saved) =
        (t["peak_step_activation_bytes"].as_u64().unwrap(), t["saved_activation_bytes"].as_u64().unwrap());
    // Everything the forward computes but the flatten (a view) and the first layer's input is saved
    // for the backward pass at least; the peak holds it plus gradients.
    assert!(saved > 64 * 4 * (6 * 28 * 28 * 2) && peak >= saved, "{t}");
    let table = stdout(&cnnc(&["summary", "specs/lenet.yaml", "--train"]));
    assert!(table.contains("Trainable params:      62,006"), "{table}");
    assert!(table.contains("with Adam or AdamW"), "{table}");
}

#[test]
fn conformance_exports_the_backward_cases_the_pytorch_fixture_was_made_from() {
    let path = std::env::temp_dir().join(format!("cnnc-backward-cases-{}.json", std::process::id()));
    let o = cnnc(&["conformance", "--export-backward", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cases: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("JSON");
    std::fs::remove_file(&path).ok();
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("tests/fixtures/backward.json").unwrap()).unwrap();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["cases"].as_array().unwrap().iter().map(|c| format!("{} / {}", c["family"], c["name"])).collect()
    };
    assert_eq!(names(&cases), names(&fixture), "backward.json is stale: see generate_backward.py");
    let first = &cases["cases"][0];
    for field in ["nodes", "output", "input", "labels", "weights", "seed", "step", "label_smoothing"] {
        assert!(!first[field].is_null(), "no {field} in {first}");
    }
    let o = cnnc(&["conformance", "--export-backward", "/no/such/dir/cases.json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot write /no/such/dir/cases.json"), "{}", stderr(&o));
}

#[test]
fn the_quick_start_names_each_bundled_image_correctly() {
    let labels = std::fs::read_to_string("specs/labels/fashion_mnist.txt").unwrap();
    let mut images: Vec<String> = std::fs::read_dir("models/lenet_fashion/images")
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    images.sort();
    for executor in [None, Some("--cpu")] {
        let mut args =
            vec!["run", "specs/lenet_fashion.yaml", "--weights", "models/lenet_fashion/lenet_fashion.safetensors"];
        args.push("--image");
        args.extend(images.iter().map(String::as_str));
        args.extend(["--top", "1"]);
        args.extend(executor);
        let o = cnnc(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2 * images.len(), "{out}");
        for (pair, image) in lines.chunks(2).zip(&images) {
            assert!(pair[0].contains(image.as_str()), "{out}");
            // `0000_ankle_boot.png` is an ankle boot: the predicted label, spelled as a file name.
            let truth = image.rsplit('/').next().unwrap()[5..].trim_end_matches(".png");
            let predicted = labels.lines().find(|l| pair[1].contains(&format!("  {l} ("))).unwrap_or("?");
            assert_eq!(predicted.to_lowercase().replace(['/', ' '], "_"), truth, "{executor:?}: {out}");
        }
    }
}

/// Help and errors say what works: `.pth` checkpoints, images, `.cnn` specs, `--seed` as the other
/// way to give weights; the GPU verbs stay quiet without `XDG_RUNTIME_DIR` and name their adapter.
#[test]
fn help_and_errors_agree_with_what_works() {
    let run_help = stdout(&cnnc(&["run", "--help"]));
    assert!(run_help.contains(".pth") && run_help.contains("--image") && run_help.contains("--seed"), "{run_help}");
    assert!(stdout(&cnnc(&["check", "--help"])).contains(".cnn"));
    let o = cnnc(&["run", "specs/lenet.yaml", "--random-input"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--weights <FILE>") && err.contains("--seed <N>"), "{err}");
    let o = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(["run", "specs/lenet.yaml", "--seed", "0", "--random-input"])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
    assert!(err.contains("ran on "), "{err}");
}

/// A reader that goes away (`| head -1`) ends a verb quietly with the status a shell gives a process
/// ended by SIGPIPE; a write error is one line on stderr and status 1. Never a panic.
#[test]
fn a_closed_pipe_or_a_full_disk_ends_a_verb_without_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    // Both outputs (about 210 and 145 kB) exceed a pipe's 64 KiB buffer, so the verb is still
    // writing when the reader goes away; a small output would finish first and exit 0.
    for args in [&["summary", "--json", "specs/densenet201.yaml"][..], &["build", "specs/resnet18.yaml"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 1];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(141), "{args:?}: {}", stderr(&o));
        assert!(o.stderr.is_empty(), "{args:?}: {}", stderr(&o));
    }
    if let Ok(full) = std::fs::File::create("/dev/full") {
        let o = Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(["summary", "specs/lenet.yaml"])
            .stdout(full)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).starts_with("error: cannot write to standard output"), "{}", stderr(&o));
        // Help is output too, and a failing standard error as well is no panic.
        for args in [&["--help"][..], &["check", "--help"], &["help", "run"], &["--version"]] {
            let full = std::fs::File::create("/dev/full").unwrap();
            let o = Command::new(env!("CARGO_BIN_EXE_cnnc")).args(args).stdout(full).output().unwrap();
            assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
            assert!(stderr(&o).starts_with("error: cannot write to standard output"), "{args:?}: {}", stderr(&o));
        }
        let (out, err) = (std::fs::File::create("/dev/full").unwrap(), std::fs::File::create("/dev/full").unwrap());
        let o = Command::new(env!("CARGO_BIN_EXE_cnnc"))
            .args(["summary", "specs/lenet.yaml"])
            .stdout(out)
            .stderr(err)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "both streams full");
    }
}

/// A spec in a file of its own under the system's temporary directory.
fn spec_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cnnc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A spec's diagnostics go to standard error, and 2,000 of them (about 800 kB) outlast a reader
/// that takes one line (`cnnc check spec 2>&1 | head -1`): the verb ends quietly with status 141.
#[test]
fn a_closed_pipe_on_standard_error_ends_a_verb_without_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    let layers: String = (0..2_000).map(|i| format!("  - rleu{i}\n")).collect();
    let spec = spec_file("many_errors.yaml", &format!("model: m\ninput: [3, 8, 8]\nbody:\n{layers}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(["check", spec.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stderr.take().unwrap().read_exact(&mut first).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(141));
}

/// A mistake past column 65,535 of a line (within the 8 MiB a spec may have) is located by
/// `file:line:column` without an excerpt of the line, in both spellings, instead of the renderer
/// failing on the column.
#[test]
fn a_mistake_far_along_a_long_line_is_located_without_an_excerpt() {
    let padding = " ".repeat(70_000);
    let yaml =
        spec_file("long_line.yaml", &format!("model: m\ninput: [1, 8, 8]\nbody:\n  - conv(1, 1{padding}, bogus=1)\n"));
    let dsl =
        spec_file("long_line.cnn", &format!("model m {{\n  input [1, 8, 8]\n  body [\n    {padding}rleu\n  ]\n}}\n"));
    for (path, at) in [(yaml, ":4:70016: "), (dsl, ":4:70005: ")] {
        let o = cnnc(&["check", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        // The help wraps at 100 columns.
        let text = stderr(&o).split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(text.contains(at) && text.contains("(the line is too long to show)"), "{text}");
        assert!(text.len() < 2_000, "{text}");
    }
}

/// A value over the size limit is refused where it is made, and `CNNC_MAX_VALUE_SIZE` raises the
/// limit: ten times as large a value is made four bindings later.
#[test]
fn a_value_over_the_size_limit_is_refused_and_the_limit_can_be_raised() {
    let spec = "tests/bad/let_doubling.yaml";
    let o = cnnc(&["check", spec]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cnnc::limit::value") && stderr(&o).contains(&format!("[{spec}:25:8]")));
    let o = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(["check", spec])
        .env("CNNC_MAX_VALUE_SIZE", "10000000")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("[{spec}:29:8]")), "{}", stderr(&o));
}

/// Work grows with the spec, not with its square: 100,000 `let` bindings (2 MB of YAML, past the
/// token limit, which `CNNC_MAX_TOKENS` raises) compile in well under the generous bound, where
/// looking up each key among those before it took minutes.
#[test]
fn a_hundred_thousand_bindings_compile_quickly() {
    let lets: String = (0..100_000)
        .map(|i| format!("  v{i}: {}\n", if i == 0 { "1".into() } else { format!("v{} + 1", i - 1) }))
        .collect();
    let spec = spec_file("bindings.yaml", &format!("model: m\ninput: [3, 8, 8]\nlet:\n{lets}body:\n  - relu\n"));
    let started = std::time::Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(["check", spec.to_str().unwrap()])
        .env("CNNC_MAX_TOKENS", "1000000")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(started.elapsed().as_secs_f64() < 30.0, "{:?}", started.elapsed());
}

/// `cnnc check` reads a spec's `train: schedule` and `train: augment` as `cnnc train` would, and
/// refuses each it cannot read with its place in the spec.
#[test]
fn check_refuses_a_schedule_or_augmentation_training_could_not_read() {
    let spec = spec_file(
        "train_strings.yaml",
        "model: t\ninput: [1, 8, 8]\ntrain: {schedule: \"cosin\", augment: \"hflp\"}\nbody:\n  - flatten\n  - linear(2)\n",
    );
    let o = cnnc(&["check", spec.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stderr(&o);
    assert!(text.contains("`train: augment` (") && text.contains("train_strings.yaml:3:37): `hflp`"), "{text}");
    assert!(text.contains("`train: schedule` (") && text.contains("train_strings.yaml:3:19): `cosin`"), "{text}");
    let fixed = spec_file(
        "train_strings_ok.yaml",
        &std::fs::read_to_string(&spec).unwrap().replace("cosin", "cosine").replace("hflp", "hflip"),
    );
    let o = cnnc(&["check", fixed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// `summary` shows what the checker resolved: kernel, stride, the four paddings after "same" (the
/// odd pixel after), dilation, groups, eps and momentum, in the table and in `--json`.
#[test]
fn summary_shows_each_layers_resolved_attributes() {
    let table = stdout(&cnnc(&["summary", "specs/resnet18.yaml"]));
    let row =
        |path: &str| table.lines().find(|l| l.starts_with(&format!("{path} "))).unwrap_or_else(|| panic!("{path}"));
    assert!(row("conv1").ends_with("kernel_size=7 stride=2 padding=3 dilation=1 groups=1"), "{}", row("conv1"));
    assert!(row("bn1").ends_with("eps=0.00001 momentum=0.1"), "{}", row("bn1"));
    assert!(
        row("maxpool").contains("kernel_size=3 stride=2 padding=1 dilation=1 ceil_mode=false"),
        "{}",
        row("maxpool")
    );

    let dir = std::env::temp_dir().join(format!("cnnc-attributes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("same.yaml");
    // 7 wide, kernel 4, stride 2: ⌈7 / 2⌉ = 4 outputs need 3 pixels of padding, 1 before and 2 after.
    std::fs::write(&spec, "model: m\ninput: [3, 7, 7]\nbody:\n  - c: conv(8, 4, stride=2, pad=\"same\")\n").unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&cnnc(&["summary", "--json", spec.to_str().unwrap()]))).unwrap();
    let layer = &json["layers"][0];
    assert_eq!(layer["output"], serde_json::json!([8, 4, 4]));
    assert_eq!(layer["attributes"]["padding"], serde_json::json!([1, 2, 1, 2]), "{layer}");
    assert_eq!(layer["attributes"]["kernel_size"], serde_json::json!([4, 4]));
    assert!(stdout(&cnnc(&["summary", spec.to_str().unwrap()])).contains("padding=[1, 2, 1, 2]"));
    std::fs::remove_dir_all(dir).ok();
}

/// A file is refused by its size in tokens before it is parsed: a list of 3,000,000 numbers (6 MB,
/// under the 8 MiB file limit) took 8 s and 1.5 GB to parse before its value was refused. In both
/// spellings, located where the limit is passed.
#[test]
fn a_file_of_too_many_tokens_is_refused_before_it_is_parsed() {
    let items = "1,".repeat(3_000_000);
    let yaml =
        spec_file("long_list.yaml", &format!("model: m\ninput: [3, 8, 8]\nlet:\n  v: [{items}1]\nbody:\n  - relu\n"));
    let dsl = spec_file(
        "long_list.cnn",
        &format!("model m {{\n  input [3, 8, 8]\n  let v = [{items}1]\n  body [relu]\n}}\n"),
    );
    for (spec, line) in [(yaml, ":4:"), (dsl, ":3:")] {
        let started = std::time::Instant::now();
        let o = cnnc(&["check", spec.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let text = stderr(&o);
        assert!(text.contains("cnnc::limit::tokens") && text.contains("CNNC_MAX_TOKENS="), "{text}");
        assert!(text.contains(line), "located on the list's line: {text}");
        assert!(started.elapsed().as_secs_f64() < 10.0, "{:?}", started.elapsed());
    }
}
