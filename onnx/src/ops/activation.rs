//! Activation functions and the trigonometric/hyperbolic functions the IR has no op for,
//! expanded at import into the pointwise IR ops they are (selects, multiply-adds, `exp`,
//! `log`, `sqrt`), so every backend runs them and the fusion planner fuses them like any
//! other pointwise chain. The formulas follow the ONNX operator definitions; the
//! comparisons are written so that NaN takes the same branch as in onnxruntime.

use tessera_ir::{BinaryOp, DType, Op, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("LeakyRelu", leaky_relu),
    ("PRelu", prelu),
    ("Elu", elu),
    ("Selu", selu),
    ("Celu", celu),
    ("ThresholdedRelu", thresholded_relu),
    ("Shrink", shrink),
    ("Softsign", softsign),
    ("Mish", mish),
    ("Swish", swish),
    ("Tan", tan),
    ("Sinh", |cx| sinh_cosh(cx, false)),
    ("Cosh", |cx| sinh_cosh(cx, true)),
    ("Asinh", asinh),
    ("Acosh", acosh),
    ("Atanh", atanh),
];

/// The small expression builder the expansions share: every helper emits one IR op.
struct E<'c, 'a, 'b> {
    cx: &'c mut Ctx<'a, 'b>,
    /// The dtype the expansion computes in: the input's, f32 for f16/bf16.
    dtype: DType,
    /// The input's dtype, which the result is cast back to.
    out: DType,
}

impl<'c, 'a, 'b> E<'c, 'a, 'b> {
    /// A builder for input `x`, which must have a float dtype when `float` (the IR's
    /// transcendental functions are float-only; the error names the op, not an IR node).
    ///
    /// Half-precision inputs are widened to f32 first and the result narrowed once at the
    /// end ([`E::finish`]): rounding every step of a chain to 8 or 11 bits would put the
    /// result outside the tolerance of a single rounding, which is what ONNX specifies.
    /// Returns the builder and the (possibly widened) input.
    fn new(cx: &'c mut Ctx<'a, 'b>, x: ValueId, float: bool) -> R<(Self, ValueId)> {
        let out = cx.ty(x).dtype;
        if out == DType::Bool || (float && !out.is_float()) {
            let want = if float {
                "a float dtype"
            } else {
                "a numeric dtype"
            };
            return Err(cx.err(format!("input is {out}, expected {want}")));
        }
        if matches!(out, DType::F16 | DType::BF16) {
            let wide = cx.emit1(Op::Cast { to: DType::F32 }, &[x])?;
            let e = E {
                cx,
                dtype: DType::F32,
                out,
            };
            return Ok((e, wide));
        }
        Ok((
            E {
                cx,
                dtype: out,
                out,
            },
            x,
        ))
    }

    /// The result `y`, cast back to the input's dtype; as the translator's outputs.
    fn finish(self, y: ValueId) -> R<Vec<ValueId>> {
        if self.out == self.dtype {
            return Ok(vec![y]);
        }
        Ok(vec![self.cx.emit1(Op::Cast { to: self.out }, &[y])?])
    }

    /// Another operand (PReLU's slope) in the dtype the expansion computes in.
    fn operand(&mut self, v: ValueId) -> R<ValueId> {
        if self.cx.ty(v).dtype == self.dtype {
            return Ok(v);
        }
        self.cx.emit1(Op::Cast { to: self.dtype }, &[v])
    }

    fn c(&mut self, v: f64) -> ValueId {
        self.cx
            .constant(Tensor::full(self.dtype, Shape::scalar(), v))
    }

