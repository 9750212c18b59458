//! Weights: checkpoint files read into named tensors, and matched by name against a graph's
//! weight table. Every mismatch is reported at once.

pub(crate) mod pickle;
mod pth;
mod safetensors_file;

pub use safetensors_file::{read_with_metadata, write as write_safetensors, write_checkpoint, write_with_metadata};

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use cnnc_ir::graph::WeightTable;

use crate::tensor::Element;
use crate::{RuntimeError, Tensor};

/// Tensors by state_dict name: f32 as checkpoints hold them, f64 in the training reference.
#[derive(Clone, Debug)]
pub struct Weights<T = f32> {
    tensors: HashMap<String, Tensor<T>>,
    /// Where in the file the tensors were found, when not at its top level (`model_state_dict`).
    origin: Option<String>,
    /// Entries of the file's state_dict that hold something else than a tensor: name and what
    /// they hold (`a list`), so that a name the spec misses there is reported as such.
    not_tensors: Vec<(String, String)>,
    /// The key paths of the file's other state_dicts, not used (`ema`, when `model` was).
    alternatives: Vec<String>,
}

impl<T> Default for Weights<T> {
    fn default() -> Weights<T> {
        Weights { tensors: HashMap::new(), origin: None, not_tensors: Vec::new(), alternatives: Vec::new() }
    }
}

impl<T: Element> Weights<T> {
    /// Adds or replaces a tensor.
    pub fn insert(&mut self, name: String, tensor: Tensor<T>) {
        self.tensors.insert(name, tensor);
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor<T>> {
        self.tensors.get(name)
    }

    /// The tensor called `name`, to change in place.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Tensor<T>> {
        self.tensors.get_mut(name)
    }

    /// Every tensor converted to element type `U`.
    pub fn convert<U: Element>(&self) -> Weights<U> {
        Weights {
            tensors: self.tensors.iter().map(|(k, v)| (k.clone(), v.convert())).collect(),
            origin: self.origin.clone(),
            not_tensors: self.not_tensors.clone(),
            alternatives: self.alternatives.clone(),
        }
    }

    /// Where a checkpoint kept these tensors when not at its top level: the key path of the dict
    /// that held them, such as `model_state_dict` (PyTorch's tutorial layout).
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The key paths of the checkpoint's other dicts of tensors, which were not used (`(the top
    /// level)` for the file's own).
    pub fn alternatives(&self) -> &[String] {
        &self.alternatives
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// All names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

/// Reads a checkpoint for `table`: as [`read`], choosing, where a PyTorch checkpoint holds several
/// state_dicts (`model` and `ema`, a tutorial dict beside a Lightning one), the one that names the
/// most of the table's tensors (after its aliases).
pub fn read_for(path: &Path, table: &WeightTable) -> Result<Weights, RuntimeError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("pth" | "pt" | "bin" | "ckpt" | "tar") => {
            let wanted: std::collections::HashSet<&str> = table.params.iter().map(|p| p.name.as_str()).collect();
            let rename =
                |key: &str| table.aliases.iter().fold(key.to_string(), |k, (from, to)| k.replace(from.as_str(), to));
            pth::read_preferring(path, |key| wanted.contains(rename(key).as_str()))
        }
        _ => read(path),
    }
}

/// Reads a checkpoint; the format follows the extension.
pub fn read(path: &Path) -> Result<Weights, RuntimeError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => safetensors_file::read(path),
        Some("pth" | "pt" | "bin" | "ckpt" | "tar") => pth::read(path),
        _ => Err(RuntimeError::WeightsFile {
            path: path.to_path_buf(),
            message: "unknown extension; weights are read from .safetensors and PyTorch .pth, .pt, .bin, .ckpt and \
                      .pth.tar files"
                .into(),
        }),
    }
}

