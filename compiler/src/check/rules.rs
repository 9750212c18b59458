//! One pure shape rule per op: given the input shapes, resolve the op's
//! remaining attributes (input channels, "same" padding) and infer its output.

use super::window::{self, WindowError};
use crate::graph::{Op, Pad4, Pool2d, Shape};

/// The largest number of elements one tensor may have (batch 1).
pub const MAX_ELEMENTS: u64 = 1 << 40;

/// Which part of the spec text an error is about.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The layer call as a whole.
    Call,
    /// One named argument (`in`, `groups`, `kernel`, …), falling back to the call.
    Arg(&'static str),
    /// The n-th input of a join.
    Input(usize),
}

/// A shape error, before it is given a location.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeError {
    /// The stable code of the diagnostic it becomes (`cnnc::shape::in_channels`).
    pub code: &'static str,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
    pub blame: Blame,
}

impl ShapeError {
    fn new(code: &'static str, blame: Blame, message: impl Into<String>, label: impl Into<String>) -> ShapeError {
        ShapeError { code, message: message.into(), label: label.into(), help: None, blame }
    }

    fn help(mut self, help: impl Into<String>) -> ShapeError {
        self.help = Some(help.into());
        self
    }
}

/// Attributes a layer call can leave to be inferred from its input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Declared {
    /// `in=`: the input channels / features the user expects.
    pub in_size: Option<usize>,
    /// `pad="same"` (conv, pool).
    pub same_padding: bool,
}

/// Resolves a single-input op against its input shape and returns the finished op and its output shape.
pub fn infer(op: Op, declared: &Declared, input: &Shape) -> Result<(Op, Shape), ShapeError> {
    let (op, out) = match op {
        Op::Conv2d(mut c) => {
            let [ch, h, w] = image(input, "conv")?;
            check_declared(declared, ch, "input channels")?;
            c.in_channels = ch;
            if ch % c.groups != 0 {
                return Err(ShapeError::new(
                    "cnnc::shape::groups",
                    Blame::Arg("groups"),
                    format!("groups = {} does not divide the {ch} input channels", c.groups),
                    format!("{ch} is not a multiple of {}", c.groups),
                )
                .help("choose groups that divide both the input and output channels"));
            }
            if c.out_channels % c.groups != 0 {
                return Err(ShapeError::new(
                    "cnnc::shape::groups",
                    Blame::Arg("groups"),
                    format!("groups = {} does not divide the {} output channels", c.groups, c.out_channels),
                    format!("{} is not a multiple of {}", c.out_channels, c.groups),
                ));
            }
            if declared.same_padding {
                c.padding = same(h, w, c.kernel, c.stride, c.dilation);
            }
            let (oh, ow) = spatial(h, w, c.kernel, c.stride, c.padding, c.dilation, false)?;
            let out = Shape(vec![c.out_channels, oh, ow]);
            (Op::Conv2d(c), out)
        }
        Op::Linear { out_features, bias, .. } => {
            let Some((&features, lead)) = input.0.split_last() else { unreachable!("shapes have rank ≥ 1") };
            check_declared(declared, features, "input features")?;
            if input.0.len() > 1 {
                return Err(ShapeError::new(
                    "cnnc::shape::linear_input",
                    Blame::Call,
                    format!("linear needs a flat [features] input, found {input}"),
                    "input is not flat",
                )
                .help(format!("insert `flatten` before it (the flattened size is {})", input.elements())));
            }
            let mut dims = lead.to_vec();
            dims.push(out_features);
            (Op::Linear { in_features: features, out_features, bias }, Shape(dims))
        }
        Op::BatchNorm { eps, momentum, .. } => {
            let [ch, _, _] = image(input, "bn")?;
            check_declared(declared, ch, "channels")?;
            (Op::BatchNorm { channels: ch, eps, momentum }, input.clone())
        }
        Op::MaxPool(p) => {
            let (p, out) = pool(p, declared, input, "maxpool")?;
            (Op::MaxPool(p), out)
        }
        Op::AvgPool(p) => {
            let (p, out) = pool(p, declared, input, "avgpool")?;
            (Op::AvgPool(p), out)
        }
        op @ (Op::AdaptiveAvgPool { size } | Op::AdaptiveMaxPool { size }) => {
            let [ch, _, _] = image(input, op.name())?;
            (op, Shape(vec![ch, size[0], size[1]]))
        }
        Op::Flatten => {
            let elements = input.elements();
            (Op::Flatten, Shape(vec![elements as usize]))
        }
        Op::ChannelShuffle { groups } => {
            let [ch, _, _] = image(input, "channel_shuffle")?;
            if ch % groups != 0 {
                return Err(ShapeError::new(
                    "cnnc::shape::groups",
                    Blame::Arg("groups"),
                    format!("channel_shuffle groups = {groups} does not divide the {ch} channels"),
                    format!("{ch} is not a multiple of {groups}"),
                ));
            }
            (Op::ChannelShuffle { groups }, input.clone())
        }
        Op::Chunk { chunks, index } => {
            let [ch, h, w] = image(input, "chunk")?;
            if ch % chunks != 0 {
                return Err(ShapeError::new(
                    "cnnc::shape::chunks",
                    Blame::Arg("chunks"),
                    format!("chunk cannot split {ch} channels into {chunks} equal parts"),
                    format!("{ch} is not a multiple of {chunks}"),
                ));
            }
            (Op::Chunk { chunks, index }, Shape(vec![ch / chunks, h, w]))
        }
        op @ Op::LocalResponseNorm { .. } => {
            image(input, "lrn")?;
            (op, input.clone())
        }
        Op::ChannelAffine { scale, shift } => {
            let [ch, _, _] = image(input, "channel_affine")?;
            if scale.len() != ch || shift.len() != ch {
                return Err(ShapeError::new(
                    "cnnc::shape::affine",
                    Blame::Call,
                    format!("channel_affine has {} scales and {} shifts for {ch} channels", scale.len(), shift.len()),
                    "one scale and one shift per channel",
                ));
            }
            (Op::ChannelAffine { scale, shift }, input.clone())
        }
        op @ (Op::Activation(_) | Op::Dropout { .. } | Op::StochasticDepth { .. } | Op::Softmax) => (op, input.clone()),
        op @ (Op::Input | Op::Concat | Op::Add | Op::Mul) => {
            unreachable!("{} is not a single-input layer", op.name())
        }
    };
    check_size(&out)?;
    Ok((op, out))
}

