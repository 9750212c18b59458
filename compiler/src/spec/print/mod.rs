//! Printing the AST back as text, in either spelling: `cnnc fmt` and the lossless
//! YAML ⇄ DSL conversion. Comments are not kept; everything else is.

mod dsl;
mod expr;
mod yaml;

pub use self::dsl::to_dsl;
pub use self::expr::expr;
pub use self::yaml::to_yaml;

use super::ast::{Item, ItemKind, NamePart, NameTemplate};

/// A name template as written: `denselayer{i + 1}`.
fn name_text(name: &NameTemplate) -> String {
    name.parts
        .iter()
        .map(|p| match p {
            NamePart::Text(t) => t.clone(),
            NamePart::Expr(e) => format!("{{{}}}", expr(e)),
        })
        .collect()
}

/// Whether a spliced list of items can be written as one item without brackets
/// (a lone unnamed sequence would be read back as the list itself).
fn is_single(items: &[Item]) -> bool {
    matches!(items, [item] if !(item.name.is_none() && matches!(item.kind, ItemKind::Seq(_))))
}

/// Appends `sub` to `lines`: its first line continues the last line, the rest follow.
fn append(lines: &mut Vec<String>, sub: Vec<String>) {
    let mut sub = sub.into_iter();
    if let Some(first) = sub.next() {
        match lines.last_mut() {
            Some(last) => last.push_str(&first),
            None => lines.push(first),
        }
    }
    lines.extend(sub);
}

/// `lines` indented by `n` spaces.
fn indent(lines: Vec<String>, n: usize) -> Vec<String> {
    let pad = " ".repeat(n);
    lines.into_iter().map(|l| if l.is_empty() { l } else { format!("{pad}{l}") }).collect()
}