/// Everything wrong between a checkpoint and a spec's weight table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WeightReport {
    /// Expected by the spec, absent from the file: name and expected shape.
    pub missing: Vec<(String, Vec<usize>)>,
    /// In the file, unknown to the spec: name and shape.
    pub unexpected: Vec<(String, Vec<usize>)>,
    /// Name, the spec's shape, the file's shape.
    pub wrong_shape: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Tensors with NaN or infinite values.
    pub non_finite: Vec<String>,
    /// Missing names the file holds something else under: name and what (`a list`, `None`).
    pub not_tensors: Vec<(String, String)>,
}

impl WeightReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.wrong_shape.is_empty()
            && self.non_finite.is_empty()
    }

    /// Problems that block loading even when missing tensors are allowed.
    fn blocks_loading(&self, strict: bool) -> bool {
        !self.wrong_shape.is_empty()
            || !self.non_finite.is_empty()
            || (strict && (!self.missing.is_empty() || !self.unexpected.is_empty()))
    }
}

impl WeightReport {
    /// Renamings that together explain every missing tensor: each missing name is an unexpected
    /// one (of the same shape) with a leading `from` in place of `to`, both whole dotted segments
    /// — DataParallel's `module.`, Lightning's `model.`, `_blocks.` where the spec says `blocks.`,
    /// or several of them at once (`_blocks.` → `blocks.` and `head.` → `classifier.`). Applied
    /// in order as the spec's `aliases:` apply them (every occurrence, one after the other).
    /// Unexpected names they do not explain (extra keys) may remain
    /// ([`WeightReport::unexplained`]). `None` when no such renamings exist, or more than
    /// [`MAX_RENAMINGS`] would be needed.
    pub fn renamed_prefixes(&self) -> Option<Vec<(String, String)>> {
        if self.missing.is_empty() || self.unexpected.len() < self.missing.len() || !self.wrong_shape.is_empty() {
            return None;
        }
        let mut missing = self.missing.clone();
        missing.sort();
        let mut unexpected = self.unexpected.clone();
        unexpected.sort();
        // The longest common suffix that starts a segment in both names.
        let at_segment = |s: &str, len: usize| len == s.len() || s.as_bytes()[s.len() - len - 1] == b'.';
        let candidate = |u: &str, m: &str| {
            let common = u.bytes().rev().zip(m.bytes().rev()).take_while(|(a, b)| a == b).count();
            let suffix = (1..=common.min(u.len().saturating_sub(1)).min(m.len()))
                .rev()
                .find(|&l| at_segment(u, l) && at_segment(m, l))?;
            Some((u[..u.len() - suffix].to_string(), m[..m.len() - suffix].to_string()))
        };
        // Aliases rewrite every occurrence (`str::replace`), one after another: the suggestion
        // must hold as such.
        let explained = |renamings: &[(String, String)]| -> Vec<bool> {
            let renamed: Vec<(String, &Vec<usize>)> = unexpected
                .iter()
                .filter(|(u, _)| renamings.iter().any(|(from, _)| u.starts_with(from.as_str())))
                .map(|(u, shape)| {
                    (renamings.iter().fold(u.clone(), |k, (from, to)| k.replace(from.as_str(), to)), shape)
                })
                .collect();
            missing.iter().map(|(m, shape)| renamed.iter().any(|(r, rs)| r == m && *rs == shape)).collect()
        };
        let mut renamings: Vec<(String, String)> = Vec::new();
        while renamings.len() < MAX_RENAMINGS {
            let done = explained(&renamings);
            let Some((m, shape)) = missing.iter().zip(&done).find(|(_, d)| !**d).map(|(m, _)| m) else {
                return Some(renamings);
            };
            // Of the renamings that would explain `m`, the one that keeps the longest part of the
            // name (so that two tensors of one shape are not paired across layers), then the one
            // that explains the most.
            let before = done.iter().filter(|d| **d).count();
            let best = unexpected
                .iter()
                .filter(|(_, us)| us == shape)
                .filter_map(|(u, _)| candidate(u, m).map(|c| (u.len() - c.0.len(), c)))
                .filter_map(|(kept, c)| {
                    let mut with = renamings.clone();
                    with.push(c.clone());
                    let count = explained(&with).iter().filter(|d| **d).count();
                    (count > before).then_some(((kept, count), c))
                })
                .max_by_key(|(key, _)| *key)?;
            renamings.push(best.1);
        }
        explained(&renamings).iter().all(|d| *d).then_some(renamings)
    }

