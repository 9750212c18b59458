//! The builtin layers: their parameters, and how arguments become an [`Op`].

use super::args::BoundArg;
use super::value::Value;
use crate::check::Declared;
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::graph::{Activation, Conv2d, Op, Pad4, Pool2d};
use crate::source::Span;

/// Each builtin layer and its parameters, in positional order.
pub const LAYERS: &[(&str, &[&str])] = &[
    ("conv", &["out", "kernel", "stride", "pad", "dilation", "groups", "bias", "in"]),
    ("linear", &["out", "bias", "in"]),
    ("bn", &["channels", "eps", "momentum"]),
    ("relu", &[]),
    ("relu6", &[]),
    ("leaky_relu", &["slope"]),
    ("silu", &[]),
    ("sigmoid", &[]),
    ("hardswish", &[]),
    ("hardsigmoid", &[]),
    ("tanh", &[]),
    ("gelu", &[]),
    ("maxpool", &["kernel", "stride", "pad", "dilation", "ceil_mode"]),
    ("avgpool", &["kernel", "stride", "pad", "ceil_mode", "count_include_pad"]),
    ("adaptive_avgpool", &["size"]),
    ("adaptive_maxpool", &["size"]),
    ("global_avgpool", &[]),
    ("global_maxpool", &[]),
    ("flatten", &[]),
    ("dropout", &["p"]),
    ("stochastic_depth", &["p"]),
    ("identity", &[]),
    ("channel_shuffle", &["groups"]),
    ("chunk", &["chunks", "index"]),
    ("lrn", &["size", "alpha", "beta", "k"]),
    ("softmax", &[]),
    ("channel_affine", &["scale", "shift"]),
];

/// Other spellings accepted for builtin layers (PyTorch's names).
pub const ALIASES: &[(&str, &str)] = &[
    ("conv2d", "conv"),
    ("batchnorm", "bn"),
    ("batchnorm2d", "bn"),
    ("maxpool2d", "maxpool"),
    ("avgpool2d", "avgpool"),
    ("swish", "silu"),
    ("local_response_norm", "lrn"),
];

/// The canonical name and parameters of a builtin layer, if `name` is one.
pub fn lookup(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    let name = ALIASES.iter().find(|(alias, _)| *alias == name).map_or(name, |(_, canonical)| canonical);
    LAYERS.iter().find(|(n, _)| *n == name).copied()
}

/// What a builtin layer call turns into.
pub enum Built {
    Op(Op, Declared),
    /// `identity`: no node at all.
    Identity,
}

/// The arguments of one builtin layer call, bound to its parameters.
pub struct LayerArgs<'a> {
    pub layer: &'static str,
    pub params: &'static [&'static str],
    pub slots: &'a [Option<BoundArg>],
    pub call_span: Span,
}

type R<T> = Result<T, Diagnostic>;

