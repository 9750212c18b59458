//! Batch-norm folding arithmetic (f64 throughout), shared by both executors: inference batch-norm
//! is a per-channel `x · scale + shift`, and after a convolution it scales the convolution's weights
//! and bias instead.

use cnnc_ir::graph::{FoldedBatchNorm, Param};

use crate::cpu::ops::overflowed;
use crate::tensor::Element;
use crate::weights::Weights;
use crate::Tensor;

/// `(scale, shift)` per channel of `y = (x − mean) / √(var + eps) · weight + bias`, as PyTorch's
/// inference kernel folds it (`x · α + β`): α and β overflow where `T`'s arithmetic does, so a
/// zero variance with eps 0 gives its NaN (0 · ∞ in β), not ∞, and a β past float32's range is ∞.
pub fn batch_norm_affine<T: Element>(
    w: &Tensor<T>,
    b: &Tensor<T>,
    mean: &Tensor<T>,
    var: &Tensor<T>,
    eps: f64,
) -> (Vec<f64>, Vec<f64>) {
    (0..w.len())
        .map(|c| {
            let s = overflowed::<T>(w.data[c].to_f64() / (var.data[c].to_f64() + eps).sqrt());
            (s, overflowed::<T>(b.data[c].to_f64() - overflowed::<T>(mean.data[c].to_f64() * s)))
        })
        .unzip()
}

/// A batch-norm's parameter tensors by kind: weight, bias, running mean, running variance.
pub fn batch_norm_tensors<'w>(params: &[Param], weights: &'w Weights) -> Option<[&'w Tensor; 4]> {
    let get = |suffix: &str| params.iter().find(|p| p.kind.suffix() == suffix).and_then(|p| weights.get(&p.name));
    Some([get("weight")?, get("bias")?, get("running_mean")?, get("running_var")?])
}

/// A convolution's weights `[OC, ...]` and bias with a batch-norm folded in: each output channel's
/// weights times its scale, and `bias · scale + shift`.
pub fn fold_into_conv(
    weight: &Tensor,
    bias: Option<&Tensor>,
    bn: &FoldedBatchNorm,
    weights: &Weights,
) -> Option<(Tensor, Tensor)> {
    let [w, b, mean, var] = batch_norm_tensors(&bn.params, weights)?;
    let (scale, shift) = batch_norm_affine(w, b, mean, var, bn.eps);
    let oc = weight.shape[0];
    let per_oc = weight.len() / oc;
    let mut folded = weight.clone();
    for (o, chunk) in folded.data.chunks_mut(per_oc).enumerate() {
        chunk.iter_mut().for_each(|v| *v = (*v as f64 * scale[o]) as f32);
    }
    let bias: Vec<f32> =
        (0..oc).map(|o| (bias.map_or(0.0, |b| b.data[o] as f64) * scale[o] + shift[o]) as f32).collect();
    Some((folded, Tensor::new(vec![oc], bias)))
}
