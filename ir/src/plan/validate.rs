//! The checks behind [`LayerPlan::validate`]: whole-plan structure, then each layer's reads, op
//! contract (inputs, shapes, parameters), slot and concat slice.

use std::fmt;

use super::{Layer, LayerPlan, SlotId, ValueId};
use crate::graph::{Op, Shape};
use crate::span::Span;
use crate::window;

/// Why a layer plan is not valid, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanError {
    /// The layer at fault: its position in the plan, path and span; `None` for the plan as a whole.
    pub layer: Option<(usize, String, Span)>,
    pub problem: PlanProblem,
}

/// What is inconsistent in a layer plan.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanProblem {
    /// The first layer is not an input layer computing the layout's input value and shape.
    NoInputLayer,
    /// An input layer anywhere but first.
    InputNotFirst,
    /// A value number outside `0..values`.
    ValueOutOfRange { value: ValueId, values: usize },
    /// Two layers compute the same value.
    ValueComputedTwice { value: ValueId },
    /// A layer reads a value no earlier layer computed.
    ReadBeforeComputed { value: ValueId },
    /// An operand's shape is not the shape its producer computed.
    OperandShape { value: ValueId, expected: Shape, found: Shape },
    /// The op reads the wrong number of values (a fused residual counts as one more).
    Arity { op: &'static str, expected: &'static str, found: usize },
    /// Work fused into an op whose kernels cannot do it: a residual add into anything but a
    /// convolution, a concat slice into anything but a convolution or a pooling.
    Fused { what: &'static str, op: &'static str },
    /// An operand or the result does not have the shape the op's kernels compute with.
    Shape { what: &'static str, expected: String, found: Shape },
    /// The parameters listed differ from the op's (kinds and shapes, in state_dict order).
    Params { expected: String, found: String },
    /// A batch-norm folded into something other than a convolution, or with the wrong parameters.
    FoldedBatchNorm,
    /// A layer that computes a value has no slot, or a flatten has one.
    Slot { expected: bool },
    /// A slot number outside the layout's slots.
    SlotOutOfRange { slot: SlotId, slots: usize },
    /// The value (or the concat output it writes into) is larger than its slot.
    SlotTooSmall { slot: SlotId, needs: u64, holds: u64 },
    /// A concat slice outside the concat's channels.
    ConcatSlice { offset: usize, channels: usize, target: usize },
    /// No layer computes the layout's output, or with another shape.
    Output { value: ValueId },
}

impl fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanProblem::NoInputLayer => write!(f, "the first layer is not the model's input"),
            PlanProblem::InputNotFirst => write!(f, "an input layer after the first"),
            PlanProblem::ValueOutOfRange { value, values } => {
                write!(f, "value {} is outside the layout's {values} values", value.0)
            }
            PlanProblem::ValueComputedTwice { value } => write!(f, "value {} is computed twice", value.0),
            PlanProblem::ReadBeforeComputed { value } => {
                write!(f, "reads value {}, which no earlier layer computed", value.0)
            }
            PlanProblem::OperandShape { value, expected, found } => {
                write!(f, "reads value {} as {found}, but it was computed as {expected}", value.0)
            }
            PlanProblem::Arity { op, expected, found } => write!(f, "{op} reads {found} values, expected {expected}"),
            PlanProblem::Fused { what, op } => write!(f, "{what} is fused into a {op}, whose kernels cannot do it"),
            PlanProblem::Shape { what, expected, found } => write!(f, "{what} is {found}, expected {expected}"),
            PlanProblem::Params { expected, found } => write!(f, "parameters are {found}, expected {expected}"),
            PlanProblem::FoldedBatchNorm => {
                write!(f, "a folded batch-norm needs a convolution and four [out_channels] tensors")
            }
            PlanProblem::Slot { expected: true } => write!(f, "computes a value but has no buffer slot"),
            PlanProblem::Slot { expected: false } => write!(f, "a flatten shares its input's slot and has none"),
            PlanProblem::SlotOutOfRange { slot, slots } => {
                write!(f, "writes slot {}, but the layout has {slots} slots", slot.0)
            }
            PlanProblem::SlotTooSmall { slot, needs, holds } => {
                write!(f, "needs {needs} elements per item, but slot {} holds {holds}", slot.0)
            }
            PlanProblem::ConcatSlice { offset, channels, target } => {
                write!(f, "writes channels {offset}..{} of a {target}-channel concat", offset + channels)
            }
            PlanProblem::Output { value } => write!(f, "no layer computes the output value {} as laid out", value.0),
        }
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.layer {
            Some((index, path, _)) if path.is_empty() => write!(f, "layer {index}: {}", self.problem),
            Some((index, path, _)) => write!(f, "layer {index} (`{path}`): {}", self.problem),
            None => write!(f, "{}", self.problem),
        }
    }
}

