//! One problem struct per kernel family: the shapes and attributes that family's kernels are tested
//! on, and the model that exercises them. The CPU executor running that model is the reference.

use std::fmt::Debug;

use cnnc_compiler::graph::{Activation, Conv2d, Graph, Op, Pool2d};
use cnnc_runtime::weights::Weights;
use cnnc_runtime::{cpu, RuntimeError, Tensor};

use super::net::{act, bn, conv, linear, max_pool, window, window_3x3_same, Net, Value};

/// A conformance problem: a small model that exercises one kernel family.
pub trait Problem: Debug {
    /// The shape of one input item.
    fn input(&self) -> Vec<usize>;

    /// Builds the model on `x`, the input, and returns its output.
    fn build(&self, net: &mut Net, x: Value) -> Value;

    /// The checked graph of the model.
    fn graph(&self) -> Graph {
        let (mut net, x) = Net::new(&self.input());
        let out = self.build(&mut net, x);
        net.finish(out)
    }

    /// The expected output: the CPU reference executor (f64 accumulation) on the same graph,
    /// weights and input.
    fn reference(&self, graph: &Graph, weights: &Weights, input: &Tensor) -> Result<Tensor, RuntimeError> {
        cpu::run(graph, weights, input)
    }
}

/// A convolution with what lowering fuses into it: a batch-norm after it, a residual add of its
/// input (`residual: [conv, bn?]`), then an activation.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvProblem {
    /// `[C, H, W]`.
    pub input: [usize; 3],
    /// Output channels, kernel, stride, padding, dilation, groups, bias (input channels inferred).
    pub conv: Conv2d,
    /// `pad="same"` (overrides `conv.padding`).
    pub same: bool,
    pub batch_norm: bool,
    pub residual: bool,
    pub activation: Option<Activation>,
}

impl ConvProblem {
    /// `conv` on an `input` item, nothing fused.
    pub fn new(input: [usize; 3], conv: Conv2d) -> ConvProblem {
        ConvProblem { input, conv, same: false, batch_norm: false, residual: false, activation: None }
    }
}

impl Problem for ConvProblem {
    fn input(&self) -> Vec<usize> {
        self.input.to_vec()
    }

    fn build(&self, net: &mut Net, x: Value) -> Value {
        let mut y = net.apply_with(x, Op::Conv2d(self.conv.clone()), self.same);
        if self.batch_norm {
            y = net.apply(y, bn());
        }
        if self.residual {
            y = net.join(Op::Add, &[y, x]);
        }
        match self.activation {
            Some(a) => net.apply(y, act(a)),
            None => y,
        }
    }
}

/// A pooling window, or adaptive pooling to a size.
#[derive(Clone, Debug, PartialEq)]
pub enum Pooling {
    Max(Pool2d),
    Avg(Pool2d),
    AdaptiveAvg([usize; 2]),
    AdaptiveMax([usize; 2]),
}

impl Pooling {
    pub fn op(&self) -> Op {
        match self {
            Pooling::Max(p) => max_pool(p.clone()),
            Pooling::Avg(p) => Op::AvgPool(p.clone()),
            Pooling::AdaptiveAvg(size) => Op::AdaptiveAvgPool { size: *size },
            Pooling::AdaptiveMax(size) => Op::AdaptiveMaxPool { size: *size },
        }
    }
}

/// One pooling layer over `[C, H, W]` items.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolProblem {
    pub input: [usize; 3],
    pub pooling: Pooling,
}

impl Problem for PoolProblem {
    fn input(&self) -> Vec<usize> {
        self.input.to_vec()
    }

    fn build(&self, net: &mut Net, x: Value) -> Value {
        net.apply(x, self.pooling.op())
    }
}

/// A linear layer, after a flatten when the input is not flat, with a fused activation.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearProblem {
    pub input: Vec<usize>,
    pub out_features: usize,
    pub bias: bool,
    pub activation: Option<Activation>,
}

impl Problem for LinearProblem {
    fn input(&self) -> Vec<usize> {
        self.input.clone()
    }

    fn build(&self, net: &mut Net, x: Value) -> Value {
        let flat = if self.input.len() > 1 { net.apply(x, Op::Flatten) } else { x };
        let y = net.apply(flat, linear(self.out_features, self.bias));
        match self.activation {
            Some(a) => net.apply(y, act(a)),
            None => y,
        }
    }
}

/// An activation on its own, or fused into the 3×3 max pooling before it.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationProblem {
    pub input: [usize; 3],
    pub activation: Activation,
    pub fused: bool,
}

impl Problem for ActivationProblem {
    fn input(&self) -> Vec<usize> {
        self.input.to_vec()
    }

    fn build(&self, net: &mut Net, x: Value) -> Value {
        let x = if self.fused { net.apply(x, max_pool(Pool2d { stride: [1, 1], ..window(3) })) } else { x };
        net.apply(x, act(self.activation))
    }
}

/// Local response normalisation over `[C, H, W]` items.
#[derive(Clone, Debug, PartialEq)]
pub struct LrnProblem {
    pub input: [usize; 3],
    pub size: usize,
    pub alpha: f64,
    pub beta: f64,
    pub k: f64,
}

