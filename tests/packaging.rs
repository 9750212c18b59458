//! What the crates ship and link: the runtime (and so every crate `cnnc build --crate` generates)
//! depends on the IR crate, not on the compiler with its parser and diagnostics renderer, and the
//! runtime's package holds the WGSL kernels it includes.

use std::process::Command;

fn cargo(args: &[&str]) -> String {
    let out =
        Command::new(env!("CARGO")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("cargo runs");
    assert!(out.status.success(), "cargo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn the_runtime_links_no_parser_or_renderer() {
    let tree = cargo(&["tree", "-p", "cnnc-runtime", "-e", "normal", "--prefix", "none", "--offline"]);
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(crates.contains(&"cnnc-ir"), "{tree}");
    for unwanted in ["cnnc-compiler", "pest", "saphyr-parser", "miette"] {
        assert!(!crates.contains(&unwanted), "cnnc-runtime depends on {unwanted}:\n{tree}");
    }
}

#[test]
fn the_runtime_package_holds_its_shaders() {
    let files = cargo(&["package", "-p", "cnnc-runtime", "--list", "--allow-dirty", "--offline"]);
    let shaders = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/runtime/shaders")).expect("shaders folder");
    let mut count = 0;
    for entry in shaders {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        assert!(files.lines().any(|f| f == format!("shaders/{name}")), "`shaders/{name}` is not packaged:\n{files}");
        count += 1;
    }
    assert!(count >= 10, "only {count} shaders");
    // Everything the kernels include lies inside the package.
    let kernels =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/runtime/src/gpu/kernels/mod.rs")).unwrap();
    assert!(!kernels.contains("include_str!(\"../../../../"), "a kernel includes a file outside the runtime package");
}

/// `cnnc build --crate` writes the lock file cnnc was built with (`include_str!`), so the `cnnc`
/// package must carry it.
#[test]
fn the_cnnc_package_holds_its_lock_file() {
    let files = cargo(&["package", "-p", "cnnc", "--list", "--allow-dirty", "--offline"]);
    assert!(files.lines().any(|f| f == "Cargo.lock"), "{files}");
}
