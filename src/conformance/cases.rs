//! Today's cases, kept as named regressions: each a family's problem (or a composite model) with the
//! batch size and planning options it runs at.

use std::rc::Rc;

use cnnc_compiler::graph::{Activation, Conv2d, Op, Pad4, Pool2d};
use cnnc_runtime::gpu::{PlanOptions, UnrolledPolicy};

use super::net::{act, bn, conv, max_pool, spelled, window, window_3x3_same, ACTIVATIONS};
use super::problems::{
    ActivationProblem, Composite, ConvProblem, LinearProblem, LrnProblem, PoolProblem, Pooling, Problem, SoftmaxProblem,
};
use super::Case;

fn case(family: &'static str, name: &str, problem: impl Problem + 'static, batch: usize) -> Case {
    Case { family, name: name.to_string(), problem: Rc::new(problem), batch, options: PlanOptions::default() }
}

fn composite(
    family: &'static str,
    name: &str,
    input: &[usize],
    build: fn(&mut super::Net, super::Value) -> super::Value,
    batch: usize,
) -> Case {
    case(family, name, Composite { input: input.to_vec(), build }, batch)
}

/// A convolution of `out` channels, square `kernel`, stride, uniform padding and groups.
fn c(out: usize, kernel: usize, stride: usize, pad: usize, groups: usize) -> Conv2d {
    Conv2d { stride: [stride, stride], padding: Pad4::uniform(pad), groups, ..conv(out, kernel) }
}

fn convolution(input: [usize; 3], conv: Conv2d) -> ConvProblem {
    ConvProblem::new(input, conv)
}

pub(super) fn convolutions() -> Vec<Case> {
    let relu = Some(Activation::Relu);
    vec![
        case("conv2d", "1x1 input, 3x3 kernel, padding 1", convolution([3, 1, 1], c(8, 3, 1, 1, 1)), 1),
        case("conv2d", "odd sizes, stride 2", convolution([3, 13, 11], c(12, 3, 2, 0, 1)), 3),
        case(
            "conv2d",
            "6 outputs, 5x5 (LeNet's first: one padded tile)",
            convolution([3, 14, 14], c(6, 5, 1, 0, 1)),
            2,
        ),
        case("conv2d", "stride larger than kernel", convolution([4, 17, 17], c(8, 2, 3, 0, 1)), 2),
        case("conv2d", "padding at its maximum", convolution([2, 5, 5], c(4, 5, 1, 4, 1)), 1),
        case(
            "conv2d",
            "asymmetric padding",
            convolution(
                [3, 9, 8],
                Conv2d { padding: Pad4 { top: 0, bottom: 2, left: 1, right: 0 }, ..c(8, 3, 2, 0, 1) },
            ),
            2,
        ),
        case(
            "conv2d",
            "\"same\" padding, stride 2",
            ConvProblem { same: true, ..convolution([3, 10, 7], c(8, 3, 2, 0, 1)) },
            1,
        ),
        case("conv2d", "dilation 2", convolution([4, 12, 12], Conv2d { dilation: [2, 2], ..c(8, 3, 1, 2, 1) }), 1),
        case(
            "conv2d",
            "rectangular kernel",
            convolution(
                [4, 9, 9],
                Conv2d { kernel: [1, 7], padding: Pad4 { top: 0, bottom: 0, left: 3, right: 3 }, ..conv(8, 1) },
            ),
            1,
        ),
        case("conv2d", "groups = channels (depthwise)", convolution([6, 10, 10], c(6, 3, 1, 1, 6)), 2),
        case("conv2d", "depthwise with multiplier", convolution([4, 7, 7], c(8, 5, 2, 2, 4)), 1),
        case("conv2d", "groups = 2, outputs not a multiple of 4", convolution([4, 6, 6], c(6, 3, 1, 0, 2)), 1),
        case("conv2d", "output channels not a multiple of 4", convolution([3, 8, 8], c(5, 3, 1, 1, 1)), 3),
        case("conv2d", "1x1 convolution, no bias", convolution([16, 7, 7], Conv2d { bias: false, ..conv(24, 1) }), 2),
        case(
            "conv2d",
            "folded batch-norm and ReLU",
            ConvProblem {
                batch_norm: true,
                activation: relu,
                ..convolution([3, 8, 8], Conv2d { bias: false, ..conv(8, 3) })
            },
            2,
        ),
        case(
            "conv2d",
            "fused residual add and ReLU6",
            ConvProblem {
                batch_norm: true,
                residual: true,
                activation: Some(Activation::Relu6),
                ..convolution([8, 6, 6], c(8, 3, 1, 1, 1))
            },
            2,
        ),
        case("conv2d", "many input channels", convolution([64, 4, 4], c(16, 3, 1, 1, 1)), 1),
        case("conv2d", "20 outputs: a partial last tile of 16", convolution([3, 9, 9], c(20, 3, 1, 1, 1)), 2),
        case("conv2d", "16 outputs per group, stride 2", convolution([6, 9, 7], c(32, 3, 2, 1, 2)), 2),
        case("conv2d", "stem-like 7x7, stride 2, 32 outputs", convolution([3, 19, 19], c(32, 7, 2, 3, 1)), 1),
        composite(
            "conv2d",
            "written into a concat's slices",
            &[3, 6, 6],
            |net, x| {
                let branches = [16, 5, 4].map(|out| net.apply(x, Op::Conv2d(c(out, 3, 1, 1, 1))));
                net.join(Op::Concat, &[x, branches[0], branches[1], branches[2]])
            },
            2,
        ),
        composite(
            "pointwise",
            "written into a concat's slices",
            &[8, 4, 4],
            |net, x| {
                let a = net.apply(x, Op::Conv2d(conv(4, 1)));
                let b = net.apply(x, Op::Conv2d(conv(20, 1)));
                net.join(Op::Concat, &[a, x, b])
            },
            2,
        ),
        case("pointwise", "1x1, outputs not a multiple of 16", convolution([16, 8, 8], conv(20, 1)), 2),
        case(
            "pointwise",
            "1x1 with folded batch-norm, residual add and ReLU",
            ConvProblem {
                batch_norm: true,
                residual: true,
                activation: relu,
                ..convolution([24, 4, 6], Conv2d { bias: false, ..conv(24, 1) })
            },
            3,
        ),
        case("pointwise", "1x1 with stride 2 (subsampled, then a GEMM)", convolution([8, 8, 9], c(16, 1, 2, 0, 1)), 2),
        case(
            "pointwise",
            "1x1 with many input channels",
            ConvProblem { activation: Some(Activation::Relu6), ..convolution([96, 4, 4], conv(40, 1)) },
            1,
        ),
    ]
}

