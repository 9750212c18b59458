//! A small pickle reader for PyTorch checkpoints and NumPy arrays: the opcodes `torch.save` and
//! Python 2's `cPickle` emit (protocols 2–5), with tensors rebuilt as references into their storages
//! and `numpy.ndarray`s (CIFAR-10's Python batches) as their bytes. Anything else in the file
//! (optimiser state, unknown classes) is kept as an opaque value, never executed.

use std::collections::HashMap;

/// A value the pickle stream builds.
#[derive(Clone, Debug)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// Floats: present in checkpoints, never needed to find tensors.
    Float,
    Str(String),
    /// Byte strings (and Python 2 strings that are not UTF-8 text).
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// A class or function named by `module.name`.
    Global(String, String),
    /// The result of calling something this reader does not model.
    Opaque,
    /// A storage reference from a persistent id: element type name, key, element count.
    Storage {
        type_name: String,
        key: String,
    },
    /// A tensor view of a storage.
    Tensor(TensorRef),
    /// A `numpy.ndarray`: its dtype's code (`u1`, `f4`, …), shape and bytes in C order (`dtype` is
    /// empty until the array's state is built).
    Array {
        dtype: String,
        shape: Vec<usize>,
        data: Vec<u8>,
    },
}

/// Where a tensor's values live.
#[derive(Clone, Debug)]
pub struct TensorRef {
    /// The storage's class (`FloatStorage`, `HalfStorage`, …).
    pub type_name: String,
    pub key: String,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// Reads one pickle from `data` starting at `pos`; returns the value and the position after STOP.
pub fn read(data: &[u8], mut pos: usize) -> Result<(Value, usize), String> {
    let mut stack: Vec<Value> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();
    let take = |pos: &mut usize, n: usize| -> Result<&[u8], String> {
        let end =
            pos.checked_add(n).filter(|e| *e <= data.len()).ok_or("the pickle stream ends early (truncated file)")?;
        let s = &data[*pos..end];
        *pos = end;
        Ok(s)
    };
    let pop = |stack: &mut Vec<Value>| stack.pop().ok_or_else(|| "pickle stack underflow (corrupt file)".to_string());
    let pop_mark = |stack: &mut Vec<Value>, marks: &mut Vec<usize>| -> Result<Vec<Value>, String> {
        let m = marks.pop().ok_or("pickle MARK missing (corrupt file)")?;
        if m > stack.len() {
            return Err("pickle MARK past the stack (corrupt file)".into());
        }
        Ok(stack.split_off(m))
    };
    loop {
        let op = *take(&mut pos, 1)?.first().expect("one byte");
        match op {
            0x80 => {
                take(&mut pos, 1)?;
            } // PROTO
            0x95 => {
                take(&mut pos, 8)?;
            } // FRAME
            b'.' => return Ok((pop(&mut stack)?, pos)), // STOP
            b'(' => marks.push(stack.len()),
            b'}' => stack.push(Value::Dict(Vec::new())),
            b']' => stack.push(Value::List(Vec::new())),
            b')' => stack.push(Value::Tuple(Vec::new())),
            b'N' => stack.push(Value::None),
            0x88 | 0x89 => stack.push(Value::Bool(op == 0x88)),
            b'K' => stack.push(Value::Int(take(&mut pos, 1)?[0] as i64)),
            b'M' => {
                let b = take(&mut pos, 2)?;
                stack.push(Value::Int(u16::from_le_bytes([b[0], b[1]]) as i64));
            }
            b'J' => {
                let b = take(&mut pos, 4)?;
                stack.push(Value::Int(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64));
            }
            0x8a => {
                // LONG1: little-endian two's complement of n bytes; values beyond i64 become opaque.
                let n = take(&mut pos, 1)?[0] as usize;
                let b = take(&mut pos, n)?;
                if n <= 8 {
                    let mut buf = [if b.last().is_some_and(|x| x & 0x80 != 0) { 0xff } else { 0 }; 8];
                    buf[..n].copy_from_slice(b);
                    stack.push(Value::Int(i64::from_le_bytes(buf)));
                } else {
                    stack.push(Value::Opaque);
                }
            }
            b'G' => {
                take(&mut pos, 8)?;
                stack.push(Value::Float);
            }
            b'X' | 0x8c | 0x8d => {
                let n = match op {
                    b'X' => u32::from_le_bytes(take(&mut pos, 4)?.try_into().expect("4 bytes")) as usize,
                    0x8c => take(&mut pos, 1)?[0] as usize,
                    _ => u64::from_le_bytes(take(&mut pos, 8)?.try_into().expect("8 bytes")) as usize,
                };
                let s = take(&mut pos, n)?;
                stack.push(Value::Str(String::from_utf8_lossy(s).into_owned()));
            }
            b'T' | b'U' | b'B' | b'C' => {
                // BINSTRING, SHORT_BINSTRING (Python 2), BINBYTES, SHORT_BINBYTES
                let n = match op {
                    b'T' | b'B' => u32::from_le_bytes(take(&mut pos, 4)?.try_into().expect("4 bytes")) as usize,
                    _ => take(&mut pos, 1)?[0] as usize,
                };
                let s = take(&mut pos, n)?;
                // A Python 2 string is text when it decodes, else bytes (an array's data).
                stack.push(match std::str::from_utf8(s) {
                    Ok(text) if matches!(op, b'T' | b'U') => Value::Str(text.to_string()),
                    _ => Value::Bytes(s.to_vec()),
                });
            }
            b'c' => {
                let line = |pos: &mut usize| -> Result<String, String> {
                    let end =
                        data[*pos..].iter().position(|&b| b == b'\n').ok_or("unterminated GLOBAL (corrupt file)")?;
                    let s = String::from_utf8_lossy(&data[*pos..*pos + end]).into_owned();
                    *pos += end + 1;
                    Ok(s)
                };
                let module = line(&mut pos)?;
                let name = line(&mut pos)?;
                stack.push(Value::Global(module, name));
            }
            0x93 => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => stack.push(Value::Global(m, n)),
                    _ => return Err("STACK_GLOBAL needs two strings (corrupt file)".into()),
                }
            }
            b't' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err("pickle stack underflow (corrupt file)".into());
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b'l' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                stack.push(Value::List(items));
            }
            b'd' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                stack.push(Value::Dict(pairs(items)));
            }
            b'a' => {
                let item = pop(&mut stack)?;
                if let Some(Value::List(l)) = stack.last_mut() {
                    l.push(item);
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                if let Some(Value::List(l)) = stack.last_mut() {
                    l.extend(items);
                }
            }
            b's' => {
                let v = pop(&mut stack)?;
                let k = pop(&mut stack)?;
                if let Some(Value::Dict(d)) = stack.last_mut() {
                    d.push((k, v));
                }
            }
            b'u' => {
                let items = pop_mark(&mut stack, &mut marks)?;
                if let Some(Value::Dict(d)) = stack.last_mut() {
                    d.extend(pairs(items));
                }
            }
            b'q' => {
                let i = take(&mut pos, 1)?[0] as u32;
                memo.insert(i, stack.last().cloned().ok_or("BINPUT on an empty stack")?);
            }
            b'r' => {
                let i = u32::from_le_bytes(take(&mut pos, 4)?.try_into().expect("4 bytes"));
                memo.insert(i, stack.last().cloned().ok_or("LONG_BINPUT on an empty stack")?);
            }
            0x94 => {
                let i = memo.len() as u32;
                memo.insert(i, stack.last().cloned().ok_or("MEMOIZE on an empty stack")?);
            }
            b'h' | b'j' => {
                let i = if op == b'h' {
                    take(&mut pos, 1)?[0] as u32
                } else {
                    u32::from_le_bytes(take(&mut pos, 4)?.try_into().expect("4 bytes"))
                };
                stack.push(memo.get(&i).cloned().ok_or("BINGET of an unknown memo entry (corrupt file)")?);
            }
            b'Q' => {
                let pid = pop(&mut stack)?;
                stack.push(persistent(pid)?);
            }
            b'R' | 0x81 => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                stack.push(call(callable, args)?);
            }
            b'b' => {
                // BUILD: object state; tensors and dicts need none, arrays take theirs.
                let state = pop(&mut stack)?;
                if let Some(array @ Value::Array { .. }) = stack.last_mut() {
                    *array = build_array(state)?;
                }
            }
            other => return Err(format!("unsupported pickle opcode 0x{other:02x} at byte {}", pos - 1)),
        }
    }
}

fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

fn persistent(pid: Value) -> Result<Value, String> {
    // ('storage', <class torch.XStorage>, key, location, numel[, view metadata])
    let Value::Tuple(parts) = pid else { return Err("unexpected persistent id (not a PyTorch checkpoint?)".into()) };
    match parts.as_slice() {
        [Value::Str(kind), Value::Global(_, type_name), key, ..] if kind == "storage" => {
            let key = match key {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                _ => return Err("storage key is neither a string nor an int".into()),
            };
            Ok(Value::Storage { type_name: type_name.clone(), key })
        }
        _ => Err("unexpected persistent id (not a PyTorch checkpoint?)".into()),
    }
}

fn dims(v: &Value) -> Option<Vec<usize>> {
    match v {
        Value::Tuple(items) | Value::List(items) => {
            items.iter().map(|i| if let Value::Int(x) = i { usize::try_from(*x).ok() } else { None }).collect()
        }
        _ => None,
    }
}

fn call(callable: Value, args: Value) -> Result<Value, String> {
    let Value::Global(module, name) = &callable else { return Ok(Value::Opaque) };
    let args = match args {
        Value::Tuple(a) => a,
        _ => return Ok(Value::Opaque),
    };
    match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") => Ok(Value::Dict(Vec::new())),
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
            let (Some(Value::Storage { type_name, key }), Some(Value::Int(offset)), Some(size), Some(stride)) =
                (args.first(), args.get(1), args.get(2).and_then(dims), args.get(3).and_then(dims))
            else {
                return Err("a tensor's rebuild arguments are malformed (corrupt file)".into());
            };
            Ok(Value::Tensor(TensorRef {
                type_name: type_name.clone(),
                key: key.clone(),
                offset: usize::try_from(*offset).map_err(|_| "negative storage offset")?,
                shape: size,
                stride,
            }))
        }
        ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => {
            Ok(Value::Array { dtype: String::new(), shape: Vec::new(), data: Vec::new() })
        }
        // Python 3's protocol 2 pickles bytes as `_codecs.encode(text, "latin1")`.
        ("_codecs", "encode") => match (args.first(), args.get(1)) {
            (Some(Value::Str(text)), Some(Value::Str(codec))) if codec == "latin1" || codec == "latin-1" => text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).ok())
                .collect::<Option<Vec<u8>>>()
                .map_or(Err("a latin-1 byte string holds a character beyond 255 (corrupt file)".to_string()), |b| {
                    Ok(Value::Bytes(b))
                }),
            _ => Ok(Value::Opaque),
        },
        ("numpy", "dtype") => match args.first() {
            Some(Value::Str(code)) => Ok(Value::Str(code.clone())),
            _ => Ok(Value::Opaque),
        },
        // Newer dtypes (float8, …): (untyped storage, offset, size, stride, requires_grad,
        // hooks, dtype, …). The dtype's name stands for the storage class, so that reading the
        // tensor names it as unsupported.
        ("torch._utils", "_rebuild_tensor_v3") => {
            let (Some(Value::Storage { key, .. }), Some(Value::Int(offset)), Some(size), Some(stride)) =
                (args.first(), args.get(1), args.get(2).and_then(dims), args.get(3).and_then(dims))
            else {
                return Err("a tensor's rebuild arguments are malformed (corrupt file)".into());
            };
            let type_name = match args.get(6) {
                Some(Value::Global(_, dtype)) => match dtype.as_str() {
                    "float32" | "float" => "FloatStorage".to_string(),
                    "float16" | "half" => "HalfStorage".to_string(),
                    "bfloat16" => "BFloat16Storage".to_string(),
                    "float64" | "double" => "DoubleStorage".to_string(),
                    other => other.to_string(),
                },
                _ => return Err("a tensor's dtype is missing from its rebuild arguments (corrupt file)".into()),
            };
            Ok(Value::Tensor(TensorRef {
                type_name,
                key: key.clone(),
                offset: usize::try_from(*offset).map_err(|_| "negative storage offset")?,
                shape: size,
                stride,
            }))
        }
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            Ok(args.into_iter().next().unwrap_or(Value::Opaque))
        }
        _ => Ok(Value::Opaque),
    }
}

