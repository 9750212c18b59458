//! Each pass on a small graph: the listing before and after.

use std::path::Path;

use super::*;
use crate::{compile_bytes, Expanded};

fn graph(body: &str) -> Graph {
    let text = format!("model: t\ninput: [4, 8, 8]\nbody:\n{body}");
    match compile_bytes(Path::new("t.yaml"), text.into_bytes()).result {
        Ok(Expanded::Model(g)) => g,
        other => panic!("the test spec does not compile: {other:?}"),
    }
}

/// Runs `pass` on the spec's graph and compares both listings with the expected text.
fn check(body: &str, pass: fn(&Graph) -> Graph, before: &str, after: &str) {
    let g = graph(body);
    assert_eq!(listing(&g), before, "before");
    assert_eq!(listing(&pass(&g)), after, "after");
}

#[test]
fn inference_only_drops_dropout_and_training_branches() {
    check(
        "  - c: conv(4, 3, pad=1)\n  - dropout(0.5)\n  - training:\n      - aux: conv(2, 1)\n  - relu\n",
        inference_only,
        "%0 = input() [4, 8, 8]\n\
         %1 = conv(%0) c [4, 8, 8]\n\
         %2 = dropout(%1) 1 [4, 8, 8]\n\
         %4 = relu(%2) 3 [4, 8, 8] -> output\n",
        "%0 = input() [4, 8, 8]\n\
         %1 = conv(%0) c [4, 8, 8]\n\
         %2 = relu(%1) 3 [4, 8, 8] -> output\n",
    );
}

#[test]
fn batch_norm_folds_into_the_convolution_it_follows() {
    check(
        "  - c: conv(4, 3, pad=1, bias=false)\n  - b: bn\n  - maxpool(2)\n  - b2: bn\n",
        fold_batch_norm,
        "%0 = input() [4, 8, 8]\n\
         %1 = conv(%0) c [4, 8, 8]\n\
         %2 = bn(%1) b [4, 8, 8]\n\
         %3 = maxpool(%2) 2 [4, 4, 4]\n\
         %4 = bn(%3) b2 [4, 4, 4] -> output\n",
        // The batch-norm after the pooling has no convolution to fold into.
        "%0 = input() [4, 8, 8]\n\
         %1 = conv(%0) c [4, 8, 8] +bn\n\
         %2 = maxpool(%1) 2 [4, 4, 4]\n\
         %3 = bn(%2) b2 [4, 4, 4] -> output\n",
    );
}

#[test]
fn batch_norm_stays_when_the_convolution_has_another_reader() {
    let body = "  - c: conv(4, 1)\n  - concat: [b: bn, identity]\n";
    let g = graph(body);
    assert_eq!(listing(&fold_batch_norm(&g)), listing(&g));
}

#[test]
fn residual_add_fuses_into_the_convolution() {
    check(
        "  - residual: [c: conv(4, 3, pad=1), b: bn]\n  - relu\n",
        |g| fuse_residual_add(&fold_batch_norm(g)),
        "%0 = input() [4, 8, 8]\n\
         %1 = conv(%0) c [4, 8, 8]\n\
         %2 = bn(%1) b [4, 8, 8]\n\
         %3 = add(%2, %0) [4, 8, 8]\n\
         %4 = relu(%3) 1 [4, 8, 8] -> output\n",
        "%0 = input() [4, 8, 8]\n\
         %1 = conv(%0, %0) c [4, 8, 8] +bn +residual\n\
         %2 = relu(%1) 1 [4, 8, 8] -> output\n",
    );
}

#[test]
fn activation_fuses_into_its_only_producer() {
    check(
        "  - c: conv(4, 1)\n  - relu\n  - maxpool(2)\n  - relu6\n  - concat: [identity, sigmoid]\n",
        fuse_activation,
        "%0 = input() [4, 8, 8]\n\
         %1 = conv(%0) c [4, 8, 8]\n\
         %2 = relu(%1) 1 [4, 8, 8]\n\
         %3 = maxpool(%2) 2 [4, 4, 4]\n\
         %4 = relu6(%3) 3 [4, 4, 4]\n\
         %5 = sigmoid(%4) [4, 4, 4]\n\
         %6 = concat(%4, %5) [8, 4, 4] -> output\n",
        // The sigmoid's input has two readers, so it stays a node of its own.
        "%0 = input() [4, 8, 8]\n\
         %1 = conv(%0) c [4, 8, 8] +relu\n\
         %2 = maxpool(%1) 2 [4, 4, 4] +relu6\n\
         %3 = sigmoid(%2) [4, 4, 4]\n\
         %4 = concat(%2, %3) [8, 4, 4] -> output\n",
    );
}

#[test]
fn concat_inputs_write_their_slices_in_place() {
    check(
        "  - c: conv(4, 1)\n  - concat: [identity, a: conv(2, 1), maxpool(3, stride=1, pad=1), [b: conv(3, 1), bn]]\n",
        |g| concat_in_place(&fold_batch_norm(g)),
        "%0 = input() [4, 8, 8]\n\
         %1 = conv(%0) c [4, 8, 8]\n\
         %2 = conv(%1) a [2, 8, 8]\n\
         %3 = maxpool(%1) [4, 8, 8]\n\
         %4 = conv(%1) b [3, 8, 8]\n\
         %5 = bn(%4) 1 [3, 8, 8]\n\
         %6 = concat(%1, %2, %3, %5) [13, 8, 8] -> output\n",
        // `c` is read by the branches too, so the concat copies it; the rest write in place.
        "%0 = input() [4, 8, 8]\n\
         %1 = conv(%0) c [4, 8, 8]\n\
         %2 = conv(%1) a [2, 8, 8] +into %5@4\n\
         %3 = maxpool(%1) [4, 8, 8] +into %5@6\n\
         %4 = conv(%1) b [3, 8, 8] +bn +into %5@10\n\
         %5 = concat(%1, %2, %3, %4) [13, 8, 8] -> output\n",
    );
}

