//! Cross-entropy over logits, as `torch.nn.functional.cross_entropy` computes it with mean reduction.

use crate::{RuntimeError, Tensor};

/// Cross-entropy over logits `[N, K]` with integer class labels: log-softmax and negative
/// log-likelihood fused, mean reduction, optional label smoothing and per-class weights.
///
/// With weights `w` and smoothing `ε` the loss is PyTorch's:
/// `((1 − ε) · Σ_n w[y_n]·(−log p[n, y_n]) + ε/K · Σ_n Σ_c w[c]·(−log p[n, c])) / Σ_n w[y_n]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CrossEntropy {
    /// `ε` in `[0, 1]`: the share of the target spread uniformly over all classes.
    pub label_smoothing: f64,
    /// One weight per class (`None`: all 1).
    pub class_weights: Option<Vec<f64>>,
}

impl CrossEntropy {
    /// The mean loss and its gradient with respect to the logits, `[N, K]`.
    ///
    /// # Errors
    /// [`RuntimeError::Labels`] when there is not one label per item, a label is not a class, or the
    /// class weights do not fit.
    pub fn loss_and_grad(&self, logits: &Tensor<f64>, labels: &[usize]) -> Result<(f64, Tensor<f64>), RuntimeError> {
        let (n, k) = (logits.batch(), logits.item_len());
        if labels.len() != n {
            return Err(RuntimeError::Labels(format!("{} labels for a batch of {n}", labels.len())));
        }
        if let Some((i, y)) = labels.iter().enumerate().find(|(_, y)| **y >= k) {
            return Err(RuntimeError::Labels(format!(
                "label {y} of item {i} is not a class: the model has {k} (0..{k})"
            )));
        }
        let weights = match &self.class_weights {
            Some(w) if w.len() != k => {
                return Err(RuntimeError::Labels(format!("{} class weights for {k} classes", w.len())));
            }
            Some(w) => w.clone(),
            None => vec![1.0; k],
        };
        let eps = self.label_smoothing;
        let total_weight: f64 = labels.iter().map(|y| weights[*y]).sum();
        let mut loss = 0f64;
        let mut grad = vec![0f64; n * k];
        for (b, y) in labels.iter().enumerate() {
            let row = &logits.data[b * k..][..k];
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = row.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
            // ∂loss/∂log p[b, c], then through log-softmax: g_c − p_c · Σ g.
            let dlogp: Vec<f64> = (0..k)
                .map(|c| -((1.0 - eps) * weights[*y] * f64::from(u8::from(c == *y)) + eps / k as f64 * weights[c]))
                .collect();
            for (c, d) in dlogp.iter().enumerate() {
                loss += d * (row[c] - log_sum);
            }
            let sum: f64 = dlogp.iter().sum();
            for c in 0..k {
                grad[b * k + c] = (dlogp[c] - (row[c] - log_sum).exp() * sum) / total_weight;
            }
        }
        Ok((loss / total_weight, Tensor::new(vec![n, k], grad)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_cross_entropy_is_the_mean_negative_log_likelihood() {
        let logits = Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0]);
        let (loss, grad) = CrossEntropy::default().loss_and_grad(&logits, &[2, 0]).unwrap();
        let p2 = 3f64.exp() / (1f64.exp() + 2f64.exp() + 3f64.exp());
        let expected = (-(p2.ln()) + 3f64.ln()) / 2.0;
        assert!((loss - expected).abs() < 1e-15);
        // Each row of the gradient sums to zero: softmax minus one-hot, over the batch size.
        assert!((grad.data[..3].iter().sum::<f64>()).abs() < 1e-15);
        assert!((grad.data[3] - (1.0 / 3.0 - 1.0) / 2.0).abs() < 1e-15);
    }

    #[test]
    fn bad_labels_are_refused() {
        let logits = Tensor::new(vec![1, 3], vec![0.0; 3]);
        let ce = CrossEntropy::default();
        assert!(ce.loss_and_grad(&logits, &[3]).unwrap_err().to_string().contains("label 3 of item 0"));
        assert!(ce.loss_and_grad(&logits, &[0, 1]).is_err());
        let weighted = CrossEntropy { class_weights: Some(vec![1.0]), ..CrossEntropy::default() };
        assert!(weighted.loss_and_grad(&logits, &[0]).is_err());
    }
}
