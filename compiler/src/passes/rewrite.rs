//! Rebuilding a graph node by node, the way every pass produces its result.

use std::collections::HashMap;

use crate::graph::{Graph, Node, NodeId};

/// What becomes of one node of the old graph.
pub(super) enum Fate {
    /// It stays, as given (its inputs still name old nodes; they are renumbered here).
    Keep(Box<Node>),
    /// It disappears and its readers read this earlier old node instead.
    Merge(NodeId),
    /// It disappears; nothing in inference reads it.
    Drop,
}

/// A new graph with each node's fate applied, handles renumbered, metadata and output carried over.
pub(super) fn rebuild(graph: &Graph, mut fate: impl FnMut(NodeId, &Node) -> Fate) -> Graph {
    let input = graph.node(graph.input);
    let mut out = Graph::new(input.shape.clone(), input.span);
    out.meta = graph.meta.clone();
    out.modules = graph.modules.clone();
    let mut map: Vec<Option<NodeId>> = vec![None; graph.len()];
    map[graph.input.index()] = Some(out.input);
    for (id, node) in graph.nodes().filter(|(id, _)| *id != graph.input) {
        map[id.index()] = match fate(id, node) {
            Fate::Keep(kept) => {
                let mut kept = *kept;
                kept.inputs =
                    kept.inputs.iter().map(|i| map[i.index()].expect("inputs of kept nodes are kept")).collect();
                Some(out.push(kept))
            }
            Fate::Merge(into) => map[into.index()],
            Fate::Drop => None,
        };
    }
    out.output = map[graph.output.index()].expect("the output is kept");
    out
}

/// The common shape of a fusion pass: each node in `merged` disappears into the earlier node it
/// maps to, and every other node is kept with `patch` applied (it changes the nodes that absorb).
pub(super) fn merge_into(
    graph: &Graph,
    merged: &HashMap<NodeId, NodeId>,
    mut patch: impl FnMut(NodeId, &mut Node),
) -> Graph {
    rebuild(graph, |id, node| match merged.get(&id) {
        Some(into) => Fate::Merge(*into),
        None => {
            let mut kept = node.clone();
            patch(id, &mut kept);
            Fate::Keep(Box::new(kept))
        }
    })
}
