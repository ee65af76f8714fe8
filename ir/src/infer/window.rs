//! Sliding-window ops over the spatial axes of `[N, C, spatial...]`: convolution and
//! pooling, any number of spatial axes.

use super::{Result, need, one, same_dtype, shape};
use crate::{ConvAttrs, DType, Domain, PoolAttrs, PoolKind, TensorType};

/// Inputs X `[N, C, ...]`, W `[M, C/group, k...]` and an optional bias `[M]`.
pub(super) fn conv(a: &ConvAttrs, inputs: &[&TensorType]) -> Result<Vec<TensorType>> {
    let d = same_dtype(inputs)?;
    need(Domain::Float, "operands", d)?;
    let x = inputs[0].shape.dims();
    let w = inputs[1].shape.dims();
    if x.len() < 3 {
        return Err(format!(
            "X must be [N, C, spatial...], got {}",
            inputs[0].shape
        ));
    }
    let sp = x.len() - 2;
    if w.len() != x.len() {
        return Err(format!("W has rank {} but X has rank {}", w.len(), x.len()));
    }
    if a.strides.len() != sp || a.dilations.len() != sp || a.pads.len() != 2 * sp {
        return Err(format!("attribute lengths do not match {sp} spatial axes"));
    }
    if a.group == 0 || w[1].checked_mul(a.group) != Some(x[1]) || !w[0].is_multiple_of(a.group) {
        return Err(format!(
            "channels do not match: X has {} channels, W is {}, group {}",
            x[1], inputs[1].shape, a.group
        ));
    }
    if let Some(b) = inputs.get(2)
        && b.shape.dims() != [w[0]]
    {
        return Err(format!("bias must be [{}], got {}", w[0], b.shape));
    }
    let mut out = vec![x[0], w[0]];
    for i in 0..sp {
        out.push(window_out(
            x[2 + i],
            w[2 + i],
            a.strides[i],
            a.dilations[i],
            a.pads[i],
            a.pads[sp + i],
            false,
        )?);
    }
    one(d, shape(out)?)
}

/// Max pooling (numeric, with optional i64 indices) or average pooling (float).
pub(super) fn pool(kind: PoolKind, a: &PoolAttrs, t: &TensorType) -> Result<Vec<TensorType>> {
    match kind {
        PoolKind::Max { .. } => need(Domain::Numeric, "operand", t.dtype)?,
        PoolKind::Average { .. } => need(Domain::Float, "operand", t.dtype)?,
    }
    let x = t.shape.dims();
    if x.len() < 3 {
        return Err(format!("X must be [N, C, spatial...], got {}", t.shape));
    }
    let sp = x.len() - 2;
    if a.kernel.len() != sp
        || a.strides.len() != sp
        || a.dilations.len() != sp
        || a.pads.len() != 2 * sp
    {
        return Err(format!("attribute lengths do not match {sp} spatial axes"));
    }
    let mut out = vec![x[0], x[1]];
    for i in 0..sp {
        let window = a.kernel[i].saturating_mul(a.dilations[i]);
        if a.pads[i] >= window || a.pads[sp + i] >= window {
            return Err("pads must be smaller than the window".into());
        }
        out.push(window_out(
            x[2 + i],
            a.kernel[i],
            a.strides[i],
            a.dilations[i],
            a.pads[i],
            a.pads[sp + i],
            a.ceil_mode,
        )?);
    }
    let out = shape(out)?;
    let mut types = vec![TensorType::new(t.dtype, out.clone())];
    if let PoolKind::Max { indices: true } = kind {
        types.push(TensorType::new(DType::I64, out));
    }
    Ok(types)
}

/// Output length of a sliding window (conv and pooling), ONNX rules.
fn window_out(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    pad_end: usize,
    ceil: bool,
) -> Result<usize> {
    if stride == 0 || dilation == 0 || kernel == 0 {
        return Err("kernel, strides and dilations must be positive".into());
    }
    // Attributes come from models and text: sizes that overflow are an error, not a wrap.
    let too_large = || "the window or padding is too large".to_string();
    let span = dilation
        .checked_mul(kernel - 1)
        .and_then(|s| s.checked_add(1))
        .ok_or_else(too_large)?;
    let padded = input
        .checked_add(pad_begin)
        .and_then(|p| p.checked_add(pad_end))
        .ok_or_else(too_large)?;
    if padded < span {
        return Err(format!(
            "window of span {span} does not fit in a padded input of {padded}"
        ));
    }
    let mut out = if ceil {
        (padded - span).div_ceil(stride) + 1
    } else {
        (padded - span) / stride + 1
    };
    // With ceil_mode the last window must start inside the input or its begin padding.
    if ceil && (out - 1).saturating_mul(stride) >= input + pad_begin {
        out -= 1;
    }
    Ok(out)
}
