//! The IDX format of MNIST and Fashion-MNIST (<http://yann.lecun.com/exdb/mnist/>): a magic number
//! (two zero bytes, a type code, the number of dimensions), each dimension as a big-endian `u32`,
//! then the values. cnnc reads unsigned-byte files (type `0x08`): images `[N, H, W]` and labels
//! `[N]`, plain or gzipped, under torchvision's file names.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Dataset, Images, Split};
use crate::RuntimeError;

/// The files of one split, without `.gz`: `(images, labels)`.
fn file_names(split: Split) -> (&'static str, &'static str) {
    match split {
        Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
}

fn invalid(path: &Path, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Dataset { path: path.to_path_buf(), message: message.into() }
}

/// `dir/name`, or `dir/name.gz` when only that exists.
fn find(dir: &Path, name: &str) -> Result<PathBuf, RuntimeError> {
    let plain = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if plain.is_file() {
        Ok(plain)
    } else if gz.is_file() {
        Ok(gz)
    } else {
        Err(invalid(dir, format!("no `{name}` or `{name}.gz` in it (an `idx:` directory holds MNIST's four files)")))
    }
}

/// The bytes of a file, gunzipped when its name ends in `.gz`.
fn read_bytes(path: &Path) -> Result<Vec<u8>, RuntimeError> {
    let raw = std::fs::read(path).map_err(|source| RuntimeError::Read { path: path.to_path_buf(), source })?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| invalid(path, format!("not a complete gzip file ({e})")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an unsigned-byte IDX file of `rank` dimensions: its dims and its values.
///
/// # Errors
/// [`RuntimeError::Dataset`] for a wrong magic number, type or rank, or a data length that is not
/// the product of the dims.
pub fn parse(path: &Path, bytes: &[u8], rank: usize) -> Result<(Vec<usize>, Vec<u8>), RuntimeError> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(invalid(path, format!("not an IDX file: it starts with {} instead of 00 00", head.join(" "))));
    }
    if bytes[2] != 0x08 {
        return Err(invalid(path, format!("IDX type code 0x{:02x}; cnnc reads unsigned bytes (0x08)", bytes[2])));
    }
    if usize::from(bytes[3]) != rank {
        return Err(invalid(path, format!("{} dimensions, expected {rank}", bytes[3])));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(invalid(path, "the header is cut short"));
    }
    let dims: Vec<usize> =
        bytes[4..header].chunks(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
    let expected = dims.iter().try_fold(1usize, |n, d| n.checked_mul(*d));
    let found = bytes.len() - header;
    match expected {
        Some(n) if n == found => Ok((dims, bytes[header..].to_vec())),
        Some(n) if n > found => {
            Err(invalid(path, format!("truncated: {found} bytes of data, the header's dims {dims:?} need {n}")))
        }
        Some(n) => {
            let extra = found - n;
            let unit = if extra == 1 { "byte" } else { "bytes" };
            Err(invalid(path, format!("{extra} {unit} after the data the header's dims {dims:?} describe")))
        }
        None => Err(invalid(path, format!("impossible dims {dims:?}"))),
    }
}

/// Reads one split of an IDX directory as `[N, 1, H, W]` images.
///
/// # Errors
/// [`RuntimeError::Read`] or [`RuntimeError::Dataset`], naming the file.
pub fn read(dir: &Path, split: Split) -> Result<Dataset, RuntimeError> {
    let (images_name, labels_name) = file_names(split);
    let (images_path, labels_path) = (find(dir, images_name)?, find(dir, labels_name)?);
    let (dims, images) = parse(&images_path, &read_bytes(&images_path)?, 3)?;
    let (label_dims, labels) = parse(&labels_path, &read_bytes(&labels_path)?, 1)?;
    if dims[0] != label_dims[0] {
        return Err(invalid(
            &labels_path,
            format!("{} labels for the {} images of `{}`", label_dims[0], dims[0], images_path.display()),
        ));
    }
    Ok(Dataset {
        images: Images::Same { bytes: images, shape: [1, dims[1], dims[2]] },
        labels: labels.into_iter().map(u32::from).collect(),
        class_names: None,
        source: images_path,
        label_files: vec![(labels_path, label_dims[0])],
        image_files: Vec::new(),
        skipped: Vec::new(),
        split: split.name().to_string(),
    })
}
