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
    write_with_metadata(path, tensors, f32, &[])
}

/// As [`write`], with `metadata` in the file's `__metadata__`.
///
/// # Errors
/// [`RuntimeError::Write`] when the file cannot be written.
pub fn write_with_metadata(
    path: &Path,
    tensors: &[(String, Tensor<f64>)],
    f32: bool,
    metadata: &[(String, String)],
) -> Result<(), RuntimeError> {
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
    serialize(path, views, (!metadata.is_empty()).then(|| metadata.iter().cloned().collect()))
}

/// Reads a file [`write_with_metadata`] wrote: its float32 and float64 tensors exactly, as f64, and
/// its metadata.
///
/// # Errors
/// [`RuntimeError::Read`] or [`RuntimeError::WeightsFile`] for a missing, truncated or foreign file.
pub fn read_with_metadata(
    path: &Path,
) -> Result<(Weights<f64>, std::collections::HashMap<String, String>), RuntimeError> {
    let bytes = std::fs::read(path).map_err(|source| RuntimeError::Read { path: path.to_path_buf(), source })?;
    let bad = |message: String| RuntimeError::WeightsFile { path: path.to_path_buf(), message };
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("{e} (the file is truncated or not safetensors)")))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let mut weights = Weights::default();
    for (name, view) in st.tensors() {
        let b = view.data();
        let data: Vec<f64> = match view.dtype() {
            Dtype::F32 => b.chunks_exact(4).map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect(),
            Dtype::F64 => b.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect(),
            other => return Err(bad(format!("tensor `{name}` has dtype {other:?}; expected f32 or f64"))),
        };
        weights.insert(name, Tensor::new(view.shape().to_vec(), data));
    }
    Ok((weights, header.metadata().clone().unwrap_or_default()))
}

/// Writes `views` with `metadata` to `path`, a failure as [`RuntimeError::Write`]. The same tensors
/// and metadata give the same bytes: the metadata's keys are written sorted (the `safetensors`
/// crate writes them in a `HashMap`'s order, which changes from run to run).
fn serialize<'a>(
    path: &Path,
    views: impl IntoIterator<Item = (&'a str, TensorView<'a>)>,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<(), RuntimeError> {
    let write_error = |source| RuntimeError::Write { path: path.to_path_buf(), source };
    let bytes = safetensors::serialize(views, None).map_err(|e| write_error(std::io::Error::other(e.to_string())))?;
    let bytes = match metadata {
        Some(metadata) => with_sorted_metadata(&bytes, &metadata.into_iter().collect()),
        None => bytes,
    };
    std::fs::write(path, bytes).map_err(write_error)
}

/// A safetensors file `bytes` (written without metadata) with `metadata` as its header's
/// `__metadata__`, first, as the `safetensors` crate places it; the header padded with spaces to a
/// multiple of 8 bytes, as that crate pads it.
fn with_sorted_metadata(bytes: &[u8], metadata: &std::collections::BTreeMap<String, String>) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("a safetensors length")) as usize;
    let (header, data) = bytes[8..].split_at(n);
    let tensors = std::str::from_utf8(header).expect("safetensors writes UTF-8").trim_end();
    let entries = tensors.strip_prefix('{').and_then(|t| t.strip_suffix('}')).expect("a JSON object");
    let metadata = serde_json::to_string(metadata).expect("strings serialize");
    let separator = if entries.is_empty() { "" } else { "," };
    let mut header = format!("{{\"__metadata__\":{metadata}{separator}{entries}}}").into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    [&(header.len() as u64).to_le_bytes()[..], &header, data].concat()
}

