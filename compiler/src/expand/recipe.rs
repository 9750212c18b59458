//! The model's `train:` section: each key's value evaluated and checked, with located errors, into
//! the graph's [`TrainRecipe`].

use super::eval::eval;
use super::value::{Env, Value};
use crate::diagnostic::Diagnostic;
use crate::graph::TrainRecipe;
use crate::spec::ast::{Expr, ExprKind, TrainSection};

/// The keys a `train:` section takes.
pub const TRAIN_KEYS: &[&str] = &[
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "batch",
    "epochs",
    "schedule",
    "augment",
    "freeze",
    "seed",
    "label_smoothing",
];

/// Evaluates `section` in `env`.
///
/// # Errors
/// One diagnostic per value of the wrong type or out of range, at the value.
pub fn evaluate(section: &TrainSection, env: &Env) -> Result<TrainRecipe, Vec<Diagnostic>> {
    let mut recipe = TrainRecipe::default();
    let mut diags = Vec::new();
    for (key, expr) in &section.entries {
        let bad = |want: &str, found: &Value| {
            Diagnostic::error("cnnc::meta::train", format!("`train: {}` must be {want}, not {found}", key.name))
                .at(expr.span, format!("expected {want}"))
        };
        // A bare word where a string is expected is the string (`optimizer: sgd`, `freeze: [features]`).
        let word = |e: &Expr| match &e.kind {
            ExprKind::Var(name) if env.get(name).is_none() => Some(Value::Str(name.clone())),
            _ => None,
        };
        let words = match &expr.kind {
            ExprKind::List(items) if key.name == "freeze" => items.iter().map(word).collect::<Option<Vec<_>>>(),
            _ => None,
        };
        let value = match (word(expr), words) {
            (Some(v), _) => v,
            (None, Some(list)) => Value::List(list),
            (None, None) => match eval(expr, env) {
                Ok(v) => v,
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            },
        };
        let float = |low: f64, high: f64, closed_high: bool| {
            value.as_float().filter(|v| v.is_finite() && *v >= low && (*v < high || (closed_high && *v <= high)))
        };
        let whole = |low: i64| value.as_int().filter(|v| *v >= low);
        let string = || match &value {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        };
        let ok = match key.name.as_str() {
            "optimizer" => set(
                &mut recipe.optimizer,
                string().filter(|s| ["sgd", "adam", "adamw"].contains(&s.as_str())),
                || bad("one of sgd, adam, adamw", &value),
                &mut diags,
            ),
            "lr" => set(
                &mut recipe.lr,
                float(f64::MIN_POSITIVE, f64::INFINITY, false),
                || bad("a positive number", &value),
                &mut diags,
            ),
            "momentum" => {
                set(&mut recipe.momentum, float(0.0, 1.0, false), || bad("a number in [0, 1)", &value), &mut diags)
            }
            "weight_decay" => {
                set(&mut recipe.weight_decay, float(0.0, f64::INFINITY, false), || bad("0 or more", &value), &mut diags)
            }
            "label_smoothing" => set(
                &mut recipe.label_smoothing,
                float(0.0, 1.0, false),
                || bad("a number in [0, 1)", &value),
                &mut diags,
            ),
            "batch" => set(
                &mut recipe.batch,
                whole(1).and_then(|v| usize::try_from(v).ok()),
                || bad("a whole number of at least 1", &value),
                &mut diags,
            ),
            "epochs" => set(
                &mut recipe.epochs,
                whole(1).and_then(|v| u64::try_from(v).ok()),
                || bad("a whole number of at least 1", &value),
                &mut diags,
            ),
            "seed" => set(
                &mut recipe.seed,
                whole(0).and_then(|v| u64::try_from(v).ok()),
                || bad("a whole number of 0 or more", &value),
                &mut diags,
            ),
            "schedule" => set(&mut recipe.schedule, string(), || bad("a string", &value), &mut diags),
            "augment" => set(&mut recipe.augment, string(), || bad("a string", &value), &mut diags),
            "freeze" => {
                let paths = match &value {
                    Value::Str(s) => Some(vec![s.clone()]),
                    Value::List(items) => items
                        .iter()
                        .map(|v| match v {
                            Value::Str(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect(),
                    _ => None,
                };
                match paths {
                    Some(p) => {
                        recipe.freeze = p;
                        true
                    }
                    None => {
                        diags.push(bad("a layer path or a list of them", &value));
                        false
                    }
                }
            }
            other => unreachable!("the parsers accept only TRAIN_KEYS, not `{other}`"),
        };
        if ok {
            recipe.spans.push((key.name.clone(), expr.span));
        }
    }
    if diags.is_empty() {
        Ok(recipe)
    } else {
        Err(diags)
    }
}

/// Stores `value` in `slot`, or records `error()` when there is none; whether it was stored.
fn set<T>(
    slot: &mut Option<T>,
    value: Option<T>,
    error: impl FnOnce() -> Diagnostic,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    match value {
        Some(v) => {
            *slot = Some(v);
            true
        }
        None => {
            diags.push(error());
            false
        }
    }
}
