//! Reading a classifier's outputs: the most probable classes of each batch item.

use crate::Tensor;

/// The `k` highest-scoring classes of each row of `[N, classes]` logits, with softmax
/// probabilities and labels where given, as `cnnc run` prints them (empty for other shapes).
pub fn top_classes<S: AsRef<str>>(output: &Tensor, labels: Option<&[S]>, k: usize) -> String {
    top_classes_of(output, labels, k, |b| format!("input {b}"))
}

/// How `cnnc run` heads item `b` of a batch: `input b`, and the image's path when the batch was
/// read from `images`.
pub fn item_name(b: usize, images: &[std::path::PathBuf]) -> String {
    match images.get(b) {
        Some(path) => format!("input {b} ({})", path.display()),
        None => format!("input {b}"),
    }
}

/// As [`top_classes`], with each item headed by `name(b)` (see [`item_name`]).
pub fn top_classes_of<S: AsRef<str>>(
    output: &Tensor,
    labels: Option<&[S]>,
    k: usize,
    name: impl Fn(usize) -> String,
) -> String {
    let mut text = String::new();
    if k == 0 || output.shape.len() != 2 {
        return text;
    }
    let classes = output.shape[1];
    for b in 0..output.batch() {
        let row = &output.data[b * classes..][..classes];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = row.iter().map(|v| (*v as f64 - max).exp()).sum();
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by(|a, b| row[*b].total_cmp(&row[*a]));
        text += &format!("{}:\n", name(b));
        for &c in order.iter().take(k) {
            let p = ((row[c] as f64 - max).exp() / sum) as f32;
            let label = labels.and_then(|l| l.get(c)).map_or_else(|| format!("class {c}"), |l| l.as_ref().to_string());
            text += &format!("  {p:>7.4}  {label} ({c})\n");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_with_probabilities() {
        let logits = Tensor::new(vec![1, 3], vec![0.0, 2.0, 1.0]);
        let text = top_classes(&logits, Some(&["a", "b", "c"]), 2);
        // softmax of [0, 2, 1]: 0.0900, 0.6652, 0.2447
        assert_eq!(text, "input 0:\n   0.6652  b (1)\n   0.2447  c (2)\n");
        assert_eq!(top_classes::<&str>(&logits, None, 1), "input 0:\n   0.6652  class 1 (1)\n");
    }
}