/// Infers the output of a join (`concat`, `add`, `mul`) of several branches.
pub fn join(op: &Op, inputs: &[&Shape]) -> Result<Shape, ShapeError> {
    let first = inputs[0];
    let out = match op {
        Op::Concat => {
            let mut channels = first.0[0];
            for (i, s) in inputs.iter().enumerate().skip(1) {
                if s.0.len() != first.0.len() || s.0[1..] != first.0[1..] {
                    return Err(ShapeError::new(
                        "cnnc::shape::concat",
                        Blame::Input(i),
                        format!("concat of unequal sizes: branch 0 gives {first}, branch {i} gives {s}"),
                        format!("gives {s}"),
                    )
                    .help(
                        "concatenated branches must agree on every dim but channels; check their strides and padding",
                    ));
                }
                channels = channels.checked_add(s.0[0]).ok_or_else(overflow)?;
            }
            let mut dims = first.0.clone();
            dims[0] = channels;
            Shape(dims)
        }
        Op::Add => {
            for (i, s) in inputs.iter().enumerate().skip(1) {
                if *s != first {
                    return Err(ShapeError::new("cnnc::shape::add", 
                        Blame::Input(i),
                        format!("add of unequal shapes: branch 0 gives {first}, branch {i} gives {s}"),
                        format!("gives {s}"),
                    )
                    .help("a residual add needs equal shapes; a projection (1×1 conv with the block's stride) on the shortcut makes them match"));
                }
            }
            first.clone()
        }
        Op::Mul => {
            let mut out = first.clone();
            for (i, s) in inputs.iter().enumerate().skip(1) {
                out = broadcast(&out, s).ok_or_else(|| {
                    ShapeError::new(
                        "cnnc::shape::broadcast",
                        Blame::Input(i),
                        format!("mul cannot broadcast {out} with {s}"),
                        format!("gives {s}"),
                    )
                    .help("each dim must be equal or 1 (squeeze-excitation multiplies [C, H, W] by [C, 1, 1])")
                })?;
            }
            out
        }
        other => unreachable!("{} is not a join", other.name()),
    };
    check_size(&out)?;
    Ok(out)
}

fn broadcast(a: &Shape, b: &Shape) -> Option<Shape> {
    let rank = a.0.len().max(b.0.len());
    let dim = |s: &Shape, i: usize| if i + s.0.len() < rank { 1 } else { s.0[i + s.0.len() - rank] };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .map(Shape)
}

