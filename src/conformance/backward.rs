//! Backward conformance: one training step of a small model on the GPU against the CPU reference
//! (float64), per backward kernel family, with the attributes that change a backward kernel's paths
//! (strides, asymmetric padding, dilation, groups, overlapping and `ceil_mode` windows, unequal
//! adaptive cells, label smoothing and class weights), and the convolutions and poolings of a sweep
//! over their attributes (`sweep.rs`).
//!
//! Error: the largest of the gradients' relative L2 distance over all trainable tensors together,
//! the updated running statistics' relative L2 distance and the loss's relative difference. A
//! gradient sums up to thousands of float32 products and passes through several backward kernels,
//! so its float32 error is a few 1e-7 on these models (PyTorch's own float32 gradients are 4.4e-7 from
//! its float64 ones on the first): [`TOLERANCE`] (1e-4) leaves room for drivers that reorder or fuse
//! arithmetic, while a wrong index, a missing term or a mask drawn differently gives 1e-2 or more.
//!
//! [`TOLERANCE`]: super::TOLERANCE

use std::rc::Rc;

use cnnc_compiler::graph::{Activation, Conv2d, Graph, Op, Pad4};
use cnnc_compiler::ir::autodiff::differentiate;
use cnnc_runtime::gpu::{Gpu, GpuTrainer};
use cnnc_runtime::synthetic;
use cnnc_runtime::train::{self, CrossEntropy, Optimizer, OptimizerState, Schedule, StepOptions};
use cnnc_runtime::weights::Weights;
use cnnc_runtime::Tensor;

use super::net::{act, bn, conv, linear, max_pool, pool_window, spelled, ACTIVATIONS};
use super::{Net, Outcome, Value};

/// One backward case: the family it targets, a name, the model, a batch size and the step's options.
#[derive(Clone)]
pub struct BackwardCase {
    pub family: &'static str,
    pub name: String,
    pub graph: Rc<Graph>,
    pub batch: usize,
    pub options: StepOptions,
}

pub(super) fn case(
    family: &'static str,
    name: &str,
    input: &[usize],
    batch: usize,
    build: impl Fn(&mut Net, Value) -> Value,
) -> BackwardCase {
    let (mut net, x) = Net::new(input);
    let out = build(&mut net, x);
    let options = StepOptions { seed: 5, step: 3, ..StepOptions::default() };
    BackwardCase { family, name: name.to_string(), graph: Rc::new(net.finish(out)), batch, options }
}

/// A convolution: `out` channels, square `kernel`, stride, padding, dilation, groups, bias.
fn c(out: usize, kernel: usize, stride: usize, padding: Pad4, dilation: usize, groups: usize, bias: bool) -> Op {
    Op::Conv2d(Conv2d {
        stride: [stride, stride],
        padding,
        dilation: [dilation, dilation],
        groups,
        bias,
        ..conv(out, kernel)
    })
}

/// Global average pooling, flatten and a linear head of 5 classes.
fn head(net: &mut Net, x: Value) -> Value {
    let x = net.apply(x, Op::AdaptiveAvgPool { size: [1, 1] });
    let x = net.apply(x, Op::Flatten);
    net.apply(x, linear(5, true))
}

/// Flatten and a linear head of 5 classes.
pub(super) fn flat_head(net: &mut Net, x: Value) -> Value {
    let x = net.apply(x, Op::Flatten);
    net.apply(x, linear(5, true))
}

