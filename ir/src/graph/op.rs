//! The closed set of operations a graph node performs, with resolved attributes.

use std::fmt;

/// A tensor shape without the batch dimension: `[C, H, W]` for images, `[F]` for features.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    /// The shape with these dims.
    pub fn of(dims: &[usize]) -> Shape {
        Shape(dims.to_vec())
    }

    /// Number of elements (batch 1). Shapes are checked against overflow when built.
    pub fn elements(&self) -> u64 {
        self.0.iter().map(|&d| d as u64).product()
    }

    /// The dims.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// `(C, P)`: channels (or features) and positions per channel (1 for `[F]`); `(0, 0)` for a
    /// shape without dims.
    pub fn channels_positions(&self) -> (usize, usize) {
        match self.dims() {
            [] => (0, 0),
            [c, rest @ ..] => (*c, rest.iter().product::<usize>().max(1)),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

/// Zero padding on each side of the two spatial dims.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct Pad4 {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl Pad4 {
    /// The same padding on all four sides.
    pub fn uniform(p: usize) -> Pad4 {
        Pad4 { top: p, bottom: p, left: p, right: p }
    }
}

/// A 2-D convolution with its input channels resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2d {
    pub in_channels: usize,
    pub out_channels: usize,
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: Pad4,
    pub dilation: [usize; 2],
    pub groups: usize,
    pub bias: bool,
}

/// A 2-D max or average pooling window.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: Pad4,
    pub dilation: [usize; 2],
    pub ceil_mode: bool,
    /// Average pooling only: whether padded zeros count in the divisor.
    pub count_include_pad: bool,
}

/// Pointwise activation functions.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Activation {
    Relu,
    Relu6,
    LeakyRelu { slope: f64 },
    Silu,
    Sigmoid,
    HardSwish,
    HardSigmoid,
    Tanh,
    Gelu,
}

impl Activation {
    /// The spec keyword.
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Silu => "silu",
            Activation::Sigmoid => "sigmoid",
            Activation::HardSwish => "hardswish",
            Activation::HardSigmoid => "hardsigmoid",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
        }
    }
}

/// What a node computes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The model's input.
    Input,
    Conv2d(Conv2d),
    Linear {
        in_features: usize,
        out_features: usize,
        bias: bool,
    },
    /// Batch normalisation over `[N, C, H, W]`. Training normalises with the batch statistics and
    /// updates the running ones as `running = (1 − momentum)·running + momentum·batch` (PyTorch's
    /// `BatchNorm2d`, unbiased variance in the running update).
    BatchNorm {
        channels: usize,
        eps: f64,
        momentum: f64,
    },
    Activation(Activation),
    MaxPool(Pool2d),
    AvgPool(Pool2d),
    AdaptiveAvgPool {
        size: [usize; 2],
    },
    AdaptiveMaxPool {
        size: [usize; 2],
    },
    Flatten,
    /// Identity at inference.
    Dropout {
        p: f64,
    },
    /// Identity at inference.
    StochasticDepth {
        p: f64,
    },
    /// Channel concatenation of all inputs.
    Concat,
    /// Elementwise sum of all inputs.
    Add,
    /// Elementwise product with broadcasting.
    Mul,
    ChannelShuffle {
        groups: usize,
    },
    /// The `index`-th of `chunks` equal slices along channels (`torch.chunk`).
    Chunk {
        chunks: usize,
        index: usize,
    },
    LocalResponseNorm {
        size: usize,
        alpha: f64,
        beta: f64,
        k: f64,
    },
    /// Softmax over channels / features.
    Softmax,
    /// Per-channel `x * scale + shift` (GoogLeNet's `transform_input`).
    ChannelAffine {
        scale: Vec<f64>,
        shift: Vec<f64>,
    },
}

/// What a parameter tensor holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ParamKind {
    Weight,
    Bias,
    RunningMean,
    RunningVar,
}

impl ParamKind {
    /// The state_dict suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            ParamKind::Weight => "weight",
            ParamKind::Bias => "bias",
            ParamKind::RunningMean => "running_mean",
            ParamKind::RunningVar => "running_var",
        }
    }

    /// Whether PyTorch counts it in `parameters()` (running statistics are buffers).
    pub fn is_trainable(self) -> bool {
        matches!(self, ParamKind::Weight | ParamKind::Bias)
    }
}

impl Op {
    /// The op's name as the spec and summaries write it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv2d(_) => "conv",
            Op::Linear { .. } => "linear",
            Op::BatchNorm { .. } => "bn",
            Op::Activation(a) => a.name(),
            Op::MaxPool(_) => "maxpool",
            Op::AvgPool(_) => "avgpool",
            Op::AdaptiveAvgPool { .. } => "adaptive_avgpool",
            Op::AdaptiveMaxPool { .. } => "adaptive_maxpool",
            Op::Flatten => "flatten",
            Op::Dropout { .. } => "dropout",
            Op::StochasticDepth { .. } => "stochastic_depth",
            Op::Concat => "concat",
            Op::Add => "add",
            Op::Mul => "mul",
            Op::ChannelShuffle { .. } => "channel_shuffle",
            Op::Chunk { .. } => "chunk",
            Op::LocalResponseNorm { .. } => "lrn",
            Op::Softmax => "softmax",
            Op::ChannelAffine { .. } => "channel_affine",
        }
    }

    /// The parameter tensors this op owns, with their shapes, in state_dict order.
    pub fn params(&self) -> Vec<(ParamKind, Vec<usize>)> {
        match self {
            Op::Conv2d(c) => {
                let mut p =
                    vec![(ParamKind::Weight, vec![c.out_channels, c.in_channels / c.groups, c.kernel[0], c.kernel[1]])];
                if c.bias {
                    p.push((ParamKind::Bias, vec![c.out_channels]));
                }
                p
            }
            Op::Linear { in_features, out_features, bias } => {
                let mut p = vec![(ParamKind::Weight, vec![*out_features, *in_features])];
                if *bias {
                    p.push((ParamKind::Bias, vec![*out_features]));
                }
                p
            }
            Op::BatchNorm { channels, .. } => {
                [ParamKind::Weight, ParamKind::Bias, ParamKind::RunningMean, ParamKind::RunningVar]
                    .into_iter()
                    .map(|k| (k, vec![*channels]))
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Multiply-accumulates for batch 1: conv and linear only, as torchvision's tables count them.
    pub fn macs(&self, output: &Shape) -> u64 {
        match self {
            Op::Conv2d(c) => output.elements() * (c.kernel[0] * c.kernel[1] * (c.in_channels / c.groups)) as u64,
            Op::Linear { in_features, .. } => output.elements() * *in_features as u64,
            _ => 0,
        }
    }
}
