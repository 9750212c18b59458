//! What the crates ship and link: the runtime (and so every crate `cnnc build --crate` generates)
//! depends on the IR crate, not on the compiler with its parser and diagnostics renderer, and the
//! runtime's package holds the WGSL kernels it includes, and every package every file its sources
//! include at compile time.

use std::path::{Component, Path, PathBuf};
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
}

/// The files a source includes at compile time (`include_str!`, `include_bytes!`): each literal
/// path, resolved against the source's folder (or, after `env!("CARGO_MANIFEST_DIR")`, the
/// crate's root), relative to the crate's root.
fn included_files(crate_root: &Path, source: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(crate_root.join(source)).unwrap();
    let folder = source.parent().unwrap_or(Path::new(""));
    let mut found = Vec::new();
    for macro_call in ["include_str!(", "include_bytes!("] {
        for (at, _) in text.match_indices(macro_call) {
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            if text[line_start..at].trim_start().starts_with("//") {
                continue;
            }
            // The call's arguments, up to its closing parenthesis.
            let call = &text[at + macro_call.len()..];
            let mut depth = 1;
            let end = call
                .char_indices()
                .find(|(_, ch)| {
                    depth += match ch {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(call.len(), |(i, _)| i);
            let call = &call[..end];
            let from_root = call.contains("CARGO_MANIFEST_DIR");
            // The last string literal of the call is the path (after `env!(...)`'s in a concat!).
            let Some(end) = call.rfind('"') else { continue };
            let Some(start) = call[..end].rfind('"') else { continue };
            let literal = &call[start + 1..end];
            let joined = if from_root { PathBuf::from(literal.trim_start_matches('/')) } else { folder.join(literal) };
            // Lexically normalised: `..` climbs a folder and may climb out of the crate.
            let mut path = PathBuf::new();
            for part in joined.components() {
                match part {
                    Component::ParentDir => {
                        if !path.pop() {
                            path.push("..");
                        }
                    }
                    Component::CurDir => {}
                    other => path.push(other),
                }
            }
            found.push(path);
        }
    }
    found
}

/// Every crate's package holds every file its sources include at compile time, so each package
/// builds on its own (the check `cargo package`'s verification build would make, without its
/// builds of every crate). The macro's generated `include_str!` of a user's spec is not a file of
/// the package, and is skipped as a call without a literal path.
#[test]
fn every_package_holds_the_files_its_sources_include() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for (name, dir) in [
        ("cnnc", ""),
        ("cnnc-ir", "ir"),
        ("cnnc-compiler", "compiler"),
        ("cnnc-runtime", "runtime"),
        ("cnnc-macros", "macros"),
    ] {
        let files = cargo(&["package", "-p", name, "--list", "--allow-dirty", "--offline"]);
        let packaged: Vec<&str> = files.lines().collect();
        let crate_root = root.join(dir);
        // What a package's build compiles: its library and binaries (not its tests or examples).
        for source in packaged.iter().filter(|f| f.ends_with(".rs") && (f.starts_with("src/") || **f == "build.rs")) {
            for included in included_files(&crate_root, Path::new(source)) {
                let shown = included.to_string_lossy().replace('\\', "/");
                assert!(
                    packaged.contains(&shown.as_str()),
                    "{name}: `{source}` includes `{shown}`, which its package does not hold"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "only {checked} included files found: the scan is broken");
    // The scan itself: the runtime's `../../../shaders/` includes resolve to its `shaders/` folder.
    let outside = included_files(&root.join("runtime"), Path::new("src/gpu/kernels/mod.rs"));
    assert!(outside.iter().all(|p| p.starts_with("shaders")), "{outside:?}");
}

/// `cnnc build --crate` writes the lock file cnnc was built with (`include_str!`), so the `cnnc`
/// package must carry it.
#[test]
fn the_cnnc_package_holds_its_lock_file() {
    let files = cargo(&["package", "-p", "cnnc", "--list", "--allow-dirty", "--offline"]);
    assert!(files.lines().any(|f| f == "Cargo.lock"), "{files}");
}