    fn bin(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> R<ValueId> {
        self.cx.emit1(Op::Binary(op), &[a, b])
    }

    fn un(&mut self, op: UnaryOp, a: ValueId) -> R<ValueId> {
        self.cx.emit1(Op::Unary(op), &[a])
    }

    /// `a op c` for a scalar constant `c`.
    fn bin_c(&mut self, op: BinaryOp, a: ValueId, c: f64) -> R<ValueId> {
        let c = self.c(c);
        self.bin(op, a, c)
    }

    fn select(&mut self, cond: ValueId, a: ValueId, b: ValueId) -> R<ValueId> {
        self.cx.emit1(Op::Where, &[cond, a, b])
    }
}

fn alpha(cx: &Ctx, name: &str, default: f32) -> R<f64> {
    Ok(f64::from(cx.attr_float(name)?.unwrap_or(default)))
}

/// `x < 0 ? alpha·x : x`.
fn leaky_relu(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let a = alpha(cx, "alpha", 0.01)?;
    let (mut e, x) = E::new(cx, x, true)?;
    let neg = e.bin_c(BinaryOp::Less, x, 0.0)?;
    let ax = e.bin_c(BinaryOp::Mul, x, a)?;
    let y = e.select(neg, ax, x)?;
    e.finish(y)
}

/// `x < 0 ? slope·x : x`, the slope broadcast to `x`.
fn prelu(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x0, slope) = (cx.input(0)?, cx.input(1)?);
    let (mut e, x) = E::new(cx, x0, false)?;
    let slope = e.operand(slope)?;
    let neg = e.bin_c(BinaryOp::Less, x, 0.0)?;
    let sx = e.bin(BinaryOp::Mul, x, slope)?;
    let y = e.select(neg, sx, x)?;
    if e.cx.ty(y).shape != e.cx.ty(x).shape {
        return Err(e.cx.err(format!(
            "slope {} does not broadcast to the input {}",
            e.cx.ty(slope).shape,
            e.cx.ty(x).shape
        )));
    }
    e.finish(y)
}

/// `x < 0 ? alpha·(exp(x) − 1) : x`.
fn elu(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let a = alpha(cx, "alpha", 1.0)?;
    let (mut e, x) = E::new(cx, x, true)?;
    let neg = e.bin_c(BinaryOp::Less, x, 0.0)?;
    let ex = e.un(UnaryOp::Exp, x)?;
    let em1 = e.bin_c(BinaryOp::Sub, ex, 1.0)?;
    let scaled = e.bin_c(BinaryOp::Mul, em1, a)?;
    let y = e.select(neg, scaled, x)?;
    e.finish(y)
}

/// `gamma · (x <= 0 ? alpha·exp(x) − alpha : x)`.
fn selu(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let a = alpha(cx, "alpha", 1.673_263_2)?;
    let g = alpha(cx, "gamma", 1.050_701)?;
    let (mut e, x) = E::new(cx, x, true)?;
    let le = e.bin_c(BinaryOp::LessOrEqual, x, 0.0)?;
    let ex = e.un(UnaryOp::Exp, x)?;
    let aex = e.bin_c(BinaryOp::Mul, ex, a)?;
    let neg = e.bin_c(BinaryOp::Sub, aex, a)?;
    let y = e.select(le, neg, x)?;
    let y = e.bin_c(BinaryOp::Mul, y, g)?;
    e.finish(y)
}

/// `max(0, x) + min(0, alpha·(exp(x/alpha) − 1))`.
fn celu(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let a = alpha(cx, "alpha", 1.0)?;
    if a == 0.0 {
        return Err(cx.err("alpha must not be 0"));
    }
    let (mut e, x) = E::new(cx, x, true)?;
    let pos = e.bin_c(BinaryOp::Max, x, 0.0)?;
    let xa = e.bin_c(BinaryOp::Div, x, a)?;
    let ex = e.un(UnaryOp::Exp, xa)?;
    let em1 = e.bin_c(BinaryOp::Sub, ex, 1.0)?;
    let scaled = e.bin_c(BinaryOp::Mul, em1, a)?;
    let neg = e.bin_c(BinaryOp::Min, scaled, 0.0)?;
    let y = e.bin(BinaryOp::Add, pos, neg)?;
    e.finish(y)
}

/// `x > alpha ? x : 0`.
fn thresholded_relu(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let a = alpha(cx, "alpha", 1.0)?;
    let (mut e, x) = E::new(cx, x, true)?;
    let gt = e.bin_c(BinaryOp::Greater, x, a)?;
    let zero = e.c(0.0);
    let y = e.select(gt, x, zero)?;
    e.finish(y)
}

/// `x < −lambd ? x + bias : x > lambd ? x − bias : 0`.
fn shrink(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let bias = alpha(cx, "bias", 0.0)?;
    let lambd = alpha(cx, "lambd", 0.5)?;
    let (mut e, x) = E::new(cx, x, false)?;
    let lo = e.bin_c(BinaryOp::Less, x, -lambd)?;
    let hi = e.bin_c(BinaryOp::Greater, x, lambd)?;
    let up = e.bin_c(BinaryOp::Add, x, bias)?;
    let down = e.bin_c(BinaryOp::Sub, x, bias)?;
    let zero = e.c(0.0);
    let inner = e.select(hi, down, zero)?;
    let y = e.select(lo, up, inner)?;
    e.finish(y)
}

