//! CIFAR-10 (<https://www.cs.toronto.edu/~kriz/cifar.html>) in both of its versions. The binary
//! version (`cifar-10-batches-bin`): each file holds records of one label byte and 3,072 image bytes
//! (the red, green and blue 32×32 planes, row by row); training is `data_batch_1.bin` to
//! `data_batch_5.bin`, test `test_batch.bin`, and `batches.meta.txt` names the classes, one per
//! line. The Python version (`cifar-10-batches-py`, what torchvision's `CIFAR10` downloads): each of
//! `data_batch_1` … `data_batch_5` and `test_batch` is a pickled dict whose `data` is a uint8
//! `numpy.ndarray` of shape `[N, 3072]` (the same planes) and whose `labels` is a list, and
//! `batches.meta` holds `label_names`.

use std::path::Path;

use super::{Dataset, Images, Split};
use crate::weights::pickle::{self, Value};
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
    let files: Vec<String> = batch_files(split).into_iter().map(|f| format!("{f}.bin")).collect();
    if !dir.join(&files[0]).is_file() {
        let python = files[0].trim_end_matches(".bin");
        if dir.join(python).is_file() {
            return read_python(dir, split);
        }
        let message = format!(
            "no `{}` (binary version) or `{python}` (Python version) in it; a `cifar10:` folder is \
             `cifar-10-batches-bin` or `cifar-10-batches-py`",
            files[0]
        );
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
    Ok(dataset(dir, split, images, labels, class_names, label_files))
}

/// The batch files of `split`, named as the Python version names them (the binary one adds `.bin`).
fn batch_files(split: Split) -> Vec<String> {
    match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}")).collect(),
        Split::Test => vec!["test_batch".to_string()],
    }
}

/// The split of either version: `[3, 32, 32]` images with their labels and the files they came from.
fn dataset(
    dir: &Path,
    split: Split,
    images: Vec<u8>,
    labels: Vec<u32>,
    class_names: Option<Vec<String>>,
    label_files: Vec<(std::path::PathBuf, usize)>,
) -> Dataset {
    Dataset {
        images: Images::Same { bytes: images, shape: [3, 32, 32] },
        labels,
        class_names,
        source: dir.to_path_buf(),
        label_files,
        image_files: Vec::new(),
        skipped: Vec::new(),
        split: split.name().to_string(),
    }
}

/// The entry `key` of a pickled dict (keys are Python 2 strings, so text or bytes).
fn entry<'v>(dict: &'v Value, key: &str) -> Option<&'v Value> {
    let Value::Dict(items) = dict else { return None };
    items.iter().find_map(|(k, v)| match k {
        Value::Str(s) if s == key => Some(v),
        Value::Bytes(b) if b == key.as_bytes() => Some(v),
        _ => None,
    })
}

/// Unpickles `path`, which must be a dict.
fn unpickle(path: &Path) -> Result<Value, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|source| RuntimeError::Read { path: path.to_path_buf(), source })?;
    let (value, _) = pickle::read(&bytes, 0).map_err(|e| invalid(path, format!("not a readable pickle: {e}")))?;
    match value {
        dict @ Value::Dict(_) => Ok(dict),
        _ => Err(invalid(path, "the pickle is not a dict (not a CIFAR-10 batch)")),
    }
}

/// Reads one split of CIFAR-10's Python version (`cifar-10-batches-py`).
fn read_python(dir: &Path, split: Split) -> Result<Dataset, RuntimeError> {
    let files = batch_files(split);
    let meta = dir.join("batches.meta");
    let class_names = match meta.is_file() {
        true => {
            let dict = unpickle(&meta)?;
            let names: Option<Vec<String>> = match entry(&dict, "label_names") {
                Some(Value::List(items)) => items
                    .iter()
                    .map(|v| match v {
                        Value::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            };
            match names {
                Some(n) if n.len() == 10 => Some(n),
                _ => return Err(invalid(&meta, "no `label_names` list of the 10 class names")),
            }
        }
        false => None,
    };
    let (mut images, mut labels, mut label_files) = (Vec::new(), Vec::new(), Vec::new());
    for name in files {
        let path = dir.join(&name);
        if !path.is_file() {
            return Err(invalid(dir, format!("no `{name}` in it (CIFAR-10's Python version has it)")));
        }
        let dict = unpickle(&path)?;
        let (data, rows) = match entry(&dict, "data") {
            Some(Value::Array { dtype, shape, data }) if dtype == "u1" && shape.len() == 2 && shape[1] == IMAGE => {
                if data.len() != shape[0] * IMAGE {
                    return Err(invalid(
                        &path,
                        format!("`data` holds {} bytes, its shape {shape:?} needs {}", data.len(), shape[0] * IMAGE),
                    ));
                }
                (data, shape[0])
            }
            Some(Value::Array { dtype, shape, .. }) => {
                return Err(invalid(
                    &path,
                    format!("`data` is a {dtype} array of shape {shape:?}; CIFAR-10's is uint8 (u1) [N, {IMAGE}]"),
                ))
            }
            _ => return Err(invalid(&path, "no `data` array in the batch")),
        };
        let batch_labels: Vec<i64> = match entry(&dict, "labels") {
            Some(Value::List(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Int(i) => Ok(*i),
                    _ => Err(invalid(&path, "`labels` holds something that is not a whole number")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(invalid(&path, "no `labels` list in the batch")),
        };
        if batch_labels.len() != rows {
            return Err(invalid(&path, format!("{} labels for the {rows} images of `data`", batch_labels.len())));
        }
        if let Some((i, l)) = batch_labels.iter().enumerate().find(|(_, l)| !(0..10).contains(*l)) {
            return Err(invalid(&path, format!("label {l} at index {i} is not one of the 10 classes")));
        }
        labels.extend(batch_labels.iter().map(|l| *l as u32));
        images.extend_from_slice(data);
        label_files.push((path, rows));
    }
    Ok(dataset(dir, split, images, labels, class_names, label_files))
}
