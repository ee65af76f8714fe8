//! Elementwise ops: unary and binary maps, variadic folds, `Where`, `Clip`, `Cast` and
//! `CastLike`, the ops that are the identity at inference (`Identity`, `Dropout`), and
//! `HardSigmoid` and `HardSwish` as the multiply-add and clip they are (so they fuse like
//! any pointwise op), `Mod` as the division, rounding and multiply-subtract it is, the
//! bitwise ops from comparisons and selects (see [`bitwise`]), and `OptionalHasElement` and
//! `OptionalGetElement` on plain tensors (the IR has no optional type).

use tessera_ir::{BinaryOp, DType, GeluApprox, Op, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator};
use crate::context::Ctx;
use crate::tensor::dtype_from_onnx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("Neg", |cx| unary(cx, UnaryOp::Neg)),
    ("Abs", |cx| unary(cx, UnaryOp::Abs)),
    ("Sign", |cx| unary(cx, UnaryOp::Sign)),
    ("Relu", |cx| unary(cx, UnaryOp::Relu)),
    ("Exp", |cx| unary(cx, UnaryOp::Exp)),
    ("Log", |cx| unary(cx, UnaryOp::Log)),
    ("Sqrt", |cx| unary(cx, UnaryOp::Sqrt)),
    ("Reciprocal", |cx| unary(cx, UnaryOp::Reciprocal)),
    ("Erf", |cx| unary(cx, UnaryOp::Erf)),
    ("Tanh", |cx| unary(cx, UnaryOp::Tanh)),
    ("Sigmoid", |cx| unary(cx, UnaryOp::Sigmoid)),
    ("Softplus", |cx| unary(cx, UnaryOp::Softplus)),
    ("Sin", |cx| unary(cx, UnaryOp::Sin)),
    ("Cos", |cx| unary(cx, UnaryOp::Cos)),
    ("Floor", |cx| unary(cx, UnaryOp::Floor)),
    ("Ceil", |cx| unary(cx, UnaryOp::Ceil)),
    ("Round", |cx| unary(cx, UnaryOp::Round)),
    ("Not", |cx| unary(cx, UnaryOp::Not)),
    ("IsNaN", |cx| unary(cx, UnaryOp::IsNaN)),
    ("Add", |cx| binary(cx, BinaryOp::Add)),
    ("Sub", |cx| binary(cx, BinaryOp::Sub)),
    ("Mul", |cx| binary(cx, BinaryOp::Mul)),
    ("Div", |cx| binary(cx, BinaryOp::Div)),
    ("Pow", |cx| binary(cx, BinaryOp::Pow)),
    ("Equal", |cx| binary(cx, BinaryOp::Equal)),
    ("Less", |cx| binary(cx, BinaryOp::Less)),
    ("LessOrEqual", |cx| binary(cx, BinaryOp::LessOrEqual)),
    ("Greater", |cx| binary(cx, BinaryOp::Greater)),
    ("GreaterOrEqual", |cx| binary(cx, BinaryOp::GreaterOrEqual)),
    ("And", |cx| binary(cx, BinaryOp::And)),
    ("Or", |cx| binary(cx, BinaryOp::Or)),
    ("Xor", |cx| binary(cx, BinaryOp::Xor)),
    ("Identity", identity),
    ("IsInf", is_inf),
    ("Dropout", dropout),
    ("Sum", |cx| variadic(cx, BinaryOp::Add, false)),
    ("Max", |cx| variadic(cx, BinaryOp::Max, false)),
    ("Min", |cx| variadic(cx, BinaryOp::Min, false)),
    ("Mean", |cx| variadic(cx, BinaryOp::Add, true)),
    ("Where", where_op),
    ("Clip", clip),
    ("Gelu", gelu),
    ("Cast", cast),
    ("CastLike", cast_like),
    ("HardSigmoid", hard_sigmoid),
    ("HardSwish", hard_swish),
    ("Mod", mod_op),
    ("BitShift", bit_shift),
    ("BitwiseAnd", |cx| bitwise(cx, BinaryOp::And)),
    ("BitwiseOr", |cx| bitwise(cx, BinaryOp::Or)),
    ("BitwiseXor", |cx| bitwise(cx, BinaryOp::Xor)),
    ("BitwiseNot", bitwise_not),
    ("OptionalHasElement", optional_has_element),
    ("OptionalGetElement", optional_get_element),
];