impl LayerArgs<'_> {
    fn arg(&self, name: &str) -> Option<&BoundArg> {
        let i = self.params.iter().position(|p| *p == name).expect("layer table names this parameter");
        self.slots[i].as_ref().filter(|a| a.value != Value::None)
    }

    fn missing(&self, name: &str) -> Diagnostic {
        Diagnostic::error("cnnc::args::missing", format!("`{}` needs `{name}`", self.layer))
            .at(self.call_span, format!("`{name}` is missing"))
            .help(format!("the parameters are: {}", self.params.join(", ")))
    }

    fn bad(&self, arg: &BoundArg, name: &str, want: &str) -> Diagnostic {
        Diagnostic::error(
            "cnnc::args::type",
            format!("`{}`'s `{name}` must be {want}, found {}", self.layer, arg.value),
        )
        .at(arg.span, format!("expected {want}"))
    }

    fn int_in(&self, name: &str, default: Option<usize>, min: usize) -> R<usize> {
        let Some(arg) = self.arg(name) else { return default.ok_or_else(|| self.missing(name)) };
        let want = if min == 0 { "a non-negative int" } else { "a positive int" };
        match arg.value.as_int() {
            Some(i) if i >= min as i64 => usize::try_from(i).map_err(|_| self.bad(arg, name, want)),
            _ => Err(self.bad(arg, name, want)),
        }
    }

    fn positive(&self, name: &str, default: Option<usize>) -> R<usize> {
        self.int_in(name, default, 1)
    }

    fn pair(&self, name: &str, default: Option<[usize; 2]>) -> R<[usize; 2]> {
        let Some(arg) = self.arg(name) else { return default.ok_or_else(|| self.missing(name)) };
        let want = "a positive int or [height, width]";
        let positive = |v: &Value| v.as_int().filter(|i| *i >= 1).and_then(|i| usize::try_from(i).ok());
        match &arg.value {
            Value::List(items) if items.len() == 2 => match (positive(&items[0]), positive(&items[1])) {
                (Some(h), Some(w)) => Ok([h, w]),
                _ => Err(self.bad(arg, name, want)),
            },
            v => positive(v).map(|i| [i, i]).ok_or_else(|| self.bad(arg, name, want)),
        }
    }

    fn padding(&self) -> R<(Pad4, bool)> {
        let Some(arg) = self.arg("pad") else { return Ok((Pad4::default(), false)) };
        let want = "an int, [h, w], [top, bottom, left, right], \"same\" or \"valid\"";
        let nonneg = |v: &Value| v.as_int().filter(|i| *i >= 0).and_then(|i| usize::try_from(i).ok());
        match &arg.value {
            Value::Str(s) if s == "same" => Ok((Pad4::default(), true)),
            Value::Str(s) if s == "valid" => Ok((Pad4::default(), false)),
            Value::Str(s) => {
                let d = self.bad(arg, "pad", want);
                let lower = s.to_lowercase();
                Err(match did_you_mean(&lower, ["same", "valid"]) {
                    Some(word) => d.help(format!("did you mean \"{word}\"? (the words are lowercase)")),
                    None => d.help("\"same\" keeps the size at stride 1 (the odd pixel of padding goes after, as TensorFlow's); \"valid\" pads nothing"),
                })
            }
            Value::List(items) => {
                let dims: Option<Vec<usize>> = items.iter().map(nonneg).collect();
                match dims.as_deref() {
                    Some(&[h, w]) => Ok((Pad4 { top: h, bottom: h, left: w, right: w }, false)),
                    Some(&[top, bottom, left, right]) => Ok((Pad4 { top, bottom, left, right }, false)),
                    _ => Err(self.bad(arg, "pad", want)),
                }
            }
            v => nonneg(v).map(|p| (Pad4::uniform(p), false)).ok_or_else(|| self.bad(arg, "pad", want)),
        }
    }

    fn boolean(&self, name: &str, default: bool) -> R<bool> {
        match self.arg(name) {
            None => Ok(default),
            Some(BoundArg { value: Value::Bool(b), .. }) => Ok(*b),
            Some(arg) => Err(self.bad(arg, name, "true or false")),
        }
    }

    fn float(&self, name: &str, default: f64) -> R<f64> {
        match self.arg(name) {
            None => Ok(default),
            Some(arg) => arg.value.as_float().filter(|f| f.is_finite()).ok_or_else(|| self.bad(arg, name, "a number")),
        }
    }

    fn probability(&self, name: &str, default: f64) -> R<f64> {
        let p = self.float(name, default)?;
        match self.arg(name) {
            Some(arg) if !(0.0..1.0).contains(&p) => Err(self.bad(arg, name, "a probability in [0, 1)")),
            _ => Ok(p),
        }
    }

    fn floats(&self, name: &str) -> R<Vec<f64>> {
        let arg = self.arg(name).ok_or_else(|| self.missing(name))?;
        match &arg.value {
            Value::List(items) => items
                .iter()
                .map(Value::as_float)
                .collect::<Option<_>>()
                .ok_or_else(|| self.bad(arg, name, "a list of numbers")),
            _ => Err(self.bad(arg, name, "a list of numbers")),
        }
    }

    fn declared_in(&self) -> R<Option<usize>> {
        if !self.params.contains(&"in") {
            return Ok(None);
        }
        self.arg("in").map(|_| self.positive("in", None)).transpose()
    }
}

