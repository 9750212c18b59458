//! `cnnc build --crate`: the standalone crate it writes builds with Cargo as it is, and its binary
//! gives exactly `cnnc run`'s outputs and top classes for the same checkpoint and input.
//!
//! The crate is built in the debug profile into `target/generated-crate` to keep CI short (it
//! compiles the runtime's dependencies once more, with the crate's own feature set); a release
//! build (`cargo build --release` in the crate) differs only in optimisation.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn write_input(path: &Path) {
    use npyz::WriterBuilder;
    let input = cnnc::runtime::synthetic::input(0, vec![2, 3, 32, 32]);
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::new().default_dtype().shape(&[2, 3, 32, 32]).writer(&mut buf).begin_nd().unwrap();
    w.extend(input.data).unwrap();
    w.finish().unwrap();
    std::fs::write(path, &buf).unwrap();
}

#[test]
fn slow_generated_crate_builds_and_runs_like_cnnc_run() {
    let dir = std::env::temp_dir().join(format!("cnnc-crate-{}", std::process::id()));
    let krate = dir.join("lenet");
    std::fs::create_dir_all(&dir).unwrap();
    let cnnc =
        |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_cnnc")).args(args).current_dir(root()).output().unwrap();
    let o = cnnc(&["build", "specs/lenet.yaml", "--crate", krate.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    for file in ["Cargo.toml", "Cargo.lock", "src/lib.rs", "src/main.rs"] {
        assert!(krate.join(file).is_file(), "{file} written");
    }
    // The checkout's lock file pins the dependency versions cnnc is tested with.
    assert_eq!(std::fs::read(krate.join("Cargo.lock")).unwrap(), std::fs::read(root().join("Cargo.lock")).unwrap());
    let target = root().join("target/generated-crate");
    let build = Command::new(env!("CARGO"))
        .args(["build", "--quiet"])
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(build.status.success(), "cargo build in the generated crate: {}", text(&build));
    let binary = target.join("debug").join(format!("lenet{}", std::env::consts::EXE_SUFFIX));

    let input = dir.join("x.npy");
    write_input(&input);
    let weights = root().join("tests/fixtures/lenet.safetensors");
    let (ours, theirs) = (dir.join("generated.npy"), dir.join("cnnc.npy"));
    let args = |out: &Path| {
        ["--weights", weights.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()]
            .map(str::to_string)
    };
    let generated = Command::new(&binary).args(args(&ours)).arg("--top").arg("3").output().unwrap();
    assert!(generated.status.success(), "{}", text(&generated));
    let mut run_args = vec!["run".to_string(), "specs/lenet.yaml".to_string()];
    run_args.extend(args(&theirs));
    run_args.extend(["--top".to_string(), "3".to_string()]);
    let run = cnnc(&run_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(std::fs::read(&ours).unwrap(), std::fs::read(&theirs).unwrap(), "the logits differ");
    assert_eq!(String::from_utf8_lossy(&generated.stdout), String::from_utf8_lossy(&run.stdout));
    assert!(String::from_utf8_lossy(&run.stdout).contains("input 1:"));

    // A reader that has gone (`| head -1`) ends the program quietly, as a closed pipe ends Unix
    // tools, instead of a panic.
    let mut child = Command::new(&binary)
        .args(["--weights", weights.to_str().unwrap(), "--input", input.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let closed = child.wait_with_output().unwrap();
    assert_eq!(closed.status.code(), Some(141), "{}", text(&closed));
    assert!(closed.stderr.is_empty(), "{}", text(&closed));

    // A PyTorch zip checkpoint loads too, and a wrong one is reported by name.
    let pth = root().join("tests/fixtures/lenet_zip.pth");
    let o = Command::new(&binary)
        .args(["--weights", pth.to_str().unwrap(), "--input", input.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let wrong = root().join("tests/fixtures/mobilenet_v2.npy");
    let o = Command::new(&binary)
        .args(["--weights", wrong.to_str().unwrap(), "--input", input.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("error:"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).ok();
}