fn unary(cx: &mut Ctx, u: UnaryOp) -> R<Vec<ValueId>> {
    Ok(vec![cx.emit1(Op::Unary(u), &[cx.input(0)?])?])
}

fn binary(cx: &mut Ctx, b: BinaryOp) -> R<Vec<ValueId>> {
    let (a, c) = (cx.input(0)?, cx.input(1)?);
    Ok(vec![cx.emit1(Op::Binary(b), &[a, c])?])
}

fn identity(cx: &mut Ctx) -> R<Vec<ValueId>> {
    Ok(vec![cx.emit1(Op::Identity, &[cx.input(0)?])?])
}

fn is_inf(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let neg = cx.attr_int("detect_negative")?.unwrap_or(1);
    let pos = cx.attr_int("detect_positive")?.unwrap_or(1);
    let x = cx.input(0)?;
    let inf = cx.emit1(Op::Unary(UnaryOp::IsInf), &[x])?;
    match (neg != 0, pos != 0) {
        (true, true) => Ok(vec![inf]),
        (false, false) => {
            cx.check_built("the all-false result", cx.ty(x).shape.numel())?;
            let f = cx.constant(Tensor::full(DType::Bool, cx.ty(x).shape.clone(), 0.0));
            Ok(vec![f])
        }
        (neg, _) => {
            // One sign only: infinities whose sign matches.
            let zero = cx.constant(Tensor::full(cx.ty(x).dtype, Shape::scalar(), 0.0));
            let cmp = if neg {
                BinaryOp::Less
            } else {
                BinaryOp::Greater
            };
            let side = cx.emit1(Op::Binary(cmp), &[x, zero])?;
            Ok(vec![cx.emit1(Op::Binary(BinaryOp::And), &[inf, side])?])
        }
    }
}

fn dropout(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let ratio = if cx.opset >= 12 {
        match cx.const_input(1)? {
            Some(t) => t.to_f64_vec().first().copied().unwrap_or(0.5) as f32,
            None => 0.5,
        }
    } else {
        cx.attr_float("ratio")?.unwrap_or(0.5)
    };
    let training = if cx.opset >= 12 {
        cx.const_input(2)?
            .is_some_and(|t| t.to_f64_vec().first().is_some_and(|&v| v != 0.0))
    } else {
        false
    };
    if training && ratio != 0.0 {
        return Err(cx.err("training-mode dropout is random and not supported"));
    }
    let mask = cx.output_used(1);
    cx.emit(Op::Dropout { ratio, mask }, &[x])
}

/// `Sum`, `Max`, `Min` (`op` folded over the inputs) and `Mean` (`Add`, then `mean`
/// divides by the input count).
fn variadic(cx: &mut Ctx, op: BinaryOp, mean: bool) -> R<Vec<ValueId>> {
    let inputs = cx.all_inputs();
    let Some((&first, rest)) = inputs.split_first() else {
        return Err(cx.err("needs at least one input"));
    };
    if rest.is_empty() {
        return Ok(vec![cx.emit1(Op::Identity, &[first])?]);
    }
    let mut acc = first;
    for &v in rest {
        acc = cx.emit1(Op::Binary(op), &[acc, v])?;
    }
    if mean {
        let n = cx.constant(Tensor::full(
            cx.ty(acc).dtype,
            Shape::scalar(),
            inputs.len() as f64,
        ));
        acc = cx.emit1(Op::Binary(BinaryOp::Div), &[acc, n])?;
    }
    Ok(vec![acc])
}

fn where_op(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (c, x, y) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    Ok(vec![cx.emit1(Op::Where, &[c, x, y])?])
}

