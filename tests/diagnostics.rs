//! The malformed-spec corpus: every file under `tests/bad/` must be refused with diagnostics that
//! point into the spec, never a panic. The rendered text of each is a reviewed snapshot.

use std::path::{Path, PathBuf};

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new("tests/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/bad exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "cnn"))
        .collect();
    files.sort();
    files
}

/// Renders the diagnostics a spec produces; panics if the spec is accepted.
fn diagnose(path: &Path) -> String {
    let compilation = cnnc::compile_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let Err(diags) = compilation.result else { panic!("{} was accepted", path.display()) };
    for d in &diags {
        assert!(d.primary.is_some(), "{}: `{}` points nowhere", path.display(), d.message);
        assert!(is_code(d.code), "{}: `{}` has no stable code (`{}`)", path.display(), d.message, d.code);
    }
    cnnc::render::render_all(&diags, &compilation.sources, false)
}

/// `cnnc::<area>::<what>`, both parts lowercase words.
fn is_code(code: &str) -> bool {
    const AREAS: [&str; 13] = [
        "file", "import", "yaml", "syntax", "spec", "args", "expr", "module", "name", "shape", "meta", "limit",
        "internal",
    ];
    let parts: Vec<&str> = code.split("::").collect();
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    matches!(parts[..], ["cnnc", area, what] if AREAS.contains(&area) && word(what))
}

#[test]
fn the_corpus_is_large_enough() {
    assert!(corpus().len() >= 50, "only {} malformed specs", corpus().len());
}

#[test]
fn every_malformed_spec_is_refused_with_a_located_diagnostic() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots/bad");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for path in corpus() {
            // Each file is refused quickly (a generous bound for a debug build on a busy machine;
            // the module-call explosion takes about a second here and 0.2 s in release).
            let started = std::time::Instant::now();
            let rendered = diagnose(&path);
            let took = started.elapsed();
            assert!(took.as_secs_f64() < 10.0, "{}: {took:?}", path.display());
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let shown = path.display().to_string();
            // `[file:line:column]` above an excerpt, or `file:line:column:` alone for a line too long
            // to show.
            assert!(
                rendered.contains(&format!("{shown}:")) || rendered.contains("support/"),
                "{shown}: no file:line:column in\n{rendered}"
            );
            insta::assert_snapshot!(name, rendered);
        }
    });
}

/// The README's fix for `cnnc::name::duplicate_weight` (named branches) compiles, and gives each
/// layer the weight name its comment says.
#[test]
fn the_readmes_named_branches_give_the_names_it_shows() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let block = readme
        .split("```yaml\n")
        .skip(1)
        .map(|b| &b[..b.find("```").unwrap()])
        .find(|b| b.contains("block.b1.weight"))
        .expect("the README shows named branches");
    let spec = format!("model: m\ninput: [16, 8, 8]\nbody:\n{block}");
    let compilation = cnnc::compile_bytes(Path::new("README-example.yaml"), spec.into_bytes());
    let expanded =
        compilation.result.unwrap_or_else(|d| panic!("{}", cnnc::render::render_all(&d, &compilation.sources, false)));
    let cnnc::compiler::Expanded::Model(graph) = expanded else { panic!("a model") };
    let names: Vec<String> = graph.weight_table().params.iter().map(|p| p.name.clone()).collect();
    for shown in
        ["block.b1.weight", "block.b2.0.weight", "block.b2.1.weight", "0.weight", "1.weight", "downsample.weight"]
    {
        assert!(names.iter().any(|n| n == shown), "{shown} not in {names:?}");
    }
}
