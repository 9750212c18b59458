//! Reading and writing float32 `.npy` files.

use std::path::Path;

use npyz::WriterBuilder;

use crate::{RuntimeError, Tensor};

/// Reads a C-ordered float32 `.npy` file.
pub fn read(path: &Path) -> Result<Tensor, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|source| RuntimeError::Read { path: path.to_path_buf(), source })?;
    let bad = |message: String| RuntimeError::Npy { path: path.to_path_buf(), message };
    let file = npyz::NpyFile::new(&bytes[..]).map_err(|e| bad(format!("{e} (is it a .npy file?)")))?;
    if file.order() != npyz::Order::C {
        return Err(bad("it is Fortran-ordered; save it with np.ascontiguousarray(x)".into()));
    }
    let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
    let dtype = file.dtype();
    let is_f32 =
        matches!(&dtype, npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && t.size_field() == 4);
    if !is_f32 {
        return Err(bad(format!("its dtype is {}, not float32; convert it with x.astype(np.float32)", dtype.descr())));
    }
    let data = file.into_vec::<f32>().map_err(|e| bad(format!("{e} (the file is truncated or corrupt)")))?;
    if data.len() != shape.iter().product::<usize>() {
        return Err(bad("the data does not match the header's shape (the file is truncated)".into()));
    }
    Ok(Tensor::new(shape, data))
}

/// Writes a float32 `.npy` file.
pub fn write(path: &Path, tensor: &Tensor) -> Result<(), RuntimeError> {
    let shape: Vec<u64> = tensor.shape.iter().map(|&d| d as u64).collect();
    let mut out = Vec::with_capacity(tensor.len() * 4 + 128);
    let io = |source| RuntimeError::Write { path: path.to_path_buf(), source };
    let mut writer = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(&mut out).begin_nd().map_err(io)?;
    writer.extend(tensor.data.iter().copied()).map_err(io)?;
    writer.finish().map_err(io)?;
    std::fs::write(path, out).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_dtypes() {
        let dir = std::env::temp_dir().join(format!("cnnc-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.npy");
        let t = Tensor::new(vec![2, 3], vec![1.0, -2.5, 3.0, 0.0, 7.25, -1e-3]);
        write(&path, &t).unwrap();
        assert_eq!(read(&path).unwrap(), t);

        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 5);
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("truncated"));

        std::fs::write(&path, b"not numpy at all").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("is it a .npy file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
