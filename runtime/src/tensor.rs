//! A dense, row-major tensor on the host: f32 for inference, f64 for the training reference.

/// A tensor element: `f32` (what models run in) or `f64` (the training reference and gradient
/// checks). The CPU ops are written once over it and accumulate in f64 either way.
pub trait Element: Copy + Default + PartialEq + Send + Sync + std::fmt::Debug + 'static {
    /// The value as f64 (exact for both types).
    fn to_f64(self) -> f64;
    /// The nearest value to `v`.
    fn from_f64(v: f64) -> Self;
}

impl Element for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
}

impl Element for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> f64 {
        v
    }
}

/// A tensor: shape (batch first for activations) and row-major data.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<T = f32> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

impl<T: Element> Tensor<T> {
    /// A tensor from a shape and matching data.
    ///
    /// # Panics
    /// When the data length is not the product of the shape (a caller bug, never user input).
    pub fn new(shape: Vec<usize>, data: Vec<T>) -> Tensor<T> {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "tensor data does not match shape {shape:?}");
        Tensor { shape, data }
    }

    /// A tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Tensor<T> {
        let n = shape.iter().product();
        Tensor { shape, data: vec![T::default(); n] }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The leading (batch) dimension.
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Elements per batch item.
    pub fn item_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The same tensor with every element converted (exactly from f32 to f64, rounded back).
    pub fn convert<U: Element>(&self) -> Tensor<U> {
        Tensor { shape: self.shape.clone(), data: self.data.iter().map(|v| U::from_f64(v.to_f64())).collect() }
    }
}

/// Relative L2 error `‖a − b‖ / ‖b‖` (in f64), the measure used against references.
pub fn relative_l2(a: &[f32], b: &[f64]) -> f64 {
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        diff += (*x as f64 - y).powi(2);
        norm += y * y;
    }
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}