/// Every backward case: the named ones, then the sweep's (`sweep.rs`).
pub fn cases() -> Vec<BackwardCase> {
    let same = Pad4::uniform(1);
    let mut cases = vec![
        case("conv_grad", "stride 2, asymmetric padding, bias", &[3, 11, 10], 3, |n, x| {
            let y = n.apply(x, c(8, 3, 2, Pad4 { top: 1, bottom: 0, left: 2, right: 1 }, 1, 1, true));
            flat_head(n, y)
        }),
        case("conv_grad", "dilation 2, 4 groups, below a trained layer", &[8, 9, 9], 2, |n, x| {
            let y = n.apply(x, c(8, 3, 1, Pad4::uniform(2), 1, 1, false));
            let y = n.apply(y, c(8, 3, 1, Pad4::uniform(2), 2, 4, false));
            head(n, y)
        }),
        case("conv_grad", "depthwise 3x3 stride 2, then 1x1", &[6, 9, 8], 2, |n, x| {
            let y = n.apply(x, c(6, 3, 1, same, 1, 1, true));
            let y = n.apply(y, c(6, 3, 2, same, 1, 6, true));
            let y = n.apply(y, c(4, 1, 1, Pad4::default(), 1, 1, true));
            flat_head(n, y)
        }),
        case("pointwise_grad", "1x1 GEMMs: channels not multiples of 4, bias, ReLU", &[6, 4, 6], 3, |n, x| {
            let y = n.apply(x, c(10, 1, 1, Pad4::default(), 1, 1, true));
            let y = n.apply(y, act(Activation::Relu));
            let y = n.apply(y, c(7, 1, 1, Pad4::default(), 1, 1, false));
            flat_head(n, y)
        }),
        case("pointwise_grad", "1x1 on 7x7: positions not a multiple of 4", &[5, 7, 7], 2, |n, x| {
            let y = n.apply(x, c(6, 1, 1, Pad4::default(), 1, 1, true));
            let y = n.apply(y, c(3, 1, 1, Pad4::default(), 1, 1, true));
            flat_head(n, y)
        }),
        case("pointwise_grad", "1x1 over two chunks of positions, quads and not", &[3, 64, 65], 2, |n, x| {
            let y = n.apply(x, c(5, 1, 1, Pad4::default(), 1, 1, true));
            let y = n.apply(y, c(4, 1, 1, Pad4::default(), 1, 1, false));
            let z =
                n.apply(y, Op::Conv2d(Conv2d { padding: Pad4 { top: 0, bottom: 1, left: 0, right: 0 }, ..conv(4, 1) }));
            let z = n.apply(z, c(2, 1, 1, Pad4::default(), 1, 1, true));
            head(n, z)
        }),
        case("conv_grad", "5x5 on 3 channels (LeNet's first)", &[3, 14, 14], 4, |n, x| {
            let y = n.apply(x, c(6, 5, 1, Pad4::default(), 1, 1, true));
            head(n, y)
        }),
        case("conv_grad", "unequal strides, dilation along one side (unrolled)", &[3, 11, 13], 2, |n, x| {
            let y = n.apply(x, Op::Conv2d(Conv2d { stride: [1, 2], bias: true, ..conv(4, 3) }));
            let y = n.apply(y, Op::Conv2d(Conv2d { stride: [2, 1], dilation: [1, 2], ..conv(5, 2) }));
            flat_head(n, y)
        }),
        // The input gradient of the second, a stride-1 convolution of 6 channels' output gradient,
        // runs unrolled reading the weights flipped, one output channel per block (four blocks).
        case(
            "conv_grad",
            "3x2 kernel, stride 1, asymmetric padding, dilation 2 along rows (flipped)",
            &[2, 5, 6],
            2,
            |n, x| {
                let y = n.apply(x, c(4, 3, 1, same, 1, 1, false));
                let padding = Pad4 { top: 1, bottom: 0, left: 0, right: 1 };
                let y = n.apply(
                    y,
                    Op::Conv2d(Conv2d { kernel: [3, 2], padding, dilation: [1, 2], bias: true, ..conv(6, 3) }),
                );
                flat_head(n, y)
            },
        ),
        case("linear_grad", "two layers, with and without bias", &[12], 3, |n, x| {
            let y = n.apply(x, linear(7, true));
            let y = n.apply(y, act(Activation::Tanh));
            n.apply(y, linear(5, false))
        }),
        case("linear_grad", "37 rows of weight gradient", &[5], 2, |n, x| {
            let y = n.apply(x, linear(40, true));
            let y = n.apply(y, act(Activation::Tanh));
            n.apply(y, linear(37, true))
        }),
        case("linear_grad", "output gradient past 64 KiB (a storage binding), through a ReLU", &[6], 2, |n, x| {
            // The last layer's output gradient, 2 × 8,200 floats, is past one uniform binding; its
            // input gradient applies the ReLU before it.
            let y = n.apply(x, linear(7, true));
            let y = n.apply(y, act(Activation::Relu));
            n.apply(y, linear(8200, true))
        }),
        case("linear_grad", "18 rows of input gradient", &[6], 18, |n, x| {
            let y = n.apply(x, linear(9, true));
            let y = n.apply(y, act(Activation::Tanh));
            n.apply(y, linear(5, true))
        }),
        case("linear_grad", "widths of multiples of four (vec4 loads)", &[16], 4, |n, x| {
            let y = n.apply(x, linear(8, true));
            let y = n.apply(y, act(Activation::Tanh));
            let y = n.apply(y, linear(12, false));
            n.apply(y, linear(5, true))
        }),
        // Each ReLU's gradient comes out of the next layer's input gradient, masked by its output.
        case("linear_grad", "ReLUs between layers (masked input gradients)", &[10], 3, |n, x| {
            let y = n.apply(x, linear(9, true));
            let y = n.apply(y, act(Activation::Relu));
            let y = n.apply(y, linear(6, false));
            let y = n.apply(y, act(Activation::Relu));
            n.apply(y, linear(5, true))
        }),
        case("pool_grad", "max 3x3 stride 2, overlapping, ceil_mode", &[4, 9, 8], 2, |n, x| {
            let y = n.apply(x, c(4, 3, 1, same, 1, 1, true));
            let y = n.apply(y, max_pool(pool_window(3, 2, 1, true, false)));
            flat_head(n, y)
        }),
        case("pool_grad", "average, ceil_mode, padding counted and not", &[4, 9, 8], 2, |n, x| {
            let y = n.apply(x, c(4, 3, 1, same, 1, 1, true));
            let a = n.apply(y, Op::AvgPool(pool_window(3, 2, 1, true, false)));
            let b = n.apply(y, Op::AvgPool(pool_window(3, 2, 1, true, true)));
            let y = n.join(Op::Concat, &[a, b]);
            flat_head(n, y)
        }),
        // Each ReLU here has one reader, a pooling, which applies the ReLU's gradient itself.
        case("pool_grad", "after a ReLU: max 3x3 stride 2, average 2x2 tiling", &[4, 8, 6], 2, |n, x| {
            let y = n.apply(x, c(4, 3, 1, same, 1, 1, true));
            let r1 = n.apply(y, act(Activation::Relu));
            let a = n.apply(r1, max_pool(pool_window(3, 2, 1, true, false)));
            let r2 = n.apply(y, act(Activation::Relu));
            let b = n.apply(r2, Op::AvgPool(pool_window(2, 2, 0, false, true)));
            let (a, b) = (flat_head(n, a), flat_head(n, b));
            n.join(Op::Add, &[a, b])
        }),
        case("pool_grad", "after a ReLU: max 2x2 tiling (LeNet's)", &[4, 8, 6], 3, |n, x| {
            let y = n.apply(x, c(4, 3, 1, same, 1, 1, true));
            let y = n.apply(y, act(Activation::Relu));
            let y = n.apply(y, max_pool(pool_window(2, 2, 0, false, false)));
            flat_head(n, y)
        }),
        case("pool_grad", "max and average 2x2 stride 2, tiling the input", &[4, 8, 6], 2, |n, x| {
            let y = n.apply(x, c(4, 3, 1, same, 1, 1, true));
            let a = n.apply(y, max_pool(pool_window(2, 2, 0, false, false)));
            let b = n.apply(y, Op::AvgPool(pool_window(2, 2, 0, false, true)));
            let y = n.join(Op::Concat, &[a, b]);
            flat_head(n, y)
        }),
        // Tiles other than 2x2 take `pool_grad`'s one invocation per window.
        case("pool_grad", "max and average 3x3 stride 3, tiling the input", &[4, 9, 6], 2, |n, x| {
            let y = n.apply(x, c(4, 3, 1, same, 1, 1, true));
            let a = n.apply(y, max_pool(pool_window(3, 3, 0, false, false)));
            let b = n.apply(y, Op::AvgPool(pool_window(3, 3, 0, false, true)));
            let y = n.join(Op::Concat, &[a, b]);
            flat_head(n, y)
        }),
        case("adaptive_pool_grad", "max and average over overlapping unequal cells", &[4, 9, 7], 3, |n, x| {
            let y = n.apply(x, c(4, 3, 1, same, 1, 1, true));
            let y = n.apply(y, Op::AdaptiveMaxPool { size: [4, 3] });
            let y = n.apply(y, Op::AdaptiveAvgPool { size: [3, 2] });
            flat_head(n, y)
        }),
        case("batch_norm_grad", "batch statistics, running statistics", &[4, 6, 6], 4, |n, x| {
            let y = n.apply(x, c(8, 3, 1, same, 1, 1, false));
            let y = n.chain(y, [bn(), act(Activation::Relu)]);
            let y = n.apply(y, c(8, 3, 1, same, 1, 1, false));
            let y = n.apply(y, bn());
            head(n, y)
        }),
        case("batch_norm_grad", "a long reduction (36,864 values per channel)", &[2, 96, 96], 4, |n, x| {
            let y = n.apply(x, c(2, 1, 1, Pad4::default(), 1, 1, false));
            let y = n.apply(y, bn());
            head(n, y)
        }),
        case("dropout", "dropout and stochastic depth, masks redrawn", &[4, 5, 5], 4, |n, x| {
            let y = n.apply(x, c(6, 3, 1, same, 1, 1, true));
            let a = n.apply(y, Op::StochasticDepth { p: 0.5 });
            let y = n.join(Op::Add, &[a, y]);
            let y = n.apply(y, Op::Flatten);
            let y = n.apply(y, Op::Dropout { p: 0.3 });
            n.apply(y, linear(5, true))
        }),
        case("gate_grad", "squeeze-and-excitation gate", &[4, 6, 6], 2, |n, x| {
            let y = n.apply(x, c(8, 3, 1, same, 1, 1, true));
            let g = n.apply(y, Op::AdaptiveAvgPool { size: [1, 1] });
            let g = n.chain(g, [Op::Conv2d(conv(8, 1)), act(Activation::Sigmoid)]);
            let y = n.join(Op::Mul, &[y, g]);
            head(n, y)
        }),
        case("elementwise", "residual add, channel affine, concat", &[4, 6, 6], 2, |n, x| {
            let a =
                n.apply(x, Op::ChannelAffine { scale: vec![0.5, -1.0, 2.0, 1.5], shift: vec![0.1, 0.0, -0.2, 0.3] });
            let b = n.apply(a, c(4, 3, 1, same, 1, 1, true));
            let y = n.join(Op::Add, &[a, b]);
            let y = n.join(Op::Concat, &[y, x, b]);
            head(n, y)
        }),
        case("chunk_grad", "both halves of a chunk, a shuffle, one chunk of four", &[6, 5, 5], 3, |n, x| {
            let y = n.apply(x, c(8, 3, 1, same, 1, 1, true));
            let a = n.apply(y, Op::Chunk { chunks: 2, index: 0 });
            let b = n.apply(y, Op::Chunk { chunks: 2, index: 1 });
            let b = n.apply(b, c(4, 3, 1, same, 1, 1, true));
            let y = n.join(Op::Concat, &[a, b]);
            let y = n.apply(y, Op::ChannelShuffle { groups: 2 });
            let y = n.apply(y, Op::Chunk { chunks: 4, index: 1 });
            head(n, y)
        }),
        case("lrn_grad", "LRN of size 3 and 4", &[6, 5, 5], 2, |n, x| {
            let y = n.apply(x, c(8, 3, 1, same, 1, 1, true));
            let y = n.apply(y, Op::LocalResponseNorm { size: 3, alpha: 0.5, beta: 0.75, k: 2.0 });
            let y = n.apply(y, c(8, 3, 1, same, 1, 1, true));
            let y = n.apply(y, Op::LocalResponseNorm { size: 4, alpha: 0.1, beta: 0.75, k: 1.0 });
            head(n, y)
        }),
        case("softmax_grad", "over channels and over features", &[6, 4, 4], 3, |n, x| {
            let y = n.apply(x, c(5, 3, 1, same, 1, 1, true));
            let y = n.apply(y, Op::Softmax);
            let y = n.apply(y, Op::Flatten);
            let y = n.apply(y, linear(6, true));
            let y = n.apply(y, Op::Softmax);
            n.apply(y, linear(5, true))
        }),
    ];
    for a in ACTIVATIONS {
        cases.push(case("activation_grad", &spelled(a), &[3, 6, 6], 2, move |n, x| {
            let y = n.apply(x, c(6, 3, 1, Pad4::uniform(1), 1, 1, true));
            let y = n.apply(y, act(a));
            head(n, y)
        }));
    }
    let mut weighted =
        case("cross_entropy", "label smoothing 0.2, class weights", &[10], 5, |n, x| n.apply(x, linear(5, true)));
    let class_weights = (0..5).map(|c| 0.5 + c as f64 / 5.0).collect();
    weighted.options.loss = CrossEntropy { label_smoothing: 0.2, class_weights: Some(class_weights) };
    cases.push(weighted);
    cases.extend(super::sweep::cases());
    cases
}

