//! Elementwise ops: one output of the operands' (broadcast) shape.

use super::{Result, broadcast, need, one, same_dtype};
use crate::{BinaryOp, DType, Domain, TensorType, UnaryOp};

/// Inference-mode dropout: the identity, plus a bool mask with `mask`.
pub(super) fn dropout(ratio: f32, mask: bool, x: &TensorType) -> Result<Vec<TensorType>> {
    if !(0.0..1.0).contains(&ratio) {
        return Err(format!("ratio {ratio} is not in [0, 1)"));
    }
    let mut out = vec![x.clone()];
    if mask {
        out.push(TensorType::new(DType::Bool, x.shape.clone()));
    }
    Ok(out)
}

pub(super) fn unary(u: UnaryOp, x: &TensorType) -> Result<Vec<TensorType>> {
    need(u.domain(), "operand", x.dtype)?;
    let d = if u.is_predicate() {
        DType::Bool
    } else {
        x.dtype
    };
    one(d, x.shape.clone())
}

/// Operands broadcast; both have one dtype except `pow`'s exponent.
pub(super) fn binary(b: BinaryOp, x: &TensorType, y: &TensorType) -> Result<Vec<TensorType>> {
    need(b.domain(), "left operand", x.dtype)?;
    need(b.domain(), "right operand", y.dtype)?;
    if b != BinaryOp::Pow && x.dtype != y.dtype {
        return Err(format!(
            "operands have different dtypes {} and {}",
            x.dtype, y.dtype
        ));
    }
    let s = broadcast(&x.shape, &y.shape)?;
    let d = if b.is_predicate() {
        DType::Bool
    } else {
        x.dtype
    };
    one(d, s)
}

/// `where(cond, x, y)`: three-way broadcasting.
pub(super) fn select(inputs: &[&TensorType]) -> Result<Vec<TensorType>> {
    if inputs[0].dtype != DType::Bool {
        return Err(format!("condition must be bool, got {}", inputs[0].dtype));
    }
    let d = same_dtype(&inputs[1..])?;
    let s = broadcast(
        &broadcast(&inputs[0].shape, &inputs[1].shape)?,
        &inputs[2].shape,
    )?;
    one(d, s)
}

pub(super) fn clip(min: f64, max: f64, x: &TensorType) -> Result<Vec<TensorType>> {
    need(Domain::Numeric, "operand", x.dtype)?;
    if min > max {
        return Err(format!("min {min} is greater than max {max}"));
    }
    Ok(vec![x.clone()])
}

pub(super) fn gelu(x: &TensorType) -> Result<Vec<TensorType>> {
    need(Domain::Float, "operand", x.dtype)?;
    Ok(vec![x.clone()])
}
