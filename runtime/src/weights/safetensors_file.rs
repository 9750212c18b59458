//! `.safetensors` checkpoints, memory-mapped; f32, f16, bf16 and f64 tensors become f32.

use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::Weights;
use crate::{RuntimeError, Tensor};

pub fn read(path: &Path) -> Result<Weights, RuntimeError> {
    let file = std::fs::File::open(path).map_err(|source| RuntimeError::Read { path: path.to_path_buf(), source })?;
    // SAFETY: the file is opened read-only and only read while the map lives; a concurrent
    // writer could change what we read, as with any file read, but not memory safety of the map.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|source| RuntimeError::Read { path: path.to_path_buf(), source })?;
    let bad = |message: String| RuntimeError::WeightsFile { path: path.to_path_buf(), message };
    let st =
        SafeTensors::deserialize(&map).map_err(|e| bad(format!("{e} (the file is truncated or not safetensors)")))?;
    let mut weights = Weights::default();
    for (name, view) in st.tensors() {
        let bytes = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::F64 => {
                bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect()
            }
            Dtype::I64 if name.ends_with("num_batches_tracked") => continue,
            other => {
                return Err(bad(format!("tensor `{name}` has dtype {other:?}; weights must be f32, f16, bf16 or f64")))
            }
        };
        weights.insert(name, Tensor::new(view.shape().to_vec(), data));
    }
    Ok(weights)
}

/// Writes named tensors as a `.safetensors` file, in float64 or (with `f32`) float32 — the layout
/// `safetensors.torch.load_file` reads.
///
/// # Errors
/// [`RuntimeError::Write`] when the file cannot be written.
pub fn write(path: &Path, tensors: &[(String, Tensor<f64>)], f32: bool) -> Result<(), RuntimeError> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, t)| match f32 {
            true => t.data.iter().flat_map(|v| (*v as f32).to_le_bytes()).collect(),
            false => t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        })
        .collect();
    let dtype = if f32 { Dtype::F32 } else { Dtype::F64 };
    let views = tensors.iter().zip(&bytes).map(|((name, t), b)| {
        (name.as_str(), TensorView::new(dtype, t.shape.clone(), b).expect("the bytes match the shape and dtype"))
    });
    safetensors::serialize_to_file(views, None, path).map_err(|e| RuntimeError::Write {
        path: path.to_path_buf(),
        source: match e {
            safetensors::SafeTensorError::IoError(io) => io,
            other => std::io::Error::other(other.to_string()),
        },
    })
}
