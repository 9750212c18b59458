//! Parsing of the expression language (pest), used on YAML scalars.

use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser;
use pest_derive::Parser;

use super::ast::{Arg, BinOp, Call, Expr, ExprKind, Ident, Item, ItemKind, NamePart, NameTemplate, ParamType, UnOp};
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Span};

/// The grammar of both the expression language and the DSL (one `Rule` type, so the DSL
/// lowering reuses the expression lowering).
#[derive(Parser)]
#[grammar = "spec/expr.pest"]
#[grammar = "spec/dsl.pest"]
pub(super) struct SpecGrammar;

/// How deeply brackets may nest in one expression before it is refused (keeps the parser's stack bounded).
pub const MAX_NESTING: usize = 64;
/// The most operators one expression may chain, and all the expressions of one text together
/// (every pass over an expression recurses as deep as its tree).
pub const MAX_OPERATORS: usize = 256;
pub const MAX_TOTAL_OPERATORS: usize = 4_096;

/// Where a piece of text sits in its file, so spans can be made absolute.
#[derive(Copy, Clone, Debug)]
pub struct TextAt {
    pub file: FileId,
    pub offset: usize,
}

impl TextAt {
    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, self.offset + start, self.offset + end)
    }
}

/// Parses a whole scalar as an expression.
pub fn parse_expr(text: &str, at: TextAt) -> Result<Expr, Diagnostic> {
    let pair = parse_rule(Rule::expr_only, text, at, "an expression")?;
    Ok(lower_expr(first_inner(pair), at))
}

/// Parses a scalar item: `name(args)`, `name` or `@reference`.
pub fn parse_item(text: &str, at: TextAt) -> Result<ItemKind, Diagnostic> {
    let pair = parse_rule(Rule::item_only, text, at, "a layer such as `conv(64, 3)` or a reference such as `@stem`")?;
    let inner = first_inner(pair);
    Ok(match inner.as_rule() {
        Rule::reference => ItemKind::Ref(lower_ident(first_inner(inner), at)),
        _ => ItemKind::Layer(lower_call(inner, at)),
    })
}

/// One entry of a flow list of items: optional name, what it does, and its span.
pub type FlowItem = (Option<Ident>, ItemKind, Span);

/// Parses the raw text of a YAML flow list of items: `[conv1: conv(64, 3, pad=1), bn1: bn, relu]`.
pub fn parse_item_list(text: &str, at: TextAt) -> Result<Vec<FlowItem>, Diagnostic> {
    let pair = parse_rule(Rule::item_list, text, at, "a list of layers")?;
    Ok(lower_flow_list(first_inner(pair), at))
}

fn lower_flow_list(list: Pair<'_, Rule>, at: TextAt) -> Vec<FlowItem> {
    list.into_inner()
        .map(|item| {
            let span = span_of(&item, at);
            let mut inner: Vec<Pair<'_, Rule>> = item.into_inner().collect();
            let body = inner.pop().expect("grammar: flow_item has a body");
            let name = inner.pop().map(|n| lower_ident(n, at));
            let kind = match body.as_rule() {
                Rule::reference => ItemKind::Ref(lower_ident(first_inner(body), at)),
                Rule::flow_list => ItemKind::Seq(
                    lower_flow_list(body, at)
                        .into_iter()
                        .map(|(name, kind, span)| Item {
                            name: name.map(|n| NameTemplate { parts: vec![NamePart::Text(n.name)], span: n.span }),
                            kind,
                            span,
                        })
                        .collect(),
                ),
                _ => ItemKind::Layer(lower_call(body, at)),
            };
            (name, kind, span)
        })
        .collect()
}

/// Parses an item name with optional `{expr}` interpolations: `denselayer{i + 1}`.
/// `at` locates the text's first character; `span` is where errors point.
pub fn parse_name_template(text: &str, at: TextAt, span: Span) -> Result<NameTemplate, Diagnostic> {
    let bad = |what: String| {
        Diagnostic::error("cnnc::syntax::item_name", format!("invalid item name `{text}`: {what}"))
            .at(span, "invalid name")
            .help("names contain letters, digits and `_`, with `{expr}` for computed parts, e.g. `denselayer{i + 1}`")
    };
    let mut parts = Vec::new();
    let mut rest = text;
    let mut pos = 0;
    if text.is_empty() {
        return Err(bad("it is empty".into()));
    }
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('{') {
            let Some(close) = inner.find('}') else { return Err(bad("a `{` is never closed".into())) };
            let e = parse_expr(&inner[..close], TextAt { file: at.file, offset: at.offset + pos + 1 })?;
            parts.push(NamePart::Expr(e));
            pos += close + 2;
            rest = &inner[close + 1..];
        } else {
            let end = rest.find('{').unwrap_or(rest.len());
            let lit = &rest[..end];
            if let Some(c) = lit.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
                return Err(bad(format!("`{c}` is not allowed")));
            }
            parts.push(NamePart::Text(lit.to_string()));
            pos += end;
            rest = &rest[end..];
        }
    }
    Ok(NameTemplate { parts, span })
}