/// An ndarray from its `__setstate__` tuple: (version, shape, dtype, Fortran order, data).
fn build_array(state: Value) -> Result<Value, String> {
    let Value::Tuple(parts) = state else { return Err("an ndarray's state is not a tuple (corrupt file)".into()) };
    let [_, shape, Value::Str(dtype), Value::Bool(fortran), data] = &parts[..] else {
        return Err("an ndarray's state is not (version, shape, dtype, order, data)".into());
    };
    let shape = dims(shape).ok_or("an ndarray's shape is not a tuple of sizes")?;
    if *fortran && shape.len() > 1 {
        return Err("a Fortran-ordered ndarray (cnnc reads C order)".into());
    }
    let data = match data {
        Value::Bytes(b) => b.clone(),
        Value::Str(s) => s.as_bytes().to_vec(),
        _ => return Err("an ndarray's data is not a byte string".into()),
    };
    Ok(Value::Array { dtype: dtype.clone(), shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pickle.dumps({"data": np.array([[0, 1, 200], [3, 255, 5]], dtype=np.uint8), "labels": [1, 2]},
    /// protocol=P)` from Python 3.12 and NumPy 2: protocol 2 spells the bytes with `_codecs.encode`,
    /// protocol 4 with SHORT_BINBYTES and STACK_GLOBAL.
    const PROTOCOL_2: &[u8] =
        b"\x80\x02\x7d\x71\x00\x28\x58\x04\x00\x00\x00\x64\x61\x74\x61\x71\x01\x63\x6e\x75\x6d\x70\x79\x2e\
            \x5f\x63\x6f\x72\x65\x2e\x6d\x75\x6c\x74\x69\x61\x72\x72\x61\x79\x0a\x5f\x72\x65\x63\x6f\x6e\x73\
            \x74\x72\x75\x63\x74\x0a\x71\x02\x63\x6e\x75\x6d\x70\x79\x0a\x6e\x64\x61\x72\x72\x61\x79\x0a\x71\
            \x03\x4b\x00\x85\x71\x04\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e\x63\x6f\x64\x65\x0a\x71\x05\
            \x58\x01\x00\x00\x00\x62\x71\x06\x58\x06\x00\x00\x00\x6c\x61\x74\x69\x6e\x31\x71\x07\x86\x71\x08\
            \x52\x71\x09\x87\x71\x0a\x52\x71\x0b\x28\x4b\x01\x4b\x02\x4b\x03\x86\x71\x0c\x63\x6e\x75\x6d\x70\
            \x79\x0a\x64\x74\x79\x70\x65\x0a\x71\x0d\x58\x02\x00\x00\x00\x75\x31\x71\x0e\x89\x88\x87\x71\x0f\
            \x52\x71\x10\x28\x4b\x03\x58\x01\x00\x00\x00\x7c\x71\x11\x4e\x4e\x4e\x4a\xff\xff\xff\xff\x4a\xff\
            \xff\xff\xff\x4b\x00\x74\x71\x12\x62\x89\x68\x05\x58\x08\x00\x00\x00\x00\x01\xc3\x88\x03\xc3\xbf\
            \x05\x71\x13\x68\x07\x86\x71\x14\x52\x71\x15\x74\x71\x16\x62\x58\x06\x00\x00\x00\x6c\x61\x62\x65\
            \x6c\x73\x71\x17\x5d\x71\x18\x28\x4b\x01\x4b\x02\x65\x75\x2e";
    const PROTOCOL_4: &[u8] =
        b"\x80\x04\x95\xad\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x04\x64\x61\x74\x61\x94\x8c\x16\x6e\
            \x75\x6d\x70\x79\x2e\x5f\x63\x6f\x72\x65\x2e\x6d\x75\x6c\x74\x69\x61\x72\x72\x61\x79\x94\x8c\x0c\
            \x5f\x72\x65\x63\x6f\x6e\x73\x74\x72\x75\x63\x74\x94\x93\x94\x8c\x05\x6e\x75\x6d\x70\x79\x94\x8c\
            \x07\x6e\x64\x61\x72\x72\x61\x79\x94\x93\x94\x4b\x00\x85\x94\x43\x01\x62\x94\x87\x94\x52\x94\x28\
            \x4b\x01\x4b\x02\x4b\x03\x86\x94\x68\x05\x8c\x05\x64\x74\x79\x70\x65\x94\x93\x94\x8c\x02\x75\x31\
            \x94\x89\x88\x87\x94\x52\x94\x28\x4b\x03\x8c\x01\x7c\x94\x4e\x4e\x4e\x4a\xff\xff\xff\xff\x4a\xff\
            \xff\xff\xff\x4b\x00\x74\x94\x62\x89\x43\x06\x00\x01\xc8\x03\xff\x05\x94\x74\x94\x62\x8c\x06\x6c\
            \x61\x62\x65\x6c\x73\x94\x5d\x94\x28\x4b\x01\x4b\x02\x65\x75\x2e";

    #[test]
    fn numpy_arrays_read_from_python_3_pickles() {
        for bytes in [PROTOCOL_2, PROTOCOL_4] {
            let (value, end) = read(bytes, 0).unwrap();
            assert_eq!(end, bytes.len());
            let Value::Dict(items) = value else { panic!("a dict") };
            let data = items.iter().find(|(k, _)| matches!(k, Value::Str(s) if s == "data")).unwrap();
            match &data.1 {
                Value::Array { dtype, shape, data } => {
                    assert_eq!(
                        (dtype.as_str(), shape.as_slice(), data.as_slice()),
                        ("u1", &[2, 3][..], &[0, 1, 200, 3, 255, 5][..])
                    )
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(read(&PROTOCOL_2[..100], 0).unwrap_err().contains("ends early"));
    }
}
