//! Validation: a small hand-written plan passes, and each way of breaking it is caught with the
//! problem and the layer it is in.

use super::*;
use crate::graph::{Conv2d, FoldedBatchNorm, Pad4, ParamKind};

/// input [3, 8, 8] → conv 3→4 3×3 pad 1 (slot 1) → add of the conv and itself (slot 0) → flatten.
fn plan() -> LayerPlan {
    let conv = Conv2d {
        in_channels: 3,
        out_channels: 4,
        kernel: [3, 3],
        stride: [1, 1],
        padding: Pad4::uniform(1),
        dilation: [1, 1],
        groups: 1,
        bias: true,
    };
    let layer = |path: &str, op: Op, inputs: Vec<Operand>, value: u32, shape: &[usize], slot: Option<u32>| Layer {
        path: path.into(),
        span: Span::default(),
        params: op.params().into_iter().map(|(k, s)| Param::new(&format!("{path}.{}", k.suffix()), k, &s)).collect(),
        op,
        inputs,
        value: ValueId(value),
        shape: Shape::of(shape),
        slot: slot.map(SlotId),
        batch_norm: None,
        residual: false,
        activation: None,
        into_concat: None,
    };
    let image = [4, 8, 8];
    LayerPlan {
        layout: ValueLayout {
            values: 4,
            input: ValueId(0),
            output: ValueId(3),
            input_shape: Shape::of(&[3, 8, 8]),
            output_shape: Shape::of(&[256]),
            slot_elements: vec![256, 256],
        },
        layers: vec![
            layer("", Op::Input, vec![], 0, &[3, 8, 8], Some(0)),
            layer("conv", Op::Conv2d(conv), vec![Operand::new(ValueId(0), &[3, 8, 8])], 1, &image, Some(1)),
            layer(
                "",
                Op::Add,
                vec![Operand::new(ValueId(1), &image), Operand::new(ValueId(1), &image)],
                2,
                &image,
                Some(0),
            ),
            layer("", Op::Flatten, vec![Operand::new(ValueId(2), &image)], 3, &[256], None),
        ],
    }
}

/// The problem validation reports for `plan` after `edit`, and the position of the layer at fault.
fn problem(edit: impl FnOnce(&mut LayerPlan)) -> (Option<usize>, PlanProblem) {
    let mut p = plan();
    edit(&mut p);
    let e = p.validate().expect_err("the edit breaks the plan");
    (e.layer.map(|(index, _, _)| index), e.problem)
}

#[test]
fn a_consistent_plan_is_valid() {
    let valid = plan().validate().expect("valid");
    assert_eq!(valid.layers().len(), 4);
    assert_eq!(valid.params().count(), 2);
}

#[test]
fn values_must_be_computed_once_and_before_they_are_read() {
    let (at, p) = problem(|p| p.layers[1].inputs[0].value = ValueId(2));
    assert_eq!((at, p), (Some(1), PlanProblem::ReadBeforeComputed { value: ValueId(2) }));
    let (at, p) = problem(|p| p.layers[2].value = ValueId(1));
    assert_eq!((at, p), (Some(2), PlanProblem::ValueComputedTwice { value: ValueId(1) }));
    let (at, p) = problem(|p| p.layers[3].inputs[0].value = ValueId(9));
    assert_eq!((at, p), (Some(3), PlanProblem::ValueOutOfRange { value: ValueId(9), values: 4 }));
}

#[test]
fn operands_have_their_producers_shapes() {
    let (at, p) = problem(|p| p.layers[2].inputs[1].shape = Shape::of(&[4, 8, 7]));
    assert_eq!(at, Some(2));
    assert!(matches!(p, PlanProblem::OperandShape { value: ValueId(1), .. }), "{p:?}");
}

#[test]
fn ops_get_the_inputs_and_parameters_their_kernels_assume() {
    let (at, p) = problem(|p| p.layers[1].inputs.push(Operand::new(ValueId(0), &[3, 8, 8])));
    assert_eq!((at, p), (Some(1), PlanProblem::Arity { op: "conv", expected: "one", found: 2 }));
    let add = "at least two";
    let (at, p) = problem(|p| p.layers[2].inputs.clear());
    assert_eq!((at, p), (Some(2), PlanProblem::Arity { op: "add", expected: add, found: 0 }));
    // A lone addend, as the public layer API could build it.
    let (at, p) = problem(|p| p.layers[2].inputs.truncate(1));
    assert_eq!((at, p), (Some(2), PlanProblem::Arity { op: "add", expected: add, found: 1 }));
    let (at, p) = problem(|p| {
        p.layers[2].op = Op::Mul;
        p.layers[2].inputs.truncate(1);
    });
    assert_eq!((at, p), (Some(2), PlanProblem::Arity { op: "mul", expected: "at least two", found: 1 }));
    let (at, p) = problem(|p| {
        p.layers[1].params.pop();
    });
    assert_eq!(at, Some(1));
    assert!(matches!(p, PlanProblem::Params { .. }), "{p:?}");
    let (at, p) = problem(|p| p.layers[1].params[0].kind = ParamKind::RunningMean);
    assert_eq!(at, Some(1));
    assert!(matches!(p, PlanProblem::Params { .. }), "{p:?}");
    let (at, p) = problem(|p| {
        p.layers[1].residual = true;
        p.layers[1].inputs.push(Operand::new(ValueId(0), &[3, 8, 8]));
    });
    assert_eq!(at, Some(1));
    assert!(matches!(p, PlanProblem::Shape { what: "the residual operand", .. }), "{p:?}");
}

