//! Reductions and normalizations: `reduce_*`, `cumsum`, (log-)softmax, layer, RMS, batch
//! and local response normalization.

use super::{Result, broadcast_shapes, need, need_axis, one, same_dtype, shape};
use crate::{DType, Domain, ReduceOp, TensorType};

/// Reduction over sorted, unique `axes`, which stay as 1s with `keep_dims`.
pub(super) fn reduce(
    op: ReduceOp,
    axes: &[usize],
    keep_dims: bool,
    t: &TensorType,
) -> Result<Vec<TensorType>> {
    // The max and min of bools are any and all.
    let domain = match op {
        ReduceOp::Max | ReduceOp::Min => Domain::Any,
        _ => Domain::Numeric,
    };
    need(domain, "operand", t.dtype)?;
    let rank = t.shape.rank();
    if axes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("axes {axes:?} must be sorted and unique"));
    }
    if let Some(&a) = axes.last() {
        need_axis(a, rank)?;
    }
    let mut out = Vec::new();
    for (i, &d) in t.shape.dims().iter().enumerate() {
        if axes.contains(&i) {
            if keep_dims {
                out.push(1);
            }
        } else {
            out.push(d);
        }
    }
    one(t.dtype, shape(out)?)
}

/// A running sum along `axis`: the operand's type.
pub(super) fn cumsum(axis: usize, x: &TensorType) -> Result<Vec<TensorType>> {
    need(Domain::Numeric, "operand", x.dtype)?;
    need_axis(axis, x.shape.rank())?;
    Ok(vec![x.clone()])
}

/// `softmax` and `log_softmax`.
pub(super) fn softmax(axis: usize, x: &TensorType) -> Result<Vec<TensorType>> {
    need(Domain::Float, "operand", x.dtype)?;
    need_axis(axis, x.shape.rank())?;
    Ok(vec![x.clone()])
}

/// Inputs X, scale and an optional bias, both broadcast over the normalized axes
/// `axis..rank`; with `stats`, the f32 mean and inverse standard deviation too.
pub(super) fn layer_norm(
    axis: usize,
    stats: bool,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>> {
    let x = inputs[0];
    need(Domain::Float, "X", x.dtype)?;
    need_axis(axis, x.shape.rank())?;
    let norm = &x.shape.dims()[axis..];
    for (i, t) in inputs.iter().enumerate().skip(1) {
        if t.dtype != x.dtype {
            return Err(format!(
                "input {i} has dtype {}, X has {}",
                t.dtype, x.dtype
            ));
        }
        if broadcast_shapes(&t.shape, &x.shape).as_ref() != Some(&x.shape)
            || t.shape.rank() > norm.len()
        {
            return Err(format!(
                "input {i} of shape {} does not broadcast over the normalized axes {norm:?}",
                t.shape
            ));
        }
    }
    let mut out = vec![x.clone()];
    if stats {
        let mut s = x.shape.dims()[..axis].to_vec();
        s.resize(x.shape.rank(), 1);
        let st = TensorType::new(DType::F32, shape(s)?);
        out.push(st.clone());
        out.push(st);
    }
    Ok(out)
}

/// X and a scale broadcast over the normalized axes `axis..rank`.
pub(super) fn rms_norm(axis: usize, x: &TensorType, scale: &TensorType) -> Result<Vec<TensorType>> {
    need(Domain::Float, "X", x.dtype)?;
    need_axis(axis, x.shape.rank())?;
    if scale.dtype != x.dtype {
        return Err(format!(
            "scale has dtype {}, X has {}",
            scale.dtype, x.dtype
        ));
    }
    if broadcast_shapes(&scale.shape, &x.shape).as_ref() != Some(&x.shape)
        || scale.shape.rank() > x.shape.rank() - axis
    {
        return Err(format!(
            "scale of shape {} does not broadcast over the normalized axes of {}",
            scale.shape, x.shape
        ));
    }
    Ok(vec![x.clone()])
}

/// X `[N, C, ...]` and scale, bias, mean and variance, all `[C]`.
pub(super) fn batch_norm(inputs: &[&TensorType]) -> Result<Vec<TensorType>> {
    let d = same_dtype(inputs)?;
    need(Domain::Float, "operands", d)?;
    let x = inputs[0].shape.dims();
    if x.len() < 2 {
        return Err(format!("X must be [N, C, ...], got {}", inputs[0].shape));
    }
    for (i, t) in inputs.iter().enumerate().skip(1) {
        if t.shape.dims() != [x[1]] {
            return Err(format!("input {i} must be [{}], got {}", x[1], t.shape));
        }
    }
    Ok(vec![inputs[0].clone()])
}

/// Local response normalization across the channels of `[N, C, spatial...]`.
pub(super) fn lrn(size: usize, x: &TensorType) -> Result<Vec<TensorType>> {
    need(Domain::Float, "operand", x.dtype)?;
    if x.shape.rank() < 3 || size == 0 {
        return Err("needs X of shape [N, C, spatial...] and a positive size".into());
    }
    Ok(vec![x.clone()])
}
