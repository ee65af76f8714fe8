//! Quantized contractions: `MatMulInteger`, `ConvInteger`, `QLinearMatMul` and
//! `QLinearConv`, expanded into an f64 `MatMul`/`Conv` of the operands less their zero
//! points. 8-bit operands make every product and every partial sum an integer far below
//! 2⁵³, so the f64 contraction is exact, as the int32 accumulation ONNX specifies (short of
//! int32 overflow, which ONNX leaves undefined). The integer ops cast that to int32; the
//! QLinear ops multiply by `scale_a·scale_b / scale_y` (computed in the scales' dtype, as
//! the ONNX reference does), add the output zero point, round half to even and saturate,
//! as [`super::quant`] does for `QuantizeLinear`. Zero points and scales are per tensor
//! or per axis: per row of A and per column of B, per output channel of a convolution.

use tessera_ir::{BinaryOp, DType, Op, UnaryOp, ValueId};

use super::common::{R, Translator, dims_of, reshape};
use super::quant::{cast_to, int_range};
use super::window::conv_attrs;
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("MatMulInteger", matmul_integer),
    ("ConvInteger", conv_integer),
    ("QLinearMatMul", qlinear_matmul),
    ("QLinearConv", qlinear_conv),
];

/// Zero point or scale `p` of an operand (or result) of dims `dims`, made to broadcast
/// against it: one value as a scalar; `[dims[a]]` along axis `a` when a per-axis form is
/// allowed (`axis`); a tensor of the operand's rank as it is (ONNX's N-D per-row and
/// per-column forms, which must then broadcast to exactly `dims`).
fn param(cx: &mut Ctx, p: ValueId, what: &str, dims: &[usize], axis: Option<usize>) -> R<ValueId> {
    let pd = dims_of(cx, p);
    if pd.iter().product::<usize>() == 1 {
        return reshape(cx, p, vec![]);
    }
    if let Some(a) = axis
        && pd.len() == 1
        && dims.get(a) == Some(&pd[0])
    {
        let mut want = vec![1; dims.len()];
        want[a] = pd[0];
        return reshape(cx, p, want);
    }
    if axis.is_some()
        && pd.len() == dims.len()
        && pd.iter().zip(dims).all(|(&p, &d)| p == 1 || p == d)
    {
        return Ok(p);
    }
    let along = match axis {
        Some(a) => format!(
            ", or [{}] along axis {a}",
            dims.get(a).copied().unwrap_or(0)
        ),
        None => String::new(),
    };
    Err(cx.err(format!(
        "{what} has shape {}; expected one value{along}",
        cx.ty(p).shape
    )))
}

/// 8-bit operand `v` (named `what`) less zero point `zp` (same dtype; per `axis` if
/// given), in f64.
fn shifted(
    cx: &mut Ctx,
    v: ValueId,
    zp: Option<ValueId>,
    what: &str,
    axis: Option<usize>,
) -> R<ValueId> {
    let dt = cx.ty(v).dtype;
    if !matches!(dt, DType::I8 | DType::U8) {
        return Err(cx.err(format!("{what} is {dt}, expected int8 or uint8")));
    }
    let vf = cx.emit1(Op::Cast { to: DType::F64 }, &[v])?;
    let Some(zp) = zp else {
        return Ok(vf);
    };
    if cx.ty(zp).dtype != dt {
        return Err(cx.err(format!(
            "{what}'s zero point is {}, {what} is {dt}",
            cx.ty(zp).dtype
        )));
    }
    let dims = dims_of(cx, v);
    let z = param(cx, zp, &format!("{what}'s zero point"), &dims, axis)?;
    let zf = cx.emit1(Op::Cast { to: DType::F64 }, &[z])?;
    let y = cx.emit1(Op::Binary(BinaryOp::Sub), &[vf, zf])?;
    if dims_of(cx, y) != dims {
        return Err(cx.err(format!(
            "{what}'s zero point {} does not broadcast to {what} {}",
            cx.ty(zp).shape,
            cx.ty(v).shape
        )));
    }
    Ok(y)
}

/// The per-row axis of a matmul's A (none for a vector) and the per-column axis of B.
fn matmul_axes(cx: &Ctx, a: ValueId, b: ValueId) -> (Option<usize>, Option<usize>) {
    let (ra, rb) = (cx.ty(a).shape.rank(), cx.ty(b).shape.rank());
    (ra.checked_sub(2), (rb >= 2).then(|| rb - 1))
}

/// `(A − a_zero_point) · (B − b_zero_point)` in int32.
fn matmul_integer(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    let (row, col) = matmul_axes(cx, a, b);
    let af = shifted(cx, a, cx.opt_input(2), "A", row)?;
    let bf = shifted(cx, b, cx.opt_input(3), "B", col)?;
    let y = cx.emit1(Op::MatMul, &[af, bf])?;
    Ok(vec![cx.emit1(Op::Cast { to: DType::I32 }, &[y])?])
}

