//! Stage 2 — expansion: modules are instantiated with their arguments, expressions evaluated,
//! `repeat`/`if` spliced, names joined into layer paths, and every layer handed to `check`
//! and appended to the graph. All independent errors are collected.

pub mod args;
pub mod eval;
pub mod layers;
pub mod value;

mod meta;
mod preprocess;
pub mod recipe;

use std::collections::{HashMap, HashSet};

use self::args::bind;
use self::eval::{eval, reads_any};
use self::layers::{Built, LayerArgs};
use self::value::{Env, Value};
use crate::check::{self, Blame, ShapeError};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::graph::{AuxLoss, Fused, Graph, ModuleInstance, Node, NodeId, Op, Param, Shape};
use crate::source::{SourceMap, Span};
use crate::spec::ast::{Body, Call, Item, ItemKind, JoinOp, ModuleDef, NamePart, NameTemplate, ParamType, SpecFile};

/// How deeply module calls may nest.
pub const MAX_CALL_DEPTH: usize = 64;
/// The most nodes a spec may expand to.
pub const MAX_NODES: usize = 200_000;
/// The most times one `repeat` may run.
pub const MAX_REPEAT: i64 = 10_000;
/// The most items (layers, module calls, references, structure) expansion visits, counted as it
/// goes, so that modules calling modules several times over cannot make `cnnc check` run for
/// minutes; `CNNC_MAX_EXPANSION` raises it. No zoo model visits 3,000.
pub const MAX_EXPANSION: usize = 500_000;

/// [`MAX_EXPANSION`], or the positive number in `CNNC_MAX_EXPANSION`.
fn expansion_budget() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    crate::limit::from_env(&LIMIT, "CNNC_MAX_EXPANSION", MAX_EXPANSION)
}

/// What a spec file turned out to define.
// One value per compilation, moved once: boxing the graph would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Expanded {
    /// A model, as a checked graph.
    Model(Graph),
    /// A library of modules (no `model:`), with the modules' names.
    Library(Vec<String>),
}

/// Expands the model of `files[0]` (the rest are its imports) into a checked graph.
pub fn expand(files: &[SpecFile], sources: &SourceMap) -> Result<Expanded, Vec<Diagnostic>> {
    let mut x = Expander {
        modules: HashMap::new(),
        graph: None,
        diags: Vec::new(),
        call_stack: Vec::new(),
        scopes: Vec::new(),
        weights: HashMap::new(),
        duplicate_names: Vec::new(),
        budget: expansion_budget(),
        visited: 0,
        training: false,
        aux_losses: Vec::new(),
    };
    x.collect_modules(files);
    let Some(model) = files.first().and_then(|f| f.model.as_ref()) else {
        let names = files.first().map(|f| f.modules.iter().map(|m| m.name.name.clone()).collect()).unwrap_or_default();
        return if x.diags.is_empty() { Ok(Expanded::Library(names)) } else { Err(x.diags) };
    };

    let mut env = Env::default();
    let mut failed = HashSet::new();
    for binding in &model.lets {
        if reads_any(&binding.value, &failed) {
            failed.insert(binding.name.name.as_str());
            continue;
        }
        match eval(&binding.value, &env) {
            Ok(v) => env = env.bind(binding.name.name.clone(), v),
            Err(d) => {
                x.diags.push(d);
                failed.insert(binding.name.name.as_str());
            }
        }
    }
    // A model without `input:` takes its module's, with the module's preprocessing unless it has
    // its own; both are constants of the module, evaluated without the model's bindings.
    let module = model.body_call().and_then(|call| x.modules.get(call.func.name.as_str()).copied());
    let module_env = Env::default();
    let (input_expr, input_env, preprocess) = match (&model.input, module.and_then(|m| m.input.as_ref())) {
        (Some(own), _) => (own, &env, model.preprocess.as_ref().map(|p| (p, &env))),
        (None, Some(declared)) => {
            let own = model.preprocess.as_ref().map(|p| (p, &env));
            let theirs = module.and_then(|m| m.preprocess.as_ref()).map(|p| (p, &module_env));
            (declared, &module_env, own.or(theirs))
        }
        (None, None) => {
            x.diags.push(meta::missing_input(model, module));
            return Err(x.diags);
        }
    };
    let input = meta::input_shape(input_expr, input_env);
    let input = match input {
        Ok(shape) => shape,
        Err(d) => {
            x.diags.push(d);
            return Err(x.diags);
        }
    };
    x.graph = Some(Graph::new(input.clone(), input_expr.span));
    let start = Flow { node: NodeId::INPUT, shape: Some(input) };
    let out = x.run_body(&model.body, &env, "", start);
    let mut graph = x.graph.take().expect("graph was created above");
    graph.output = out.node;
    for (head, weight) in std::mem::take(&mut x.aux_losses) {
        let (Some(shape), Some(output)) = (&head.shape, &out.shape) else { continue };
        if shape != output {
            let last = graph.node(head.node);
            x.diags.push(
                Diagnostic::error(
                    "cnnc::shape::aux_head",
                    format!("this auxiliary head gives {shape} but the model's output is {output}"),
                )
                .at(last.span, format!("the head ends here, with {shape}"))
                .in_layer(&last.path)
                .help("a head with a `loss_weight` must score the same classes as the output: end it with a linear layer to the output's class count"),
            );
            continue;
        }
        graph.aux_losses.push(AuxLoss { node: head.node, weight });
    }
    if let Some(section) = &model.train {
        match recipe::evaluate(section, &env) {
            Ok(recipe) => graph.train = Some(recipe),
            Err(mut ds) => x.diags.append(&mut ds),
        }
    }
    if let Some(shape) = &out.shape {
        let input = graph.node(graph.input).shape.clone();
        match meta::evaluate(model, preprocess, &input, shape, sources) {
            Ok(meta) => graph.meta = meta,
            Err(mut ds) => x.diags.append(&mut ds),
        }
    }
    if x.diags.is_empty() {
        Ok(Expanded::Model(graph))
    } else {
        Err(dedup(x.diags))
    }
}

