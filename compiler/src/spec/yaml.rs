//! The YAML spelling: a YAML tree turned into the shared AST.

use super::ast::*;
use super::expr::{self, TextAt};
use super::yaml_tree::{self, Node};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::expand::recipe::TRAIN_KEYS;
use crate::source::{FileId, Span};

const MODEL_KEYS: &[&str] = &[
    "import",
    "modules",
    "model",
    "input",
    "let",
    "body",
    "preprocess",
    "train",
    "labels",
    "training_weights",
    "aliases",
];
const MODULE_KEYS: &[&str] = &["params", "let", "input", "preprocess", "body"];
const PREPROCESS_KEYS: &[&str] = &["resize", "crop", "mean", "std"];

/// Parses a YAML spec. Errors in independent parts are all reported.
pub fn parse(text: &str, file: FileId) -> Result<SpecFile, Vec<Diagnostic>> {
    let source = text;
    let root = yaml_tree::parse(text, file).map_err(|d| vec![d])?;
    let Some(root) = root else {
        return Err(vec![Diagnostic::error("cnnc::spec::empty", "the spec is empty")
            .at(Span::new(file, 0, text.len()), "nothing here")
            .help("a spec defines `model:`, `input:` and `body:`, or a library of `modules:`")]);
    };
    let mut cx = Cx { file, source, diags: Vec::new() };
    let spec = cx.spec_file(&root);
    if cx.diags.is_empty() {
        Ok(spec)
    } else {
        Err(cx.diags)
    }
}

struct Cx<'t> {
    file: FileId,
    /// The file's text: flow lists are re-parsed from it, so commas inside calls stay arguments.
    source: &'t str,
    diags: Vec<Diagnostic>,
}

fn expected(what: &str, node: &Node) -> Diagnostic {
    Diagnostic::error("cnnc::yaml::type", format!("expected {what}, found {}", node.kind_name()))
        .at(node.span(), format!("expected {what}"))
}

