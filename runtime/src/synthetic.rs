//! Deterministic pseudo-random weights and inputs.
//!
//! Every value is a pure function of a seed, the tensor's name and the element's index, so the
//! fixture generator (`tests/fixtures/generate.py`) reproduces the same tensors in NumPy and the
//! fixtures need to store only the expected outputs. Conv and linear weights are uniform in
//! ±1/√fan_in (PyTorch's default bound), biases and running means in ±0.1, batch-norm scales and
//! running variances in [0.5, 1.5].

use cnnc_ir::graph::{Graph, Param, ParamKind};

use crate::weights::Weights;
use crate::Tensor;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// FNV-1a, 64-bit.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The `index`-th uniform value in [0, 1) of the stream `key` (a splitmix64 output).
fn uniform(key: u64, index: u64) -> f64 {
    let mut z = key.wrapping_add(index.wrapping_add(1).wrapping_mul(GOLDEN));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// `len` values uniform in [lo, hi) for the tensor `name`.
pub fn values(seed: u64, name: &str, len: usize, lo: f64, hi: f64) -> Vec<f32> {
    let key = fnv1a(&format!("{seed}:{name}"));
    (0..len as u64).map(|i| (lo + (hi - lo) * uniform(key, i)) as f32).collect()
}

/// The range a parameter's values are drawn from.
pub fn range(kind: ParamKind, shape: &[usize]) -> (f64, f64) {
    match kind {
        ParamKind::Weight if shape.len() >= 2 => {
            let fan_in: usize = shape[1..].iter().product();
            let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
            (-bound, bound)
        }
        ParamKind::Weight | ParamKind::RunningVar => (0.5, 1.5),
        ParamKind::Bias | ParamKind::RunningMean => (-0.1, 0.1),
    }
}

/// The synthetic tensor for one parameter.
pub fn tensor(seed: u64, param: &Param) -> Tensor {
    let (lo, hi) = range(param.kind, &param.shape);
    let len = param.shape.iter().product();
    Tensor::new(param.shape.clone(), values(seed, &param.name, len, lo, hi))
}

/// Weights for every parameter of `graph` (training-only ones included).
pub fn weights(graph: &Graph, seed: u64) -> Weights {
    let mut w = Weights::default();
    for p in graph.nodes().flat_map(|(_, node)| &node.params) {
        w.insert(p.name.clone(), tensor(seed, p));
    }
    w
}

/// A fresh model's weights as PyTorch initialises them: convolution and linear weights and biases
/// uniform in ±1/√fan_in (`kaiming_uniform_(a=√5)` and the matching bias bound), batch-norm scales
/// and running variances one, its shifts and running means zero. Uniform draws come from `seed`.
pub fn pytorch_init(params: &[Param], seed: u64) -> Weights {
    let fan_in = |weight: &str| {
        params.iter().find(|p| p.name == weight && p.shape.len() >= 2).map(|p| p.shape[1..].iter().product::<usize>())
    };
    let mut w = Weights::default();
    for p in params {
        let len: usize = p.shape.iter().product();
        let layer = p.name.strip_suffix(p.kind.suffix()).unwrap_or(&p.name);
        let fan_in = match p.kind {
            ParamKind::Weight if p.shape.len() >= 2 => fan_in(&p.name),
            ParamKind::Bias => fan_in(&format!("{layer}weight")),
            _ => None,
        };
        let data = match (fan_in, p.kind) {
            (Some(f), _) => {
                let bound = 1.0 / (f.max(1) as f64).sqrt();
                values(seed, &p.name, len, -bound, bound)
            }
            (None, ParamKind::Weight | ParamKind::RunningVar) => vec![1.0; len],
            (None, ParamKind::Bias | ParamKind::RunningMean) => vec![0.0; len],
        };
        w.insert(p.name.clone(), Tensor::new(p.shape.clone(), data));
    }
    w
}

/// An input batch uniform in [-1, 1).
pub fn input(seed: u64, shape: Vec<usize>) -> Tensor {
    let len = shape.iter().product();
    Tensor::new(shape, values(seed, "input", len, -1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_fixed() {
        // The same numbers `tests/fixtures/generate.py` computes; a change here breaks every fixture.
        let v = values(0, "fc.weight", 3, -1.0, 1.0);
        let again = values(0, "fc.weight", 3, -1.0, 1.0);
        assert_eq!(v, again);
        assert_ne!(v, values(1, "fc.weight", 3, -1.0, 1.0));
        assert_ne!(v, values(0, "fc.bias", 3, -1.0, 1.0));
        assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
