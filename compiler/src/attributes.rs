//! A layer's resolved attributes as `cnnc summary` shows them: what the checker settled (kernel,
//! stride, the four paddings after `"same"`, dilation, groups, eps, momentum, …), for a reader
//! porting a model to confirm the numbers shape checking cannot catch.

use crate::graph::{Activation, Op, Pad4, Pool2d};

/// A value of an attribute: a count, a pair `[h, w]`, four paddings, a real number or a flag.
#[derive(Clone, Debug, PartialEq)]
pub enum Attribute {
    Int(usize),
    Pair([usize; 2]),
    /// `[top, bottom, left, right]`.
    Padding(Pad4),
    Float(f64),
    Bool(bool),
}

impl std::fmt::Display for Attribute {
    /// Compact: a square pair or uniform padding as one number, otherwise `h×w` and
    /// `[top, bottom, left, right]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attribute::Int(n) => write!(f, "{n}"),
            Attribute::Pair([h, w]) if h == w => write!(f, "{h}"),
            Attribute::Pair([h, w]) => write!(f, "{h}×{w}"),
            Attribute::Padding(p) if p.top == p.bottom && p.top == p.left && p.top == p.right => write!(f, "{}", p.top),
            Attribute::Padding(p) => write!(f, "[{}, {}, {}, {}]", p.top, p.bottom, p.left, p.right),
            Attribute::Float(v) => write!(f, "{v}"),
            Attribute::Bool(b) => write!(f, "{b}"),
        }
    }
}

fn window(p: &Pool2d, max: bool) -> Vec<(&'static str, Attribute)> {
    let mut out = vec![
        ("kernel_size", Attribute::Pair(p.kernel)),
        ("stride", Attribute::Pair(p.stride)),
        ("padding", Attribute::Padding(p.padding)),
    ];
    if max {
        out.push(("dilation", Attribute::Pair(p.dilation)));
    } else {
        out.push(("count_include_pad", Attribute::Bool(p.count_include_pad)));
    }
    out.push(("ceil_mode", Attribute::Bool(p.ceil_mode)));
    out
}

/// The attributes of `op` under PyTorch's argument names (`kernel_size`, `padding` as
/// `[top, bottom, left, right]`, …), empty for ops without any.
pub fn of(op: &Op) -> Vec<(&'static str, Attribute)> {
    match op {
        Op::Conv2d(c) => vec![
            ("kernel_size", Attribute::Pair(c.kernel)),
            ("stride", Attribute::Pair(c.stride)),
            ("padding", Attribute::Padding(c.padding)),
            ("dilation", Attribute::Pair(c.dilation)),
            ("groups", Attribute::Int(c.groups)),
        ],
        Op::MaxPool(p) => window(p, true),
        Op::AvgPool(p) => window(p, false),
        Op::BatchNorm { eps, momentum, .. } => {
            vec![("eps", Attribute::Float(*eps)), ("momentum", Attribute::Float(*momentum))]
        }
        Op::AdaptiveAvgPool { size } | Op::AdaptiveMaxPool { size } => vec![("output_size", Attribute::Pair(*size))],
        Op::Dropout { p } | Op::StochasticDepth { p } => vec![("p", Attribute::Float(*p))],
        Op::ChannelShuffle { groups } => vec![("groups", Attribute::Int(*groups))],
        Op::Chunk { chunks, index } => vec![("chunks", Attribute::Int(*chunks)), ("index", Attribute::Int(*index))],
        Op::LocalResponseNorm { size, alpha, beta, k } => vec![
            ("size", Attribute::Int(*size)),
            ("alpha", Attribute::Float(*alpha)),
            ("beta", Attribute::Float(*beta)),
            ("k", Attribute::Float(*k)),
        ],
        Op::Activation(Activation::LeakyRelu { slope }) => vec![("negative_slope", Attribute::Float(*slope))],
        _ => Vec::new(),
    }
}
