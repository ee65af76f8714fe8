//! Reductions over axes: `Reduce*`, `Softmax`/`LogSoftmax`, the running sum `CumSum` and
//! the running product `CumProd` (as running sums of logarithms and sign counts).
//! The reductions the IR has no op for are a pointwise map, an IR reduction and a pointwise
//! map (`ReduceL1`, `ReduceL2`, `ReduceSumSquare`, `ReduceLogSum`; `ReduceLogSumExp`
//! subtracts the maximum first so that large inputs do not overflow); `ArgMax`/`ArgMin`
//! select the positions equal to the extremum and reduce their indices.

use tessera_ir::{BinaryOp, DType, Op, ReduceOp, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator, axes, axis, dims_of, reshape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("ReduceMax", |cx| reduce(cx, ReduceOp::Max)),
    ("ReduceMean", |cx| reduce(cx, ReduceOp::Mean)),
    ("ReduceMin", |cx| reduce(cx, ReduceOp::Min)),
    ("ReduceProd", |cx| reduce(cx, ReduceOp::Prod)),
    ("ReduceSum", |cx| reduce(cx, ReduceOp::Sum)),
    ("ReduceL1", |cx| composite(cx, Composite::L1)),
    ("ReduceL2", |cx| composite(cx, Composite::L2)),
    ("ReduceSumSquare", |cx| composite(cx, Composite::SumSquare)),
    ("ReduceLogSum", |cx| composite(cx, Composite::LogSum)),
    ("ReduceLogSumExp", |cx| composite(cx, Composite::LogSumExp)),
    ("ArgMax", |cx| arg_extremum(cx, true)),
    ("ArgMin", |cx| arg_extremum(cx, false)),
    ("Softmax", |cx| softmax(cx, false)),
    ("LogSoftmax", |cx| softmax(cx, true)),
    ("CumSum", cumsum),
    ("CumProd", cumprod),
];

/// The `CumSum`/`CumProd` op for input 0, from the axis input and the two flags.
fn running(cx: &Ctx) -> R<Op> {
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
    Ok(Op::CumSum {
        axis: axis(cx, a, rank)?,
        exclusive: flag(cx, "exclusive")?,
        reverse: flag(cx, "reverse")?,
    })
}

fn cumsum(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let op = running(cx)?;
    Ok(vec![cx.emit1(op, &[x])?])
}

/// `CumProd` as running sums in f64: `exp(Σ log|x|)`, negative where the running count of
/// negative factors is odd, 0 once a zero has been seen (the empty product of an
/// `exclusive` first element is 1). Integer results are rounded, so they are exact while
/// the products stay below 2^53.
fn cumprod(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let dt = cx.ty(x).dtype;
    if dt == DType::Bool {
        return Err(cx.err("input is bool, expected a numeric dtype"));
    }
    let op = running(cx)?;
    let f = DType::F64;
    let c = |cx: &mut Ctx, v: f64| cx.constant(Tensor::full(f, Shape::scalar(), v));
    let un = |cx: &mut Ctx, u: UnaryOp, v: ValueId| cx.emit1(Op::Unary(u), &[v]);
    let bin = |cx: &mut Ctx, b: BinaryOp, p: ValueId, q: ValueId| cx.emit1(Op::Binary(b), &[p, q]);
    let xf = if dt == f {
        x
    } else {
        cx.emit1(Op::Cast { to: f }, &[x])?
    };
    let zero = c(cx, 0.0);
    let one = c(cx, 1.0);
    let a = un(cx, UnaryOp::Abs, xf)?;
    let is_zero = bin(cx, BinaryOp::Equal, a, zero)?;
    let a = cx.emit1(Op::Where, &[is_zero, one, a])?;
    let l = un(cx, UnaryOp::Log, a)?;
    let s = cx.emit1(op.clone(), &[l])?;
    let magnitude = un(cx, UnaryOp::Exp, s)?;
    let neg = bin(cx, BinaryOp::Less, xf, zero)?;
    let neg = cx.emit1(Op::Cast { to: f }, &[neg])?;
    let negs = cx.emit1(op.clone(), &[neg])?;
    let half = c(cx, 0.5);
    let h = bin(cx, BinaryOp::Mul, negs, half)?;
    let h = un(cx, UnaryOp::Floor, h)?;
    let two = c(cx, 2.0);
    let even = bin(cx, BinaryOp::Mul, h, two)?;
    let odd = bin(cx, BinaryOp::Sub, negs, even)?;
    let odd = bin(cx, BinaryOp::Greater, odd, half)?;
    let flipped = un(cx, UnaryOp::Neg, magnitude)?;
    let signed = cx.emit1(Op::Where, &[odd, flipped, magnitude])?;
    let zeros = cx.emit1(Op::Cast { to: f }, &[is_zero])?;
    let zeros = cx.emit1(op, &[zeros])?;
    let seen = bin(cx, BinaryOp::Greater, zeros, half)?;
    let mut y = cx.emit1(Op::Where, &[seen, zero, signed])?;
    if !dt.is_float() {
        y = un(cx, UnaryOp::Round, y)?;
    }
    if dt != f {
        y = cx.emit1(Op::Cast { to: dt }, &[y])?;
    }
    Ok(vec![y])
}

