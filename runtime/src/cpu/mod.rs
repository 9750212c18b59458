//! The CPU reference executor: every op written out plainly, f32 data with f64 accumulation.
//! It is the oracle for the GPU kernels and what `cnnc run --cpu` uses. It runs checked graphs as
//! they are and lowered ones too (work fused into a node runs after the node's op), which is how
//! the lowering passes are shown to leave the numbers unchanged.

pub(crate) mod backward;
pub(crate) mod ops;

use cnnc_ir::graph::{Graph, Node, Op};

use crate::weights::Weights;
use crate::{fold, RuntimeError, Tensor};

/// Runs the graph's inference nodes on a batch; returns the output node's tensor.
pub fn run(graph: &Graph, weights: &Weights, input: &Tensor) -> Result<Tensor, RuntimeError> {
    run_inspecting(graph, weights, input, |_, _| {})
}

/// The first layer, in the order the graph runs them, whose weights or whose output on `input`
/// hold a value that is not finite (NaN or infinite): its path and what was found. `None` when
/// everything is finite.
///
/// # Errors
/// What [`run`] reports.
pub fn first_non_finite(
    graph: &Graph,
    weights: &Weights,
    input: &Tensor,
) -> Result<Option<(String, String)>, RuntimeError> {
    for (id, node) in graph.inference_nodes() {
        for p in graph.node_params(id) {
            if let Some(v) = weights.get(&p.name).and_then(|t| t.data.iter().find(|v| !v.is_finite())) {
                return Ok(Some((node.path.clone(), format!("its weight `{}` holds {v}", p.name))));
            }
        }
    }
    let mut found = None;
    run_inspecting(graph, weights, input, |node, out| {
        if found.is_none() {
            if let Some(v) = out.data.iter().find(|v| !v.is_finite()) {
                found = Some((node.path.clone(), format!("its output holds {v}")));
            }
        }
    })?;
    Ok(found)
}

/// As [`run`], handing each node's output to `inspect` as it is computed.
fn run_inspecting(
    graph: &Graph,
    weights: &Weights,
    input: &Tensor,
    mut inspect: impl FnMut(&Node, &Tensor),
) -> Result<Tensor, RuntimeError> {
    let want = graph.node(graph.input).shape.dims();
    if input.shape.len() != want.len() + 1 || &input.shape[1..] != want || input.shape[0] == 0 {
        return Err(RuntimeError::InputShape { item: want.to_vec(), found: input.shape.clone() });
    }
    for p in graph.inference_nodes().flat_map(|(id, _)| graph.node_params(id)) {
        if weights.get(&p.name).is_none() {
            return Err(RuntimeError::MissingWeight { name: p.name.clone() });
        }
    }
    let last_use = graph.last_uses();
    let mut values: Vec<Option<Tensor>> = vec![None; graph.len()];
    for (id, node) in graph.inference_nodes() {
        crate::memory::reserve_output::<f32>(node, input.shape[0])?;
        let inputs: Vec<&Tensor> =
            node.inputs.iter().map(|i| values[i.index()].as_ref().expect("inputs run before their users")).collect();
        let param = |suffix: &str| {
            node.params
                .iter()
                .find(|p| p.kind.suffix() == suffix)
                .and_then(|p| weights.get(&p.name))
                .expect("parameters checked above")
        };
        let out = match &node.op {
            Op::Input => input.clone(),
            Op::Conv2d(c) => {
                let bias = c.bias.then(|| param("bias"));
                match &node.fused.batch_norm {
                    Some(bn) => {
                        let (w, b) =
                            fold::fold_into_conv(param("weight"), bias, bn, weights).expect("parameters checked above");
                        ops::conv2d(inputs[0], c, &w, Some(&b))
                    }
                    None => ops::conv2d(inputs[0], c, param("weight"), bias),
                }
            }
            Op::Linear { bias, .. } => ops::linear(inputs[0], param("weight"), bias.then(|| param("bias"))),
            Op::BatchNorm { eps, .. } => ops::batch_norm(
                inputs[0],
                param("weight"),
                param("bias"),
                param("running_mean"),
                param("running_var"),
                *eps,
            ),
            Op::Activation(a) => ops::activation(inputs[0], *a),
            Op::MaxPool(p) => ops::max_pool(inputs[0], p),
            Op::AvgPool(p) => ops::avg_pool(inputs[0], p),
            Op::AdaptiveAvgPool { size } => ops::adaptive_pool(inputs[0], *size, false),
            Op::AdaptiveMaxPool { size } => ops::adaptive_pool(inputs[0], *size, true),
            Op::Flatten => {
                let t = inputs[0];
                Tensor::new(vec![t.batch(), t.item_len()], t.data.clone())
            }
            Op::Dropout { .. } | Op::StochasticDepth { .. } => inputs[0].clone(),
            Op::Concat => ops::concat(&inputs),
            Op::Add => ops::add(&inputs),
            Op::Mul => ops::mul(&inputs),
            Op::ChannelShuffle { groups } => ops::channel_shuffle(inputs[0], *groups),
            Op::Chunk { chunks, index } => ops::chunk(inputs[0], *chunks, *index),
            Op::LocalResponseNorm { size, alpha, beta, k } => ops::lrn(inputs[0], *size, *alpha, *beta, *k),
            Op::Softmax => ops::softmax(inputs[0]),
            Op::ChannelAffine { scale, shift } => ops::channel_affine(inputs[0], scale, shift),
        };
        let out = if node.fused.residual { ops::add(&[&out, inputs[inputs.len() - 1]]) } else { out };
        let out = match node.fused.activation {
            Some(a) => ops::activation(&out, a),
            None => out,
        };
        inspect(node, &out);
        values[id.index()] = Some(out);
        for input in &node.inputs {
            if last_use[input.index()] == id.index() {
                values[input.index()] = None;
            }
        }
    }
    Ok(values[graph.output.index()].take().expect("the output node runs"))
}