/// Turns a bound builtin layer call into an op (attributes that depend on the input are resolved later, by `check`).
pub fn build(args: &LayerArgs<'_>) -> R<Built> {
    let act = |a: Activation| Ok(Built::Op(Op::Activation(a), Declared::default()));
    let op = |op: Op| Ok(Built::Op(op, Declared::default()));
    match args.layer {
        "conv" => {
            let (padding, same_padding) = args.padding()?;
            let conv = Conv2d {
                in_channels: 0,
                out_channels: args.positive("out", None)?,
                kernel: args.pair("kernel", None)?,
                stride: args.pair("stride", Some([1, 1]))?,
                padding,
                dilation: args.pair("dilation", Some([1, 1]))?,
                groups: args.positive("groups", Some(1))?,
                bias: args.boolean("bias", true)?,
            };
            Ok(Built::Op(Op::Conv2d(conv), Declared { in_size: args.declared_in()?, same_padding }))
        }
        "linear" => Ok(Built::Op(
            Op::Linear { in_features: 0, out_features: args.positive("out", None)?, bias: args.boolean("bias", true)? },
            Declared { in_size: args.declared_in()?, same_padding: false },
        )),
        "bn" => {
            let eps = args.float("eps", 1e-5)?;
            let momentum = args.float("momentum", 0.1)?;
            let channels = args.arg("channels").map(|_| args.positive("channels", None)).transpose()?;
            Ok(Built::Op(
                Op::BatchNorm { channels: 0, eps, momentum },
                Declared { in_size: channels, same_padding: false },
            ))
        }
        "relu" => act(Activation::Relu),
        "relu6" => act(Activation::Relu6),
        "leaky_relu" => act(Activation::LeakyRelu { slope: args.float("slope", 0.01)? }),
        "silu" => act(Activation::Silu),
        "sigmoid" => act(Activation::Sigmoid),
        "hardswish" => act(Activation::HardSwish),
        "hardsigmoid" => act(Activation::HardSigmoid),
        "tanh" => act(Activation::Tanh),
        "gelu" => act(Activation::Gelu),
        "maxpool" | "avgpool" => {
            let kernel = args.pair("kernel", None)?;
            let (padding, same_padding) = args.padding()?;
            let pool = Pool2d {
                kernel,
                stride: args.pair("stride", Some(kernel))?,
                padding,
                dilation: if args.layer == "maxpool" { args.pair("dilation", Some([1, 1]))? } else { [1, 1] },
                ceil_mode: args.boolean("ceil_mode", false)?,
                count_include_pad: args.layer == "avgpool" && args.boolean("count_include_pad", true)?,
            };
            let op = if args.layer == "maxpool" { Op::MaxPool(pool) } else { Op::AvgPool(pool) };
            Ok(Built::Op(op, Declared { in_size: None, same_padding }))
        }
        "adaptive_avgpool" => op(Op::AdaptiveAvgPool { size: args.pair("size", None)? }),
        "adaptive_maxpool" => op(Op::AdaptiveMaxPool { size: args.pair("size", None)? }),
        "global_avgpool" => op(Op::AdaptiveAvgPool { size: [1, 1] }),
        "global_maxpool" => op(Op::AdaptiveMaxPool { size: [1, 1] }),
        "flatten" => op(Op::Flatten),
        "dropout" => op(Op::Dropout { p: args.probability("p", 0.5)? }),
        "stochastic_depth" => op(Op::StochasticDepth { p: args.probability("p", 0.0)? }),
        "identity" => Ok(Built::Identity),
        "channel_shuffle" => op(Op::ChannelShuffle { groups: args.positive("groups", None)? }),
        "chunk" => {
            let chunks = args.positive("chunks", None)?;
            let index = args.int_in("index", None, 0)?;
            match args.arg("index") {
                Some(arg) if index >= chunks => Err(args.bad(arg, "index", &format!("less than chunks ({chunks})"))),
                _ => op(Op::Chunk { chunks, index }),
            }
        }
        "lrn" => op(Op::LocalResponseNorm {
            size: args.positive("size", None)?,
            alpha: args.float("alpha", 1e-4)?,
            beta: args.float("beta", 0.75)?,
            k: args.float("k", 1.0)?,
        }),
        "softmax" => op(Op::Softmax),
        "channel_affine" => op(Op::ChannelAffine { scale: args.floats("scale")?, shift: args.floats("shift")? }),
        other => unreachable!("layer table and build disagree on `{other}`"),
    }
}
