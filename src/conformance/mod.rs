//! The shader conformance suite: small models that each exercise one kernel family with particular
//! shapes and attributes (edge cases included), run on the GPU and on the CPU reference executor.
//!
//! Each family has a problem struct (`problems.rs`) whose model is built straight from IR ops
//! (`net.rs`); the named regressions (`cases.rs`) are what `cnnc conformance` runs, and the tests add
//! property-based cases drawn over each problem's shapes and attributes. `backward.rs` holds the
//! training kernels' cases: one training step's gradients against the reference's.
//!
//! Tolerance: an output element must be within `1e-4 · max(1, max |reference|)` of the reference.
//! The reference accumulates in f64; a kernel accumulates K products in f32, so its rounding error
//! grows like K · 2⁻²⁴ · Σ|terms| (K ≤ 600 here gives ≈ 4e-5 of the output scale), and GPU `exp`/
//! `tanh` and the GELU erf approximation (|error| < 1.5e-7) stay far below that. Outputs are poisoned
//! with NaN before each run, so an element a kernel forgets to write fails.

pub mod backward;
mod cases;
pub mod export;
pub mod held;
pub mod net;
pub mod problems;
pub mod special;
mod sweep;

use std::rc::Rc;

use cnnc_compiler::inference_plan;
use cnnc_runtime::gpu::{Gpu, PlanOptions, Prepared};
use cnnc_runtime::{synthetic, Tensor};

pub use net::{Net, Value};
pub use problems::Problem;

/// Tolerance relative to the output's scale (see the module docs for why).
pub const TOLERANCE: f64 = 1e-4;

/// One conformance case: the kernel family it targets, a name, the problem, a batch size, and
/// planning options (a storage-binding limit that forces tensors to be split; texture kernels on or
/// off).
#[derive(Clone)]
pub struct Case {
    pub family: &'static str,
    pub name: String,
    pub problem: Rc<dyn Problem>,
    pub batch: usize,
    pub options: PlanOptions,
}

/// Convolution families with a storage-buffer and a texture variant: each of their cases runs on both.
const TWO_VARIANTS: [(&str, &str); 2] = [("conv2d", "conv2d_tex"), ("pointwise", "pointwise_tex")];

/// Every named case of the suite; the convolution families' cases run on both of their variants.
pub fn cases() -> Vec<Case> {
    cases::convolutions().into_iter().chain(cases::unrolled()).chain(cases::others()).flat_map(both_variants).collect()
}

/// The case as given, and for a convolution family also on its other variant: the texture kernels
/// under the texture family's name, the storage-buffer kernels with textures switched off.
pub fn both_variants(case: Case) -> Vec<Case> {
    match TWO_VARIANTS.iter().find(|(plain, _)| *plain == case.family) {
        Some((_, textured)) => vec![
            Case { family: textured, ..case.clone() },
            Case { options: PlanOptions { textures: false, ..case.options }, ..case },
        ],
        None => vec![case],
    }
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
    match run_both(gpu, case) {
        Err(e) => outcome(f64::NAN, Some(e)),
        Ok((reference, got)) => outcome(relative_error(&reference, &got), None),
    }
}

/// The reference's and the GPU's outputs for a case.
fn run_both(gpu: &Gpu, case: &Case) -> Result<(Tensor, Tensor), String> {
    let graph = case.problem.graph();
    let weights = synthetic::weights(&graph, 7);
    let mut shape = vec![case.batch];
    shape.extend(graph.node(graph.input).shape.dims());
    let input = synthetic::input(7, shape);
    let failed = |e: cnnc_runtime::RuntimeError| e.to_string();
    let reference = case.problem.reference(&graph, &weights, &input).map_err(failed)?;
    let plan = inference_plan(&graph).map_err(|e| failed(e.into()))?;
    let prepared = Prepared::with_options(gpu, &plan, &weights, case.batch, case.options).map_err(failed)?;
    // A convolution case must have run the variant it names, or it proves nothing about it.
    let targeted = TWO_VARIANTS.iter().any(|(plain, tex)| case.family == *plain || case.family == *tex)
        || case.family == "conv2d_unrolled";
    // (`conv2d_tex` cases are met by either of its epilogues, `conv2d_tex_vec4` included.)
    let runs_it = |family: &str| family == case.family || family.strip_prefix(case.family) == Some("_vec4");
    if targeted && !prepared.step_labels.iter().any(|(_, family)| runs_it(family)) {
        return Err(format!("the plan does not use the `{}` kernel", case.family));
    }
    prepared.poison();
    Ok((reference, prepared.run(&input).map_err(failed)?))
}

/// The largest difference relative to `max(1, max |reference|)`; NaN if any element is NaN.
fn relative_error(reference: &Tensor, got: &Tensor) -> f64 {
    let scale = reference.data.iter().fold(1.0f64, |m, v| m.max((*v as f64).abs()));
    let worst = reference.data.iter().zip(&got.data).fold(0.0f64, |m, (r, g)| {
        let d = (*r as f64 - *g as f64).abs();
        if d.is_nan() || m.is_nan() {
            f64::NAN
        } else {
            m.max(d)
        }
    });
    worst / scale
}

/// Runs every case, the special-value cases ([`special`]) and the held-image batches
/// ([`held`]).
pub fn run_all(gpu: &Gpu) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = cases().iter().map(|c| run_case(gpu, c)).collect();
    outcomes.extend(special::run_all(gpu));
    outcomes.extend(held::run_all(gpu));
    outcomes
}
