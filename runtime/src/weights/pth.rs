//! PyTorch checkpoints: the zip format of `torch.save` (torch ≥ 1.6) and the legacy pickle
//! format older torchvision checkpoints use. Tensors are located through the pickled state_dict
//! and read from their storages; nothing in the file is executed.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use super::pickle::{self, TensorRef, Value};
use super::Weights;
use crate::{RuntimeError, Tensor};

/// Reads a `.pth` / `.pt` state_dict, or a training checkpoint dict holding one under a key
/// common tools use (see [`STATE_DICT_KEYS`]; [`Weights::origin`] names the one used).
pub fn read(path: &Path) -> Result<Weights, RuntimeError> {
    read_preferring(path, |_| false)
}

/// As [`read`], choosing among the checkpoint's state_dicts (see [`state_dicts`]) the one with
/// the most tensors `wanted` accepts by name, the first found on a tie; the others are named in
/// [`Weights::alternatives`].
pub fn read_preferring(path: &Path, wanted: impl Fn(&str) -> bool) -> Result<Weights, RuntimeError> {
    let bad = |message: String| RuntimeError::WeightsFile { path: path.to_path_buf(), message };
    let data = std::fs::read(path).map_err(|source| RuntimeError::Read { path: path.to_path_buf(), source })?;
    let (root, storages) =
        if data.starts_with(b"PK") { zip_format(&data).map_err(bad)? } else { legacy_format(&data).map_err(bad)? };
    let mut found = Vec::new();
    state_dicts(&root, &mut Vec::new(), &mut found);
    let matches = |dict: &[Entry]| {
        dict.iter().filter(|(k, v)| matches!(v, Value::Tensor(_)) && matches!(k, Value::Str(k) if wanted(k))).count()
    };
    // The first of the most matches (max_by_key would take the last).
    let best = (0..found.len()).rev().max_by_key(|&i| matches(found[i].0));
    let Some(best) = best else {
        return Err(bad(format!("no state_dict of tensors found in the checkpoint; {}", describe_top_level(&root))));
    };
    let (dict, at) = found[best].clone();
    let alternatives = found
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != best)
        .map(|(_, (_, at))| if at.is_empty() { "(the top level)".to_string() } else { at.join(".") })
        .collect();
    let mut weights = Weights { alternatives, ..Weights::default() };
    for (key, value) in dict {
        let Value::Str(name) = key else { continue };
        let Value::Tensor(t) = value else {
            weights.not_tensors.push((name.clone(), type_name(value)));
            continue;
        };
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let tensor = materialise(t, &storages).map_err(|m| bad(format!("tensor `{name}`: {m}")))?;
        weights.insert(name.clone(), tensor);
    }
    if !at.is_empty() {
        weights.origin = Some(at.join("."));
    }
    Ok(weights)
}

/// Keys under which training code keeps a model's state_dict in a checkpoint dict, in the order
/// they are tried: Lightning's and most trainers' `state_dict`, PyTorch's tutorial layout
/// (`model_state_dict`), `model`, `net`, `network` and `module`, then exponential-moving-average
/// copies (`ema`, timm's `state_dict_ema`, `model_ema`), tried last so that the plain model wins.
pub const STATE_DICT_KEYS: &[&str] =
    &["state_dict", "model_state_dict", "model", "net", "network", "module", "ema", "state_dict_ema", "model_ema"];

/// A pickled dict's entry.
type Entry = (Value, Value);

/// How deep under the top level a state_dict is looked for (`{"checkpoint": {"model": sd}}` is 2).
const MAX_STATE_DICT_DEPTH: usize = 3;

