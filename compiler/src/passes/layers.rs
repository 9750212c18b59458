//! The last lowering step: the lowered graph spelled out as a [`LayerPlan`] (the types live in
//! `cnnc-ir`), one [`Layer`] per inference node, and validated once.

use cnnc_ir::plan::{ConcatTarget, Layer, LayerPlan, Operand, PlanError, SlotId, ValidPlan, ValueId, ValueLayout};

use super::{lower, plan_buffers};
use crate::graph::{Graph, NodeId, Op};

/// The whole back end for inference: lowers a checked graph ([`lower`]), plans its buffers, spells
/// out its layers and validates the plan.
///
/// # Errors
/// A [`PlanError`] means the passes produced an inconsistent plan: a compiler bug, reported rather
/// than run.
pub fn inference_plan(graph: &Graph) -> Result<ValidPlan, PlanError> {
    layer_plan(&lower(graph)).validate()
}

/// The layer plan of an already lowered graph.
pub fn layer_plan(lowered: &Graph) -> LayerPlan {
    let buffers = plan_buffers(lowered);
    let operand =
        |id: NodeId, in_place: bool| Operand { value: value_id(id), shape: lowered.node(id).shape.clone(), in_place };
    let layers = lowered
        .inference_nodes()
        .map(|(id, node)| Layer {
            path: node.path.clone(),
            span: node.span,
            op: node.op.clone(),
            inputs: node
                .inputs
                .iter()
                .map(|i| {
                    let in_place = node.op == Op::Concat && lowered.node(*i).fused.into_concat.is_some();
                    operand(*i, in_place)
                })
                .collect(),
            value: value_id(id),
            shape: node.shape.clone(),
            slot: if node.op == Op::Flatten { None } else { buffers.slot[id.index()].map(|s| SlotId(s as u32)) },
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
        input: value_id(lowered.input),
        output: value_id(lowered.output),
        input_shape: lowered.node(lowered.input).shape.clone(),
        output_shape: lowered.node(lowered.output).shape.clone(),
        slot_elements: buffers.slot_elements,
    };
    LayerPlan { layout, layers }
}

/// Values are numbered as the lowered graph's nodes.
fn value_id(id: NodeId) -> ValueId {
    ValueId(id.index() as u32)
}
