//! Special values through the kernels: NaN, infinities and −0.0 give PyTorch's results (its outputs for
//! the same inputs, `torch.nn.functional` in torch 2.x, are the expected values), on the GPU and on
//! the CPU reference alike. Some drivers flush or reorder special values; `cnnc conformance` shows
//! such a driver as a failed `special_values` case, naming the op and what it gave.

use std::path::Path;

use cnnc_compiler::{compile_bytes, inference_plan, Expanded, Graph};
use cnnc_runtime::gpu::{Gpu, Prepared};
use cnnc_runtime::weights::Weights;
use cnnc_runtime::{cpu, Tensor};

use super::Outcome;

const NAN: f32 = f32::NAN;
const INF: f32 = f32::INFINITY;
const MAX: f32 = f32::MAX;
/// NaN, both infinities, a negative, zero and a positive number.
const ROW: [f32; 6] = [NAN, -INF, INF, -1.0, 0.0, 2.0];

/// One case: layers (separated by `; `) applied to a `[1, 1, 6]` input, and PyTorch's output.
pub struct SpecialCase {
    pub body: &'static str,
    pub input: [f32; 6],
    pub pytorch: Vec<f32>,
}

/// NaN, both infinities, −0.0 and float32's largest values of both signs.
const EDGES: [f32; 6] = [NAN, -INF, INF, -0.0, MAX, -MAX];