    /// The unexpected tensors that the renamings (`from` → `to`, applied in order) do not turn
    /// into missing ones.
    pub fn unexplained(&self, renamings: &[(String, String)]) -> Vec<&(String, Vec<usize>)> {
        let renamed = |u: &str| {
            renamings
                .iter()
                .any(|(from, _)| u.starts_with(from.as_str()))
                .then(|| renamings.iter().fold(u.to_string(), |k, (from, to)| k.replace(from.as_str(), to)))
        };
        self.unexpected
            .iter()
            .filter(|(u, _)| !renamed(u).is_some_and(|m| self.missing.iter().any(|(n, _)| *n == m)))
            .collect()
    }
}

/// The most prefix renamings [`WeightReport::renamed_prefixes`] looks for: beyond a few, a list of
/// the mismatches says more than an `aliases:` line.
pub const MAX_RENAMINGS: usize = 4;

impl fmt::Display for WeightReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(renamings) = self.renamed_prefixes() {
            let change = |(from, to): &(String, String)| {
                if to.is_empty() {
                    format!("the prefix `{from}`")
                } else {
                    format!("`{from}` where the spec says `{to}`")
                }
            };
            let changes: Vec<String> = renamings.iter().map(change).collect();
            let aliases: Vec<String> = renamings.iter().map(|(from, to)| format!("\"{from}\": \"{to}\"")).collect();
            let extra = self.unexplained(&renamings);
            writeln!(
                f,
                "  the checkpoint's {} unmatched names are the spec's missing ones with {}: add \
                 `aliases: {{{}}}` to the spec",
                self.unexpected.len() - extra.len(),
                changes.join(" and "),
                aliases.join(", ")
            )?;
            for (name, shape) in extra {
                writeln!(
                    f,
                    "  unexpected  {name} {shape:?} (which {} not explain)",
                    if renamings.len() == 1 { "that renaming does" } else { "those renamings do" }
                )?;
            }
        } else {
            for (name, shape) in &self.missing {
                match self.not_tensors.iter().find(|(n, _)| n == name) {
                    Some((_, what)) => writeln!(
                        f,
                        "  missing     {name} {shape:?}: the checkpoint holds `{what}` there, not a tensor"
                    )?,
                    None => writeln!(f, "  missing     {name} {shape:?}")?,
                }
            }
            for (name, shape) in &self.unexpected {
                writeln!(f, "  unexpected  {name} {shape:?}")?;
            }
            for (name, want, found) in &self.wrong_shape {
                writeln!(f, "  wrong shape {name}: the spec expects {want:?}, the file has {found:?}")?;
            }
        }
        for name in &self.non_finite {
            writeln!(f, "  non-finite  {name} holds NaN or infinite values")?;
        }
        Ok(())
    }
}

/// What binding produced: the weights by the spec's names, and what was tolerated.
#[derive(Debug)]
pub struct Bound {
    pub weights: Weights,
    /// Missing or unexpected tensors allowed by `strict = false` (missing ones are left to `fill`).
    pub tolerated: WeightReport,
}

/// Matches a checkpoint against a model's weight table (`Graph::weight_table`). Checkpoint keys are
/// first rewritten by the spec's aliases; `num_batches_tracked` buffers and the weights of
/// training-only branches (when the model does not need them) are ignored. With `strict`, any
/// missing or unexpected tensor is an error; without, they are reported in [`Bound::tolerated`].
/// Wrong shapes and non-finite values are always errors.
pub fn bind(table: &WeightTable, file: Weights, strict: bool) -> Result<Bound, RuntimeError> {
    let (weights, report) = match_names(table, file);
    if report.blocks_loading(strict) {
        return Err(RuntimeError::Weights(Box::new(report)));
    }
    Ok(Bound { weights, tolerated: report })
}