/// Writes a model's weights as a PyTorch-loadable checkpoint: every tensor of `weights` in float32
/// under its state_dict name, and for every batch-norm (each `…running_mean`) the int64 scalar
/// `…num_batches_tracked` that `torch.nn.BatchNorm2d` keeps as a buffer, set to `batches_tracked`
/// (so `load_state_dict(…, strict=True)` finds every key it expects). `metadata` goes to the file's
/// `__metadata__`, with `format: pt` as `safetensors.torch.save_file` writes it.
///
/// # Errors
/// [`RuntimeError::Write`] when the file cannot be written.
pub fn write_checkpoint(
    path: &Path,
    weights: &Weights,
    batches_tracked: u64,
    metadata: &[(String, String)],
) -> Result<(), RuntimeError> {
    let mut names = weights.names();
    names.sort_unstable();
    let mut entries: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for name in names {
        let t = weights.get(name).expect("listed");
        entries.push((
            name.to_string(),
            Dtype::F32,
            t.shape.clone(),
            t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
        if let Some(prefix) = name.strip_suffix("running_mean") {
            let count = (batches_tracked as i64).to_le_bytes().to_vec();
            entries.push((format!("{prefix}num_batches_tracked"), Dtype::I64, Vec::new(), count));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let views = entries.iter().map(|(name, dtype, shape, bytes)| {
        (name.as_str(), TensorView::new(*dtype, shape.clone(), bytes).expect("the bytes match the shape and dtype"))
    });
    let mut info: std::collections::HashMap<String, String> = metadata.iter().cloned().collect();
    info.insert("format".into(), "pt".into());
    serialize(path, views, Some(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_carry_batch_counts_and_metadata_and_read_back() {
        let mut w = Weights::default();
        w.insert("bn.weight".into(), Tensor::new(vec![2], vec![1.0, 2.0]));
        w.insert("bn.running_mean".into(), Tensor::new(vec![2], vec![0.5, -0.5]));
        w.insert("fc.weight".into(), Tensor::new(vec![1, 2], vec![3.0, 4.0]));
        let path = std::env::temp_dir().join(format!("cnnc-checkpoint-{}.safetensors", std::process::id()));
        write_checkpoint(&path, &w, 7, &[("epoch".into(), "2".into())]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let info = meta.metadata().as_ref().unwrap();
        assert_eq!((info["epoch"].as_str(), info["format"].as_str()), ("2", "pt"));
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let count = st.tensor("bn.num_batches_tracked").unwrap();
        assert_eq!((count.dtype(), count.shape()), (Dtype::I64, &[][..]));
        assert_eq!(count.data(), 7i64.to_le_bytes());
        assert_eq!(st.names().len(), 4);
        // Reading skips the count and gives the weights back exactly.
        let back = read(&path).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back.get("fc.weight").unwrap().data, vec![3.0, 4.0]);
        std::fs::remove_file(path).ok();
    }

    /// The same tensors and metadata give the same bytes, whatever order the metadata's map holds
    /// its keys in (each `HashMap` iterates in an order of its own), and read back.
    #[test]
    fn a_checkpoint_is_the_same_bytes_every_time() {
        let mut w = Weights::default();
        w.insert("conv.weight".into(), Tensor::new(vec![1, 1, 1, 3], vec![1.0, -2.0, 0.25]));
        let metadata: Vec<(String, String)> =
            (0..12).map(|i| (format!("key{i}"), format!("value \"{i}\"\n"))).collect();
        let dir = std::env::temp_dir();
        let paths = [0, 1].map(|i| dir.join(format!("cnnc-same-bytes-{}-{i}.safetensors", std::process::id())));
        for path in &paths {
            write_checkpoint(path, &w, 3, &metadata).unwrap();
        }
        let [a, b] = paths.clone().map(|p| std::fs::read(p).unwrap());
        assert_eq!(a, b);
        let (back, info) = read_with_metadata(&paths[0]).unwrap();
        assert_eq!(back.get("conv.weight").unwrap().data, vec![1.0, -2.0, 0.25]);
        assert_eq!((info.len(), info["key7"].as_str(), info["format"].as_str()), (13, "value \"7\"\n", "pt"));
        let (_, header) = SafeTensors::read_metadata(&a).unwrap();
        assert_eq!(header.metadata().as_ref().unwrap().len(), 13);
        for path in paths {
            std::fs::remove_file(path).ok();
        }
    }
}
