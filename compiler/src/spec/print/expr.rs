//! Expressions as text, with the fewest parentheses that keep their meaning.

use crate::spec::ast::{BinOp, Expr, ExprKind, UnOp};

const POSTFIX: u8 = 8;
const NEG: u8 = 7;
const NOT: u8 = 3;

fn precedence(op: BinOp) -> u8 {
    match op {
        BinOp::Or => 1,
        BinOp::And => 2,
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 4,
        BinOp::Add | BinOp::Sub => 5,
        BinOp::Mul | BinOp::Div | BinOp::FloorDiv | BinOp::Rem => 6,
    }
}

fn precedence_of(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary(op, ..) => precedence(*op),
        ExprKind::Unary(UnOp::Neg, _) => NEG,
        ExprKind::Unary(UnOp::Not, _) => NOT,
        _ => POSTFIX + 1,
    }
}

fn wrapped(e: &Expr, needs: bool) -> String {
    if needs {
        format!("({})", expr(e))
    } else {
        expr(e)
    }
}

/// Prints an expression so that parsing the text gives the same expression back.
pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(i) => i.to_string(),
        ExprKind::Float(f) if f.is_infinite() => "1e999".into(),
        ExprKind::Float(f) => format!("{f:?}"),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::None => "none".into(),
        ExprKind::Str(s) => string(s),
        ExprKind::Var(v) => v.clone(),
        ExprKind::List(items) => format!("[{}]", items.iter().map(expr).collect::<Vec<_>>().join(", ")),
        ExprKind::Call(c) => {
            let args: Vec<String> = c
                .args
                .iter()
                .map(|a| match &a.name {
                    Some(n) => format!("{}={}", n.name, expr(&a.value)),
                    None => expr(&a.value),
                })
                .collect();
            if c.parens || !args.is_empty() {
                format!("{}({})", c.func.name, args.join(", "))
            } else {
                c.func.name.clone()
            }
        }
        ExprKind::Unary(UnOp::Neg, x) => format!("-{}", wrapped(x, precedence_of(x) < NEG)),
        ExprKind::Unary(UnOp::Not, x) => format!("not {}", wrapped(x, precedence_of(x) < NOT)),
        ExprKind::Binary(op, l, r) => {
            let p = precedence(*op);
            format!("{} {} {}", wrapped(l, precedence_of(l) < p), op.symbol(), wrapped(r, precedence_of(r) <= p))
        }
        ExprKind::Index(base, index) => format!("{}[{}]", wrapped(base, precedence_of(base) < POSTFIX), expr(index)),
    }
}

/// A double-quoted string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