/// Small convolutions of one group, written out for their shapes (`conv2d_unrolled`), which
/// inference takes for large batches and training always: here at any batch.
pub(super) fn unrolled() -> Vec<Case> {
    let relu = Some(Activation::Relu);
    let unrolled = |name: &str, problem: ConvProblem, batch: usize| Case {
        options: PlanOptions { unrolled: UnrolledPolicy::Always, ..PlanOptions::default() },
        ..case("conv2d_unrolled", name, problem, batch)
    };
    vec![
        unrolled("LeNet's first: 3 -> 6, 5x5", convolution([3, 14, 14], c(6, 5, 1, 0, 1)), 2),
        unrolled("LeNet's second: 6 -> 16, 5x5 (2,400 weights)", convolution([6, 10, 10], c(16, 5, 1, 0, 1)), 2),
        unrolled("1x1 input, 3x3 kernel, padding 1", convolution([3, 1, 1], c(8, 3, 1, 1, 1)), 1),
        unrolled("odd sizes, stride 2", convolution([3, 13, 11], c(12, 3, 2, 0, 1)), 3),
        unrolled("padding at its maximum", convolution([2, 5, 5], c(4, 5, 1, 4, 1)), 1),
        unrolled(
            "asymmetric padding, unequal strides",
            convolution(
                [3, 9, 8],
                Conv2d { stride: [2, 1], padding: Pad4 { top: 0, bottom: 2, left: 1, right: 0 }, ..c(8, 3, 2, 0, 1) },
            ),
            2,
        ),
        unrolled(
            "\"same\" padding, stride 2",
            ConvProblem { same: true, ..convolution([3, 10, 7], c(8, 3, 2, 0, 1)) },
            1,
        ),
        unrolled("dilation 2", convolution([4, 12, 12], Conv2d { dilation: [2, 2], ..c(8, 3, 1, 2, 1) }), 1),
        unrolled(
            "rectangular kernel",
            convolution(
                [4, 9, 9],
                Conv2d { kernel: [1, 7], padding: Pad4 { top: 0, bottom: 0, left: 3, right: 3 }, ..conv(8, 1) },
            ),
            1,
        ),
        unrolled("output channels not a multiple of 4", convolution([3, 8, 8], c(5, 3, 1, 1, 1)), 3),
        // At large batches each invocation takes several rows and positions: whole rows or columns
        // of an item, whose taps in the padding are left out when the kernel is written.
        unrolled(
            "LeNet's second input gradient: 16 -> 6, 5x5, padding 4 (whole items)",
            convolution([16, 10, 10], c(6, 5, 1, 4, 1)),
            64,
        ),
        unrolled(
            "LeNet's second input gradient at batch 8 (whole rows, padded rows checked)",
            convolution([16, 10, 10], c(6, 5, 1, 4, 1)),
            8,
        ),
        unrolled("every row of an item, positions in groups, padding 1", convolution([2, 7, 30], c(4, 3, 1, 1, 1)), 64),
        unrolled("partial groups of rows and positions", convolution([1, 21, 19], c(2, 3, 1, 0, 1)), 16),
        unrolled(
            "odd sizes, stride 2, asymmetric padding, at batch 40",
            convolution(
                [3, 13, 11],
                Conv2d { padding: Pad4 { top: 2, bottom: 0, left: 0, right: 1 }, ..c(12, 3, 2, 0, 1) },
            ),
            40,
        ),
        unrolled(
            "folded batch-norm and ReLU, no bias",
            ConvProblem {
                batch_norm: true,
                activation: relu,
                ..convolution([3, 8, 8], Conv2d { bias: false, ..conv(8, 3) })
            },
            2,
        ),
    ]
}