#[test]
fn values_fit_their_slots() {
    let (at, p) = problem(|p| p.layers[1].slot = Some(SlotId(5)));
    assert_eq!((at, p), (Some(1), PlanProblem::SlotOutOfRange { slot: SlotId(5), slots: 2 }));
    let (at, p) = problem(|p| p.layout.slot_elements[1] = 255);
    assert_eq!((at, p), (Some(1), PlanProblem::SlotTooSmall { slot: SlotId(1), needs: 256, holds: 255 }));
    let (at, p) = problem(|p| p.layers[2].slot = None);
    assert_eq!((at, p), (Some(2), PlanProblem::Slot { expected: true }));
    let (at, p) = problem(|p| p.layers[3].slot = Some(SlotId(0)));
    assert_eq!((at, p), (Some(3), PlanProblem::Slot { expected: false }));
    let (at, p) = problem(|p| p.layers[1].into_concat = Some(ConcatTarget { channels: 6, offset: 3 }));
    assert_eq!((at, p), (Some(1), PlanProblem::ConcatSlice { offset: 3, channels: 4, target: 6 }));
}

#[test]
fn the_plan_starts_with_the_input_and_computes_the_output() {
    let (at, p) = problem(|p| {
        p.layers.remove(0);
    });
    assert_eq!((at, p), (None, PlanProblem::NoInputLayer));
    let (at, p) = problem(|p| p.layout.output_shape = Shape::of(&[10]));
    assert_eq!((at, p), (None, PlanProblem::Output { value: ValueId(3) }));
    let (at, p) = problem(|p| {
        p.layers.pop();
    });
    assert_eq!((at, p), (None, PlanProblem::Output { value: ValueId(3) }));
}

#[test]
fn errors_name_the_layer() {
    let mut p = plan();
    p.layers[1].slot = Some(SlotId(5));
    let message = p.validate().unwrap_err().to_string();
    assert_eq!(message, "layer 1 (`conv`): writes slot 5, but the layout has 2 slots");
}

#[test]
fn output_sizes_follow_the_window_formulas() {
    // A 3×3 convolution with padding 1 keeps 8×8; 7×8 is not what it computes.
    let (at, p) = problem(|p| {
        p.layers[1].shape = Shape::of(&[4, 7, 8]);
        p.layers[2].inputs[0].shape = Shape::of(&[4, 7, 8]);
    });
    assert_eq!(at, Some(1));
    assert!(matches!(p, PlanProblem::Shape { what: "the convolution's output", .. }), "{p:?}");
    let (at, p) = problem(|p| {
        let Op::Conv2d(c) = &mut p.layers[1].op else { unreachable!() };
        c.groups = 0;
    });
    assert_eq!(at, Some(1));
    assert!(matches!(p, PlanProblem::Shape { what: "the convolution", .. }), "{p:?}");
}

#[test]
fn zero_sized_tensors_and_misplaced_fusions_are_refused() {
    let (at, p) = problem(|p| p.layers[0].shape = Shape::of(&[3, 0, 8]));
    assert_eq!(at, None, "the input no longer matches the layout: {p:?}");
    let (at, p) = problem(|p| {
        p.layers[0].shape = Shape::of(&[3, 0, 8]);
        p.layout.input_shape = Shape::of(&[3, 0, 8]);
    });
    assert_eq!(at, Some(0));
    assert!(matches!(p, PlanProblem::Shape { what: "the result", .. }), "{p:?}");
    let (at, p) = problem(|p| {
        p.layers[2].residual = true;
        p.layers[2].inputs.push(Operand::new(ValueId(1), &[4, 8, 8]));
    });
    assert_eq!((at, p), (Some(2), PlanProblem::Fused { what: "a residual add", op: "add" }));
    let (at, p) = problem(|p| p.layers[2].into_concat = Some(ConcatTarget { channels: 8, offset: 0 }));
    assert_eq!((at, p), (Some(2), PlanProblem::Fused { what: "a concat slice", op: "add" }));
}

#[test]
fn a_folded_batch_norm_has_its_four_tensors() {
    let bn = |kinds: [ParamKind; 4]| FoldedBatchNorm {
        eps: 1e-5,
        params: kinds.iter().map(|k| Param::new(&format!("bn.{}", k.suffix()), *k, &[4])).collect(),
    };
    let right = [ParamKind::Weight, ParamKind::Bias, ParamKind::RunningMean, ParamKind::RunningVar];
    let mut ok = plan();
    ok.layers[1].batch_norm = Some(bn(right));
    assert!(ok.validate().is_ok());
    let (at, p) = problem(|p| p.layers[1].batch_norm = Some(bn([ParamKind::Weight; 4])));
    assert_eq!((at, p), (Some(1), PlanProblem::FoldedBatchNorm));
}

#[test]
fn mul_takes_two_or_more_values() {
    let mut three = plan();
    three.layers[2].op = Op::Mul;
    three.layers[2].inputs.push(Operand::new(ValueId(1), &[4, 8, 8]));
    assert!(three.validate().is_ok(), "the executor, not the plan, decides what it can multiply");
}