/// `x / (1 + |x|)`.
fn softsign(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let (mut e, x) = E::new(cx, x, true)?;
    let ax = e.un(UnaryOp::Abs, x)?;
    let d = e.bin_c(BinaryOp::Add, ax, 1.0)?;
    let y = e.bin(BinaryOp::Div, x, d)?;
    e.finish(y)
}

/// `x · tanh(softplus(x))`.
fn mish(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let (mut e, x) = E::new(cx, x, true)?;
    let sp = e.un(UnaryOp::Softplus, x)?;
    let t = e.un(UnaryOp::Tanh, sp)?;
    let y = e.bin(BinaryOp::Mul, x, t)?;
    e.finish(y)
}

/// `x · sigmoid(alpha·x)`.
fn swish(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let a = alpha(cx, "alpha", 1.0)?;
    let (mut e, x) = E::new(cx, x, true)?;
    let ax = if a == 1.0 {
        x
    } else {
        e.bin_c(BinaryOp::Mul, x, a)?
    };
    let s = e.un(UnaryOp::Sigmoid, ax)?;
    let y = e.bin(BinaryOp::Mul, x, s)?;
    e.finish(y)
}

/// `sin(x) / cos(x)`.
fn tan(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let (mut e, x) = E::new(cx, x, true)?;
    let s = e.un(UnaryOp::Sin, x)?;
    let c = e.un(UnaryOp::Cos, x)?;
    let y = e.bin(BinaryOp::Div, s, c)?;
    e.finish(y)
}

/// `(exp(x) ∓ exp(−x)) / 2`.
fn sinh_cosh(cx: &mut Ctx, cosh: bool) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let (mut e, x) = E::new(cx, x, true)?;
    let ep = e.un(UnaryOp::Exp, x)?;
    let nx = e.un(UnaryOp::Neg, x)?;
    let en = e.un(UnaryOp::Exp, nx)?;
    let op = if cosh { BinaryOp::Add } else { BinaryOp::Sub };
    let d = e.bin(op, ep, en)?;
    let y = e.bin_c(BinaryOp::Mul, d, 0.5)?;
    e.finish(y)
}

/// `sign(x) · log(|x| + sqrt(x² + 1))`: odd by construction, so negative inputs do not
/// lose their digits to cancellation.
fn asinh(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let (mut e, x) = E::new(cx, x, true)?;
    let ax = e.un(UnaryOp::Abs, x)?;
    let sq = e.bin(BinaryOp::Mul, x, x)?;
    let sq1 = e.bin_c(BinaryOp::Add, sq, 1.0)?;
    let r = e.un(UnaryOp::Sqrt, sq1)?;
    let s = e.bin(BinaryOp::Add, ax, r)?;
    let l = e.un(UnaryOp::Log, s)?;
    let sign = e.un(UnaryOp::Sign, x)?;
    let y = e.bin(BinaryOp::Mul, sign, l)?;
    e.finish(y)
}

/// `log(x + sqrt(x² − 1))` (NaN below 1, as the function).
fn acosh(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let (mut e, x) = E::new(cx, x, true)?;
    let sq = e.bin(BinaryOp::Mul, x, x)?;
    let sq1 = e.bin_c(BinaryOp::Sub, sq, 1.0)?;
    let r = e.un(UnaryOp::Sqrt, sq1)?;
    let s = e.bin(BinaryOp::Add, x, r)?;
    let y = e.un(UnaryOp::Log, s)?;
    e.finish(y)
}

/// `log((1 + x) / (1 − x)) / 2`.
fn atanh(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let (mut e, x) = E::new(cx, x, true)?;
    let one = e.c(1.0);
    let num = e.bin(BinaryOp::Add, one, x)?;
    let den = e.bin(BinaryOp::Sub, one, x)?;
    let q = e.bin(BinaryOp::Div, num, den)?;
    let l = e.un(UnaryOp::Log, q)?;
    let y = e.bin_c(BinaryOp::Mul, l, 0.5)?;
    e.finish(y)
}
