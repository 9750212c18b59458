//! The figures `cnnc summary` reports: per-layer rows, totals, the weight table, peak and planned
//! activation memory.

use cnnc_ir::autodiff::{differentiate, step_memory};

use crate::attributes::{self, Attribute};
use crate::graph::{Graph, NodeId, Op, Shape};
use crate::Model;

/// What one training step costs, everything trainable (PyTorch's default).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSummary {
    /// Parameters that get gradients (f32 each, and one gradient each).
    pub trainable_params: u64,
    /// Bytes of optimizer state: SGD with momentum keeps one float per parameter, Adam and AdamW two.
    pub sgd_momentum_state_bytes: u64,
    pub adam_state_bytes: u64,
    /// The most bytes of activations and activation gradients live at once during a step (forward
    /// values kept until the last backward rule that reads them), for the batch given.
    pub peak_step_activation_bytes: u64,
    /// Forward values kept for the backward pass when the forward ends.
    pub saved_activation_bytes: u64,
}

/// The training figures for `graph` at `batch`, or why it cannot be trained (the autodiff error's
/// message).
pub fn train_summary(graph: &Graph, batch: u64) -> Result<TrainSummary, String> {
    let backward = differentiate(graph, |_| true).map_err(|e| e.to_string())?;
    let trainable_params: u64 = backward.trainable.iter().map(|p| p.shape.iter().product::<usize>() as u64).sum();
    let memory = step_memory(graph, &backward, batch);
    Ok(TrainSummary {
        trainable_params,
        sgd_momentum_state_bytes: trainable_params * 4,
        adam_state_bytes: trainable_params * 8,
        peak_step_activation_bytes: memory.peak_bytes,
        saved_activation_bytes: memory.saved_bytes,
    })
}

/// One row of the summary table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub path: String,
    pub op: &'static str,
    /// The attributes the checker resolved, in PyTorch's names (see [`crate::attributes`]).
    pub attributes: Vec<(&'static str, Attribute)>,
    pub shape: Shape,
    pub params: u64,
    pub macs: u64,
}

/// A model's summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub name: String,
    pub input: Shape,
    pub output: Shape,
    pub rows: Vec<Row>,
    /// Trainable parameters (running statistics excluded, as PyTorch's `parameters()`).
    pub params: u64,
    /// Multiply-accumulates of conv and linear layers, batch 1.
    pub macs: u64,
    /// Every tensor a checkpoint holds: name and shape.
    pub weights: Vec<(String, Vec<usize>)>,
    /// Bytes of f32 activations alive at once at the worst point, for the batch given.
    pub peak_activation_bytes: u64,
    /// Bytes of the activation buffers executors allocate: the slots of the validated plan, which
    /// hold the lowered graph's values reused by liveness ([`crate::passes::plan_buffers`]).
    pub planned_activation_bytes: u64,
    /// How many activation buffers that plan uses.
    pub activation_buffers: usize,
    pub batch: u64,
}

/// Summarises a compiled model for a batch size: layers, parameters and MACs from its checked graph,
/// planned activation memory from its validated plan.
pub fn summarize(model: &Model, batch: u64) -> Summary {
    let graph = &model.graph;
    let rows = graph
        .inference_nodes()
        .filter(|(_, n)| n.op != Op::Input)
        .map(|(_, n)| Row {
            path: n.path.clone(),
            op: n.op.name(),
            attributes: attributes::of(&n.op),
            shape: n.shape.clone(),
            params: n
                .params
                .iter()
                .filter(|p| p.kind.is_trainable())
                .map(|p| p.shape.iter().product::<usize>() as u64)
                .sum(),
            macs: n.op.macs(&n.shape),
        })
        .collect::<Vec<_>>();
    let slot_elements = &model.plan.layout().slot_elements;
    let weights: Vec<(String, Vec<usize>)> = graph.weights().map(|p| (p.name.clone(), p.shape.clone())).collect();
    let params =
        graph.weights().filter(|p| p.kind.is_trainable()).map(|p| p.shape.iter().product::<usize>() as u64).sum();
    Summary {
        name: graph.meta.name.clone(),
        input: graph.node(graph.input).shape.clone(),
        output: graph.node(graph.output).shape.clone(),
        macs: rows.iter().map(|r| r.macs).sum(),
        rows,
        params,
        weights,
        peak_activation_bytes: peak_activation_elements(graph).saturating_mul(4).saturating_mul(batch),
        planned_activation_bytes: slot_elements.iter().sum::<u64>().saturating_mul(4).saturating_mul(batch),
        activation_buffers: slot_elements.len(),
        batch,
    }
}

/// The most activation elements alive at once when inference nodes run in order and each
/// output is freed after its last reader (no buffer sharing between live tensors).
pub fn peak_activation_elements(graph: &Graph) -> u64 {
    let last_use = graph.last_uses();
    let mut frees: Vec<Vec<NodeId>> = vec![Vec::new(); graph.len()];
    for (id, _) in graph.inference_nodes() {
        if let Some(slot) = frees.get_mut(last_use[id.index()]) {
            slot.push(id);
        }
    }
    let (mut live, mut peak) = (0u64, 0u64);
    for (id, node) in graph.inference_nodes() {
        live += node.shape.elements();
        peak = peak.max(live);
        for freed in &frees[id.index()] {
            live -= graph.node(*freed).shape.elements();
        }
    }
    peak
}
