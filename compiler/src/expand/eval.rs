//! Evaluation of expressions: arithmetic with overflow checks, comparisons, and builtin functions.

use super::value::{Env, Value};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::source::Span;
use crate::spec::ast::{BinOp, Call, Expr, ExprKind, UnOp};

/// The builtin functions usable in expressions.
pub const FUNCTIONS: &[&str] =
    &["min", "max", "floor", "ceil", "round", "int", "float", "abs", "len", "sum", "make_divisible", "select"];

type EvalResult = Result<Value, Diagnostic>;

/// The largest value ([`Value::size`]) an expression may make: a list or string that doubles
/// itself in 30 bindings would otherwise take gigabytes before anything checked it;
/// `CNNC_MAX_VALUE_SIZE` raises it. No zoo model makes one of 100.
pub const MAX_VALUE_SIZE: usize = 1_000_000;

/// [`MAX_VALUE_SIZE`], or the positive number in `CNNC_MAX_VALUE_SIZE`.
fn value_size_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    crate::limit::from_env(&LIMIT, "CNNC_MAX_VALUE_SIZE", MAX_VALUE_SIZE)
}

/// The located error when a value of `size` would pass [`value_size_limit`].
fn within_size_limit(size: usize, span: Span) -> Result<(), Diagnostic> {
    let limit = value_size_limit();
    if size <= limit {
        return Ok(());
    }
    Err(Diagnostic::error("cnnc::limit::value", format!("this value would hold more than {limit} items"))
        .at(span, "made here")
        .help(format!(
            "a list or string made of two copies of the one before doubles with each binding; if the spec means \
             a value this large, raise the limit with CNNC_MAX_VALUE_SIZE={}",
            limit.saturating_mul(10)
        )))
}

/// Whether `expr` reads any of `names`: bindings that failed, whose readers are not evaluated, so
/// that one mistake is reported once and not again as an undefined name in every binding after it.
pub fn reads_any(expr: &Expr, names: &std::collections::HashSet<&str>) -> bool {
    if names.is_empty() {
        return false;
    }
    match &expr.kind {
        ExprKind::Var(name) => names.contains(name.as_str()),
        ExprKind::List(items) => items.iter().any(|e| reads_any(e, names)),
        ExprKind::Call(call) => call.args.iter().any(|a| reads_any(&a.value, names)),
        ExprKind::Unary(_, inner) => reads_any(inner, names),
        ExprKind::Binary(_, a, b) | ExprKind::Index(a, b) => reads_any(a, names) || reads_any(b, names),
        _ => false,
    }
}