/// Runs one backward case on `gpu` against the CPU reference.
pub fn run_case(gpu: &Gpu, case: &BackwardCase) -> Outcome {
    let outcome = |error, failure| Outcome { family: case.family, name: case.name.clone(), error, failure };
    match compare(gpu, case) {
        Ok(e) => outcome(e.worst(), None),
        Err(e) => outcome(f64::NAN, Some(e)),
    }
}

/// How far one GPU training step is from the CPU reference's float64 step.
#[derive(Clone, Copy, Debug)]
pub struct StepErrors {
    /// Relative L2 distance over all trainable gradients together.
    pub gradients: f64,
    /// The largest relative L2 distance of an updated running statistic (0 without batch-norm).
    pub running: f64,
    /// The loss's relative difference.
    pub loss: f64,
}

impl StepErrors {
    /// The case's error (see the module docs): the largest of the three, NaN if any is.
    pub fn worst(&self) -> f64 {
        worst(worst(self.gradients, self.running), self.loss)
    }
}

/// A case's step inputs: weights `synthetic::weights(graph, 1)`, input `synthetic::input(2, …)`
/// (`[N, ...item]`) and labels `(3i + 1) mod K`.
pub fn step_data(case: &BackwardCase) -> (Weights, Tensor, Vec<usize>) {
    let graph = &case.graph;
    let mut shape = vec![case.batch];
    shape.extend(graph.node(graph.input).shape.dims());
    let classes = graph.node(graph.output).shape.elements() as usize;
    let labels = (0..case.batch).map(|i| (3 * i + 1) % classes).collect();
    (synthetic::weights(graph, 1), synthetic::input(2, shape), labels)
}