/// Every dict with a tensor value in `value`, in the order they are preferred: `value` itself,
/// then those under [`STATE_DICT_KEYS`] in that order, then under any other key in the file's
/// order, each searched depth-first, at most [`MAX_STATE_DICT_DEPTH`] keys down; `at` holds the
/// keys leading to `value`.
fn state_dicts<'v>(value: &'v Value, at: &mut Vec<String>, out: &mut Vec<(&'v [Entry], Vec<String>)>) {
    let Value::Dict(entries) = value else { return };
    // A dict with a tensor is a candidate, and its dicts are searched too: pytorch/examples'
    // ImageNet script keeps `best_acc1` as a tensor beside its `state_dict`.
    if entries.iter().any(|(_, v)| matches!(v, Value::Tensor(_))) {
        out.push((entries, at.clone()));
    }
    if at.len() >= MAX_STATE_DICT_DEPTH {
        return;
    }
    let named = |key: &str| entries.iter().find(|(k, _)| matches!(k, Value::Str(s) if s == key));
    let known = STATE_DICT_KEYS.iter().filter_map(|key| named(key));
    let others = entries.iter().filter(|(k, _)| !matches!(k, Value::Str(s) if STATE_DICT_KEYS.contains(&s.as_str())));
    for (key, inner) in known.chain(others) {
        let Value::Str(key) = key else { continue };
        at.push(key.clone());
        state_dicts(inner, at, out);
        at.pop();
    }
}

/// What the checkpoint holds at its top level, for an error when no state_dict is found there:
/// the keys and the types of their values.
fn describe_top_level(root: &Value) -> String {
    let Value::Dict(entries) = root else {
        return format!("it holds {}, not a dict of tensors", type_name(root));
    };
    let keys: Vec<String> = entries
        .iter()
        .take(20)
        .map(|(k, v)| match k {
            Value::Str(k) => format!("`{k}` ({})", type_name(v)),
            other => format!("{} ({})", type_name(other), type_name(v)),
        })
        .collect();
    let more = if entries.len() > 20 { format!(" and {} more", entries.len() - 20) } else { String::new() };
    format!(
        "its top-level keys are {}{more}; cnnc looks for a dict of tensors at the top level and up to \
         {MAX_STATE_DICT_DEPTH} keys down, first under {}",
        keys.join(", "),
        STATE_DICT_KEYS.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
    )
}

fn type_name(value: &Value) -> String {
    match value {
        Value::None => "None".into(),
        Value::Bool(_) => "bool".into(),
        Value::Int(_) => "int".into(),
        Value::Float => "float".into(),
        Value::Str(_) => "str".into(),
        Value::Bytes(_) => "bytes".into(),
        Value::Tuple(_) => "tuple".into(),
        Value::List(_) => "list".into(),
        Value::Dict(entries) => format!("dict of {}", entries.len()),
        Value::Global(module, name) => format!("{module}.{name}"),
        Value::Opaque => "an object: a whole pickled module? save its state_dict() instead".into(),
        Value::Storage { .. } => "storage".into(),
        Value::Tensor(_) => "tensor".into(),
        Value::Array { .. } => "NumPy array".into(),
    }
}

type Storages = HashMap<String, Vec<u8>>;

fn zip_format(data: &[u8]) -> Result<(Value, Storages), String> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(data)).map_err(|e| format!("{e} (truncated or corrupt zip)"))?;
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(String::from).map_err(|e| format!("{e} (corrupt zip)")))
        .collect::<Result<_, _>>()?;
    let pkl = names.iter().find(|n| n.ends_with("data.pkl")).ok_or("no data.pkl in the archive")?.clone();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut bytes = Vec::new();
    archive.by_name(&pkl).map_err(|e| e.to_string())?.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    let (root, _) = pickle::read(&bytes, 0)?;
    let mut storages = Storages::new();
    for name in names.iter().filter(|n| n.starts_with(&format!("{prefix}data/"))) {
        let key = name[prefix.len() + 5..].to_string();
        let mut buf = Vec::new();
        archive
            .by_name(name)
            .map_err(|e| e.to_string())?
            .read_to_end(&mut buf)
            .map_err(|e| format!("{e} (corrupt archive)"))?;
        storages.insert(key, buf);
    }
    Ok((root, storages))
}

