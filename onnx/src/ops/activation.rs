//! Activation functions and the trigonometric/hyperbolic functions the IR has no op for
//! (the inverse trigonometric ones by range reduction and a polynomial, in f64),
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
    ("Atan", |cx| inverse_trig(cx, Trig::Atan)),
    ("Asin", |cx| inverse_trig(cx, Trig::Asin)),
    ("Acos", |cx| inverse_trig(cx, Trig::Acos)),
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

    /// A builder computing in f64 whatever the float input (the inverse trigonometric
    /// functions: f64 leaves their range reductions and polynomial no error that shows
    /// after the one rounding back to f32 or narrower).
    fn new_f64(cx: &'c mut Ctx<'a, 'b>, x: ValueId) -> R<(Self, ValueId)> {
        let out = cx.ty(x).dtype;
        if !out.is_float() {
            return Err(cx.err(format!("input is {out}, expected a float dtype")));
        }
        let wide = if out == DType::F64 {
            x
        } else {
            cx.emit1(Op::Cast { to: DType::F64 }, &[x])?
        };
        let e = E {
            cx,
            dtype: DType::F64,
            out,
        };
        Ok((e, wide))
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

#[derive(Clone, Copy)]
enum Trig {
    Atan,
    Asin,
    Acos,
}

/// `tan(3π/8)` and `tan(π/8)`, where [`atan`]'s range reduction switches.
const TAN_3PI_8: f64 = 2.414_213_562_373_095;
const TAN_PI_8: f64 = 0.414_213_562_373_095;

/// `P(z)` with `atan(t) = t + t·z·P(z)`, `z = t²`, for `|t| ≤ tan(π/8)`: a least-squares
/// fit at 4000 Chebyshev nodes of the (alternating, cancellation-free) series
/// `Σ (−1)ⁿ zⁿ⁻¹ / (2n + 1)`, degree 10, within 1 ulp of f64 on that interval. Lowest
/// order first.
const ATAN_P: [f64; 11] = [
    -0.333_333_333_333_333_5,
    0.199_999_999_999_965_07,
    -0.142_857_142_848_175_22,
    0.111_111_110_249_291_03,
    -0.090_909_049_106_527_85,
    0.076_921_900_174_245_29,
    -0.066_645_989_944_502_53,
    0.058_588_557_198_428_87,
    -0.050_889_376_965_451_97,
    0.039_327_698_905_563_92,
    -0.019_289_888_519_731_388,
];

/// `atan(v)` in f64: `|v|` reduced to `|t| ≤ tan(π/8)` (`π/2 − atan(1/|v|)` above
/// `tan(3π/8)`, `π/4 + atan((|v| − 1)/(|v| + 1))` above `tan(π/8)`), the polynomial, the
/// sign put back. Infinities take the first branch (`±π/2`), NaN stays NaN; the unselected
/// branches' NaNs never reach the result.
fn atan(e: &mut E, v: ValueId) -> R<ValueId> {
    let a = e.un(UnaryOp::Abs, v)?;
    let big = e.bin_c(BinaryOp::Greater, a, TAN_3PI_8)?;
    let mid = e.bin_c(BinaryOp::Greater, a, TAN_PI_8)?;
    let inv = e.un(UnaryOp::Reciprocal, a)?;
    let t_big = e.un(UnaryOp::Neg, inv)?;
    let am1 = e.bin_c(BinaryOp::Sub, a, 1.0)?;
    let ap1 = e.bin_c(BinaryOp::Add, a, 1.0)?;
    let t_mid = e.bin(BinaryOp::Div, am1, ap1)?;
    let t_small = e.select(mid, t_mid, a)?;
    let t = e.select(big, t_big, t_small)?;
    let (c0, c4, c2) = (
        e.c(0.0),
        e.c(std::f64::consts::FRAC_PI_4),
        e.c(std::f64::consts::FRAC_PI_2),
    );
    let off_small = e.select(mid, c4, c0)?;
    let off = e.select(big, c2, off_small)?;
    let z = e.bin(BinaryOp::Mul, t, t)?;
    let mut p = e.c(ATAN_P[ATAN_P.len() - 1]);
    for &k in ATAN_P[..ATAN_P.len() - 1].iter().rev() {
        let pz = e.bin(BinaryOp::Mul, p, z)?;
        p = e.bin_c(BinaryOp::Add, pz, k)?;
    }
    let zp = e.bin(BinaryOp::Mul, z, p)?;
    let tzp = e.bin(BinaryOp::Mul, t, zp)?;
    let r = e.bin(BinaryOp::Add, t, tzp)?;
    let y = e.bin(BinaryOp::Add, off, r)?;
    let neg = e.bin_c(BinaryOp::Less, v, 0.0)?;
    let ny = e.un(UnaryOp::Neg, y)?;
    e.select(neg, ny, y)
}

/// `atan(x)`; `asin(x) = atan(x / sqrt((1 − x)(1 + x)))` (`±π/2` at `±1` through the
/// infinite quotient, NaN beyond); `acos(x) = 2·atan(sqrt((1 − x)/(1 + x)))`, which keeps
/// its relative accuracy near 1 where `π/2 − asin(x)` would cancel (`π` at −1, NaN beyond
/// ±1). All in f64, rounded once to the input's dtype.
fn inverse_trig(cx: &mut Ctx, f: Trig) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let (mut e, x) = E::new_f64(cx, x)?;
    let y = match f {
        Trig::Atan => atan(&mut e, x)?,
        Trig::Asin => {
            let one = e.c(1.0);
            let omx = e.bin(BinaryOp::Sub, one, x)?;
            let opx = e.bin_c(BinaryOp::Add, x, 1.0)?;
            let d = e.bin(BinaryOp::Mul, omx, opx)?;
            let s = e.un(UnaryOp::Sqrt, d)?;
            let q = e.bin(BinaryOp::Div, x, s)?;
            atan(&mut e, q)?
        }
        Trig::Acos => {
            let one = e.c(1.0);
            let omx = e.bin(BinaryOp::Sub, one, x)?;
            let opx = e.bin_c(BinaryOp::Add, x, 1.0)?;
            let q = e.bin(BinaryOp::Div, omx, opx)?;
            let s = e.un(UnaryOp::Sqrt, q)?;
            let a = atan(&mut e, s)?;
            e.bin_c(BinaryOp::Mul, a, 2.0)?
        }
    };
    e.finish(y)
}
