//! Binding a call's positional and keyword arguments to declared parameter names.

use super::eval::eval;
use super::value::{Env, Value};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::source::Span;
use crate::spec::ast::Call;

/// An evaluated argument and where it was written.
#[derive(Clone, Debug)]
pub struct BoundArg {
    pub value: Value,
    pub span: Span,
}

/// Evaluates the arguments of `call` in `env` and assigns them to `params` (by position, then by
/// keyword). `what` names the callee in messages. Returns one slot per parameter.
pub fn bind(call: &Call, params: &[&str], env: &Env, what: &str) -> Result<Vec<Option<BoundArg>>, Vec<Diagnostic>> {
    let mut slots: Vec<Option<BoundArg>> = vec![None; params.len()];
    let mut errors = Vec::new();
    let mut seen_keyword = false;
    for (position, arg) in call.args.iter().enumerate() {
        let index = match &arg.name {
            None if seen_keyword => {
                errors.push(
                    Diagnostic::error("cnnc::args::order", "a positional argument follows a keyword argument")
                        .at(arg.value.span, "positional argument")
                        .help("put positional arguments first, or name this one"),
                );
                continue;
            }
            None if position >= params.len() => {
                errors.push(
                    Diagnostic::error(
                        "cnnc::args::count",
                        format!("{what} takes at most {} arguments, found {}", params.len(), call.args.len()),
                    )
                    .at(arg.value.span, "extra argument")
                    .help(signature_help(what, params)),
                );
                continue;
            }
            None => position,
            Some(name) => {
                seen_keyword = true;
                match params.iter().position(|p| *p == name.name) {
                    Some(i) => i,
                    None => {
                        let d = Diagnostic::error(
                            "cnnc::args::unknown",
                            format!("{what} has no parameter `{}`", name.name),
                        )
                        .at(name.span, "unknown parameter");
                        errors.push(match did_you_mean(&name.name, params.iter().copied()) {
                            Some(s) => d.help(format!("did you mean `{s}`?")),
                            None => d.help(signature_help(what, params)),
                        });
                        continue;
                    }
                }
            }
        };
        if slots[index].is_some() {
            errors.push(
                Diagnostic::error("cnnc::args::duplicate", format!("`{}` is given twice", params[index]))
                    .at(arg.name.as_ref().map_or(arg.value.span, |n| n.span), "given again here"),
            );
            continue;
        }
        match eval(&arg.value, env) {
            Ok(value) => slots[index] = Some(BoundArg { value, span: arg.value.span }),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(slots)
    } else {
        Err(errors)
    }
}

fn signature_help(what: &str, params: &[&str]) -> String {
    if params.is_empty() {
        format!("{what} takes no arguments")
    } else {
        format!("the parameters are: {}", params.join(", "))
    }
}