fn overflow() -> ShapeError {
    ShapeError::new("cnnc::limit::overflow", Blame::Call, "a tensor size overflows", "size overflows")
        .help("the sizes in this spec are far too large")
}

/// Refuses shapes whose element count overflows or exceeds [`MAX_ELEMENTS`].
pub fn check_size(shape: &Shape) -> Result<(), ShapeError> {
    let mut elements: u64 = 1;
    for &d in &shape.0 {
        elements = elements.checked_mul(d as u64).ok_or_else(overflow)?;
    }
    if elements > MAX_ELEMENTS {
        return Err(ShapeError::new(
            "cnnc::limit::elements",
            Blame::Call,
            format!("a tensor of shape {shape} has {elements} elements, more than the limit of {MAX_ELEMENTS}"),
            "too large",
        )
        .help("check the channel counts and input size"));
    }
    Ok(())
}

fn image(input: &Shape, op: &str) -> Result<[usize; 3], ShapeError> {
    match input.0[..] {
        [c, h, w] => Ok([c, h, w]),
        _ => Err(ShapeError::new(
            "cnnc::shape::rank",
            Blame::Call,
            format!("{op} needs a [channels, height, width] input, found {input}"),
            format!("input is {input}"),
        )
        .help("image layers must come before `flatten`")),
    }
}

fn check_declared(declared: &Declared, found: usize, what: &str) -> Result<(), ShapeError> {
    match declared.in_size {
        Some(expected) if expected != found => Err(ShapeError::new(
            "cnnc::shape::in_channels",
            Blame::Arg("in"),
            format!("expected {expected} {what}, found {found}"),
            format!("declared {expected} here"),
        )
        .help(format!("the input has {found} {what}: write `in={found}`, or leave `in` out to infer it"))),
        _ => Ok(()),
    }
}

fn same(h: usize, w: usize, kernel: [usize; 2], stride: [usize; 2], dilation: [usize; 2]) -> Pad4 {
    let (top, bottom) = window::same_padding(h, kernel[0], stride[0], dilation[0]);
    let (left, right) = window::same_padding(w, kernel[1], stride[1], dilation[1]);
    Pad4 { top, bottom, left, right }
}

fn spatial(
    h: usize,
    w: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: Pad4,
    dilation: [usize; 2],
    ceil_mode: bool,
) -> Result<(usize, usize), ShapeError> {
    let dim = |input, k, s, p, d, name: &str| {
        window::output_len(input, k, s, p, d, ceil_mode).map_err(|WindowError::KernelTooLarge { effective_kernel, padded_input }| {
            ShapeError::new("cnnc::shape::kernel", 
                Blame::Arg("kernel"),
                format!("the kernel ({effective_kernel} with dilation) is larger than the padded input {name} ({padded_input})"),
                format!("kernel spans {effective_kernel}, input {name} is {padded_input} after padding"),
            )
            .help("an earlier stride or pooling shrank the input too far; reduce it, or pad more")
        })
    };
    Ok((
        dim(h, kernel[0], stride[0], (pad.top, pad.bottom), dilation[0], "height")?,
        dim(w, kernel[1], stride[1], (pad.left, pad.right), dilation[1], "width")?,
    ))
}

fn pool(mut p: Pool2d, declared: &Declared, input: &Shape, op: &str) -> Result<(Pool2d, Shape), ShapeError> {
    let [ch, h, w] = image(input, op)?;
    if declared.same_padding {
        p.padding = same(h, w, p.kernel, p.stride, p.dilation);
    } else {
        let pads =
            [(p.padding.top.max(p.padding.bottom), p.kernel[0]), (p.padding.left.max(p.padding.right), p.kernel[1])];
        if let Some((pad, k)) = pads.into_iter().find(|(pad, k)| pad * 2 > *k) {
            return Err(ShapeError::new(
                "cnnc::shape::padding",
                Blame::Arg("pad"),
                format!("{op} padding {pad} is more than half its kernel {k}"),
                "padding too large",
            )
            .help("PyTorch requires pooling padding ≤ kernel / 2"));
        }
    }
    let (oh, ow) = spatial(h, w, p.kernel, p.stride, p.padding, p.dilation, p.ceil_mode)?;
    Ok((p, Shape(vec![ch, oh, ow])))
}