/// As [`bind`] without `strict`, also tolerating tensors whose shape is not the spec's (a
/// classifier of another size when fine-tuning): every tensor whose name and shape match is kept,
/// the others are reported in [`Bound::tolerated`] (as missing, unexpected or of the wrong shape)
/// for the caller to initialise. Non-finite values are still errors.
pub fn bind_matching(table: &WeightTable, file: Weights) -> Result<Bound, RuntimeError> {
    let (weights, report) = match_names(table, file);
    if !report.non_finite.is_empty() {
        return Err(RuntimeError::Weights(Box::new(WeightReport {
            non_finite: report.non_finite,
            ..WeightReport::default()
        })));
    }
    Ok(Bound { weights, tolerated: report })
}

/// The tensors of `file` the table names (after its aliases) with their shape, and a report of
/// everything else.
fn match_names(table: &WeightTable, file: Weights) -> (Weights, WeightReport) {
    let expected: HashMap<&str, &[usize]> =
        table.params.iter().map(|p| (p.name.as_str(), p.shape.as_slice())).collect();
    let mut report = WeightReport::default();
    let mut bound = Weights::default();
    let mut names: Vec<String> = file.tensors.keys().cloned().collect();
    names.sort_unstable();
    let mut tensors = file.tensors;
    let rename = |key: &str| table.aliases.iter().fold(key.to_string(), |k, (from, to)| k.replace(from.as_str(), to));
    let not_tensors: Vec<(String, String)> =
        file.not_tensors.iter().map(|(k, what)| (rename(k), what.clone())).collect();
    for key in names {
        let tensor = tensors.remove(&key).expect("key listed above");
        let name = table.aliases.iter().fold(key.clone(), |k, (from, to)| k.replace(from.as_str(), to));
        if name.ends_with("num_batches_tracked")
            || (!expected.contains_key(name.as_str()) && table.training_only.contains(&name))
        {
            continue;
        }
        match expected.get(name.as_str()) {
            None => report.unexpected.push((key, tensor.shape.clone())),
            Some(want) if *want != tensor.shape.as_slice() => {
                report.wrong_shape.push((name, want.to_vec(), tensor.shape.clone()))
            }
            Some(_) => {
                if tensor.data.iter().any(|v| !v.is_finite()) {
                    report.non_finite.push(name);
                } else {
                    bound.insert(name, tensor);
                }
            }
        }
    }
    for p in &table.params {
        if bound.get(&p.name).is_none()
            && !report.wrong_shape.iter().any(|w| w.0 == p.name)
            && !report.non_finite.contains(&p.name)
        {
            report.missing.push((p.name.clone(), p.shape.clone()));
            if let Some(found) = not_tensors.iter().find(|(n, _)| *n == p.name) {
                report.not_tensors.push(found.clone());
            }
        }
    }
    (bound, report)
}

/// Checks that `weights` holds every tensor of `table` with its shape and finite values (all
/// problems reported together), for weights that did not come through [`bind`].
pub fn check(table: &WeightTable, weights: &Weights) -> Result<(), RuntimeError> {
    let mut report = WeightReport::default();
    for p in &table.params {
        match weights.get(&p.name) {
            None => report.missing.push((p.name.clone(), p.shape.clone())),
            Some(t) if t.shape != p.shape => {
                report.wrong_shape.push((p.name.clone(), p.shape.clone(), t.shape.clone()))
            }
            Some(t) if t.data.iter().any(|v| !v.is_finite()) => report.non_finite.push(p.name.clone()),
            Some(_) => {}
        }
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(RuntimeError::Weights(Box::new(report)))
    }
}