impl Cx<'_> {
    fn report<T>(&mut self, result: Result<T, Diagnostic>) -> Option<T> {
        result.map_err(|d| self.diags.push(d)).ok()
    }

    fn entries<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [(Node, Node)]> {
        match node {
            Node::Map { entries, .. } => Some(entries),
            other => {
                self.diags.push(expected(what, other));
                None
            }
        }
    }

    fn key<'n>(&mut self, key: &'n Node) -> Option<&'n str> {
        match key.as_scalar() {
            Some(k) => Some(k),
            None => {
                self.diags.push(expected("a plain key", key));
                None
            }
        }
    }

    fn unknown_key(&mut self, key: &str, span: Span, allowed: &[&str], context: &str) {
        let mut d = Diagnostic::error("cnnc::spec::unknown_key", format!("unknown key `{key}` in {context}"))
            .at(span, "unknown key");
        d = match did_you_mean(key, allowed.iter().copied()) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help(format!("the keys of {context} are: {}", allowed.join(", "))),
        };
        self.diags.push(d);
    }

    fn spec_file(&mut self, root: &Node) -> SpecFile {
        let mut spec = SpecFile { file: self.file, imports: Vec::new(), modules: Vec::new(), model: None };
        let Some(entries) = self.entries(root, "a mapping with `model:` or `modules:` at the top") else {
            return spec;
        };
        let get = |name: &str| entries.iter().find(|(k, _)| k.as_scalar() == Some(name)).map(|(k, v)| (k, v));
        for (key, value) in entries {
            let Some(k) = self.key(key) else { continue };
            match k {
                "import" => spec.imports = self.imports(value),
                "modules" => spec.modules = self.modules(value),
                k if MODEL_KEYS.contains(&k) => {
                    if get("model").is_none() {
                        self.diags.push(
                            Diagnostic::error(
                                "cnnc::spec::model_field",
                                format!("`{k}` belongs to a model, but this file has no `model:` name"),
                            )
                            .at(key.span(), "model field without a model")
                            .help("add `model: NAME` at the top, or remove this key from a library file"),
                        );
                    }
                }
                other => self.unknown_key(other, key.span(), MODEL_KEYS, "a spec file"),
            }
        }
        if let Some((model_key, name)) = get("model") {
            spec.model = self.model(model_key, name, &get);
        }
        spec
    }

    fn model<'n>(
        &mut self,
        model_key: &Node,
        name: &Node,
        get: &dyn Fn(&str) -> Option<(&'n Node, &'n Node)>,
    ) -> Option<ModelDef> {
        let name = self.ident(name, "the model's name")?;
        let required = |cx: &mut Cx<'_>, key: &str, example: &str| {
            let found = get(key).map(|(_, v)| v);
            if found.is_none() {
                cx.diags.push(
                    Diagnostic::error("cnnc::spec::missing_key", format!("model `{}` has no `{key}:`", name.name))
                        .at(model_key.span().to(name.span), "model defined here")
                        .help(format!("add `{key}: {example}`")),
                );
            }
            found
        };
        // Without `input:`, the model takes the one its body's module declares (checked when expanded).
        let input = get("input").and_then(|(_, v)| self.expr(v));
        let body = required(self, "body", "[...layers...]").and_then(|n| self.body(n));
        let lets = get("let").map(|(_, v)| self.lets(v)).unwrap_or_default();
        let preprocess = get("preprocess").and_then(|(_, v)| self.preprocess(v));
        let train = get("train").and_then(|(_, v)| self.train(v));
        let labels = get("labels").and_then(|(_, v)| self.string(v, "a labels file path").map(|s| (s, v.span())));
        let training_weights = get("training_weights").and_then(|(_, v)| self.boolean(v).map(|b| (b, v.span())));
        let aliases = get("aliases").map(|(_, v)| self.aliases(v)).unwrap_or_default();
        Some(ModelDef {
            span: model_key.span().to(name.span),
            name,
            input,
            lets,
            body: body?,
            preprocess,
            train,
            labels,
            training_weights,
            aliases,
        })
    }

    /// `train: {optimizer: sgd, lr: 0.001, augment: "random_crop(32, pad=4), hflip", ...}`: the
    /// values of `optimizer`, `schedule` and `augment` are taken as text (quoted or not; in a flow
    /// mapping a value with commas needs quotes), a `freeze` entry or a list of them as layer paths,
    /// the rest as expressions.
    fn train(&mut self, node: &Node) -> Option<TrainSection> {
        let entries = self.entries(node, "a mapping of training settings (optimizer, lr, batch, epochs, ...)")?;
        let mut section = TrainSection { entries: Vec::new(), span: Some(node.span()) };
        for (key, value) in entries {
            let Some(k) = self.key(key) else { continue };
            if !TRAIN_KEYS.contains(&k) {
                self.unknown_key(k, key.span(), TRAIN_KEYS, "`train`");
                continue;
            }
            let text = |n: &Node| match n {
                Node::Scalar { text, span, .. } => Some(Expr { kind: ExprKind::Str(text.clone()), span: *span }),
                _ => None,
            };
            let expr = match (k, value) {
                ("optimizer" | "schedule" | "augment", v) => text(v).or_else(|| {
                    self.diags.push(expected("text", v));
                    None
                }),
                ("freeze", Node::Seq { items, span, .. }) => {
                    let paths: Option<Vec<Expr>> = items.iter().map(text).collect();
                    match paths {
                        Some(list) => Some(Expr { kind: ExprKind::List(list), span: *span }),
                        None => {
                            self.diags.push(expected("a list of layer paths", value));
                            None
                        }
                    }
                }
                ("freeze", v) => text(v).or_else(|| {
                    self.diags.push(expected("a layer path or a list of them", v));
                    None
                }),
                (_, v) => self.expr(v),
            };
            if let Some(expr) = expr {
                section.entries.push((Ident { name: k.to_string(), span: key.span() }, expr));
            }
        }
        Some(section)
    }

    fn imports(&mut self, node: &Node) -> Vec<Import> {
        let items: Vec<&Node> = match node {
            Node::Seq { items, .. } => items.iter().collect(),
            other => vec![other],
        };
        items
            .into_iter()
            .filter_map(|n| self.string(n, "an import path").map(|path| Import { path, span: n.span() }))
            .collect()
    }

    fn modules(&mut self, node: &Node) -> Vec<ModuleDef> {
        let Some(entries) = self.entries(node, "a mapping of module names to definitions") else {
            return Vec::new();
        };
        let mut modules = Vec::new();
        for (key, def) in entries {
            let Some(name) = self.ident(key, "a module name") else { continue };
            if let Some(m) = self.module(name, def) {
                modules.push(m);
            }
        }
        modules
    }

    fn module(&mut self, name: Ident, node: &Node) -> Option<ModuleDef> {
        let entries = self.entries(node, "a module definition with `params:`, `let:` and `body:`")?;
        let (mut params, mut lets, mut body) = (Vec::new(), Vec::new(), None);
        let (mut input, mut preprocess) = (None, None);
        for (key, value) in entries {
            let Some(k) = self.key(key) else { continue };
            match k {
                "params" => params = self.params(value),
                "let" => lets = self.lets(value),
                "input" => input = self.expr(value),
                "preprocess" => preprocess = self.preprocess(value),
                "body" => body = self.body(value),
                other => self.unknown_key(other, key.span(), MODULE_KEYS, "a module"),
            }
        }
        let Some(body) = body else {
            self.diags.push(
                Diagnostic::error("cnnc::spec::module_body", format!("module `{}` has no `body:`", name.name))
                    .at(name.span, "defined here")
                    .help("add `body: [...]` with the module's layers"),
            );
            return None;
        };
        Some(ModuleDef { span: name.span.to(node.span()), name, params, lets, body, input, preprocess })
    }

    fn params(&mut self, node: &Node) -> Vec<ParamDef> {
        let Some(entries) =
            self.entries(node, "a mapping of parameter names to types, e.g. `{planes: int, stride: int = 1}`")
        else {
            return Vec::new();
        };
        let mut params = Vec::new();
        for (key, value) in entries {
            let Some(name) = self.ident(key, "a parameter name") else { continue };
            let Node::Scalar { text, offset, .. } = value else {
                self.diags.push(expected("a type such as `int` or `int = 1`", value));
                continue;
            };
            let Some((ty_ident, default)) = self.report(expr::parse_param_decl(text, self.at(*offset))) else {
                continue;
            };
            let Some(ty) = self.report(expr::param_type(&ty_ident)) else { continue };
            params.push(ParamDef { name, ty, ty_span: ty_ident.span, default });
        }
        params
    }

    fn lets(&mut self, node: &Node) -> Vec<LetBinding> {
        let Some(entries) = self.entries(node, "a mapping of names to expressions") else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|(key, value)| {
                let name = self.ident(key, "a binding name")?;
                let value = self.expr(value)?;
                Some(LetBinding { name, value })
            })
            .collect()
    }

    fn preprocess(&mut self, node: &Node) -> Option<Preprocess> {
        let entries = self.entries(node, "a mapping with resize, crop, mean, std")?;
        let mut pre = Preprocess { span: Some(node.span()), ..Preprocess::default() };
        for (key, value) in entries {
            let Some(k) = self.key(key) else { continue };
            let slot = match k {
                "resize" => &mut pre.resize,
                "crop" => &mut pre.crop,
                "mean" => &mut pre.mean,
                "std" => &mut pre.std,
                other => {
                    self.unknown_key(other, key.span(), PREPROCESS_KEYS, "`preprocess`");
                    continue;
                }
            };
            *slot = self.expr(value);
        }
        Some(pre)
    }

    fn aliases(&mut self, node: &Node) -> Vec<Alias> {
        let Some(entries) = self.entries(node, "a mapping from checkpoint key patterns to spec names") else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|(k, v)| {
                let from = self.string(k, "a key pattern")?;
                let to = self.string(v, "a key pattern")?;
                Some(Alias { from, to, span: k.span().to(v.span()) })
            })
            .collect()
    }

    fn at(&self, offset: usize) -> TextAt {
        TextAt { file: self.file, offset }
    }

    fn scalar<'n>(&mut self, node: &'n Node, what: &str) -> Option<(&'n str, usize)> {
        match node {
            Node::Scalar { text, offset, .. } => Some((text, *offset)),
            other => {
                self.diags.push(expected(what, other));
                None
            }
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        self.scalar(node, what).map(|(s, _)| s.to_string())
    }

    fn boolean(&mut self, node: &Node) -> Option<bool> {
        match self.scalar(node, "true or false")?.0 {
            "true" => Some(true),
            "false" => Some(false),
            other => {
                self.diags.push(
                    Diagnostic::error("cnnc::yaml::bool", format!("expected true or false, found `{other}`"))
                        .at(node.span(), "not a boolean"),
                );
                None
            }
        }
    }

    fn ident(&mut self, node: &Node, what: &str) -> Option<Ident> {
        let (text, offset) = self.scalar(node, what)?;
        if expr::is_ident(text) {
            Some(Ident { name: text.to_string(), span: Span::new(self.file, offset, offset + text.len()) })
        } else {
            self.diags.push(
                Diagnostic::error("cnnc::syntax::name", format!("`{text}` is not valid as {what}"))
                    .at(node.span(), "invalid name")
                    .help(if text.contains([')', ']', '(']) {
                        "inside a YAML `{...}`, a comma ends a value, so `f(a, b)` is cut in two: write the \
                         mapping one `key: value` per line"
                    } else {
                        "names start with a letter or `_` and contain letters, digits and `_`"
                    }),
            );
            None
        }
    }

    fn expr(&mut self, node: &Node) -> Option<Expr> {
        match node {
            // A quoted YAML scalar in an expression position is a string: `act: "relu"`.
            Node::Scalar { text, quoted: true, span, .. } => {
                Some(Expr { kind: ExprKind::Str(text.clone()), span: *span })
            }
            Node::Scalar { text, offset, .. } => self.report(expr::parse_expr(text, self.at(*offset))),
            Node::Seq { flow: true, span, .. } => {
                let raw = self.source.get(span.start..span.end).unwrap_or("[]");
                self.report(expr::parse_expr(raw, self.at(span.start)))
            }
            Node::Seq { items, span, .. } => {
                let items: Vec<Option<Expr>> = items.iter().map(|n| self.expr(n)).collect();
                Some(Expr { kind: ExprKind::List(items.into_iter().collect::<Option<_>>()?), span: *span })
            }
            Node::Map { .. } => {
                self.diags.push(expected("an expression", node));
                None
            }
        }
    }

    fn body(&mut self, node: &Node) -> Option<Body> {
        match node {
            Node::Seq { items, flow, span } => Some(Body::Seq(self.list_items(items, *flow, *span))),
            other => self.item(other).map(|i| Body::Single(Box::new(i))),
        }
    }

    fn items(&mut self, nodes: &[Node]) -> Vec<Item> {
        nodes.iter().filter_map(|n| self.item(n)).collect()
    }

    /// Items of a YAML list. A `[...]` list is re-parsed from its text, so `[conv(64, 1, stride=2), bn]`
    /// keeps its arguments together; one that needs YAML's own structure falls back to YAML's reading.
    fn list_items(&mut self, nodes: &[Node], flow: bool, span: Span) -> Vec<Item> {
        if flow {
            if let Some(raw) = self.source.get(span.start..span.end) {
                if let Ok(items) = expr::parse_item_list(raw, self.at(span.start)) {
                    return items
                        .into_iter()
                        .map(|(name, kind, span)| Item {
                            name: name.map(|n| NameTemplate { parts: vec![NamePart::Text(n.name)], span: n.span }),
                            kind,
                            span,
                        })
                        .collect();
                }
            }
        }
        let split = |n: &Node| n.as_scalar().is_some_and(|t| t.matches('(').count() != t.matches(')').count());
        if flow && nodes.iter().any(split) {
            self.diags.push(
                Diagnostic::error("cnnc::yaml::split_call", "a layer call is split by the commas of a YAML `[...]` list")
                    .at(span, "commas here separate list entries, not arguments")
                    .help("write the list as a block (one `- item` per line), or quote each call: `['conv(64, 1, stride=2)', bn]`"),
            );
            return Vec::new();
        }
        self.items(nodes)
    }

    /// `then:`/`else:`/`body:` accept one item or a list of items.
    fn splice(&mut self, node: &Node) -> Vec<Item> {
        match node {
            Node::Seq { items, flow, span } => self.list_items(items, *flow, *span),
            other => self.item(other).into_iter().collect(),
        }
    }

    fn item(&mut self, node: &Node) -> Option<Item> {
        let span = node.span();
        match node {
            Node::Scalar { text, offset, .. } => {
                let kind = self.report(expr::parse_item(text, self.at(*offset)))?;
                Some(Item { name: None, kind, span })
            }
            Node::Seq { items, flow, .. } => {
                Some(Item { name: None, kind: ItemKind::Seq(self.list_items(items, *flow, span)), span })
            }
            Node::Map { entries, .. } => self.map_item(entries, span),
        }
    }

    fn map_item(&mut self, entries: &[(Node, Node)], span: Span) -> Option<Item> {
        let keys: Vec<&str> = entries.iter().filter_map(|(k, _)| k.as_scalar()).collect();
        let get = |name: &str| entries.iter().find(|(k, _)| k.as_scalar() == Some(name)).map(|(_, v)| v);
        if keys.contains(&"if") {
            self.only_keys(entries, &["if", "then", "else"], "a conditional");
            let cond = self.expr(get("if")?)?;
            let then = get("then").map(|n| self.splice(n)).unwrap_or_default();
            let otherwise = get("else").map(|n| self.splice(n)).unwrap_or_default();
            return Some(Item { name: None, kind: ItemKind::If { cond, then, otherwise }, span });
        }
        if keys.contains(&"repeat") {
            self.only_keys(entries, &["repeat", "as", "body"], "a repeat");
            let count = self.expr(get("repeat")?)?;
            let var = match get("as") {
                Some(n) => Some(self.ident(n, "loop variable name")?),
                None => None,
            };
            let Some(body) = get("body") else {
                self.diags.push(
                    Diagnostic::error("cnnc::spec::repeat_body", "`repeat` has no `body:`")
                        .at(span, "here")
                        .help("add `body: [...]` with the repeated items"),
                );
                return None;
            };
            let body = self.splice(body);
            return Some(Item { name: None, kind: ItemKind::Repeat { count, var, body }, span });
        }
        if keys.contains(&"training") {
            self.only_keys(entries, &["training", "loss_weight"], "a training branch");
            let body = self.body(get("training")?)?;
            let loss_weight = match get("loss_weight") {
                Some(n) => Some(self.expr(n)?),
                None => None,
            };
            return Some(Item { name: None, kind: ItemKind::Training { body, loss_weight }, span });
        }
        if keys.contains(&"residual") {
            self.only_keys(entries, &["residual", "shortcut", "when"], "a residual block");
            let main = self.splice(get("residual")?);
            let shortcut = get("shortcut").map(|n| self.splice(n)).unwrap_or_default();
            let when = match get("when") {
                Some(n) => Some(self.expr(n)?),
                None => None,
            };
            return Some(Item { name: None, kind: ItemKind::Residual { main, shortcut, when }, span });
        }
        let [(key, value)] = entries else {
            self.diags.push(
                Diagnostic::error("cnnc::spec::item_keys", format!("an item has one key, found {}: {}", entries.len(), keys.join(", ")))
                    .at(span, "ambiguous item")
                    .help("write `name: layer(...)` for a named layer, or use `if:`/`repeat:` for structure; each list entry is one item"),
            );
            return None;
        };
        let k = self.key(key)?;
        let join = match k {
            "concat" => Some(JoinOp::Concat),
            "add" => Some(JoinOp::Add),
            "mul" => Some(JoinOp::Mul),
            _ => None,
        };
        if let Some(op) = join {
            let Node::Seq { items, flow, span: list_span } = value else {
                self.diags.push(expected(&format!("a list of branches after `{k}:`"), value));
                return None;
            };
            let branches = self.list_items(items, *flow, *list_span);
            return Some(Item { name: None, kind: ItemKind::Join { op, branches }, span });
        }
        let name = self.name_template(key)?;
        let inner = self.item(value)?;
        if inner.name.is_some() {
            // `a: {b: conv(...)}` is `a` holding a one-item sequence named `b`.
            return Some(Item { name: Some(name), kind: ItemKind::Seq(vec![inner]), span });
        }
        Some(Item { name: Some(name), kind: inner.kind, span })
    }

    fn only_keys(&mut self, entries: &[(Node, Node)], allowed: &[&str], context: &str) {
        for (key, _) in entries {
            if let Some(k) = key.as_scalar() {
                if !allowed.contains(&k) {
                    self.unknown_key(k, key.span(), allowed, context);
                }
            }
        }
    }

    fn name_template(&mut self, key: &Node) -> Option<NameTemplate> {
        let (text, offset) = self.scalar(key, "an item name")?;
        self.report(expr::parse_name_template(text, self.at(offset), key.span()))
    }
}