/// Every case: every activation over [`EDGES`] (PyTorch keeps −0.0 where its formula does: relu,
/// relu6, leaky relu, silu, hardswish, tanh and gelu of −0.0 are −0.0), the activations that clamp (relu,
/// relu6, hardsigmoid, hardswish) over numbers too, relu fused into a
/// convolution's epilogue, max pooling (plain and adaptive) over windows of NaN among numbers,
/// all -inf and all NaN, and of −0.0 and 0.0 (the first of equals kept; average pooling of −0.0s
/// is +0.0), softmax over rows holding NaN, +inf, only -inf, or -inf among numbers
/// (PyTorch: NaN everywhere in the first three, zero where -inf in the last), and float32's
/// largest values, where PyTorch's float32 arithmetic overflows: hard-swish (`x · 6` before `/ 6`,
/// plain and fused), average pooling (plain, adaptive, global) of `FLT_MAX`s, even when later
/// values cancel them, give ∞, and local response normalisation of `FLT_MAX` gives 0.
pub fn cases() -> Vec<SpecialCase> {
    let third = 1.0 / 3.0;
    let windows = [NAN, 3.0, -INF, -INF, NAN, NAN];
    let zeros = [-0.0, 0.0, 0.0, -0.0, -0.0, -0.0];
    let cancelling = [MAX, MAX, -MAX, -MAX, 1.0, 1.0];
    let extremes = [MAX, -MAX, MAX, MAX, 1.0, -1.0];
    let sums = [MAX, MAX, MAX, -MAX, 1.0, 3.0];
    let case = |body, input, pytorch| SpecialCase { body, input, pytorch };
    let half_max = MAX / 2.0;
    vec![
        case("relu", ROW, vec![NAN, 0.0, INF, 0.0, 0.0, 2.0]),
        case("relu", EDGES, vec![NAN, 0.0, INF, -0.0, MAX, 0.0]),
        case("relu6", EDGES, vec![NAN, 0.0, 6.0, -0.0, 6.0, 0.0]),
        case("leaky_relu(0.5)", EDGES, vec![NAN, -INF, INF, -0.0, MAX, -half_max]),
        case("sigmoid", EDGES, vec![NAN, 0.0, 1.0, 0.5, 1.0, 0.0]),
        case("silu", EDGES, vec![NAN, NAN, INF, -0.0, MAX, -0.0]),
        case("tanh", EDGES, vec![NAN, -1.0, 1.0, -0.0, 1.0, -1.0]),
        // PyTorch's float64 and CUDA kernels, x · ½ · (1 + erf(x/√2)). Its float32 CPU kernel,
        // through a vectorised erf, gives NaN at +∞ and ∞ at FLT_MAX instead.
        case("gelu", EDGES, vec![NAN, NAN, INF, -0.0, MAX, -0.0]),
        case("hardsigmoid", EDGES, vec![NAN, 0.0, 1.0, 0.5, 1.0, 0.0]),
        case("hardswish", EDGES, vec![NAN, NAN, INF, -0.0, INF, -0.0]),
        case("conv(1, 1, bias=false); relu6", EDGES, vec![NAN, 0.0, 6.0, 0.0, 6.0, 0.0]),
        case("relu6", ROW, vec![NAN, 0.0, 6.0, 0.0, 0.0, 2.0]),
        case("hardsigmoid", ROW, vec![NAN, 0.0, 1.0, third, 0.5, 5.0 / 6.0]),
        case("hardswish", ROW, vec![NAN, NAN, INF, -third, 0.0, 5.0 / 3.0]),
        // A 1×1 convolution of weight 1, so the relu runs in the convolution's epilogue.
        case("conv(1, 1, bias=false); relu", ROW, vec![NAN, 0.0, INF, 0.0, 0.0, 2.0]),
        case("maxpool([1, 2])", windows, vec![NAN, -INF, NAN]),
        // Of equal values the first is kept (PyTorch's `val > max`): −0.0 before 0.0 stays −0.0.
        case("maxpool([1, 2])", zeros, vec![-0.0, 0.0, -0.0]),
        case("adaptive_maxpool([1, 3])", zeros, vec![-0.0, 0.0, -0.0]),
        // Sums start at +0.0, so an average of −0.0s is +0.0.
        case("avgpool([1, 2])", zeros, vec![0.0, 0.0, 0.0]),
        case("adaptive_maxpool([1, 3])", windows, vec![NAN, -INF, NAN]),
        case("flatten; softmax", ROW, vec![NAN; 6]),
        case("flatten; softmax", [-INF; 6], vec![NAN; 6]),
        case("flatten; softmax", [INF, 1.0, 2.0, 3.0, -INF, 0.0], vec![NAN; 6]),
        case(
            "flatten; softmax",
            [-INF, -INF, 0.0, 1.0, 2.0, -INF],
            vec![0.0, 0.0, 0.090_030_57, 0.244_728_48, 0.665_240_94, 0.0],
        ),
        case("hardswish", extremes, vec![INF, -0.0, INF, INF, 2.0 / 3.0, -third]),
        case("conv(1, 1, bias=false); hardswish", extremes, vec![INF, -0.0, INF, INF, 2.0 / 3.0, -third]),
        case("avgpool([1, 2])", sums, vec![INF, 0.0, 2.0]),
        case("adaptive_avgpool([1, 3])", sums, vec![INF, 0.0, 2.0]),
        case("global_avgpool", [MAX; 6], vec![INF]),
        // Windows add their values in order in float32, as PyTorch's pooling does.
        case("avgpool([1, 4])", cancelling, vec![INF]),
        case("adaptive_avgpool([1, 2])", cancelling, vec![INF, -1.134_274_5e38]),
        // Local response normalisation as PyTorch composes it: x / (k + alpha · avg(x²))^beta,
        // each step in float32 (FLT_MAX² is ∞, and FLT_MAX / ∞ is 0).
        case("lrn(3)", EDGES, vec![NAN, NAN, NAN, -0.0, 0.0, -0.0]),
        case("lrn(2, alpha=1.0, beta=0.5, k=0.0)", EDGES, vec![NAN, NAN, NAN, NAN, 0.0, -0.0]),
        // beta 0: the power is 1, whatever the base; beta < 0: ∞ to it is 0.
        case("lrn(3, beta=0.0)", EDGES, vec![NAN, -INF, INF, -0.0, MAX, -MAX]),
        case("lrn(3, beta=-0.5)", EDGES, vec![NAN, -INF, INF, -0.0, INF, -INF]),
        // Inference batch-norm as PyTorch's kernel: α and β in float32 (β = 0 - 1e38 · 632.5 is
        // -∞), then x · α + β fused, so FLT_MAX · α past float32 plus -∞ is -∞, not NaN.
        case("bn(eps=1e-05)", EDGES, vec![NAN, -INF, NAN, -INF, -INF, -INF]),
        // Sums start at +0.0, so products of −0.0 sum to +0.0, as in PyTorch.
        case("conv(1, 1, bias=false)", [-0.0; 6], vec![0.0; 6]),
        case("flatten; linear(1, bias=false)", [-0.0; 6], vec![0.0]),
        case("conv(1, 1, bias=false); conv(1, 1, bias=false)", EDGES, vec![NAN, -INF, INF, 0.0, MAX, -MAX]),
        // Constants are float32, as a PyTorch model holds them: a scale of 1e39 is ∞.
        case("channel_affine([1e39], [0])", EDGES, vec![NAN, -INF, INF, NAN, INF, -INF]),
    ]
}

