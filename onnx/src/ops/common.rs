//! What every op family shares: the translator type and axis, shape and reshape helpers.

use tessera_ir::{Op, Shape, ValueId};

use crate::context::Ctx;
use crate::error::ImportError;

pub(super) type R<T> = Result<T, ImportError>;

/// Translates the node in the context; returns one value per node output it supports.
pub(super) type Translator = fn(&mut Ctx) -> R<Vec<ValueId>>;

/// A possibly negative axis made non-negative for `rank`.
pub(super) fn axis(cx: &Ctx, a: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    if a < -r || a >= r {
        return Err(cx.err(format!("axis {a} is out of range for rank {rank}")));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

/// Normalized, sorted, de-duplicated axes.
pub(super) fn axes(cx: &Ctx, raw: &[i64], rank: usize) -> R<Vec<usize>> {
    let mut out = raw
        .iter()
        .map(|&a| axis(cx, a, rank))
        .collect::<R<Vec<_>>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The product of `dims`, `None` where it overflows (sizes a model states may).
pub(super) fn checked_numel(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &n| a.checked_mul(n))
}

pub(super) fn shape(cx: &Ctx, dims: Vec<usize>) -> R<Shape> {
    Shape::new(dims).map_err(|e| cx.err(e.to_string()))
}

pub(super) fn dims_of(cx: &Ctx, v: ValueId) -> Vec<usize> {
    cx.ty(v).shape.dims().to_vec()
}

pub(super) fn reshape(cx: &mut Ctx, x: ValueId, dims: Vec<usize>) -> R<ValueId> {
    let s = shape(cx, dims)?;
    if cx.ty(x).shape == s {
        return Ok(x);
    }
    cx.emit1(Op::Reshape { shape: s }, &[x])
}
