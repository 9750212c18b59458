//! Pass 2: a batch-norm that is the only reader of a convolution is folded into it. The graph
//! records which batch-norm (its parameters and epsilon); executors scale the convolution's weights
//! and bias by it when they load them.

use std::collections::HashMap;

use super::rewrite::merge_into;
use crate::graph::{FoldedBatchNorm, Graph, NodeId, Op};

/// The graph with every foldable batch-norm folded into its convolution.
pub fn fold_batch_norm(graph: &Graph) -> Graph {
    let readers = graph.readers();
    // Convolution → the batch-norm folded into it.
    let mut folds: HashMap<NodeId, NodeId> = HashMap::new();
    for (id, node) in graph.inference_nodes() {
        let Op::BatchNorm { .. } = node.op else { continue };
        let conv = node.inputs[0];
        let producer = graph.node(conv);
        if matches!(producer.op, Op::Conv2d(_))
            && producer.fused.is_empty()
            && readers[conv.index()] == [id]
            && conv != graph.output
        {
            folds.insert(conv, id);
        }
    }
    let folded: HashMap<NodeId, NodeId> = folds.iter().map(|(conv, bn)| (*bn, *conv)).collect();
    merge_into(graph, &folded, |id, kept| {
        if let Some(bn) = folds.get(&id) {
            let bn = graph.node(*bn);
            let Op::BatchNorm { eps, .. } = bn.op else { unreachable!("folds hold batch-norms") };
            kept.fused.batch_norm = Some(FoldedBatchNorm { eps, params: bn.params.clone() });
        }
    })
}
