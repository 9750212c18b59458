//! CIFAR-10's binary batches (<https://www.cs.toronto.edu/~kriz/cifar.html>, "binary version"): each
//! file holds records of one label byte and 3,072 image bytes (the red, green and blue 32×32
//! planes, row by row); training is `data_batch_1.bin` to `data_batch_5.bin`, test `test_batch.bin`,
//! and `batches.meta.txt` names the classes, one per line.

use std::path::Path;

use super::{Dataset, Images, Split};
use crate::RuntimeError;

const IMAGE: usize = 3 * 32 * 32;
const RECORD: usize = 1 + IMAGE;

fn invalid(path: &Path, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Dataset { path: path.to_path_buf(), message: message.into() }
}

/// Reads one split of a CIFAR-10 binary directory (`cifar-10-batches-bin`).
///
/// # Errors
/// [`RuntimeError::Dataset`] for a missing file, a length that is not whole records, or a label
/// that is not a class; the Python version's directory is named as such.
pub fn read(dir: &Path, split: Split) -> Result<Dataset, RuntimeError> {
    let files: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".to_string()],
    };
    if !dir.join(&files[0]).is_file() {
        let message = if dir.join("data_batch_1").is_file() || dir.join("test_batch").is_file() {
            format!(
                "no `{}` in it: this is CIFAR-10's Python version (pickled batches); cnnc reads the binary \
                 version, `cifar-10-binary.tar.gz` (folder `cifar-10-batches-bin`)",
                files[0]
            )
        } else {
            format!("no `{}` in it (a `cifar10:` directory holds CIFAR-10's binary batches)", files[0])
        };
        return Err(invalid(dir, message));
    }
    let meta = dir.join("batches.meta.txt");
    let class_names = match std::fs::read_to_string(&meta) {
        Ok(text) => {
            let names: Vec<String> =
                text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
            if names.len() != 10 {
                return Err(invalid(&meta, format!("{} class names; CIFAR-10 has 10, one per line", names.len())));
            }
            Some(names)
        }
        Err(_) => None,
    };
    let classes = 10;
    let (mut images, mut labels, mut label_files) = (Vec::new(), Vec::new(), Vec::new());
    for name in files {
        let path = dir.join(&name);
        let bytes = std::fs::read(&path).map_err(|source| RuntimeError::Read { path: path.clone(), source })?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(invalid(
                &path,
                format!(
                    "{} bytes, not a whole number of {RECORD}-byte records (one label byte, 3,072 pixels)",
                    bytes.len()
                ),
            ));
        }
        for (i, record) in bytes.chunks(RECORD).enumerate() {
            if usize::from(record[0]) >= classes {
                return Err(invalid(
                    &path,
                    format!("record {i} has label {}, not one of the {classes} classes", record[0]),
                ));
            }
            labels.push(u32::from(record[0]));
            images.extend_from_slice(&record[1..]);
        }
        label_files.push((path, bytes.len() / RECORD));
    }
    Ok(Dataset {
        images: Images::Same { bytes: images, shape: [3, 32, 32] },
        labels,
        class_names,
        source: dir.to_path_buf(),
        label_files,
        image_files: Vec::new(),
        skipped: Vec::new(),
    })
}