/// Drops repeats of the same error at the same place (a block instantiated many times).
fn dedup(diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut seen = HashSet::new();
    diags.into_iter().filter(|d| seen.insert((d.message.clone(), d.span().map(|s| (s.file, s.start, s.end))))).collect()
}

/// The value flowing along a sequence: a node and its shape, or `None` after an error.
#[derive(Clone, Debug)]
struct Flow {
    node: NodeId,
    shape: Option<Shape>,
}

impl Flow {
    fn poisoned(&self) -> Flow {
        Flow { node: self.node, shape: None }
    }
}

/// Named outputs visible to `@references`, per sequence.
#[derive(Default)]
struct Scope {
    defined: HashMap<String, (Flow, Span)>,
    /// Names of this sequence not reached yet: a reference to one of them points forward.
    pending: HashMap<String, Span>,
}

struct Expander<'a> {
    modules: HashMap<&'a str, &'a ModuleDef>,
    graph: Option<Graph>,
    diags: Vec<Diagnostic>,
    call_stack: Vec<(&'a str, Span)>,
    scopes: Vec<Scope>,
    weights: HashMap<String, Span>,
    /// Layer paths already reported as named twice: their weights collide as a consequence.
    duplicate_names: Vec<String>,
    /// How many items expansion may visit, and how many it has.
    budget: usize,
    visited: usize,
    training: bool,
    /// Training branches in the loss: output flow and declared weight.
    aux_losses: Vec<(Flow, f64)>,
}

fn join_path(prefix: &str, segment: &str) -> String {
    if prefix.is_empty() {
        segment.to_string()
    } else {
        format!("{prefix}.{segment}")
    }
}

impl<'a> Expander<'a> {
    fn graph(&mut self) -> &mut Graph {
        self.graph.as_mut().expect("graph exists while expanding a model")
    }

