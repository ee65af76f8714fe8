//! `BitCast`: the same bits read as another dtype of the same width. The IR has no
//! bit-level op, so:
//!
//! * integer ↔ integer (and bool → 8-bit) is `Cast`, whose int → int conversion wraps,
//!   which is exactly a two's complement reinterpretation;
//! * float → integer takes the float apart in f64 arithmetic that is exact: the sign
//!   (`x < 0`, or `1/x < 0` for −0), the exponent (`⌊log₂|x|⌋` from `log`, corrected
//!   against a table of exact powers of two gathered by index), the fraction as an integer
//!   (`|x|/2^e`, a division by a power of two), subnormals, infinities and NaN (read as
//!   the canonical quiet NaN: the IR does not keep NaN payloads), then assembles the word
//!   in i64 and wraps it into the target;
//! * integer → float splits the word with integer division by `2^p` into exponent and
//!   fraction fields and rebuilds `(1 + f/2^p)·2^(E − bias)` (a table gather again), or
//!   the subnormal, infinite or NaN value, with the sign.
//!
//! f32 ↔ 32-bit and f64 ↔ 64-bit integers; the 16-bit floats are refused.

use tessera_ir::{BinaryOp, DType, Op, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator};
use crate::context::Ctx;
use crate::tensor::dtype_from_onnx;

pub(super) const OPS: &[(&str, Translator)] = &[("BitCast", bitcast)];

/// An IEEE binary format: fraction bits and exponent bias (the exponent field is all ones
/// for infinities and NaN).
#[derive(Clone, Copy)]
struct Format {
    p: i32,
    bias: i32,
}

impl Format {
    fn of(d: DType) -> Option<Format> {
        match d {
            DType::F32 => Some(Format { p: 23, bias: 127 }),
            DType::F64 => Some(Format { p: 52, bias: 1023 }),
            _ => None,
        }
    }

    /// The all-ones exponent field.
    fn emax(self) -> i64 {
        2 * i64::from(self.bias) + 1
    }
}

