//! Elementwise kernels with numpy broadcasting.

use tessera_ir::{
    BinaryOp, DType, Element, GeluApprox, Tensor, TensorType, UnaryOp, dispatch_dtype,
};

use super::{from_f64, from_i64};
use crate::index::broadcast_offsets;

fn erf(x: f64) -> f64 {
    libm::erf(x)
}

fn unary_f(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x // ±0 and NaN stay as they are.
            }
        }
        // NaN stays NaN.
        UnaryOp::Relu => {
            if x > 0.0 || x.is_nan() {
                x
            } else {
                0.0
            }
        }
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Reciprocal => 1.0 / x,
        UnaryOp::Erf => erf(x),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => {
            // Stable for large |x|.
            if x >= 0.0 {
                1.0 / (1.0 + (-x).exp())
            } else {
                let e = x.exp();
                e / (1.0 + e)
            }
        }
        UnaryOp::Softplus => {
            if x > 0.0 {
                x + (-x).exp().ln_1p()
            } else {
                x.exp().ln_1p()
            }
        }
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::Round => x.round_ties_even(),
        UnaryOp::Not | UnaryOp::IsNaN | UnaryOp::IsInf => {
            unreachable!("handled before the float path")
        }
    }
}

fn unary_i(op: UnaryOp, x: i64) -> i64 {
    match op {
        UnaryOp::Neg => x.wrapping_neg(),
        UnaryOp::Abs => x.wrapping_abs(),
        UnaryOp::Sign => x.signum(),
        UnaryOp::Relu => x.max(0),
        _ => unreachable!("type inference admits only numeric ops for integers"),
    }
}

pub(super) fn unary(op: UnaryOp, x: &Tensor, out: &TensorType) -> Result<Tensor, String> {
    let shape = x.shape().clone();
    Ok(match op {
        UnaryOp::Not => {
            let v = x.as_slice::<bool>().expect("invariant: not takes bool");
            Tensor::from_vec(shape, v.iter().map(|b| !b).collect()).expect("same length")
        }
        UnaryOp::IsNaN | UnaryOp::IsInf => {
            let v = x.to_f64_vec();
            let f = |y: f64| {
                if op == UnaryOp::IsNaN {
                    y.is_nan()
                } else {
                    y.is_infinite()
                }
            };
            Tensor::from_vec(shape, v.into_iter().map(f).collect()).expect("same length")
        }
        _ if x.dtype().is_float() => from_f64(
            out.dtype,
            shape,
            x.to_f64_vec().into_iter().map(|y| unary_f(op, y)).collect(),
        ),
        _ => from_i64(
            out.dtype,
            shape,
            x.to_i64_vec().into_iter().map(|y| unary_i(op, y)).collect(),
        ),
    })
}

/// Reads operand `v` at output position `i`, through its broadcast offsets if any.
fn at<T: Copy>(v: &[T], map: &Option<Vec<usize>>, i: usize) -> T {
    match map {
        Some(m) => v[m[i]],
        None => v[i],
    }
}

fn float_op(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => a.powf(b),
        // NaN propagates, as in ONNX Max/Min.
        BinaryOp::Max => {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.max(b)
            }
        }
        BinaryOp::Min => {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else {
                a.min(b)
            }
        }
        _ => unreachable!("predicates are handled separately"),
    }
}

fn int_op(op: BinaryOp, a: i64, b: i64) -> Result<i64, String> {
    Ok(match op {
        BinaryOp::Add => a.wrapping_add(b),
        BinaryOp::Sub => a.wrapping_sub(b),
        BinaryOp::Mul => a.wrapping_mul(b),
        BinaryOp::Div => {
            if b == 0 {
                return Err("integer division by zero".into());
            }
            a.wrapping_div(b)
        }
        BinaryOp::Pow => (a as f64).powf(b as f64) as i64,
        BinaryOp::Max => a.max(b),
        BinaryOp::Min => a.min(b),
        _ => unreachable!("predicates are handled separately"),
    })
}

fn compare<T: PartialOrd>(op: BinaryOp, a: T, b: T) -> bool {
    match op {
        BinaryOp::Equal => a == b,
        BinaryOp::Less => a < b,
        BinaryOp::LessOrEqual => a <= b,
        BinaryOp::Greater => a > b,
        BinaryOp::GreaterOrEqual => a >= b,
        _ => unreachable!("not a comparison"),
    }
}

