//! `cnnc conformance`: the shader conformance suite on this machine's adapter.

use super::stdout::errln;
use super::stdout::outln;
use std::process::ExitCode;

use cnnc::conformance::{self, TOLERANCE};
use cnnc::runtime::gpu;

#[derive(clap::Args)]
pub struct Args {
    /// The GPU adapter to test: part of its name, or a backend; see `cnnc devices`.
    #[arg(long, value_name = "NAME")]
    adapter: Option<String>,
    /// Print every case, not only the per-kernel table and failures.
    #[arg(long)]
    verbose: bool,
    /// Write the training-kernel cases (graphs, weights, inputs, labels, step options) as JSON to
    /// FILE and exit, for computing the same steps in another framework:
    /// `tests/fixtures/generate_backward.py` computes them with PyTorch autograd in float64.
    #[arg(long, value_name = "FILE")]
    export_backward: Option<std::path::PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    if let Some(path) = &args.export_backward {
        let text = conformance::export::backward_cases_json().to_string();
        return match std::fs::write(path, text) {
            Ok(()) => {
                outln!("wrote {} backward cases to {}", conformance::backward::cases().len(), path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                errln!("error: cannot write {}: {e}", path.display());
                ExitCode::from(1)
            }
        };
    }
    let device = match gpu::open(args.adapter.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            errln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    outln!(
        "adapter: {} ({:?}, {:?}), driver {} {}",
        device.info.name,
        device.info.backend,
        device.info.device_type,
        device.info.driver,
        device.info.driver_info
    );
    outln!("tolerance: {TOLERANCE:e} of the output's scale, against the CPU reference (f64 accumulation);");
    outln!(
        "training kernels (`_grad`, `dropout`, `cross_entropy`): {TOLERANCE:e} relative L2 over one step's gradients\n"
    );
    let mut outcomes = conformance::run_all(&device);
    outcomes.extend(conformance::backward::run_all(&device));
    let mut families: Vec<&str> = Vec::new();
    for o in &outcomes {
        if !families.contains(&o.family) {
            families.push(o.family);
        }
    }
    outln!("{:<18} {:>6} {:>7} {:>13}  result", "kernel", "cases", "passed", "worst error");
    for family in &families {
        let of: Vec<_> = outcomes.iter().filter(|o| o.family == *family).collect();
        let passed = of.iter().filter(|o| o.passed()).count();
        let worst =
            of.iter().map(|o| o.error).fold(0.0f64, |m, e| if e.is_nan() || m.is_nan() { f64::NAN } else { m.max(e) });
        let result = if passed == of.len() { "pass" } else { "FAIL" };
        outln!("{family:<18} {:>6} {passed:>7} {worst:>13.2e}  {result}", of.len());
    }
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed()).collect();
    if args.verbose || !failed.is_empty() {
        outln!();
        for o in outcomes.iter().filter(|o| args.verbose || !o.passed()) {
            let status = if o.passed() { "ok  " } else { "FAIL" };
            let why = o.failure.as_deref().map_or(String::new(), |f| format!(" — {f}"));
            outln!("{status} {:<18} {:<50} {:.2e}{why}", o.family, o.name, o.error);
        }
    }
    outln!("\n{} passed, {} failed", outcomes.len() - failed.len(), failed.len());
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