/// `2^k` exactly (`powi` goes through `1/2^−k`, which overflows below −1023), for
/// `−1074 ≤ k`; infinite from 1024.
fn pow2(k: i32) -> f64 {
    if k >= 1024 {
        f64::INFINITY
    } else if k >= -1022 {
        f64::from_bits(((k + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (k + 1074).max(0))
    }
}

/// Expression helpers.
struct B<'c, 'a, 'b> {
    cx: &'c mut Ctx<'a, 'b>,
}

impl B<'_, '_, '_> {
    fn c(&mut self, d: DType, v: f64) -> ValueId {
        self.cx.constant(Tensor::full(d, Shape::scalar(), v))
    }

    fn bin(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> R<ValueId> {
        self.cx.emit1(Op::Binary(op), &[a, b])
    }

    fn bin_c(&mut self, op: BinaryOp, a: ValueId, v: f64) -> R<ValueId> {
        let d = self.cx.ty(a).dtype;
        let c = self.c(d, v);
        self.bin(op, a, c)
    }

    fn un(&mut self, op: UnaryOp, a: ValueId) -> R<ValueId> {
        self.cx.emit1(Op::Unary(op), &[a])
    }

    fn cast(&mut self, v: ValueId, to: DType) -> R<ValueId> {
        if self.cx.ty(v).dtype == to {
            return Ok(v);
        }
        self.cx.emit1(Op::Cast { to }, &[v])
    }

    fn select(&mut self, m: ValueId, a: ValueId, b: ValueId) -> R<ValueId> {
        self.cx.emit1(Op::Where, &[m, a, b])
    }

    /// The f64 table `2^(lo + k)` for `k` in `0..n`, gathered at i64 `k`.
    fn powers(&mut self, lo: i32, n: usize, k: ValueId) -> R<ValueId> {
        let v: Vec<f64> = (0..n).map(|i| pow2(lo + i as i32)).collect();
        let s = Shape::new(vec![n]).map_err(|e| self.cx.err(e.to_string()))?;
        let t = Tensor::from_vec(s, v).map_err(|e| self.cx.err(e.to_string()))?;
        let t = self.cx.constant(t);
        self.cx.emit1(Op::Gather { axis: 0 }, &[t, k])
    }
}

fn bitcast(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let code = cx
        .attr_int("to")?
        .ok_or_else(|| cx.err("attribute \"to\" is missing"))?;
    let to = dtype_from_onnx(code as i32).map_err(|m| cx.err(m))?;
    let from = cx.ty(x).dtype;
    if from.size_bytes() != to.size_bytes() {
        return Err(cx.err(format!(
            "{from} and {to} have different widths ({} and {} bytes)",
            from.size_bytes(),
            to.size_bytes()
        )));
    }
    let int_like = |d: DType| d.is_int() || d == DType::Bool;
    if from == to {
        return Ok(vec![x]);
    }
    if int_like(from) && int_like(to) {
        if to == DType::Bool {
            return Err(cx.err("bit casts to bool are not supported (only 0 and 1 are bools)"));
        }
        return Ok(vec![cx.emit1(Op::Cast { to }, &[x])?]);
    }
    let mut b = B { cx };
    match (Format::of(from), Format::of(to)) {
        (Some(f), None) if to.is_int() => Ok(vec![float_to_bits(&mut b, x, f, to)?]),
        (None, Some(f)) if from.is_int() => Ok(vec![bits_to_float(&mut b, x, f, to)?]),
        _ => Err(b
            .cx
            .err(format!("bit casts from {from} to {to} are not supported"))),
    }
}

/// The bits of float `x` (format `f`) as integer dtype `to`.
fn float_to_bits(b: &mut B, x: ValueId, f: Format, to: DType) -> R<ValueId> {
    let f64t = DType::F64;
    let xf = b.cast(x, f64t)?;
    let a = b.un(UnaryOp::Abs, xf)?;
    // Sign, −0 included.
    let zero = b.c(f64t, 0.0);
    let neg = b.bin(BinaryOp::Less, xf, zero)?;
    let rec = b.un(UnaryOp::Reciprocal, xf)?;
    let rneg = b.bin(BinaryOp::Less, rec, zero)?;
    let is_zero = b.bin(BinaryOp::Equal, xf, zero)?;
    let negz = b.bin(BinaryOp::And, is_zero, rneg)?;
    let sign = b.bin(BinaryOp::Or, neg, negz)?;
    // The exponent: ⌊log₂ a⌋, clamped to the table, corrected by exact comparisons.
    let e_lo = 1 - f.bias - f.p;
    let e_hi = f.bias;
    let n = (e_hi - e_lo + 2) as usize;
    let l = b.un(UnaryOp::Log, a)?;
    let l2 = b.bin_c(BinaryOp::Mul, l, std::f64::consts::LOG2_E)?;
    let e0 = b.un(UnaryOp::Floor, l2)?;
    let e0 = b.cx.emit1(
        Op::Clip {
            min: f64::from(e_lo),
            max: f64::from(e_hi),
        },
        &[e0],
    )?;
    let k0 = b.bin_c(BinaryOp::Sub, e0, f64::from(e_lo))?;
    let k0 = b.cast(k0, DType::I64)?;
    let p0 = b.powers(e_lo, n, k0)?;
    let over = b.bin(BinaryOp::Greater, p0, a)?;
    let one_i = b.c(DType::I64, 1.0);
    let k0m = b.bin(BinaryOp::Sub, k0, one_i)?;
    let zero_i = b.c(DType::I64, 0.0);
    let k0m = b.bin(BinaryOp::Max, k0m, zero_i)?;
    let k1 = b.select(over, k0m, k0)?;
    let k1p = b.bin(BinaryOp::Add, k1, one_i)?;
    let p1p = b.powers(e_lo, n, k1p)?;
    let under = b.bin(BinaryOp::LessOrEqual, p1p, a)?;
    let top = b.c(DType::I64, f64::from(e_hi - e_lo));
    let k1p = b.bin(BinaryOp::Min, k1p, top)?;
    let k = b.select(under, k1p, k1)?;
    let pe = b.powers(e_lo, n, k)?;
    // Normal: E = e + bias, M = (a/2^e − 1)·2^p. Subnormal (and zero): E = 0, M = a/2^e_lo.
    let kf = b.cast(k, f64t)?;
    let e = b.bin_c(BinaryOp::Add, kf, f64::from(e_lo))?;
    let normal = b.bin_c(BinaryOp::GreaterOrEqual, e, f64::from(1 - f.bias))?;
    let frac = b.bin(BinaryOp::Div, a, pe)?;
    let frac = b.bin_c(BinaryOp::Sub, frac, 1.0)?;
    let m_norm = b.bin_c(BinaryOp::Mul, frac, pow2(f.p))?;
    let m_sub = b.bin_c(BinaryOp::Div, a, pow2(e_lo))?;
    let e_norm = b.bin_c(BinaryOp::Add, e, f64::from(f.bias))?;
    let mut ef = b.select(normal, e_norm, zero)?;
    let mut mf = b.select(normal, m_norm, m_sub)?;
    // Infinity and NaN: the all-ones exponent, fraction 0 or the quiet bit.
    let inf = b.un(UnaryOp::IsInf, xf)?;
    let nan = b.un(UnaryOp::IsNaN, xf)?;
    let special = b.bin(BinaryOp::Or, inf, nan)?;
    let emax = b.c(f64t, f.emax() as f64);
    ef = b.select(special, emax, ef)?;
    let quiet = b.c(f64t, pow2(f.p - 1));
    let m_special = b.select(nan, quiet, zero)?;
    mf = b.select(special, m_special, mf)?;
    let sign = {
        let not_nan = b.un(UnaryOp::Not, nan)?;
        b.bin(BinaryOp::And, sign, not_nan)?
    };
    // The word, in i64: E·2^p + M, plus the sign bit.
    let ei = b.cast(ef, DType::I64)?;
    let mi = b.cast(mf, DType::I64)?;
    let scale = b.c(DType::I64, pow2(f.p));
    let word = b.bin(BinaryOp::Mul, ei, scale)?;
    let word = b.bin(BinaryOp::Add, word, mi)?;
    let width = 8 * to.size_bytes() as i32;
    let sign_bit = if width == 64 {
        -(pow2(63))
    } else {
        pow2(width - 1)
    };
    let sb = b.c(DType::I64, sign_bit);
    let with_sign = b.bin(BinaryOp::Add, word, sb)?;
    let word = b.select(sign, with_sign, word)?;
    b.cast(word, to)
}

/// Integer `x` read as float format `f` (dtype `to`).
fn bits_to_float(b: &mut B, x: ValueId, f: Format, to: DType) -> R<ValueId> {
    let from = b.cx.ty(x).dtype;
    let i64t = DType::I64;
    let f64t = DType::F64;
    // The word as i64: u ∈ [0, 2^w) for 32-bit words; for 64-bit ones the bits as i64.
    let w = b.cast(x, i64t)?;
    let zero_i = b.c(i64t, 0.0);
    let (sign, rest) = if from.size_bytes() == 8 {
        let neg = b.bin(BinaryOp::Less, w, zero_i)?;
        let min = b.c(i64t, -(pow2(63)));
        let r = b.bin(BinaryOp::Sub, w, min)?;
        (neg, b.select(neg, r, w)?)
    } else {
        let u = if from.is_signed() {
            let neg = b.bin(BinaryOp::Less, w, zero_i)?;
            let up = b.bin_c(BinaryOp::Add, w, pow2(32))?;
            b.select(neg, up, w)?
        } else {
            w
        };
        let s = b.bin_c(BinaryOp::GreaterOrEqual, u, pow2(31))?;
        let r = b.bin_c(BinaryOp::Sub, u, pow2(31))?;
        (s, b.select(s, r, u)?)
    };
    // Exponent and fraction fields.
    let scale = b.c(i64t, pow2(f.p));
    let e = b.bin(BinaryOp::Div, rest, scale)?;
    let eh = b.bin(BinaryOp::Mul, e, scale)?;
    let m = b.bin(BinaryOp::Sub, rest, eh)?;
    let mf = b.cast(m, f64t)?;
    // Normal: (1 + M/2^p)·2^(E − bias); subnormal: M·2^(1 − bias − p).
    let frac = b.bin_c(BinaryOp::Mul, mf, pow2(-f.p))?;
    let frac = b.bin_c(BinaryOp::Add, frac, 1.0)?;
    let pe = b.powers(-f.bias, f.emax() as usize + 1, e)?;
    let normal = b.bin(BinaryOp::Mul, frac, pe)?;
    let sub = b.bin_c(BinaryOp::Mul, mf, pow2(1 - f.bias - f.p))?;
    let is_sub = b.bin(BinaryOp::Equal, e, zero_i)?;
    let mut v = b.select(is_sub, sub, normal)?;
    let emax = b.c(i64t, f.emax() as f64);
    let special = b.bin(BinaryOp::Equal, e, emax)?;
    let m_zero = b.bin(BinaryOp::Equal, m, zero_i)?;
    let inf = b.c(f64t, f64::INFINITY);
    let nan = b.c(f64t, f64::NAN);
    let sv = b.select(m_zero, inf, nan)?;
    v = b.select(special, sv, v)?;
    let nv = b.un(UnaryOp::Neg, v)?;
    let v = b.select(sign, nv, v)?;
    b.cast(v, to)
}
