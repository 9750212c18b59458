use super::*;
use crate::graph::{Activation, Fused, Node, ParamKind, Shape};

/// Appends `op` reading `inputs`, with parameters named `{path}.weight` / `.bias` as the op declares.
fn push(g: &mut Graph, path: &str, op: Op, inputs: &[NodeId], shape: &[usize]) -> NodeId {
    let params = op.params().into_iter().map(|(k, s)| Param::new(&format!("{path}.{}", k.suffix()), k, &s)).collect();
    g.push(Node {
        op,
        inputs: inputs.to_vec(),
        shape: Shape::of(shape),
        path: path.into(),
        params,
        span: Span::default(),
        training_only: false,
        fused: Fused::default(),
    })
}

fn linear(i: usize, o: usize) -> Op {
    Op::Linear { in_features: i, out_features: o, bias: true }
}

/// input [4] → a: linear 4→4 → relu ─┬─ b: linear 4→4 ─ add → c: linear 4→2
///                                   └────────────────┘
fn residual_net() -> Graph {
    let mut g = Graph::new(Shape::of(&[4]), Span::default());
    let a = push(&mut g, "a", linear(4, 4), &[NodeId::INPUT], &[4]);
    let r = push(&mut g, "", Op::Activation(Activation::Relu), &[a], &[4]);
    let b = push(&mut g, "b", linear(4, 4), &[r], &[4]);
    let s = push(&mut g, "", Op::Add, &[b, r], &[4]);
    g.output = push(&mut g, "c", linear(4, 2), &[s], &[2]);
    g
}

fn names(params: &[Param]) -> Vec<&str> {
    params.iter().map(|p| p.name.as_str()).collect()
}

#[test]
fn everything_trainable_differentiates_every_node_but_the_input() {
    let g = residual_net();
    let back = differentiate(&g, |_| true).unwrap();
    let nodes: Vec<usize> = back.steps.iter().map(|s| s.node.index()).collect();
    assert_eq!(nodes, vec![5, 4, 3, 2, 1]);
    assert_eq!(names(&back.trainable), ["a.weight", "a.bias", "b.weight", "b.bias", "c.weight", "c.bias"]);
    // The first layer needs no input gradient: nothing below it is trainable.
    assert_eq!(back.steps[4].input_grads, vec![false]);
    assert_eq!(back.steps[1].input_grads, vec![true, true]);
    assert!(!back.needs_grad(g.input));
}

#[test]
fn frozen_layers_get_no_gradients_and_stop_the_input_gradient() {
    let g = residual_net();
    let back = differentiate(&g, |p| !p.name.starts_with("a.")).unwrap();
    assert_eq!(names(&back.trainable), ["b.weight", "b.bias", "c.weight", "c.bias"]);
    let nodes: Vec<usize> = back.steps.iter().map(|s| s.node.index()).collect();
    // add (4) still passes its gradient to b; relu (2) and a (1) do no backward work.
    assert_eq!(nodes, vec![5, 4, 3]);
    assert_eq!(back.steps[1].input_grads, vec![true, false]);
    assert_eq!(back.steps[2].input_grads, vec![false]);
    assert!(!back.needs_grad(g.nodes().nth(2).unwrap().0));
}

#[test]
fn a_head_alone_costs_one_step() {
    let g = residual_net();
    let back = differentiate(&g, |p| p.name.starts_with("c.")).unwrap();
    assert_eq!(back.steps.len(), 1);
    assert_eq!(back.steps[0].input_grads, vec![false]);
    assert_eq!(names(&back.steps[0].param_grads), ["c.weight", "c.bias"]);
}

#[test]
fn running_statistics_are_never_trained() {
    let mut g = Graph::new(Shape::of(&[2, 3, 3]), Span::default());
    let bn = push(&mut g, "bn", Op::BatchNorm { channels: 2, eps: 1e-5, momentum: 0.1 }, &[NodeId::INPUT], &[2, 3, 3]);
    let f = push(&mut g, "", Op::Flatten, &[bn], &[18]);
    g.output = push(&mut g, "fc", linear(18, 3), &[f], &[3]);
    let back = differentiate(&g, |_| true).unwrap();
    assert!(back.trainable.iter().all(|p| matches!(p.kind, ParamKind::Weight | ParamKind::Bias)));
    assert_eq!(names(&back.trainable), ["bn.weight", "bn.bias", "fc.weight", "fc.bias"]);
}

