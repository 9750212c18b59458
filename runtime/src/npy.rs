//! Reading and writing float32 `.npy` files (NumPy's format 1.0–3.0: a magic string, a Python-dict
//! header giving `descr`, `fortran_order` and `shape`, then the raw data;
//! <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>). Only what the runtime
//! needs — C-ordered float32, either byte order — so it needs no parser crate; NumPy files written by
//! other libraries are cross-checked in the command-line tests.

use std::path::Path;

use crate::{RuntimeError, Tensor};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Reads a C-ordered float32 `.npy` file.
///
/// # Errors
/// The file cannot be read, is not a `.npy` file, is Fortran-ordered, holds another dtype, or is
/// shorter than its header's shape says.
pub fn read(path: &Path) -> Result<Tensor, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|source| RuntimeError::Read { path: path.to_path_buf(), source })?;
    parse(&bytes).map_err(|message| RuntimeError::Npy { path: path.to_path_buf(), message })
}

/// A tensor from the bytes of a `.npy` file, or what is wrong with them.
fn parse(bytes: &[u8]) -> Result<Tensor, String> {
    let not_npy = || "it has no NumPy header (is it a .npy file?)".to_string();
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(not_npy)?;
    let (major, rest) = rest.split_first().ok_or_else(not_npy)?;
    let rest = rest.get(1..).ok_or_else(not_npy)?;
    let (len, rest) = match major {
        1 => {
            let len: [u8; 2] = rest.get(..2).ok_or_else(not_npy)?.try_into().expect("two bytes");
            (u16::from_le_bytes(len) as usize, &rest[2..])
        }
        2 | 3 => {
            let len: [u8; 4] = rest.get(..4).ok_or_else(not_npy)?.try_into().expect("four bytes");
            (u32::from_le_bytes(len) as usize, &rest[4..])
        }
        v => return Err(format!("it is .npy format version {v}, which cnnc does not read (1 to 3 are)")),
    };
    let header = rest.get(..len).ok_or_else(|| "its header is cut off (the file is truncated)".to_string())?;
    let header = std::str::from_utf8(header).map_err(|_| not_npy())?;
    let (descr, fortran, shape) =
        header_fields(header).ok_or_else(|| format!("its header `{}` is not a NumPy header", header.trim()))?;
    if fortran {
        return Err("it is Fortran-ordered; save it with np.ascontiguousarray(x)".into());
    }
    let swap = match descr.as_str() {
        "<f4" => cfg!(target_endian = "big"),
        ">f4" => cfg!(target_endian = "little"),
        "=f4" => false,
        other => return Err(format!("its dtype is {other}, not float32; convert it with x.astype(np.float32)")),
    };
    let count = shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d)).ok_or("its shape overflows")?;
    let data = &rest[len..];
    if data.len() / 4 < count {
        return Err("the data does not match the header's shape (the file is truncated)".into());
    }
    let values = data[..count * 4]
        .chunks_exact(4)
        .map(|b| {
            let b: [u8; 4] = b.try_into().expect("four bytes");
            f32::from_ne_bytes(if swap { [b[3], b[2], b[1], b[0]] } else { b })
        })
        .collect();
    Ok(Tensor::new(shape, values))
}

/// `descr`, `fortran_order` and `shape` of a header such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
fn header_fields(header: &str) -> Option<(String, bool, Vec<usize>)> {
    let value = |key: &str| {
        let at = header.find(&format!("'{key}'")).or_else(|| header.find(&format!("\"{key}\"")))?;
        let after = &header[at + key.len() + 2..];
        Some(after.trim_start().strip_prefix(':')?.trim_start())
    };
    let descr = value("descr")?;
    let quote = descr.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let descr = descr[1..].split(quote).next()?.to_string();
    let fortran = match value("fortran_order")? {
        v if v.starts_with("False") => false,
        v if v.starts_with("True") => true,
        _ => return None,
    };
    let shape = value("shape")?.strip_prefix('(')?;
    let shape = shape[..shape.find(')')?]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().ok())
        .collect::<Option<Vec<usize>>>()?;
    Some((descr, fortran, shape))
}

/// Writes a float32 `.npy` file (format 1.0, little-endian, C order).
///
/// # Errors
/// The file cannot be written.
pub fn write(path: &Path, tensor: &Tensor) -> Result<(), RuntimeError> {
    std::fs::write(path, encode(tensor)).map_err(|source| RuntimeError::Write { path: path.to_path_buf(), source })
}

fn encode(tensor: &Tensor) -> Vec<u8> {
    let dims: Vec<String> = tensor.shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // The data starts at a multiple of 64 bytes; the header ends with a newline.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + tensor.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(tensor.data.iter().flat_map(|v| v.to_le_bytes()));
    out
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

    /// A `.npy` file as NumPy writes it: format `version`, header text, then data.
    fn numpy(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[version, 0]);
        match version {
            1 => out.extend_from_slice(&(header.len() as u16).to_le_bytes()),
            _ => out.extend_from_slice(&(header.len() as u32).to_le_bytes()),
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_every_header_version_and_byte_order() {
        let le: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let be: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
        let header =
            |descr: &str, shape: &str| format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
        let want = Tensor::new(vec![2], vec![1.5, -2.0]);
        assert_eq!(parse(&numpy(1, &header("<f4", "(2,)"), &le)).unwrap(), want);
        assert_eq!(parse(&numpy(2, &header("<f4", "(2,)"), &le)).unwrap(), want);
        assert_eq!(parse(&numpy(3, &header(">f4", "(2,)"), &be)).unwrap(), want);
        assert_eq!(parse(&numpy(1, &header("<f4", "(1, 2)"), &le)).unwrap().shape, vec![1, 2]);
        assert_eq!(parse(&numpy(1, &header("<f4", "()"), &le[..4])).unwrap(), Tensor::new(vec![], vec![1.5]));
    }

    #[test]
    fn names_what_it_cannot_read() {
        let data = [0u8; 16];
        let f8 = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n";
        assert!(parse(&numpy(1, f8, &data)).unwrap_err().contains("<f8, not float32"));
        let fortran = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n";
        assert!(parse(&numpy(1, fortran, &data)).unwrap_err().contains("Fortran-ordered"));
        assert!(parse(&numpy(4, "{}", &data)).unwrap_err().contains("version 4"));
        assert!(parse(&numpy(1, "{'descr': '<f4'}", &data)).unwrap_err().contains("not a NumPy header"));
        let long = "{'descr': '<f4', 'fortran_order': False, 'shape': (9,), }\n";
        assert!(parse(&numpy(1, long, &data)).unwrap_err().contains("truncated"));
        assert!(parse(&MAGIC[..4]).unwrap_err().contains("is it a .npy file"));
    }

    #[test]
    fn writes_numpys_layout() {
        let bytes = encode(&Tensor::new(vec![3], vec![1.0, 2.0, 3.0]));
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0, "data aligned to 64 bytes");
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(
            &bytes[10 + header_len..],
            [1.0f32, 2.0, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()
        );
    }
}