/// Parses a module parameter declaration `type` or `type = default`.
pub fn parse_param_decl(text: &str, at: TextAt) -> Result<(Ident, Option<Expr>), Diagnostic> {
    let pair = parse_rule(Rule::param_decl, text, at, "a parameter type such as `int` or `int = 1`")?;
    let mut inner = pair.into_inner();
    let ty = lower_ident(inner.next().expect("grammar: param_decl starts with ident"), at);
    let default = inner.next().filter(|p| p.as_rule() == Rule::expr).map(|p| lower_expr(p, at));
    Ok((ty, default))
}

/// Checks an identifier's spelling.
pub fn is_ident(text: &str) -> bool {
    SpecGrammar::parse(Rule::ident, text).is_ok_and(|mut p| p.next().is_some_and(|p| p.as_str().len() == text.len()))
}

/// Converts a type keyword, with an error at its span when it is not one.
pub fn param_type(ident: &Ident) -> Result<ParamType, Diagnostic> {
    ParamType::from_keyword(&ident.name).ok_or_else(|| {
        Diagnostic::error("cnnc::syntax::param_type", format!("unknown parameter type `{}`", ident.name))
            .at(ident.span, "not a type")
            .help("the types are int, float, bool, str, list and any")
    })
}

pub(super) fn parse_rule<'i>(rule: Rule, text: &'i str, at: TextAt, what: &str) -> Result<Pair<'i, Rule>, Diagnostic> {
    check_nesting(text, at)?;
    match SpecGrammar::parse(rule, text) {
        Ok(mut pairs) => {
            let pair = pairs.next().expect("grammar: entry rule always yields a pair");
            check_length(&pair, at)?;
            Ok(pair)
        }
        Err(err) => {
            let pos = match err.location {
                pest::error::InputLocation::Pos(p) => p,
                pest::error::InputLocation::Span((s, _)) => s,
            };
            let word: String = text[pos..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            let found = match text[pos..].chars().next() {
                None => "the end of the text".to_string(),
                Some(_) if !word.is_empty() => format!("`{word}`"),
                Some(c) => format!("`{c}`"),
            };
            let dsl = what.is_empty();
            let expected = match &err.variant {
                pest::error::ErrorVariant::ParsingError { positives, .. } => describe(positives),
                _ => None,
            };
            let what = expected.as_deref().unwrap_or(what);
            let end =
                pos + if word.is_empty() { text[pos..].chars().next().map_or(0, char::len_utf8) } else { word.len() };
            let message = if what.is_empty() {
                format!("syntax error: unexpected {found}")
            } else {
                format!("syntax error: expected {what}, found {found}")
            };
            let hint = hint_for(text, pos, dsl);
            let mut d = Diagnostic::error("cnnc::syntax::unexpected", message).at(
                at.span(pos, end),
                if pos == text.len() { "the text ends here".to_string() } else { format!("unexpected {found}") },
            );
            if hint.contains("not closed") || hint.contains("never closed") {
                if let Some((open, bracket)) = innermost_unclosed(&text[..pos]) {
                    d = d.also(at.span(open, open + 1), format!("this `{bracket}` is still open"));
                }
            }
            Err(d.help(hint))
        }
    }
}

/// Human names for the rules pest says it expected, when they say more than the caller's summary.
fn describe(rules: &[Rule]) -> Option<String> {
    let mut names: Vec<&str> = rules
        .iter()
        .filter_map(|r| {
            Some(match r {
                Rule::expr | Rule::int | Rule::float | Rule::string | Rule::ident | Rule::list => "an expression",
                Rule::dsl_item | Rule::dsl_call | Rule::reference | Rule::dsl_seq => "an item",
                Rule::dsl_import | Rule::dsl_module | Rule::dsl_model => "`import`, `module` or `model`",
                Rule::dsl_input | Rule::dsl_labels | Rule::dsl_let | Rule::dsl_body => {
                    "a model field (`input`, `labels`, `preprocess`, `let`, `body`, …)"
                }
                Rule::dsl_param => "a parameter `name: type`",
                Rule::k_body => {
                    "a model field (`input`, `preprocess`, `labels`, `training_weights`, `aliases`, `let`, `body`)"
                }
                Rule::k_then => "`then`",
                Rule::k_do => "`do`",
                Rule::EOI => "the end of the file",
                _ => return None,
            })
        })
        .collect();
    names.dedup();
    if names.is_empty() {
        return None;
    }
    let last = names.pop().expect("not empty");
    Some(if names.is_empty() { last.to_string() } else { format!("{} or {last}", names.join(", ")) })
}

