//! `DFT` as matrix products with constant cosine and sine tables: the signal axis moved
//! last, its real and imaginary parts multiplied (in f64) by `[L, K]` twiddle matrices,
//! the parts recombined and moved back. Zero-padding or truncating to `dft_length` is
//! which table rows exist; `onesided` keeps the first `N/2 + 1` bins; the inverse scales
//! by `1/N`, and the one-sided inverse is numpy's `irfft` (the Hermitian half doubled,
//! the imaginary parts of the DC and Nyquist bins ignored), with a real output.
//!
//! The f64 products are more accurate than the node tests' expected outputs, which numpy
//! computed in complex64: `test_dft_inverse` expects 1.9e-7 where the exact value is 0
//! (7e-16 here), just over the runner's 1e-7 absolute tolerance, so it and its opset-19
//! twin are recorded as mismatches (numpy's complex64 `ifft` reproduces their expected
//! outputs exactly).

use std::f64::consts::PI;

use tessera_ir::{BinaryOp, DType, Op, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator, axis, dims_of, reshape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[("DFT", dft)];

/// `v` with axis `a` moved last (and the permutation that undoes it).
fn move_last(cx: &mut Ctx, v: ValueId, a: usize) -> R<(ValueId, Vec<usize>)> {
    let r = cx.ty(v).shape.rank();
    let mut perm: Vec<usize> = (0..r).filter(|&i| i != a).collect();
    perm.push(a);
    let mut back = vec![0; r];
    for (i, &p) in perm.iter().enumerate() {
        back[p] = i;
    }
    if a == r - 1 {
        return Ok((v, back));
    }
    Ok((cx.emit1(Op::Transpose { perm }, &[v])?, back))
}

/// A constant f64 `[rows, cols]` matrix with entries `f(row, col)`.
fn table(cx: &mut Ctx, rows: usize, cols: usize, f: impl Fn(usize, usize) -> f64) -> R<ValueId> {
    cx.check_built("the DFT table", rows.saturating_mul(cols))?;
    let v: Vec<f64> = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (r, c)))
        .map(|(r, c)| f(r, c))
        .collect();
    let s = Shape::new(vec![rows, cols]).map_err(|e| cx.err(e.to_string()))?;
    let t = Tensor::from_vec(s, v).map_err(|e| cx.err(e.to_string()))?;
    Ok(cx.constant(t))
}

/// `cos(2π·k·t/N)` and `sin(…)` with `k·t` reduced mod `N` first (exact zeros and ones
/// where the angle is a multiple of π/2).
fn twiddle(k: usize, t: usize, n: usize) -> (f64, f64) {
    let m = (k * t) % n;
    if (4 * m).is_multiple_of(n) {
        return match 4 * m / n {
            0 => (1.0, 0.0),
            1 => (0.0, 1.0),
            2 => (-1.0, 0.0),
            _ => (0.0, -1.0),
        };
    }
    let th = 2.0 * PI * m as f64 / n as f64;
    (th.cos(), th.sin())
}