pub(super) fn binary(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    out: &TensorType,
) -> Result<Tensor, String> {
    let od = out.shape.dims();
    let (ma, mb) = (
        broadcast_offsets(a.shape().dims(), od),
        broadcast_offsets(b.shape().dims(), od),
    );
    let n = out.shape.numel();
    let shape = out.shape.clone();
    if matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor) {
        let (x, y) = (
            a.as_slice::<bool>().expect("invariant: logic takes bool"),
            b.as_slice::<bool>().expect("invariant: logic takes bool"),
        );
        let v = (0..n)
            .map(|i| {
                let (p, q) = (at(x, &ma, i), at(y, &mb, i));
                match op {
                    BinaryOp::And => p && q,
                    BinaryOp::Or => p || q,
                    _ => p != q,
                }
            })
            .collect();
        return Ok(Tensor::from_vec(shape, v).expect("one per element"));
    }
    let float = a.dtype().is_float();
    if op.is_predicate() {
        let v: Vec<bool> = if float {
            let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
            (0..n)
                .map(|i| compare(op, at(&x, &ma, i), at(&y, &mb, i)))
                .collect()
        } else if a.dtype() == DType::U64 {
            let (x, y) = (
                a.as_slice::<u64>().expect("u64"),
                b.as_slice::<u64>().expect("u64"),
            );
            (0..n)
                .map(|i| compare(op, at(x, &ma, i), at(y, &mb, i)))
                .collect()
        } else {
            let (x, y) = (a.to_i64_vec(), b.to_i64_vec());
            (0..n)
                .map(|i| compare(op, at(&x, &ma, i), at(&y, &mb, i)))
                .collect()
        };
        return Ok(Tensor::from_vec(shape, v).expect("one per element"));
    }
    if float {
        let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
        let v = (0..n)
            .map(|i| float_op(op, at(&x, &ma, i), at(&y, &mb, i)))
            .collect();
        Ok(from_f64(out.dtype, shape, v))
    } else if op == BinaryOp::Pow && b.dtype().is_float() {
        let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
        let v = (0..n)
            .map(|i| at(&x, &ma, i).powf(at(&y, &mb, i)))
            .collect();
        Ok(from_f64(out.dtype, shape, v))
    } else {
        let (x, y) = (a.to_i64_vec(), b.to_i64_vec());
        let v = (0..n)
            .map(|i| int_op(op, at(&x, &ma, i), at(&y, &mb, i)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(from_i64(out.dtype, shape, v))
    }
}

pub(super) fn select(cond: &Tensor, x: &Tensor, y: &Tensor, out: &TensorType) -> Tensor {
    let od = out.shape.dims();
    let c = cond
        .as_slice::<bool>()
        .expect("invariant: condition is bool");
    let mc = broadcast_offsets(cond.shape().dims(), od);
    let (mx, my) = (
        broadcast_offsets(x.shape().dims(), od),
        broadcast_offsets(y.shape().dims(), od),
    );
    type Map = Option<Vec<usize>>;
    fn go<T: Element>(
        c: &[bool],
        x: &Tensor,
        y: &Tensor,
        maps: [&Map; 3],
        out: &TensorType,
    ) -> Tensor {
        let xs = x.as_slice::<T>().expect("invariant: dtype matches");
        let ys = y.as_slice::<T>().expect("invariant: dtype matches");
        let v = (0..out.shape.numel())
            .map(|i| {
                if at(c, maps[0], i) {
                    at(xs, maps[1], i)
                } else {
                    at(ys, maps[2], i)
                }
            })
            .collect();
        Tensor::from_vec(out.shape.clone(), v).expect("one per element")
    }
    dispatch_dtype!(x.dtype(), go(c, x, y, [&mc, &mx, &my], out))
}

pub(super) fn clip(x: &Tensor, min: f64, max: f64) -> Tensor {
    let shape = x.shape().clone();
    if x.dtype().is_float() {
        // NaN stays NaN (f64::clamp would too, but be explicit).
        let v = x
            .to_f64_vec()
            .into_iter()
            .map(|y| if y.is_nan() { y } else { y.max(min).min(max) })
            .collect();
        from_f64(x.dtype(), shape, v)
    } else {
        let v = x
            .to_i64_vec()
            .into_iter()
            .map(|y| {
                let mut z = y;
                if min > z as f64 {
                    z = min.ceil() as i64;
                }
                if max < z as f64 {
                    z = max.floor() as i64;
                }
                z
            })
            .collect();
        from_i64(x.dtype(), shape, v)
    }
}

pub(super) fn gelu(approx: GeluApprox, x: &Tensor) -> Tensor {
    let f = |v: f64| match approx {
        GeluApprox::None => 0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2)),
        GeluApprox::Tanh => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * v * (1.0 + (k * (v + 0.044715 * v * v * v)).tanh())
        }
    };
    from_f64(
        x.dtype(),
        x.shape().clone(),
        x.to_f64_vec().into_iter().map(f).collect(),
    )
}
