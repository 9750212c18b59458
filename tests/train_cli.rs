//! `cnnc train` and `cnnc eval` as a user runs them: LeNet on real Fashion-MNIST images (a subset,
//! one epoch), the checkpoints and metrics they write, evaluation of a checkpoint, reproducibility,
//! the CPU executor against the GPU, and bad datasets refused with the file named.
//!
//! Fashion-MNIST comes from Debian's `dataset-fashion-mnist` (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FASHION: &str = "/usr/share/datasets/fashion-mnist";

fn fashion() -> String {
    assert!(
        Path::new(FASHION).join("train-images-idx3-ubyte.gz").is_file(),
        "Fashion-MNIST is missing: apt-get install dataset-fashion-mnist (as .ci/run does)"
    );
    format!("idx:{FASHION}")
}

fn cnnc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnc")).args(args).output().expect("cnnc runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cnnc-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Trains LeNet for one epoch on `limit` images of each split; returns the output folder.
fn train(name: &str, limit: usize, extra: &[&str]) -> (PathBuf, Output) {
    let out = scratch(name);
    let data = fashion();
    let limit = limit.to_string();
    let mut args = vec!["train", "specs/lenet_fashion.yaml", "--data", &data, "--limit", &limit];
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(extra);
    let o = cnnc(&args);
    (out, o)
}

/// Every tensor of a checkpoint, by name, bit for bit.
fn checkpoint(path: &Path) -> Vec<(String, Vec<u32>)> {
    let weights = cnnc::runtime::weights::read(path).unwrap();
    let mut names = weights.names();
    names.sort_unstable();
    names.iter().map(|n| (n.to_string(), weights.get(n).unwrap().data.iter().map(|v| v.to_bits()).collect())).collect()
}

fn epochs(out: &Path) -> Vec<serde_json::Value> {
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    log.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "epoch")
        .collect()
}