fn clip(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let (min, max) = if cx.opset >= 11 {
        let get = |t: Option<Tensor>| t.and_then(|t| t.to_f64_vec().first().copied());
        (get(cx.const_input(1)?), get(cx.const_input(2)?))
    } else {
        (
            cx.attr_float("min")?.map(f64::from),
            cx.attr_float("max")?.map(f64::from),
        )
    };
    let (min, max) = (
        min.unwrap_or(f64::NEG_INFINITY),
        max.unwrap_or(f64::INFINITY),
    );
    if min > max {
        // ONNX: every element becomes max when min > max.
        cx.check_built("the result", cx.ty(x).shape.numel())?;
        let t = Tensor::full(cx.ty(x).dtype, cx.ty(x).shape.clone(), max);
        return Ok(vec![cx.constant(t)]);
    }
    Ok(vec![cx.emit1(Op::Clip { min, max }, &[x])?])
}

fn gelu(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let approximate = match cx.attr_string("approximate")?.as_deref().unwrap_or("none") {
        "none" => GeluApprox::None,
        "tanh" => GeluApprox::Tanh,
        other => return Err(cx.err(format!("unknown approximate {other:?}"))),
    };
    Ok(vec![cx.emit1(Op::Gelu { approximate }, &[cx.input(0)?])?])
}

/// `Cast` to the dtype of input 1 (whose values are not read).
fn cast_like(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, like) = (cx.input(0)?, cx.input(1)?);
    let to = cx.ty(like).dtype;
    Ok(vec![cx.emit1(Op::Cast { to }, &[x])?])
}

fn cast(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let code = cx
        .attr_int("to")?
        .ok_or_else(|| cx.err("attribute \"to\" is missing"))?;
    let to = dtype_from_onnx(code as i32).map_err(|m| cx.err(m))?;
    Ok(vec![cx.emit1(Op::Cast { to }, &[cx.input(0)?])?])
}

/// `clip(alpha · x + beta, 0, 1)` in `x`'s dtype.
fn hard_sigmoid_of(cx: &mut Ctx, x: ValueId, alpha: f64, beta: f64) -> R<ValueId> {
    let dtype = cx.ty(x).dtype;
    if !dtype.is_float() {
        return Err(cx.err(format!("input is {dtype}, expected a float dtype")));
    }
    let a = cx.constant(Tensor::full(dtype, Shape::scalar(), alpha));
    let b = cx.constant(Tensor::full(dtype, Shape::scalar(), beta));
    let ax = cx.emit1(Op::Binary(BinaryOp::Mul), &[x, a])?;
    let axb = cx.emit1(Op::Binary(BinaryOp::Add), &[ax, b])?;
    cx.emit1(Op::Clip { min: 0.0, max: 1.0 }, &[axb])
}

fn hard_sigmoid(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let alpha = cx.attr_float("alpha")?.unwrap_or(0.2);
    let beta = cx.attr_float("beta")?.unwrap_or(0.5);
    Ok(vec![hard_sigmoid_of(cx, x, alpha.into(), beta.into())?])
}

/// `x · hard_sigmoid(x)` with ONNX's fixed `alpha = 1/6`, `beta = 1/2`.
fn hard_swish(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let h = hard_sigmoid_of(cx, x, 1.0 / 6.0, 0.5)?;
    Ok(vec![cx.emit1(Op::Binary(BinaryOp::Mul), &[x, h])?])
}

