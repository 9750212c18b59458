//! The backward cases written out as JSON, so that another framework can compute the same training
//! steps: each case's graph (ops with their attributes, inputs by node index, parameters by name), its
//! weights, input batch, labels and step options. `tests/fixtures/generate_backward.py` reads this
//! file and computes every step with PyTorch autograd in float64; `tests/conformance.rs` checks both
//! executors against the result.

use cnnc_compiler::graph::{Graph, Op, Pad4, Pool2d};
use cnnc_runtime::Tensor;
use serde_json::{json, Value};

use super::backward::{cases, step_data, BackwardCase};

/// Every backward case as one JSON document: `{"cases": [case, ...]}` (see [`case_json`]).
pub fn backward_cases_json() -> Value {
    json!({ "cases": cases().iter().map(case_json).collect::<Vec<_>>() })
}

/// One case: `family`, `name`, `batch`, `seed`, `step`, `dropout`, the loss's `label_smoothing` and
/// `class_weights` (or null), `nodes` (in index order; dropout draws are keyed by node index),
/// `output` (a node index), `input` (`{shape, data}`, `[N, ...]`), `labels`, and `weights` (by
/// state_dict name, `{shape, data}`).
pub fn case_json(case: &BackwardCase) -> Value {
    let graph = &case.graph;
    let (weights, input, labels) = step_data(case);
    let tensor = |t: &Tensor| json!({ "shape": t.shape, "data": t.data });
    let mut named = serde_json::Map::new();
    let mut names = weights.names();
    names.sort_unstable();
    for name in names {
        named.insert(name.to_string(), tensor(weights.get(name).expect("listed")));
    }
    json!({
        "family": case.family,
        "name": case.name,
        "batch": case.batch,
        "seed": case.options.seed,
        "step": case.options.step,
        "dropout": case.options.dropout,
        "label_smoothing": case.options.loss.label_smoothing,
        "class_weights": case.options.loss.class_weights,
        "nodes": nodes_json(graph),
        "output": graph.output.index(),
        "input": tensor(&input),
        "labels": labels,
        "weights": named,
    })
}

/// The graph's nodes in index order: `op` and its attributes, `inputs`, `shape` (batch left out) and
/// `params` (`{name, kind}`, kind a state_dict suffix).
fn nodes_json(graph: &Graph) -> Vec<Value> {
    graph
        .nodes()
        .map(|(_, node)| {
            let mut value = op_json(&node.op);
            let fields = value.as_object_mut().expect("op_json gives an object");
            fields.insert("inputs".into(), json!(node.inputs.iter().map(|i| i.index()).collect::<Vec<_>>()));
            fields.insert("shape".into(), json!(node.shape.dims()));
            let params: Vec<Value> =
                node.params.iter().map(|p| json!({ "name": p.name, "kind": p.kind.suffix() })).collect();
            fields.insert("params".into(), json!(params));
            value
        })
        .collect()
}

/// `[top, bottom, left, right]`.
fn padding(p: &Pad4) -> Value {
    json!([p.top, p.bottom, p.left, p.right])
}

fn pool(op: &str, p: &Pool2d) -> Value {
    json!({
        "op": op,
        "kernel": p.kernel,
        "stride": p.stride,
        "padding": padding(&p.padding),
        "dilation": p.dilation,
        "ceil_mode": p.ceil_mode,
        "count_include_pad": p.count_include_pad,
    })
}

/// An op and its attributes; every op of the language has a spelling here, so a new op cannot be
/// exported silently wrong.
fn op_json(op: &Op) -> Value {
    match op {
        Op::Input => json!({ "op": "input" }),
        Op::Conv2d(c) => json!({
            "op": "conv2d",
            "in_channels": c.in_channels,
            "out_channels": c.out_channels,
            "kernel": c.kernel,
            "stride": c.stride,
            "padding": padding(&c.padding),
            "dilation": c.dilation,
            "groups": c.groups,
            "bias": c.bias,
        }),
        Op::Linear { in_features, out_features, bias } => {
            json!({ "op": "linear", "in_features": in_features, "out_features": out_features, "bias": bias })
        }
        Op::BatchNorm { channels, eps, momentum } => {
            json!({ "op": "batch_norm", "channels": channels, "eps": eps, "momentum": momentum })
        }
        Op::Activation(a) => {
            let slope = match a {
                cnnc_compiler::graph::Activation::LeakyRelu { slope } => Some(*slope),
                _ => None,
            };
            json!({ "op": "activation", "function": a.name(), "slope": slope })
        }
        Op::MaxPool(p) => pool("max_pool", p),
        Op::AvgPool(p) => pool("avg_pool", p),
        Op::AdaptiveAvgPool { size } => json!({ "op": "adaptive_avg_pool", "size": size }),
        Op::AdaptiveMaxPool { size } => json!({ "op": "adaptive_max_pool", "size": size }),
        Op::Flatten => json!({ "op": "flatten" }),
        Op::Dropout { p } => json!({ "op": "dropout", "p": p }),
        Op::StochasticDepth { p } => json!({ "op": "stochastic_depth", "p": p }),
        Op::Concat => json!({ "op": "concat" }),
        Op::Add => json!({ "op": "add" }),
        Op::Mul => json!({ "op": "mul" }),
        Op::ChannelShuffle { groups } => json!({ "op": "channel_shuffle", "groups": groups }),
        Op::Chunk { chunks, index } => json!({ "op": "chunk", "chunks": chunks, "index": index }),
        Op::LocalResponseNorm { size, alpha, beta, k } => {
            json!({ "op": "local_response_norm", "size": size, "alpha": alpha, "beta": beta, "k": k })
        }
        Op::Softmax => json!({ "op": "softmax" }),
        Op::ChannelAffine { scale, shift } => json!({ "op": "channel_affine", "scale": scale, "shift": shift }),
    }
}
