//! The AST as block-style YAML.

use super::expr::{expr, string};
use super::{append, indent, is_single, name_text};
use crate::spec::ast::*;

/// A YAML value to emit.
enum Y {
    /// Emitted as is (already a valid YAML scalar or flow collection).
    Raw(String),
    Seq(Vec<Y>),
    Map(Vec<(String, Y)>),
}

/// Prints a spec as YAML.
pub fn to_yaml(spec: &SpecFile) -> String {
    let mut top = Vec::new();
    match spec.imports.as_slice() {
        [] => {}
        [one] => top.push(("import".into(), Y::Raw(text(&one.path)))),
        many => top.push(("import".into(), Y::Seq(many.iter().map(|i| Y::Raw(text(&i.path))).collect()))),
    }
    if !spec.modules.is_empty() {
        top.push(("modules".into(), Y::Map(spec.modules.iter().map(|m| (m.name.name.clone(), module(m))).collect())));
    }
    if let Some(m) = &spec.model {
        top.push(("model".into(), Y::Raw(m.name.name.clone())));
        if let Some(input) = &m.input {
            top.push(("input".into(), value(input)));
        }
        if let Some(p) = &m.preprocess {
            top.push(("preprocess".into(), preprocess(p)));
        }
        if let Some(t) = &m.train {
            let entries = t.entries.iter().map(|(k, v)| (k.name.clone(), value(v))).collect();
            top.push(("train".into(), Y::Map(entries)));
        }
        if let Some((labels, _)) = &m.labels {
            top.push(("labels".into(), Y::Raw(text(labels))));
        }
        if let Some((b, _)) = m.training_weights {
            top.push(("training_weights".into(), Y::Raw(b.to_string())));
        }
        if !m.aliases.is_empty() {
            let entries = m.aliases.iter().map(|a| (string(&a.from), Y::Raw(string(&a.to)))).collect();
            top.push(("aliases".into(), Y::Map(entries)));
        }
        if !m.lets.is_empty() {
            top.push(("let".into(), lets(&m.lets)));
        }
        top.push(("body".into(), body(&m.body)));
    }
    let mut out = render(&Y::Map(top)).join("\n");
    out.push('\n');
    out
}

fn module(m: &ModuleDef) -> Y {
    let mut entries = Vec::new();
    if !m.params.is_empty() {
        let params = m
            .params
            .iter()
            .map(|p| {
                let decl = match &p.default {
                    Some(d) => format!("{} = {}", p.ty.keyword(), expr(d)),
                    None => p.ty.keyword().to_string(),
                };
                (p.name.name.clone(), Y::Raw(text(&decl)))
            })
            .collect();
        entries.push(("params".into(), Y::Map(params)));
    }
    if !m.lets.is_empty() {
        entries.push(("let".into(), lets(&m.lets)));
    }
    if let Some(input) = &m.input {
        entries.push(("input".into(), value(input)));
    }
    if let Some(p) = &m.preprocess {
        entries.push(("preprocess".into(), preprocess(p)));
    }
    entries.push(("body".into(), body(&m.body)));
    Y::Map(entries)
}

fn preprocess(p: &Preprocess) -> Y {
    let fields = [("resize", &p.resize), ("crop", &p.crop), ("mean", &p.mean), ("std", &p.std)];
    Y::Map(fields.into_iter().filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), value(v)))).collect())
}

fn lets(lets: &[LetBinding]) -> Y {
    Y::Map(lets.iter().map(|l| (l.name.name.clone(), value(&l.value))).collect())
}

fn body(b: &Body) -> Y {
    match b {
        Body::Seq(items) => Y::Seq(items.iter().map(item).collect()),
        Body::Single(i) => item(i),
    }
}

/// An expression in a value position: strings quoted, lists as lists, the rest as plain text.
fn value(e: &Expr) -> Y {
    match &e.kind {
        ExprKind::Str(s) => Y::Raw(string(s)),
        ExprKind::List(_) if is_flow_safe(e) => Y::Raw(expr(e)),
        ExprKind::List(items) => Y::Seq(items.iter().map(value).collect()),
        _ => Y::Raw(scalar(&expr(e))),
    }
}

/// Literal lists that YAML's flow syntax keeps intact (the reader re-parses flow lists from their text).
fn is_flow_safe(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Bool(_) | ExprKind::None | ExprKind::Str(_) => true,
        ExprKind::List(items) => items.iter().all(is_flow_safe),
        ExprKind::Unary(UnOp::Neg, x) => matches!(x.kind, ExprKind::Int(_) | ExprKind::Float(_)),
        _ => false,
    }
}