impl std::error::Error for PlanError {}

/// Checks the whole plan; the first problem found is returned.
pub(super) fn check(plan: &LayerPlan) -> Result<(), PlanError> {
    let whole = |problem| PlanError { layer: None, problem };
    let layout = &plan.layout;
    let first_is_input = plan.layers.first().is_some_and(|l| {
        l.op == Op::Input && l.value == layout.input && l.shape == layout.input_shape && l.inputs.is_empty()
    });
    if !first_is_input {
        return Err(whole(PlanProblem::NoInputLayer));
    }
    let mut computed: Vec<Option<&Shape>> = vec![None; layout.values];
    for (index, layer) in plan.layers.iter().enumerate() {
        let at = |problem| PlanError { layer: Some((index, layer.path.clone(), layer.span)), problem };
        check_layer(plan, layer, index, &computed).map_err(at)?;
        computed[layer.value.index()] = Some(&layer.shape);
    }
    match computed.get(layout.output.index()) {
        Some(Some(shape)) if **shape == layout.output_shape => Ok(()),
        _ => Err(whole(PlanProblem::Output { value: layout.output })),
    }
}

fn check_layer(plan: &LayerPlan, layer: &Layer, index: usize, computed: &[Option<&Shape>]) -> Result<(), PlanProblem> {
    let values = computed.len();
    let in_range = |value: ValueId| {
        if value.index() < values {
            Ok(())
        } else {
            Err(PlanProblem::ValueOutOfRange { value, values })
        }
    };
    in_range(layer.value)?;
    if computed[layer.value.index()].is_some() {
        return Err(PlanProblem::ValueComputedTwice { value: layer.value });
    }
    if index > 0 && layer.op == Op::Input {
        return Err(PlanProblem::InputNotFirst);
    }
    for operand in &layer.inputs {
        in_range(operand.value)?;
        let Some(expected) = computed[operand.value.index()] else {
            return Err(PlanProblem::ReadBeforeComputed { value: operand.value });
        };
        if *expected != operand.shape {
            let (expected, found) = (expected.clone(), operand.shape.clone());
            return Err(PlanProblem::OperandShape { value: operand.value, expected, found });
        }
    }
    check_op(layer)?;
    check_slot(plan, layer)
}

/// `[C, H, W]`, or the problem naming `what`.
fn image(shape: &Shape, what: &'static str) -> Result<[usize; 3], PlanProblem> {
    shape.dims().try_into().map_err(|_| PlanProblem::Shape { what, expected: "[C, H, W]".into(), found: shape.clone() })
}

fn expect_shape(found: &Shape, expected: &[usize], what: &'static str) -> Result<(), PlanProblem> {
    if found.dims() == expected {
        return Ok(());
    }
    Err(PlanProblem::Shape { what, expected: Shape::of(expected).to_string(), found: found.clone() })
}

fn expect_elements(found: &Shape, expected: usize, what: &'static str) -> Result<(), PlanProblem> {
    if found.elements() == expected as u64 {
        return Ok(());
    }
    Err(PlanProblem::Shape { what, expected: format!("{expected} elements"), found: found.clone() })
}

