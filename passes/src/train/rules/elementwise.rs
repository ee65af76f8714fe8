//! Rules for elementwise ops. Broadcast operands get their gradient summed back to their
//! own shape ([`Emitter::reduce_to`]).

use std::f64::consts::PI;

use tessera_ir::{BinaryOp, GeluApprox, UnaryOp, ValueId};

use crate::PassError;
use crate::train::emit::Emitter;

type Grads = Result<Vec<Option<ValueId>>, PassError>;

pub(super) fn unary(e: &mut Emitter, u: UnaryOp, x: ValueId, y: ValueId, g: ValueId) -> Grads {
    let dx = match u {
        UnaryOp::Neg => e.neg(g)?,
        UnaryOp::Abs => {
            let s = e.unary(UnaryOp::Sign, x)?;
            e.mul(g, s)?
        }
        UnaryOp::Relu => {
            // Reads the output (ORT's ReluGrad(GO, O0)): y > 0 exactly where x > 0.
            let zero = e.scalar(e.dtype(y), 0.0);
            let pos = e.binary(BinaryOp::Greater, y, zero)?;
            e.mask(pos, g)?
        }
        UnaryOp::Exp => e.mul(g, y)?,
        UnaryOp::Log => e.div(g, x)?,
        UnaryOp::Sqrt => {
            // g / (2·y)
            let half = e.scale(g, 0.5)?;
            e.div(half, y)?
        }
        UnaryOp::Reciprocal => {
            // −g·y²
            let y2 = e.mul(y, y)?;
            let t = e.mul(g, y2)?;
            e.neg(t)?
        }
        UnaryOp::Erf => {
            // g · 2/√π · exp(−x²)
            let x2 = e.mul(x, x)?;
            let n = e.neg(x2)?;
            let ex = e.unary(UnaryOp::Exp, n)?;
            let d = e.scale(ex, 2.0 / PI.sqrt())?;
            e.mul(g, d)?
        }
        UnaryOp::Tanh => {
            // g · (1 − y²)
            let y2 = e.mul(y, y)?;
            let d = e.rsub(1.0, y2)?;
            e.mul(g, d)?
        }
        UnaryOp::Sigmoid => {
            // g · y · (1 − y)
            let one_minus = e.rsub(1.0, y)?;
            let d = e.mul(y, one_minus)?;
            e.mul(g, d)?
        }
        UnaryOp::Softplus => {
            let s = e.unary(UnaryOp::Sigmoid, x)?;
            e.mul(g, s)?
        }
        UnaryOp::Sin => {
            let c = e.unary(UnaryOp::Cos, x)?;
            e.mul(g, c)?
        }
        UnaryOp::Cos => {
            let s = e.unary(UnaryOp::Sin, x)?;
            let t = e.mul(g, s)?;
            e.neg(t)?
        }
        // Piecewise constant (zero derivative) or not float: never asked for.
        UnaryOp::Sign
        | UnaryOp::Floor
        | UnaryOp::Ceil
        | UnaryOp::Round
        | UnaryOp::Not
        | UnaryOp::IsNaN
        | UnaryOp::IsInf => return Ok(vec![None]),
    };
    Ok(vec![Some(dx)])
}

pub(super) fn binary(
    e: &mut Emitter,
    b: BinaryOp,
    x: &[ValueId],
    y: ValueId,
    g: ValueId,
    need: &[bool],
) -> Grads {
    let (a, bb) = (x[0], x[1]);
    let (da, db) = (e.dims(a), e.dims(bb));
    let (ga, gb) = match b {
        // x·x: one contribution 2·g·x instead of two.
        BinaryOp::Mul if a == bb => {
            let t = e.mul(g, a)?;
            (Some(e.scale(t, 2.0)?), None)
        }
        BinaryOp::Add => (Some(g), Some(g)),
        BinaryOp::Sub => (Some(g), if need[1] { Some(e.neg(g)?) } else { None }),
        BinaryOp::Mul => (
            if need[0] { Some(e.mul(g, bb)?) } else { None },
            if need[1] { Some(e.mul(g, a)?) } else { None },
        ),
        BinaryOp::Div => (
            if need[0] { Some(e.div(g, bb)?) } else { None },
            if need[1] {
                // −g·y/b
                let gy = e.mul(g, y)?;
                let q = e.div(gy, bb)?;
                Some(e.neg(q)?)
            } else {
                None
            },
        ),
        BinaryOp::Pow => {
            let ga = if need[0] {
                // g · b · a^(b−1); an integer exponent stays integer inside pow.
                let dt_b = e.dtype(bb);
                let one = e.scalar(dt_b, 1.0);
                let bm1 = e.sub(bb, one)?;
                let p = e.binary(BinaryOp::Pow, a, bm1)?;
                let bf = e.cast(bb, e.dtype(a))?;
                let t = e.mul(p, bf)?;
                Some(e.mul(g, t)?)
            } else {
                None
            };
            let gb = if need[1] {
                // g · y · ln a
                let ln = e.unary(UnaryOp::Log, a)?;
                let t = e.mul(y, ln)?;
                Some(e.mul(g, t)?)
            } else {
                None
            };
            (ga, gb)
        }
        BinaryOp::Max | BinaryOp::Min => {
            // Ties go to the left operand.
            let cmp = if b == BinaryOp::Max {
                BinaryOp::GreaterOrEqual
            } else {
                BinaryOp::LessOrEqual
            };
            let left = e.binary(cmp, a, bb)?;
            let ga = if need[0] {
                Some(e.mask(left, g)?)
            } else {
                None
            };
            let gb = if need[1] {
                let right = e.unary(UnaryOp::Not, left)?;
                Some(e.mask(right, g)?)
            } else {
                None
            };
            (ga, gb)
        }
        // Predicates produce bools: no gradient.
        _ => (None, None),
    };
    let ga = match ga {
        Some(v) if need[0] => Some(e.reduce_to(v, &da)?),
        _ => None,
    };
    let gb = match gb {
        Some(v) if need[1] => Some(e.reduce_to(v, &db)?),
        _ => None,
    };
    Ok(vec![ga, gb])
}

