//! The layer plan: a lowered graph spelled out as the executors and the code generator take it.
//!
//! Each inference node becomes a [`Layer`] that carries everything its kernels need — the shapes of
//! what it reads, the buffer slot it writes, the concat slice it fills — so building and running it
//! needs no graph. The compiler makes a plan from a lowered graph; generated Rust writes one out as
//! literals. Either way it is checked once by [`LayerPlan::validate`], and only the resulting
//! [`ValidPlan`] is accepted by the GPU builder: code after validation indexes freely.

mod validate;

pub use validate::{PlanError, PlanProblem};

use crate::graph::{Activation, FoldedBatchNorm, Op, Param, Shape};
use crate::span::Span;

/// A value of the plan: what one layer computes. Values are numbered `0..ValueLayout::values`;
/// not every number is used (numbers follow the lowered graph's node order).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

impl ValueId {
    /// The value's number, as an index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A buffer slot of the plan: activations whose lifetimes do not overlap share one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(pub u32);

impl SlotId {
    /// The slot's number, as an index into [`ValueLayout::slot_elements`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A value a layer reads: the layer (value) that computed it and its shape without batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Operand {
    pub value: ValueId,
    pub shape: Shape,
    /// A concat's input already written into the concat's output by its producer.
    pub in_place: bool,
}

impl Operand {
    /// Value `value` of `shape`.
    pub fn new(value: ValueId, shape: &[usize]) -> Operand {
        Operand { value, shape: Shape(shape.to_vec()), in_place: false }
    }

    /// A concat's input `value` of `shape`, already written into the concat's output.
    pub fn in_place(value: ValueId, shape: &[usize]) -> Operand {
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
    /// The spec text the layer came from.
    pub span: Span,
    pub op: Op,
    /// What the op reads, in order; with `residual`, the last is the value added to the result.
    pub inputs: Vec<Operand>,
    /// The value this layer computes.
    pub value: ValueId,
    /// Its shape without batch.
    pub shape: Shape,
    /// The buffer slot it is written to; `None` for a flatten (and, if they are kept, dropout and
    /// stochastic depth), which read their input's buffer.
    pub slot: Option<SlotId>,
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

impl Layer {
    /// The number of channels of the tensor the layer writes and where its own channels start in
    /// it: the concat's output when it writes in place, else its own output `[C, ...]`.
    pub fn out_channels(&self) -> (usize, usize) {
        match self.into_concat {
            Some(target) => (target.channels, target.offset),
            None => (self.shape.dims()[0], 0),
        }
    }
}

/// How a model's values are numbered and stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueLayout {
    /// Values are numbered `0..values`; not every number is used.
    pub values: usize,
    /// The value the model's input is written to, and the one its output is read from.
    pub input: ValueId,
    pub output: ValueId,
    /// Shapes without batch.
    pub input_shape: Shape,
    pub output_shape: Shape,
    /// Each buffer slot's size in f32 elements for one batch item.
    pub slot_elements: Vec<u64>,
}

/// A lowered model as a list of layers over numbered values and buffer slots, not yet checked.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerPlan {
    pub layout: ValueLayout,
    /// In execution order; the first is the input.
    pub layers: Vec<Layer>,
}

impl LayerPlan {
    /// Checks every invariant the executors rely on (see [`validate`](mod@validate)) and returns
    /// the plan as a [`ValidPlan`].
    ///
    /// # Errors
    /// The first inconsistency found, naming the layer (path, span, position) it is in.
    pub fn validate(self) -> Result<ValidPlan, PlanError> {
        validate::check(&self)?;
        Ok(ValidPlan(self))
    }
}

/// A [`LayerPlan`] that passed [`LayerPlan::validate`]: every value is computed before it is read,
/// operand shapes match their producers, each op has the inputs, parameters and shapes its kernels
/// assume (output sizes by PyTorch's window formulas, no zero dims, fused work only where a kernel
/// does it), and every value fits its slot. Only validation makes one, so consumers need not check
/// these; what validation cannot know (whether the weights are present and of the right shapes,
/// device limits, forms a particular executor lacks) the executor still reports as an error.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidPlan(LayerPlan);

impl ValidPlan {
    /// How values are numbered and stored.
    pub fn layout(&self) -> &ValueLayout {
        &self.0.layout
    }

    /// The layers in execution order; the first is the input.
    pub fn layers(&self) -> &[Layer] {
        &self.0.layers
    }

    /// The plan itself.
    pub fn plan(&self) -> &LayerPlan {
        &self.0
    }

    /// Every parameter the plan reads (its layers' own and those of folded batch-norms).
    pub fn params(&self) -> impl Iterator<Item = &Param> {
        self.0.layers.iter().flat_map(|l| l.params.iter().chain(l.batch_norm.iter().flat_map(|b| &b.params)))
    }
}

#[cfg(test)]
mod tests;
