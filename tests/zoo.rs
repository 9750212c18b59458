//! Every zoo spec against torchvision's reference facts: parameter count exact, MACs within
//! 0.5 %, output shape, and the weight table identical in names and shapes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cnnc::compiler::summary::summarize;
use cnnc::Expanded;
use serde_json::Value;

/// Zoo models whose spec is still to be written. The list may only shrink.
const NOT_YET_WRITTEN: &[&str] = &[];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn reference() -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(root().join("tests/reference/torchvision_facts.json")).expect("reference file");
    serde_json::from_str(&text).expect("reference JSON")
}

/// Compares one spec with its reference entry; returns the differences.
fn compare(name: &str, facts: &Value) -> Vec<String> {
    let path = root().join("specs").join(format!("{name}.yaml"));
    let compilation = match cnnc::compile_path(&path) {
        Ok(c) => c,
        Err(e) => return vec![e.to_string()],
    };
    let model = match compilation.result {
        Ok(Expanded::Model(g)) => match cnnc::compiler::Model::new(g) {
            Ok(model) => model,
            Err(d) => return vec![cnnc::render::render_all(&[d], &compilation.sources, false)],
        },
        Ok(Expanded::Library(_)) => return vec!["is a library, not a model".into()],
        Err(diags) => return vec![cnnc::render::render_all(&diags, &compilation.sources, false)],
    };
    let s = summarize(&model, 1);
    let mut problems = Vec::new();
    let as_dims =
        |v: &Value| -> Vec<usize> { v.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect() };
    if s.input.dims() != as_dims(&facts["input"]).as_slice() {
        problems.push(format!("input {} != {:?}", s.input, as_dims(&facts["input"])));
    }
    let want_out = as_dims(&facts["output"]);
    if s.output.dims() != &want_out[1..] {
        problems.push(format!("output {} != {:?} (without batch)", s.output, &want_out[1..]));
    }
    let want_params = facts["params"].as_u64().unwrap();
    if s.params != want_params {
        problems.push(format!("params {} != {want_params}", s.params));
    }
    let want_macs = facts["macs"].as_u64().unwrap();
    let rel = (s.macs as f64 - want_macs as f64).abs() / want_macs as f64;
    if rel > 0.005 {
        problems.push(format!("macs {} differ from {want_macs} by {:.2} %", s.macs, rel * 100.0));
    }
    let ours: BTreeMap<&str, &[usize]> = s.weights.iter().map(|(n, sh)| (n.as_str(), sh.as_slice())).collect();
    let theirs: BTreeMap<String, Vec<usize>> =
        facts["state_dict"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), as_dims(v))).collect();
    for (k, v) in &theirs {
        match ours.get(k.as_str()) {
            None => problems.push(format!("missing weight {k} {v:?}")),
            Some(sh) if *sh != v.as_slice() => problems.push(format!("weight {k}: {sh:?} != {v:?}")),
            _ => {}
        }
    }
    for k in ours.keys() {
        if !theirs.contains_key(*k) {
            problems.push(format!("unexpected weight {k}"));
        }
    }
    if s.weights.len() != ours.len() {
        problems.push("duplicate weight names".into());
    }
    problems.truncate(20);
    problems
}

#[test]
fn every_zoo_spec_matches_torchvision() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, facts) in reference() {
        if NOT_YET_WRITTEN.contains(&name.as_str()) {
            continue;
        }
        checked += 1;
        let problems = compare(&name, &facts);
        if !problems.is_empty() {
            failures.push(format!("{name}:\n  {}", problems.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} zoo specs differ from torchvision:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn specs_still_to_write_are_really_missing() {
    for name in NOT_YET_WRITTEN {
        assert!(
            !root().join("specs").join(format!("{name}.yaml")).exists(),
            "{name} exists: remove it from NOT_YET_WRITTEN"
        );
    }
}
