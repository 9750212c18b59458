//! The spec's abstract syntax tree, shared by both spellings (YAML and DSL).
//!
//! Every node keeps the [`Span`] of the text it came from. Nothing here is
//! evaluated yet: expressions stay expressions until `expand` runs them.

use crate::source::{FileId, Span};

/// A name with the span where it is written.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// Binary operators of the expression language, loosest-binding last.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Rem,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::FloorDiv => "//",
            BinOp::Rem => "%",
        }
    }
}

/// Unary operators.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
}

/// An expression of the spec language.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

/// The forms an expression takes.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    None,
    List(Vec<Expr>),
    Var(String),
    Call(Call),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Index(Box<Expr>, Box<Expr>),
}

/// A call: a builtin function in an expression, or a layer/module in an item.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub func: Ident,
    pub args: Vec<Arg>,
    /// Whether the call was written with parentheses (`relu()` vs `relu`).
    pub parens: bool,
    pub span: Span,
}

/// One argument of a call, positional or `name=value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

/// A whole spec file.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecFile {
    pub file: FileId,
    pub imports: Vec<Import>,
    pub modules: Vec<ModuleDef>,
    pub model: Option<ModelDef>,
}

/// `import: path` — a library of modules, relative to the importing file.
#[derive(Clone, Debug, PartialEq)]
pub struct Import {
    pub path: String,
    pub span: Span,
}

/// The declared type of a module parameter.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ParamType {
    Int,
    Float,
    Bool,
    Str,
    List,
    Any,
}

impl ParamType {
    /// The keyword for this type.
    pub fn keyword(self) -> &'static str {
        match self {
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
            ParamType::Str => "str",
            ParamType::List => "list",
            ParamType::Any => "any",
        }
    }

    /// Parses a type keyword.
    pub fn from_keyword(word: &str) -> Option<ParamType> {
        Some(match word {
            "int" => ParamType::Int,
            "float" => ParamType::Float,
            "bool" => ParamType::Bool,
            "str" => ParamType::Str,
            "list" => ParamType::List,
            "any" => ParamType::Any,
            _ => return None,
        })
    }
}

/// A module parameter: `stride: int = 1`.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDef {
    pub name: Ident,
    pub ty: ParamType,
    pub ty_span: Span,
    pub default: Option<Expr>,
}

/// A `let` binding.
#[derive(Clone, Debug, PartialEq)]
pub struct LetBinding {
    pub name: Ident,
    pub value: Expr,
}

/// A reusable, parameterised block of layers.
#[derive(Clone, Debug, PartialEq)]
pub struct ModuleDef {
    pub name: Ident,
    pub params: Vec<ParamDef>,
    pub lets: Vec<LetBinding>,
    pub body: Body,
    /// The input shape the module is written for when it is a model's whole body (`[3, 224, 224]` for
    /// AlexNet): a model without `input:` whose body is one call of this module takes it. A
    /// constant: it may not refer to the module's parameters.
    pub input: Option<Expr>,
    /// The preprocessing that input is made with (for a zoo family, torchvision's
    /// `weights.transforms()`), taken with it by a model that takes the module's `input`, unless the
    /// model has a `preprocess:` of its own.
    pub preprocess: Option<Preprocess>,
    pub span: Span,
}

/// A module's or model's body: a numbered sequence, or one item inlined without a name of its own.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Seq(Vec<Item>),
    Single(Box<Item>),
}

/// Input preprocessing, as torchvision's transforms describe it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Preprocess {
    pub resize: Option<Expr>,
    pub crop: Option<Expr>,
    pub mean: Option<Expr>,
    pub std: Option<Expr>,
    pub span: Option<Span>,
}

/// The model's `train:` section: the training recipe, one expression per key (see
/// `expand::recipe::TRAIN_KEYS`), checked when the model is expanded.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TrainSection {
    pub entries: Vec<(Ident, Expr)>,
    pub span: Option<Span>,
}

/// A checkpoint key rewrite: keys matching `from` are read as `to`.
#[derive(Clone, Debug, PartialEq)]
pub struct Alias {
    pub from: String,
    pub to: String,
    pub span: Span,
}

