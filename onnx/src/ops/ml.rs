//! The `ai.onnx.ml` ops that are plain tensor arithmetic: `Binarizer` (`x > threshold`
//! as 1 or 0 in `x`'s dtype) and `ArrayFeatureExtractor` (a `Gather` along the last
//! axis, the indices flattened; a vector input gives one row, as onnxruntime does).

use tessera_ir::{BinaryOp, DType, Op, Shape, Tensor, ValueId};

use super::common::{R, Translator, dims_of, reshape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("Binarizer", binarizer),
    ("ArrayFeatureExtractor", array_feature_extractor),
];

fn binarizer(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let dt = cx.ty(x).dtype;
    if dt == DType::Bool {
        return Err(cx.err("input is bool, expected a numeric dtype"));
    }
    let th = f64::from(cx.attr_float("threshold")?.unwrap_or(0.0));
    let c = |cx: &mut Ctx, v: f64| cx.constant(Tensor::full(dt, Shape::scalar(), v));
    let t = c(cx, th);
    let above = cx.emit1(Op::Binary(BinaryOp::Greater), &[x, t])?;
    let (one, zero) = (c(cx, 1.0), c(cx, 0.0));
    Ok(vec![cx.emit1(Op::Where, &[above, one, zero])?])
}

fn array_feature_extractor(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, idx) = (cx.input(0)?, cx.input(1)?);
    if !matches!(cx.ty(idx).dtype, DType::I64 | DType::I32) {
        return Err(cx.err(format!("indices are {}, expected int64", cx.ty(idx).dtype)));
    }
    let mut d = dims_of(cx, x);
    if d.is_empty() {
        return Err(cx.err("input is a scalar, expected rank 1 or more"));
    }
    let k = cx.ty(idx).shape.numel();
    let idx = reshape(cx, idx, vec![k])?;
    let x = if d.len() == 1 {
        d.insert(0, 1);
        reshape(cx, x, d.clone())?
    } else {
        x
    };
    let axis = d.len() - 1;
    Ok(vec![cx.emit1(Op::Gather { axis }, &[x, idx])?])
}
