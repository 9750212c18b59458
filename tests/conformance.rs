//! The shader conformance suite on this machine's adapter (Mesa's lavapipe in CI): every kernel
//! family against the CPU reference — the named regressions `cnnc conformance` runs, and cases drawn
//! by proptest over the shapes and attributes of every family (a fixed seed, so CI is reproducible;
//! `PROPTEST_CASES=N` draws N per family instead of the default).

use cnnc::compiler::graph::{Activation, Conv2d, Pad4, Pool2d};
use cnnc::conformance::net::ACTIVATIONS;
use cnnc::conformance::problems::{
    ActivationProblem, ConvProblem, CopyKind, CopyProblem, ElementwiseKind, ElementwiseProblem, LinearProblem,
    LrnProblem, PoolProblem, Pooling, SoftmaxProblem,
};
use cnnc::conformance::{self, backward, Case, Problem};
use cnnc::runtime::gpu::{self, Gpu, PlanOptions, UnrolledPolicy};
use cnnc::runtime::weights::Weights;
use cnnc::runtime::Tensor;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

#[test]
fn every_kernel_matches_the_cpu_reference() {
    let device = gpu::open(None).unwrap_or_else(|e| panic!("{e}"));
    let outcomes = conformance::run_all(&device);
    assert!(outcomes.len() >= 90, "only {} cases", outcomes.len());
    assert_all_passed(&device, &outcomes);
}

/// Fails with every failed case listed (`CNNC_VERBOSE=1` prints every case's error).
fn assert_all_passed(device: &Gpu, outcomes: &[conformance::Outcome]) {
    if std::env::var("CNNC_VERBOSE").is_ok() {
        outcomes.iter().for_each(|o| println!("{} / {}: {:.1e}", o.family, o.name, o.error));
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| format!("{} / {}: error {:e} {}", o.family, o.name, o.error, o.failure.as_deref().unwrap_or("")))
        .collect();
    assert!(failed.is_empty(), "on {}:\n{}", device.info.name, failed.join("\n"));
}

/// Every training kernel: one step's gradients, running statistics and loss on small models, on both
/// executors, against PyTorch autograd in float64 (`tests/fixtures/backward.json`, written by
/// `generate_backward.py` from `cnnc conformance --export-backward`): the CPU reference within
/// [`PYTORCH_CPU`], the GPU within the conformance tolerance; and the GPU against the CPU reference as
/// `cnnc conformance` compares them.
#[test]
fn every_training_kernel_matches_pytorch_and_the_cpu_reference() {
    let device = gpu::open(None).unwrap_or_else(|e| panic!("{e}"));
    let fixtures = pytorch_steps();
    let cases = backward::cases();
    assert!(cases.len() >= 25, "only {} backward cases", cases.len());
    assert_eq!(fixtures.len(), cases.len(), "backward.json is stale: regenerate it (see generate_backward.py)");
    let mut failed = Vec::new();
    for case in &cases {
        let label = format!("{} / {}", case.family, case.name);
        let pytorch = &fixtures.iter().find(|(l, _)| *l == label).unwrap_or_else(|| panic!("{label}: no fixture")).1;
        let cpu = backward::cpu_step(case).unwrap_or_else(|e| panic!("{label}: {e}"));
        let checks = match backward::gpu_step(&device, case) {
            Ok(gpu) => [
                ("CPU against PyTorch", backward::errors(&cpu, pytorch), PYTORCH_CPU),
                ("GPU against PyTorch", backward::errors(&gpu, pytorch), conformance::TOLERANCE),
                ("GPU against the CPU", backward::errors(&gpu, &cpu), conformance::TOLERANCE),
            ],
            Err(e) => {
                failed.push(format!("{label}: {e}"));
                continue;
            }
        };
        for (what, errors, bound) in checks {
            if let (Ok(e), Ok(_)) = (&errors, std::env::var("CNNC_VERBOSE")) {
                println!("{label}, {what}: {:.1e}", e.worst());
            }
            match errors {
                Ok(e) if e.worst() <= bound => {}
                Ok(e) => failed.push(format!("{label}, {what}: {e:?} (bound {bound:e})")),
                Err(e) => failed.push(format!("{label}, {what}: {e}")),
            }
        }
    }
    assert!(failed.is_empty(), "on {}:\n{}", device.info.name, failed.join("\n"));
}

/// The CPU reference's bound against PyTorch's float64 step: both accumulate in float64, in
/// different orders, so they differ by a few units in the 15th digit times the reductions' length.
const PYTORCH_CPU: f64 = 1e-9;

