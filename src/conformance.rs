//! The shader conformance suite: small models that each exercise one kernel family with particular
//! shapes and attributes (edge cases included), run on the GPU and on the CPU reference executor.
//!
//! Tolerance: an output element must be within `1e-4 · max(1, max |reference|)` of the reference.
//! The reference accumulates in f64; a kernel accumulates K products in f32, so its rounding error
//! grows like K · 2⁻²⁴ · Σ|terms| (K ≤ 600 here gives ≈ 4e-5 of the output scale), and GPU `exp`/
//! `tanh` and the GELU erf approximation (|error| < 1.5e-7) stay far below that. Outputs are poisoned
//! with NaN before each run, so an element a kernel forgets to write fails.

use std::path::Path;

use cnnc_compiler::{compile_bytes, inference_plan, Expanded};
use cnnc_runtime::gpu::{Gpu, PlanOptions, Prepared};
use cnnc_runtime::{cpu, synthetic, RuntimeError, Tensor};

/// Tolerance relative to the output's scale (see the module docs for why).
pub const TOLERANCE: f64 = 1e-4;

/// One conformance case: the kernel family it targets, a name, a spec, a batch size, and planning
/// options (a storage-binding limit that forces tensors to be split; texture kernels on or off).
pub struct Case {
    pub family: &'static str,
    pub name: String,
    pub spec: String,
    pub batch: usize,
    pub options: PlanOptions,
}

fn case(family: &'static str, name: &str, spec: &str, batch: usize) -> Case {
    Case { family, name: name.to_string(), spec: spec.to_string(), batch, options: PlanOptions::default() }
}

/// Convolution families with a storage-buffer and a texture variant: each of their cases runs on both.
const TWO_VARIANTS: [(&str, &str); 2] = [("conv2d", "conv2d_tex"), ("pointwise", "pointwise_tex")];