/// The op's contract: how many values it reads, its parameters, the shapes its kernels assume.
fn check_op(layer: &Layer) -> Result<(), PlanProblem> {
    let op = layer.op.name();
    if layer.residual && !matches!(layer.op, Op::Conv2d(_)) {
        return Err(PlanProblem::Fused { what: "a residual add", op });
    }
    let writes_slices = matches!(
        layer.op,
        Op::Conv2d(_) | Op::MaxPool(_) | Op::AvgPool(_) | Op::AdaptiveAvgPool { .. } | Op::AdaptiveMaxPool { .. }
    );
    if layer.into_concat.is_some() && !writes_slices {
        return Err(PlanProblem::Fused { what: "a concat slice", op });
    }
    if let Op::Conv2d(c) = &layer.op {
        if c.groups == 0 || c.in_channels % c.groups != 0 || c.out_channels % c.groups != 0 {
            let expected = format!("channels divisible into {} groups", c.groups);
            return Err(mismatch("the convolution", expected, &Shape::of(&[c.in_channels, c.out_channels])));
        }
    }
    let residual = usize::from(layer.residual);
    let own_inputs = layer.inputs.len().saturating_sub(residual);
    let (expected, ok) = match layer.op {
        Op::Input => ("none", layer.inputs.is_empty()),
        Op::Concat => ("at least one", own_inputs >= 1),
        // A lone addend is no sum (the GPU would dispatch it as an affine without scale and shift).
        Op::Add | Op::Mul => ("at least two", own_inputs >= 2),
        _ => ("one", own_inputs == 1),
    };
    if !ok {
        return Err(PlanProblem::Arity { op, expected, found: layer.inputs.len() });
    }
    if layer.residual {
        expect_shape(&layer.inputs[own_inputs].shape, layer.shape.dims(), "the residual operand")?;
    }
    let params: Vec<_> = layer.params.iter().map(|p| (p.kind, p.shape.clone())).collect();
    if params != layer.op.params() {
        let list = |p: &[(crate::graph::ParamKind, Vec<usize>)]| {
            p.iter().map(|(k, s)| format!("{} {}", k.suffix(), Shape::of(s))).collect::<Vec<_>>().join(", ")
        };
        return Err(PlanProblem::Params { expected: list(&layer.op.params()), found: list(&params) });
    }
    if let Some(bn) = &layer.batch_norm {
        let Op::Conv2d(c) = &layer.op else { return Err(PlanProblem::FoldedBatchNorm) };
        let folded: Vec<_> = bn.params.iter().map(|p| (p.kind, p.shape.clone())).collect();
        if folded != (Op::BatchNorm { channels: c.out_channels, eps: bn.eps, momentum: 0.0 }).params() {
            return Err(PlanProblem::FoldedBatchNorm);
        }
    }
    check_shapes(layer, own_inputs)
}

/// A shape problem about `what`.
fn mismatch(what: &'static str, expected: impl Into<String>, found: &Shape) -> PlanProblem {
    PlanProblem::Shape { what, expected: expected.into(), found: found.clone() }
}

/// The shapes the op's kernels compute with: images where they need `[C, H, W]`, channel counts
/// that agree with the attributes, results the shape of their input where the op keeps it.
fn check_shapes(layer: &Layer, own_inputs: usize) -> Result<(), PlanProblem> {
    if layer.shape.dims().is_empty() || layer.shape.dims().contains(&0) {
        return Err(mismatch("the result", "at least one dim, none of them 0", &layer.shape));
    }
    match &layer.op {
        Op::Conv2d(c) => {
            let [ic, ih, iw] = image(&layer.inputs[0].shape, "the convolution's input")?;
            let p = &c.padding;
            let oh = window::output_len(ih, c.kernel[0], c.stride[0], (p.top, p.bottom), c.dilation[0], false);
            let ow = window::output_len(iw, c.kernel[1], c.stride[1], (p.left, p.right), c.dilation[1], false);
            let (Ok(oh), Ok(ow)) = (oh, ow) else {
                return Err(mismatch("the convolution's input", "at least the dilated kernel", &layer.inputs[0].shape));
            };
            if ic != c.in_channels {
                return Err(mismatch(
                    "the convolution's input",
                    format!("{} channels", c.in_channels),
                    &layer.inputs[0].shape,
                ));
            }
            expect_shape(&layer.shape, &[c.out_channels, oh, ow], "the convolution's output")?;
        }
        Op::Linear { in_features, out_features, .. } => {
            expect_elements(&layer.inputs[0].shape, *in_features, "the linear layer's input")?;
            expect_shape(&layer.shape, &[*out_features], "the linear layer's output")?;
        }
        Op::MaxPool(p) | Op::AvgPool(p) => {
            let [c, ih, iw] = image(&layer.inputs[0].shape, "the pooling's input")?;
            let pad = &p.padding;
            let oh =
                window::output_len(ih, p.kernel[0], p.stride[0], (pad.top, pad.bottom), p.dilation[0], p.ceil_mode);
            let ow =
                window::output_len(iw, p.kernel[1], p.stride[1], (pad.left, pad.right), p.dilation[1], p.ceil_mode);
            let (Ok(oh), Ok(ow)) = (oh, ow) else {
                return Err(mismatch("the pooling's input", "at least the dilated window", &layer.inputs[0].shape));
            };
            expect_shape(&layer.shape, &[c, oh, ow], "the pooling's output")?;
        }
        Op::AdaptiveAvgPool { size } | Op::AdaptiveMaxPool { size } => {
            let [c, _, _] = image(&layer.inputs[0].shape, "the pooling's input")?;
            expect_shape(&layer.shape, &[c, size[0], size[1]], "the pooling's output")?;
        }
        Op::Chunk { chunks, index } => {
            let [c, h, w] = image(&layer.inputs[0].shape, "the chunk's input")?;
            if *chunks == 0 || c % chunks != 0 || index >= chunks {
                let expected = format!("channels divisible into {chunks} chunks");
                return Err(mismatch("the chunk's input", expected, &layer.inputs[0].shape));
            }
            expect_shape(&layer.shape, &[c / chunks, h, w], "the chunk's output")?;
        }
        Op::ChannelShuffle { groups } => {
            let [c, _, _] = image(&layer.shape, "the shuffled tensor")?;
            expect_shape(&layer.inputs[0].shape, layer.shape.dims(), "the shuffled input")?;
            if *groups == 0 || c % groups != 0 {
                let expected = format!("channels divisible into {groups} groups");
                return Err(mismatch("the shuffled tensor", expected, &layer.shape));
            }
        }
        _ => return check_channel_ops(layer, own_inputs),
    }
    Ok(())
}

