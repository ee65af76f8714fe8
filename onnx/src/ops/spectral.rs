//! `DFT` (and `STFT`, framed by a gather and windowed first) as matrix products with
//! constant cosine and sine tables: the signal axis moved last, its real and imaginary parts multiplied (in f64) by `[L, K]` twiddle matrices,
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
//!
//! `MelWeightMatrix` is a constant built here from its (import-time) scalar inputs.

use std::f64::consts::PI;

use tessera_ir::{BinaryOp, DType, Op, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator, axis, dims_of, reshape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("DFT", dft),
    ("STFT", stft),
    ("MelWeightMatrix", mel_weight_matrix),
];

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
    Ok(vec![transform(cx, x, a, n, inverse, onesided)?])
}

/// The DFT of `x` (`[..., 1 or 2]`, float) along axis `a` over `n` points.
fn transform(
    cx: &mut Ctx,
    x: ValueId,
    a: usize,
    n: usize,
    inverse: bool,
    onesided: bool,
) -> R<ValueId> {
    let d = dims_of(cx, x);
    let r = d.len();
    let dt = cx.ty(x).dtype;
    let len = d[a];
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
        return Ok(y);
    }
    cx.emit1(Op::Cast { to: dt }, &[y])
}

/// `STFT(signal [B, L, 1 or 2], frame_step, window?, frame_length?)`: frames of
/// `frame_length` every `frame_step` samples (one `Gather` at constant indices), times the
/// window, each transformed over its length (`onesided`, the default, keeps
/// `frame_length/2 + 1` bins): `[B, frames, bins, 2]`.
fn stft(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    let dt = cx.ty(x).dtype;
    if !dt.is_float() || d.len() != 3 || !matches!(d[2], 1 | 2) {
        return Err(cx.err(format!(
            "signal is {dt} {}, expected a float [batch, length, 1 or 2]",
            cx.ty(x).shape
        )));
    }
    let one = |cx: &Ctx, k: usize, what: &str| -> R<Option<usize>> {
        match cx.ints_input(k)? {
            None => Ok(None),
            Some(v) if v.len() == 1 && v[0] > 0 => Ok(Some(v[0] as usize)),
            Some(v) => Err(cx.err(format!("{what} {v:?} must be one positive value"))),
        }
    };
    let step = one(cx, 1, "frame_step")?.ok_or_else(|| cx.err("frame_step is missing"))?;
    let window = cx.opt_input(2);
    let wlen = window.map(|w| dims_of(cx, w));
    let fl = match (one(cx, 3, "frame_length")?, &wlen) {
        (Some(l), Some(w)) if w.as_slice() != [l] => {
            return Err(cx.err(format!(
                "the window has shape {w:?}, but frame_length is {l}"
            )));
        }
        (Some(l), _) => l,
        (None, Some(w)) if w.len() == 1 => w[0],
        (None, Some(w)) => return Err(cx.err(format!("the window has shape {w:?}, expected 1-D"))),
        (None, None) => d[1],
    };
    if fl > d[1] {
        return Err(cx.err(format!(
            "frame_length {fl} is longer than the signal's {}",
            d[1]
        )));
    }
    let frames = (d[1] - fl) / step + 1;
    cx.check_built("the frame indices", frames.saturating_mul(fl))?;
    let idx: Vec<i64> = (0..frames)
        .flat_map(|f| (0..fl).map(move |t| (f * step + t) as i64))
        .collect();
    let s = Shape::new(vec![frames, fl]).map_err(|e| cx.err(e.to_string()))?;
    let idx = Tensor::from_vec(s, idx).map_err(|e| cx.err(e.to_string()))?;
    let idx = cx.constant(idx);
    let mut framed = cx.emit1(Op::Gather { axis: 1 }, &[x, idx])?;
    if let Some(w) = window {
        if cx.ty(w).dtype != dt {
            return Err(cx.err(format!("the window is {}, the signal {dt}", cx.ty(w).dtype)));
        }
        let w = reshape(cx, w, vec![1, 1, fl, 1])?;
        framed = cx.emit1(Op::Binary(BinaryOp::Mul), &[framed, w])?;
    }
    let onesided = cx.attr_int("onesided")?.unwrap_or(1) != 0;
    Ok(vec![transform(cx, framed, 2, fl, false, onesided)?])
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

/// `MelWeightMatrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz,
/// upper_edge_hertz)`: a constant `[dft_length/2 + 1, num_mel_bins]` matrix of triangular
/// filters, computed as the ONNX reference does (mel scale `2595·log10(1 + f/700)`,
/// `num_mel_bins + 2` equally spaced points, floored to spectrogram bins). Every input
/// fixes the output, so all must be known at import.
fn mel_weight_matrix(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let scalar = |cx: &Ctx, k: usize, what: &str| -> R<f64> {
        let t = cx
            .const_input(k)?
            .ok_or_else(|| cx.err(format!("{what} is missing")))?;
        match t.to_f64_vec().as_slice() {
            [v] => Ok(*v),
            _ => Err(cx.err(format!(
                "{what} has shape {}, expected one value",
                t.shape()
            ))),
        }
    };
    let bins = scalar(cx, 0, "num_mel_bins")?;
    let dft_length = scalar(cx, 1, "dft_length")?;
    let rate = scalar(cx, 2, "sample_rate")?;
    let (lo, hi) = (
        scalar(cx, 3, "lower_edge_hertz")?,
        scalar(cx, 4, "upper_edge_hertz")?,
    );
    if bins < 1.0 || dft_length < 1.0 || rate <= 0.0 || lo < 0.0 || hi < lo {
        return Err(cx.err(format!(
            "num_mel_bins {bins}, dft_length {dft_length}, sample_rate {rate} and edges \
             {lo}..{hi} Hz must be positive and ordered"
        )));
    }
    let code = cx.attr_int("output_datatype")?.unwrap_or(1);
    let to = crate::tensor::dtype_from_onnx(code as i32).map_err(|m| cx.err(m))?;
    let bins = bins as usize;
    let spec = dft_length as usize / 2 + 1;
    cx.check_built("the mel weight matrix", spec.saturating_mul(bins))?;
    let ln10 = 10f64.ln();
    let mel = |f: f64| 2595.0 * (f / 700.0).ln_1p() / ln10;
    let (mlo, mhi) = (mel(lo), mel(hi));
    let step = (mhi - mlo) / (bins + 2) as f64;
    let points: Vec<i64> = (0..bins + 2)
        .map(|i| {
            let m = i as f64 * step + mlo;
            let f = 700.0 * (m / 2595.0 * ln10).exp_m1();
            ((dft_length + 1.0) * f / rate).floor() as i64
        })
        .collect();
    if let Some(bad) = points.iter().find(|&&p| p < 0 || p as usize >= spec) {
        return Err(cx.err(format!(
            "a filter edge falls on bin {bad}, outside the {spec} spectrogram bins"
        )));
    }
    let mut w = vec![0f64; spec * bins];
    for i in 0..bins {
        let (l, c, h) = (points[i], points[i + 1], points[i + 2]);
        if c == l {
            w[c as usize * bins + i] = 1.0;
        } else {
            for j in l..=c {
                w[j as usize * bins + i] = (j - l) as f64 / (c - l) as f64;
            }
        }
        if h > c {
            for j in c..h {
                w[j as usize * bins + i] = (h - j) as f64 / (h - c) as f64;
            }
        }
    }
    let s = Shape::new(vec![spec, bins]).map_err(|e| cx.err(e.to_string()))?;
    let t = Tensor::from_vec(s, w).map_err(|e| cx.err(e.to_string()))?;
    Ok(vec![cx.constant(t.cast(to))])
}
