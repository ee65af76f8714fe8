//! ONNX `TensorProto` ↔ [`Tensor`].

use std::path::{Component, Path};

use half::{bf16, f16};
use prost::Message;
use tessera_ir::{DType, Shape, Tensor};

use crate::error::ImportError;
use crate::proto::{TensorProto, tensor_proto::DataLocation};

/// The ONNX element-type code of a dtype.
pub fn onnx_dtype_code(d: DType) -> i32 {
    match d {
        DType::F32 => 1,
        DType::U8 => 2,
        DType::I8 => 3,
        DType::U16 => 4,
        DType::I16 => 5,
        DType::I32 => 6,
        DType::I64 => 7,
        DType::Bool => 9,
        DType::F16 => 10,
        DType::F64 => 11,
        DType::U32 => 12,
        DType::U64 => 13,
        DType::BF16 => 16,
    }
}

/// The dtype of an ONNX element-type code, or a message naming the unsupported type.
pub fn dtype_from_onnx(code: i32) -> Result<DType, String> {
    Ok(match code {
        1 => DType::F32,
        2 => DType::U8,
        3 => DType::I8,
        4 => DType::U16,
        5 => DType::I16,
        6 => DType::I32,
        7 => DType::I64,
        9 => DType::Bool,
        10 => DType::F16,
        11 => DType::F64,
        12 => DType::U32,
        13 => DType::U64,
        16 => DType::BF16,
        other => {
            let name = crate::proto::tensor_proto::DataType::try_from(other)
                .map(|t| t.as_str_name().to_string())
                .unwrap_or_else(|_| format!("code {other}"));
            return Err(format!("element type {name} is not supported"));
        }
    })
}

/// A shape from ONNX dims: non-negative and within the IR's size limits (checked before
/// anything is allocated).
pub(crate) fn shape_from_dims(dims: &[i64]) -> Result<Shape, String> {
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        if d < 0 {
            return Err(format!("dimension {d} is negative"));
        }
        out.push(usize::try_from(d).map_err(|_| format!("dimension {d} is too large"))?);
    }
    Shape::new(out).map_err(|e| e.to_string())
}

fn typed<T: Copy, U>(
    src: &[T],
    n: usize,
    field: &str,
    f: impl Fn(T) -> U,
) -> Result<Vec<U>, String> {
    if src.len() != n {
        return Err(format!(
            "{field} holds {} elements, the shape needs {n}",
            src.len()
        ));
    }
    Ok(src.iter().map(|&x| f(x)).collect())
}

/// Converts a `TensorProto`. `base_dir` is the model's folder, used for external data;
/// without it external tensors are an error.
pub fn tensor_from_proto(t: &TensorProto, base_dir: Option<&Path>) -> Result<Tensor, String> {
    if t.segment.is_some() {
        return Err("segmented tensors are not supported".into());
    }
    let dtype = dtype_from_onnx(t.data_type.unwrap_or(0))?;
    let shape = shape_from_dims(&t.dims)?;
    let n = shape.numel();
    if t.data_location == Some(DataLocation::External as i32) {
        let bytes = read_external(t, base_dir, n * dtype.size_bytes())?;
        return Tensor::from_le_bytes(dtype, shape, &bytes).map_err(|e| e.to_string());
    }
    if let Some(raw) = &t.raw_data {
        if raw.len() != n * dtype.size_bytes() {
            return Err(format!(
                "raw_data has {} bytes, shape {shape} of {dtype} needs {}",
                raw.len(),
                n * dtype.size_bytes()
            ));
        }
        return Tensor::from_le_bytes(dtype, shape, raw).map_err(|e| e.to_string());
    }
    let i32s = &t.int32_data;
    let data = match dtype {
        DType::F32 => Tensor::from_vec(shape, typed(&t.float_data, n, "float_data", |x| x)?),
        DType::F64 => Tensor::from_vec(shape, typed(&t.double_data, n, "double_data", |x| x)?),
        DType::I64 => Tensor::from_vec(shape, typed(&t.int64_data, n, "int64_data", |x| x)?),
        DType::U64 => Tensor::from_vec(shape, typed(&t.uint64_data, n, "uint64_data", |x| x)?),
        DType::U32 => Tensor::from_vec(
            shape,
            typed(&t.uint64_data, n, "uint64_data", |x| x as u32)?,
        ),
        DType::I32 => Tensor::from_vec(shape, typed(i32s, n, "int32_data", |x| x)?),
        DType::I16 => Tensor::from_vec(shape, typed(i32s, n, "int32_data", |x| x as i16)?),
        DType::I8 => Tensor::from_vec(shape, typed(i32s, n, "int32_data", |x| x as i8)?),
        DType::U16 => Tensor::from_vec(shape, typed(i32s, n, "int32_data", |x| x as u16)?),
        DType::U8 => Tensor::from_vec(shape, typed(i32s, n, "int32_data", |x| x as u8)?),
        DType::Bool => Tensor::from_vec(shape, typed(i32s, n, "int32_data", |x| x != 0)?),
        DType::F16 => Tensor::from_vec(
            shape,
            typed(i32s, n, "int32_data", |x| f16::from_bits(x as u16))?,
        ),
        DType::BF16 => Tensor::from_vec(
            shape,
            typed(i32s, n, "int32_data", |x| bf16::from_bits(x as u16))?,
        ),
    };
    data.map_err(|e| e.to_string())
}

