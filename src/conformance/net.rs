//! Conformance models built straight from IR ops, no spec text: each layer's shape comes from the
//! compiler's shape rules (`check::infer`, `check::join`) and its parameters are named
//! `l{n}.weight`, … as the expander would name a layer `l{n}`.

use cnnc_compiler::check::{self, Declared};
use cnnc_compiler::graph::{Activation, Conv2d, Fused, Graph, Node, NodeId, Op, Pad4, Param, Pool2d, Shape};
use cnnc_compiler::ir::span::Span;

/// A value of the model being built.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Value(NodeId);

/// A model under construction.
pub struct Net {
    graph: Graph,
    layers: usize,
}

impl Net {
    /// A model taking one `[C, H, W]` or `[F]` item; returns it and its input.
    pub fn new(input: &[usize]) -> (Net, Value) {
        let graph = Graph::new(Shape::of(input), Span::default());
        let input = graph.input;
        (Net { graph, layers: 0 }, Value(input))
    }

    /// The shape of a value, batch left out.
    pub fn shape(&self, v: Value) -> &Shape {
        &self.graph.node(v.0).shape
    }

    /// `op` applied to `x`; attributes the op leaves to inference (input channels, features) are
    /// filled in, and `same` asks for "same" padding.
    ///
    /// # Panics
    /// When the op does not fit `x` (a conformance model is written to fit).
    pub fn apply_with(&mut self, x: Value, op: Op, same: bool) -> Value {
        let declared = Declared { in_size: None, same_padding: same };
        let (op, shape) = check::infer(op, &declared, self.shape(x))
            .unwrap_or_else(|e| panic!("a conformance model that does not fit: {}", e.message));
        self.push(op, vec![x.0], shape)
    }

    /// `op` applied to `x`.
    pub fn apply(&mut self, x: Value, op: Op) -> Value {
        self.apply_with(x, op, false)
    }

    /// A chain of ops from `x`.
    pub fn chain(&mut self, x: Value, ops: impl IntoIterator<Item = Op>) -> Value {
        ops.into_iter().fold(x, |v, op| self.apply(v, op))
    }

    /// A join (`Op::Concat`, `Op::Add`, `Op::Mul`) of `inputs`.
    pub fn join(&mut self, op: Op, inputs: &[Value]) -> Value {
        let shapes: Vec<&Shape> = inputs.iter().map(|v| self.shape(*v)).collect();
        let shape =
            check::join(&op, &shapes).unwrap_or_else(|e| panic!("a conformance join that does not fit: {}", e.message));
        self.push(op, inputs.iter().map(|v| v.0).collect(), shape)
    }

    /// The checked graph with `out` as its output.
    pub fn finish(mut self, out: Value) -> Graph {
        self.graph.output = out.0;
        self.graph.meta.name = "conformance".into();
        self.graph
    }

    fn push(&mut self, op: Op, inputs: Vec<NodeId>, shape: Shape) -> Value {
        let path = format!("l{}", self.layers);
        self.layers += 1;
        let params =
            op.params().into_iter().map(|(k, s)| Param::new(&format!("{path}.{}", k.suffix()), k, &s)).collect();
        let node = Node {
            op,
            inputs,
            shape,
            path,
            params,
            span: Span::default(),
            training_only: false,
            fused: Fused::default(),
        };
        Value(self.graph.push(node))
    }
}

/// A convolution with `out` channels and a square `kernel`: stride 1, no padding, one group, bias.
pub fn conv(out: usize, kernel: usize) -> Conv2d {
    Conv2d {
        in_channels: 0,
        out_channels: out,
        kernel: [kernel, kernel],
        stride: [1, 1],
        padding: Pad4::default(),
        dilation: [1, 1],
        groups: 1,
        bias: true,
    }
}

/// A square pooling window with PyTorch's defaults: stride = kernel, no padding, padding counted
/// in averages.
pub fn window(kernel: usize) -> Pool2d {
    Pool2d {
        kernel: [kernel, kernel],
        stride: [kernel, kernel],
        padding: Pad4::default(),
        dilation: [1, 1],
        ceil_mode: false,
        count_include_pad: true,
    }
}

/// A square pooling window of `kernel`, `stride` and uniform `pad`, with `ceil_mode` and
/// `count_include_pad` as given.
pub fn pool_window(kernel: usize, stride: usize, pad: usize, ceil_mode: bool, count_include_pad: bool) -> Pool2d {
    Pool2d { stride: [stride, stride], padding: Pad4::uniform(pad), ceil_mode, count_include_pad, ..window(kernel) }
}

/// Max pooling over `window`, with `count_include_pad` off as the expander sets it for max pooling
/// (the flag is baked into the kernel, so this keeps the compiled variant the one models use).
pub fn max_pool(window: Pool2d) -> Op {
    Op::MaxPool(Pool2d { count_include_pad: false, ..window })
}

/// A 3×3 window of stride 1 and padding 1 (keeps the size).
pub fn window_3x3_same() -> Pool2d {
    Pool2d { stride: [1, 1], padding: Pad4::uniform(1), ..window(3) }
}

/// Batch-norm with PyTorch's epsilon.
pub fn bn() -> Op {
    Op::BatchNorm { channels: 0, eps: 1e-5, momentum: 0.1 }
}

pub fn act(a: Activation) -> Op {
    Op::Activation(a)
}

pub fn linear(out: usize, bias: bool) -> Op {
    Op::Linear { in_features: 0, out_features: out, bias }
}

/// Every activation, as the suite tests them.
pub const ACTIVATIONS: [Activation; 9] = [
    Activation::Relu,
    Activation::Relu6,
    Activation::LeakyRelu { slope: 0.2 },
    Activation::Silu,
    Activation::Sigmoid,
    Activation::HardSwish,
    Activation::HardSigmoid,
    Activation::Tanh,
    Activation::Gelu,
];

/// The spec spelling of an activation (`leaky_relu(0.2)`), as case names write it.
pub fn spelled(a: Activation) -> String {
    match a {
        Activation::LeakyRelu { slope } => format!("leaky_relu({slope})"),
        a => a.name().to_string(),
    }
}