/// The ops that keep positions and combine or scale channels: joins, per-channel affines, and the
/// ops whose result has their input's shape.
fn check_channel_ops(layer: &Layer, own_inputs: usize) -> Result<(), PlanProblem> {
    let (channels, positions) = layer.shape.channels_positions();
    let input = layer.inputs.first().map(|o| &o.shape);
    match &layer.op {
        Op::Concat => {
            let mut sum = 0;
            for operand in &layer.inputs {
                let (c, p) = operand.shape.channels_positions();
                if p != positions {
                    let expected = format!("{positions} positions per channel");
                    return Err(mismatch("a concatenated operand", expected, &operand.shape));
                }
                sum += c;
            }
            if sum != channels {
                return Err(mismatch("the concat's output", format!("{sum} channels"), &layer.shape));
            }
        }
        Op::Add => {
            for operand in &layer.inputs[..own_inputs] {
                expect_shape(&operand.shape, layer.shape.dims(), "an added operand")?;
            }
        }
        Op::ChannelAffine { scale, shift } if scale.len() != channels || shift.len() != channels => {
            let found = Shape::of(&[scale.len(), shift.len()]);
            return Err(mismatch("the affine's scale and shift", format!("{channels} each"), &found));
        }
        Op::BatchNorm { channels: c, .. } if *c != channels => {
            return Err(mismatch("the batch-norm's tensor", format!("{c} channels"), &layer.shape));
        }
        Op::Flatten => {
            expect_elements(&layer.shape, input.map_or(0, |s| s.elements() as usize), "the flattened tensor")?
        }
        Op::Activation(_)
        | Op::Dropout { .. }
        | Op::StochasticDepth { .. }
        | Op::Softmax
        | Op::LocalResponseNorm { .. } => {
            expect_shape(&layer.shape, input.map_or(&[][..], |s| s.dims()), "the result")?
        }
        _ => {}
    }
    Ok(())
}

fn check_slot(plan: &LayerPlan, layer: &Layer) -> Result<(), PlanProblem> {
    let aliases = matches!(layer.op, Op::Flatten | Op::Dropout { .. } | Op::StochasticDepth { .. });
    let slot = match (layer.slot, layer.op == Op::Flatten) {
        (None, true) => return Ok(()),
        (None, false) if aliases => return Ok(()),
        (Some(_), true) => return Err(PlanProblem::Slot { expected: false }),
        (None, false) => return Err(PlanProblem::Slot { expected: true }),
        (Some(slot), false) => slot,
    };
    let slots = plan.layout.slot_elements.len();
    let Some(&holds) = plan.layout.slot_elements.get(slot.index()) else {
        return Err(PlanProblem::SlotOutOfRange { slot, slots });
    };
    let (c, p) = layer.shape.channels_positions();
    let needs = match layer.into_concat {
        Some(target) => {
            if target.offset + c > target.channels {
                return Err(PlanProblem::ConcatSlice { offset: target.offset, channels: c, target: target.channels });
            }
            target.channels as u64 * p as u64
        }
        None => layer.shape.elements(),
    };
    if needs > holds {
        return Err(PlanProblem::SlotTooSmall { slot, needs, holds });
    }
    Ok(())
}