    fn collect_modules(&mut self, files: &'a [SpecFile]) {
        for file in files {
            for def in &file.modules {
                let name = def.name.name.as_str();
                if layers::lookup(name).is_some() {
                    self.diags.push(
                        Diagnostic::error(
                            "cnnc::module::shadows_builtin",
                            format!("module `{name}` has the name of a builtin layer"),
                        )
                        .at(def.name.span, "shadows a builtin")
                        .help("rename the module"),
                    );
                } else if let Some(first) = self.modules.get(name) {
                    self.diags.push(
                        Diagnostic::error("cnnc::module::duplicate", format!("module `{name}` is defined twice"))
                            .at(def.name.span, "defined again here")
                            .also(first.name.span, "first defined here")
                            .help("rename one of them"),
                    );
                } else {
                    self.modules.insert(name, def);
                }
            }
        }
    }

    fn run_body(&mut self, body: &'a Body, env: &Env, path: &str, input: Flow) -> Flow {
        match body {
            Body::Seq(items) => self.run_seq(items, env, path, input),
            Body::Single(item) => self.run_item(item, env, path, input),
        }
    }

    /// Expands `if` and `repeat` into the plain items they stand for, each with its environment.
    fn splice(&mut self, items: &'a [Item], env: &Env, out: &mut Vec<(&'a Item, Env)>) {
        for item in items {
            if item.name.is_some() {
                // A named `if`/`repeat` is a sub-sequence of its own, not spliced into this one.
                out.push((item, env.clone()));
            } else {
                self.splice_one(item, env, out);
            }
        }
    }

    fn splice_one(&mut self, item: &'a Item, env: &Env, out: &mut Vec<(&'a Item, Env)>) {
        match &item.kind {
            ItemKind::If { cond, then, otherwise } => match eval(cond, env) {
                Ok(Value::Bool(true)) => self.splice(then, env, out),
                Ok(Value::Bool(false)) => self.splice(otherwise, env, out),
                Ok(other) => self.diags.push(
                    Diagnostic::error(
                        "cnnc::expr::condition",
                        format!("`if` needs a bool, found {} `{other}`", other.type_name()),
                    )
                    .at(cond.span, "not a bool")
                    .help("compare explicitly, e.g. `stride != 1`"),
                ),
                Err(d) => self.diags.push(d),
            },
            ItemKind::Repeat { count, var, body } => {
                let n = match eval(count, env) {
                    Ok(v) => match v.as_int() {
                        Some(n) if (0..=MAX_REPEAT).contains(&n) => n,
                        _ => {
                            self.diags.push(
                                Diagnostic::error(
                                    "cnnc::limit::repeat",
                                    format!("`repeat` needs a count from 0 to {MAX_REPEAT}, found {v}"),
                                )
                                .at(count.span, "bad count"),
                            );
                            return;
                        }
                    },
                    Err(d) => {
                        self.diags.push(d);
                        return;
                    }
                };
                for i in 0..n {
                    if out.len() > MAX_NODES {
                        return;
                    }
                    let env = match var {
                        Some(v) => env.bind(v.name.clone(), Value::Int(i)),
                        None => env.clone(),
                    };
                    self.splice(body, &env, out);
                }
            }
            _ => out.push((item, env.clone())),
        }
    }

    fn name(&mut self, template: &NameTemplate, env: &Env) -> Option<String> {
        let mut name = String::new();
        for part in &template.parts {
            match part {
                NamePart::Text(t) => name.push_str(t),
                NamePart::Expr(e) => match eval(e, env) {
                    Ok(Value::Int(i)) if i >= 0 => name.push_str(&i.to_string()),
                    Ok(Value::Str(s)) if s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !s.is_empty() => {
                        name.push_str(&s)
                    }
                    Ok(other) => {
                        self.diags.push(
                            Diagnostic::error(
                                "cnnc::name::part",
                                format!("a name part must be a non-negative int or a plain word, found {other}"),
                            )
                            .at(e.span, "bad name part"),
                        );
                        return None;
                    }
                    Err(d) => {
                        self.diags.push(d);
                        return None;
                    }
                },
            }
        }
        Some(name)
    }

    fn run_seq(&mut self, items: &'a [Item], env: &Env, prefix: &str, input: Flow) -> Flow {
        let mut spliced = Vec::new();
        self.splice(items, env, &mut spliced);
        self.run_spliced(spliced, prefix, input)
    }

    fn run_spliced(&mut self, spliced: Vec<(&'a Item, Env)>, prefix: &str, input: Flow) -> Flow {
        let names: Vec<Option<(String, Span)>> = spliced
            .iter()
            .map(|(item, env)| item.name.as_ref().and_then(|t| self.name(t, env).map(|n| (n, t.span))))
            .collect();
        let pending = names.iter().flatten().map(|(n, s)| (n.clone(), *s)).collect();
        self.scopes.push(Scope { defined: HashMap::new(), pending });
        let mut flow = input;
        for (index, ((item, env), name)) in spliced.into_iter().zip(names).enumerate() {
            if self.graph.as_ref().is_some_and(|g| g.len() > MAX_NODES) {
                self.diags.push(
                    Diagnostic::error(
                        "cnnc::limit::layers",
                        format!("the spec expands to more than {MAX_NODES} layers"),
                    )
                    .at(item.span, "while expanding this")
                    .help("check `repeat` counts"),
                );
                break;
            }
            if let Some((n, span)) = &name {
                let scope = self.scopes.last_mut().expect("scope pushed above");
                scope.pending.remove(n);
                if let Some((_, first)) = scope.defined.get(n) {
                    let first = *first;
                    self.diags.push(
                        Diagnostic::error(
                            "cnnc::name::duplicate",
                            format!("two items in this sequence are named `{n}`"),
                        )
                        .at(*span, "named again here")
                        .also(first, "first named here")
                        .help("give each item of a sequence its own name")
                        .in_layer(prefix),
                    );
                    self.duplicate_names.push(join_path(prefix, n));
                }
            }
            let numbered = matches!(item.kind, ItemKind::Layer(_) | ItemKind::Seq(_));
            let path = match (&name, numbered) {
                (Some((n, _)), _) => join_path(prefix, n),
                (None, true) => join_path(prefix, &index.to_string()),
                (None, false) => prefix.to_string(),
            };
            flow = self.run_item(item, &env, &path, flow);
            if let Some((n, span)) = name {
                self.scopes.last_mut().expect("scope pushed above").defined.entry(n).or_insert((flow.clone(), span));
            }
        }
        self.scopes.pop();
        flow
    }

    fn run_item(&mut self, item: &'a Item, env: &Env, path: &str, input: Flow) -> Flow {
        self.visited += 1;
        if self.visited > self.budget {
            if self.visited == self.budget + 1 {
                let budget = self.budget;
                self.diags.push(
                    Diagnostic::error(
                        "cnnc::limit::expansion",
                        format!("expanding the spec visits more than {budget} items"),
                    )
                    .at(item.span, "the limit was reached here")
                    .in_layer(path)
                    .help(format!(
                        "modules that call modules several times multiply the work; if the spec is meant to be \
                         this large, raise the limit with CNNC_MAX_EXPANSION={}",
                        budget.saturating_mul(10)
                    )),
                );
            }
            return input.poisoned();
        }
        match &item.kind {
            ItemKind::Layer(call) => self.run_call(call, env, path, input),
            ItemKind::Ref(ident) => self.reference(&ident.name, ident.span, path, input),
            ItemKind::Seq(items) => self.run_seq(items, env, path, input),
            ItemKind::Join { op, branches } => self.run_join(*op, branches, env, path, input, item.span),
            ItemKind::If { .. } | ItemKind::Repeat { .. } => {
                let mut spliced = Vec::new();
                self.splice_one(item, env, &mut spliced);
                self.run_spliced(spliced, path, input)
            }
            ItemKind::Residual { main, shortcut, when } => {
                if let Some(cond) = when {
                    match eval(cond, env) {
                        Ok(Value::Bool(true)) => {}
                        Ok(Value::Bool(false)) => return self.run_seq(main, env, path, input),
                        Ok(other) => {
                            self.diags.push(
                                Diagnostic::error(
                                    "cnnc::expr::condition",
                                    format!("`when` needs a bool, found {} `{other}`", other.type_name()),
                                )
                                .at(cond.span, "not a bool")
                                .in_layer(path),
                            );
                            return input.poisoned();
                        }
                        Err(d) => {
                            self.diags.push(d.in_layer(path));
                            return input.poisoned();
                        }
                    }
                }
                let main_out = self.run_seq(main, env, path, input.clone());
                let short_out = self.run_seq(shortcut, env, path, input.clone());
                let short_span = shortcut.first().map_or(item.span, |s| s.span);
                if let (Some(m), Some(s)) = (&main_out.shape, &short_out.shape) {
                    if m != s {
                        let what =
                            if shortcut.is_empty() { "the block's input (identity shortcut)" } else { "the shortcut" };
                        let main_span = main.last().map_or(item.span, |i| i.span);
                        self.diags.push(
                            Diagnostic::error("cnnc::shape::residual", format!("residual add of unequal shapes: the main path gives {m}, {what} gives {s}"))
                                .at(main_span, format!("main path ends here with {m}"))
                                .help("add a projection on the shortcut (a 1×1 conv with the block's stride and output channels), or make the main path keep the shape")
                                .in_layer(path),
                        );
                        return input.poisoned();
                    }
                }
                self.join_flows(
                    JoinOp::Add,
                    vec![(main_out, item.span), (short_out, short_span)],
                    path,
                    item.span,
                    input,
                )
            }
            ItemKind::Training { body, loss_weight } => {
                let was = std::mem::replace(&mut self.training, true);
                let head = self.run_body(body, env, path, input.clone());
                self.training = was;
                if let Some(expr) = loss_weight {
                    let weight = match eval(expr, env) {
                        Ok(v) => match v.as_float() {
                            // The GPU computes in float32: the weight must be a normal float32.
                            Some(w) if w > 0.0 && (w as f32).is_normal() => Some(w),
                            _ => {
                                self.diags.push(
                                    Diagnostic::error(
                                        "cnnc::spec::loss_weight",
                                        format!(
                                            "`loss_weight` must be a positive number within float32's range, found {} `{v}`",
                                            v.type_name()
                                        ),
                                    )
                                    .at(expr.span, "not a positive float32")
                                    .help("the auxiliary loss joins the training loss times this weight: GoogLeNet's paper uses 0.3")
                                    .in_layer(path),
                                );
                                None
                            }
                        },
                        Err(d) => {
                            self.diags.push(d.in_layer(path));
                            None
                        }
                    };
                    if head.node == input.node {
                        self.diags.push(
                            Diagnostic::error(
                                "cnnc::spec::empty_head",
                                "a training branch with a `loss_weight` has no layers",
                            )
                            .at(item.span, "nothing to score")
                            .help("put the auxiliary classifier's layers in the branch, ending in class scores"),
                        );
                    } else if let Some(weight) = weight {
                        self.aux_losses.push((head, weight));
                    }
                }
                input
            }
        }
    }

    fn reference(&mut self, name: &str, span: Span, path: &str, input: Flow) -> Flow {
        for scope in self.scopes.iter().rev() {
            if let Some((flow, _)) = scope.defined.get(name) {
                return flow.clone();
            }
        }
        let later = self.scopes.iter().rev().find_map(|s| s.pending.get(name)).copied();
        let d = match later {
            Some(def) => Diagnostic::error(
                "cnnc::name::forward_reference",
                format!("`@{name}` refers to an item defined after it"),
            )
            .at(span, "forward reference")
            .also(def, "defined here, later")
            .help("references may only point to earlier items; a later one would make a cycle"),
            None => {
                let known: Vec<&str> = self.scopes.iter().flat_map(|s| s.defined.keys().map(String::as_str)).collect();
                let d = Diagnostic::error("cnnc::name::undefined_reference", format!("`@{name}` refers to nothing"))
                    .at(span, "undefined reference");
                match did_you_mean(name, known.iter().copied()) {
                    Some(s) => d.help(format!("did you mean `@{s}`?")),
                    None if known.is_empty() => d.help("no named items precede this reference"),
                    None => d.help(format!("named items before this point: {}", known.join(", "))),
                }
            }
        };
        self.diags.push(d.in_layer(path));
        input.poisoned()
    }

    fn run_join(&mut self, op: JoinOp, branches: &'a [Item], env: &Env, path: &str, input: Flow, span: Span) -> Flow {
        let mut spliced = Vec::new();
        self.splice(branches, env, &mut spliced);
        let mut outs = Vec::with_capacity(spliced.len());
        for (branch, benv) in &spliced {
            let bpath = match branch.name.as_ref().and_then(|t| self.name(t, benv)) {
                Some(n) => join_path(path, &n),
                None => path.to_string(),
            };
            outs.push((self.run_item(branch, benv, &bpath, input.clone()), branch.span));
        }
        self.join_flows(op, outs, path, span, input)
    }

    fn join_flows(&mut self, op: JoinOp, mut outs: Vec<(Flow, Span)>, path: &str, span: Span, input: Flow) -> Flow {
        match outs.len() {
            0 => {
                self.diags.push(
                    Diagnostic::error("cnnc::spec::empty_join", format!("`{}` has no branches", op.keyword()))
                        .at(span, "empty join")
                        .help("list the branches to join, e.g. `[identity, [conv(64, 3, pad=1), bn]]`")
                        .in_layer(path),
                );
                return input.poisoned();
            }
            1 => return outs.pop().expect("one branch").0,
            _ => {}
        }
        let shapes: Option<Vec<&Shape>> = outs.iter().map(|(f, _)| f.shape.as_ref()).collect();
        let Some(shapes) = shapes else { return input.poisoned() };
        let graph_op = match op {
            JoinOp::Concat => Op::Concat,
            JoinOp::Add => Op::Add,
            JoinOp::Mul => Op::Mul,
        };
        match check::join(&graph_op, &shapes) {
            Ok(shape) => {
                let inputs = outs.iter().map(|(f, _)| f.node).collect();
                self.push_node(graph_op, inputs, shape, path, span)
            }
            Err(e) => {
                let at = match e.blame {
                    Blame::Input(i) => outs[i].1,
                    _ => span,
                };
                self.shape_error(e, at, path);
                input.poisoned()
            }
        }
    }

    fn shape_error(&mut self, e: ShapeError, at: Span, path: &str) {
        let mut d = Diagnostic::error(e.code, e.message).at(at, e.label).in_layer(path);
        if let Some(h) = e.help {
            d = d.help(h);
        }
        self.diags.push(d);
    }

    fn push_node(&mut self, op: Op, inputs: Vec<NodeId>, shape: Shape, path: &str, span: Span) -> Flow {
        let mut params = Vec::new();
        let mut reported_duplicate = false;
        for (kind, pshape) in op.params() {
            let name = join_path(path, kind.suffix());
            if let Err(e) = check::check_size(&Shape(pshape.clone())) {
                self.diags.push(
                    Diagnostic::error(
                        "cnnc::limit::weight",
                        format!("the weight `{name}` is too large: {}", e.message),
                    )
                    .at(span, "weight too large")
                    .help("check the channel counts")
                    .in_layer(path),
                );
                return Flow { node: NodeId::INPUT, shape: None };
            }
            let named_twice = self.duplicate_names.iter().any(|p| path == p || path.starts_with(&format!("{p}.")));
            if let Some(first) = self.weights.get(&name).filter(|_| !reported_duplicate && !named_twice) {
                let first = *first;
                reported_duplicate = true;
                self.diags.push(
                    Diagnostic::error(
                        "cnnc::name::duplicate_weight",
                        format!("two layers produce the weight `{name}`"),
                    )
                    .at(span, "second layer")
                    .also(first, "first layer")
                    .help(
                        "name the branches, `- b1: conv(8, 1)` in YAML or `b1: conv(8, 1)` in the DSL: the \
                         branches of concat, add and mul, and a residual's main path and shortcut, add \
                         nothing to the layer path, so their unnamed layers share names (in a `repeat`, \
                         name the body with its counter: `\"block{i}\": ...`)",
                    )
                    .in_layer(path),
                );
            } else {
                self.weights.insert(name.clone(), span);
            }
            params.push(Param { name, kind, shape: pshape });
        }
        let training_only = self.training;
        let node = Node {
            op,
            inputs,
            shape: shape.clone(),
            path: path.to_string(),
            params,
            span,
            training_only,
            fused: Fused::default(),
        };
        let id = self.graph().push(node);
        Flow { node: id, shape: Some(shape) }
    }

    fn run_call(&mut self, call: &'a Call, env: &Env, path: &str, input: Flow) -> Flow {
        let target = match env.get(&call.func.name) {
            Some(Value::Str(s)) => s.clone(),
            _ => call.func.name.clone(),
        };
        if let Some(def) = self.modules.get(target.as_str()).copied() {
            return self.run_module(def, call, env, path, input);
        }
        let (layer, params, assumed) = match layers::lookup(&target) {
            Some((layer, params)) => (layer, params, false),
            None => {
                let mut names: Vec<&str> = layers::LAYERS.iter().map(|(n, _)| *n).collect();
                names.extend(self.modules.keys().copied());
                let suggestion = did_you_mean(&target, names.iter().copied());
                let d = Diagnostic::error("cnnc::name::unknown_layer", format!("unknown layer or module `{target}`"))
                    .at(call.func.span, "unknown")
                    .in_layer(path);
                self.diags.push(match suggestion {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help("builtin layers include conv, linear, bn, relu, maxpool, avgpool, flatten; modules come from `modules:` or an `import`"),
                });
                // Carry on as the suggested builtin, so that shape errors further on that do not
                // depend on this layer are still reported; the guess's own errors are not.
                match suggestion.and_then(layers::lookup) {
                    Some((layer, params)) => (layer, params, true),
                    None => return input.poisoned(),
                }
            }
        };
        let slots = match bind(call, params, env, &format!("`{layer}`")) {
            Ok(slots) => slots,
            Err(_) if assumed => return input.poisoned(),
            Err(ds) => {
                self.diags.extend(ds.into_iter().map(|d| d.in_layer(path)));
                return input.poisoned();
            }
        };
        let built = layers::build(&LayerArgs { layer, params, slots: &slots, call_span: call.span });
        let (op, declared) = match built {
            Ok(Built::Identity) => return input,
            Ok(Built::Op(op, declared)) => (op, declared),
            Err(_) if assumed => return input.poisoned(),
            Err(d) => {
                self.diags.push(d.in_layer(path));
                return input.poisoned();
            }
        };
        let Some(shape) = &input.shape else { return input.poisoned() };
        match check::infer(op, &declared, shape) {
            Ok((op, out)) => self.push_node(op, vec![input.node], out, path, call.span),
            Err(_) if assumed => input.poisoned(),
            Err(mut e) => {
                let blamed = match e.blame {
                    Blame::Arg(name) => {
                        params.iter().position(|p| *p == name).and_then(|i| slots[i].as_ref()).map(|a| a.span)
                    }
                    _ => None,
                };
                if e.blame == Blame::Arg("in") {
                    if let Some(note) = self.flatten_note(input.node) {
                        e.help = Some(format!("{note}; {}", e.help.unwrap_or_default()));
                    }
                }
                self.shape_error(e, blamed.unwrap_or(call.span), path);
                input.poisoned()
            }
        }
    }

    /// "the input is flatten of [16, 5, 5] = 16 × 5 × 5 = 400", when the input comes from a flatten.
    fn flatten_note(&mut self, node: NodeId) -> Option<String> {
        let graph = self.graph();
        let n = graph.node(node);
        if n.op != Op::Flatten {
            return None;
        }
        let src = &graph.node(n.inputs[0]).shape;
        let factors: Vec<String> = src.dims().iter().map(usize::to_string).collect();
        Some(format!("its input is `flatten` of {src} = {} = {}", factors.join(" × "), n.shape.elements()))
    }

    fn run_module(&mut self, def: &'a ModuleDef, call: &'a Call, env: &Env, path: &str, input: Flow) -> Flow {
        let name = def.name.name.as_str();
        if let Some(pos) = self.call_stack.iter().position(|(n, _)| *n == name) {
            let chain: Vec<&str> = self.call_stack[pos..].iter().map(|(n, _)| *n).chain([name]).collect();
            self.diags.push(
                Diagnostic::error(
                    "cnnc::module::recursive",
                    format!("module `{name}` is recursive: {}", chain.join(" → ")),
                )
                .at(call.span, "this call recurses")
                .also(def.name.span, "module defined here")
                .help("a module may not call itself, directly or through others; use `repeat` instead")
                .in_layer(path),
            );
            return input.poisoned();
        }
        if self.call_stack.len() >= MAX_CALL_DEPTH {
            self.diags.push(
                Diagnostic::error(
                    "cnnc::limit::call_depth",
                    format!("modules nest deeper than {MAX_CALL_DEPTH} calls"),
                )
                .at(call.span, "too deep")
                .in_layer(path),
            );
            return input.poisoned();
        }
        let names: Vec<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
        let slots = match bind(call, &names, env, &format!("module `{name}`")) {
            Ok(slots) => slots,
            Err(ds) => {
                self.diags.extend(ds.into_iter().map(|d| d.in_layer(path)));
                return input.poisoned();
            }
        };
        let Some(shape) = input.shape.clone() else { return input.poisoned() };
        let dims = shape.dims().iter().map(|&d| Value::Int(d as i64)).collect();
        let mut menv =
            Env::default().bind("in_channels", Value::Int(shape.dims()[0] as i64)).bind("in_shape", Value::List(dims));
        let mut ok = true;
        for (param, slot) in def.params.iter().zip(slots) {
            let (value, span) = match (slot, &param.default) {
                (Some(arg), _) => (arg.value, arg.span),
                (None, Some(default)) => match eval(default, &menv) {
                    Ok(v) => (v, default.span),
                    Err(d) => {
                        self.diags.push(d.in_layer(path));
                        ok = false;
                        continue;
                    }
                },
                (None, None) => {
                    self.diags.push(
                        Diagnostic::error(
                            "cnnc::args::missing",
                            format!("module `{name}` needs `{}`", param.name.name),
                        )
                        .at(call.span, format!("`{}` is missing", param.name.name))
                        .also(param.name.span, "declared here without a default")
                        .in_layer(path),
                    );
                    ok = false;
                    continue;
                }
            };
            match conform(value, param.ty) {
                Ok(v) => menv = menv.bind(param.name.name.clone(), v),
                Err(v) => {
                    self.diags.push(
                        Diagnostic::error(
                            "cnnc::args::type",
                            format!(
                                "module `{name}`'s `{}` is {}, found {} `{v}`",
                                param.name.name,
                                param.ty.keyword(),
                                v.type_name()
                            ),
                        )
                        .at(span, format!("expected {}", param.ty.keyword()))
                        .also(param.ty_span, "type declared here")
                        .in_layer(path),
                    );
                    ok = false;
                }
            }
        }
        let mut failed = HashSet::new();
        for binding in &def.lets {
            if reads_any(&binding.value, &failed) {
                failed.insert(binding.name.name.as_str());
                continue;
            }
            match eval(&binding.value, &menv) {
                Ok(v) => menv = menv.bind(binding.name.name.clone(), v),
                Err(d) => {
                    self.diags.push(d.in_layer(path));
                    failed.insert(binding.name.name.as_str());
                    ok = false;
                }
            }
        }
        if !ok {
            return input.poisoned();
        }
        self.call_stack.push((name, call.span));
        if let Some(graph) = self.graph.as_mut() {
            graph.modules.push(ModuleInstance { path: path.to_string(), module: name.to_string() });
        }
        let saved = std::mem::take(&mut self.scopes);
        let out = self.run_body(&def.body, &menv, path, input);
        self.scopes = saved;
        self.call_stack.pop();
        out
    }
}

/// Checks a value against a declared parameter type, converting where that is lossless.
fn conform(value: Value, ty: ParamType) -> Result<Value, Value> {
    match (ty, &value) {
        (_, Value::None) | (ParamType::Any, _) => Ok(value),
        (ParamType::Int, v) => v.as_int().map(Value::Int).ok_or(value),
        (ParamType::Float, v) => v.as_float().map(Value::Float).ok_or(value),
        (ParamType::Bool, Value::Bool(_)) | (ParamType::Str, Value::Str(_)) | (ParamType::List, Value::List(_)) => {
            Ok(value)
        }
        _ => Err(value),
    }
}