/// What one training step gives: the loss, every trainable parameter's gradient and every
/// batch-norm running statistic after the step, by state_dict name.
#[derive(Clone, Debug, Default)]
pub struct StepOutcome {
    pub loss: f64,
    pub gradients: Weights<f64>,
    pub running: Weights<f64>,
}

/// One step of `case` on `gpu` (Adam's update leaves the gradients and statistics alone).
///
/// # Errors
/// What kept the step from running.
pub fn gpu_step(gpu: &Gpu, case: &BackwardCase) -> Result<StepOutcome, String> {
    let (weights, x, labels) = step_data(case);
    let adam = OptimizerState::new(Optimizer::adam(), 1e-3, Schedule::Constant);
    let failed = |e: cnnc_runtime::RuntimeError| e.to_string();
    let mut trainer =
        GpuTrainer::new(gpu, &case.graph, &weights, |_| true, adam, &case.options, case.batch).map_err(failed)?;
    let (loss, grads) = trainer.gradients(&x, &labels).map_err(failed)?;
    let after = trainer.weights().map_err(failed)?;
    let mut running = Weights::default();
    for (_, node) in case.graph.nodes() {
        for p in node.params.iter().filter(|p| !p.kind.is_trainable()) {
            let t = after.get(&p.name).ok_or_else(|| format!("no running statistic {}", p.name))?;
            running.insert(p.name.clone(), t.convert());
        }
    }
    Ok(StepOutcome { loss: loss.into(), gradients: grads.convert(), running })
}