/// Reads `len` bytes of an external tensor from a file next to the model.
fn read_external(t: &TensorProto, base_dir: Option<&Path>, len: usize) -> Result<Vec<u8>, String> {
    let get = |key: &str| {
        t.external_data
            .iter()
            .find(|e| e.key.as_deref() == Some(key))
            .and_then(|e| e.value.as_deref())
    };
    let location = get("location").ok_or("external data has no location")?;
    let rel = Path::new(location);
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(format!(
            "external data location {location:?} must be a relative path inside the model's folder"
        ));
    }
    let base = base_dir.ok_or("the model has external data but was not loaded from a file")?;
    let parse = |key: &str| -> Result<Option<u64>, String> {
        get(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("external data {key} {v:?} is not a number"))
            })
            .transpose()
    };
    let offset = parse("offset")?.unwrap_or(0);
    if let Some(l) = parse("length")?
        && l != len as u64
    {
        return Err(format!(
            "external data length {l} does not match the {len} bytes the shape needs"
        ));
    }
    let path = base.join(rel);
    let bytes = std::fs::read(&path)
        .map_err(|e| format!("cannot read external data {}: {e}", path.display()))?;
    let start =
        usize::try_from(offset).map_err(|_| "external data offset is too large".to_string())?;
    bytes
        .get(
            start
                ..start
                    .checked_add(len)
                    .ok_or("external data range overflows")?,
        )
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            format!(
                "external data {} has {} bytes, {len} needed at offset {offset}",
                path.display(),
                bytes.len()
            )
        })
}

/// A `TensorProto` holding `t` in `raw_data`, named `name`.
pub fn tensor_to_proto(t: &Tensor, name: &str) -> TensorProto {
    TensorProto {
        dims: t.shape().dims().iter().map(|&d| d as i64).collect(),
        data_type: Some(onnx_dtype_code(t.dtype())),
        name: Some(name.to_string()),
        raw_data: Some(t.to_le_bytes()),
        ..Default::default()
    }
}

/// Reads a serialized `TensorProto` file (the ONNX test-data `.pb` format).
pub fn read_tensor_file(path: &Path) -> Result<(String, Tensor), ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let fail = |message: String| ImportError::TensorFile {
        path: path.to_path_buf(),
        message,
    };
    let proto = TensorProto::decode(bytes.as_slice())
        .map_err(|e| fail(format!("not a TensorProto: {e}")))?;
    let t = tensor_from_proto(&proto, path.parent()).map_err(fail)?;
    Ok((proto.name.unwrap_or_default(), t))
}

/// Serializes `t` as a `TensorProto` (raw little-endian data).
pub fn encode_tensor(t: &Tensor, name: &str) -> Vec<u8> {
    tensor_to_proto(t, name).encode_to_vec()
}