/// Every case of the suite.
pub fn cases() -> Vec<Case> {
    let mut cases = vec![
        case("conv2d", "1x1 input, 3x3 kernel, padding 1", "input: [3, 1, 1]\nbody: [conv(8, 3, pad=1)]", 1),
        case("conv2d", "odd sizes, stride 2", "input: [3, 13, 11]\nbody: [conv(12, 3, stride=2)]", 3),
        case("conv2d", "stride larger than kernel", "input: [4, 17, 17]\nbody: [conv(8, 2, stride=3)]", 2),
        case("conv2d", "padding at its maximum", "input: [2, 5, 5]\nbody: [conv(4, 5, pad=4)]", 1),
        case("conv2d", "asymmetric padding", "input: [3, 9, 8]\nbody:\n  - conv(8, 3, pad=[0, 2, 1, 0], stride=2)", 2),
        case("conv2d", "\"same\" padding, stride 2", "input: [3, 10, 7]\nbody: [conv(8, 3, stride=2, pad=\"same\")]", 1),
        case("conv2d", "dilation 2", "input: [4, 12, 12]\nbody: [conv(8, 3, dilation=2, pad=2)]", 1),
        case("conv2d", "rectangular kernel", "input: [4, 9, 9]\nbody:\n  - conv(8, [1, 7], pad=[0, 3])", 1),
        case("conv2d", "groups = channels (depthwise)", "input: [6, 10, 10]\nbody: [conv(6, 3, groups=6, pad=1)]", 2),
        case("conv2d", "depthwise with multiplier", "input: [4, 7, 7]\nbody: [conv(8, 5, groups=4, pad=2, stride=2)]", 1),
        case("conv2d", "groups = 2, outputs not a multiple of 4", "input: [4, 6, 6]\nbody: [conv(6, 3, groups=2)]", 1),
        case("conv2d", "output channels not a multiple of 4", "input: [3, 8, 8]\nbody: [conv(5, 3, pad=1)]", 3),
        case("conv2d", "1x1 convolution, no bias", "input: [16, 7, 7]\nbody: [conv(24, 1, bias=false)]", 2),
        case("conv2d", "folded batch-norm and ReLU", "input: [3, 8, 8]\nbody: [conv(8, 3, bias=false), bn, relu]", 2),
        case("conv2d", "fused residual add and ReLU6", "input: [8, 6, 6]\nbody:\n  - residual: [conv(8, 3, pad=1), bn]\n  - relu6", 2),
        case("conv2d", "many input channels", "input: [64, 4, 4]\nbody: [conv(16, 3, pad=1)]", 1),
        case("conv2d", "20 outputs: a partial last tile of 16", "input: [3, 9, 9]\nbody: [conv(20, 3, pad=1)]", 2),
        case("conv2d", "16 outputs per group, stride 2", "input: [6, 9, 7]\nbody: [conv(32, 3, stride=2, pad=1, groups=2)]", 2),
        case("conv2d", "stem-like 7x7, stride 2, 32 outputs", "input: [3, 19, 19]\nbody: [conv(32, 7, stride=2, pad=3)]", 1),
        case("conv2d", "written into a concat's slices", "input: [3, 6, 6]\nbody:\n  - concat: [identity, a: conv(16, 3, pad=1), b: conv(5, 3, pad=1), c: conv(4, 3, pad=1)]", 2),
        case("pointwise", "written into a concat's slices", "input: [8, 4, 4]\nbody:\n  - concat: [a: conv(4, 1), identity, b: conv(20, 1)]", 2),
        case("pointwise", "1x1, outputs not a multiple of 16", "input: [16, 8, 8]\nbody: [conv(20, 1)]", 2),
        case("pointwise", "1x1 with folded batch-norm, residual add and ReLU", "input: [24, 4, 6]\nbody:\n  - residual: [conv(24, 1, bias=false), bn]\n  - relu", 3),
        case("pointwise", "1x1 with stride 2 (subsampled, then a GEMM)", "input: [8, 8, 9]\nbody: [conv(16, 1, stride=2)]", 2),
        case("pointwise", "1x1 with many input channels", "input: [96, 4, 4]\nbody: [conv(40, 1), relu6]", 1),
        case("linear", "features not a multiple of 4", "input: [37]\nbody: [linear(10)]", 3),
        case("linear", "batch of 5, no bias, ReLU", "input: [64]\nbody: [linear(33, bias=false), relu]", 5),
        case("linear", "after flatten", "input: [4, 3, 3]\nbody: [flatten, linear(7)]", 2),
        case("maxpool", "3x3 stride 2 ceil_mode", "input: [3, 14, 14]\nbody: [maxpool(3, stride=2, ceil_mode=true)]", 2),
        case("maxpool", "padding and dilation", "input: [2, 9, 9]\nbody: [maxpool(3, stride=2, pad=1, dilation=2)]", 1),
        case("maxpool", "kernel as large as the input", "input: [3, 5, 5]\nbody: [maxpool(5)]", 1),
        case("maxpool", "written into a concat's slices", "input: [3, 6, 6]\nbody:\n  - concat: [conv(2, 1), maxpool(3, stride=1, pad=1), avgpool(3, stride=1, pad=1)]", 2),
        case("avgpool", "count_include_pad", "input: [3, 7, 7]\nbody: [avgpool(3, stride=2, pad=1)]", 2),
        case("avgpool", "exclude padding, ceil_mode", "input: [3, 8, 8]\nbody: [avgpool(3, stride=2, pad=1, count_include_pad=false, ceil_mode=true)]", 1),
        case("adaptive_pool", "global average", "input: [5, 7, 9]\nbody: [global_avgpool]", 2),
        case("adaptive_pool", "average to 7x7 from 13x11", "input: [2, 13, 11]\nbody: [adaptive_avgpool(7)]", 1),
        case("adaptive_pool", "max to 3x2", "input: [2, 7, 7]\nbody:\n  - adaptive_maxpool([3, 2])", 1),
        case("adaptive_pool", "written into a concat's slices", "input: [3, 7, 7]\nbody:\n  - concat: [adaptive_avgpool(2), adaptive_maxpool(2)]", 2),
        case("elementwise", "batch-norm after pooling", "input: [4, 6, 6]\nbody: [maxpool(2), bn]", 2),
        case("elementwise", "channel affine", "input: [3, 5, 5]\nbody: ['channel_affine(scale=[0.5, 2.0, -1.0], shift=[0.1, 0.0, -0.3])']", 1),
        case("elementwise", "add of three branches", "input: [4, 5, 5]\nbody:\n  - add: [identity, [maxpool(3, stride=1, pad=1)], [avgpool(3, stride=1, pad=1)]]", 2),
        case("elementwise", "squeeze-excitation multiply", "input: [8, 6, 6]\nbody:\n  - mul: [identity, [global_avgpool, conv(2, 1), relu, conv(8, 1), sigmoid]]", 2),
        case("copy", "concat of three branches", "input: [3, 6, 6]\nbody:\n  - concat: [a: conv(2, 1), b: conv(5, 3, pad=1), maxpool(3, stride=1, pad=1)]", 2),
        case("copy", "chunk and channel shuffle", "input: [8, 4, 4]\nbody:\n  - concat: [chunk(2, 0), [chunk(2, 1), conv(4, 1)]]\n  - channel_shuffle(2)", 2),
        case("lrn", "size 5", "input: [7, 4, 4]\nbody: [lrn(5, alpha=0.0001, beta=0.75, k=2.0)]", 2),
        case("lrn", "even size", "input: [4, 3, 3]\nbody: [lrn(2, alpha=0.5, beta=0.5)]", 1),
        case("softmax", "over features", "input: [3, 4, 4]\nbody: [flatten, linear(10), softmax]", 3),
    ];
    for act in ["relu", "relu6", "leaky_relu(0.2)", "silu", "sigmoid", "hardswish", "hardsigmoid", "tanh", "gelu"] {
        cases.push(case(
            "activation",
            &format!("fused {act}"),
            &format!("input: [3, 7, 7]\nbody: [maxpool(3, stride=1), {act}]"),
            2,
        ));
        cases.push(case("activation", &format!("standalone {act}"), &format!("input: [3, 7, 7]\nbody: [{act}]"), 1));
    }
    cases.push(Case {
        family: "linear",
        name: "weight split across bindings".into(),
        spec: "input: [48]\nbody: [linear(40)]".into(),
        batch: 2,
        options: PlanOptions { binding_limit: Some(48 * 4 * 8), ..PlanOptions::default() },
    });
    cases.push(Case {
        family: "conv2d",
        name: "batch split across bindings".into(),
        spec: "input: [3, 8, 8]\nbody: [conv(8, 3, pad=1), relu, global_avgpool, flatten, linear(4)]".into(),
        batch: 5,
        options: PlanOptions { binding_limit: Some(8 * 8 * 8 * 4 * 2), ..PlanOptions::default() },
    });
    let mut both = Vec::with_capacity(cases.len() * 2);
    for case in cases {
        if let Some((_, textured)) = TWO_VARIANTS.iter().find(|(plain, _)| *plain == case.family) {
            both.push(Case { family: textured, name: case.name.clone(), spec: case.spec.clone(), ..case });
            both.push(Case { options: PlanOptions { textures: false, ..case.options }, ..case });
        } else {
            both.push(case);
        }
    }
    both
}

