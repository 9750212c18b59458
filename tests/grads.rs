//! Whole-model gradients against PyTorch autograd in float64 (`tests/fixtures/grads.json`, made by
//! `tests/fixtures/generate_grads.py`): one training-mode step at batch 4 with the deterministic
//! weights and input of `runtime/src/synthetic.rs`, batch-norm in training mode, dropout off. The CPU
//! reference must give PyTorch's loss, every trainable parameter's gradient and every updated
//! running statistic within 1e-9 relative (and 1e-13 absolute, see [`FLOOR`]), compared through each tensor's digest (its norm and its dot
//! products with two pseudo-random probes, which any wrong element moves).
//!
//! `CNNC_ZOO=resnet50,vgg11 cargo test --release --test grads` checks other models once their
//! fixtures are generated (`generate_grads.py resnet50 vgg11`).

use std::path::Path;

use cnnc::compiler::ir::autodiff::differentiate;
use cnnc::runtime::synthetic;
use cnnc::runtime::train::{self, StepOptions};

mod common;

use common::{digest, digest_close};

const TOLERANCE: f64 = 1e-9;
/// Absolute floor of a digest's error. A batch-norm shift whose output only reaches the loss through
/// another batch-norm has a gradient of exactly zero in exact arithmetic; in float64 both PyTorch and
/// cnnc leave rounding noise of order 1e-16 there, different in each, which no relative bound fits.
const FLOOR: f64 = 1e-13;

/// Compares one model; returns what disagrees.
fn compare(name: &str, fixture: &serde_json::Value) -> Vec<String> {
    let (_, model) = cnnc::compiler::compile_model_path(Path::new(&format!("specs/{name}.yaml"))).unwrap();
    let model = model.unwrap_or_else(|_| panic!("{name}: spec does not compile"));
    let graph = &model.graph;
    let backward = differentiate(graph, |_| true).unwrap();
    let batch = fixture["batch"].as_u64().unwrap() as usize;
    let labels: Vec<usize> =
        fixture["labels"].as_array().unwrap().iter().map(|l| l.as_u64().unwrap() as usize).collect();
    let mut shape = vec![batch];
    shape.extend(graph.node(graph.input).shape.dims());
    let input = synthetic::input(0, shape).convert();
    let weights = synthetic::weights(graph, 0).convert();
    let options = StepOptions { dropout: false, ..StepOptions::default() };
    let result = train::step(graph, &backward, &weights, &input, &labels, &options).unwrap();
    let mut wrong = Vec::new();
    let want_loss = fixture["loss"].as_f64().unwrap();
    if (result.loss - want_loss).abs() > TOLERANCE * want_loss.abs() {
        wrong.push(format!("{name}: loss {} , PyTorch {want_loss}", result.loss));
    }
    let tensors = fixture["tensors"].as_object().unwrap();
    let ours = result.gradients.names().len() + result.running.names().len();
    if ours != tensors.len() {
        wrong.push(format!("{name}: {ours} gradients and statistics, PyTorch has {}", tensors.len()));
    }
    for (tensor, want) in tensors {
        let Some(t) = result.gradients.get(tensor).or_else(|| result.running.get(tensor)) else {
            wrong.push(format!("{name}: no `{tensor}`"));
            continue;
        };
        let want: Vec<f64> = want.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let got = digest(tensor, &t.data);
        if !digest_close(&got, &want, t.len(), TOLERANCE, FLOOR) {
            wrong.push(format!("{name}: `{tensor}` digest {got:?}, PyTorch {want:?}"));
        }
    }
    println!("{name}: loss {:.9} (PyTorch {want_loss:.9}), {} tensors compared", result.loss, tensors.len());
    wrong
}