/// `Mod`: `a − trunc(a/b)·b` with `fmod = 1` (C's `fmod`, the sign of `a`), `a −
/// floor(a/b)·b` with `fmod = 0` (Python's `%`, the sign of `b`).
///
/// Integers use the IR's truncating division, then move a remainder whose sign differs
/// from the divisor's by one divisor. Floats are computed in f64, where `trunc(a/b)·b`
/// of f32 (or narrower) operands is exact enough that the result is the correctly
/// rounded remainder, and an infinite divisor (which the formula turns into NaN) is
/// selected out: the result is then `a`, or for `fmod = 0` with signs that differ, `b`.
fn mod_op(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (a0, b0) = (cx.input(0)?, cx.input(1)?);
    let fmod = match cx.attr_int("fmod")?.unwrap_or(0) {
        0 => false,
        1 => true,
        v => return Err(cx.err(format!("attribute \"fmod\" must be 0 or 1, got {v}"))),
    };
    let (da, db) = (cx.ty(a0).dtype, cx.ty(b0).dtype);
    if da != db {
        return Err(cx.err(format!("operands are {da} and {db}, expected one dtype")));
    }
    if da == DType::Bool {
        return Err(cx.err("operands are bool, expected a numeric dtype"));
    }
    let bin =
        |cx: &mut Ctx, op: BinaryOp, x: ValueId, y: ValueId| cx.emit1(Op::Binary(op), &[x, y]);
    let un = |cx: &mut Ctx, op: UnaryOp, x: ValueId| cx.emit1(Op::Unary(op), &[x]);
    let float = da.is_float();
    let (a, b) = if float && da != DType::F64 {
        (
            cx.emit1(Op::Cast { to: DType::F64 }, &[a0])?,
            cx.emit1(Op::Cast { to: DType::F64 }, &[b0])?,
        )
    } else {
        (a0, b0)
    };
    let work = cx.ty(a).dtype;
    let zero = cx.constant(Tensor::full(work, Shape::scalar(), 0.0));
    let q = bin(cx, BinaryOp::Div, a, b)?;
    let b_neg = bin(cx, BinaryOp::Less, b, zero)?;
    let r = if float {
        let rounded = if fmod {
            let neg = bin(cx, BinaryOp::Less, q, zero)?;
            let up = un(cx, UnaryOp::Ceil, q)?;
            let down = un(cx, UnaryOp::Floor, q)?;
            cx.emit1(Op::Where, &[neg, up, down])?
        } else {
            un(cx, UnaryOp::Floor, q)?
        };
        let qb = bin(cx, BinaryOp::Mul, rounded, b)?;
        let r = bin(cx, BinaryOp::Sub, a, qb)?;
        // A finite dividend over an infinite divisor.
        let b_inf = un(cx, UnaryOp::IsInf, b)?;
        let a_inf = un(cx, UnaryOp::IsInf, a)?;
        let a_fin = un(cx, UnaryOp::Not, a_inf)?;
        let inf_case = bin(cx, BinaryOp::And, b_inf, a_fin)?;
        let inf_value = if fmod {
            a
        } else {
            let a_neg = bin(cx, BinaryOp::Less, a, zero)?;
            let a_zero = bin(cx, BinaryOp::Equal, a, zero)?;
            let same = bin(cx, BinaryOp::Equal, a_neg, b_neg)?;
            let keep = bin(cx, BinaryOp::Or, a_zero, same)?;
            cx.emit1(Op::Where, &[keep, a, b])?
        };
        cx.emit1(Op::Where, &[inf_case, inf_value, r])?
    } else {
        let qb = bin(cx, BinaryOp::Mul, q, b)?;
        let t = bin(cx, BinaryOp::Sub, a, qb)?;
        if fmod {
            t
        } else {
            let t_zero = bin(cx, BinaryOp::Equal, t, zero)?;
            let t_nonzero = un(cx, UnaryOp::Not, t_zero)?;
            let t_neg = bin(cx, BinaryOp::Less, t, zero)?;
            let differ = bin(cx, BinaryOp::Xor, t_neg, b_neg)?;
            let fix = bin(cx, BinaryOp::And, t_nonzero, differ)?;
            let tb = bin(cx, BinaryOp::Add, t, b)?;
            cx.emit1(Op::Where, &[fix, tb, t])?
        }
    };
    if cx.ty(r).dtype != da {
        return Ok(vec![cx.emit1(Op::Cast { to: da }, &[r])?]);
    }
    Ok(vec![r])
}

