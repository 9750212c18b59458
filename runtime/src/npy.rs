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

/// The dtype, shape and data bytes of a C-ordered `.npy` file, or what is wrong with it.
fn split(bytes: &[u8]) -> Result<(String, Vec<usize>, &[u8]), String> {
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
    Ok((descr, shape, &rest[len..]))
}

/// The `count` elements of `size` bytes at the start of `data`, each in native byte order.
fn elements<const N: usize>(data: &[u8], count: usize, swap: bool) -> Result<Vec<[u8; N]>, String> {
    if data.len() / N < count {
        return Err("the data does not match the header's shape (the file is truncated)".into());
    }
    Ok(data[..count * N]
        .chunks_exact(N)
        .map(|b| {
            let mut b: [u8; N] = b.try_into().expect("N bytes");
            if swap {
                b.reverse();
            }
            b
        })
        .collect())
}

/// Whether data of byte-order mark `order` (`<`, `>`, `=` or `|`) must be swapped on this machine.
fn swapped(order: char) -> bool {
    match order {
        '<' => cfg!(target_endian = "big"),
        '>' => cfg!(target_endian = "little"),
        _ => false,
    }
}

fn element_count(shape: &[usize]) -> Result<usize, String> {
    shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d)).ok_or_else(|| "its shape overflows".to_string())
}

/// A tensor from the bytes of a `.npy` file, or what is wrong with them.
fn parse(bytes: &[u8]) -> Result<Tensor, String> {
    let (descr, shape, data) = split(bytes)?;
    let (order, kind) = descr.split_at(1.min(descr.len()));
    if kind != "f4" || !"<>=".contains(order) {
        return Err(format!("its dtype is {descr}, not float32; convert it with x.astype(np.float32)"));
    }
    let values = elements::<4>(data, element_count(&shape)?, swapped(order.chars().next().unwrap_or('<')))?;
    Ok(Tensor::new(shape, values.into_iter().map(f32::from_ne_bytes).collect()))
}

/// Reads class labels: a C-ordered `.npy` vector `[N]` of integers (int64, int32, int16, int8 or
/// uint8, as `np.array(labels)` and `torch.Tensor.numpy()` write them).
///
/// # Errors
/// The file cannot be read, is not a `.npy` file, is not one-dimensional, holds another dtype, or a
/// label is negative.
pub fn read_labels(path: &Path) -> Result<Vec<usize>, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|source| RuntimeError::Read { path: path.to_path_buf(), source })?;
    parse_labels(&bytes).map_err(|message| RuntimeError::Npy { path: path.to_path_buf(), message })
}

fn parse_labels(bytes: &[u8]) -> Result<Vec<usize>, String> {
    let (descr, shape, data) = split(bytes)?;
    let [count] = shape[..] else {
        return Err(format!("labels must be a vector [N], this array is {shape:?}"));
    };
    let swap = swapped(descr.chars().next().unwrap_or('<'));
    let values: Vec<i64> = match &descr[1.min(descr.len())..] {
        "i8" => elements::<8>(data, count, swap)?.into_iter().map(i64::from_ne_bytes).collect(),
        "i4" => elements::<4>(data, count, swap)?.into_iter().map(|b| i32::from_ne_bytes(b).into()).collect(),
        "i2" => elements::<2>(data, count, swap)?.into_iter().map(|b| i16::from_ne_bytes(b).into()).collect(),
        "i1" => elements::<1>(data, count, swap)?.into_iter().map(|b| i8::from_ne_bytes(b).into()).collect(),
        "u1" => elements::<1>(data, count, swap)?.into_iter().map(|b| b[0].into()).collect(),
        _ => return Err(format!("its dtype is {descr}; labels must be integers (int64 or int32)")),
    };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| usize::try_from(*v).map_err(|_| format!("label {v} of item {i} is negative")))
        .collect()
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

    #[test]
    fn reads_integer_labels_of_every_width() {
        let header =
            |descr: &str, shape: &str| format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
        let i64s: Vec<u8> = [3i64, 0, 9].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(parse_labels(&numpy(1, &header("<i8", "(3,)"), &i64s)).unwrap(), vec![3, 0, 9]);
        let i32s: Vec<u8> = [3i32, 0, 9].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(parse_labels(&numpy(1, &header(">i4", "(3,)"), &i32s)).unwrap(), vec![3, 0, 9]);
        assert_eq!(parse_labels(&numpy(1, &header("|u1", "(2,)"), &[7, 255])).unwrap(), vec![7, 255]);
        let negative: Vec<u8> = [1i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(parse_labels(&numpy(1, &header("<i8", "(2,)"), &negative)).unwrap_err().contains("label -1 of item 1"));
        assert!(parse_labels(&numpy(1, &header("<f4", "(2,)"), &[0; 8])).unwrap_err().contains("must be integers"));
        assert!(parse_labels(&numpy(1, &header("<i8", "(1, 2)"), &[0; 16])).unwrap_err().contains("vector [N]"));
        assert!(parse_labels(&numpy(1, &header("<i8", "(3,)"), &[0; 16])).unwrap_err().contains("truncated"));
    }
}