/// The byte offset and character of the innermost `(` or `[` that `text` leaves open, skipping
/// `#` comments and quoted strings (the grammar's `COMMENT` and `string`).
fn innermost_unclosed(text: &str) -> Option<(usize, char)> {
    let mut open = Vec::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '(' | '[' => open.push((i, c)),
            ')' | ']' => {
                open.pop();
            }
            '#' => {
                chars.by_ref().find(|&(_, c)| c == '\n');
            }
            '"' | '\'' => {
                chars.by_ref().find(|&(_, q)| q == c);
            }
            _ => {}
        }
    }
    open.pop()
}

/// Words the DSL reserves (see `dsl.pest`).
const DSL_KEYWORDS: &[&str] = &[
    "import", "module", "model", "let", "body", "if", "then", "else", "repeat", "as", "do", "residual", "shortcut",
    "when", "concat", "add", "mul", "training",
];

fn hint_for(text: &str, pos: usize, dsl: bool) -> String {
    let rest = &text[pos..];
    let before = &text[..pos];
    let previous_word: String = before
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if rest.starts_with(':') && DSL_KEYWORDS.contains(&previous_word.as_str()) {
        return format!("`{previous_word}` is a keyword; quote it to use it as a name: `\"{previous_word}\": ...`");
    }
    let open_brackets = before.matches('[').count().saturating_sub(before.matches(']').count());
    if open_brackets > 0 && (rest.is_empty() || rest.starts_with('}')) {
        return "a `[` before this point is not closed".into();
    }
    let open_parens = before.matches('(').count().saturating_sub(before.matches(')').count());
    if open_parens > 0
        && !rest.starts_with([',', ')'])
        && before.trim_end().ends_with(|c: char| c.is_alphanumeric() || c == ')' || c == ']')
    {
        return "a `(` before this point is not closed, or a `,` is missing".into();
    }
    if rest.starts_with(')') || rest.starts_with(']') {
        "this closing bracket has no matching opening one, or an argument is missing before it".into()
    } else if rest.is_empty() && (text.matches('(').count() > text.matches(')').count()) {
        "a `(` is never closed".into()
    } else if rest.is_empty() && (text.matches('[').count() > text.matches(']').count()) {
        "a `[` is never closed".into()
    } else if dsl {
        "`cnnc fmt SPEC.yaml --to dsl` shows how any YAML spec is written in the DSL; the README has the grammar".into()
    } else {
        "arguments are separated by commas; keyword arguments are written `name=value`".into()
    }
}

/// Refuses an expression that chains more than [`MAX_OPERATORS`] operators, or a text whose
/// expressions have more than [`MAX_TOTAL_OPERATORS`] together: an expression tree is as deep as
/// its operator chains, and every pass over it recurses.
fn check_length(pair: &Pair<'_, Rule>, at: TextAt) -> Result<(), Diagnostic> {
    let refuse = |expr: &Pair<'_, Rule>, message: String| {
        Diagnostic::error("cnnc::limit::expression", message)
            .at(span_of(expr, at), "too long")
            .help("split the expression with `let` bindings")
    };
    let mut total = 0;
    let exprs = std::iter::once(pair.clone()).chain(pair.clone().into_inner().flatten());
    for expr in exprs.filter(|p| p.as_rule() == Rule::expr) {
        let operators = expr.clone().into_inner().filter(|p| is_operator(p.as_rule())).count();
        if operators > MAX_OPERATORS {
            return Err(refuse(&expr, format!("an expression with more than {MAX_OPERATORS} operators")));
        }
        total += operators;
        if total > MAX_TOTAL_OPERATORS {
            return Err(refuse(
                &expr,
                format!("more than {MAX_TOTAL_OPERATORS} operators in the expressions of one text"),
            ));
        }
    }
    Ok(())
}