/// Evaluates `expr` in `env`.
pub fn eval(expr: &Expr, env: &Env) -> EvalResult {
    match &expr.kind {
        ExprKind::Int(i) => Ok(Value::Int(*i)),
        ExprKind::Float(f) if f.is_finite() => Ok(Value::Float(*f)),
        ExprKind::Float(_) => Err(Diagnostic::error("cnnc::expr::literal_range", "number literal out of range")
            .at(expr.span, "too large")
            .help("integers are limited to 64 bits")),
        ExprKind::Bool(b) => Ok(Value::Bool(*b)),
        ExprKind::Str(s) => Ok(Value::Str(s.clone())),
        ExprKind::None => Ok(Value::None),
        ExprKind::List(items) => {
            let list = Value::List(items.iter().map(|e| eval(e, env)).collect::<Result<_, _>>()?);
            within_size_limit(list.size(), expr.span)?;
            Ok(list)
        }
        ExprKind::Var(name) => env.get(name).cloned().ok_or_else(|| undefined(name, expr.span, env)),
        ExprKind::Call(call) => call_function(call, env),
        ExprKind::Unary(op, inner) => {
            let v = eval(inner, env)?;
            match (op, v) {
                (UnOp::Neg, Value::Int(i)) => i.checked_neg().map(Value::Int).ok_or_else(|| overflow(expr.span)),
                (UnOp::Neg, Value::Float(f)) => Ok(Value::Float(-f)),
                (UnOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
                (op, v) => Err(type_error(
                    format!("cannot apply `{}` to {}", if *op == UnOp::Neg { "-" } else { "not" }, v.type_name()),
                    inner.span,
                    &v,
                )),
            }
        }
        ExprKind::Binary(op, lhs, rhs) => binary(*op, lhs, rhs, expr.span, env),
        ExprKind::Index(base, index) => {
            let list = eval(base, env)?;
            let i = eval(index, env)?;
            let Value::List(items) = &list else {
                return Err(type_error(format!("cannot index into {}", list.type_name()), base.span, &list));
            };
            let Some(i) = i.as_int() else {
                return Err(type_error(
                    format!("a list index must be an int, found {}", i.type_name()),
                    index.span,
                    &i,
                ));
            };
            let len = items.len() as i64;
            let pos = if i < 0 { i + len } else { i };
            items.get(usize::try_from(pos).unwrap_or(usize::MAX)).cloned().ok_or_else(|| {
                Diagnostic::error("cnnc::expr::index", format!("index {i} is out of range for a list of {len}"))
                    .at(index.span, "out of range")
                    .help(format!("valid indices are 0 to {}", len - 1))
            })
        }
    }
}

fn undefined(name: &str, span: Span, env: &Env) -> Diagnostic {
    let names = env.names();
    let d = Diagnostic::error("cnnc::expr::undefined", format!("`{name}` is not defined")).at(span, "undefined name");
    // A misspelt literal (`flase`) is as likely as a misspelt name.
    match did_you_mean(name, names.iter().copied().chain(["true", "false", "none"])) {
        Some(s) => d.help(format!("did you mean `{s}`?")),
        None if names.is_empty() => d.help("no names are bound here; declare it as a module parameter or a `let`"),
        None => {
            let mut names = names;
            names.sort_unstable();
            names.dedup();
            d.help(format!("names in scope: {}", names.join(", ")))
        }
    }
}

fn overflow(span: Span) -> Diagnostic {
    Diagnostic::error("cnnc::expr::overflow", "integer overflow")
        .at(span, "this overflows a 64-bit integer")
        .help("the sizes in this spec are far too large")
}

fn type_error(message: String, span: Span, found: &Value) -> Diagnostic {
    Diagnostic::error("cnnc::expr::type", message).at(span, format!("this is {} `{found}`", article(found.type_name())))
}

fn article(type_name: &str) -> String {
    if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {type_name}")
    } else {
        format!("a {type_name}")
    }
}

