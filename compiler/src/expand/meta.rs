//! The model's input shape and metadata: preprocessing, labels, checkpoint options.

use std::path::Path;

use super::eval::eval;
use super::preprocess;
use super::value::{Env, Value};
use crate::check;
use crate::diagnostic::Diagnostic;
use crate::graph::{Meta, Resize, Shape};
use crate::source::SourceMap;
use crate::spec::ast::{Expr, ModelDef, ModuleDef, Preprocess};

/// The most labels a label file may hold.
const MAX_LABELS: usize = 1_000_000;

/// Evaluates `input:` to a shape without batch: `[C, H, W]` or `[F]`.
pub fn input_shape(expr: &Expr, env: &Env) -> Result<Shape, Diagnostic> {
    let bad = |found: String| {
        Diagnostic::error(
            "cnnc::meta::input",
            format!("`input` must be [channels, height, width] or [features] of positive ints, found {found}"),
        )
        .at(expr.span, "bad input shape")
        .help("write the shape without the batch dimension, e.g. `input: [3, 224, 224]`")
    };
    let value = eval(expr, env)?;
    let Value::List(items) = &value else { return Err(bad(value.to_string())) };
    let dims: Option<Vec<usize>> =
        items.iter().map(|v| v.as_int().filter(|i| *i >= 1).and_then(|i| usize::try_from(i).ok())).collect();
    match dims {
        Some(d) if d.len() == 3 || d.len() == 1 => {
            let shape = Shape(d);
            check::check_size(&shape).map_err(|e| Diagnostic::error(e.code, e.message).at(expr.span, e.label))?;
            Ok(shape)
        }
        _ => Err(bad(value.to_string())),
    }
}

/// The error for a model with no `input:` whose body is not one call of a module that declares one.
pub fn missing_input(model: &ModelDef, module: Option<&ModuleDef>) -> Diagnostic {
    let d = Diagnostic::error("cnnc::spec::missing_key", format!("model `{}` has no `input:`", model.name.name))
        .at(model.span, "model defined here");
    match module {
        Some(m) => d.also(m.name.span, format!("module `{}` declares no input of its own", m.name.name)).help(
            "add the input shape without the batch, e.g. `input: [3, 224, 224]` (`input [3, 224, 224]` in the DSL)",
        ),
        None => d.help(
            "add the input shape without the batch, e.g. `input: [3, 224, 224]` (`input [3, 224, 224]` in the DSL); \
             a model whose body is one call of a module that declares `input:` takes the module's",
        ),
    }
}

/// Evaluates preprocessing (`pre`, the model's own or the one its module declares, with the
/// environment it is evaluated in), labels and checkpoint options; `input` and `output` are the
/// model's input and output shapes (without the batch).
pub fn evaluate(
    model: &ModelDef,
    pre: Option<(&Preprocess, &Env)>,
    input: &Shape,
    output: &Shape,
    sources: &SourceMap,
) -> Result<Meta, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut meta = Meta { name: model.name.name.clone(), ..Meta::default() };
    if let Some((pre, env)) = pre {
        meta.resize = size(pre.resize.as_ref(), "resize", env, &mut diags).map(|(size, pair)| {
            if pair {
                Resize::Exact(size)
            } else {
                Resize::ShorterSide(size[0])
            }
        });
        meta.crop = size(pre.crop.as_ref(), "crop", env, &mut diags).map(|(size, _)| size);
        meta.mean = floats(pre.mean.as_ref(), env, &mut diags);
        meta.std = floats(pre.std.as_ref(), env, &mut diags);
        if diags.is_empty() {
            preprocess::check(pre, &meta, input, &mut diags);
        }
    }
    if let Some((file, span)) = &model.labels {
        let base = sources.file(span.file).path.parent().map(Path::to_path_buf).unwrap_or_default();
        let path = base.join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let labels: Vec<String> =
                    text.lines().map(str::trim).filter(|l| !l.is_empty()).take(MAX_LABELS).map(String::from).collect();
                let classes = output.dims().last().copied().unwrap_or(0);
                if output.dims().len() != 1 || labels.len() != classes {
                    diags.push(
                        Diagnostic::error(
                            "cnnc::meta::labels",
                            format!("`{file}` has {} labels, but the model outputs {output}", labels.len()),
                        )
                        .at(*span, "label count differs from the output")
                        .help("give one label per output class, one per line"),
                    );
                }
                meta.labels = Some(labels);
            }
            Err(e) => diags.push(
                Diagnostic::error("cnnc::meta::labels_file", format!("cannot read labels `{}`: {e}", path.display()))
                    .at(*span, "labels file")
                    .help("the path is relative to the spec's folder"),
            ),
        }
    }
    meta.training_weights = model.training_weights.is_some_and(|(b, _)| b);
    meta.aliases = model.aliases.iter().map(|a| (a.from.clone(), a.to.clone())).collect();
    if diags.is_empty() {
        Ok(meta)
    } else {
        Err(diags)
    }
}

/// A `resize:` or `crop:` size (`key`): one positive whole number `n` (`[n, n]`, and `false`)
/// or `[height, width]` (and `true`), as torchvision's `Resize` and `CenterCrop` take them.
fn size(expr: Option<&Expr>, key: &str, env: &Env, diags: &mut Vec<Diagnostic>) -> Option<([usize; 2], bool)> {
    let expr = expr?;
    let positive = |v: &Value| v.as_int().filter(|i| *i >= 1).and_then(|i| usize::try_from(i).ok());
    match eval(expr, env) {
        Ok(v) => {
            let size = match &v {
                Value::List(items) if items.len() == 2 => match (positive(&items[0]), positive(&items[1])) {
                    (Some(h), Some(w)) => Some(([h, w], true)),
                    _ => None,
                },
                v => positive(v).map(|n| ([n, n], false)),
            };
            if size.is_none() {
                let meaning = if key == "resize" {
                    "`resize: N` makes the shorter side N pixels (torchvision's Resize(N)); `resize: [H, W]` makes \
                     the image exactly H×W"
                } else {
                    "`crop: N` takes the centre N×N pixels (torchvision's CenterCrop(N)); `crop: [H, W]` the centre \
                     H×W"
                };
                diags.push(
                    Diagnostic::error("cnnc::meta::size", format!("expected a positive size, found {v}"))
                        .at(expr.span, "not a size")
                        .help(meaning),
                );
            }
            size
        }
        Err(d) => {
            diags.push(d);
            None
        }
    }
}

fn floats(expr: Option<&Expr>, env: &Env, diags: &mut Vec<Diagnostic>) -> Option<Vec<f64>> {
    let expr = expr?;
    match eval(expr, env) {
        Ok(Value::List(items)) if items.iter().all(|v| v.as_float().is_some()) => {
            Some(items.iter().filter_map(Value::as_float).collect())
        }
        // One number for every channel, as torchvision's Normalize(0.5, 0.5) broadcasts it.
        Ok(v) if v.as_float().is_some() => v.as_float().map(|f| vec![f]),
        Ok(v) => {
            diags.push(
                Diagnostic::error("cnnc::meta::numbers", format!("expected a number or a list of numbers, found {v}"))
                    .at(expr.span, "not a list of numbers")
                    .help("give one number per channel (`[0.485, 0.456, 0.406]`), or one for all (`0.5`)"),
            );
            None
        }
        Err(d) => {
            diags.push(d);
            None
        }
    }
}
