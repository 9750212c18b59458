//! The DSL spelling: a pest grammar (`dsl.pest`) lowered into the shared AST.

use pest::iterators::Pair;

use super::ast::*;
use super::expr::{
    self, first_inner, lower_call, lower_expr, lower_ident, parse_rule, span_of, unescape, Rule, TextAt,
};
use crate::diagnostic::Diagnostic;
use crate::expand::recipe::TRAIN_KEYS;
use crate::source::{FileId, Span};

/// Parses a DSL spec. Errors in independent parts are all reported.
pub fn parse(text: &str, file: FileId) -> Result<SpecFile, Vec<Diagnostic>> {
    let at = TextAt { file, offset: 0 };
    if text.trim().is_empty() {
        return Err(vec![Diagnostic::error("cnnc::spec::empty", "the spec is empty")
            .at(Span::new(file, 0, text.len()), "nothing here")
            .help("a spec defines `model NAME { input [...] body [...] }`, or a library of `module`s")]);
    }
    let pair = parse_rule(Rule::dsl_file, text, at, "").map_err(|d| vec![d])?;
    let mut cx = Cx { at, diags: Vec::new() };
    let spec = cx.file(pair);
    if cx.diags.is_empty() {
        Ok(spec)
    } else {
        Err(cx.diags)
    }
}

struct Cx {
    at: TextAt,
    diags: Vec<Diagnostic>,
}