/// Every case of `tests/fixtures/backward.json`, labelled `family / name`.
fn pytorch_steps() -> Vec<(String, backward::StepOutcome)> {
    let text = std::fs::read_to_string("tests/fixtures/backward.json").expect("tests/fixtures/backward.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("backward.json is JSON");
    let tensors = |v: &serde_json::Value| {
        let mut w: Weights<f64> = Weights::default();
        for (name, t) in v.as_object().expect("tensors by name") {
            let dims = |k: &str| t[k].as_array().expect("a list").clone();
            let shape = dims("shape").iter().map(|d| d.as_u64().expect("a dim") as usize).collect();
            let data = dims("data").iter().map(|d| d.as_f64().expect("a number")).collect();
            w.insert(name.clone(), Tensor::new(shape, data));
        }
        w
    };
    json["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let label = format!("{} / {}", c["family"].as_str().unwrap(), c["name"].as_str().unwrap());
            let step = backward::StepOutcome {
                loss: c["loss"].as_f64().expect("a loss"),
                gradients: tensors(&c["gradients"]),
                running: tensors(&c["running"]),
            };
            (label, step)
        })
        .collect()
}

#[test]
fn a_wrong_step_would_fail_against_pytorch() {
    // One gradient element off by 1e-6 of the gradients' scale, a missing gradient and a lost
    // running statistic each fail the comparison.
    let case = &backward::cases()[0];
    let cpu = backward::cpu_step(case).unwrap();
    let mut off = cpu.clone();
    let name = off.gradients.names()[0].to_string();
    let scale = off.gradients.get(&name).unwrap().data.iter().fold(0f64, |m, v| m.max(v.abs()));
    off.gradients.get_mut(&name).unwrap().data[0] += 1e-6 * scale;
    assert!(backward::errors(&off, &cpu).unwrap().worst() > PYTORCH_CPU);
    let mut missing = cpu.clone();
    missing.gradients = Weights::default();
    assert!(backward::errors(&missing, &cpu).is_err());
    let bn = backward::cases().into_iter().find(|c| c.family == "batch_norm_grad").unwrap();
    let cpu = backward::cpu_step(&bn).unwrap();
    let mut lost = cpu.clone();
    lost.running = Weights::default();
    assert!(backward::errors(&lost, &cpu).is_err());
}

#[test]
fn a_wrong_kernel_would_fail() {
    // The comparison itself: NaN (an element never written) and large errors both fail.
    let wrong = conformance::Outcome { family: "conv2d", name: "x".into(), error: f64::NAN, failure: None };
    assert!(!wrong.passed());
    let off = conformance::Outcome { family: "conv2d", name: "x".into(), error: 1e-3, failure: None };
    assert!(!off.passed());
}

/// The convolution family a problem must run on: the GEMM for a 1×1 convolution with one group and
/// no padding whose positions per image come in quads, else the direct convolution.
fn conv_family(p: &ConvProblem) -> &'static str {
    let c = &p.conv;
    let out = |len: usize, s: usize| (len - 1) / s + 1;
    let positions = out(p.input[1], c.stride[0]) * out(p.input[2], c.stride[1]);
    let gemm = c.kernel == [1, 1] && c.padding == Pad4::default() && c.groups == 1 && positions % 4 == 0;
    if gemm {
        "pointwise"
    } else {
        "conv2d"
    }
}

/// Runs `cases` problems drawn from `strategy` as cases of the family `family` names for each (on
/// both variants for the convolutions), each at a batch of 1 to 3; a failure is shrunk to a small
/// problem and reported.
fn check_family<P: Problem + Clone + 'static>(
    gpu: &Gpu,
    family: impl Fn(&P) -> &'static str,
    cases: u32,
    strategy: impl Strategy<Value = P>,
) {
    check_variant(gpu, family, cases, strategy, PlanOptions::default());
}