/// One step of `case` on the CPU reference executor (float64).
///
/// # Errors
/// What kept the step from running.
pub fn cpu_step(case: &BackwardCase) -> Result<StepOutcome, String> {
    let (weights, x, labels) = step_data(case);
    let backward = differentiate(&case.graph, |_| true).map_err(|e| e.to_string())?;
    let r = train::step(&case.graph, &backward, &weights.convert(), &x.convert(), &labels, &case.options)
        .map_err(|e| e.to_string())?;
    Ok(StepOutcome { loss: r.loss, gradients: r.gradients, running: r.running })
}

/// How far `ours` is from `reference`, over the reference's gradients and running statistics.
///
/// # Errors
/// A gradient or statistic of the reference's that `ours` lacks or has in another shape.
pub fn errors(ours: &StepOutcome, reference: &StepOutcome) -> Result<StepErrors, String> {
    let (mut diff, mut norm) = (0f64, 0f64);
    let mut names = reference.gradients.names();
    names.sort_unstable();
    for name in names {
        let theirs = reference.gradients.get(name).expect("listed");
        let ours = ours.gradients.get(name).ok_or_else(|| format!("no gradient for {name}"))?;
        if ours.shape != theirs.shape {
            return Err(format!("the gradient of {name} is {:?}, the reference's {:?}", ours.shape, theirs.shape));
        }
        for (a, b) in ours.data.iter().zip(&theirs.data) {
            diff += (a - b).powi(2);
            norm += b * b;
        }
    }
    let mut running = 0.0;
    for name in reference.running.names() {
        let theirs = reference.running.get(name).expect("listed");
        let ours = ours.running.get(name).ok_or_else(|| format!("no running statistic {name}"))?;
        if ours.shape != theirs.shape {
            return Err(format!("{name} is {:?}, the reference's {:?}", ours.shape, theirs.shape));
        }
        running = worst(running, distance(&ours.data, &theirs.data));
    }
    Ok(StepErrors {
        gradients: (diff / norm.max(f64::MIN_POSITIVE)).sqrt(),
        running,
        loss: (ours.loss - reference.loss).abs() / reference.loss.abs().max(f64::MIN_POSITIVE),
    })
}

/// One step of `case` on `gpu` and on the CPU reference, compared.
///
/// # Errors
/// What kept a step from running, or a gradient missing or of the wrong shape.
pub fn compare(gpu: &Gpu, case: &BackwardCase) -> Result<StepErrors, String> {
    errors(&gpu_step(gpu, case)?, &cpu_step(case)?)
}

/// `‖a − b‖ / ‖b‖`.
fn distance(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| y * y).sum();
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

/// The larger error, NaN if either is (`f64::max` would drop a NaN).
fn worst(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Runs every backward case.
pub fn run_all(gpu: &Gpu) -> Vec<Outcome> {
    cases().iter().map(|c| run_case(gpu, c)).collect()
}
