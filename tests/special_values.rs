//! NaN, infinities and −0.0 flow through both executors as they do in PyTorch: every activation
//! over NaN, ±∞, −0.0 and ±FLT_MAX, relu, relu6, hardsigmoid and hardswish keep NaN (fused into a
//! convolution too), max pooling returns NaN for a window
//! holding one and -inf for a window of -inf, and float32's largest values overflow to ∞ where
//! PyTorch's float32 arithmetic does (hard-swish, average pooling). The cases and PyTorch's values are in
//! `cnnc::conformance::special`, which `cnnc conformance` also runs on the user's GPU.

use cnnc::conformance::special;
use cnnc::runtime::gpu;

#[test]
fn special_values_propagate_as_in_pytorch_on_both_executors() {
    let device = gpu::open(None).unwrap_or_else(|e| panic!("{e}"));
    let cases = special::cases();
    assert!(cases.len() >= 7);
    for case in &cases {
        let on_cpu = case.on_cpu().unwrap();
        assert!(case.matches(&on_cpu.data), "{} on the CPU: {:?}, PyTorch {:?}", case.body, on_cpu.data, case.pytorch);
        let on_gpu = case.on_gpu(&device).unwrap();
        let adapter = &device.info.name;
        assert!(
            case.matches(&on_gpu.data),
            "{} on {adapter}: {:?}, PyTorch {:?}",
            case.body,
            on_gpu.data,
            case.pytorch
        );
    }
    // A wrong value, or a NaN turned into a number, is no match.
    let relu = &cases[0];
    assert!(!relu.matches(&[0.0, 0.0, f32::INFINITY, 0.0, 0.0, 2.0]));
    assert!(!relu.matches(&[f32::NAN, 0.0, f32::INFINITY, 0.0, 0.0, 2.5]));
    let edges = &cases[1];
    assert_eq!(edges.body, "relu");
    assert!(!edges.matches(&[f32::NAN, 0.0, f32::INFINITY, 0.0, f32::MAX, 0.0]), "-0.0 made +0.0");
}
