//! YAML and the DSL are two spellings of one language: converting any zoo spec or library
//! either way and back loses nothing, and every spelling compiles to the same graph.

use std::path::{Path, PathBuf};

use cnnc::compiler::source::SourceMap;
use cnnc::compiler::spec::ast::SpecFile;
use cnnc::compiler::spec::load::{parse_bytes, parse_one};
use cnnc::compiler::spec::print::{to_dsl, to_yaml};
use cnnc::{Expanded, Graph};

fn specs(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

fn parse(path: &Path) -> SpecFile {
    let mut sources = SourceMap::default();
    match parse_one(path, &mut sources).unwrap() {
        Ok(spec) => spec,
        Err(d) => panic!("{}: {}", path.display(), cnnc::render::render_all(&d, &sources, false)),
    }
}

fn reparse(path: &Path, text: &str) -> SpecFile {
    let mut sources = SourceMap::default();
    match parse_bytes(&path.display().to_string(), path, text.as_bytes().to_vec(), &mut sources) {
        Ok(spec) => spec,
        Err(d) => panic!("{}:\n{text}\n{}", path.display(), cnnc::render::render_all(&d, &sources, false)),
    }
}

/// Everything about a graph that a spelling could change: ops, paths, shapes, parameters, metadata.
fn fingerprint(graph: &Graph) -> Vec<String> {
    let mut lines: Vec<String> = graph
        .nodes()
        .map(|(_, n)| {
            let params: Vec<String> = n.params.iter().map(|p| format!("{}{:?}", p.name, p.shape)).collect();
            format!(
                "{:?} {} {} {:?} training={} [{}]",
                n.op,
                n.path,
                n.shape,
                n.inputs,
                n.training_only,
                params.join(" ")
            )
        })
        .collect();
    lines.push(format!("{:?}", graph.meta));
    lines
}

fn compile(path: &Path, text: Option<&str>) -> Graph {
    let compilation = match text {
        Some(t) => cnnc::compile_bytes(path, t.as_bytes().to_vec()),
        None => cnnc::compile_path(path).unwrap(),
    };
    match compilation.result {
        Ok(Expanded::Model(g)) => g,
        Ok(Expanded::Library(_)) => panic!("{} is a library", path.display()),
        Err(d) => panic!("{}: {}", path.display(), cnnc::render::render_all(&d, &compilation.sources, false)),
    }
}

#[test]
fn every_spec_survives_yaml_to_dsl_to_yaml() {
    let mut files = specs("specs", "yaml");
    files.extend(specs("specs/lib", "yaml"));
    assert!(files.len() > 47);
    for path in files {
        let ast = parse(&path);
        let yaml = to_yaml(&ast);
        let dsl = to_dsl(&ast);
        let from_dsl = reparse(&path.with_extension("cnn"), &dsl);
        assert_eq!(to_yaml(&from_dsl), yaml, "{}: YAML → DSL → YAML changed the spec", path.display());
        let from_yaml = reparse(&path, &yaml);
        assert_eq!(to_dsl(&from_yaml), dsl, "{}: printing YAML and reading it back changed the spec", path.display());
    }
}

#[test]
fn every_dsl_spec_survives_dsl_to_yaml_to_dsl() {
    let mut files = specs("specs", "cnn");
    files.extend(specs("specs/lib", "cnn"));
    for path in files {
        let ast = parse(&path);
        let dsl = to_dsl(&ast);
        let from_yaml = reparse(&path.with_extension("yaml"), &to_yaml(&ast));
        assert_eq!(to_dsl(&from_yaml), dsl, "{}: DSL → YAML → DSL changed the spec", path.display());
    }
}

#[test]
fn converted_zoo_specs_compile_to_the_same_graph() {
    for path in specs("specs", "yaml") {
        let original = fingerprint(&compile(&path, None));
        let ast = parse(&path);
        let dsl = to_dsl(&ast);
        let via_dsl = fingerprint(&compile(&path.with_extension("cnn"), Some(&dsl)));
        assert_eq!(via_dsl, original, "{}: the DSL spelling compiles differently", path.display());
        let yaml = to_yaml(&reparse(&path.with_extension("cnn"), &dsl));
        let via_yaml = fingerprint(&compile(&path, Some(&yaml)));
        assert_eq!(via_yaml, original, "{}: YAML → DSL → YAML compiles differently", path.display());
    }
}

#[test]
fn dsl_zoo_specs_match_their_yaml_twins() {
    let dsl_specs = specs("specs", "cnn");
    for name in ["lenet", "resnet50", "googlenet", "densenet121"] {
        assert!(dsl_specs.iter().any(|p| p.file_stem().unwrap() == name), "specs/{name}.cnn is missing");
    }
    for path in dsl_specs {
        let twin = path.with_extension("yaml");
        assert_eq!(fingerprint(&compile(&path, None)), fingerprint(&compile(&twin, None)), "{}", path.display());
    }
}
