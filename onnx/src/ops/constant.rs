//! Ops whose value is known at import and become constants: `Constant`,
//! `ConstantOfShape`, `Range` (on constant operands) and the shape queries `Shape` and
//! `Size`.

use tessera_ir::{Shape, Tensor, ValueId};

use super::common::{R, Translator, dims_of};
use crate::context::Ctx;
use crate::tensor::shape_from_dims;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("Constant", constant),
    ("ConstantOfShape", constant_of_shape),
    ("Range", range_op),
    ("Shape", shape_op),
    ("Size", size),
];

fn constant(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let t = if let Some(t) = cx.attr_tensor("value")? {
        t
    } else if let Some(f) = cx.attr_float("value_float")? {
        Tensor::scalar(f)
    } else if let Some(i) = cx.attr_int("value_int")? {
        Tensor::scalar(i)
    } else if let Some(v) = cx.attr_floats("value_floats")? {
        let n = v.len();
        Tensor::from_vec(Shape::from_dims(&[n]), v).expect("length matches")
    } else if let Some(v) = cx.attr_ints("value_ints")? {
        let n = v.len();
        Tensor::from_vec(Shape::from_dims(&[n]), v).expect("length matches")
    } else if cx.has_attr("sparse_value")
        || cx.has_attr("value_string")
        || cx.has_attr("value_strings")
    {
        return Err(cx.err("sparse and string constants are not supported"));
    } else {
        return Err(cx.err("the constant has no value"));
    };
    Ok(vec![cx.constant(t)])
}

fn constant_of_shape(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let target = cx
        .ints_input(0)?
        .ok_or_else(|| cx.err("the shape input is missing"))?;
    let s = shape_from_dims(&target).map_err(|m| cx.err(m))?;
    let value = cx
        .attr_tensor("value")?
        .unwrap_or_else(|| Tensor::scalar(0f32));
    if value.numel() != 1 {
        return Err(cx.err("value must hold exactly one element"));
    }
    let v = value.to_f64_vec()[0];
    cx.check_built("the filled shape", s.numel())?;
    Ok(vec![cx.constant(Tensor::full(value.dtype(), s, v))])
}

fn range_op(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (s, l, d) = (cx.const_input(0)?, cx.const_input(1)?, cx.const_input(2)?);
    let (Some(s), Some(l), Some(d)) = (s, l, d) else {
        return Err(cx.err("start, limit and delta are required"));
    };
    range(cx, &s, &l, &d).map(|v| vec![v])
}

fn range(cx: &mut Ctx, start: &Tensor, limit: &Tensor, delta: &Tensor) -> R<ValueId> {
    let dtype = start.dtype();
    let get = |t: &Tensor| {
        t.to_f64_vec()
            .first()
            .copied()
            .ok_or_else(|| cx.err("range operands must be scalars"))
    };
    let (s, l, d) = (get(start)?, get(limit)?, get(delta)?);
    if d == 0.0 {
        return Err(cx.err("range delta cannot be 0"));
    }
    let n = ((l - s) / d).ceil().max(0.0);
    if n > tessera_ir::MAX_ELEMENTS as f64 {
        return Err(cx.err(format!("range of {n} elements is too large")));
    }
    cx.check_built("the range", n as usize)?;
    let v: Vec<f64> = (0..n as usize).map(|i| s + i as f64 * d).collect();
    let len = v.len();
    let t = Tensor::from_vec(Shape::from_dims(&[len]), v)
        .expect("length matches")
        .cast(dtype);
    Ok(cx.constant(t))
}

fn shape_op(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let d: Vec<i64> = dims_of(cx, cx.input(0)?)
        .iter()
        .map(|&n| n as i64)
        .collect();
    let r = d.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clamp(cx.attr_int("start")?.unwrap_or(0));
    let end = clamp(cx.attr_int("end")?.unwrap_or(r));
    let part = d[start..end.max(start)].to_vec();
    let n = part.len();
    Ok(vec![cx.constant(
        Tensor::from_vec(Shape::from_dims(&[n]), part).expect("length matches"),
    )])
}

fn size(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let n = cx.ty(cx.input(0)?).shape.numel() as i64;
    Ok(vec![cx.constant(Tensor::scalar(n))])
}