/// `where(c, x, y)`: the gradient goes to `x` where `c` holds, to `y` elsewhere.
pub(super) fn select(e: &mut Emitter, x: &[ValueId], g: ValueId, need: &[bool]) -> Grads {
    let c = x[0];
    let gx = if need[1] {
        let m = e.mask(c, g)?;
        let d = e.dims(x[1]);
        Some(e.reduce_to(m, &d)?)
    } else {
        None
    };
    let gy = if need[2] {
        let nc = e.unary(UnaryOp::Not, c)?;
        let m = e.mask(nc, g)?;
        let d = e.dims(x[2]);
        Some(e.reduce_to(m, &d)?)
    } else {
        None
    };
    Ok(vec![None, gx, gy])
}

/// `clip(x, lo, hi)` passes the gradient where `lo ≤ x ≤ hi`.
pub(super) fn clip(e: &mut Emitter, x: ValueId, lo: f64, hi: f64, g: ValueId) -> Grads {
    let dt = e.dtype(x);
    let (l, h) = (e.scalar(dt, lo), e.scalar(dt, hi));
    let ge = e.binary(BinaryOp::GreaterOrEqual, x, l)?;
    let le = e.binary(BinaryOp::LessOrEqual, x, h)?;
    let inside = e.binary(BinaryOp::And, ge, le)?;
    Ok(vec![Some(e.mask(inside, g)?)])
}

pub(super) fn gelu(e: &mut Emitter, approx: GeluApprox, x: ValueId, g: ValueId) -> Grads {
    let d = match approx {
        GeluApprox::None => {
            // Φ(x) + x·φ(x), Φ(x) = (1 + erf(x/√2))/2, φ(x) = exp(−x²/2)/√(2π)
            let xs = e.scale(x, std::f64::consts::FRAC_1_SQRT_2)?;
            let erf = e.unary(UnaryOp::Erf, xs)?;
            let cdf1 = e.add_scalar(erf, 1.0)?;
            let cdf = e.scale(cdf1, 0.5)?;
            let x2 = e.mul(x, x)?;
            let h = e.scale(x2, -0.5)?;
            let ex = e.unary(UnaryOp::Exp, h)?;
            let pdf = e.scale(ex, 1.0 / (2.0 * PI).sqrt())?;
            let xp = e.mul(x, pdf)?;
            e.add(cdf, xp)?
        }
        GeluApprox::Tanh => {
            // u = c·(x + k·x³), t = tanh(u); d = (1 + t)/2 + x·(1 − t²)·c·(1 + 3k·x²)/2
            let (c, k) = ((2.0 / PI).sqrt(), 0.044715);
            let x2 = e.mul(x, x)?;
            let x3 = e.mul(x2, x)?;
            let kx3 = e.scale(x3, k)?;
            let inner = e.add(x, kx3)?;
            let u = e.scale(inner, c)?;
            let t = e.unary(UnaryOp::Tanh, u)?;
            let t1 = e.add_scalar(t, 1.0)?;
            let left = e.scale(t1, 0.5)?;
            let t2 = e.mul(t, t)?;
            let sech2 = e.rsub(1.0, t2)?;
            let kx2 = e.scale(x2, 3.0 * k)?;
            let du1 = e.add_scalar(kx2, 1.0)?;
            let du = e.scale(du1, 0.5 * c)?;
            let xs = e.mul(x, sech2)?;
            let right = e.mul(xs, du)?;
            e.add(left, right)?
        }
    };
    Ok(vec![Some(e.mul(g, d)?)])
}
