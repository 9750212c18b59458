//! Buffer planning by liveness. Each value gets a buffer slot; a slot is reused once every reader
//! of the value in it has run. A value's slot is never one of its own inputs' slots (it is
//! allocated before they are released), `flatten` shares its input's slot (it only reshapes), and a
//! producer that writes into a concat's slice shares the concat's slot, which is taken when the
//! first such producer runs.

use crate::graph::{Graph, NodeId, Op};

/// Where every inference value lives.
#[derive(Clone, Debug, PartialEq)]
pub struct BufferPlan {
    /// Each node's slot (`None` for nodes outside inference).
    pub slot: Vec<Option<usize>>,
    /// Each slot's size in f32 elements for one batch item (the largest value it ever holds).
    pub slot_elements: Vec<u64>,
}

impl BufferPlan {
    /// Elements of all slots together, for one batch item: the planned activation memory / 4.
    pub fn total_elements(&self) -> u64 {
        self.slot_elements.iter().sum()
    }
}

/// The node whose buffer holds `id`'s value (through `flatten`, which shares its input's).
fn owner(graph: &Graph, mut id: NodeId) -> NodeId {
    while graph.node(id).op == Op::Flatten {
        id = graph.node(id).inputs[0];
    }
    id
}

/// A free slot for `need` elements: the smallest free one that fits; else the largest free one,
/// grown; else a new one.
fn take(plan: &mut BufferPlan, free: &mut Vec<usize>, need: u64) -> usize {
    let fits = free.iter().copied().filter(|s| plan.slot_elements[*s] >= need).min_by_key(|s| plan.slot_elements[*s]);
    match fits.or_else(|| free.iter().copied().max_by_key(|s| plan.slot_elements[*s])) {
        Some(s) => {
            free.retain(|f| *f != s);
            plan.slot_elements[s] = plan.slot_elements[s].max(need);
            s
        }
        None => {
            plan.slot_elements.push(need);
            plan.slot_elements.len() - 1
        }
    }
}

/// Plans slots for the graph's inference values, in node order, best fit among free slots.
pub fn plan_buffers(graph: &Graph) -> BufferPlan {
    // The last node that reads each owner's buffer, directly or through a flatten.
    let mut last_read = vec![0usize; graph.len()];
    for (id, node) in graph.inference_nodes() {
        for input in &node.inputs {
            let o = owner(graph, *input).index();
            last_read[o] = last_read[o].max(id.index());
        }
    }
    last_read[owner(graph, graph.output).index()] = usize::MAX;
    let mut plan = BufferPlan { slot: vec![None; graph.len()], slot_elements: Vec::new() };
    let mut free: Vec<usize> = Vec::new();
    let mut released: Vec<usize> = Vec::new();
    for (id, node) in graph.inference_nodes() {
        if node.op == Op::Flatten {
            plan.slot[id.index()] = plan.slot[owner(graph, id).index()];
        } else if let Some(slice) = node.fused.into_concat {
            let concat = slice.concat.index();
            if plan.slot[concat].is_none() {
                plan.slot[concat] = Some(take(&mut plan, &mut free, graph.node(slice.concat).shape.elements()));
            }
            plan.slot[id.index()] = plan.slot[concat];
        } else if plan.slot[id.index()].is_none() {
            plan.slot[id.index()] = Some(take(&mut plan, &mut free, node.shape.elements()));
        }
        // Release the buffers whose last reader this node is (a slice's buffer is the concat's).
        for input in &node.inputs {
            let o = owner(graph, *input);
            if last_read[o.index()] == id.index() && graph.node(o).fused.into_concat.is_none() {
                released.extend(plan.slot[o.index()]);
            }
        }
        // A value nothing reads is released at once (its slot was still taken while it was written).
        let unread = last_read[id.index()] == 0 && id != owner(graph, graph.output);
        if node.op != Op::Flatten && node.fused.into_concat.is_none() && unread {
            released.extend(plan.slot[id.index()]);
        }
        for s in released.drain(..) {
            if !free.contains(&s) {
                free.push(s);
            }
        }
    }
    plan
}
