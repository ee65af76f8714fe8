//! Data movement: reshape, transpose, expand, concat, split, slice and the gathers. The
//! output dtype is the data's; only shapes are computed.

use super::{Result, broadcast_shapes, need_axis, one, same_dtype, shape};
use crate::{DType, Shape, TensorType};

pub(super) fn reshape(s: &Shape, x: &TensorType) -> Result<Vec<TensorType>> {
    if s.numel() != x.shape.numel() {
        return Err(format!(
            "cannot reshape {} ({} elements) to {s} ({} elements)",
            x.shape,
            x.shape.numel(),
            s.numel()
        ));
    }
    one(x.dtype, s.clone())
}

pub(super) fn transpose(perm: &[usize], t: &TensorType) -> Result<Vec<TensorType>> {
    let x = t.shape.dims();
    let mut seen = vec![false; x.len()];
    if perm.len() != x.len()
        || perm
            .iter()
            .any(|&p| p >= x.len() || std::mem::replace(&mut seen[p], true))
    {
        return Err(format!(
            "perm {perm:?} is not a permutation of rank {}",
            x.len()
        ));
    }
    one(t.dtype, shape(perm.iter().map(|&p| x[p]).collect())?)
}

/// Broadcast to exactly `s`.
pub(super) fn expand(s: &Shape, x: &TensorType) -> Result<Vec<TensorType>> {
    if broadcast_shapes(&x.shape, s).as_ref() != Some(s) {
        return Err(format!("{} does not broadcast to {s}", x.shape));
    }
    one(x.dtype, s.clone())
}

/// Inputs of one dtype and rank that agree outside `axis`.
pub(super) fn concat(axis: usize, inputs: &[&TensorType]) -> Result<Vec<TensorType>> {
    let d = same_dtype(inputs)?;
    let first = inputs[0].shape.dims();
    need_axis(axis, first.len())?;
    let mut total = 0usize;
    for (i, t) in inputs.iter().enumerate() {
        let s = t.shape.dims();
        if s.len() != first.len()
            || s.iter()
                .zip(first)
                .enumerate()
                .any(|(k, (a, b))| k != axis && a != b)
        {
            return Err(format!(
                "input {i} of shape {} does not match input 0 of shape {} outside axis {axis}",
                t.shape, inputs[0].shape
            ));
        }
        total += s[axis];
    }
    let mut out = first.to_vec();
    out[axis] = total;
    one(d, shape(out)?)
}

/// One output per entry of `sizes`, which sum to the dimension of `axis`.
pub(super) fn split(axis: usize, sizes: &[usize], t: &TensorType) -> Result<Vec<TensorType>> {
    let x = t.shape.dims();
    need_axis(axis, x.len())?;
    if sizes.is_empty() || sizes.iter().sum::<usize>() != x[axis] {
        return Err(format!(
            "split sizes {sizes:?} do not sum to dimension {} of axis {axis}",
            x[axis]
        ));
    }
    sizes
        .iter()
        .map(|&n| {
            let mut s = x.to_vec();
            s[axis] = n;
            Ok(TensorType::new(t.dtype, shape(s)?))
        })
        .collect()
}

/// Strided slice with normalized bounds (see [`crate::Op::Slice`]).
pub(super) fn slice(
    axes: &[usize],
    starts: &[i64],
    ends: &[i64],
    steps: &[i64],
    t: &TensorType,
) -> Result<Vec<TensorType>> {
    let x = t.shape.dims();
    let n = axes.len();
    if starts.len() != n || ends.len() != n || steps.len() != n {
        return Err("axes, starts, ends and steps differ in length".into());
    }
    let mut out = x.to_vec();
    for i in 0..n {
        let a = axes[i];
        need_axis(a, x.len())?;
        if axes[..i].contains(&a) {
            return Err(format!("axis {a} is sliced twice"));
        }
        let dim = x[a] as i64;
        let (s, e, st) = (starts[i], ends[i], steps[i]);
        let ok = if st > 0 {
            0 <= s && s <= e && e <= dim
        } else if st < 0 {
            -1 <= e && e <= s && s < dim.max(0)
        } else {
            false
        };
        // An empty slice of a negative step may have start == end == -1 on dim 0.
        let empty_neg = st < 0 && dim == 0 && s == -1 && e == -1;
        if !ok && !empty_neg {
            return Err(format!(
                "slice [{s}:{e}:{st}] on axis {a} of size {dim} is not normalized"
            ));
        }
        out[a] = if st > 0 {
            ((e - s) as usize).div_ceil(st as usize)
        } else {
            ((s - e) as usize).div_ceil(st.unsigned_abs() as usize)
        };
    }
    one(t.dtype, shape(out)?)
}

/// `numpy.take` along `axis`: the indices' shape replaces that axis.
pub(super) fn gather(axis: usize, t: &TensorType, idx: &TensorType) -> Result<Vec<TensorType>> {
    let data = t.shape.dims();
    need_index_dtype(idx)?;
    need_axis(axis, data.len())?;
    let mut out = data[..axis].to_vec();
    out.extend_from_slice(idx.shape.dims());
    out.extend_from_slice(&data[axis + 1..]);
    one(t.dtype, shape(out)?)
}

/// Indices of the data's rank, no larger than the data outside `axis`; the output has
/// the indices' shape.
pub(super) fn gather_elements(
    axis: usize,
    t: &TensorType,
    idx: &TensorType,
) -> Result<Vec<TensorType>> {
    let data = t.shape.dims();
    need_index_dtype(idx)?;
    need_axis(axis, data.len())?;
    let ix = idx.shape.dims();
    if ix.len() != data.len()
        || ix
            .iter()
            .zip(data)
            .enumerate()
            .any(|(k, (i, d))| k != axis && i > d)
    {
        return Err(format!(
            "indices of shape {} do not fit data of shape {}",
            idx.shape, t.shape
        ));
    }
    one(t.dtype, idx.shape.clone())
}

/// i64 index tuples along the last axis of the indices, after `batch_dims` shared
/// leading dimensions.
pub(super) fn gather_nd(
    batch_dims: usize,
    t: &TensorType,
    idx: &TensorType,
) -> Result<Vec<TensorType>> {
    let data = t.shape.dims();
    if idx.dtype != DType::I64 {
        return Err(format!("indices must be i64, got {}", idx.dtype));
    }
    let ix = idx.shape.dims();
    let b = batch_dims;
    if ix.is_empty() || b >= ix.len() || b >= data.len() || data[..b] != ix[..b] {
        return Err(format!(
            "indices {} and data {} disagree with batch_dims {b}",
            idx.shape, t.shape
        ));
    }
    let last = ix[ix.len() - 1];
    if last < 1 || b + last > data.len() {
        return Err(format!(
            "index tuples of length {last} do not fit data of rank {}",
            data.len()
        ));
    }
    let mut out = ix[..ix.len() - 1].to_vec();
    out.extend_from_slice(&data[b + last..]);
    one(t.dtype, shape(out)?)
}

fn need_index_dtype(t: &TensorType) -> Result<()> {
    if matches!(t.dtype, DType::I32 | DType::I64) {
        Ok(())
    } else {
        Err(format!("indices must be i32 or i64, got {}", t.dtype))
    }
}
