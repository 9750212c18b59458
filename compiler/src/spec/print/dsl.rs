//! The AST in the DSL spelling.

use super::expr::{expr, string};
use super::{append, indent, is_single, name_text};
use crate::spec::ast::*;
use crate::spec::expr::is_ident;

/// Words the DSL reserves: item names equal to one of them are quoted.
const KEYWORDS: &[&str] = &[
    "import", "module", "model", "let", "body", "if", "then", "else", "repeat", "as", "do", "residual", "shortcut",
    "when", "concat", "add", "mul", "training",
];

/// Prints a spec in the DSL spelling.
pub fn to_dsl(spec: &SpecFile) -> String {
    let mut blocks: Vec<Vec<String>> = Vec::new();
    if !spec.imports.is_empty() {
        blocks.push(spec.imports.iter().map(|i| format!("import {}", string(&i.path))).collect());
    }
    for m in &spec.modules {
        blocks.push(module(m));
    }
    if let Some(m) = &spec.model {
        blocks.push(model(m));
    }
    let mut out = blocks.into_iter().map(|b| b.join("\n")).collect::<Vec<_>>().join("\n\n");
    out.push('\n');
    out
}

fn module(m: &ModuleDef) -> Vec<String> {
    let params: Vec<String> = m
        .params
        .iter()
        .map(|p| match &p.default {
            Some(d) => format!("{}: {} = {}", p.name.name, p.ty.keyword(), expr(d)),
            None => format!("{}: {}", p.name.name, p.ty.keyword()),
        })
        .collect();
    let head = if params.is_empty() { m.name.name.clone() } else { format!("{}({})", m.name.name, params.join(", ")) };
    let mut inner: Vec<String> = m.lets.iter().map(|l| format!("let {} = {}", l.name.name, expr(&l.value))).collect();
    inner.extend(m.input.as_ref().map(|i| format!("input {}", expr(i))));
    inner.extend(m.preprocess.as_ref().map(preprocess));
    inner.extend(body(&m.body));
    let mut lines = vec![format!("module {head} {{")];
    lines.extend(indent(inner, 2));
    lines.push("}".into());
    lines
}

fn model(m: &ModelDef) -> Vec<String> {
    let mut inner: Vec<String> = m.input.iter().map(|i| format!("input {}", expr(i))).collect();
    inner.extend(m.preprocess.as_ref().map(preprocess));
    if let Some(t) = &m.train {
        let entries: Vec<String> = t.entries.iter().map(|(k, v)| format!("{}: {}", k.name, expr(v))).collect();
        inner.push(format!("train {{ {} }}", entries.join(", ")));
    }
    if let Some((labels, _)) = &m.labels {
        inner.push(format!("labels {}", string(labels)));
    }
    if let Some((b, _)) = m.training_weights {
        inner.push(format!("training_weights {b}"));
    }
    if !m.aliases.is_empty() {
        let entries: Vec<String> =
            m.aliases.iter().map(|a| format!("{}: {}", string(&a.from), string(&a.to))).collect();
        inner.push(format!("aliases {{ {} }}", entries.join(", ")));
    }
    inner.extend(m.lets.iter().map(|l| format!("let {} = {}", l.name.name, expr(&l.value))));
    inner.extend(body(&m.body));
    let mut lines = vec![format!("model {} {{", m.name.name)];
    lines.extend(indent(inner, 2));
    lines.push("}".into());
    lines
}

fn preprocess(p: &Preprocess) -> String {
    let fields = [("resize", &p.resize), ("crop", &p.crop), ("mean", &p.mean), ("std", &p.std)];
    let entries: Vec<String> =
        fields.into_iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}: {}", expr(v)))).collect();
    format!("preprocess {{ {} }}", entries.join(", "))
}

fn body(b: &Body) -> Vec<String> {
    let mut lines = vec!["body ".to_string()];
    match b {
        Body::Seq(items) => append(&mut lines, seq(items)),
        Body::Single(i) => append(&mut lines, item(i)),
    }
    lines
}

fn seq(items: &[Item]) -> Vec<String> {
    if items.is_empty() {
        return vec!["[]".into()];
    }
    let mut lines = vec!["[".to_string()];
    for i in items {
        lines.extend(indent(item(i), 2));
    }
    lines.push("]".into());
    lines
}

/// A spliced list: one item bare, several in brackets.
fn branch(items: &[Item]) -> Vec<String> {
    if is_single(items) {
        item(&items[0])
    } else {
        seq(items)
    }
}

fn name(n: &NameTemplate) -> String {
    let text = name_text(n);
    if is_ident(&text) && !KEYWORDS.contains(&text.as_str()) {
        text
    } else {
        string(&text)
    }
}

fn item(i: &Item) -> Vec<String> {
    let mut lines = vec![i.name.as_ref().map(|n| format!("{}: ", name(n))).unwrap_or_default()];
    let kind = match &i.kind {
        ItemKind::Layer(call) => vec![expr(&Expr { kind: ExprKind::Call(call.clone()), span: call.span })],
        ItemKind::Ref(r) => vec![format!("@{}", r.name)],
        ItemKind::Seq(items) => seq(items),
        ItemKind::Join { op, branches } => {
            let mut l = vec![format!("{} ", op.keyword())];
            append(&mut l, seq(branches));
            l
        }
        ItemKind::Residual { main, shortcut, when } => {
            let mut l = vec![match when {
                Some(w) => format!("residual when {} do ", expr(w)),
                None => "residual ".into(),
            }];
            append(&mut l, seq(main));
            if !shortcut.is_empty() {
                append(&mut l, vec![" shortcut ".into()]);
                append(&mut l, branch(shortcut));
            }
            l
        }
        ItemKind::If { cond, then, otherwise } => {
            let mut l = vec![format!("if {} then ", expr(cond))];
            append(&mut l, branch(then));
            if !otherwise.is_empty() {
                append(&mut l, vec![" else ".into()]);
                append(&mut l, branch(otherwise));
            }
            l
        }
        ItemKind::Repeat { count, var, body } => {
            let mut l = vec![match var {
                Some(v) => format!("repeat {} as {} do ", expr(count), v.name),
                None => format!("repeat {} do ", expr(count)),
            }];
            append(&mut l, branch(body));
            l
        }
        ItemKind::Training { body, loss_weight } => {
            let mut l = vec![match loss_weight {
                Some(w) => format!("training loss_weight {} do ", expr(w)),
                None => "training ".to_string(),
            }];
            match body {
                Body::Seq(items) => append(&mut l, seq(items)),
                Body::Single(i) => append(&mut l, item(i)),
            }
            l
        }
    };
    append(&mut lines, kind);
    lines
}