#[test]
fn slow_cpu_reference_gives_pytorchs_gradients() {
    let fixtures: serde_json::Value = serde_json::from_str(&common::grads_fixture()).unwrap();
    let chosen: Vec<String> = match std::env::var("CNNC_ZOO") {
        Ok(list) => list.split(',').map(str::to_string).collect(),
        Err(_) => fixtures.as_object().unwrap().keys().cloned().collect(),
    };
    let wrong: Vec<String> = chosen
        .iter()
        .flat_map(|name| {
            let fixture =
                fixtures.get(name).unwrap_or_else(|| panic!("no fixture for {name}: run generate_grads.py {name}"));
            compare(name, fixture)
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A `.npy` int64 vector, as `np.save(path, np.array(labels))` writes it.
fn write_labels(path: &Path, labels: &[i64]) {
    write_npy_labels(path, "<i8", &labels.iter().flat_map(|l| l.to_le_bytes()).collect::<Vec<u8>>(), labels.len());
}

/// A `.npy` vector of `n` labels of NumPy type `descr` whose little-endian bytes are `data`.
fn write_npy_labels(path: &Path, descr: &str, data: &[u8], n: usize) {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({n},), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

/// On a model with batch-norm and int32 labels (`np.int32`), `cnnc grad` also writes each
/// batch-norm's running statistics after the step, equal to the library's reference step.
#[test]
fn cnnc_grad_writes_running_statistics_and_takes_int32_labels() {
    use cnnc::runtime::{npy, weights};
    let dir = std::env::temp_dir().join(format!("cnnc-grad-bn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("bn.yaml");
    let body =
        "body:\n  - c: conv(4, 3, pad=1, bias=false)\n  - bn: batchnorm\n  - relu\n  - flatten\n  - fc: linear(3)\n";
    std::fs::write(&spec, format!("model: bn\ninput: [2, 5, 5]\n{body}")).unwrap();
    let (x, y, out) = (dir.join("x.npy"), dir.join("y.npy"), dir.join("g.safetensors"));
    let input = synthetic::input(1, vec![3, 2, 5, 5]);
    npy::write(&x, &input).unwrap();
    let labels: [i32; 3] = [2, 0, 1];
    write_npy_labels(&y, "<i4", &labels.iter().flat_map(|l| l.to_le_bytes()).collect::<Vec<u8>>(), 3);
    let args = ["grad", spec.to_str().unwrap(), "--seed", "0", "--cpu", "--input", x.to_str().unwrap()];
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(args)
        .args(["--labels", y.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("and 2 running statistics"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let (_, model) = cnnc::compiler::compile_model_path(&spec).unwrap();
    let graph = model.unwrap().graph;
    let backward = differentiate(&graph, |_| true).unwrap();
    let want = train::step(
        &graph,
        &backward,
        &synthetic::weights(&graph, 0).convert(),
        &input.convert(),
        &[2, 0, 1],
        &StepOptions::default(),
    )
    .unwrap();
    let file = weights::read(&out).unwrap();
    for name in ["bn.running_mean", "bn.running_var"] {
        assert_eq!(file.get(name).unwrap(), &want.running.get(name).unwrap().convert::<f32>(), "{name}");
    }
    assert_eq!(file.get("loss").unwrap().data, vec![want.loss as f32]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cnnc_grad_writes_the_reference_step() {
    use cnnc::runtime::{npy, weights};
    use std::process::Command;
    let dir = std::env::temp_dir().join(format!("cnnc-grad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (x, y, out) = (dir.join("x.npy"), dir.join("y.npy"), dir.join("g.safetensors"));
    let input = synthetic::input(0, vec![4, 3, 32, 32]);
    npy::write(&x, &input).unwrap();
    write_labels(&y, &[3, 0, 7, 4]);
    let cnnc = |extra: &[&str]| {
        let mut args = vec!["grad", "specs/lenet.yaml", "--seed", "0", "--input"];
        args.extend([x.to_str().unwrap(), "--labels", y.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        args.extend(extra);
        Command::new(env!("CARGO_BIN_EXE_cnnc")).args(&args).output().unwrap()
    };
    let o = cnnc(&["--cpu", "--dropout", "off"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("wrote 10 gradients and 0 running statistics"));

    // The file holds what the library computes, tensor for tensor.
    let (_, model) = cnnc::compiler::compile_model_path(Path::new("specs/lenet.yaml")).unwrap();
    let graph = model.unwrap().graph;
    let backward = differentiate(&graph, |_| true).unwrap();
    let options = StepOptions { dropout: false, ..StepOptions::default() };
    let want = train::step(
        &graph,
        &backward,
        &synthetic::weights(&graph, 0).convert(),
        &input.convert(),
        &[3, 0, 7, 4],
        &options,
    )
    .unwrap();
    let file = weights::read(&out).unwrap();
    assert_eq!(file.len(), 11);
    assert_eq!(file.get("loss").unwrap().data, vec![want.loss as f32]);
    for p in &backward.trainable {
        assert_eq!(file.get(&p.name).unwrap(), &want.gradients.get(&p.name).unwrap().convert::<f32>(), "{}", p.name);
    }

    // On the GPU: float32 tensors close to the reference.
    let o = cnnc(&["--dropout", "off"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let file = weights::read(&out).unwrap();
    for p in &backward.trainable {
        let (ours, theirs) = (file.get(&p.name).unwrap(), want.gradients.get(&p.name).unwrap());
        let err = cnnc::runtime::tensor::relative_l2(&ours.data, &theirs.data);
        assert!(err < 1e-4, "{}: relative L2 {err:.1e} from the reference", p.name);
    }
    // Labels that are not classes: a clear refusal.
    write_labels(&y, &[3, 0, 10, 4]);
    let o = cnnc(&["--cpu"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("label 10 of item 2 is not a class: the model has 10"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