/// The axes a `Reduce*` node reduces, normalized; `None` when it reduces nothing
/// (`noop_with_empty_axes` with no axes). Axes moved from attribute to input at opset
/// `axes_input_since`.
fn reduce_axes(cx: &Ctx, rank: usize, axes_input_since: i64) -> R<Option<Vec<usize>>> {
    let raw = if cx.opset >= axes_input_since {
        cx.ints_input(1)?
    } else {
        cx.attr_ints("axes")?
    };
    let noop = cx.attr_int("noop_with_empty_axes")?.unwrap_or(0) != 0;
    Ok(match raw {
        Some(r) if !r.is_empty() => Some(axes(cx, &r, rank)?),
        _ if noop => None,
        _ => Some((0..rank).collect()),
    })
}

fn reduce(cx: &mut Ctx, op: ReduceOp) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    // Axes moved from attribute to input at opset 13 for ReduceSum, 18 for the others.
    let since = if op == ReduceOp::Sum { 13 } else { 18 };
    let keep_dims = cx.attr_int("keepdims")?.unwrap_or(1) != 0;
    let Some(ax) = reduce_axes(cx, rank, since)? else {
        return Ok(vec![cx.emit1(Op::Identity, &[x])?]);
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

/// The reductions expanded into a map, a sum and a map.
#[derive(Clone, Copy, PartialEq)]
enum Composite {
    /// `Σ|x|`.
    L1,
    /// `sqrt(Σx²)`.
    L2,
    /// `Σx²`.
    SumSquare,
    /// `log(Σx)`.
    LogSum,
    /// `log(Σexp(x))`, as `m + log(Σexp(x − m))` with `m` the maximum (0 where it is
    /// infinite, so an all-−∞ slice gives −∞ rather than NaN).
    LogSumExp,
}

fn composite(cx: &mut Ctx, c: Composite) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let ty = cx.ty(x).clone();
    if ty.dtype == DType::Bool {
        return Err(cx.err("input is bool, expected a numeric dtype"));
    }
    let keep_dims = cx.attr_int("keepdims")?.unwrap_or(1) != 0;
    let ax = reduce_axes(cx, ty.shape.rank(), 18)?;
    let un = |cx: &mut Ctx, u: UnaryOp, v: ValueId| cx.emit1(Op::Unary(u), &[v]);
    let bin = |cx: &mut Ctx, b: BinaryOp, p: ValueId, q: ValueId| cx.emit1(Op::Binary(b), &[p, q]);
    let sum = |cx: &mut Ctx, v: ValueId, keep_dims: bool| -> R<ValueId> {
        match &ax {
            Some(axes) => cx.emit1(
                Op::Reduce {
                    op: ReduceOp::Sum,
                    axes: axes.clone(),
                    keep_dims,
                },
                &[v],
            ),
            None => Ok(v),
        }
    };
    let y = match c {
        Composite::L1 => {
            let a = un(cx, UnaryOp::Abs, x)?;
            sum(cx, a, keep_dims)?
        }
        Composite::L2 | Composite::SumSquare => {
            let sq = bin(cx, BinaryOp::Mul, x, x)?;
            let s = sum(cx, sq, keep_dims)?;
            if c == Composite::L2 {
                un(cx, UnaryOp::Sqrt, s)?
            } else {
                s
            }
        }
        Composite::LogSum => {
            let s = sum(cx, x, keep_dims)?;
            un(cx, UnaryOp::Log, s)?
        }
        Composite::LogSumExp => {
            let Some(axes) = ax.clone() else {
                // log(exp(x)) over no axes.
                return Ok(vec![cx.emit1(Op::Identity, &[x])?]);
            };
            let m = cx.emit1(
                Op::Reduce {
                    op: ReduceOp::Max,
                    axes: axes.clone(),
                    keep_dims: true,
                },
                &[x],
            )?;
            let inf = un(cx, UnaryOp::IsInf, m)?;
            let zero = cx.constant(Tensor::full(ty.dtype, Shape::scalar(), 0.0));
            let m = cx.emit1(Op::Where, &[inf, zero, m])?;
            let d = bin(cx, BinaryOp::Sub, x, m)?;
            let e = un(cx, UnaryOp::Exp, d)?;
            let s = sum(cx, e, true)?;
            let l = un(cx, UnaryOp::Log, s)?;
            let y = bin(cx, BinaryOp::Add, l, m)?;
            if keep_dims {
                y
            } else {
                let dims = ty
                    .shape
                    .dims()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !axes.contains(i))
                    .map(|(_, &d)| d)
                    .collect();
                reshape(cx, y, dims)?
            }
        }
    };
    Ok(vec![y])
}

