//! A one-line-per-node text form of a graph, for tests that show a pass's before and after.

use std::fmt::Write as _;

use crate::graph::Graph;

/// Each inference node as `%id = op(inputs) path [shape] +fused...`, the output marked.
pub fn listing(graph: &Graph) -> String {
    let mut out = String::new();
    for (id, node) in graph.inference_nodes() {
        let inputs: Vec<String> = node.inputs.iter().map(|i| format!("%{}", i.index())).collect();
        let _ = write!(out, "%{} = {}({})", id.index(), node.op.name(), inputs.join(", "));
        if !node.path.is_empty() {
            let _ = write!(out, " {}", node.path);
        }
        let _ = write!(out, " {}", node.shape);
        if node.fused.batch_norm.is_some() {
            out.push_str(" +bn");
        }
        if node.fused.residual {
            out.push_str(" +residual");
        }
        if let Some(act) = node.fused.activation {
            let _ = write!(out, " +{}", act.name());
        }
        if let Some(slice) = node.fused.into_concat {
            let _ = write!(out, " +into %{}@{}", slice.concat.index(), slice.offset);
        }
        if id == graph.output {
            out.push_str(" -> output");
        }
        out.push('\n');
    }
    out
}
