//! Normalizations by statistics over groups of elements, expanded at import as their
//! ONNX function bodies: `GroupNormalization` (mean and variance per group of channels,
//! then the per-channel scale and bias) and `MeanVarianceNormalization`
//! (`(x − E[x]) / (sqrt(E[x²] − E[x]²) + 1e-9)` over `axes`).

use tessera_ir::{BinaryOp, DType, Op, ReduceOp, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator, axes, dims_of, reshape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("GroupNormalization", group_norm),
    ("MeanVarianceNormalization", mean_variance_norm),
];

fn bin(cx: &mut Ctx, op: BinaryOp, a: ValueId, b: ValueId) -> R<ValueId> {
    cx.emit1(Op::Binary(op), &[a, b])
}

fn cast(cx: &mut Ctx, x: ValueId, to: DType) -> R<ValueId> {
    if cx.ty(x).dtype == to {
        return Ok(x);
    }
    cx.emit1(Op::Cast { to }, &[x])
}

fn mean(cx: &mut Ctx, x: ValueId, axes: Vec<usize>) -> R<ValueId> {
    cx.emit1(
        Op::Reduce {
            op: ReduceOp::Mean,
            axes,
            keep_dims: true,
        },
        &[x],
    )
}

/// `(E[x], E[x²] − E[x]²)` over `axes`, kept as size-1 axes.
fn moments(cx: &mut Ctx, x: ValueId, axes: Vec<usize>) -> R<(ValueId, ValueId)> {
    let m = mean(cx, x, axes.clone())?;
    let sq = bin(cx, BinaryOp::Mul, x, x)?;
    let msq = mean(cx, sq, axes)?;
    let m2 = bin(cx, BinaryOp::Mul, m, m)?;
    Ok((m, bin(cx, BinaryOp::Sub, msq, m2)?))
}

/// `GroupNormalization` (opsets 18 and 21): statistics in f32 (`stash_type` 1) per
/// `[N, group]` over the group's channels and the spatial axes.
fn group_norm(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, scale, bias) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let out = cx.ty(x).dtype;
    if !out.is_float() {
        return Err(cx.err(format!("X is {out}, expected a float dtype")));
    }
    if cx.attr_int("stash_type")?.unwrap_or(1) != 1 {
        return Err(cx.err("only stash_type = 1 (float32 statistics) is supported"));
    }
    let groups = cx
        .attr_int("num_groups")?
        .ok_or_else(|| cx.err("attribute \"num_groups\" is missing"))?;
    let epsilon = f64::from(cx.attr_float("epsilon")?.unwrap_or(1e-5));
    let d = dims_of(cx, x);
    if d.len() < 2 {
        return Err(cx.err(format!("X has rank {}; expected [N, C, ...]", d.len())));
    }
    let (n, c) = (d[0], d[1]);
    if groups <= 0 || c % groups as usize != 0 {
        return Err(cx.err(format!(
            "num_groups = {groups} does not divide the {c} channels"
        )));
    }
    let g = groups as usize;
    // Opset 18 scales and shifts per group, opset 21 per channel.
    let per = if cx.opset < 21 { g } else { c };
    for (name, v) in [("scale", scale), ("bias", bias)] {
        if dims_of(cx, v) != [per] {
            return Err(cx.err(format!(
                "{name} {} must be [{per}] at opset {}",
                cx.ty(v).shape,
                cx.opset
            )));
        }
    }
    let wide = if out == DType::F64 { out } else { DType::F32 };
    let xw = cast(cx, x, wide)?;
    let rest: usize = d[2..].iter().product();
    let x3 = reshape(cx, xw, vec![n, g, c / g * rest])?;
    let (m, var) = moments(cx, x3, vec![2])?;
    let eps = cx.constant(Tensor::full(wide, Shape::scalar(), epsilon));
    let ve = bin(cx, BinaryOp::Add, var, eps)?;
    let std = cx.emit1(Op::Unary(UnaryOp::Sqrt), &[ve])?;
    let dev = bin(cx, BinaryOp::Sub, x3, m)?;
    let normed = bin(cx, BinaryOp::Div, dev, std)?;
    let normed = cast(cx, normed, out)?;
    let mut affine = Vec::new();
    for v in [scale, bias] {
        let v = cast(cx, v, out)?;
        let v = if per == g {
            // One value per group: [1, G, 1] against [N, G, C/G·rest].
            reshape(cx, v, vec![1, g, 1])?
        } else {
            reshape(cx, v, vec![1, c, 1])?
        };
        affine.push(v);
    }
    let y = if per == g {
        let s = bin(cx, BinaryOp::Mul, normed, affine[0])?;
        bin(cx, BinaryOp::Add, s, affine[1])?
    } else {
        let nc = reshape(cx, normed, vec![n, c, rest])?;
        let s = bin(cx, BinaryOp::Mul, nc, affine[0])?;
        bin(cx, BinaryOp::Add, s, affine[1])?
    };
    Ok(vec![reshape(cx, y, d)?])
}

/// `MeanVarianceNormalization`: axes default to `[0, 2, 3]`.
fn mean_variance_norm(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let dtype = cx.ty(x).dtype;
    if !dtype.is_float() {
        return Err(cx.err(format!("X is {dtype}, expected a float dtype")));
    }
    let rank = cx.ty(x).shape.rank();
    let raw = cx.attr_ints("axes")?.unwrap_or_else(|| vec![0, 2, 3]);
    let ax = axes(cx, &raw, rank)?;
    let (m, var) = moments(cx, x, ax)?;
    let std = cx.emit1(Op::Unary(UnaryOp::Sqrt), &[var])?;
    let eps = cx.constant(Tensor::full(dtype, Shape::scalar(), 1e-9));
    let den = bin(cx, BinaryOp::Add, std, eps)?;
    let dev = bin(cx, BinaryOp::Sub, x, m)?;
    Ok(vec![bin(cx, BinaryOp::Div, dev, den)?])
}