/// Text that must stay an expression (or item) when read back: plain if YAML allows, else a folded block.
fn scalar(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        format!(">-\n  {s}")
    }
}

/// Text where quoting does not change the meaning (paths, names, item calls).
fn text(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        string(s)
    }
}

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else { return false };
    let special_start = "[]{}\"'!&*@`|>%#,?:";
    let needs_quotes = special_start.contains(first)
        || (first == '-' && s[1..].starts_with(' '))
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.contains('\n');
    !needs_quotes && s.trim() == s
}

fn key(item: &Item) -> Option<String> {
    item.name.as_ref().map(|n| text(&name_text(n)))
}

fn items(list: &[Item]) -> Y {
    Y::Seq(list.iter().map(item).collect())
}

/// `then:`/`else:`/`body:`/`shortcut:` — one item, or a list of items.
fn splice(list: &[Item]) -> Y {
    if is_single(list) {
        item(&list[0])
    } else {
        items(list)
    }
}

fn item(i: &Item) -> Y {
    let unnamed = match &i.kind {
        ItemKind::Layer(call) => Y::Raw(text(&expr(&Expr { kind: ExprKind::Call(call.clone()), span: call.span }))),
        ItemKind::Ref(r) => Y::Raw(string(&format!("@{}", r.name))),
        ItemKind::Seq(list) => items(list),
        ItemKind::Join { op, branches } => Y::Map(vec![(op.keyword().into(), items(branches))]),
        ItemKind::Residual { main, shortcut, when } => {
            let mut entries = vec![("residual".into(), items(main))];
            if !shortcut.is_empty() {
                entries.push(("shortcut".into(), splice(shortcut)));
            }
            if let Some(w) = when {
                entries.push(("when".into(), value(w)));
            }
            Y::Map(entries)
        }
        ItemKind::If { cond, then, otherwise } => {
            let mut entries = vec![("if".into(), value(cond)), ("then".into(), splice(then))];
            if !otherwise.is_empty() {
                entries.push(("else".into(), splice(otherwise)));
            }
            Y::Map(entries)
        }
        ItemKind::Repeat { count, var, body } => {
            let mut entries = vec![("repeat".into(), value(count))];
            if let Some(v) = var {
                entries.push(("as".into(), Y::Raw(v.name.clone())));
            }
            entries.push(("body".into(), splice(body)));
            Y::Map(entries)
        }
        ItemKind::Training { body, loss_weight } => {
            let mut entries = vec![("training".into(), self::body(body))];
            if let Some(w) = loss_weight {
                entries.push(("loss_weight".into(), value(w)));
            }
            Y::Map(entries)
        }
    };
    match key(i) {
        Some(k) => Y::Map(vec![(k, unnamed)]),
        None => unnamed,
    }
}

fn render(y: &Y) -> Vec<String> {
    match y {
        Y::Raw(s) => s.lines().map(String::from).collect(),
        Y::Seq(items) if items.is_empty() => vec!["[]".into()],
        Y::Map(entries) if entries.is_empty() => vec!["{}".into()],
        Y::Seq(items) => {
            let mut lines = Vec::new();
            for item in items {
                let sub = render(item);
                let mut sub = sub.into_iter();
                lines.push(format!("- {}", sub.next().unwrap_or_default()));
                lines.extend(indent(sub.collect(), 2));
            }
            lines
        }
        Y::Map(entries) => {
            let mut lines = Vec::new();
            for (k, v) in entries {
                match v {
                    Y::Raw(_) => {
                        lines.push(format!("{k}: "));
                        append(&mut lines, indent_tail(render(v)));
                    }
                    Y::Seq(s) if s.is_empty() => lines.push(format!("{k}: []")),
                    Y::Map(m) if m.is_empty() => lines.push(format!("{k}: {{}}")),
                    _ => {
                        lines.push(format!("{k}:"));
                        lines.extend(indent(render(v), 2));
                    }
                }
            }
            lines
        }
    }
}

/// A raw scalar's continuation lines (folded blocks) indented under their key.
fn indent_tail(lines: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(lines.len());
    for (i, l) in lines.into_iter().enumerate() {
        out.push(if i == 0 { l } else { format!("  {l}") });
    }
    out
}