/// The first pair of a rule after its keyword token.
fn first(pair: Pair<'_, Rule>) -> Pair<'_, Rule> {
    parts(pair).next().expect("grammar: rule has content after its keyword")
}

/// The pairs of a rule without its keyword tokens.
fn parts(pair: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pair.into_inner().filter(|p| !format!("{:?}", p.as_rule()).starts_with("k_"))
}

impl Cx {
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        span_of(pair, self.at)
    }

    fn string(&self, pair: Pair<'_, Rule>) -> String {
        unescape(first_inner(pair).as_str())
    }

    fn file(&mut self, pair: Pair<'_, Rule>) -> SpecFile {
        let mut spec = SpecFile { file: self.at.file, imports: Vec::new(), modules: Vec::new(), model: None };
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::dsl_import => {
                    let span = self.span(&p);
                    spec.imports.push(Import { path: self.string(first(p)), span });
                }
                Rule::dsl_module => {
                    if let Some(m) = self.module(p) {
                        spec.modules.push(m);
                    }
                }
                Rule::dsl_model => {
                    let span = self.span(&p);
                    match (&spec.model, self.model(p)) {
                        (Some(first), Some(_)) => self.diags.push(
                            Diagnostic::error(
                                "cnnc::spec::second_model",
                                "a spec file defines one model, found a second",
                            )
                            .at(span, "second model")
                            .also(first.span, "first model")
                            .help("put each model in its own file"),
                        ),
                        (None, model) => spec.model = model,
                        (Some(_), None) => {}
                    }
                }
                _ => {}
            }
        }
        spec
    }

    fn module(&mut self, pair: Pair<'_, Rule>) -> Option<ModuleDef> {
        let span = self.span(&pair);
        let mut inner = parts(pair);
        let name = lower_ident(inner.next()?, self.at);
        let (mut params, mut lets, mut body) = (Vec::new(), Vec::new(), None);
        let (mut input, mut preprocess) = (None, None);
        for p in inner {
            match p.as_rule() {
                Rule::dsl_params => params = p.into_inner().filter_map(|p| self.param(p)).collect(),
                Rule::dsl_let => lets.push(self.binding(p)),
                Rule::dsl_input => input = Some(lower_expr(first(p), self.at)),
                Rule::dsl_preprocess => preprocess = Some(self.preprocess(p)),
                Rule::dsl_body => body = Some(self.body(first(p))),
                _ => {}
            }
        }
        Some(ModuleDef { name, params, lets, body: body?, input, preprocess, span })
    }

    fn param(&mut self, pair: Pair<'_, Rule>) -> Option<ParamDef> {
        let mut inner = pair.into_inner();
        let name = lower_ident(inner.next()?, self.at);
        let ty_ident = lower_ident(inner.next()?, self.at);
        let default = inner.next().map(|e| lower_expr(e, self.at));
        let ty = expr::param_type(&ty_ident).map_err(|d| self.diags.push(d)).ok()?;
        Some(ParamDef { name, ty, ty_span: ty_ident.span, default })
    }

    fn binding(&mut self, pair: Pair<'_, Rule>) -> LetBinding {
        let mut inner = parts(pair);
        let name = lower_ident(inner.next().expect("grammar: let name"), self.at);
        let value = lower_expr(inner.next().expect("grammar: let value"), self.at);
        LetBinding { name, value }
    }

    /// `body ITEM`: an unnamed `[...]` is a numbered sequence, anything else is inlined.
    fn body(&mut self, item: Pair<'_, Rule>) -> Body {
        let item = self.item(item);
        match item {
            Item { name: None, kind: ItemKind::Seq(items), .. } => Body::Seq(items),
            other => Body::Single(Box::new(other)),
        }
    }

    fn model(&mut self, pair: Pair<'_, Rule>) -> Option<ModelDef> {
        let span = self.span(&pair);
        let mut inner = parts(pair);
        let name = lower_ident(inner.next()?, self.at);
        let (mut input, mut body, mut lets) = (None, None, Vec::new());
        let (mut preprocess, mut labels, mut training_weights, mut aliases) = (None, None, None, Vec::new());
        let mut train = None;
        for field in inner {
            let field_span = self.span(&field);
            match field.as_rule() {
                Rule::dsl_input => input = Some(lower_expr(first(field), self.at)),
                Rule::dsl_labels => labels = Some((self.string(first(field)), field_span)),
                Rule::dsl_training_weights => {
                    training_weights = Some((first(field).as_rule() == Rule::true_lit, field_span))
                }
                Rule::dsl_preprocess => preprocess = Some(self.preprocess(field)),
                Rule::dsl_train => train = Some(self.train(field)),
                Rule::dsl_aliases => {
                    for alias in parts(field) {
                        let span = self.span(&alias);
                        let mut kv = alias.into_inner();
                        let from = self.string(kv.next().expect("grammar: alias key"));
                        let to = self.string(kv.next().expect("grammar: alias value"));
                        aliases.push(Alias { from, to, span });
                    }
                }
                Rule::dsl_let => lets.push(self.binding(field)),
                Rule::dsl_body => body = Some(self.body(first(field))),
                _ => {}
            }
        }
        let missing = |what: &str, example: &str| {
            Diagnostic::error("cnnc::spec::missing_key", format!("model `{}` has no `{what}`", name.name))
                .at(name.span, "model defined here")
                .help(format!("add `{what} {example}` inside the braces"))
        };
        if body.is_none() {
            self.diags.push(missing("body", "[...layers...]"));
        }
        Some(ModelDef { name, input, lets, body: body?, preprocess, train, labels, training_weights, aliases, span })
    }

    /// `train { optimizer: "sgd", lr: 0.001, batch: 8 }`: each value an expression.
    fn train(&mut self, pair: Pair<'_, Rule>) -> TrainSection {
        let mut section = TrainSection { entries: Vec::new(), span: Some(self.span(&pair)) };
        for entry in parts(pair) {
            let mut kv = entry.into_inner();
            let (Some(key), Some(value)) = (kv.next(), kv.next()) else { unreachable!("grammar: train entry") };
            let key = lower_ident(key, self.at);
            if !TRAIN_KEYS.contains(&key.name.as_str()) {
                self.diags.push(
                    Diagnostic::error("cnnc::spec::unknown_key", format!("unknown key `{}` in `train`", key.name))
                        .at(key.span, "unknown key")
                        .help(format!("the keys of `train` are: {}", TRAIN_KEYS.join(", "))),
                );
                continue;
            }
            section.entries.push((key, lower_expr(value, self.at)));
        }
        section
    }

    fn preprocess(&mut self, pair: Pair<'_, Rule>) -> Preprocess {
        let mut pre = Preprocess { span: Some(self.span(&pair)), ..Preprocess::default() };
        for entry in parts(pair) {
            let mut kv = entry.into_inner();
            let (Some(key), Some(value)) = (kv.next(), kv.next()) else { unreachable!("grammar: preprocess entry") };
            let key = lower_ident(key, self.at);
            let value = Some(lower_expr(value, self.at));
            match key.name.as_str() {
                "resize" => pre.resize = value,
                "crop" => pre.crop = value,
                "mean" => pre.mean = value,
                "std" => pre.std = value,
                other => self.diags.push(
                    Diagnostic::error("cnnc::spec::unknown_key", format!("unknown key `{other}` in `preprocess`"))
                        .at(key.span, "unknown key")
                        .help("the keys of `preprocess` are: resize, crop, mean, std"),
                ),
            }
        }
        pre
    }

    fn item(&mut self, pair: Pair<'_, Rule>) -> Item {
        let span = self.span(&pair);
        let mut inner: Vec<Pair<'_, Rule>> = pair.into_inner().collect();
        let body = inner.pop().expect("grammar: an item has a body");
        let name = inner.pop().and_then(|n| self.name(n));
        let kind = self.item_kind(body);
        Item { name, kind, span }
    }

    fn name(&mut self, pair: Pair<'_, Rule>) -> Option<NameTemplate> {
        let span = self.span(&pair);
        let inner = first_inner(pair);
        if inner.as_rule() == Rule::ident {
            return Some(NameTemplate { parts: vec![NamePart::Text(inner.as_str().to_string())], span });
        }
        let text = first_inner(inner);
        let at = TextAt { file: self.at.file, offset: self.at.offset + text.as_span().start() };
        expr::parse_name_template(text.as_str(), at, span).map_err(|d| self.diags.push(d)).ok()
    }

    fn items(&mut self, seq: Pair<'_, Rule>) -> Vec<Item> {
        seq.into_inner().map(|p| self.item(p)).collect()
    }

    fn branch(&mut self, pair: Pair<'_, Rule>) -> Vec<Item> {
        let inner = first_inner(pair);
        match inner.as_rule() {
            Rule::dsl_seq => self.items(inner),
            _ => vec![self.item(inner)],
        }
    }

    fn item_kind(&mut self, body: Pair<'_, Rule>) -> ItemKind {
        match body.as_rule() {
            Rule::reference => ItemKind::Ref(lower_ident(first_inner(body), self.at)),
            Rule::dsl_call => ItemKind::Layer(lower_call(body, self.at)),
            Rule::dsl_seq => ItemKind::Seq(self.items(body)),
            Rule::dsl_if => {
                let mut inner = parts(body);
                let cond = lower_expr(inner.next().expect("grammar: if condition"), self.at);
                let then = self.branch(inner.next().expect("grammar: then branch"));
                let otherwise = inner.next().map(|b| self.branch(b)).unwrap_or_default();
                ItemKind::If { cond, then, otherwise }
            }
            Rule::dsl_repeat => {
                let mut inner: Vec<Pair<'_, Rule>> = parts(body).collect();
                let branch = inner.pop().expect("grammar: repeat body");
                let var = if inner.len() == 2 { inner.pop().map(|v| lower_ident(v, self.at)) } else { None };
                let count = lower_expr(inner.pop().expect("grammar: repeat count"), self.at);
                ItemKind::Repeat { count, var, body: self.branch(branch) }
            }
            Rule::dsl_residual => {
                let (mut main, mut shortcut, mut when) = (Vec::new(), Vec::new(), None);
                for p in parts(body) {
                    match p.as_rule() {
                        Rule::dsl_when => when = parts(p).next().map(|e| lower_expr(e, self.at)),
                        Rule::dsl_seq => main = self.items(p),
                        Rule::dsl_shortcut => {
                            if let Some(b) = parts(p).next() {
                                shortcut = self.branch(b);
                            }
                        }
                        _ => {}
                    }
                }
                ItemKind::Residual { main, shortcut, when }
            }
            Rule::dsl_join => {
                let mut inner = body.into_inner();
                let op = match inner.next().expect("grammar: join op").as_str() {
                    "concat" => JoinOp::Concat,
                    "add" => JoinOp::Add,
                    _ => JoinOp::Mul,
                };
                ItemKind::Join { op, branches: self.items(inner.next().expect("grammar: join branches")) }
            }
            Rule::dsl_training => {
                let (mut loss_weight, mut branch) = (None, None);
                for p in parts(body) {
                    match p.as_rule() {
                        Rule::dsl_loss_weight => loss_weight = parts(p).next().map(|e| lower_expr(e, self.at)),
                        _ => branch = Some(self.body(p)),
                    }
                }
                ItemKind::Training { body: branch.expect("grammar: training item"), loss_weight }
            }
            other => unreachable!("grammar: unexpected item body {other:?}"),
        }
    }
}