/// The model a file defines.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDef {
    pub name: Ident,
    /// `None` when the spec leaves it to the module its body calls (see [`ModuleDef::input`]).
    pub input: Option<Expr>,
    pub lets: Vec<LetBinding>,
    pub body: Body,
    pub preprocess: Option<Preprocess>,
    pub train: Option<TrainSection>,
    pub labels: Option<(String, Span)>,
    /// Whether checkpoints carry the weights of training-only branches.
    pub training_weights: Option<(bool, Span)>,
    pub aliases: Vec<Alias>,
    pub span: Span,
}

impl ModelDef {
    /// The call that is the model's whole body (`body: alexnet(num_classes=2)`, or a one-item
    /// sequence of it), if it is one: the call whose module parameters `--set` may give and whose
    /// module's `input`/`preprocess` a model without its own takes.
    pub fn body_call(&self) -> Option<&Call> {
        match &self.body {
            Body::Single(item) => match &item.kind {
                ItemKind::Layer(call) => Some(call),
                _ => None,
            },
            Body::Seq(items) if items.len() == 1 => match &items[0].kind {
                ItemKind::Layer(call) => Some(call),
                _ => None,
            },
            Body::Seq(_) => None,
        }
    }

    /// [`ModelDef::body_call`], to change its arguments.
    pub fn body_call_mut(&mut self) -> Option<&mut Call> {
        match &mut self.body {
            Body::Single(item) => match &mut item.kind {
                ItemKind::Layer(call) => Some(call),
                _ => None,
            },
            Body::Seq(items) if items.len() == 1 => match &mut items[0].kind {
                ItemKind::Layer(call) => Some(call),
                _ => None,
            },
            Body::Seq(_) => None,
        }
    }
}

/// One piece of a name template: literal text or an interpolated `{expr}`.
#[derive(Clone, Debug, PartialEq)]
pub enum NamePart {
    Text(String),
    Expr(Expr),
}

/// An item's name, possibly with `{expr}` interpolations (`denselayer{i + 1}`).
#[derive(Clone, Debug, PartialEq)]
pub struct NameTemplate {
    pub parts: Vec<NamePart>,
    pub span: Span,
}

/// How the branches of a join are combined.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum JoinOp {
    /// Along channels.
    Concat,
    /// Elementwise sum (residual connections).
    Add,
    /// Elementwise product with broadcasting (squeeze-excitation).
    Mul,
}

impl JoinOp {
    /// The keyword for this join.
    pub fn keyword(self) -> &'static str {
        match self {
            JoinOp::Concat => "concat",
            JoinOp::Add => "add",
            JoinOp::Mul => "mul",
        }
    }
}

/// One entry of a sequence or branch.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub name: Option<NameTemplate>,
    pub kind: ItemKind,
    pub span: Span,
}

/// What an item does.
#[derive(Clone, Debug, PartialEq)]
pub enum ItemKind {
    /// A builtin layer or a module: `conv(64, 3, stride=2)`, `relu`, `bottleneck(64, 64)`.
    Layer(Call),
    /// The output of an earlier named item: `@stem`.
    Ref(Ident),
    /// A nested sequence.
    Seq(Vec<Item>),
    /// Parallel branches on the same input, joined.
    Join { op: JoinOp, branches: Vec<Item> },
    /// `main` plus a shortcut (the input itself when `shortcut` is empty), added;
    /// only `main` when `when` is false.
    Residual { main: Vec<Item>, shortcut: Vec<Item>, when: Option<Expr> },
    /// Items spliced in when `cond` holds, else the `otherwise` items.
    If { cond: Expr, then: Vec<Item>, otherwise: Vec<Item> },
    /// `body` spliced in `count` times, with `var` bound to 0, 1, ….
    Repeat { count: Expr, var: Option<Ident>, body: Vec<Item> },
    /// A branch that exists only in training (auxiliary classifiers): it taps the stream and passes it
    /// on. With a `loss_weight`, its output is class scores whose cross-entropy joins the training
    /// loss with that weight (Caffe's `loss_weight`; 0.3 for GoogLeNet's heads, as in its paper).
    Training { body: Body, loss_weight: Option<Expr> },
}