fn binary(op: BinOp, lhs: &Expr, rhs: &Expr, span: Span, env: &Env) -> EvalResult {
    let a = eval(lhs, env)?;
    // `and` / `or` short-circuit, as in Python.
    if matches!(op, BinOp::And | BinOp::Or) {
        let Value::Bool(x) = a else {
            return Err(type_error(format!("`{}` needs bools, found {}", op.symbol(), a.type_name()), lhs.span, &a));
        };
        if (op == BinOp::And && !x) || (op == BinOp::Or && x) {
            return Ok(Value::Bool(x));
        }
        let b = eval(rhs, env)?;
        return match b {
            Value::Bool(y) => Ok(Value::Bool(y)),
            other => {
                Err(type_error(format!("`{}` needs bools, found {}", op.symbol(), other.type_name()), rhs.span, &other))
            }
        };
    }
    let b = eval(rhs, env)?;
    match op {
        BinOp::Eq => return Ok(Value::Bool(equal(&a, &b))),
        BinOp::Ne => return Ok(Value::Bool(!equal(&a, &b))),
        _ => {}
    }
    match (&a, &b) {
        (Value::Int(x), Value::Int(y)) => int_op(op, *x, *y, span, rhs.span),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            float_op(op, a.as_float().unwrap_or(0.0), b.as_float().unwrap_or(0.0), span, rhs.span)
        }
        (Value::List(x), Value::List(y)) if op == BinOp::Add => {
            within_size_limit(a.size().saturating_add(b.size()), span)?;
            Ok(Value::List(x.iter().chain(y).cloned().collect()))
        }
        (Value::Str(x), Value::Str(y)) if op == BinOp::Add => {
            within_size_limit(x.len().saturating_add(y.len()), span)?;
            Ok(Value::Str(format!("{x}{y}")))
        }
        _ => Err(Diagnostic::error(
            "cnnc::expr::operand_types",
            format!("cannot apply `{}` to {} and {}", op.symbol(), a.type_name(), b.type_name()),
        )
        .at(span, format!("{} {} {}", a.type_name(), op.symbol(), b.type_name()))),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a.as_float(), b.as_float()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn int_op(op: BinOp, x: i64, y: i64, span: Span, rhs_span: Span) -> EvalResult {
    let zero = || Diagnostic::error("cnnc::expr::division_by_zero", "division by zero").at(rhs_span, "this is zero");
    Ok(match op {
        BinOp::Add => Value::Int(x.checked_add(y).ok_or_else(|| overflow(span))?),
        BinOp::Sub => Value::Int(x.checked_sub(y).ok_or_else(|| overflow(span))?),
        BinOp::Mul => Value::Int(x.checked_mul(y).ok_or_else(|| overflow(span))?),
        BinOp::Div if y == 0 => return Err(zero()),
        BinOp::Div => Value::Float(x as f64 / y as f64),
        BinOp::FloorDiv | BinOp::Rem if y == 0 => return Err(zero()),
        BinOp::FloorDiv => {
            let q = x.checked_div(y).ok_or_else(|| overflow(span))?;
            Value::Int(if x % y != 0 && ((x < 0) != (y < 0)) { q - 1 } else { q })
        }
        // Python's remainder, the sign of the divisor (i64::MIN % -1 is 0, not an overflow).
        BinOp::Rem => {
            let r = x.wrapping_rem(y);
            Value::Int(if r != 0 && ((r < 0) != (y < 0)) { r + y } else { r })
        }
        BinOp::Lt => Value::Bool(x < y),
        BinOp::Le => Value::Bool(x <= y),
        BinOp::Gt => Value::Bool(x > y),
        BinOp::Ge => Value::Bool(x >= y),
        BinOp::And | BinOp::Or | BinOp::Eq | BinOp::Ne => unreachable!("handled by the caller"),
    })
}

fn float_op(op: BinOp, x: f64, y: f64, span: Span, rhs_span: Span) -> EvalResult {
    let zero = || Diagnostic::error("cnnc::expr::division_by_zero", "division by zero").at(rhs_span, "this is zero");
    let v = match op {
        BinOp::Add => Value::Float(x + y),
        BinOp::Sub => Value::Float(x - y),
        BinOp::Mul => Value::Float(x * y),
        BinOp::Div | BinOp::FloorDiv | BinOp::Rem if y == 0.0 => return Err(zero()),
        BinOp::Div => Value::Float(x / y),
        BinOp::FloorDiv => Value::Float((x / y).floor()),
        BinOp::Rem => Value::Float(x - y * (x / y).floor()),
        BinOp::Lt => Value::Bool(x < y),
        BinOp::Le => Value::Bool(x <= y),
        BinOp::Gt => Value::Bool(x > y),
        BinOp::Ge => Value::Bool(x >= y),
        BinOp::And | BinOp::Or | BinOp::Eq | BinOp::Ne => unreachable!("handled by the caller"),
    };
    match v {
        Value::Float(f) if !f.is_finite() => Err(Diagnostic::error("cnnc::expr::overflow", "number overflow")
            .at(span, "this is beyond a 64-bit float")
            .help("the numbers in this spec are far too large")),
        v => Ok(v),
    }
}

fn call_function(call: &Call, env: &Env) -> EvalResult {
    let name = call.func.name.as_str();
    if !FUNCTIONS.contains(&name) {
        let d = Diagnostic::error("cnnc::expr::unknown_function", format!("unknown function `{name}`"))
            .at(call.func.span, "not a function");
        return Err(match did_you_mean(name, FUNCTIONS.iter().copied()) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help(format!("the functions are: {}", FUNCTIONS.join(", "))),
        });
    }
    if let Some(kw) = call.args.iter().find_map(|a| a.name.as_ref()).filter(|_| name != "make_divisible") {
        return Err(Diagnostic::error("cnnc::expr::keyword_argument", format!("`{name}` takes no keyword arguments"))
            .at(kw.span, "keyword argument"));
    }
    let mut args = Vec::with_capacity(call.args.len());
    for a in &call.args {
        args.push((eval(&a.value, env)?, a.value.span, a.name.as_ref().map(|n| n.name.as_str())));
    }
    let arity = |lo: usize, hi: usize| {
        if args.len() < lo || args.len() > hi {
            let want = if lo == hi { lo.to_string() } else { format!("{lo} to {hi}") };
            Err(Diagnostic::error(
                "cnnc::expr::argument_count",
                format!("`{name}` takes {want} arguments, found {}", args.len()),
            )
            .at(call.span, "wrong number of arguments"))
        } else {
            Ok(())
        }
    };
    let num = |i: usize| -> Result<f64, Diagnostic> {
        let (v, span, _) = &args[i];
        v.as_float().ok_or_else(|| type_error(format!("`{name}` needs a number, found {}", v.type_name()), *span, v))
    };
    match name {
        "min" | "max" => {
            let items: Vec<(Value, Span)> = match &args[..] {
                [(Value::List(items), span, _)] => items.iter().map(|v| (v.clone(), *span)).collect(),
                _ => args.iter().map(|(v, s, _)| (v.clone(), *s)).collect(),
            };
            let mut best: Option<Value> = None;
            for (v, span) in items {
                let x = v
                    .as_float()
                    .ok_or_else(|| type_error(format!("`{name}` needs numbers, found {}", v.type_name()), span, &v))?;
                let better = match &best {
                    None => true,
                    Some(b) => {
                        let y = b.as_float().unwrap_or(0.0);
                        if name == "min" {
                            x < y
                        } else {
                            x > y
                        }
                    }
                };
                if better {
                    best = Some(v);
                }
            }
            best.ok_or_else(|| {
                Diagnostic::error("cnnc::expr::empty_arguments", format!("`{name}` of nothing"))
                    .at(call.span, "no arguments")
            })
        }
        "floor" | "ceil" | "round" | "int" => {
            arity(1, 1)?;
            let x = num(0)?;
            let r = match name {
                "floor" => x.floor(),
                "ceil" => x.ceil(),
                "round" => round_half_even(x),
                _ => x.trunc(),
            };
            to_int(r, call.span)
        }
        "float" => {
            arity(1, 1)?;
            Ok(Value::Float(num(0)?))
        }
        "abs" => {
            arity(1, 1)?;
            match args[0].0 {
                Value::Int(i) => i.checked_abs().map(Value::Int).ok_or_else(|| overflow(call.span)),
                _ => Ok(Value::Float(num(0)?.abs())),
            }
        }
        "len" | "sum" => {
            arity(1, 1)?;
            let (v, span, _) = &args[0];
            let Value::List(items) = v else {
                return Err(type_error(format!("`{name}` needs a list, found {}", v.type_name()), *span, v));
            };
            if name == "len" {
                return Ok(Value::Int(items.len() as i64));
            }
            let mut total = Value::Int(0);
            for item in items {
                total = match (&total, item) {
                    (Value::Int(a), Value::Int(b)) => Value::Int(a.checked_add(*b).ok_or_else(|| overflow(call.span))?),
                    (a, b) => Value::Float(
                        a.as_float().unwrap_or(0.0)
                            + b.as_float().ok_or_else(|| {
                                type_error(format!("`sum` needs numbers, found {}", b.type_name()), *span, b)
                            })?,
                    ),
                };
            }
            Ok(total)
        }
        "select" => {
            arity(3, 3)?;
            match &args[0].0 {
                Value::Bool(c) => Ok(if *c { args[1].0.clone() } else { args[2].0.clone() }),
                other => Err(type_error(
                    format!("`select` needs a bool condition, found {}", other.type_name()),
                    args[0].1,
                    other,
                )),
            }
        }
        _ => {
            // make_divisible(value, divisor, min_value=none), as torchvision's _make_divisible.
            arity(2, 3)?;
            let v = num(0)?;
            let divisor = num(1)?;
            if divisor <= 0.0 {
                return Err(Diagnostic::error("cnnc::expr::divisor", "make_divisible needs a positive divisor")
                    .at(args[1].1, "not positive"));
            }
            let min_value = match args.get(2) {
                Some((Value::None, _, _)) | None => divisor,
                Some(_) => num(2)?,
            };
            let mut new_v = min_value.max(((v + divisor / 2.0).trunc() / divisor).floor() * divisor);
            if new_v < 0.9 * v {
                new_v += divisor;
            }
            to_int(new_v, call.span)
        }
    }
}

