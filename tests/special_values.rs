//! NaN and infinities flow through every executor as they do in PyTorch: relu, relu6, hardsigmoid
//! and hardswish keep NaN (fused into a convolution too), max pooling returns NaN for a window
//! holding one and -inf for a window of -inf. The expected values are PyTorch's
//! (`torch.nn.functional` on the same inputs, torch 2.x).

use std::path::Path;

use cnnc::runtime::gpu::{self, Prepared};
use cnnc::runtime::weights::Weights;
use cnnc::runtime::{cpu, Tensor};
use cnnc::{inference_plan, Expanded, Graph};

const NAN: f32 = f32::NAN;
const INF: f32 = f32::INFINITY;
const ROW: [f32; 6] = [NAN, -INF, INF, -1.0, 0.0, 2.0];

/// A model of the layers in `body`, separated by `; `, on `[1, 1, 6]` inputs.
fn compile(body: &str) -> Graph {
    let items: String = body.split("; ").map(|item| format!("  - {item}\n")).collect();
    let text = format!("model: special\ninput: [1, 1, 6]\nbody:\n{items}");
    match cnnc::compile_bytes(Path::new("special.yaml"), text.into_bytes()).result {
        Ok(Expanded::Model(g)) => g,
        other => panic!("{body}: {other:?}"),
    }
}

/// Equal as PyTorch compares with `equal_nan=True`: NaN where NaN, infinities exactly, the rest to
/// float32 rounding.
fn same(ours: &[f32], want: &[f32]) -> bool {
    ours.len() == want.len()
        && ours.iter().zip(want).all(|(a, b)| {
            (a.is_nan() && b.is_nan()) || (a.is_infinite() && a == b) || (a.is_finite() && (a - b).abs() <= 1e-6)
        })
}

#[test]
fn special_values_propagate_as_in_pytorch_on_both_executors() {
    let third = 1.0 / 3.0;
    let cases: [(&str, [f32; 6], Vec<f32>); 6] = [
        ("relu", ROW, vec![NAN, 0.0, INF, 0.0, 0.0, 2.0]),
        ("relu6", ROW, vec![NAN, 0.0, 6.0, 0.0, 0.0, 2.0]),
        ("hardsigmoid", ROW, vec![NAN, 0.0, 1.0, third, 0.5, 5.0 / 6.0]),
        ("hardswish", ROW, vec![NAN, NAN, INF, -third, 0.0, 5.0 / 3.0]),
        // relu fused into the convolution before it (a 1×1 convolution of weight 1).
        ("conv(1, 1, bias=false); relu", ROW, vec![NAN, 0.0, INF, 0.0, 0.0, 2.0]),
        // Windows: NaN among numbers, all -inf, all NaN.
        ("maxpool([1, 2])", [NAN, 3.0, -INF, -INF, NAN, NAN], vec![NAN, -INF, NAN]),
    ];
    let device = gpu::open(None).unwrap_or_else(|e| panic!("{e}"));
    for (body, input, want) in cases {
        let graph = compile(body);
        let mut weights = Weights::default();
        if body.starts_with("conv") {
            weights.insert("0.weight".into(), Tensor::new(vec![1, 1, 1, 1], vec![1.0]));
        }
        let x = Tensor::new(vec![1, 1, 1, 6], input.to_vec());
        let on_cpu = cpu::run(&graph, &weights, &x).unwrap();
        assert!(same(&on_cpu.data, &want), "{body} on the CPU: {:?}, PyTorch {want:?}", on_cpu.data);
        let plan = inference_plan(&graph).expect("a valid plan");
        let on_gpu = Prepared::new(&device, &plan, &weights, 1).and_then(|p| p.run(&x)).unwrap();
        assert!(same(&on_gpu.data, &want), "{body} on {}: {:?}, PyTorch {want:?}", device.info.name, on_gpu.data);
    }
}
