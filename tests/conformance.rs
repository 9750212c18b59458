//! The shader conformance suite on this machine's adapter (Mesa's lavapipe in CI): every kernel
//! family against the CPU reference, edge cases and binding splits included.

use cnnc::conformance;
use cnnc::runtime::gpu;

#[test]
fn every_kernel_matches_the_cpu_reference() {
    let device = gpu::open(None).unwrap_or_else(|e| panic!("{e}"));
    let outcomes = conformance::run_all(&device);
    assert!(outcomes.len() >= 50, "only {} cases", outcomes.len());
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| format!("{} / {}: error {:e} {}", o.family, o.name, o.error, o.failure.as_deref().unwrap_or("")))
        .collect();
    assert!(failed.is_empty(), "on {}:\n{}", device.info.name, failed.join("\n"));
}

#[test]
fn a_wrong_kernel_would_fail() {
    // The comparison itself: NaN (an element never written) and large errors both fail.
    let wrong = conformance::Outcome { family: "conv2d", name: "x".into(), error: f64::NAN, failure: None };
    assert!(!wrong.passed());
    let off = conformance::Outcome { family: "conv2d", name: "x".into(), error: 1e-3, failure: None };
    assert!(!off.passed());
}