fn to_int(x: f64, span: Span) -> EvalResult {
    // i64's range, -2⁶³ ≤ x < 2⁶³, both bounds exact in f64.
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&x) {
        Ok(Value::Int(x as i64))
    } else {
        Err(overflow(span))
    }
}

/// Python's `round`: halves go to the even neighbour.
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceMap;
    use crate::spec::expr::{parse_expr, TextAt};
    use std::path::Path;

    fn run(text: &str) -> Result<Value, Diagnostic> {
        let mut map = SourceMap::default();
        let file = map.add("t", Path::new("t"), text.to_string());
        let env =
            Env::default().bind("c", Value::Int(32)).bind("cfg", Value::List(vec![Value::Int(1), Value::Int(16)]));
        eval(&parse_expr(text, TextAt { file, offset: 0 }).unwrap(), &env)
    }

    #[test]
    fn arithmetic_follows_python() {
        let cases = [
            ("7 // 2", Value::Int(3)),
            ("-7 // 2", Value::Int(-4)),
            ("-7 % 3", Value::Int(2)),
            ("7 % -3", Value::Int(-2)),
            ("(-9223372036854775807 - 1) % -1", Value::Int(0)),
            ("int(-9.223372036854775808e18)", Value::Int(i64::MIN)),
            ("-1 % (-9223372036854775807 - 1)", Value::Int(-1)),
            ("1 % (-9223372036854775807 - 1)", Value::Int(-9223372036854775807)),
            ("7 // -2", Value::Int(-4)),
            ("64 / 64 * 4", Value::Float(4.0)),
            ("c * 2 + 1", Value::Int(65)),
            ("cfg[1] * 2", Value::Int(32)),
            ("cfg[-1]", Value::Int(16)),
            ("c != 32 or c == 32", Value::Bool(true)),
            ("max(1, 2.5, 2)", Value::Float(2.5)),
            ("min([4, 3, 9])", Value::Int(3)),
            ("ceil(3 * 1.1)", Value::Int(4)),
            ("round(2.5)", Value::Int(2)),
            ("round(3.5)", Value::Int(4)),
            ("int(7.9)", Value::Int(7)),
            ("select(c > 8, 1, 2)", Value::Int(1)),
            ("len(cfg) + sum(cfg)", Value::Int(19)),
            ("[1] + [2]", Value::List(vec![Value::Int(1), Value::Int(2)])),
        ];
        for (text, want) in cases {
            assert_eq!(run(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn make_divisible_matches_torchvision() {
        // torchvision.models._utils._make_divisible
        let cases = [
            ("make_divisible(32 * 1.0, 8)", 32),
            ("make_divisible(32 * 0.5, 8)", 16),
            ("make_divisible(24 * 1.1, 8)", 24),
            ("make_divisible(40 * 1.2, 8)", 48),
            ("make_divisible(1280 * 0.75, 8)", 960),
            ("make_divisible(16 * 0.25, 8)", 8),
            ("make_divisible(10, 8)", 16),
            ("make_divisible(3 * 0.25, 8, 1)", 1),
        ];
        for (text, want) in cases {
            assert_eq!(run(text).unwrap(), Value::Int(want), "{text}");
        }
    }

    #[test]
    fn errors_are_located_and_explained() {
        let e = run("cfgs[0] * 2").unwrap_err();
        assert!(e.message.contains("`cfgs` is not defined"));
        assert_eq!(e.help.as_deref(), Some("did you mean `cfg`?"));
        assert_eq!(run("flase").unwrap_err().help.as_deref(), Some("did you mean `false`?"));
        assert!(run("9223372036854775807 + 1").unwrap_err().message.contains("overflow"));
        assert!(run("c // 0").unwrap_err().message.contains("division by zero"));
        assert!(run("cfg[5]").unwrap_err().message.contains("out of range"));
        assert!(run("true + 1").unwrap_err().message.contains("cannot apply"));
        assert!(run("maxx(1)").unwrap_err().help.unwrap().contains("`max`"));
    }
}
