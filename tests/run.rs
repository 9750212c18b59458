//! `cnnc run` end to end: checkpoints written by PyTorch, weight mismatches reported together,
//! and clear errors for bad input files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::tensor::{serialize, Dtype, TensorView};

fn cnnc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnc")).args(args).output().expect("cnnc runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cnnc-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn read_npy(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    npyz::NpyFile::new(&bytes[..]).unwrap().into_vec::<f32>().unwrap()
}

fn write_npy<T: npyz::Serialize + npyz::AutoSerialize>(path: &Path, shape: &[u64], data: Vec<T>) {
    use npyz::WriterBuilder;
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(&mut buf).begin_nd().unwrap();
    w.extend(data).unwrap();
    w.finish().unwrap();
    std::fs::write(path, &buf).unwrap();
}

/// The lenet checkpoint saved by PyTorch, as (name, shape, f32 data).
fn lenet_tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read("tests/fixtures/lenet.safetensors").unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            (name, view.shape().to_vec(), data)
        })
        .collect()
}

fn write_checkpoint(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| (name.clone(), TensorView::new(Dtype::F32, shape.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, serialize(views, None).unwrap()).unwrap();
}

/// Runs lenet with `weights` on the deterministic batch of 2; returns the output and the relative
/// L2 error of its logits against PyTorch's (`tests/fixtures/lenet.npy`).
fn lenet_against_pytorch(weights: &str) -> (Output, f64) {
    let out = temp(&format!("{}.npy", Path::new(weights).file_name().unwrap().to_string_lossy()));
    let o = cnnc(&[
        "run",
        "specs/lenet.yaml",
        "--weights",
        weights,
        "--random-input",
        "--batch",
        "2",
        "--cpu",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{weights}: {}", text(&o));
    let bytes = std::fs::read("tests/fixtures/lenet.npy").unwrap();
    let want = npyz::NpyFile::new(&bytes[..]).unwrap().into_vec::<f64>().unwrap();
    let err = cnnc::runtime::tensor::relative_l2(&read_npy(&out), &want);
    (o, err)
}

#[test]
fn a_pytorch_checkpoint_gives_pytorchs_logits() {
    let (o, err) = lenet_against_pytorch("tests/fixtures/lenet.safetensors");
    assert!(err < 1e-5, "relative L2 error {err}");
    // Top-K labels come from the spec's label file.
    assert!(text(&o).contains("input 1:"), "{}", text(&o));
    assert!(["airplane", "bird", "cat", "dog", "truck"].iter().any(|l| text(&o).contains(l)));
}

#[test]
fn pytorch_pth_checkpoints_in_both_formats_load() {
    for file in ["tests/fixtures/lenet_zip.pth", "tests/fixtures/lenet_legacy.pth"] {
        let (_, err) = lenet_against_pytorch(file);
        assert!(err < 1e-5, "{file}: relative L2 error {err}");
    }
    // A truncated checkpoint is refused with the file's name, in either format.
    for file in ["tests/fixtures/lenet_zip.pth", "tests/fixtures/lenet_legacy.pth"] {
        let bytes = std::fs::read(file).unwrap();
        let cut = temp("cut.pth");
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let o = cnnc(&["run", "specs/lenet.yaml", "--weights", cut.to_str().unwrap(), "--random-input", "--cpu"]);
        assert_eq!(o.status.code(), Some(1), "{file}");
        assert!(text(&o).contains("cut.pth` is not a usable weights file"), "{file}: {}", text(&o));
    }
}

/// Checkpoints in the layouts training code saves (`tests/fixtures/generate_checkpoints.py`): the
/// state_dict is found under the key the tool uses and named; a prefix that explains every
/// mismatch is one line with the `aliases:` that fixes it, and that line works; a file without
/// tensors lists its top-level keys.
#[test]
fn checkpoints_in_the_layouts_people_save_load() {
    let (o, err) = lenet_against_pytorch("tests/fixtures/checkpoints/tutorial.pth");
    assert!(err < 1e-5, "relative L2 error {err}");
    assert!(text(&o).contains("note: using the state_dict under `model_state_dict`"), "{}", text(&o));
    // Of two state_dicts, the one that names the spec's tensors, though another key comes first.
    let (o, err) = lenet_against_pytorch("tests/fixtures/checkpoints/two_candidates.pth");
    assert!(err < 1e-5, "relative L2 error {err}");
    let note = "using the state_dict under `model_state_dict` in tests/fixtures/checkpoints/two_candidates.pth, the \
                one that names the most of the spec's tensors; the checkpoint also holds `state_dict`";
    assert!(text(&o).contains(note), "{}", text(&o));
    // pytorch/examples' ImageNet checkpoint: a tensor (`best_acc1`) beside the `state_dict`.
    let (o, err) = lenet_against_pytorch("tests/fixtures/checkpoints/imagenet_example.pth.tar");
    assert!(err < 1e-5, "relative L2 error {err}");
    assert!(
        text(&o).contains("under `state_dict`") && text(&o).contains("also holds `(the top level)`"),
        "{}",
        text(&o)
    );
    // Two levels down, under keys of no convention.
    let (o, err) = lenet_against_pytorch("tests/fixtures/checkpoints/nested.pth");
    assert!(err < 1e-5, "relative L2 error {err}");
    assert!(text(&o).contains("note: using the state_dict under `checkpoint.model`"), "{}", text(&o));
    // float8 weights (saved through _rebuild_tensor_v3) are named by their dtype.
    let file = "tests/fixtures/checkpoints/float8.pth";
    let o = cnnc(&["run", "specs/lenet.yaml", "--weights", file, "--random-input", "--cpu"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("dtype float8_e4m3fn is not supported"), "{}", text(&o));

    for (file, from) in [
        ("tests/fixtures/checkpoints/data_parallel.pth", "module."),
        ("tests/fixtures/checkpoints/lightning.ckpt", "model."),
    ] {
        let o = cnnc(&["run", "specs/lenet.yaml", "--weights", file, "--random-input", "--cpu"]);
        assert_eq!(o.status.code(), Some(1), "{file}: {}", text(&o));
        let fix = format!("add `aliases: {{\"{from}\": \"\"}}` to the spec");
        assert!(text(&o).contains(&fix), "{file}: {}", text(&o));
        assert!(!text(&o).contains("unexpected "), "one line, not a listing: {}", text(&o));
        // The suggested line makes the checkpoint load with PyTorch's logits.
        let spec = std::fs::read_to_string("specs/lenet.yaml").unwrap().replace(
            "labels: labels/cifar10.txt",
            &format!("labels: {}/specs/labels/cifar10.txt\naliases: {{\"{from}\": \"\"}}", env!("CARGO_MANIFEST_DIR")),
        );
        let path = temp(&format!("lenet_{}.yaml", from.trim_end_matches('.')));
        std::fs::write(&path, spec).unwrap();
        let out = temp(&format!("aliased_{}.npy", from.trim_end_matches('.')));
        let args = ["run", path.to_str().unwrap(), "--weights", file, "--random-input", "--batch", "2", "--cpu"];
        let o = cnnc(&[&args[..], &["--output", out.to_str().unwrap()]].concat());
        assert_eq!(o.status.code(), Some(0), "{file}: {}", text(&o));
        let bytes = std::fs::read("tests/fixtures/lenet.npy").unwrap();
        let want = npyz::NpyFile::new(&bytes[..]).unwrap().into_vec::<f64>().unwrap();
        assert!(cnnc::runtime::tensor::relative_l2(&read_npy(&out), &want) < 1e-5, "{file}");
    }

    // A state_dict entry that is not a tensor is named as such, not only as missing.
    let file = "tests/fixtures/checkpoints/not_a_tensor.pth";
    let o = cnnc(&["run", "specs/lenet.yaml", "--weights", file, "--random-input", "--cpu"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("missing     fc3.bias [10]: the checkpoint holds `list` there, not a tensor"),
        "{}",
        text(&o)
    );

    let o =
        cnnc(&["run", "specs/lenet.yaml", "--weights", "tests/fixtures/checkpoints/no_weights.pth", "--random-input"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    for listed in ["`epoch` (int)", "`best_acc` (float)", "`arch` (str)", "`history` (list)", "`model_state_dict`"] {
        assert!(text(&o).contains(listed), "{listed}: {}", text(&o));
    }
}

#[test]
fn images_are_decoded_cropped_and_scaled() {
    // tiny.png is 40 wide and 36 high; lenet takes 3×32×32. Cropped to 32 without a resize and
    // normalised by mean 0.5 and std 0.5, the input is the centre crop scaled to [0, 1]
    // (tiny_input.npy, made from the same pixels by NumPy), then normalised.
    let (a, b, x) = (temp("from_image.npy"), temp("from_npy.npy"), temp("normalised.npy"));
    let pixels = read_npy(Path::new("tests/fixtures/tiny_input.npy"));
    write_npy(&x, &[1, 3, 32, 32], pixels.iter().map(|v| ((f64::from(*v) - 0.5) / 0.5) as f32).collect());
    let lenet = std::fs::read_to_string("specs/lenet.yaml").unwrap();
    let cropped = temp("lenet_crop32.yaml");
    let labels = format!("labels: {}/specs/labels/", env!("CARGO_MANIFEST_DIR"));
    std::fs::write(&cropped, lenet.replace("{mean:", "{crop: 32, mean:").replace("labels: labels/", &labels)).unwrap();
    let common = ["run", cropped.to_str().unwrap(), "--seed", "3", "--cpu", "--output"];
    let o = cnnc(&[&common[..], &[a.to_str().unwrap(), "--image", "tests/fixtures/tiny.png"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = cnnc(&[&common[..], &[b.to_str().unwrap(), "--input", x.to_str().unwrap()]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The .npy's pixels were rounded to float32 before normalising: the logits agree to that.
    let (from_image, from_npy) = (read_npy(&a), read_npy(&b));
    assert_eq!(from_image.len(), 10);
    for (p, q) in from_image.iter().zip(&from_npy) {
        assert!((p - q).abs() <= 1e-6 * q.abs().max(1.0), "{from_image:?} against {from_npy:?}");
    }

    // Without the crop, an image of another size is refused, naming it and the fix, not cropped.
    let o = cnnc(&["run", "specs/lenet.yaml", "--seed", "3", "--cpu", "--image", "tests/fixtures/tiny.png"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    for part in ["tiny.png", "36×40 pixels (height × width)", "32×32", "add `resize: 32, crop: 32` to the spec's"] {
        assert!(text(&o).contains(part), "{part}: {}", text(&o));
    }
    // With `resize: 32` alone its shorter side is 32, not all of it.
    let resized = temp("lenet_resize32.yaml");
    std::fs::write(&resized, lenet.replace("{mean:", "{resize: 32, mean:").replace("labels: labels/", &labels))
        .unwrap();
    let o = cnnc(&["run", resized.to_str().unwrap(), "--seed", "3", "--cpu", "--image", "tests/fixtures/tiny.png"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    for part in ["`resize: 32` makes 32×35", "add `crop: 32`"] {
        assert!(text(&o).contains(part), "{part}: {}", text(&o));
    }

    let broken = temp("broken.png");
    std::fs::write(&broken, &std::fs::read("tests/fixtures/tiny.png").unwrap()[..100]).unwrap();
    let o = cnnc(&["run", "specs/lenet.yaml", "--seed", "3", "--cpu", "--image", broken.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("broken.png` is not a usable image"), "{}", text(&o));
}

#[test]
fn every_weight_mismatch_is_reported_at_once() {
    let mut tensors = lenet_tensors();
    tensors.retain(|(n, _, _)| n != "fc3.bias");
    for (name, shape, data) in tensors.iter_mut() {
        if name == "fc1.weight" {
            *shape = vec![120, 576];
            *data = vec![0.0; 120 * 576];
        }
        if name == "cn2.bias" {
            data[3] = f32::NAN;
        }
    }
    tensors.push(("fc4.weight".into(), vec![2, 2], vec![0.0; 4]));
    let path = temp("broken.safetensors");
    write_checkpoint(&path, &tensors);
    let o = cnnc(&["run", "specs/lenet.yaml", "--weights", path.to_str().unwrap(), "--random-input", "--cpu"]);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(t.contains("missing     fc3.bias [10]"), "{t}");
    assert!(t.contains("unexpected  fc4.weight [2, 2]"), "{t}");
    assert!(t.contains("wrong shape fc1.weight: the spec expects [120, 400], the file has [120, 576]"), "{t}");
    assert!(t.contains("non-finite  cn2.bias"), "{t}");
}

#[test]
fn non_strict_loading_fills_missing_heads_and_says_so() {
    let mut tensors = lenet_tensors();
    tensors.retain(|(n, _, _)| !n.starts_with("fc3"));
    let path = temp("backbone.safetensors");
    write_checkpoint(&path, &tensors);
    let strict = cnnc(&["run", "specs/lenet.yaml", "--weights", path.to_str().unwrap(), "--random-input", "--cpu"]);
    assert_eq!(strict.status.code(), Some(1));
    let loose = cnnc(&[
        "run",
        "specs/lenet.yaml",
        "--weights",
        path.to_str().unwrap(),
        "--random-input",
        "--cpu",
        "--strict",
        "false",
    ]);
    assert_eq!(loose.status.code(), Some(0), "{}", text(&loose));
    assert!(text(&loose).contains("missing     fc3.weight [10, 84]"), "{}", text(&loose));
    assert!(text(&loose).contains("2 missing tensors are initialised pseudo-randomly"), "{}", text(&loose));
}

#[test]
fn bad_files_get_clear_errors() {
    let truncated = temp("truncated.safetensors");
    let bytes = std::fs::read("tests/fixtures/lenet.safetensors").unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let o = cnnc(&["run", "specs/lenet.yaml", "--weights", truncated.to_str().unwrap(), "--random-input", "--cpu"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("truncated.safetensors` is not a usable weights file"), "{}", text(&o));

    let wrong_input = temp("wrong.npy");
    write_npy(&wrong_input, &[1, 3, 28, 28], vec![0f32; 3 * 28 * 28]);
    let o = cnnc(&["run", "specs/lenet.yaml", "--seed", "1", "--input", wrong_input.to_str().unwrap(), "--cpu"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("the model takes [N, 3, 32, 32], the input is [1, 3, 28, 28]"), "{}", text(&o));

    let f64_input = temp("f64.npy");
    write_npy(&f64_input, &[1, 3, 32, 32], vec![0f64; 3 * 32 * 32]);
    let o = cnnc(&["run", "specs/lenet.yaml", "--seed", "1", "--input", f64_input.to_str().unwrap(), "--cpu"]);
    assert!(text(&o).contains("not float32; convert it with x.astype(np.float32)"), "{}", text(&o));

    // A PNG whose header says 30,000 × 30,000 pixels (8.8 kB on disk, 3.4 GB decoded) is refused
    // from its header, and an empty file is no image; a 1×1 image is refused without a crop, and
    // with `crop: 32` padded with zeros to 32×32, as torchvision's CenterCrop does.
    let o = cnnc(&["run", "specs/lenet.yaml", "--seed", "1", "--image", "tests/fixtures/huge_header.png", "--cpu"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("it is 30000×30000 pixels"), "{}", text(&o));
    let empty = temp("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let o = cnnc(&["run", "specs/lenet.yaml", "--seed", "1", "--image", empty.to_str().unwrap(), "--cpu"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("empty.png` is not a usable image"), "{}", text(&o));
    let tiny = temp("one_pixel.png");
    image::RgbImage::from_pixel(1, 1, image::Rgb([10, 200, 30])).save(&tiny).unwrap();
    let o = cnnc(&["run", "specs/lenet.yaml", "--seed", "1", "--image", tiny.to_str().unwrap(), "--cpu"]);
    assert_eq!(o.status.code(), Some(1), "without a crop, an image of another size is refused: {}", text(&o));
    assert!(text(&o).contains("one_pixel.png` is not a usable image: it is 1×1 pixels"), "{}", text(&o));
    let lenet = std::fs::read_to_string("specs/lenet.yaml").unwrap();
    let labels = format!("labels: {}/specs/labels/", env!("CARGO_MANIFEST_DIR"));
    let cropped = temp("lenet_crop32_tiny.yaml");
    std::fs::write(&cropped, lenet.replace("{mean:", "{crop: 32, mean:").replace("labels: labels/", &labels)).unwrap();
    let o = cnnc(&["run", cropped.to_str().unwrap(), "--seed", "1", "--image", tiny.to_str().unwrap(), "--cpu"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // NaN in the input gives NaN logits, as in PyTorch, with a warning.
    let nan_input = temp("nan.npy");
    let mut values = vec![0f32; 3 * 32 * 32];
    values[5] = f32::NAN;
    write_npy(&nan_input, &[1, 3, 32, 32], values);
    let o = cnnc(&["run", "specs/lenet.yaml", "--seed", "1", "--input", nan_input.to_str().unwrap(), "--cpu"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("warning: the input holds NaN or infinite values"), "{}", text(&o));
}

/// Host memory the machine cannot give is an error naming what needed it, not an abort: a layer's
/// output on the CPU executor (with its place in the spec), and pseudo-random weights. Both sizes
/// are beyond any machine's address space (128 TiB), so the refusal does not depend on its memory.
#[test]
fn memory_no_machine_has_is_refused_naming_what_needs_it() {
    let spec = temp("padded_far.yaml");
    let body =
        "model: m\ninput: [1, 8, 8]\nbody:\n  - big: conv(1000, 1, pad=16496)\n  - global_avgpool\n  - flatten\n";
    std::fs::write(&spec, body).unwrap();
    let o = cnnc(&["run", spec.to_str().unwrap(), "--seed", "1", "--random-input", "--batch", "40", "--cpu"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    for part in
        ["out of memory: the output of layer `big` ([1000, 33000, 33000] for a batch of 40)", ":4:10", "smaller batch"]
    {
        assert!(text(&o).contains(part), "{part}: {}", text(&o));
    }
    // Forty 10⁶ × 10⁶ linear layers: each is within the compiler's per-tensor limit, together 160 TB.
    let spec = temp("wide.yaml");
    std::fs::write(&spec, format!("model: m\ninput: [1000000]\nbody:\n{}", "  - linear(1000000)\n".repeat(40)))
        .unwrap();
    let o = cnnc(&["run", spec.to_str().unwrap(), "--seed", "1", "--random-input", "--cpu"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("out of memory: the model's weights (the largest, `39.weight`"), "{}", text(&o));
}

/// With `ceil_mode`, a pooling window may be larger than its input by less than a stride, as in
/// PyTorch: `max_pool2d(arange(4).view(1, 1, 2, 2), 3, 2, ceil_mode=True)` is `[[3.]]` and
/// `avg_pool2d` of it `[[1.5]]`, on both executors.
#[test]
fn a_ceil_mode_window_may_pass_its_input() {
    let x = temp("arange4.npy");
    write_npy(&x, &[1, 1, 2, 2], vec![0.0f32, 1.0, 2.0, 3.0]);
    for (pool, want) in [("maxpool", 3.0), ("avgpool", 1.5)] {
        let spec = temp(&format!("{pool}_past.yaml"));
        std::fs::write(&spec, format!("model: m\ninput: [1, 2, 2]\nbody:\n  - {pool}(3, stride=2, ceil_mode=true)\n"))
            .unwrap();
        for cpu in [true, false] {
            let out = temp(&format!("{pool}_past_{cpu}.npy"));
            let mut args = vec!["run", spec.to_str().unwrap(), "--seed", "0", "--input", x.to_str().unwrap()];
            args.extend(["--output", out.to_str().unwrap()]);
            if cpu {
                args.push("--cpu");
            }
            let o = cnnc(&args);
            assert_eq!(o.status.code(), Some(0), "{pool} (cpu {cpu}): {}", text(&o));
            assert_eq!(read_npy(&out), [want], "{pool} (cpu {cpu})");
        }
    }
}