/// Legacy format: pickled magic number, protocol, system info, the object, the storage keys;
/// then each storage as an 8-byte element count and its raw little-endian data.
fn legacy_format(data: &[u8]) -> Result<(Value, Storages), String> {
    // The magic number 0x1950a86a20f9469cfc6c, pickled as a 10-byte LONG1.
    const MAGIC: &[u8] = &[0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    if data.get(2..2 + MAGIC.len()) != Some(MAGIC) {
        return Err("not a PyTorch checkpoint (neither a zip archive nor the legacy format's magic number)".into());
    }
    let (_magic, pos) = pickle::read(data, 0)?;
    let (_protocol, pos) = pickle::read(data, pos)?;
    let (_sys_info, pos) = pickle::read(data, pos)?;
    let (root, pos) = pickle::read(data, pos)?;
    let (keys, mut pos) = pickle::read(data, pos)?;
    let Value::List(keys) = keys else { return Err("the storage key list is missing (corrupt file)".into()) };
    let mut types: HashMap<String, String> = HashMap::new();
    collect_types(&root, &mut types);
    let mut storages = Storages::new();
    for key in keys {
        let Value::Str(key) = key else { return Err("a storage key is not a string".into()) };
        let count_bytes = data.get(pos..pos + 8).ok_or("the file ends inside the storages (truncated)")?;
        let count = u64::from_le_bytes(count_bytes.try_into().expect("8 bytes")) as usize;
        pos += 8;
        let size = element_size(types.get(&key).map_or("FloatStorage", String::as_str))?;
        let len = count.checked_mul(size).ok_or("a storage size overflows (corrupt file)")?;
        let raw = data.get(pos..pos + len).ok_or("the file ends inside a storage (truncated)")?;
        storages.insert(key, raw.to_vec());
        pos += len;
    }
    Ok((root, storages))
}

fn collect_types(v: &Value, out: &mut HashMap<String, String>) {
    match v {
        Value::Tensor(t) => {
            out.insert(t.key.clone(), t.type_name.clone());
        }
        Value::Dict(d) => d.iter().for_each(|(k, v)| {
            collect_types(k, out);
            collect_types(v, out);
        }),
        Value::List(l) | Value::Tuple(l) => l.iter().for_each(|v| collect_types(v, out)),
        _ => {}
    }
}

fn element_size(type_name: &str) -> Result<usize, String> {
    Ok(match type_name {
        "FloatStorage" | "IntStorage" => 4,
        "DoubleStorage" | "LongStorage" => 8,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "ByteStorage" | "CharStorage" | "BoolStorage" => 1,
        other => return Err(format!("unsupported storage type {other}")),
    })
}

fn materialise(t: &TensorRef, storages: &Storages) -> Result<Tensor, String> {
    let raw = storages.get(&t.key).ok_or_else(|| format!("its storage {} is missing (truncated file?)", t.key))?;
    let convert: fn(&[u8]) -> f32 = match t.type_name.as_str() {
        "FloatStorage" => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        "HalfStorage" => |b| half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
        "BFloat16Storage" => |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        "DoubleStorage" => |b| f64::from_le_bytes(b[..8].try_into().expect("8 bytes")) as f32,
        other => {
            // PyTorch's name for the dtype of a typed storage class.
            let dtype = match other {
                "CharStorage" => "int8",
                "ByteStorage" => "uint8",
                "ShortStorage" => "int16",
                "IntStorage" => "int32",
                "LongStorage" => "int64",
                "BoolStorage" => "bool",
                "ComplexFloatStorage" => "complex64",
                "ComplexDoubleStorage" => "complex128",
                other => other,
            };
            return Err(format!(
                "dtype {dtype} is not supported; weights must be f32, f16, bf16 or f64 (`.float()` them before saving)"
            ));
        }
    };
    let size = element_size(&t.type_name)?;
    let numel: usize = t.shape.iter().product();
    let mut data = Vec::with_capacity(numel);
    let mut index = vec![0usize; t.shape.len()];
    for _ in 0..numel {
        let at = t.offset + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        let bytes = raw.get(at * size..(at + 1) * size).ok_or("it reaches past its storage (corrupt file)")?;
        data.push(convert(bytes));
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(Tensor::new(t.shape.clone(), data))
}