/// `BitShift` on integers: `x << b` is `x · 2^b` with the wrap of the dtype, `x >> b` the
/// division by `2^b` rounded down (arithmetic for signed types), with the powers of two
/// gathered from a per-dtype table; a shift outside `0..width` gives 0 (−1 for a negative
/// signed `x` shifted right). Limitation: the IR's integer division is signed 64-bit, so a
/// uint64 `x` of 2^63 or more shifted right is wrong.
fn bit_shift(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, b) = (cx.input(0)?, cx.input(1)?);
    let left = match cx.attr_string("direction")?.as_deref() {
        Some("LEFT") => true,
        Some("RIGHT") => false,
        other => {
            return Err(cx.err(format!(
                "direction must be \"LEFT\" or \"RIGHT\", got {other:?}"
            )));
        }
    };
    let dt = cx.ty(x).dtype;
    if !dt.is_int() || cx.ty(b).dtype != dt {
        return Err(cx.err(format!(
            "operands are {} and {}, expected one integer dtype",
            dt,
            cx.ty(b).dtype
        )));
    }
    let width = dt.size_bytes() * 8;
    let bin =
        |cx: &mut Ctx, op: BinaryOp, p: ValueId, q: ValueId| cx.emit1(Op::Binary(op), &[p, q]);
    let c = |cx: &mut Ctx, v: f64| cx.constant(Tensor::full(dt, Shape::scalar(), v));
    let zero = c(cx, 0.0);
    let w = c(cx, width as f64);
    let nonneg = bin(cx, BinaryOp::GreaterOrEqual, b, zero)?;
    let below = bin(cx, BinaryOp::Less, b, w)?;
    let valid = bin(cx, BinaryOp::And, nonneg, below)?;
    let bs = cx.emit1(Op::Where, &[valid, b, zero])?;
    // 2^j for j < width, as the dtype's bits (the top one is negative for signed types).
    let mut bytes = Vec::with_capacity(width * dt.size_bytes());
    for j in 0..width {
        bytes.extend_from_slice(&(1u64 << j).to_le_bytes()[..dt.size_bytes()]);
    }
    let shape = Shape::new(vec![width]).map_err(|e| cx.err(e.to_string()))?;
    let table = Tensor::from_le_bytes(dt, shape, &bytes).map_err(|e| cx.err(e.to_string()))?;
    let table = cx.constant(table);
    let bi = if matches!(dt, DType::I32 | DType::I64) {
        bs
    } else {
        cx.emit1(Op::Cast { to: DType::I64 }, &[bs])?
    };
    let p = cx.emit1(Op::Gather { axis: 0 }, &[table, bi])?;
    let x_neg = if dt.is_signed() {
        Some(bin(cx, BinaryOp::Less, x, zero)?)
    } else {
        None
    };
    let (shifted, outside) = if left {
        (bin(cx, BinaryOp::Mul, x, p)?, zero)
    } else {
        let q = bin(cx, BinaryOp::Div, x, p)?;
        match x_neg {
            None => (q, zero),
            Some(neg) => {
                // Round toward −∞: one less where a negative x leaves a remainder.
                let qp = bin(cx, BinaryOp::Mul, q, p)?;
                let exact = bin(cx, BinaryOp::Equal, qp, x)?;
                let inexact = cx.emit1(Op::Unary(UnaryOp::Not), &[exact])?;
                let down = bin(cx, BinaryOp::And, neg, inexact)?;
                let one = c(cx, 1.0);
                let qm = bin(cx, BinaryOp::Sub, q, one)?;
                let floor = cx.emit1(Op::Where, &[down, qm, q])?;
                // The top bit's power is negative in the dtype: x >> (width − 1) is the sign.
                let m1 = c(cx, -1.0);
                let sign = cx.emit1(Op::Where, &[neg, m1, zero])?;
                let top = c(cx, (width - 1) as f64);
                let is_top = bin(cx, BinaryOp::Equal, bs, top)?;
                (cx.emit1(Op::Where, &[is_top, sign, floor])?, sign)
            }
        }
    };
    Ok(vec![cx.emit1(Op::Where, &[valid, shifted, outside])?])
}

/// The integer dtype shared by operands `vs`, or an error naming theirs.
fn int_operands(cx: &Ctx, vs: &[ValueId]) -> R<DType> {
    let dt = cx.ty(vs[0]).dtype;
    if !dt.is_int() || vs.iter().any(|&v| cx.ty(v).dtype != dt) {
        let names: Vec<String> = vs.iter().map(|&v| cx.ty(v).dtype.to_string()).collect();
        return Err(cx.err(format!(
            "operands are {}, expected one integer dtype",
            names.join(" and ")
        )));
    }
    Ok(dt)
}