impl Problem for LrnProblem {
    fn input(&self) -> Vec<usize> {
        self.input.to_vec()
    }

    fn build(&self, net: &mut Net, x: Value) -> Value {
        net.apply(x, Op::LocalResponseNorm { size: self.size, alpha: self.alpha, beta: self.beta, k: self.k })
    }
}

/// Softmax over `classes` features from a linear layer on a flattened input.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxProblem {
    pub input: [usize; 3],
    pub classes: usize,
}

impl Problem for SoftmaxProblem {
    fn input(&self) -> Vec<usize> {
        self.input.to_vec()
    }

    fn build(&self, net: &mut Net, x: Value) -> Value {
        net.chain(x, [Op::Flatten, linear(self.classes, true), Op::Softmax])
    }
}

/// A model of several layers (branches joined by concat, add or mul), for the families whose
/// kernels only show their edge cases in combination.
#[derive(Clone)]
pub struct Composite {
    pub input: Vec<usize>,
    pub build: fn(&mut Net, Value) -> Value,
}

impl Debug for Composite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Composite({:?})", self.input)
    }
}

impl Problem for Composite {
    fn input(&self) -> Vec<usize> {
        self.input.clone()
    }

    fn build(&self, net: &mut Net, x: Value) -> Value {
        (self.build)(net, x)
    }
}

/// What an elementwise problem computes on its `[C, H, W]` input `x`.
#[derive(Clone, Debug, PartialEq)]
pub enum ElementwiseKind {
    /// `x` plus `terms - 1` pooled copies of it (3×3 max and average pooling that keep the size,
    /// alternating): a sum of several values through partial sums.
    Add { terms: usize },
    /// `x` times a same-shape value (its 3×3 max pooling), or times a per-channel gate (its global
    /// average, through a sigmoid: squeeze-and-excitation).
    Mul { per_channel: bool },
    /// A per-channel scale and shift (`channel_affine`), one of each per channel.
    Affine { scale: Vec<f64>, shift: Vec<f64> },
    /// Batch-norm with running statistics, on its own (nothing to fold it into).
    BatchNorm,
}

/// One elementwise computation over `[C, H, W]` items.
#[derive(Clone, Debug, PartialEq)]
pub struct ElementwiseProblem {
    pub input: [usize; 3],
    pub op: ElementwiseKind,
}

impl Problem for ElementwiseProblem {
    fn input(&self) -> Vec<usize> {
        self.input.to_vec()
    }

    fn build(&self, net: &mut Net, x: Value) -> Value {
        match &self.op {
            ElementwiseKind::Add { terms } => {
                let mut values = vec![x];
                for i in 1..*terms {
                    let pool = if i % 2 == 1 { max_pool(window_3x3_same()) } else { Op::AvgPool(window_3x3_same()) };
                    values.push(net.apply(x, pool));
                }
                net.join(Op::Add, &values)
            }
            ElementwiseKind::Mul { per_channel: false } => {
                let other = net.apply(x, max_pool(window_3x3_same()));
                net.join(Op::Mul, &[x, other])
            }
            ElementwiseKind::Mul { per_channel: true } => {
                let gate = net.chain(x, [Op::AdaptiveAvgPool { size: [1, 1] }, act(Activation::Sigmoid)]);
                net.join(Op::Mul, &[x, gate])
            }
            ElementwiseKind::Affine { scale, shift } => {
                net.apply(x, Op::ChannelAffine { scale: scale.clone(), shift: shift.clone() })
            }
            ElementwiseKind::BatchNorm => net.apply(x, bn()),
        }
    }
}

/// What a copy problem does with the channels of its `[C, H, W]` input.
#[derive(Clone, Debug, PartialEq)]
pub enum CopyKind {
    /// Concatenates the input (copied) with 1×1 convolutions of these output channels (written in
    /// place into their slices) and a 3×3 max pooling (copied).
    Concat { convs: Vec<usize> },
    /// The `index`-th of `chunks` equal channel slices.
    Chunk { chunks: usize, index: usize },
    /// ShuffleNet's channel shuffle in `groups`.
    Shuffle { groups: usize },
}

/// One channel-moving layer over `[C, H, W]` items.
#[derive(Clone, Debug, PartialEq)]
pub struct CopyProblem {
    pub input: [usize; 3],
    pub op: CopyKind,
}

impl Problem for CopyProblem {
    fn input(&self) -> Vec<usize> {
        self.input.to_vec()
    }

    fn build(&self, net: &mut Net, x: Value) -> Value {
        match &self.op {
            CopyKind::Concat { convs } => {
                let mut parts = vec![x];
                parts.extend(convs.iter().map(|out| net.apply(x, Op::Conv2d(conv(*out, 1)))));
                parts.push(net.apply(x, max_pool(window_3x3_same())));
                net.join(Op::Concat, &parts)
            }
            CopyKind::Chunk { chunks, index } => net.apply(x, Op::Chunk { chunks: *chunks, index: *index }),
            CopyKind::Shuffle { groups } => net.apply(x, Op::ChannelShuffle { groups: *groups }),
        }
    }
}