fn dft(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    let r = d.len();
    let dt = cx.ty(x).dtype;
    if !dt.is_float() {
        return Err(cx.err(format!("input is {dt}, expected a float dtype")));
    }
    if r < 2 || !matches!(d[r - 1], 1 | 2) {
        return Err(cx.err(format!(
            "input has shape {}, expected [..., signal..., 1 or 2]",
            cx.ty(x).shape
        )));
    }
    let raw_axis = if cx.opset >= 20 {
        match cx.ints_input(2)? {
            Some(v) if v.len() == 1 => v[0],
            Some(v) => return Err(cx.err(format!("axis {v:?} must be one value"))),
            None => -2,
        }
    } else {
        cx.attr_int("axis")?.unwrap_or(1)
    };
    let a = axis(cx, raw_axis, r)?;
    if a == r - 1 {
        return Err(cx.err("axis must not be the last (real/imaginary) axis"));
    }
    let inverse = cx.attr_int("inverse")?.unwrap_or(0) != 0;
    let onesided = cx.attr_int("onesided")?.unwrap_or(0) != 0;
    let len = d[a];
    let n = match cx.ints_input(1)? {
        Some(v) if v.len() == 1 && v[0] > 0 => v[0] as usize,
        Some(v) => return Err(cx.err(format!("dft_length {v:?} must be one positive value"))),
        None if inverse && onesided => 2 * len.saturating_sub(1),
        None => len,
    };
    if n == 0 {
        return Err(cx.err("the transform length is 0"));
    }

    // Real and imaginary parts, the signal axis last, in f64.
    let xf = if dt == DType::F64 {
        x
    } else {
        cx.emit1(Op::Cast { to: DType::F64 }, &[x])?
    };
    let mut base = d[..r - 1].to_vec();
    let parts = if d[r - 1] == 2 {
        let p = cx.emit(
            Op::Split {
                axis: r - 1,
                sizes: vec![1, 1],
            },
            &[xf],
        )?;
        vec![p[0], p[1]]
    } else {
        vec![xf]
    };
    let mut moved = Vec::with_capacity(2);
    let mut back = Vec::new();
    for p in parts {
        let p = reshape(cx, p, base.clone())?;
        let (m, b) = move_last(cx, p, a)?;
        moved.push(m);
        back = b;
    }
    let (re, im) = (moved[0], moved.get(1).copied());

    let mm = |cx: &mut Ctx, v: ValueId, t: ValueId| cx.emit1(Op::MatMul, &[v, t]);
    let bin =
        |cx: &mut Ctx, op: BinaryOp, p: ValueId, q: ValueId| cx.emit1(Op::Binary(op), &[p, q]);
    let outs: Vec<ValueId> = if inverse && onesided {
        // irfft: rows k < min(len, N/2 + 1), weight 1 at DC and Nyquist, else 2.
        let rows = len.min(n / 2 + 1);
        let w = |k: usize| {
            if k == 0 || (n.is_multiple_of(2) && k == n / 2) {
                1.0
            } else {
                2.0
            }
        };
        let nf = n as f64;
        let c = table(cx, rows, n, |k, t| w(k) * twiddle(k, t, n).0 / nf)?;
        let s = table(cx, rows, n, |k, t| {
            if k == 0 || (n.is_multiple_of(2) && k == n / 2) {
                0.0
            } else {
                w(k) * twiddle(k, t, n).1 / nf
            }
        })?;
        let re = crop_last(cx, re, rows)?;
        let mut y = mm(cx, re, c)?;
        if let Some(im) = im {
            let im = crop_last(cx, im, rows)?;
            let is = mm(cx, im, s)?;
            y = bin(cx, BinaryOp::Sub, y, is)?;
        }
        vec![y]
    } else {
        // Forward: Re = a·C + b·S, Im = b·C − a·S; inverse: Re = (a·C − b·S)/N,
        // Im = (b·C + a·S)/N.
        let rows = len.min(n);
        let bins = if onesided { n / 2 + 1 } else { n };
        let scale = if inverse { 1.0 / n as f64 } else { 1.0 };
        let c = table(cx, rows, bins, |t, k| twiddle(k, t, n).0 * scale)?;
        let s = table(cx, rows, bins, |t, k| twiddle(k, t, n).1 * scale)?;
        let a0 = crop_last(cx, re, rows)?;
        let ac = mm(cx, a0, c)?;
        let as_ = mm(cx, a0, s)?;
        let (mut yr, mut yi) = if inverse {
            (ac, as_)
        } else {
            (ac, cx.emit1(Op::Unary(UnaryOp::Neg), &[as_])?)
        };
        if let Some(im) = im {
            let b0 = crop_last(cx, im, rows)?;
            let bc = mm(cx, b0, c)?;
            let bs = mm(cx, b0, s)?;
            let op = if inverse {
                BinaryOp::Sub
            } else {
                BinaryOp::Add
            };
            yr = bin(cx, op, yr, bs)?;
            yi = bin(cx, BinaryOp::Add, yi, bc)?;
        }
        vec![yr, yi]
    };
    // Back to the input's axis order, parts stacked on a new last axis.
    let k = dims_of(cx, outs[0]).last().copied().unwrap_or(0);
    base[a] = k;
    let mut stacked = Vec::with_capacity(outs.len());
    for o in outs {
        let o = if back.iter().enumerate().all(|(i, &p)| i == p) {
            o
        } else {
            cx.emit1(Op::Transpose { perm: back.clone() }, &[o])?
        };
        let mut dims = base.clone();
        dims.push(1);
        stacked.push(reshape(cx, o, dims)?);
    }
    let y = if stacked.len() == 1 {
        stacked[0]
    } else {
        cx.emit1(Op::Concat { axis: r - 1 }, &stacked)?
    };
    if dt == DType::F64 {
        return Ok(vec![y]);
    }
    Ok(vec![cx.emit1(Op::Cast { to: dt }, &[y])?])
}

/// The first `n` elements along the last axis of `v` (all of them if it has no more).
fn crop_last(cx: &mut Ctx, v: ValueId, n: usize) -> R<ValueId> {
    let d = dims_of(cx, v);
    let last = d.len() - 1;
    if d[last] <= n {
        return Ok(v);
    }
    cx.emit1(
        Op::Slice {
            axes: vec![last],
            starts: vec![0],
            ends: vec![n as i64],
            steps: vec![1],
        },
        &[v],
    )
}