/// Whether a child of an `expr` is an operator (infix, prefix or an index) rather than an operand.
fn is_operator(rule: Rule) -> bool {
    !matches!(
        rule,
        Rule::float
            | Rule::int
            | Rule::string
            | Rule::list
            | Rule::call
            | Rule::true_lit
            | Rule::false_lit
            | Rule::none_lit
            | Rule::ident
            | Rule::paren
    )
}

fn check_nesting(text: &str, at: TextAt) -> Result<(), Diagnostic> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic::error(
                        "cnnc::limit::nesting",
                        format!("brackets nest deeper than {MAX_NESTING} levels"),
                    )
                    .at(at.span(i, i + 1), "too deep")
                    .help("split the expression with `let` bindings"));
                }
            }
            ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

pub(super) fn first_inner(pair: Pair<'_, Rule>) -> Pair<'_, Rule> {
    pair.into_inner().next().expect("grammar: rule has an inner pair")
}

pub(super) fn span_of(pair: &Pair<'_, Rule>, at: TextAt) -> Span {
    at.span(pair.as_span().start(), pair.as_span().end())
}

pub(super) fn lower_ident(pair: Pair<'_, Rule>, at: TextAt) -> Ident {
    Ident { name: pair.as_str().to_string(), span: span_of(&pair, at) }
}

fn pratt() -> PrattParser<Rule> {
    PrattParser::new()
        .op(Op::infix(Rule::or, Assoc::Left))
        .op(Op::infix(Rule::and, Assoc::Left))
        .op(Op::prefix(Rule::not))
        .op(Op::infix(Rule::eq, Assoc::Left)
            | Op::infix(Rule::ne, Assoc::Left)
            | Op::infix(Rule::lt, Assoc::Left)
            | Op::infix(Rule::le, Assoc::Left)
            | Op::infix(Rule::gt, Assoc::Left)
            | Op::infix(Rule::ge, Assoc::Left))
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left)
            | Op::infix(Rule::div, Assoc::Left)
            | Op::infix(Rule::floordiv, Assoc::Left)
            | Op::infix(Rule::rem, Assoc::Left))
        .op(Op::prefix(Rule::neg))
        .op(Op::postfix(Rule::index))
}

thread_local! {
    static PRATT: PrattParser<Rule> = pratt();
}

pub(super) fn lower_expr(pair: Pair<'_, Rule>, at: TextAt) -> Expr {
    PRATT.with(|pratt| lower_with(pratt, pair, at))
}

fn lower_with(pratt: &PrattParser<Rule>, pair: Pair<'_, Rule>, at: TextAt) -> Expr {
    pratt
        .map_primary(|p| lower_primary(p, at))
        .map_prefix(|op, rhs| {
            let span = span_of(&op, at).to(rhs.span);
            let un = if op.as_rule() == Rule::neg { UnOp::Neg } else { UnOp::Not };
            Expr { kind: ExprKind::Unary(un, Box::new(rhs)), span }
        })
        .map_postfix(|lhs, op| {
            let span = lhs.span.to(span_of(&op, at));
            let index = lower_expr(first_inner(op), at);
            Expr { kind: ExprKind::Index(Box::new(lhs), Box::new(index)), span }
        })
        .map_infix(|lhs, op, rhs| {
            let span = lhs.span.to(rhs.span);
            let bin = match op.as_rule() {
                Rule::or => BinOp::Or,
                Rule::and => BinOp::And,
                Rule::eq => BinOp::Eq,
                Rule::ne => BinOp::Ne,
                Rule::lt => BinOp::Lt,
                Rule::le => BinOp::Le,
                Rule::gt => BinOp::Gt,
                Rule::ge => BinOp::Ge,
                Rule::add => BinOp::Add,
                Rule::sub => BinOp::Sub,
                Rule::mul => BinOp::Mul,
                Rule::div => BinOp::Div,
                Rule::floordiv => BinOp::FloorDiv,
                _ => BinOp::Rem,
            };
            Expr { kind: ExprKind::Binary(bin, Box::new(lhs), Box::new(rhs)), span }
        })
        .parse(pair.into_inner())
}

fn lower_primary(pair: Pair<'_, Rule>, at: TextAt) -> Expr {
    let span = span_of(&pair, at);
    let kind = match pair.as_rule() {
        // The grammar guarantees digits; a literal too large for i64 becomes a float and is refused where an int is needed.
        Rule::int => pair.as_str().parse().map(ExprKind::Int).unwrap_or(ExprKind::Float(f64::INFINITY)),
        Rule::float => ExprKind::Float(pair.as_str().parse().unwrap_or(f64::NAN)),
        Rule::string => ExprKind::Str(unescape(first_inner(pair).as_str())),
        Rule::true_lit => ExprKind::Bool(true),
        Rule::false_lit => ExprKind::Bool(false),
        Rule::none_lit => ExprKind::None,
        Rule::ident => ExprKind::Var(pair.as_str().to_string()),
        Rule::list => ExprKind::List(pair.into_inner().map(|p| lower_expr(p, at)).collect()),
        Rule::call => ExprKind::Call(lower_call(pair, at)),
        Rule::paren => return lower_expr(first_inner(pair), at),
        other => unreachable!("grammar: unexpected primary {other:?}"),
    };
    Expr { kind, span }
}