/// `ArgMax`/`ArgMin`.
fn arg_extremum(cx: &mut Ctx, max: bool) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    if rank == 0 {
        return Err(cx.err("input is a scalar; it has no axis to reduce"));
    }
    let a = axis(cx, cx.attr_int("axis")?.unwrap_or(0), rank)?;
    let keep_dims = cx.attr_int("keepdims")?.unwrap_or(1) != 0;
    let last = cx.attr_int("select_last_index")?.unwrap_or(0) != 0;
    Ok(vec![arg_index(cx, x, a, keep_dims, last, max)?])
}

/// The index (i64) of the maximum (`max`) or minimum of `x` along axis `a`: the extremum
/// (kept), the positions equal to it (and NaNs, which numpy's argmax reports first), then
/// the least (or with `last`, the greatest) of their indices.
pub(super) fn arg_index(
    cx: &mut Ctx,
    x: ValueId,
    a: usize,
    keep_dims: bool,
    last: bool,
    max: bool,
) -> R<ValueId> {
    let ty = cx.ty(x).clone();
    let rank = ty.shape.rank();
    let n = ty.shape.dims()[a];
    if n == 0 {
        return Err(cx.err(format!(
            "axis {a} has size 0, so there is no index to return"
        )));
    }
    let ext = cx.emit1(
        Op::Reduce {
            op: if max { ReduceOp::Max } else { ReduceOp::Min },
            axes: vec![a],
            keep_dims: true,
        },
        &[x],
    )?;
    let mut hit = cx.emit1(Op::Binary(BinaryOp::Equal), &[x, ext])?;
    if ty.dtype.is_float() {
        let nan = cx.emit1(Op::Unary(UnaryOp::IsNaN), &[x])?;
        hit = cx.emit1(Op::Binary(BinaryOp::Or), &[hit, nan])?;
    }
    cx.check_built("the index grid", n)?;
    let mut iota_dims = vec![1; rank];
    iota_dims[a] = n;
    let iota_shape = Shape::new(iota_dims).map_err(|e| cx.err(e.to_string()))?;
    let iota = Tensor::from_vec(iota_shape, (0..n as i64).collect::<Vec<i64>>())
        .map_err(|e| cx.err(e.to_string()))?;
    let iota = cx.constant(iota);
    let miss = cx.constant(Tensor::full(
        DType::I64,
        Shape::scalar(),
        if last { -1.0 } else { n as f64 },
    ));
    let idx = cx.emit1(Op::Where, &[hit, iota, miss])?;
    let op = if last { ReduceOp::Max } else { ReduceOp::Min };
    cx.emit1(
        Op::Reduce {
            op,
            axes: vec![a],
            keep_dims,
        },
        &[idx],
    )
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