/// The outcome of one case.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub family: &'static str,
    pub name: String,
    /// Largest error relative to the output scale; NaN when an element was never written.
    pub error: f64,
    /// Why the case could not run, if it could not.
    pub failure: Option<String>,
}

impl Outcome {
    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none() && self.error <= TOLERANCE
    }
}

/// Runs one case on `gpu` against the CPU reference.
pub fn run_case(gpu: &Gpu, case: &Case) -> Outcome {
    let outcome = |error, failure| Outcome { family: case.family, name: case.name.clone(), error, failure };
    let text = format!("model: conformance\n{}\n", case.spec);
    let compilation = compile_bytes(Path::new("conformance.yaml"), text.into_bytes());
    let graph = match compilation.result {
        Ok(Expanded::Model(g)) => g,
        Err(diags) => {
            let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
            return outcome(f64::NAN, Some(format!("the case's spec does not compile: {}", messages.join("; "))));
        }
        Ok(Expanded::Library(_)) => return outcome(f64::NAN, Some("the case's spec is not a model".into())),
    };
    let weights = synthetic::weights(&graph, 7);
    let mut shape = vec![case.batch];
    shape.extend(graph.node(graph.input).shape.dims());
    let input = synthetic::input(7, shape);
    let result: Result<(Tensor, Tensor), String> = (|| {
        let failed = |e: RuntimeError| e.to_string();
        let reference = cpu::run(&graph, &weights, &input).map_err(failed)?;
        let plan = inference_plan(&graph).map_err(|e| failed(e.into()))?;
        let prepared = Prepared::with_options(gpu, &plan, &weights, case.batch, case.options).map_err(failed)?;
        // A convolution case must have run the variant it names, or it proves nothing about it.
        let targeted = TWO_VARIANTS.iter().any(|(plain, tex)| case.family == *plain || case.family == *tex);
        // (`conv2d_tex` cases are met by either of its epilogues, `conv2d_tex_vec4` included.)
        let runs_it = |family: &str| family == case.family || family.strip_prefix(case.family) == Some("_vec4");
        if targeted && !prepared.step_labels.iter().any(|(_, family)| runs_it(family)) {
            return Err(format!("the plan does not use the `{}` kernel", case.family));
        }
        prepared.poison();
        Ok((reference, prepared.run(&input).map_err(failed)?))
    })();
    match result {
        Err(e) => outcome(f64::NAN, Some(e)),
        Ok((reference, got)) => {
            let scale = reference.data.iter().fold(1.0f64, |m, v| m.max((*v as f64).abs()));
            let worst = reference.data.iter().zip(&got.data).fold(0.0f64, |m, (r, g)| {
                let d = (*r as f64 - *g as f64).abs();
                if d.is_nan() {
                    f64::NAN
                } else {
                    m.max(d)
                }
            });
            outcome(worst / scale, None)
        }
    }
}

/// Runs every case.
pub fn run_all(gpu: &Gpu) -> Vec<Outcome> {
    cases().iter().map(|c| run_case(gpu, c)).collect()
}