/// Fills every weight the table needs but `weights` lacks with synthetic values (seed 0).
pub fn fill_missing(table: &WeightTable, weights: &mut Weights) {
    for p in &table.params {
        if weights.get(&p.name).is_none() {
            weights.insert(p.name.clone(), crate::synthetic::tensor(0, p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WeightReport;

    fn report(missing: &[&str], unexpected: &[&str]) -> WeightReport {
        let named = |names: &[&str]| names.iter().map(|n| (n.to_string(), vec![4])).collect();
        WeightReport { missing: named(missing), unexpected: named(unexpected), ..WeightReport::default() }
    }

    #[test]
    fn a_renamed_prefix_is_found_only_when_it_explains_every_missing_name() {
        let r = report(
            &["blocks.0.conv.weight", "blocks.1.bn.running_mean"],
            &["_blocks.0.conv.weight", "_blocks.1.bn.running_mean"],
        );
        let one = |from: &str, to: &str| Some(vec![(from.to_string(), to.to_string())]);
        assert_eq!(r.renamed_prefixes(), one("_blocks.", "blocks."), "whole segments, not `_`");
        let r = report(&["fc.weight", "conv1.weight"], &["module.conv1.weight", "module.fc.weight"]);
        assert_eq!(r.renamed_prefixes(), one("module.", ""));
        let r = report(&["sub_module.w", "fc.w"], &["module.sub_module.w", "module.fc.w"]);
        assert_eq!(r.renamed_prefixes(), None, "replacing `module.` everywhere would break `sub_module.`");
        let r = report(&["model.fc.weight", "model.conv1.weight"], &["fc.weight", "conv1.weight"]);
        assert_eq!(r.renamed_prefixes(), None, "a prefix the checkpoint lacks is no substring alias");
        let mut r = report(&["fc.weight"], &["module.fc.weight"]);
        r.unexpected[0].1 = vec![5];
        assert_eq!(r.renamed_prefixes(), None, "shapes differ");
        // A key the prefix does not explain is listed beside the suggestion.
        let r = report(&["fc.weight", "conv1.weight"], &["module.conv1.weight", "module.fc.weight", "module.extra"]);
        assert_eq!(r.renamed_prefixes(), one("module.", ""));
        let renamings = r.renamed_prefixes().unwrap();
        assert_eq!(r.unexplained(&renamings), [&("module.extra".to_string(), vec![4])]);
        let shown = r.to_string();
        assert!(
            shown.contains("2 unmatched names") && shown.contains("unexpected  module.extra [4] (which"),
            "{shown}"
        );
    }

    #[test]
    fn several_renamed_prefixes_are_found_together() {
        let pairs = |p: &[(&str, &str)]| Some(p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect());
        // Same-shaped tensors are renamed by the longest shared name, not paired across layers.
        let r = report(&["fc.weight", "conv1.weight"], &["module.conv1.weight", "head.fc.weight"]);
        assert_eq!(r.renamed_prefixes(), pairs(&[("module.", ""), ("head.", "")]));
        let r = report(
            &["blocks.0.conv.weight", "blocks.1.conv.weight", "classifier.weight", "classifier.bias"],
            &["_blocks.0.conv.weight", "_blocks.1.conv.weight", "_fc.weight", "_fc.bias"],
        );
        assert_eq!(r.renamed_prefixes(), pairs(&[("_blocks.", "blocks."), ("_fc.", "classifier.")]));
        let shown = r.to_string();
        assert!(
            shown.contains("4 unmatched names")
                && shown.contains("`aliases: {\"_blocks.\": \"blocks.\", \"_fc.\": \"classifier.\"}`"),
            "{shown}"
        );
        // Five prefixes are past MAX_RENAMINGS: the mismatches are listed instead.
        let missing = ["a.w", "b.w", "c.w", "d.w", "e.w"];
        let unexpected = ["xa.w", "xb.w", "xc.w", "xd.w", "xe.w"];
        assert_eq!(report(&missing, &unexpected).renamed_prefixes(), None);
        assert!(report(&missing[..4], &unexpected[..4]).renamed_prefixes().is_some());
    }
}
