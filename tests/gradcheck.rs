//! The CPU reference's gradients against finite differences in f64 (PyTorch's `gradcheck` method):
//! for every op and attribute combination, a small model `input → 1×1 conv → op → flatten → linear`
//! trains every parameter, so the first convolution's gradients check the op's input gradient and
//! the op's own parameters are checked directly. Central differences with step 1e-6 are accurate
//! to about 1e-9 here; the analytic gradients must agree within 1e-6 absolute plus 1e-5 relative.

use cnnc::compiler::graph::{Activation, Graph, Op, Pad4, Pool2d};
use cnnc::compiler::ir::autodiff::differentiate;
use cnnc::conformance::net::{self, Net, Value};
use cnnc::runtime::train::{self, CrossEntropy, StepOptions};
use cnnc::runtime::{synthetic, Tensor};

const BATCH: usize = 2;
const CLASSES: usize = 3;
const STEP: f64 = 1e-6;
/// Elements checked per tensor (evenly spread; all of them when a tensor is smaller).
const SAMPLES: usize = 24;

/// Builds `input → 1×1 conv → body → flatten → linear(CLASSES)` and checks every gradient.
fn check(name: &str, input: &[usize], body: impl FnOnce(&mut Net, Value) -> Value) {
    check_with(name, input, &StepOptions::default(), body);
}

fn check_with(name: &str, input: &[usize], options: &StepOptions, body: impl FnOnce(&mut Net, Value) -> Value) {
    let (mut net, x) = Net::new(input);
    let x = net.apply(x, Op::Conv2d(net::conv(input[0], 1)));
    let y = body(&mut net, x);
    let y = if net.shape(y).dims().len() > 1 { net.apply(y, Op::Flatten) } else { y };
    let out = net.apply(y, net::linear(CLASSES, true));
    let graph = net.finish(out);
    gradcheck(name, &graph, options);
}

fn loss(graph: &Graph, weights: &cnnc::runtime::weights::Weights<f64>, x: &Tensor<f64>, options: &StepOptions) -> f64 {
    let back = differentiate(graph, |_| true).unwrap();
    train::step(graph, &back, weights, x, &labels(), options).unwrap().loss
}

fn labels() -> Vec<usize> {
    (0..BATCH).map(|b| (b * 2 + 1) % CLASSES).collect()
}

fn gradcheck(name: &str, graph: &Graph, options: &StepOptions) {
    let back = differentiate(graph, |_| true).unwrap();
    let weights = synthetic::weights(graph, 3).convert::<f64>();
    let mut shape = vec![BATCH];
    shape.extend(graph.node(graph.input).shape.dims());
    let x = synthetic::input(5, shape).convert::<f64>();
    let result = train::step(graph, &back, &weights, &x, &labels(), options).unwrap();
    assert!(result.loss.is_finite(), "{name}: loss {}", result.loss);
    assert_eq!(result.gradients.len(), back.trainable.len(), "{name}: one gradient per trainable parameter");
    for p in &back.trainable {
        let analytic = result.gradients.get(&p.name).unwrap();
        assert_eq!(analytic.shape, p.shape, "{name}: gradient of {} has the parameter's shape", p.name);
        let len = analytic.len();
        let picks: Vec<usize> =
            if len <= SAMPLES { (0..len).collect() } else { (0..SAMPLES).map(|i| i * len / SAMPLES).collect() };
        for i in picks {
            let mut moved = weights.clone();
            moved.get_mut(&p.name).unwrap().data[i] += STEP;
            let up = loss(graph, &moved, &x, options);
            moved.get_mut(&p.name).unwrap().data[i] -= 2.0 * STEP;
            let down = loss(graph, &moved, &x, options);
            let numeric = (up - down) / (2.0 * STEP);
            let got = analytic.data[i];
            assert!(
                (got - numeric).abs() <= 1e-6 + 1e-5 * numeric.abs(),
                "{name}: ∂loss/∂{}[{i}] is {got:e}, finite differences give {numeric:e}",
                p.name
            );
        }
    }
}

#[test]
fn convolutions() {
    use cnnc::compiler::graph::Conv2d;
    let cases: Vec<(&str, Conv2d)> = vec![
        ("3x3", net::conv(4, 3)),
        (
            "stride 2, asymmetric padding",
            Conv2d { stride: [2, 2], padding: Pad4 { top: 1, bottom: 0, left: 2, right: 1 }, ..net::conv(4, 3) },
        ),
        ("dilation 2, no bias", Conv2d { dilation: [2, 2], padding: Pad4::uniform(2), bias: false, ..net::conv(2, 3) }),
        ("3x5 kernel, stride (1, 2)", Conv2d { kernel: [3, 5], stride: [1, 2], ..net::conv(3, 3) }),
        ("groups 2", Conv2d { groups: 2, padding: Pad4::uniform(1), ..net::conv(6, 3) }),
        (
            "depthwise, multiplier 2, stride 2",
            Conv2d { groups: 4, stride: [2, 2], padding: Pad4::uniform(1), ..net::conv(8, 3) },
        ),
        ("1x1", net::conv(5, 1)),
    ];
    for (name, c) in cases {
        check(name, &[4, 7, 6], |net, x| net.apply(x, Op::Conv2d(c)));
    }
}

