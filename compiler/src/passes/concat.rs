//! Pass 5: concat inputs written in place. A convolution or pooling whose only reader is a concat
//! writes its result straight into its channel slice of the concat's output, so the concat copies
//! only its other inputs (the graph's input, values read elsewhere too). Buffer planning gives the
//! producer the concat's buffer.

use std::collections::HashMap;

use super::rewrite::merge_into;
use crate::graph::{ConcatSlice, Graph, NodeId, Op};

/// Whether `op`'s kernels can write into a channel slice of a larger output.
fn writes_slices(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv2d(_) | Op::MaxPool(_) | Op::AvgPool(_) | Op::AdaptiveAvgPool { .. } | Op::AdaptiveMaxPool { .. }
    )
}

/// The graph with each eligible concat input marked to write into its slice.
pub fn concat_in_place(graph: &Graph) -> Graph {
    let readers = graph.readers();
    let mut slices: HashMap<NodeId, ConcatSlice> = HashMap::new();
    for (id, node) in graph.inference_nodes() {
        if node.op != Op::Concat {
            continue;
        }
        let mut offset = 0;
        for input in &node.inputs {
            let producer = graph.node(*input);
            let eligible = writes_slices(&producer.op)
                // The residual operand is read at the output's own index, so it stays separate.
                && !producer.fused.residual
                && producer.fused.into_concat.is_none()
                && readers[input.index()] == [id]
                && *input != graph.output
                && node.inputs.iter().filter(|i| *i == input).count() == 1;
            if eligible {
                slices.insert(*input, ConcatSlice { concat: id, offset });
            }
            offset += producer.shape.dims()[0];
        }
    }
    // No node is removed, so handles keep their numbers and the slices stay valid.
    merge_into(graph, &HashMap::new(), |id, kept| {
        if let Some(slice) = slices.get(&id) {
            kept.fused.into_concat = Some(*slice);
        }
    })
}