#[test]
fn slices_share_the_concat_buffer_which_outlives_them() {
    let g = lower(&graph("  - concat: [a: conv(2, 1), b: conv(3, 1)]\n  - c: conv(4, 1)\n"));
    let plan = plan_buffers(&g);
    // a, b and the concat share one buffer; the input and the last conv have their own.
    assert_eq!(plan.slot[1], plan.slot[3]);
    assert_eq!(plan.slot[2], plan.slot[3]);
    assert_ne!(plan.slot[0], plan.slot[3]);
    assert_ne!(plan.slot[4], plan.slot[3]);
    assert_eq!(plan.slot_elements[plan.slot[3].unwrap()], 5 * 8 * 8);
}

#[test]
fn lower_runs_every_pass() {
    let g = graph("  - residual: [c: conv(4, 3, pad=1, bias=false), b: bn, relu, c2: conv(4, 3, pad=1), b2: bn]\n  - relu\n  - dropout(0.2)\n");
    assert_eq!(
        listing(&lower(&g)),
        "%0 = input() [4, 8, 8]\n\
         %1 = conv(%0) c [4, 8, 8] +bn +relu\n\
         %2 = conv(%1, %0) c2 [4, 8, 8] +bn +residual +relu -> output\n"
    );
}

#[test]
fn buffers_are_reused_once_their_readers_have_run() {
    // A chain: each value is read only by the next node, so two buffers alternate.
    let g = lower(&graph("  - c1: conv(4, 3, pad=1)\n  - maxpool(1)\n  - c2: conv(4, 3, pad=1)\n  - maxpool(1)\n"));
    let plan = plan_buffers(&g);
    let slots: Vec<Option<usize>> = g.inference_nodes().map(|(id, _)| plan.slot[id.index()]).collect();
    assert_eq!(slots, [Some(0), Some(1), Some(0), Some(1), Some(0)]);
    assert_eq!(plan.total_elements(), 2 * 4 * 8 * 8);
}

#[test]
fn a_value_read_later_keeps_its_buffer() {
    // The input is read by the residual add at the end: its buffer is not reused before that.
    let g =
        lower(&graph("  - residual: [c1: conv(4, 3, pad=1), maxpool(3, stride=1, pad=1), c2: conv(4, 3, pad=1)]\n"));
    let plan = plan_buffers(&g);
    let input = plan.slot[g.input.index()];
    for (id, _) in g.inference_nodes().skip(1) {
        assert_ne!(plan.slot[id.index()], input, "node %{} reuses the input's buffer while it is live", id.index());
    }
    // Each node's buffer differs from its inputs'.
    for (id, node) in g.inference_nodes() {
        for i in &node.inputs {
            assert_ne!(plan.slot[id.index()], plan.slot[i.index()], "node %{} writes over its input", id.index());
        }
    }
}

#[test]
fn flatten_shares_its_input_buffer() {
    let g = lower(&graph("  - c: conv(4, 1)\n  - flatten\n  - fc: linear(3)\n"));
    let plan = plan_buffers(&g);
    assert_eq!(plan.slot[1], plan.slot[2]);
    assert_ne!(plan.slot[2], plan.slot[3]);
}

#[test]
fn planned_buffers_hold_every_live_value_of_the_zoo() {
    // The plan's buffers together are at least the most the lowered graph keeps alive at once, and
    // no value shares a buffer with another value that is alive at the same time.
    for name in ["resnet18", "googlenet", "densenet121", "squeezenet1_1", "mobilenet_v3_small"] {
        let path = format!("{}/../specs/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        let g = match crate::compile_path(Path::new(&path)).unwrap().result {
            Ok(Expanded::Model(g)) => lower(&g),
            other => panic!("{name}: {other:?}"),
        };
        let plan = plan_buffers(&g);
        assert!(plan.total_elements() >= crate::summary::peak_activation_elements(&g), "{name}");
        let last = g.last_uses();
        let owner = |mut id: crate::graph::NodeId| {
            while g.node(id).op == crate::graph::Op::Flatten {
                id = g.node(id).inputs[0];
            }
            id
        };
        // A value is alive from its node to its last reader (through flattens).
        let mut end = vec![0usize; g.len()];
        for (id, _) in g.inference_nodes() {
            let o = owner(id);
            end[o.index()] = end[o.index()].max(last[id.index()]);
        }
        let values: Vec<_> =
            g.inference_nodes().filter(|(_, n)| n.op != crate::graph::Op::Flatten).map(|(id, _)| id).collect();
        // The concat a value is written into (itself for any other value): slices of one concat
        // share its buffer by design, at disjoint channels.
        let target = |id: crate::graph::NodeId| g.node(id).fused.into_concat.map_or(id, |s| s.concat);
        for (i, a) in values.iter().enumerate() {
            for b in &values[i + 1..] {
                let overlap = b.index() <= end[a.index()] && target(*a) != target(*b);
                if overlap {
                    assert_ne!(
                        plan.slot[a.index()],
                        plan.slot[b.index()],
                        "{name}: %{} and %{} share a buffer while both live",
                        a.index(),
                        b.index()
                    );
                }
            }
        }
    }
}