#[test]
fn linear_batch_norm_and_activations() {
    check("linear with and without bias", &[2, 3, 3], |net, x| {
        let f = net.apply(x, Op::Flatten);
        let h = net.apply(f, net::linear(5, false));
        net.apply(h, net::linear(4, true))
    });
    check("batch-norm, training mode", &[3, 4, 5], |net, x| net.apply(x, net::bn()));
    check("batch-norm after batch-norm", &[2, 3, 3], |net, x| {
        net.chain(x, [net::bn(), net::act(Activation::Relu), net::bn()])
    });
    for a in net::ACTIVATIONS {
        check(&net::spelled(a), &[2, 4, 4], |net, x| net.apply(x, net::act(a)));
    }
}

#[test]
fn poolings() {
    let cases: Vec<(&str, Op)> = vec![
        ("max 2x2", net::max_pool(net::window(2))),
        ("max 3x3/2, overlapping, ceil_mode", net::max_pool(net::pool_window(3, 2, 0, true, false))),
        ("max 3x3/2, padding 1", net::max_pool(net::pool_window(3, 2, 1, false, false))),
        ("max dilation 2", net::max_pool(Pool2d { dilation: [2, 2], ..net::pool_window(2, 1, 0, false, false) })),
        ("avg 3x3/2, padding counted", Op::AvgPool(net::pool_window(3, 2, 1, false, true))),
        ("avg 3x3/2, padding not counted", Op::AvgPool(net::pool_window(3, 2, 1, false, false))),
        ("avg 2x2/2, ceil_mode", Op::AvgPool(net::pool_window(2, 2, 0, true, true))),
        ("adaptive avg 7→3", Op::AdaptiveAvgPool { size: [3, 2] }),
        ("adaptive max 7→3", Op::AdaptiveMaxPool { size: [3, 2] }),
        ("global avg", Op::AdaptiveAvgPool { size: [1, 1] }),
    ];
    for (name, op) in cases {
        check(name, &[2, 7, 5], |net, x| net.apply(x, op));
    }
}

#[test]
fn joins_and_rearrangements() {
    check("residual add", &[3, 4, 4], |net, x| {
        let y =
            net.apply(x, Op::Conv2d(cnnc::compiler::graph::Conv2d { padding: Pad4::uniform(1), ..net::conv(3, 3) }));
        let y = net.apply(y, net::act(Activation::Relu));
        net.join(Op::Add, &[y, x])
    });
    check("concat of three branches", &[2, 4, 4], |net, x| {
        let a = net.apply(x, Op::Conv2d(net::conv(3, 1)));
        let b = net.apply(x, net::act(Activation::Tanh));
        net.join(Op::Concat, &[a, x, b])
    });
    check("squeeze-excitation gate (broadcast mul)", &[4, 3, 3], |net, x| {
        let g = net.apply(x, Op::AdaptiveAvgPool { size: [1, 1] });
        let g = net.apply(g, Op::Conv2d(net::conv(4, 1)));
        let g = net.apply(g, net::act(Activation::Sigmoid));
        net.join(Op::Mul, &[x, g])
    });
    check("chunk and channel shuffle", &[4, 3, 3], |net, x| {
        let a = net.apply(x, Op::Chunk { chunks: 2, index: 0 });
        let b = net.apply(x, Op::Chunk { chunks: 2, index: 1 });
        let b = net.apply(b, net::act(Activation::Silu));
        let c = net.join(Op::Concat, &[a, b]);
        net.apply(c, Op::ChannelShuffle { groups: 2 })
    });
    check("local response norm", &[5, 3, 3], |net, x| {
        net.apply(x, Op::LocalResponseNorm { size: 3, alpha: 0.5, beta: 0.75, k: 2.0 })
    });
    check("local response norm, even size", &[5, 2, 2], |net, x| {
        net.apply(x, Op::LocalResponseNorm { size: 4, alpha: 1e-1, beta: 0.75, k: 1.0 })
    });
    check("softmax over channels", &[3, 2, 2], |net, x| net.apply(x, Op::Softmax));
    check("channel affine", &[3, 2, 2], |net, x| {
        net.apply(x, Op::ChannelAffine { scale: vec![0.5, -2.0, 1.5], shift: vec![0.1, 0.2, -0.3] })
    });
}

#[test]
fn dropout_and_stochastic_depth_with_their_masks() {
    for dropout in [true, false] {
        let options = StepOptions { dropout, seed: 11, step: 4, ..StepOptions::default() };
        check_with("dropout", &[3, 3, 3], &options, |net, x| net.apply(x, Op::Dropout { p: 0.4 }));
        check_with("stochastic depth in a residual", &[3, 3, 3], &options, |net, x| {
            let y = net.apply(x, Op::Conv2d(net::conv(3, 1)));
            let y = net.apply(y, Op::StochasticDepth { p: 0.5 });
            net.join(Op::Add, &[y, x])
        });
    }
}

#[test]
fn loss_with_label_smoothing_and_class_weights() {
    let loss = CrossEntropy { label_smoothing: 0.1, class_weights: Some(vec![0.5, 2.0, 1.0]) };
    let options = StepOptions { loss, ..StepOptions::default() };
    check_with("weighted, smoothed cross-entropy", &[2, 3, 3], &options, |net, x| {
        net.apply(x, net::act(Activation::Relu))
    });
}
