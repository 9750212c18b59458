//! The layer plan: the lowered graph spelled out as the executors and the code generator take it.
//! Each inference node becomes a [`Layer`] that carries everything its kernels need — the shapes of
//! what it reads, the buffer slot it writes, the concat slice it fills — so building and running it
//! needs no graph. The GPU executor builds a plan it made at run time; generated Rust builds one
//! written out as literals.

use super::{lower, plan_buffers};
use crate::graph::{Activation, FoldedBatchNorm, Graph, NodeId, Op, Param, Shape};

/// A value a layer reads: the layer (value) that computed it and its shape without batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Operand {
    pub value: usize,
    pub shape: Shape,
    /// A concat's input already written into the concat's output by its producer.
    pub in_place: bool,
}

impl Operand {
    /// Value `value` of `shape`.
    pub fn new(value: usize, shape: &[usize]) -> Operand {
        Operand { value, shape: Shape(shape.to_vec()), in_place: false }
    }

    /// A concat's input `value` of `shape`, already written into the concat's output.
    pub fn in_place(value: usize, shape: &[usize]) -> Operand {
        Operand { in_place: true, ..Operand::new(value, shape) }
    }
}

/// Channels `offset..` of a `channels`-channel concat output, which a layer writes in place.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ConcatTarget {
    pub channels: usize,
    pub offset: usize,
}

/// One inference node with its operands resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// The dotted layer path (`layer3.2.conv2`); empty for structural nodes.
    pub path: String,
    pub op: Op,
    /// What the op reads, in order; with `residual`, the last is the value added to the result.
    pub inputs: Vec<Operand>,
    /// The value this layer computes.
    pub value: usize,
    /// Its shape without batch.
    pub shape: Shape,
    /// The buffer slot it is written to; `None` for a flatten, which reads its input's buffer.
    pub slot: Option<usize>,
    /// The op's own parameters, by state_dict name.
    pub params: Vec<Param>,
    /// A batch-norm folded into this convolution.
    pub batch_norm: Option<FoldedBatchNorm>,
    /// The last input is added to the result (after the folded batch-norm, before the activation).
    pub residual: bool,
    pub activation: Option<Activation>,
    /// Where the result goes when it is written into a concat's output in place.
    pub into_concat: Option<ConcatTarget>,
}

impl Default for Layer {
    /// The model's input as value 0 in slot 0, of no shape yet.
    fn default() -> Layer {
        Layer {
            path: String::new(),
            op: Op::Input,
            inputs: Vec::new(),
            value: 0,
            shape: Shape(Vec::new()),
            slot: Some(0),
            params: Vec::new(),
            batch_norm: None,
            residual: false,
            activation: None,
            into_concat: None,
        }
    }
}

/// How a model's values are numbered and stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueLayout {
    /// Values are numbered `0..values`; not every number is used.
    pub values: usize,
    /// The value the model's input is written to, and the one its output is read from.
    pub input: usize,
    pub output: usize,
    /// Shapes without batch.
    pub input_shape: Shape,
    pub output_shape: Shape,
    /// Each buffer slot's size in f32 elements for one batch item.
    pub slot_elements: Vec<u64>,
}

/// A lowered model as a list of layers over numbered values and buffer slots.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerPlan {
    pub layout: ValueLayout,
    /// In execution order; the first is the input.
    pub layers: Vec<Layer>,
}

impl LayerPlan {
    /// Lowers a checked graph ([`lower`]), plans its buffers and spells out its layers.
    pub fn new(graph: &Graph) -> LayerPlan {
        layer_plan(&lower(graph))
    }
}

/// The layer plan of an already lowered graph.
pub fn layer_plan(lowered: &Graph) -> LayerPlan {
    let buffers = plan_buffers(lowered);
    let operand =
        |id: NodeId, in_place: bool| Operand { value: id.index(), shape: lowered.node(id).shape.clone(), in_place };
    let layers = lowered
        .inference_nodes()
        .map(|(id, node)| Layer {
            path: node.path.clone(),
            op: node.op.clone(),
            inputs: node
                .inputs
                .iter()
                .map(|i| {
                    let in_place = node.op == Op::Concat && lowered.node(*i).fused.into_concat.is_some();
                    operand(*i, in_place)
                })
                .collect(),
            value: id.index(),
            shape: node.shape.clone(),
            slot: if node.op == Op::Flatten { None } else { buffers.slot[id.index()] },
            params: node.params.clone(),
            batch_norm: node.fused.batch_norm.clone(),
            residual: node.fused.residual,
            activation: node.fused.activation,
            into_concat: node.fused.into_concat.map(|slice| ConcatTarget {
                channels: lowered.node(slice.concat).shape.dims()[0],
                offset: slice.offset,
            }),
        })
        .collect();
    let layout = ValueLayout {
        values: lowered.len(),
        input: lowered.input.index(),
        output: lowered.output.index(),
        input_shape: lowered.node(lowered.input).shape.clone(),
        output_shape: lowered.node(lowered.output).shape.clone(),
        slot_elements: buffers.slot_elements,
    };
    LayerPlan { layout, layers }
}