#[test]
fn lenet_learns_fashion_mnist_and_its_checkpoint_evaluates_the_same() {
    let (out, o) = train("learns", 2000, &["--log-every", "50"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("250 steps per epoch"), "{}", text(&o));
    // Fashion-MNIST's 2,000 images (1.6 MB) are held on the GPU, batches made there.
    assert!(text(&o).contains("the training images stay on the GPU as bytes (1.6 MB)"), "{}", text(&o));
    let epoch = &epochs(&out)[0];
    let accuracy = epoch["accuracy"].as_f64().unwrap();
    // Ten classes: chance is 10 %; 250 steps of Adam reach about 70 %.
    assert!(accuracy > 0.55, "test accuracy {accuracy} after one epoch of 2,000 images");
    for field in ["epoch", "step", "loss", "test_loss", "lr", "images_per_s", "seconds"] {
        assert!(epoch[field].is_number(), "no {field} in {epoch}");
    }
    // Step lines carry the training batches' accuracy since the previous log, which climbs too.
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let steps: Vec<f64> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .map(|v| v["accuracy"].as_f64().unwrap())
        .collect();
    assert!(steps.len() == 5 && steps[0] < steps[4] && steps[4] > 0.5, "{steps:?}");
    let best = out.join("best.safetensors");
    assert!(out.join("last.safetensors").is_file() && best.is_file());
    let o = cnnc(&["eval", "specs/lenet_fashion.yaml", "--weights", best.to_str().unwrap(), "--data", &fashion()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("Ankle boot") && text(&o).contains("confusion matrix"), "{}", text(&o));
    let o = cnnc(&[
        "eval",
        "specs/lenet_fashion.yaml",
        "--weights",
        best.to_str().unwrap(),
        "--data",
        &fashion(),
        "--limit",
        "2000",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["accuracy"].as_f64().unwrap(), accuracy, "eval scores the checkpoint as training did");
    assert_eq!(v["images"], 2000);
    assert_eq!(v["per_class"].as_array().unwrap().len(), 10);
    let confusion = v["confusion"].as_array().unwrap();
    let total: u64 = confusion.iter().flat_map(|r| r.as_array().unwrap()).map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(total, 2000);
    // The checkpoint is an ordinary one: `cnnc run` loads it by name.
    let o = cnnc(&["run", "specs/lenet_fashion.yaml", "--weights", best.to_str().unwrap(), "--random-input"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn the_same_seed_gives_the_same_weights_and_the_cpu_agrees() {
    let (a, o) = train("seed-a", 400, &["--seed", "7"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (b, _) = train("seed-b", 400, &["--seed", "7"]);
    let weights = |d: &Path| checkpoint(&d.join("last.safetensors"));
    assert!(weights(&a) == weights(&b), "two runs with one seed differ");
    let (c, _) = train("seed-c", 400, &["--seed", "8"]);
    assert!(weights(&a) != weights(&c), "another seed gives the same weights");
    // The float64 CPU executor follows the same samples from the same start: after 50 steps its
    // accuracy is the GPU's within a few images of 400.
    let (cpu, o) = train("seed-cpu", 400, &["--seed", "7", "--cpu"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let accuracy = |d: &Path| epochs(d)[0]["accuracy"].as_f64().unwrap();
    assert!((accuracy(&a) - accuracy(&cpu)).abs() <= 0.02, "GPU {} against CPU {}", accuracy(&a), accuracy(&cpu));
    for d in [a, b, c, cpu] {
        std::fs::remove_dir_all(d).ok();
    }
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

/// An IDX folder of `n` blank 28×28 training and test images with `labels`, then `spoil`ed.
fn dataset(name: &str, labels: &[u8], spoil: impl Fn(&Path)) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(&dir).unwrap();
    let n = labels.len() as u32;
    for prefix in ["train", "t10k"] {
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            idx(&[n, 28, 28], &vec![0; 784 * labels.len()]),
        )
        .unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), idx(&[n], labels)).unwrap();
    }
    spoil(&dir);
    dir
}

#[test]
fn bad_datasets_are_refused_naming_the_file() {
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "truncated",
            dataset("truncated", &[1; 16], |d| {
                let p = d.join("train-images-idx3-ubyte");
                let bytes = std::fs::read(&p).unwrap();
                std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
            }),
            "train-images-idx3-ubyte` is not a usable dataset: truncated",
        ),
        (
            "magic",
            dataset("magic", &[1; 16], |d| {
                std::fs::write(d.join("train-labels-idx1-ubyte"), b"PK\x03\x04 not idx").unwrap();
            }),
            "train-labels-idx1-ubyte` is not a usable dataset: not an IDX file",
        ),
        (
            "counts",
            dataset("counts", &[1; 16], |d| {
                std::fs::write(d.join("train-labels-idx1-ubyte"), idx(&[15], &[1; 15])).unwrap();
            }),
            "15 labels for the 16 images",
        ),
        (
            "label",
            dataset("label", &[1, 2, 12, 3, 4, 5, 6, 7], |_| {}),
            "label 12 at index 2 is not one of the model's 10 classes",
        ),
        (
            "gzip",
            dataset("gzip", &[1; 16], |d| {
                std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap();
                std::fs::write(d.join("t10k-labels-idx1-ubyte.gz"), b"\x1f\x8b\x08\x00broken").unwrap();
            }),
            "t10k-labels-idx1-ubyte.gz` is not a usable dataset: not a complete gzip file",
        ),
        (
            "missing",
            dataset("missing", &[1; 16], |d| std::fs::remove_file(d.join("t10k-images-idx3-ubyte")).unwrap()),
            "no `t10k-images-idx3-ubyte` or `t10k-images-idx3-ubyte.gz` in it",
        ),
    ];
    for (name, dir, expected) in cases {
        let data = format!("idx:{}", dir.display());
        let out = scratch(&format!("{name}-out"));
        let o = cnnc(&["train", "specs/lenet_fashion.yaml", "--data", &data, "--out", out.to_str().unwrap(), "--cpu"]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        assert!(text(&o).contains(expected), "{name}: expected `{expected}` in:\n{}", text(&o));
        assert!(!text(&o).contains("panicked"), "{name}: {}", text(&o));
        std::fs::remove_dir_all(&dir).ok();
    }
    let o = cnnc(&["train", "specs/lenet_fashion.yaml", "--data", "mnist:/nowhere", "--out", "/tmp/x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("`mnist:/nowhere` does not name a dataset"), "{}", text(&o));
    let o = cnnc(&["train", "specs/lenet.yaml", "--data", "cifar10:/nowhere", "--out", "/tmp/x"]);
    assert!(text(&o).contains("`/nowhere` is not a usable dataset: the folder does not exist"), "{}", text(&o));
    let o = cnnc(&["eval", "specs/lenet_fashion.yaml", "--weights", "x", "--data", &fashion(), "--limit", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = cnnc(&["train", "specs/lenet.yaml", "--data", &fashion(), "--out", "/tmp/x", "--limit", "8"]);
    assert!(text(&o).contains("its images are 1×28×28 and the model takes 3×32×32"), "{}", text(&o));
    let o = cnnc(&["train", "specs/lenet_fashion.yaml", "--data", &fashion(), "--out", "/tmp/x", "--lr=-1"]);
    assert_eq!(o.status.code(), Some(2), "a usage error: {}", text(&o));
    assert!(text(&o).contains("for '--lr <LR>': `-1` is not a positive finite number"), "{}", text(&o));
}

/// The bundled LeNet of the quick start: its test accuracy is the one its README states, and its
/// images are Fashion-MNIST's test images at the indices their names give.
#[test]
fn the_bundled_model_and_images_are_what_they_claim() {
    let weights = "models/lenet_fashion/lenet_fashion.safetensors";
    let o = cnnc(&["eval", "specs/lenet_fashion.yaml", "--weights", weights, "--data", &fashion(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["correct"].as_u64(), v["images"].as_u64()), (Some(8813), Some(10_000)), "README.md says 88.13 %");
    let options = cnnc::runtime::data::ReadOptions::new(1);
    let test = cnnc::runtime::data::open(&fashion(), cnnc::runtime::data::Split::Test, options).unwrap();
    let (_, model) = cnnc::compiler::compile_model_path(Path::new("specs/lenet_fashion.yaml")).unwrap();
    let mut meta = model.unwrap().graph.meta;
    (meta.mean, meta.std) = (None, None);
    let mut images: Vec<PathBuf> =
        std::fs::read_dir("models/lenet_fashion/images").unwrap().map(|e| e.unwrap().path()).collect();
    images.sort();
    assert_eq!(images.len(), 10);
    for path in images {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let index: usize = name[..4].parse().unwrap();
        let x = cnnc::runtime::image_input::load_batch_for(&[&path], &meta, &[1, 28, 28]).unwrap();
        let bytes: Vec<u8> = x.data.iter().map(|v| (v * 255.0).round() as u8).collect();
        assert!(bytes[..] == *test.images.get(index).unwrap().0, "{name} is not test image {index}");
    }
}

/// A CIFAR-10 binary directory (`cifar-10-batches-bin` layout) of `per_file` records per batch
/// file: class `c`'s images are a colour that tells the classes apart, with noise.
fn cifar_dir(name: &str, per_file: usize) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(&dir).unwrap();
    let labels = std::fs::read_to_string("specs/labels/cifar10.txt").unwrap();
    std::fs::write(dir.join("batches.meta.txt"), labels).unwrap();
    let noise = cnnc::runtime::synthetic::values(0, "cifar", 3072, 0.0, 16.0);
    let files = (1..=5).map(|i| format!("data_batch_{i}.bin")).chain(["test_batch.bin".to_string()]);
    for (f, file) in files.enumerate() {
        let mut bytes = Vec::new();
        for r in 0..per_file {
            let class = (r * 7 + f) % 10;
            bytes.push(class as u8);
            for (p, n) in noise.iter().enumerate() {
                let channel = p / 1024;
                let base = if channel == class % 3 { 40 + 20 * class } else { 60 + 10 * (class / 3) };
                bytes.push((base as f32 + n + (r % 5) as f32) as u8);
            }
        }
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    dir
}

/// A Python 2 `cPickle` (protocol 2) of a CIFAR-10 batch, opcode for opcode as the files of
/// `cifar-10-python.tar.gz` are written: a dict whose `data` is a uint8 ndarray `[n, 3072]` rebuilt
/// by numpy's `_reconstruct` from a byte string, and whose `labels` is a list.
fn py2_batch(images: &[u8], labels: &[u8]) -> Vec<u8> {
    let mut p = b"\x80\x02}q\x01(U\x04dataq\x02cnumpy.core.multiarray\n_reconstruct\nq\x03cnumpy\nndarray\nq\x04K\x00\x85U\x01b\x87Rq\x05(K\x01".to_vec();
    p.push(b'M');
    p.extend((labels.len() as u16).to_le_bytes());
    p.extend(b"M\x00\x0c\x86cnumpy\ndtype\nq\x06U\x02u1K\x00K\x01\x87Rq\x07(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T");
    p.extend((images.len() as u32).to_le_bytes());
    p.extend(images);
    p.extend(b"q\x08tbU\x06labelsq\t]q\n(");
    for l in labels {
        p.extend([b'K', *l]);
    }
    p.extend(b"eU\x0bbatch_labelq\x0bU\x15training batch 1 of 5q\x0cu.");
    p
}

/// The binary folder `cifar_dir` makes, rewritten as CIFAR-10's Python version, with the class
/// names in a pickled `batches.meta`.
fn cifar_python_dir(binary: &Path, name: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(&dir).unwrap();
    for file in (1..=5).map(|i| format!("data_batch_{i}")).chain(["test_batch".to_string()]) {
        let bytes = std::fs::read(binary.join(format!("{file}.bin"))).unwrap();
        let labels: Vec<u8> = bytes.chunks(3073).map(|r| r[0]).collect();
        let images: Vec<u8> = bytes.chunks(3073).flat_map(|r| r[1..].to_vec()).collect();
        std::fs::write(dir.join(file), py2_batch(&images, &labels)).unwrap();
    }
    let mut meta = b"\x80\x02}q\x01(U\x0blabel_namesq\x02]q\x03(".to_vec();
    for name in std::fs::read_to_string("specs/labels/cifar10.txt").unwrap().lines() {
        meta.push(b'U');
        meta.push(name.len() as u8);
        meta.extend(name.as_bytes());
    }
    meta.extend(b"eU\x13num_cases_per_batchM\x10'U\x07num_visM\x00\x0cu.");
    std::fs::write(dir.join("batches.meta"), meta).unwrap();
    dir
}

/// CIFAR-10's Python version (what torchvision downloads) reads as the binary one does, and its
/// faults are named.
#[test]
fn cifar10_python_batches_read_as_the_binary_ones() {
    use cnnc::runtime::data::{open, ReadOptions, Split};
    let binary = cifar_dir("cifar-bin-twin", 6);
    let python = cifar_python_dir(&binary, "cifar-py");
    let options = ReadOptions::new(3);
    for split in [Split::Train, Split::Test] {
        let a = open(&format!("cifar10:{}", binary.display()), split, options).unwrap();
        let b = open(&format!("cifar10:{}", python.display()), split, options).unwrap();
        assert_eq!((a.len(), &a.labels, &a.class_names), (b.len(), &b.labels, &b.class_names));
        assert!((0..a.len()).all(|i| a.images.get(i).unwrap() == b.images.get(i).unwrap()), "{split:?} images differ");
    }
    let data = format!("cifar10:{}", python.display());
    let out = scratch("cifar-py-out");
    let o = cnnc(&["train", "specs/lenet.yaml", "--data", &data, "--epochs", "1", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("30 training and 6 test images"), "{}", text(&o));
    let batch = std::fs::read(python.join("data_batch_2")).unwrap();
    std::fs::write(python.join("data_batch_2"), &batch[..batch.len() / 2]).unwrap();
    let err = open(&data, Split::Train, options).unwrap_err().to_string();
    assert!(
        err.contains("data_batch_2` is not a usable dataset: not a readable pickle") && err.contains("ends early"),
        "{err}"
    );
    for d in [binary, python, out] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn lenet_trains_on_cifar10_binary_batches_with_augmentation() {
    let dir = cifar_dir("cifar", 40);
    let out = scratch("cifar-out");
    let data = format!("cifar10:{}", dir.display());
    let o = cnnc(&[
        "train",
        "specs/lenet.yaml",
        "--data",
        &data,
        "--augment",
        "random_crop(32, pad=4), hflip",
        "--epochs",
        "6",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("200 training and 40 test images"), "{}", text(&o));
    // Crops and flips only move pixels: the images stay on the GPU, each batch made there.
    assert!(text(&o).contains("the training images stay on the GPU as bytes (0.6 MB)"), "{}", text(&o));
    let accuracy = epochs(&out)[5]["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.3, "test accuracy {accuracy} on colours that tell the classes apart");
    let last = out.join("last.safetensors");
    let o = cnnc(&["eval", "specs/lenet.yaml", "--weights", last.to_str().unwrap(), "--data", &data]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("airplane") && text(&o).contains(" of 40)"), "{}", text(&o));
    // Augmentation is drawn from the seed: the same run twice is the same, without it another.
    let short = |name: &str, augment: Option<&str>| {
        let dir = scratch(name);
        // The spec's recipe (50 epochs, random crops and flips) with one epoch and these steps.
        let mut args =
            vec!["train", "specs/lenet.yaml", "--data", &data, "--epochs", "1", "--out", dir.to_str().unwrap()];
        args.extend(["--augment", augment.unwrap_or("none")]);
        assert_eq!(cnnc(&args).status.code(), Some(0));
        let weights = checkpoint(&dir.join("last.safetensors"));
        std::fs::remove_dir_all(dir).ok();
        weights
    };
    let flips = Some("hflip");
    assert!(short("aug-a", flips) == short("aug-b", flips), "one seed, two augmentations");
    assert!(short("aug-a", flips) != short("aug-none", None), "augmentation changed nothing");
    // Bad files are named with what is wrong.
    let spoil = |file: &str, bytes: Vec<u8>| std::fs::write(dir.join(file), bytes).unwrap();
    let run = || text(&cnnc(&["train", "specs/lenet.yaml", "--data", &data, "--out", out.to_str().unwrap(), "--cpu"]));
    spoil("data_batch_3.bin", vec![1; 3073 * 2 + 5]);
    assert!(
        run()
            .contains("data_batch_3.bin` is not a usable dataset: 6151 bytes, not a whole number of 3073-byte records"),
        "{}",
        run()
    );
    spoil("data_batch_3.bin", [vec![10u8], vec![0; 3072]].concat());
    assert!(run().contains("record 0 has label 10, not one of the 10 classes"), "{}", run());
    std::fs::remove_file(dir.join("data_batch_1.bin")).unwrap();
    spoil("data_batch_1", b"\x80\x02}q\x00.".to_vec());
    assert!(run().contains("data_batch_1` is not a usable dataset: no `data` array in the batch"), "{}", run());
    let o = cnnc(&["train", "specs/lenet.yaml", "--data", &fashion(), "--out", "/tmp/x", "--augment", "vflip"]);
    assert!(text(&o).contains("--augment: `vflip` is not an augmentation"), "{}", text(&o));
    for d in [dir, out] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn a_checkpoint_with_overflowing_values_is_refused_not_scored() {
    let mut weights =
        cnnc::runtime::weights::read(Path::new("models/lenet_fashion/lenet_fashion.safetensors")).unwrap();
    // Finite weights (non-finite ones are refused on loading) whose products overflow.
    weights.get_mut("fc3.weight").unwrap().data[4 * 84..5 * 84].fill(f32::MAX);
    let dir = scratch("overflow");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.safetensors");
    let mut names = weights.names();
    names.sort_unstable();
    let tensors: Vec<_> = names.iter().map(|n| (n.to_string(), weights.get(n).unwrap().convert())).collect();
    cnnc::runtime::weights::write_safetensors(&path, &tensors, true).unwrap();
    let o = cnnc(&[
        "eval",
        "specs/lenet_fashion.yaml",
        "--weights",
        path.to_str().unwrap(),
        "--data",
        &fashion(),
        "--limit",
        "20",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("the model's output for image 0 is "), "{}", text(&o));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn fine_tuning_loads_what_matches_and_trains_only_what_is_not_frozen() {
    // LeNet with a 5-way head (`--set num_classes=5`), on a dataset of 5 classes, starting from
    // the bundled 10-way LeNet.
    let dir = scratch("finetune");
    std::fs::create_dir_all(&dir).unwrap();
    let spec = Path::new("specs/lenet_fashion.yaml");
    let data = dataset("finetune-data", &[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0], |_| {});
    let data = format!("idx:{}", data.display());
    let out = dir.join("out");
    let bundled = "models/lenet_fashion/lenet_fashion.safetensors";
    let run = |extra: &[&str]| {
        let mut args = vec!["train", spec.to_str().unwrap(), "--set", "num_classes=5", "--data", &data];
        args.extend(["--out", out.to_str().unwrap(), "--weights", bundled]);
        args.extend(extra);
        cnnc(&args)
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("wrong shape fc3.weight: the spec expects [5, 84], the file has [10, 84]"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("add --strict false"), "{}", text(&o));
    let o = run(&["--strict", "false", "--freeze", "cn1", "cn2", "fc1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("loaded 8 of the spec's 10 tensors"), "{}", text(&o));
    assert!(
        text(&o).contains("initialised as PyTorch does: fc3.weight [5, 84] (the checkpoint's is [10, 84])"),
        "{}",
        text(&o)
    );
    let before = cnnc::runtime::weights::read(Path::new(bundled)).unwrap();
    let after = cnnc::runtime::weights::read(&out.join("last.safetensors")).unwrap();
    for name in ["cn1.weight", "cn1.bias", "cn2.weight", "fc1.weight", "fc1.bias"] {
        let (a, b) = (&after.get(name).unwrap().data, &before.get(name).unwrap().data);
        assert!(a == b, "frozen {name} changed: {:?} vs {:?}", &a[..4], &b[..4]);
    }
    assert!(after.get("fc2.weight").unwrap().data != before.get("fc2.weight").unwrap().data, "fc2 did not train");
    assert_eq!(after.get("fc3.weight").unwrap().shape, vec![5, 84]);
    // The folder now holds this run: another run does not overwrite it.
    let o = run(&["--strict", "false"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("holds an earlier run, which this one would overwrite"), "{}", text(&o));
    // A checkpoint of another model shares no names: refused, not trained from scratch.
    let renamed = dir.join("renamed.yaml");
    let source = std::fs::read_to_string(spec).unwrap().replace("labels: labels/fashion_mnist.txt\n", "");
    std::fs::write(&renamed, source.replace("cn1:", "conv_a:").replace("cn2:", "conv_b:").replace("fc", "dense"))
        .unwrap();
    let other = dir.join("other");
    let mut args = vec!["train", renamed.to_str().unwrap(), "--data", &data, "--out", other.to_str().unwrap()];
    args.extend(["--weights", bundled, "--strict", "false"]);
    let o = cnnc(&args);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("it is not a checkpoint of this model"), "{}", text(&o));
    let o = run(&["--strict", "false", "--freeze", "conv1"]);
    assert!(text(&o).contains("--freeze conv1: no parameter of the spec is under `conv1`"), "{}", text(&o));
    let o = run(&["--strict", "false", "--freeze", "cn1", "cn2", "fc1", "fc2", "fc3"]);
    assert!(text(&o).contains("--freeze leaves nothing to train"), "{}", text(&o));
    std::fs::remove_dir_all(dir).ok();
}

/// `specs/NAME.yaml` on 32×32 images, normalised but neither resized nor cropped, written to `dir`
/// (the spec's imports resolved from `specs/`).
fn at_32(name: &str, dir: &Path) -> PathBuf {
    let source = std::fs::read_to_string(format!("specs/{name}.yaml")).unwrap();
    assert!(source.contains("input: [3, 224, 224]"), "{name}");
    let source = source
        .replace("input: [3, 224, 224]", "input: [3, 32, 32]")
        .replace("resize: 256, crop: 224, ", "")
        .replace("import: lib/", &format!("import: {}/specs/lib/", env!("CARGO_MANIFEST_DIR")))
        .replace("labels: labels/", &format!("labels: {}/specs/labels/", env!("CARGO_MANIFEST_DIR")));
    let path = dir.join(format!("{name}_32.yaml"));
    std::fs::write(&path, source).unwrap();
    path
}

/// A checkpoint of a model with batch-norm has exactly torchvision's state_dict keys and shapes
/// (tests/reference/torchvision_facts.json) plus each batch-norm's int64 `num_batches_tracked`, so
/// `load_state_dict(..., strict=True)` takes it (`scripts/check_checkpoint_pytorch.py` does that).
#[test]
fn a_resnet18_checkpoint_has_torchvisions_state_dict() {
    let dir = scratch("resnet-checkpoint");
    std::fs::create_dir_all(&dir).unwrap();
    let spec = at_32("resnet18", &dir);
    let data = cifar_dir("resnet-data", 8);
    let out = dir.join("out");
    let data_arg = format!("cifar10:{}", data.display());
    let o =
        cnnc(&["train", spec.to_str().unwrap(), "--data", &data_arg, "--limit", "16", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let bytes = std::fs::read(out.join("last.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let facts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("tests/reference/torchvision_facts.json").unwrap()).unwrap();
    let state = facts["resnet18"]["state_dict"].as_object().unwrap();
    let mut want: Vec<String> = state.keys().cloned().collect();
    for key in state.keys() {
        if let Some(prefix) = key.strip_suffix("running_mean") {
            want.push(format!("{prefix}num_batches_tracked"));
        }
    }
    want.sort();
    let mut have: Vec<String> = file.names().into_iter().map(str::to_string).collect();
    have.sort();
    assert_eq!(have, want);
    for (name, shape) in state {
        let shape: Vec<usize> = shape.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let t = file.tensor(name).unwrap();
        assert_eq!((t.dtype(), t.shape()), (safetensors::Dtype::F32, &shape[..]), "{name}");
    }
    let count = file.tensor("layer1.0.bn1.num_batches_tracked").unwrap();
    assert_eq!((count.dtype(), count.data()), (safetensors::Dtype::I64, &2i64.to_le_bytes()[..]), "two steps taken");
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let info = header.metadata().as_ref().unwrap();
    assert_eq!((info["model"].as_str(), info["epoch"].as_str(), info["step"].as_str()), ("resnet18", "1", "2"));
    // cnnc reads its own checkpoint back.
    let o = cnnc(&[
        "run",
        spec.to_str().unwrap(),
        "--weights",
        out.join("last.safetensors").to_str().unwrap(),
        "--random-input",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for d in [dir, data] {
        std::fs::remove_dir_all(d).ok();
    }
}

/// `--resume` continues a run bit for bit: one epoch, then a second resumed, gives the weights and
/// optimizer state of two epochs run at once; so does a run stopped by Ctrl-C mid-epoch.
#[test]
fn a_resumed_run_is_the_uninterrupted_run() {
    let (whole, o) = train("resume-whole", 400, &["--epochs", "2", "--seed", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (half, o) = train("resume-half", 400, &["--epochs", "1", "--seed", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let data = fashion();
    let resume = |dir: &Path, epochs: &str, extra: &[&str]| {
        let mut args = vec!["train", "specs/lenet_fashion.yaml", "--data", &data, "--limit", "400", "--epochs", epochs];
        args.extend(["--resume", dir.to_str().unwrap()]);
        args.extend(extra);
        cnnc(&args)
    };
    let o = resume(&half, "2", &["--seed", "4"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("seed 3 (now 4)"), "{}", text(&o));
    let o = resume(&half, "1", &["--seed", "3"]);
    assert!(text(&o).contains("has finished 1 epoch(s)"), "{}", text(&o));
    let o = resume(&half, "2", &["--seed", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("resuming at epoch 2, after 0 of its 50 steps"), "{}", text(&o));
    for file in ["last.safetensors", "train_state.safetensors"] {
        assert!(checkpoint(&whole.join(file)) == checkpoint(&half.join(file)), "{file} differs after resuming");
    }
    let bytes = |d: &Path| std::fs::read(d.join("last.safetensors")).unwrap();
    assert!(bytes(&whole) == bytes(&half), "the checkpoints' bytes differ (metadata included)");
    assert_eq!(epochs(&half).len(), 2, "the metrics log goes on");
    assert_eq!(epochs(&half)[1]["accuracy"], epochs(&whole)[1]["accuracy"]);

    // Ctrl-C part-way through the first epoch, then --resume, ends where an uninterrupted epoch does.
    let stopped = scratch("resume-stopped");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnnc"))
        .args(["train", "specs/lenet_fashion.yaml", "--data", &data, "--limit", "400", "--seed", "3"])
        .args(["--log-every", "1", "--out", stopped.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0 && !line.contains("step 5:") {
        line.clear();
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("interrupted at epoch 1, step"), "{rest}");
    let o = resume(&stopped, "1", &["--seed", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let first = |d: &Path| checkpoint(&d.join("train_state.safetensors"));
    let (one, o) = train("resume-one", 400, &["--epochs", "1", "--seed", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(first(&stopped) == first(&one), "a run resumed after Ctrl-C differs");
    for d in [whole, half, stopped, one] {
        std::fs::remove_dir_all(d).ok();
    }
}

/// `--optimizer adamw --weight-decay W --schedule cosine` from the command line: every logged
/// step's rate is the cosine schedule's over the run's 20 steps (PyTorch's `CosineAnnealingLR`
/// stepped per batch, `T_max` = 20), and the decay changes the weights.
#[test]
fn adamw_with_a_cosine_schedule_runs_from_the_command_line() {
    let run = |name: &str, decay: &str| {
        let args = ["--optimizer", "adamw", "--lr", "0.01", "--schedule", "cosine", "--epochs", "2"];
        let (out, o) = train(name, 80, &[&args[..], &["--weight-decay", decay, "--log-every", "3"]].concat());
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        out
    };
    let (decayed, plain) = (run("adamw-decay", "0.05"), run("adamw-no-decay", "0"));
    let log = std::fs::read_to_string(decayed.join("metrics.jsonl")).unwrap();
    let steps: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["kind"] == "step")
        .collect();
    assert!(steps.len() >= 6, "{log}");
    for v in &steps {
        let step = v["step"].as_u64().unwrap() as f64;
        let want = 0.01 * (1.0 + (std::f64::consts::PI * (step - 1.0) / 20.0).cos()) / 2.0;
        assert!((v["lr"].as_f64().unwrap() - want).abs() < 1e-12, "step {step}: {v}");
    }
    let last = |d: &Path| checkpoint(&d.join("last.safetensors"));
    assert!(last(&decayed) != last(&plain), "weight decay changed nothing");
    for d in [decayed, plain] {
        std::fs::remove_dir_all(d).ok();
    }
}

/// A loss that overflows stops training, naming the step and the first layer gone non-finite.
#[test]
fn a_diverging_run_names_the_first_non_finite_layer() {
    let (out, o) = train("diverges", 200, &["--optimizer", "sgd", "--lr", "1e30", "--log-every", "1"]);
    assert_ne!(o.status.code(), Some(0));
    let t = text(&o);
    assert!(t.contains("the loss became") && t.contains("the first layer with non-finite values is `"), "{t}");
    assert!(t.contains("no checkpoint of this run was written"), "{t}");
    std::fs::remove_dir_all(&out).ok();

    // A run that diverges in its second epoch (StepLR multiplies the rate by 1e30 after the first)
    // names a step of that epoch and keeps the first epoch's checkpoint, untouched.
    let args = ["--optimizer", "sgd", "--lr", "0.01", "--epochs", "2", "--log-every", "5"];
    let (out, o) = train("diverges-later", 200, &[&args[..], &["--schedule", "step(1, gamma=1e30)"]].concat());
    assert_ne!(o.status.code(), Some(0));
    let t = text(&o);
    let last = out.join("last.safetensors");
    assert!(t.contains(&format!("{} is the last good checkpoint", last.display())), "{t}");
    let step: u64 = t
        .split("at step ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((26..=50).contains(&step), "25 steps an epoch; the loss went bad in the second: {t}");
    let (weights, info) = cnnc::runtime::weights::read_with_metadata(&last).unwrap();
    assert_eq!((info["epoch"].as_str(), info["step"].as_str()), ("1", "25"), "{t}");
    assert!(weights.names().iter().all(|n| weights.get(n).unwrap().data.iter().all(|v| v.is_finite())));
    std::fs::remove_dir_all(&out).ok();
}

/// On a terminal, training draws a progress bar (epoch, steps, loss, accuracy, images/s, ETA) that
/// follows the steps to the end of the epoch; through a pipe there is none, only plain lines. The
/// terminal is a pseudo-terminal from util-linux's `script` (Debian's essential `bsdutils`).
#[test]
fn a_terminal_shows_a_progress_bar_and_a_pipe_plain_lines() {
    let out = scratch("progress");
    let command = format!(
        "'{}' train specs/lenet_fashion.yaml --data '{}' --limit 160 --batch 8 --log-every 5 --out '{}'",
        env!("CARGO_BIN_EXE_cnnc"),
        fashion(),
        out.display()
    );
    let o = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("util-linux's `script` runs (apt-get install bsdutils)");
    let screen = text(&o);
    assert!(o.status.success(), "{screen}");
    // The bar is redrawn in place: split its frames at the carriage returns and line clears.
    let frames: Vec<&str> =
        screen.split(['\r', '\n']).flat_map(|l| l.split("\x1b[2K")).filter(|f| f.contains(" steps, ")).collect();
    let steps = |f: &str| -> Option<u64> { f.split_once("] ")?.1.split('/').next()?.parse().ok() };
    assert!(frames.iter().any(|f| f.contains("epoch 1/1 [") && f.contains("(ETA ")), "{screen}");
    let logged = frames.iter().find(|f| f.contains(", loss ")).unwrap_or_else(|| panic!("no loss shown: {screen}"));
    assert!(logged.contains("accuracy ") && logged.contains(" images/s"), "{logged}");
    let counts: Vec<u64> = frames.iter().filter_map(|f| steps(f)).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "the bar goes forward: {counts:?}");
    assert_eq!(counts.last(), Some(&20), "the bar reaches the epoch's 20 steps: {screen}");
    assert!(screen.contains("epoch 1/1: train loss"), "{screen}");
    std::fs::remove_dir_all(&out).ok();
    // Through a pipe: the log lines instead of a bar.
    let (out, o) = train("progress-pipe", 160, &["--batch", "8", "--log-every", "5"]);
    let piped = text(&o);
    assert!(o.status.success(), "{piped}");
    assert!(!piped.contains("(ETA ") && !piped.contains('\r'), "{piped}");
    assert_eq!(piped.matches("epoch 1 step ").count(), 4, "{piped}");
    std::fs::remove_dir_all(&out).ok();
}

/// Batches made on the GPU from the held images and batches made on the host
/// (`--host-batches`) are the same, crops and flips included: the two runs write the same
/// checkpoint, bit for bit, and only the first says its images stay on the GPU.
#[test]
fn batches_made_on_the_gpu_are_the_hosts() {
    let augment = ["--augment", "random_crop(28, pad=3), hflip", "--batch", "16"];
    let (held, o) = train("held-batches", 480, &augment);
    assert!(o.status.success() && text(&o).contains("stay on the GPU as bytes"), "{}", text(&o));
    let (host, o) = train("host-batches", 480, &[&augment[..], &["--host-batches"]].concat());
    assert!(o.status.success() && !text(&o).contains("stay on the GPU"), "{}", text(&o));
    assert!(checkpoint(&held.join("last.safetensors")) == checkpoint(&host.join("last.safetensors")));
    for dir in [held, host] {
        std::fs::remove_dir_all(dir).ok();
    }
}