pub(super) fn others() -> Vec<Case> {
    let pool = |input, pooling| PoolProblem { input, pooling };
    let strided =
        |kernel, stride, pad| Pool2d { stride: [stride, stride], padding: Pad4::uniform(pad), ..window(kernel) };
    let lin = |input: &[usize], out_features, bias, activation| LinearProblem {
        input: input.to_vec(),
        out_features,
        bias,
        activation,
    };
    let mut cases = vec![
        case("linear", "features not a multiple of 4", lin(&[37], 10, true, None), 3),
        case("linear", "batch of 5, no bias, ReLU", lin(&[64], 33, false, Some(Activation::Relu)), 5),
        case("linear", "after flatten", lin(&[4, 3, 3], 7, true, None), 2),
        case(
            "maxpool",
            "3x3 stride 2 ceil_mode",
            pool([3, 14, 14], Pooling::Max(Pool2d { ceil_mode: true, ..strided(3, 2, 0) })),
            2,
        ),
        case(
            "maxpool",
            "padding and dilation",
            pool([2, 9, 9], Pooling::Max(Pool2d { dilation: [2, 2], ..strided(3, 2, 1) })),
            1,
        ),
        case("maxpool", "kernel as large as the input", pool([3, 5, 5], Pooling::Max(window(5))), 1),
        case("maxpool", "2x2 stride 2 tiling (a window's rows as pairs)", pool([3, 8, 6], Pooling::Max(window(2))), 2),
        composite(
            "maxpool",
            "written into a concat's slices",
            &[3, 6, 6],
            |net, x| {
                let a = net.apply(x, Op::Conv2d(conv(2, 1)));
                let b = net.apply(x, max_pool(window_3x3_same()));
                let c = net.apply(x, Op::AvgPool(window_3x3_same()));
                net.join(Op::Concat, &[a, b, c])
            },
            2,
        ),
        case("avgpool", "count_include_pad", pool([3, 7, 7], Pooling::Avg(strided(3, 2, 1))), 2),
        case("avgpool", "2x2 stride 2 tiling (a window's rows as pairs)", pool([3, 8, 6], Pooling::Avg(window(2))), 2),
        case(
            "avgpool",
            "exclude padding, ceil_mode",
            pool([3, 8, 8], Pooling::Avg(Pool2d { count_include_pad: false, ceil_mode: true, ..strided(3, 2, 1) })),
            1,
        ),
        case("adaptive_pool", "global average", pool([5, 7, 9], Pooling::AdaptiveAvg([1, 1])), 2),
        case("adaptive_pool", "average to 7x7 from 13x11", pool([2, 13, 11], Pooling::AdaptiveAvg([7, 7])), 1),
        case("adaptive_pool", "max to 3x2", pool([2, 7, 7], Pooling::AdaptiveMax([3, 2])), 1),
        composite(
            "adaptive_pool",
            "written into a concat's slices",
            &[3, 7, 7],
            |net, x| {
                let a = net.apply(x, Op::AdaptiveAvgPool { size: [2, 2] });
                let b = net.apply(x, Op::AdaptiveMaxPool { size: [2, 2] });
                net.join(Op::Concat, &[a, b])
            },
            2,
        ),
        composite(
            "elementwise",
            "batch-norm after pooling",
            &[4, 6, 6],
            |net, x| net.chain(x, [max_pool(window(2)), bn()]),
            2,
        ),
        composite(
            "elementwise",
            "channel affine",
            &[3, 5, 5],
            |net, x| net.apply(x, Op::ChannelAffine { scale: vec![0.5, 2.0, -1.0], shift: vec![0.1, 0.0, -0.3] }),
            1,
        ),
        composite(
            "elementwise",
            "add of three branches",
            &[4, 5, 5],
            |net, x| {
                let b = net.apply(x, max_pool(window_3x3_same()));
                let c = net.apply(x, Op::AvgPool(window_3x3_same()));
                net.join(Op::Add, &[x, b, c])
            },
            2,
        ),
        composite(
            "elementwise",
            "squeeze-excitation multiply",
            &[8, 6, 6],
            |net, x| {
                let gate = net.chain(
                    x,
                    [
                        Op::AdaptiveAvgPool { size: [1, 1] },
                        Op::Conv2d(conv(2, 1)),
                        act(Activation::Relu),
                        Op::Conv2d(conv(8, 1)),
                        act(Activation::Sigmoid),
                    ],
                );
                net.join(Op::Mul, &[x, gate])
            },
            2,
        ),
        composite(
            "copy",
            "concat of three branches",
            &[3, 6, 6],
            |net, x| {
                let a = net.apply(x, Op::Conv2d(conv(2, 1)));
                let b = net.apply(x, Op::Conv2d(c(5, 3, 1, 1, 1)));
                let m = net.apply(x, max_pool(window_3x3_same()));
                net.join(Op::Concat, &[a, b, m])
            },
            2,
        ),
        composite(
            "copy",
            "chunk and channel shuffle",
            &[8, 4, 4],
            |net, x| {
                let first = net.apply(x, Op::Chunk { chunks: 2, index: 0 });
                let second = net.chain(x, [Op::Chunk { chunks: 2, index: 1 }, Op::Conv2d(conv(4, 1))]);
                let joined = net.join(Op::Concat, &[first, second]);
                net.apply(joined, Op::ChannelShuffle { groups: 2 })
            },
            2,
        ),
        case("lrn", "size 5", LrnProblem { input: [7, 4, 4], size: 5, alpha: 1e-4, beta: 0.75, k: 2.0 }, 2),
        case("lrn", "even size", LrnProblem { input: [4, 3, 3], size: 2, alpha: 0.5, beta: 0.5, k: 1.0 }, 1),
        case("softmax", "over features", SoftmaxProblem { input: [3, 4, 4], classes: 10 }, 3),
    ];
    for a in ACTIVATIONS {
        let problem = |fused| ActivationProblem { input: [3, 7, 7], activation: a, fused };
        cases.push(case("activation", &format!("fused {}", spelled(a)), problem(true), 2));
        cases.push(case("activation", &format!("standalone {}", spelled(a)), problem(false), 1));
    }
    cases.push(Case {
        options: PlanOptions { binding_limit: Some(48 * 4 * 8), ..PlanOptions::default() },
        ..case("linear", "weight split across bindings", lin(&[48], 40, true, None), 2)
    });
    cases.push(Case {
        options: PlanOptions { binding_limit: Some(8 * 8 * 8 * 4 * 2), ..PlanOptions::default() },
        ..composite(
            "conv2d",
            "batch split across bindings",
            &[3, 8, 8],
            |net, x| {
                net.chain(
                    x,
                    [
                        Op::Conv2d(c(8, 3, 1, 1, 1)),
                        act(Activation::Relu),
                        Op::AdaptiveAvgPool { size: [1, 1] },
                        Op::Flatten,
                        super::net::linear(4, true),
                    ],
                )
            },
            5,
        )
    });
    cases
}