#[test]
fn refusals_name_the_problem() {
    let g = residual_net();
    assert_eq!(differentiate(&g, |_| false), Err(AutodiffError::NothingTrainable));
    let mut g = Graph::new(Shape::of(&[1, 4, 4]), Span::default());
    g.output = push(&mut g, "", Op::Activation(Activation::Relu), &[NodeId::INPUT], &[1, 4, 4]);
    let e = differentiate(&g, |_| true).unwrap_err();
    assert_eq!(e, AutodiffError::OutputNotLogits { shape: vec![1, 4, 4] });
    assert!(e.to_string().contains("class scores [K]"));
    let mut g = residual_net();
    let mut lowered = g.nodes().nth(1).unwrap().1.clone();
    lowered.fused.activation = Some(Activation::Relu);
    let id = g.push(lowered);
    g.output = id;
    assert!(matches!(differentiate(&g, |_| true), Err(AutodiffError::Lowered { node, .. }) if node == "a"));
}

#[test]
fn step_memory_keeps_what_backward_reads() {
    let g = residual_net();
    let all = differentiate(&g, |_| true).unwrap();
    let head = differentiate(&g, |p| p.name.starts_with("c.")).unwrap();
    let (m_all, m_head) = (step_memory(&g, &all, 2), step_memory(&g, &head, 2));
    // Values are 4 floats × batch 2 × 4 bytes = 32 bytes (logits 16).
    // Training the head keeps only c's input (the add) and the logits.
    assert_eq!(m_head.saved_bytes, 32 + 16);
    // Training everything also keeps the input (a's weight gradient), a's output (relu's backward)
    // and relu's output (b's weight gradient).
    assert_eq!(m_all.saved_bytes, 4 * 32 + 16);
    assert!(m_all.peak_bytes > m_head.peak_bytes);
    let step = &all.steps[0];
    assert_eq!(saved(g.node(step.node), step), Saved { inputs: vec![true], output: false });
}

/// `residual_net` with a training-only head `aux: linear 4→2` on the relu (node 6).
fn net_with_aux_head(in_loss: bool) -> Graph {
    let mut g = residual_net();
    let relu = g.nodes().nth(2).unwrap().0;
    let params = linear(4, 2).params().into_iter().map(|(k, s)| Param::new(&format!("aux.{}", k.suffix()), k, &s));
    let aux = g.push(Node {
        op: linear(4, 2),
        inputs: vec![relu],
        shape: Shape::of(&[2]),
        path: "aux".into(),
        params: params.collect(),
        span: Span::default(),
        training_only: true,
        fused: Fused::default(),
    });
    if in_loss {
        g.aux_losses.push(crate::graph::AuxLoss { node: aux, weight: 0.3 });
    }
    g
}

#[test]
fn an_auxiliary_head_in_the_loss_is_differentiated_with_its_weight() {
    let g = net_with_aux_head(true);
    let back = differentiate(&g, |_| true).unwrap();
    let aux = g.aux_losses[0].node;
    assert_eq!(aux.index(), 6);
    assert_eq!(back.losses, vec![(g.output, 1.0), (aux, 0.3)]);
    let nodes: Vec<usize> = back.steps.iter().map(|s| s.node.index()).collect();
    assert_eq!(nodes, vec![6, 5, 4, 3, 2, 1]);
    assert_eq!(&names(&back.trainable)[..2], ["a.weight", "a.bias"]);
    assert!(names(&back.trainable).contains(&"aux.weight"));
}

#[test]
fn a_training_branch_outside_the_loss_takes_no_part() {
    let g = net_with_aux_head(false);
    let back = differentiate(&g, |_| true).unwrap();
    assert_eq!(back.losses, vec![(g.output, 1.0)]);
    assert!(!names(&back.trainable).contains(&"aux.weight"));
    assert_eq!(g.training_nodes().count(), 6);
}

#[test]
fn an_auxiliary_head_must_score_the_outputs_classes() {
    let mut g = residual_net();
    let relu = g.nodes().nth(2).unwrap().0;
    let aux = push(&mut g, "aux", linear(4, 3), &[relu], &[3]);
    g.aux_losses.push(crate::graph::AuxLoss { node: aux, weight: 0.4 });
    let err = differentiate(&g, |_| true).unwrap_err();
    assert!(matches!(err, AutodiffError::AuxShape { ref head, .. } if head == "aux"), "{err:?}");
}
