//! `cnnc train` and `cnnc eval` on torchvision's `ImageFolder` layout: images of their own sizes,
//! resized and cropped as the spec's `preprocess` says, augmented by `random_resized_crop`; and
//! the folder faults (no held-out folder, an empty class, an unreadable image, classes that are
//! not the model's) refused with the place named, or skipped with `--skip-bad`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cnnc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnc")).args(args).output().expect("cnnc runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cnnc-folder-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A two-class folder: `red` images are reddish and `blue` ones bluish, with noise, each of its
/// own size (between 20 and 44 pixels a side), `per_class` per class in each split.
fn folder(name: &str, per_class: usize) -> PathBuf {
    let dir = scratch(name);
    let mut state = 0x9e37_79b9_u32;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 60) as u8
    };
    for split in ["train", "val"] {
        for (class, colour) in [("blue", [20u8, 40, 180]), ("red", [190u8, 40, 30])] {
            let class_dir = dir.join(split).join(class);
            std::fs::create_dir_all(&class_dir).unwrap();
            for i in 0..per_class {
                let (w, h) = (20 + (i * 7) % 25, 20 + (i * 11) % 25);
                let img = image::RgbImage::from_fn(w as u32, h as u32, |_, _| {
                    image::Rgb(colour.map(|c| c.saturating_add(noise()).saturating_sub(30)))
                });
                img.save(class_dir.join(format!("{i:03}.png"))).unwrap();
            }
        }
    }
    dir
}