/// The convolution of `X − x_zero_point` with `W − w_zero_point` (per output channel) in
/// int32.
fn conv_integer(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let attrs = conv_attrs(cx, &dims_of(cx, x), &dims_of(cx, w))?;
    let xf = shifted(cx, x, cx.opt_input(2), "x", None)?;
    let wf = shifted(cx, w, cx.opt_input(3), "w", Some(0))?;
    let y = cx.emit1(Op::Conv(attrs), &[xf, wf])?;
    Ok(vec![cx.emit1(Op::Cast { to: DType::I32 }, &[y])?])
}

/// `saturate(round(acc · s_a·s_b / s_y) + y_zero_point)` for the exact f64 accumulation
/// `acc`; `scales` are (value, name, axis in `acc`) for the two operands' scales and the
/// output's, `zp` the output zero point (its dtype the result's, else `fallback`).
fn requantize(
    cx: &mut Ctx,
    acc: ValueId,
    scales: [(ValueId, &str, Option<usize>); 3],
    zp: Option<(ValueId, Option<usize>)>,
    fallback: DType,
) -> R<ValueId> {
    let dims = dims_of(cx, acc);
    let f = cx.ty(scales[0].0).dtype;
    for &(s, what, _) in &scales {
        let d = cx.ty(s).dtype;
        if !d.is_float() || d != f {
            return Err(cx.err(format!(
                "{what} is {d}, expected a float dtype shared by all scales"
            )));
        }
    }
    let mut ps = Vec::with_capacity(3);
    for &(s, what, axis) in &scales {
        ps.push(param(cx, s, what, &dims, axis)?);
    }
    let ab = cx.emit1(Op::Binary(BinaryOp::Mul), &[ps[0], ps[1]])?;
    let s = cx.emit1(Op::Binary(BinaryOp::Div), &[ab, ps[2]])?;
    let s = cast_to(cx, s, DType::F64)?;
    let mut y = cx.emit1(Op::Binary(BinaryOp::Mul), &[acc, s])?;
    let to = match zp {
        Some((z, axis)) => {
            let to = cx.ty(z).dtype;
            let z = param(cx, z, "y_zero_point", &dims, axis)?;
            let z = cast_to(cx, z, DType::F64)?;
            y = cx.emit1(Op::Binary(BinaryOp::Add), &[y, z])?;
            to
        }
        None => fallback,
    };
    let Some((lo, hi)) = int_range(to).filter(|_| matches!(to, DType::I8 | DType::U8)) else {
        return Err(cx.err(format!("the output is {to}, expected int8 or uint8")));
    };
    if dims_of(cx, y) != dims {
        return Err(cx.err(format!(
            "the scales and zero points do not broadcast to the result {}",
            cx.ty(acc).shape
        )));
    }
    let y = cx.emit1(Op::Unary(UnaryOp::Round), &[y])?;
    let y = cx.emit1(Op::Clip { min: lo, max: hi }, &[y])?;
    cx.emit1(Op::Cast { to }, &[y])
}

/// Inputs a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point.
fn qlinear_matmul(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (a, b) = (cx.input(0)?, cx.input(3)?);
    let (row, col) = matmul_axes(cx, a, b);
    let af = shifted(cx, a, cx.opt_input(2), "a", row)?;
    let bf = shifted(cx, b, cx.opt_input(5), "b", col)?;
    let acc = cx.emit1(Op::MatMul, &[af, bf])?;
    // Per row / per column of the result, whose rank may differ from the operands'.
    let r = cx.ty(acc).shape.rank();
    let (yrow, ycol) = (row.and(r.checked_sub(2)), col.and(r.checked_sub(1)));
    let scales = [
        (cx.input(1)?, "a_scale", yrow),
        (cx.input(4)?, "b_scale", ycol),
        (cx.input(6)?, "y_scale", ycol),
    ];
    let zp = cx.opt_input(7).map(|z| (z, ycol));
    let fallback = cx.ty(a).dtype;
    Ok(vec![requantize(cx, acc, scales, zp, fallback)?])
}

/// Inputs x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point and an
/// optional int32 bias B (added to the accumulation).
fn qlinear_conv(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, w) = (cx.input(0)?, cx.input(3)?);
    let attrs = conv_attrs(cx, &dims_of(cx, x), &dims_of(cx, w))?;
    let xf = shifted(cx, x, cx.opt_input(2), "x", None)?;
    let wf = shifted(cx, w, cx.opt_input(5), "w", Some(0))?;
    let mut inputs = vec![xf, wf];
    if let Some(bias) = cx.opt_input(8) {
        let d = cx.ty(bias).dtype;
        if d != DType::I32 {
            return Err(cx.err(format!("B is {d}, expected int32")));
        }
        inputs.push(cx.emit1(Op::Cast { to: DType::F64 }, &[bias])?);
    }
    let acc = cx.emit1(Op::Conv(attrs), &inputs)?;
    let scales = [
        (cx.input(1)?, "x_scale", None),
        (cx.input(4)?, "w_scale", Some(1)),
        (cx.input(6)?, "y_scale", None),
    ];
    let zp = cx.opt_input(7).map(|z| (z, None));
    let fallback = cx.ty(x).dtype;
    Ok(vec![requantize(cx, acc, scales, zp, fallback)?])
}