pub(super) fn lower_call(pair: Pair<'_, Rule>, at: TextAt) -> Call {
    let span = span_of(&pair, at);
    let parens = pair.as_str().contains('(');
    let mut inner = pair.into_inner();
    let func = lower_ident(inner.next().expect("grammar: call starts with ident"), at);
    let args = inner
        .next()
        .map(|args| {
            args.into_inner()
                .map(|arg| {
                    let arg = first_inner(arg);
                    if arg.as_rule() == Rule::kwarg {
                        let mut kv = arg.into_inner();
                        let name = lower_ident(kv.next().expect("grammar: kwarg name"), at);
                        let value = lower_expr(kv.next().expect("grammar: kwarg value"), at);
                        Arg { name: Some(name), value }
                    } else {
                        Arg { name: None, value: lower_expr(arg, at) }
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Call { func, args, parens, span }
}

pub(super) fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceMap;
    use std::path::Path;

    fn at() -> TextAt {
        let mut map = SourceMap::default();
        TextAt { file: map.add("t", Path::new("t"), String::new()), offset: 0 }
    }

    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Int(i) => i.to_string(),
            ExprKind::Float(f) => format!("{f:?}"),
            ExprKind::Var(v) => v.clone(),
            ExprKind::Binary(op, l, r) => format!("({} {} {})", show(l), op.symbol(), show(r)),
            ExprKind::Unary(UnOp::Neg, x) => format!("(-{})", show(x)),
            ExprKind::Unary(UnOp::Not, x) => format!("(not {})", show(x)),
            ExprKind::Index(b, i) => format!("{}[{}]", show(b), show(i)),
            ExprKind::Call(c) => {
                format!("{}({})", c.func.name, c.args.iter().map(|a| show(&a.value)).collect::<Vec<_>>().join(", "))
            }
            ExprKind::List(xs) => format!("[{}]", xs.iter().map(show).collect::<Vec<_>>().join(", ")),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn precedence_follows_python() {
        let cases = [
            ("1 + 2 * 3", "(1 + (2 * 3))"),
            ("a // 64 * g", "((a // 64) * g)"),
            ("-a[0] + 1", "((-a[0]) + 1)"),
            ("stride != 1 or c != out * 4", "((stride != 1) or (c != (out * 4)))"),
            ("not a and b", "((not a) and b)"),
            ("max(8, make_divisible(c * 0.75, 8))", "max(8, make_divisible((c * 0.75), 8))"),
            ("[1, 2.5, x]", "[1, 2.5, x]"),
            ("cfg[i][3]", "cfg[i][3]"),
        ];
        for (text, want) in cases {
            assert_eq!(show(&parse_expr(text, at()).unwrap()), want, "{text}");
        }
    }

    #[test]
    fn spans_are_offset_into_the_file() {
        let e = parse_expr("a + bb", TextAt { offset: 10, ..at() }).unwrap();
        let ExprKind::Binary(_, _, rhs) = e.kind else { panic!() };
        assert_eq!((rhs.span.start, rhs.span.end), (14, 16));
    }

    #[test]
    fn items_parse_calls_and_refs() {
        assert!(matches!(parse_item("relu", at()).unwrap(), ItemKind::Layer(Call { parens: false, .. })));
        assert!(matches!(parse_item("@stem", at()).unwrap(), ItemKind::Ref(_)));
        let ItemKind::Layer(c) = parse_item("conv(64, 3, stride=2)", at()).unwrap() else { panic!() };
        assert_eq!(c.args.len(), 3);
        assert_eq!(c.args[2].name.as_ref().unwrap().name, "stride");
    }

    #[test]
    fn syntax_errors_point_at_the_offending_character() {
        let err = parse_item("conv(64,, 3)", at()).unwrap_err();
        assert_eq!(err.span().unwrap().start, 8);
        assert!(err.message.contains("found `,`"), "{}", err.message);
        assert!(parse_expr(&"(".repeat(100), at()).unwrap_err().message.contains("nest deeper"));
    }
}