/// A small classifier of 3×16×16 images that resizes and centre-crops as ImageNet models do.
fn spec(dir: &Path, classes: usize) -> PathBuf {
    let path = dir.join(format!("tiny{classes}.yaml"));
    let text = format!(
        "model: tiny\ninput: [3, 16, 16]\npreprocess: {{resize: 18, crop: 16, mean: [0.5, 0.5, 0.5], std: [0.25, \
         0.25, 0.25]}}\nbody:\n  - conv(4, 3, pad=1)\n  - relu\n  - maxpool(4)\n  - flatten\n  - linear({classes})\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn data(dir: &Path) -> String {
    format!("imagefolder:{}", dir.display())
}

#[test]
fn a_folder_of_images_of_many_sizes_trains_and_evaluates() {
    let dir = folder("learns", 24);
    let spec = spec(&dir, 2);
    let out = dir.join("out");
    let o = cnnc(&[
        "train",
        spec.to_str().unwrap(),
        "--data",
        &data(&dir),
        "--augment",
        "random_resized_crop(16), hflip",
        "--epochs",
        "3",
        "--batch",
        "4",
        "--lr",
        "0.01",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("48 training and 48 test images"), "{}", text(&o));
    let o = cnnc(&[
        "eval",
        spec.to_str().unwrap(),
        "--weights",
        out.join("best.safetensors").to_str().unwrap(),
        "--data",
        &data(&dir),
        "--split",
        "val",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["images"], 48);
    assert!(v["accuracy"].as_f64().unwrap() >= 0.9, "colour is easy to tell apart: {v}");
    let names: Vec<&str> = v["per_class"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["blue", "red"], "classes sorted by folder name, as ImageFolder");
    std::fs::remove_dir_all(&dir).ok();
}

/// A split too large to hold decoded (here: any, with a limit of 0 MiB) is decoded batch by batch
/// from its files, and gives the batches, and so the training run, of one held in memory; an image
/// whose header reads but whose pixels do not is named when a batch takes it.
#[test]
fn a_folder_too_large_to_hold_is_decoded_batch_by_batch_alike() {
    use cnnc::runtime::data::{open, Augment, Images, ReadOptions, Split, Transform};
    let dir = folder("stream", 5);
    let held = open(&data(&dir), Split::Train, ReadOptions::new(3)).unwrap();
    let streamed =
        open(&data(&dir), Split::Train, ReadOptions { max_decoded_bytes: 0, ..ReadOptions::new(3) }).unwrap();
    assert!(matches!(held.images, Images::Each(_)) && matches!(streamed.images, Images::Files { .. }));
    assert_eq!(
        (&held.labels, &held.image_files, &held.label_files),
        (&streamed.labels, &streamed.image_files, &streamed.label_files)
    );
    assert_eq!(held.images.shapes(), streamed.images.shapes());
    let transform = Transform {
        input: [3, 16, 16],
        augment: vec![Augment::RandomResizedCrop { size: 16 }, Augment::HorizontalFlip],
        resize: Some(cnnc::compiler::graph::Resize::ShorterSide(18)),
        centre_crop: true,
        mean: vec![0.5; 3],
        std: vec![0.25; 3],
    };
    let order = [7, 2, 9, 0, 4, 1, 8];
    let (a, b) = (held.batch(&order, &transform, 11, 3).unwrap(), streamed.batch(&order, &transform, 11, 3).unwrap());
    assert!(a == b, "a batch decoded from the files differs from the one held in memory");

    // Through the command line: one epoch from the files gives the weights of one from memory.
    let spec = spec(&dir, 2);
    let train = |out: &str, memory: Option<&str>| {
        let out = dir.join(out);
        let mut command = Command::new(env!("CARGO_BIN_EXE_cnnc"));
        command.args(["train", spec.to_str().unwrap(), "--data", &data(&dir), "--batch", "4", "--epochs", "1"]);
        command.args(["--augment", "random_resized_crop(16), hflip", "--out", out.to_str().unwrap()]);
        if let Some(mib) = memory {
            command.env("CNNC_DATASET_MEMORY_MIB", mib);
        }
        let o = command.output().unwrap();
        (o.status.code(), text(&o), out.join("last.safetensors"))
    };
    let (code, log, from_memory) = train("held", None);
    assert_eq!(code, Some(0), "{log}");
    let (code, log, from_files) = train("streamed", Some("0"));
    assert_eq!(code, Some(0), "{log}");
    let (a, b) = (std::fs::read(from_memory).unwrap(), std::fs::read(from_files).unwrap());
    let (a, b) =
        (safetensors::SafeTensors::deserialize(&a).unwrap(), safetensors::SafeTensors::deserialize(&b).unwrap());
    assert_eq!(a.len(), b.len());
    for (name, tensor) in a.tensors() {
        assert_eq!(tensor.data(), b.tensor(&name).unwrap().data(), "{name}");
    }
    let (code, log, _) = train("bad-setting", Some("lots"));
    assert_ne!(code, Some(0));
    assert!(log.contains("CNNC_DATASET_MEMORY_MIB=lots is not a whole number of MiB"), "{log}");

    // A PNG cut short after its header: its size reads, its pixels do not.
    let cut = dir.join("train/red/002.png");
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, log, _) = train("cut", Some("0"));
    assert_ne!(code, Some(0));
    assert!(log.contains("train/red/002.png"), "{log}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn folder_faults_are_named_and_bad_images_can_be_skipped() {
    let dir = folder("faults", 3);
    let spec2 = spec(&dir, 2);
    let eval = |spec: &Path, data: &str, extra: &[&str]| {
        let weights = dir.join("w.safetensors");
        if !weights.exists() {
            let w = dir.join("w");
            let o =
                cnnc(&["train", spec.to_str().unwrap(), "--data", data, "--batch", "2", "--out", w.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            std::fs::copy(dir.join("w/last.safetensors"), &weights).unwrap();
        }
        let mut args = vec!["eval", spec.to_str().unwrap(), "--weights", weights.to_str().unwrap(), "--data", data];
        args.extend(extra);
        cnnc(&args)
    };
    let ok = eval(&spec2, &data(&dir), &[]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));

    // A model with another number of classes is told how to fit the folder.
    let o = eval(&spec(&dir, 3), &data(&dir), &[]);
    assert!(text(&o).contains("has 2 classes (blue, red) and the model outputs 3"), "{}", text(&o));
    assert!(text(&o).contains("num_classes=2"), "{}", text(&o));

    // An image that does not decode is named, and skipped with --skip-bad.
    let bad = dir.join("val/red/001.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let o = eval(&spec2, &data(&dir), &[]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("val/red/001.png"), "{}", text(&o));
    let o = eval(&spec2, &data(&dir), &["--skip-bad", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("skipped 1 unreadable image(s)"), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["images"], 5);

    // The same for a training image: named before any step, skipped and counted with --skip-bad.
    let train = |spec: &Path, out: &str, extra: &[&str]| {
        let (out, folder) = (dir.join(out), data(&dir));
        let mut args = vec!["train", spec.to_str().unwrap(), "--data", &folder, "--batch", "2"];
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend(extra);
        cnnc(&args)
    };
    let bad_train = dir.join("train/blue/002.png");
    let good_train = std::fs::read(&bad_train).unwrap();
    std::fs::write(&bad_train, b"not a png either").unwrap();
    let o = train(&spec2, "bad-train", &[]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("train/blue/002.png") && !text(&o).contains("epoch 1/1:"), "{}", text(&o));
    let o = train(&spec2, "skipped-train", &["--skip-bad"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("skipped 1 unreadable image(s)"), "{}", text(&o));
    assert!(text(&o).contains("train/blue/002.png"), "the skipped image is named: {}", text(&o));
    std::fs::write(&bad_train, good_train).unwrap();

    // Without a resize, an image of another size than the model's input is named before training.
    let fixed = dir.join("fixed.yaml");
    let body = "body:\n  - conv(4, 3, pad=1)\n  - relu\n  - maxpool(4)\n  - flatten\n  - linear(2)\n";
    std::fs::write(&fixed, format!("model: fixed\ninput: [3, 20, 20]\n{body}")).unwrap();
    let o = train(&fixed, "wrong-size", &[]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("001.png") && text(&o).contains("27"), "{}", text(&o));

    // A class folder with no image, and a folder with no `val`.
    std::fs::remove_file(&bad).unwrap();
    std::fs::create_dir_all(dir.join("val/green")).unwrap();
    std::fs::write(dir.join("val/green/notes.txt"), "no images here").unwrap();
    let o = eval(&spec2, &data(&dir), &[]);
    assert!(text(&o).contains("val/green") && text(&o).contains("holds no image"), "{}", text(&o));
    std::fs::remove_dir_all(dir.join("val")).unwrap();
    let o = eval(&spec2, &data(&dir), &[]);
    assert!(text(&o).contains("no `val` or `test` folder"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn train_and_val_classes_must_agree() {
    let dir = folder("classes", 2);
    std::fs::rename(dir.join("val/red"), dir.join("val/scarlet")).unwrap();
    let o = cnnc(&[
        "train",
        spec(&dir, 2).to_str().unwrap(),
        "--data",
        &data(&dir),
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("name different classes"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).ok();
}

/// A spec's `train:` section is the recipe (named in the output), and the command line overrides
/// any of it; a value that does not parse is named with its place in the spec.
#[test]
fn a_spec_carries_its_training_recipe() {
    let dir = folder("recipe", 8);
    let spec = dir.join("tiny_recipe.yaml");
    let source = std::fs::read_to_string(self::spec(&dir, 2)).unwrap().replace(
        "body:",
        "train: {optimizer: sgd, lr: 0.05, momentum: 0.9, batch: 4, epochs: 2, augment: \"random_resized_crop(16), \
         hflip\", seed: 5}\nbody:",
    );
    std::fs::write(&spec, source).unwrap();
    let train = |out: &str, extra: &[&str]| {
        let out = dir.join(out);
        let data = data(&dir);
        let mut args = vec!["train", spec.to_str().unwrap(), "--data", &data];
        args.extend(extra);
        args.extend(["--out", out.to_str().unwrap()]);
        let o = cnnc(&args);
        (out, o)
    };
    let (out, o) = train("a", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("from the spec's `train:` section: optimizer, lr, momentum, batch, epochs, augment, seed"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("batch 4, 4 steps per epoch") && text(&o).contains("epoch 2/2"), "{}", text(&o));
    let (_, o) = train("b", &["--epochs", "1", "--batch", "2"]);
    assert!(
        text(&o).contains("from the spec's `train:` section: optimizer, lr, momentum, augment, seed"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("batch 2, 8 steps per epoch") && !text(&o).contains("epoch 2/"), "{}", text(&o));
    std::fs::write(&spec, std::fs::read_to_string(&spec).unwrap().replace("hflip", "vflip")).unwrap();
    let (_, o) = train("c", &[]);
    assert!(text(&o).contains("`train: augment` (") && text(&o).contains("tiny_recipe.yaml:"), "{}", text(&o));
    assert!(text(&o).contains("`vflip` is not an augmentation"), "{}", text(&o));
    assert!(out.join("best.safetensors").is_file());
    std::fs::remove_dir_all(&dir).ok();
}