/// `BitwiseAnd`, `BitwiseOr` and `BitwiseXor` (`op` is the bool op per bit). The IR has no
/// bit ops and its integer division is signed 64-bit (wrong for uint64 from 2^63), so the
/// bits are peeled from the top with comparisons only: bit `k` of `r` (the value less its
/// higher bits) is `r ≥ 2^k`, then `2^k` is subtracted where set, and the result adds
/// `2^k` where `op` of the two bits holds. For signed dtypes the sign bit is `x < 0` and
/// the rest `x − MIN` for negative `x`; the result adds `MIN` back where `op` of the signs
/// holds. Every intermediate stays in the dtype's range, so the result is exact on every
/// backend; the cost is about 9 pointwise ops per bit (which fuse into one kernel).
fn bitwise(cx: &mut Ctx, op: BinaryOp) -> R<Vec<ValueId>> {
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    let dt = int_operands(cx, &[a, b])?;
    let width = dt.size_bytes() * 8;
    let c = |cx: &mut Ctx, v: f64| cx.constant(Tensor::full(dt, Shape::scalar(), v));
    let bin = |cx: &mut Ctx, o: BinaryOp, p: ValueId, q: ValueId| cx.emit1(Op::Binary(o), &[p, q]);
    let (mut ra, mut rb) = (a, b);
    let mut sign = None;
    let low = if dt.is_signed() { width - 1 } else { width };
    if dt.is_signed() {
        let zero = c(cx, 0.0);
        let min = c(cx, -(2f64.powi(low as i32)));
        let split = |cx: &mut Ctx, x: ValueId| -> R<(ValueId, ValueId)> {
            let neg = bin(cx, BinaryOp::Less, x, zero)?;
            let rest = bin(cx, BinaryOp::Sub, x, min)?;
            Ok((neg, cx.emit1(Op::Where, &[neg, rest, x])?))
        };
        let (na, xa) = split(cx, a)?;
        let (nb, xb) = split(cx, b)?;
        (ra, rb) = (xa, xb);
        sign = Some((bin(cx, op, na, nb)?, min));
    }
    let mut acc = c(cx, 0.0);
    for k in (0..low).rev() {
        let p = c(cx, 2f64.powi(k as i32));
        let bit = |cx: &mut Ctx, r: &mut ValueId| -> R<ValueId> {
            let set = bin(cx, BinaryOp::GreaterOrEqual, *r, p)?;
            if k > 0 {
                let less = bin(cx, BinaryOp::Sub, *r, p)?;
                *r = cx.emit1(Op::Where, &[set, less, *r])?;
            }
            Ok(set)
        };
        let ba = bit(cx, &mut ra)?;
        let bb = bit(cx, &mut rb)?;
        let on = bin(cx, op, ba, bb)?;
        let plus = bin(cx, BinaryOp::Add, acc, p)?;
        acc = cx.emit1(Op::Where, &[on, plus, acc])?;
    }
    if let Some((s, min)) = sign {
        let plus = bin(cx, BinaryOp::Add, acc, min)?;
        acc = cx.emit1(Op::Where, &[s, plus, acc])?;
    }
    Ok(vec![acc])
}

/// `BitwiseNot`: all ones less `x` (`−1 − x` signed, `MAX − x` unsigned), which never
/// overflows.
fn bitwise_not(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let dt = int_operands(cx, &[x])?;
    let ones = vec![0xff; dt.size_bytes()];
    let t = Tensor::from_le_bytes(dt, Shape::scalar(), &ones).map_err(|e| cx.err(e.to_string()))?;
    let ones = cx.constant(t);
    Ok(vec![cx.emit1(Op::Binary(BinaryOp::Sub), &[ones, x])?])
}

/// `OptionalHasElement`: the IR has no optional type, so an input that is present is a
/// tensor and has its element (true); an omitted one is the empty optional (false).
fn optional_has_element(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let has = cx.opt_input(0).is_some();
    Ok(vec![cx.constant(Tensor::scalar(has))])
}

/// `OptionalGetElement` of a tensor (the only kind the IR has) is the tensor itself.
fn optional_get_element(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    Ok(vec![cx.emit1(Op::Identity, &[x])?])
}