impl SpecialCase {
    /// The model: the case's layers on `[1, 1, 6]` inputs.
    pub fn graph(&self) -> Graph {
        let items: String = self.body.split("; ").map(|item| format!("  - {item}\n")).collect();
        let text = format!("model: special\ninput: [1, 1, 6]\nbody:\n{items}");
        match compile_bytes(Path::new("special_values.yaml"), text.into_bytes()).result {
            Ok(Expanded::Model(graph)) => graph,
            _ => panic!("the special-values case `{}` compiles", self.body),
        }
    }

    /// Its weights: a convolution's single weight is 1, a linear layer's six weights are 1; a
    /// batch-norm's channel has weight 2, bias 0,
    /// running mean 1e38 and running variance 1e-30, so that its folded shift `bias - mean · α` is
    /// past float32's range.
    pub fn weights(&self) -> Weights {
        let mut weights = Weights::default();
        let one = |v: f32| Tensor::new(vec![1], vec![v]);
        for (i, item) in self.body.split("; ").enumerate() {
            if item.starts_with("conv") {
                weights.insert(format!("{i}.weight"), Tensor::new(vec![1, 1, 1, 1], vec![1.0]));
            }
        }
        if self.body.starts_with("flatten; linear") {
            weights.insert("1.weight".into(), Tensor::new(vec![1, 6], vec![1.0; 6]));
        }
        if self.body.starts_with("bn") {
            for (name, value) in [("weight", 2.0), ("bias", 0.0), ("running_mean", 1e38), ("running_var", 1e-30)] {
                weights.insert(format!("0.{name}"), one(value));
            }
        }
        weights
    }

    pub fn input(&self) -> Tensor {
        Tensor::new(vec![1, 1, 1, 6], self.input.to_vec())
    }

    /// Whether `output` is PyTorch's: NaN where NaN, infinities exactly, zero with its sign, the
    /// rest to float32 rounding.
    pub fn matches(&self, output: &[f32]) -> bool {
        output.len() == self.pytorch.len()
            && output.iter().zip(&self.pytorch).all(|(a, b)| {
                let zero_sign = *b != 0.0 || a.is_sign_negative() == b.is_sign_negative();
                (a.is_nan() && b.is_nan())
                    || (a.is_infinite() && a == b)
                    || (a.is_finite() && (a - b).abs() <= 1e-6 * b.abs().max(1.0) && zero_sign)
            })
    }

    /// The CPU reference's output.
    pub fn on_cpu(&self) -> Result<Tensor, String> {
        cpu::run(&self.graph(), &self.weights(), &self.input()).map_err(|e| e.to_string())
    }

    /// The GPU's output.
    pub fn on_gpu(&self, gpu: &Gpu) -> Result<Tensor, String> {
        let plan = inference_plan(&self.graph()).map_err(|e| e.to_string())?;
        let prepared = Prepared::new(gpu, &plan, &self.weights(), 1).map_err(|e| e.to_string())?;
        prepared.run(&self.input()).map_err(|e| e.to_string())
    }
}

/// Runs every case on `gpu`: an outcome of family `special_values` each, failed with what the GPU
/// gave when it is not PyTorch's result.
pub fn run_all(gpu: &Gpu) -> Vec<Outcome> {
    cases()
        .iter()
        .map(|case| {
            let failure = match case.on_gpu(gpu) {
                Err(e) => Some(e),
                Ok(out) if !case.matches(&out.data) => {
                    Some(format!("gave {:?} where PyTorch gives {:?}", out.data, case.pytorch))
                }
                Ok(_) => None,
            };
            Outcome { family: "special_values", name: case.body.to_string(), error: 0.0, failure }
        })
        .collect()
}
