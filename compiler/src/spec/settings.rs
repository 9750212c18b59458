//! `--set NAME=VALUE`: a value given on the command line for one of the model's `let` bindings or,
//! when the model's body is one call of a module (`body: mobilenet_v2()`), for a parameter of that
//! module (`--set num_classes=2` gives a zoo model a two-way head). VALUE is an expression of the
//! spec language (`2`, `0.5`, `true`, `"relu"`, `[6, 12, 24, 16]`); it replaces the binding's
//! expression or the call's argument before expansion, so it is checked like the spec's own text,
//! with diagnostics pointing into the `--set` text. Setting `num_classes` (torchvision's name for a
//! classifier's output count) also drops the spec's `labels:`, which name the classes it had.

use std::path::Path;

use super::ast::{Arg, Ident, SpecFile};
use super::expr::{parse_expr, TextAt};
use crate::diagnostic::Diagnostic;
use crate::source::{SourceMap, Span};

/// Applies `settings` (`(NAME, VALUE)` pairs) to the model of `files[0]`, adding each setting's
/// text to `sources` so that its diagnostics have a place; returns what could not be applied.
pub fn apply(files: &mut [SpecFile], settings: &[(String, String)], sources: &mut SourceMap) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for (name, value) in settings {
        let text = format!("{name}={value}");
        let file = sources.add("--set", Path::new("--set"), text.clone());
        let name_span = Span::new(file, 0, name.len());
        let expr = match parse_expr(value, TextAt { file, offset: name.len() + 1 }) {
            Ok(e) => e,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        let modules: Vec<(String, Vec<String>)> = files
            .iter()
            .flat_map(|f| &f.modules)
            .map(|m| (m.name.name.clone(), m.params.iter().map(|p| p.name.name.clone()).collect()))
            .collect();
        let Some(model) = files.first_mut().and_then(|f| f.model.as_mut()) else {
            diags.push(
                Diagnostic::error("cnnc::args::set", format!("`--set {name}`: the spec is a library, not a model"))
                    .at(name_span, "set here"),
            );
            continue;
        };
        if name == "num_classes" {
            model.labels = None;
        }
        if let Some(binding) = model.lets.iter_mut().find(|b| b.name.name == *name) {
            binding.value = expr;
            continue;
        }
        let lets: Vec<String> = model.lets.iter().map(|b| b.name.name.clone()).collect();
        let call = model.body_call_mut();
        let params = call.as_ref().and_then(|c| modules.iter().find(|(m, _)| *m == c.func.name)).map(|(_, p)| p);
        match (call, params) {
            (Some(call), Some(params)) if params.contains(name) => {
                let ident = Ident { name: name.clone(), span: name_span };
                let position = params.iter().position(|p| p == name).expect("contains it");
                // A positional argument in the parameter's place gives way to the setting.
                let positional = call.args.iter().take_while(|a| a.name.is_none()).count();
                if position < positional {
                    call.args[position].value = expr;
                } else {
                    call.args.retain(|a| a.name.as_ref().is_none_or(|n| n.name != *name));
                    call.args.push(Arg { name: Some(ident), value: expr });
                }
            }
            (call, params) => {
                let mut known = lets.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>();
                if let (Some(call), Some(params)) = (&call, params) {
                    known.extend(params.iter().map(|p| format!("`{p}` (of `{}`)", call.func.name)));
                }
                let help = if known.is_empty() {
                    "this spec has no `let` bindings, and its body is not one call of a module; declare a `let` \
                     binding to make a value settable"
                        .to_string()
                } else {
                    format!("settable here: {}", known.join(", "))
                };
                diags.push(
                    Diagnostic::error(
                        "cnnc::args::set",
                        format!("`--set {name}`: the model has no `let` binding or module parameter of that name"),
                    )
                    .at(name_span, "not a name the spec declares")
                    .help(help),
                );
            }
        }
    }
    diags
}