/// [`check_family`] with planning options of its own.
fn check_variant<P: Problem + Clone + 'static>(
    gpu: &Gpu,
    family: impl Fn(&P) -> &'static str,
    cases: u32,
    strategy: impl Strategy<Value = P>,
    options: PlanOptions,
) {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let result = runner.run(&(strategy, 1..=3usize), |(problem, batch)| {
        let case = Case {
            family: family(&problem),
            name: format!("{problem:?}"),
            problem: std::rc::Rc::new(problem),
            batch,
            options,
        };
        for variant in conformance::both_variants(case) {
            let outcome = conformance::run_case(gpu, &variant);
            if !outcome.passed() {
                let why = outcome.failure.unwrap_or_default();
                return Err(TestCaseError::fail(format!("{}: error {:e} {why}", variant.family, outcome.error)));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("on {}: {e}", gpu.info.name);
    }
}

fn activation() -> impl Strategy<Value = Option<Activation>> {
    prop_oneof![Just(None), proptest::sample::select(ACTIVATIONS.to_vec()).prop_map(Some)]
}

/// Any convolution: groups, kernel, stride, dilation and asymmetric padding, on an input at least
/// as large as the dilated kernel; a folded batch-norm and an activation at random.
fn any_convolution() -> impl Strategy<Value = ConvProblem> {
    let shape = (1..=3usize, 1..=4usize, 1..=6usize, (1..=5usize, 1..=5usize), (1..=3usize, 1..=3usize), 1..=2usize);
    (shape, (0..=9usize, 0..=9usize), [0..=4usize, 0..=4, 0..=4, 0..=4], any::<bool>(), any::<bool>(), activation())
        .prop_map(
            |(
                (groups, icg, ocg, (kh, kw), (sy, sx), dilation),
                (extra_h, extra_w),
                pad,
                bias,
                batch_norm,
                activation,
            )| {
                let padding = Pad4 { top: pad[0] % kh, bottom: pad[1] % kh, left: pad[2] % kw, right: pad[3] % kw };
                let conv = Conv2d {
                    in_channels: 0,
                    out_channels: groups * ocg,
                    kernel: [kh, kw],
                    stride: [sy, sx],
                    padding,
                    dilation: [dilation, dilation],
                    groups,
                    bias,
                };
                let input = [groups * icg, dilation * (kh - 1) + 1 + extra_h, dilation * (kw - 1) + 1 + extra_w];
                ConvProblem { batch_norm, activation, ..ConvProblem::new(input, conv) }
            },
        )
}

/// A shape-keeping convolution with a residual add of its input fused in (odd kernels, "same"
/// padding, stride 1), 1×1 ones included.
fn residual_convolution() -> impl Strategy<Value = ConvProblem> {
    (1..=20usize, proptest::sample::select(vec![1usize, 3, 5]), 1..=9usize, 1..=9usize, any::<bool>(), activation())
        .prop_map(|(channels, k, h, w, batch_norm, activation)| {
            let conv = Conv2d {
                in_channels: 0,
                out_channels: channels,
                kernel: [k, k],
                stride: [1, 1],
                padding: Pad4::uniform(k / 2),
                dilation: [1, 1],
                groups: 1,
                bias: !batch_norm,
            };
            ConvProblem {
                batch_norm,
                residual: true,
                activation,
                ..ConvProblem::new([channels, h.max(k), w.max(k)], conv)
            }
        })
}

/// Any pooling: max (with dilation) or average (with or without padding in the divisor), padding at
/// most half the kernel as PyTorch requires, `ceil_mode`, and adaptive pooling to any size.
fn any_pooling() -> impl Strategy<Value = PoolProblem> {
    let window = (
        (1..=4usize, 1..=4usize),
        (1..=3usize, 1..=3usize),
        [0..=2usize, 0..=2],
        1..=2usize,
        any::<bool>(),
        any::<bool>(),
    );
    let windowed = (window, 1..=4usize, (0..=6usize, 0..=6usize), any::<bool>()).prop_map(
        |(((kh, kw), (sy, sx), pad, dilation, ceil_mode, count_include_pad), channels, (extra_h, extra_w), is_max)| {
            let (top, left) = (pad[0].min(kh / 2), pad[1].min(kw / 2));
            let dilation = if is_max { dilation } else { 1 };
            let p = Pool2d {
                kernel: [kh, kw],
                stride: [sy, sx],
                padding: Pad4 { top, bottom: top, left, right: left },
                dilation: [dilation, dilation],
                ceil_mode,
                count_include_pad,
            };
            let input = [channels, dilation * (kh - 1) + 1 + extra_h, dilation * (kw - 1) + 1 + extra_w];
            PoolProblem { input, pooling: if is_max { Pooling::Max(p) } else { Pooling::Avg(p) } }
        },
    );
    let adaptive = (1..=4usize, (1..=9usize, 1..=9usize), (1..=4usize, 1..=4usize), any::<bool>()).prop_map(
        |(channels, (h, w), (oh, ow), is_max)| PoolProblem {
            input: [channels, h, w],
            pooling: if is_max { Pooling::AdaptiveMax([oh, ow]) } else { Pooling::AdaptiveAvg([oh, ow]) },
        },
    );
    prop_oneof![windowed, adaptive]
}

/// Any linear layer, on a flat input or after a flatten.
fn any_linear() -> impl Strategy<Value = LinearProblem> {
    let input =
        prop_oneof![(1..=70usize).prop_map(|f| vec![f]), (1..=4usize, 1..=4usize).prop_map(|(c, s)| vec![c, s, s])];
    (input, 1..=40usize, any::<bool>(), activation())
        .prop_map(|(input, out_features, bias, activation)| LinearProblem { input, out_features, bias, activation })
}

/// Any activation, on its own or fused into the pooling before it.
fn any_activation() -> impl Strategy<Value = ActivationProblem> {
    ((1..=5usize, 3..=8usize, 3..=8usize), proptest::sample::select(ACTIVATIONS.to_vec()), any::<bool>())
        .prop_map(|((c, h, w), activation, fused)| ActivationProblem { input: [c, h, w], activation, fused })
}

/// Local response normalisation with any window (even ones included) and constants.
fn any_lrn() -> impl Strategy<Value = LrnProblem> {
    ((1..=9usize, 1..=5usize, 1..=5usize), 1..=7usize, 1e-5..1.0f64, 0.25..1.0f64, 0.5..2.0f64)
        .prop_map(|((c, h, w), size, alpha, beta, k)| LrnProblem { input: [c, h, w], size, alpha, beta, k })
}

/// Softmax over any number of classes.
fn any_softmax() -> impl Strategy<Value = SoftmaxProblem> {
    ((1..=4usize, 1..=4usize), 1..=40usize).prop_map(|((c, s), classes)| SoftmaxProblem { input: [c, s, s], classes })
}

/// Any elementwise computation: sums of 2 to 4 values, same-shape and per-channel products,
/// per-channel affines with any scale and shift, and batch-norm.
fn any_elementwise() -> impl Strategy<Value = ElementwiseProblem> {
    let shape = (1..=6usize, 1..=7usize, 1..=7usize);
    let affine = proptest::collection::vec((-2.0..2.0f64, -1.0..1.0f64), 6);
    (shape, 0..5usize, 2..=4usize, affine).prop_map(|((c, h, w), which, terms, pairs)| {
        let op = match which {
            0 => ElementwiseKind::Add { terms },
            1 => ElementwiseKind::Mul { per_channel: false },
            2 => ElementwiseKind::Mul { per_channel: true },
            3 => ElementwiseKind::Affine {
                scale: pairs[..c].iter().map(|p| p.0).collect(),
                shift: pairs[..c].iter().map(|p| p.1).collect(),
            },
            _ => ElementwiseKind::BatchNorm,
        };
        ElementwiseProblem { input: [c, h, w], op }
    })
}

/// Any channel move: concats with slices written in place and copied, chunks and shuffles.
fn any_copy() -> impl Strategy<Value = CopyProblem> {
    let spatial = (1..=6usize, 1..=6usize);
    let concat = (1..=5usize, spatial.clone(), proptest::collection::vec(1..=20usize, 0..=3))
        .prop_map(|(c, (h, w), convs)| CopyProblem { input: [c, h, w], op: CopyKind::Concat { convs } });
    let chunk = (1..=4usize, 1..=4usize, spatial.clone(), 0..4usize).prop_map(|(chunks, per, (h, w), index)| {
        CopyProblem { input: [chunks * per, h, w], op: CopyKind::Chunk { chunks, index: index % chunks } }
    });
    let shuffle = (1..=4usize, 1..=4usize, spatial).prop_map(|(groups, per, (h, w))| CopyProblem {
        input: [groups * per, h, w],
        op: CopyKind::Shuffle { groups },
    });
    prop_oneof![concat, chunk, shuffle]
}

#[test]
fn drawn_problems_match_the_cpu_reference() {
    let device = gpu::open(None).unwrap_or_else(|e| panic!("{e}"));
    check_family(&device, conv_family, 16, any_convolution());
    check_family(&device, conv_family, 8, residual_convolution());
    // Inference writes small convolutions of one group out for large batches only: drawn ones run
    // written out at any batch.
    let written_out =
        any_convolution().prop_filter("one group, a window", |p| p.conv.groups == 1 && p.conv.kernel != [1, 1]);
    check_variant(
        &device,
        |_| "conv2d_unrolled",
        12,
        written_out,
        PlanOptions { unrolled: UnrolledPolicy::Always, ..PlanOptions::default() },
    );
    check_family(&device, |_| "pool", 16, any_pooling());
    check_family(&device, |_| "linear", 8, any_linear());
    check_family(&device, |_| "activation", 8, any_activation());
    check_family(&device, |_| "lrn", 8, any_lrn());
    check_family(&device, |_| "softmax", 4, any_softmax());
    check_family(&device, |_| "elementwise", 12, any_elementwise());
    check_family(&device, |_| "copy", 12, any_copy());
}
