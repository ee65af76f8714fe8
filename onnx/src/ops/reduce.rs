//! Reductions over axes: `Reduce*`, `Softmax`/`LogSoftmax` and the running sum `CumSum`.

use tessera_ir::{Op, ReduceOp, ValueId};

use super::common::{R, Translator, axes, axis, dims_of, reshape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("ReduceMax", |cx| reduce(cx, ReduceOp::Max)),
    ("ReduceMean", |cx| reduce(cx, ReduceOp::Mean)),
    ("ReduceMin", |cx| reduce(cx, ReduceOp::Min)),
    ("ReduceProd", |cx| reduce(cx, ReduceOp::Prod)),
    ("ReduceSum", |cx| reduce(cx, ReduceOp::Sum)),
    ("Softmax", |cx| softmax(cx, false)),
    ("LogSoftmax", |cx| softmax(cx, true)),
    ("CumSum", cumsum),
];

fn cumsum(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    let a = cx
        .ints_input(1)?
        .ok_or_else(|| cx.err("the axis input is missing"))?;
    let [a] = a[..] else {
        return Err(cx.err(format!("axis must be one value, got {a:?}")));
    };
    let flag = |cx: &Ctx, name: &str| -> R<bool> {
        match cx.attr_int(name)?.unwrap_or(0) {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(cx.err(format!("attribute {name:?} must be 0 or 1, got {v}"))),
        }
    };
    let op = Op::CumSum {
        axis: axis(cx, a, rank)?,
        exclusive: flag(cx, "exclusive")?,
        reverse: flag(cx, "reverse")?,
    };
    Ok(vec![cx.emit1(op, &[x])?])
}

fn reduce(cx: &mut Ctx, op: ReduceOp) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    // Axes moved from attribute to input at opset 13 for ReduceSum, 18 for the others.
    let axes_as_input = cx.opset >= if op == ReduceOp::Sum { 13 } else { 18 };
    let raw = if axes_as_input {
        cx.ints_input(1)?
    } else {
        cx.attr_ints("axes")?
    };
    let keep_dims = cx.attr_int("keepdims")?.unwrap_or(1) != 0;
    let noop = cx.attr_int("noop_with_empty_axes")?.unwrap_or(0) != 0;
    let ax = match raw {
        Some(r) if !r.is_empty() => axes(cx, &r, rank)?,
        _ if noop => return Ok(vec![cx.emit1(Op::Identity, &[x])?]),
        _ => (0..rank).collect(),
    };
    Ok(vec![cx.emit1(
        Op::Reduce {
            op,
            axes: ax,
            keep_dims,
        },
        &[x],
    )?])
}

fn softmax(cx: &mut Ctx, log: bool) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    let make = |axis| {
        if log {
            Op::LogSoftmax { axis }
        } else {
            Op::Softmax { axis }
        }
    };
    if cx.opset >= 13 {
        let a = axis(cx, cx.attr_int("axis")?.unwrap_or(-1), d.len())?;
        return Ok(vec![cx.emit1(make(a), &[x])?]);
    }
    // Before opset 13 the input is coerced to 2-D at `axis` (default 1) and normalized
    // over the second dimension.
    let a = axis(cx, cx.attr_int("axis")?.unwrap_or(1), d.len().max(1))?;
    if a + 1 == d.len() {
        return Ok(vec![cx.emit1(make(a), &[x])?]);
    }
    let flat = reshape(
        cx,
        x,
        vec![d[..a].iter().product(), d[a..].iter().product()],
    )?;
    let y = cx.emit1(make(1), &[flat])?;
    Ok(vec![reshape(cx, y, d)?])
}
