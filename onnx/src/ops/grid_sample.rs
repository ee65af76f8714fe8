//! `GridSample`, and `DeformConv` and `RoiAlign`, whose taps and bins are bilinear samples
//! too (see [`deform_conv`], [`roi_align`]).
//!
//! `GridSample`: `X [N, C, S₁..S_d]` sampled at the run-time points of
//! `grid [N, O₁..O_k, d]` (normalized to `[−1, 1]`, the last component indexing the first
//! spatial axis last), as the ONNX reference computes it. Per spatial axis the
//! coordinate is denormalized (`align_corners`), rounded half to even for `nearest`,
//! moved back inside by clamping (`border`) or reflecting (`reflection`) when it lies
//! outside, and split into taps (1 for `nearest`, 2 for `linear`, 4 with Keys' cubic
//! weights, `a = −0.75`, for `cubic`), each tap's index clamped, reflected or masked to
//! zero (`zeros`). The output is `Σ_taps (Π_axes wᵢ) · X[flat index]`, one
//! `GatherElements` of the flattened spatial axes per tap combination.
//!
//! Checked against onnxruntime on random grids reaching past the borders for every mode,
//! padding and `align_corners` (2-d and 3-d): equal within 2e-5 except `cubic` with
//! `border`, where onnxruntime (like PyTorch) clamps only the tap indices while the ONNX
//! reference, followed here and by the node tests, clamps the coordinate first as well.

use tessera_ir::{BinaryOp, DType, Op, ReduceOp, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator, dims_of, reshape, shape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("GridSample", grid_sample),
    ("DeformConv", deform_conv),
    ("RoiAlign", roi_align),
];

/// The most tap combinations one node expands into (cubic in 3-d is 64).
const MAX_TAPS: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Padding {
    Zeros,
    Border,
    Reflection,
}

/// Expression helpers over values of the compute dtype.
struct G<'c, 'a, 'b> {
    cx: &'c mut Ctx<'a, 'b>,
    dtype: DType,
}

impl G<'_, '_, '_> {
    fn c(&mut self, v: f64) -> ValueId {
        self.cx
            .constant(Tensor::full(self.dtype, Shape::scalar(), v))
    }

    fn bin(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> R<ValueId> {
        self.cx.emit1(Op::Binary(op), &[a, b])
    }

    fn bin_c(&mut self, op: BinaryOp, a: ValueId, c: f64) -> R<ValueId> {
        let c = self.c(c);
        self.bin(op, a, c)
    }

    fn un(&mut self, op: UnaryOp, a: ValueId) -> R<ValueId> {
        self.cx.emit1(Op::Unary(op), &[a])
    }

    fn select(&mut self, m: ValueId, a: ValueId, b: ValueId) -> R<ValueId> {
        self.cx.emit1(Op::Where, &[m, a, b])
    }

    fn clip(&mut self, x: ValueId, lo: f64, hi: f64) -> R<ValueId> {
        self.cx.emit1(Op::Clip { min: lo, max: hi }, &[x])
    }

    /// `x < lo || x > hi`.
    fn outside(&mut self, x: ValueId, lo: f64, hi: f64) -> R<ValueId> {
        let below = self.bin_c(BinaryOp::Less, x, lo)?;
        let above = self.bin_c(BinaryOp::Greater, x, hi)?;
        self.bin(BinaryOp::Or, below, above)
    }

    /// `x` reflected at `lo` and `hi` until inside (the reference's `_gs_reflect`); `x`
    /// itself where inside.
    fn reflect(&mut self, x: ValueId, lo: f64, hi: f64) -> R<ValueId> {
        let range = hi - lo;
        if range <= 0.0 {
            let c = self.c(lo);
            let zero = self.c(0.0);
            let xz = self.bin(BinaryOp::Mul, x, zero)?;
            return self.bin(BinaryOp::Add, xz, c);
        }
        // One side at a time: dx past the border, n whole ranges, r the rest.
        let side = |g: &mut Self, dx: ValueId, near: f64, far: f64, sign: f64| -> R<ValueId> {
            let q = g.bin_c(BinaryOp::Div, dx, range)?;
            let n = g.un(UnaryOp::Floor, q)?;
            let nr = g.bin_c(BinaryOp::Mul, n, range)?;
            let r = g.bin(BinaryOp::Sub, dx, nr)?;
            let half = g.bin_c(BinaryOp::Mul, n, 0.5)?;
            let fh = g.un(UnaryOp::Floor, half)?;
            let even = g.bin(BinaryOp::Equal, fh, half)?;
            // even: near + sign·r; odd: far − sign·r.
            let sr = g.bin_c(BinaryOp::Mul, r, sign)?;
            let a = g.bin_c(BinaryOp::Add, sr, near)?;
            let nf = g.c(far);
            let b = g.bin(BinaryOp::Sub, nf, sr)?;
            g.select(even, a, b)
        };
        let below = self.bin_c(BinaryOp::Less, x, lo)?;
        let above = self.bin_c(BinaryOp::Greater, x, hi)?;
        let lo_c = self.c(lo);
        let d_lo = self.bin(BinaryOp::Sub, lo_c, x)?;
        let d_lo = self.un(UnaryOp::Relu, d_lo)?;
        let from_lo = side(self, d_lo, lo, hi, 1.0)?;
        let d_hi = self.bin_c(BinaryOp::Sub, x, hi)?;
        let d_hi = self.un(UnaryOp::Relu, d_hi)?;
        let from_hi = side(self, d_hi, hi, lo, -1.0)?;
        let y = self.select(above, from_hi, x)?;
        self.select(below, from_lo, y)
    }
}

/// Keys' cubic convolution weights (`a = −0.75`) of the four taps `x₀ − 1 .. x₀ + 2` for
/// the fraction `t ∈ [0, 1)`, as the reference writes them.
fn cubic_weights(g: &mut G, t: ValueId) -> R<[ValueId; 4]> {
    let a = -0.75;
    // Outer taps at distance s ∈ [1, 2): ((a·s − 5a)·s + 8a)·s − 4a.
    let outer = |g: &mut G, s: ValueId| -> R<ValueId> {
        let p = g.bin_c(BinaryOp::Mul, s, a)?;
        let p = g.bin_c(BinaryOp::Sub, p, 5.0 * a)?;
        let p = g.bin(BinaryOp::Mul, p, s)?;
        let p = g.bin_c(BinaryOp::Add, p, 8.0 * a)?;
        let p = g.bin(BinaryOp::Mul, p, s)?;
        g.bin_c(BinaryOp::Sub, p, 4.0 * a)
    };
    // Inner taps at distance s ∈ [0, 1]: ((a + 2)·s − (a + 3))·s·s + 1.
    let inner = |g: &mut G, s: ValueId| -> R<ValueId> {
        let p = g.bin_c(BinaryOp::Mul, s, a + 2.0)?;
        let p = g.bin_c(BinaryOp::Sub, p, a + 3.0)?;
        let p = g.bin(BinaryOp::Mul, p, s)?;
        let p = g.bin(BinaryOp::Mul, p, s)?;
        g.bin_c(BinaryOp::Add, p, 1.0)
    };
    let one = g.c(1.0);
    let t1 = g.bin_c(BinaryOp::Add, t, 1.0)?;
    let omt = g.bin(BinaryOp::Sub, one, t)?;
    let two = g.c(2.0);
    let tmt = g.bin(BinaryOp::Sub, two, t)?;
    Ok([outer(g, t1)?, inner(g, t)?, inner(g, omt)?, outer(g, tmt)?])
}

fn grid_sample(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, grid) = (cx.input(0)?, cx.input(1)?);
    let xd = dims_of(cx, x);
    let gd = dims_of(cx, grid);
    let dt = cx.ty(x).dtype;
    if !dt.is_float() || cx.ty(grid).dtype != dt {
        return Err(cx.err(format!(
            "X is {dt} and grid {}, expected one float dtype",
            cx.ty(grid).dtype
        )));
    }
    if xd.len() < 3 || gd.len() != xd.len() || gd[0] != xd[0] || gd[gd.len() - 1] != xd.len() - 2 {
        return Err(cx.err(format!(
            "X {} and grid {} must be [N, C, S₁..S_d] and [N, O₁..O_d, d]",
            cx.ty(x).shape,
            cx.ty(grid).shape
        )));
    }
    let mode = match cx.attr_string("mode")?.as_deref() {
        None | Some("linear") | Some("bilinear") => Mode::Linear,
        Some("nearest") => Mode::Nearest,
        Some("cubic") | Some("bicubic") => Mode::Cubic,
        Some(other) => return Err(cx.err(format!("unknown mode {other:?}"))),
    };
    let padding = match cx.attr_string("padding_mode")?.as_deref() {
        None | Some("zeros") => Padding::Zeros,
        Some("border") => Padding::Border,
        Some("reflection") => Padding::Reflection,
        Some(other) => return Err(cx.err(format!("unknown padding_mode {other:?}"))),
    };
    let align = cx.attr_int("align_corners")?.unwrap_or(0) != 0;
    let d = xd.len() - 2;
    let taps_per_axis = match mode {
        Mode::Nearest => 1,
        Mode::Linear => 2,
        Mode::Cubic => 4,
    };
    let combos = (0..d).try_fold(1usize, |acc, _| acc.checked_mul(taps_per_axis));
    let Some(combos) = combos.filter(|&c| c <= MAX_TAPS) else {
        return Err(cx.err(format!(
            "{d} spatial axes with {taps_per_axis} taps each is more than {MAX_TAPS} tap combinations"
        )));
    };
    let (n, c) = (xd[0], xd[1]);
    let sp = &xd[2..];
    let points: usize = gd[1..gd.len() - 1].iter().product();
    let size: usize = sp.iter().product();

    // Compute in f32 for half-precision inputs.
    let cd = if matches!(dt, DType::F16 | DType::BF16) {
        DType::F32
    } else {
        dt
    };
    let widen = |cx: &mut Ctx, v: ValueId| -> R<ValueId> {
        if cx.ty(v).dtype == cd {
            Ok(v)
        } else {
            cx.emit1(Op::Cast { to: cd }, &[v])
        }
    };
    let xw = widen(cx, x)?;
    let gw = widen(cx, grid)?;
    let gw = reshape(cx, gw, vec![n, points, d])?;
    let comps = if d == 1 {
        vec![gw]
    } else {
        cx.emit(
            Op::Split {
                axis: 2,
                sizes: vec![1; d],
            },
            &[gw],
        )?
    };
    let mut g = G { cx, dtype: cd };

    // Per spatial axis i: its taps as (index [N, P] i64, weight [N, P] or none).
    let mut axes: Vec<Vec<(ValueId, Option<ValueId>)>> = Vec::with_capacity(d);
    for (i, &len) in sp.iter().enumerate() {
        let l = len as f64;
        let u = reshape(g.cx, comps[d - 1 - i], vec![n, points])?;
        // Denormalize.
        let mut v = if align {
            let p = g.bin_c(BinaryOp::Add, u, 1.0)?;
            g.bin_c(BinaryOp::Mul, p, (l - 1.0) / 2.0)?
        } else {
            let p = g.bin_c(BinaryOp::Add, u, 1.0)?;
            let p = g.bin_c(BinaryOp::Mul, p, l)?;
            let p = g.bin_c(BinaryOp::Sub, p, 1.0)?;
            g.bin_c(BinaryOp::Mul, p, 0.5)?
        };
        if mode == Mode::Nearest {
            v = g.un(UnaryOp::Round, v)?;
        }
        let (lo, hi) = if align {
            (0.0, l - 1.0)
        } else {
            (-0.5, l - 0.5)
        };
        match padding {
            Padding::Zeros => {}
            Padding::Border => {
                let out = g.outside(v, lo, hi)?;
                let cl = g.clip(v, 0.0, l - 1.0)?;
                v = g.select(out, cl, v)?;
            }
            Padding::Reflection => v = g.reflect(v, lo, hi)?,
        }
        // The taps: integer positions (as floats) and weights.
        let taps: Vec<(ValueId, Option<ValueId>)> = match mode {
            Mode::Nearest => vec![(v, None)],
            Mode::Linear | Mode::Cubic => {
                let x0 = g.un(UnaryOp::Floor, v)?;
                let t = g.bin(BinaryOp::Sub, v, x0)?;
                if mode == Mode::Linear {
                    let one = g.c(1.0);
                    let w0 = g.bin(BinaryOp::Sub, one, t)?;
                    let x1 = g.bin_c(BinaryOp::Add, x0, 1.0)?;
                    vec![(x0, Some(w0)), (x1, Some(t))]
                } else {
                    let w = cubic_weights(&mut g, t)?;
                    let mut out = Vec::with_capacity(4);
                    for (k, wk) in w.into_iter().enumerate() {
                        let xk = g.bin_c(BinaryOp::Add, x0, k as f64 - 1.0)?;
                        out.push((xk, Some(wk)));
                    }
                    out
                }
            }
        };
        // Each tap's index inside the axis, and for zeros padding its in-range mask
        // folded into the weight.
        let mut resolved = Vec::with_capacity(taps.len());
        for (pos, w) in taps {
            let (idx, w) = match padding {
                Padding::Zeros => {
                    let out = g.outside(pos, 0.0, l - 1.0)?;
                    let zero = g.c(0.0);
                    let w = match w {
                        Some(w) => g.select(out, zero, w)?,
                        None => {
                            let one = g.c(1.0);
                            g.select(out, zero, one)?
                        }
                    };
                    (g.clip(pos, 0.0, l - 1.0)?, Some(w))
                }
                Padding::Border => (g.clip(pos, 0.0, l - 1.0)?, w),
                Padding::Reflection => {
                    let r = g.reflect(pos, lo, hi)?;
                    // The reference truncates toward zero; clamp against rounding.
                    let r = g.clip(r, 0.0, l - 1.0)?;
                    (g.un(UnaryOp::Floor, r)?, w)
                }
            };
            let idx = g.cx.emit1(Op::Cast { to: DType::I64 }, &[idx])?;
            resolved.push((idx, w));
        }
        axes.push(resolved);
    }

    // Σ over tap combinations of Π weights · X[flat index].
    let strides: Vec<usize> = (0..d).map(|i| sp[i + 1..].iter().product()).collect();
    let xf = reshape(g.cx, xw, vec![n, c, size])?;
    let full = shape(g.cx, vec![n, c, points])?;
    let mut acc: Option<ValueId> = None;
    for combo in 0..combos {
        let mut rest = combo;
        let mut flat: Option<ValueId> = None;
        let mut weight: Option<ValueId> = None;
        for (i, taps) in axes.iter().enumerate() {
            let (idx, w) = taps[rest % taps_per_axis];
            rest /= taps_per_axis;
            let stride =
                g.cx.constant(Tensor::full(DType::I64, Shape::scalar(), strides[i] as f64));
            let part = g.bin(BinaryOp::Mul, idx, stride)?;
            flat = Some(match flat {
                None => part,
                Some(f) => g.bin(BinaryOp::Add, f, part)?,
            });
            weight = match (weight, w) {
                (None, w) => w,
                (w, None) => w,
                (Some(a), Some(b)) => Some(g.bin(BinaryOp::Mul, a, b)?),
            };
        }
        let flat = flat.ok_or_else(|| g.cx.err("no spatial axes (importer bug)"))?;
        let flat = reshape(g.cx, flat, vec![n, 1, points])?;
        let flat = g.cx.emit1(
            Op::Expand {
                shape: full.clone(),
            },
            &[flat],
        )?;
        let mut term = g.cx.emit1(Op::GatherElements { axis: 2 }, &[xf, flat])?;
        if let Some(w) = weight {
            let w = reshape(g.cx, w, vec![n, 1, points])?;
            term = g.bin(BinaryOp::Mul, term, w)?;
        }
        acc = Some(match acc {
            None => term,
            Some(a) => g.bin(BinaryOp::Add, a, term)?,
        });
    }
    let cx = g.cx;
    let y = acc.ok_or_else(|| cx.err("no taps (importer bug)"))?;
    let mut out = vec![n, c];
    out.extend_from_slice(&gd[1..gd.len() - 1]);
    let y = reshape(cx, y, out)?;
    if cd != dt {
        return Ok(vec![cx.emit1(Op::Cast { to: dt }, &[y])?]);
    }
    Ok(vec![y])
}

/// `DeformConv(X, W, offset, B?, mask?)` (2-d): a convolution whose taps sample `X`
/// bilinearly (zeros outside) at their regular position plus a learned offset, the
/// sampling the ONNX reference does through `GridSample` with `align_corners`. Per offset
/// group and kernel tap, the four corners are gathered from that group's channels and
/// weighted (and masked); the columns `[N, C·K, P]` are then multiplied by `W` per group,
/// as im2col would.
fn deform_conv(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, w, off) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let (bias, mask) = (cx.opt_input(3), cx.opt_input(4));
    let (xd, wd, od) = (dims_of(cx, x), dims_of(cx, w), dims_of(cx, off));
    let dt = cx.ty(x).dtype;
    if !dt.is_float() || [w, off].iter().any(|&v| cx.ty(v).dtype != dt) {
        return Err(cx.err("X, W and offset must share one float dtype"));
    }
    if xd.len() != 4 || wd.len() != 4 || od.len() != 4 {
        return Err(cx.err(format!(
            "X {}, W {} and offset {} must be rank 4 (2-d deformable convolution)",
            cx.ty(x).shape,
            cx.ty(w).shape,
            cx.ty(off).shape
        )));
    }
    let (n, c, ih, iw) = (xd[0], xd[1], xd[2], xd[3]);
    let (m, cg, kh, kw) = (wd[0], wd[1], wd[2], wd[3]);
    // Every count below is at most the element limit, so their products of two or three
    // stay inside 64 bits.
    let bounded = |v: i64| v.clamp(0, tessera_ir::MAX_ELEMENTS as i64) as usize;
    let group = bounded(cx.attr_int("group")?.unwrap_or(1));
    let og = bounded(cx.attr_int("offset_group")?.unwrap_or(1));
    let k = kh.saturating_mul(kw);
    if group == 0
        || cg.checked_mul(group) != Some(c)
        || !m.is_multiple_of(group)
        || og == 0
        || !c.is_multiple_of(og)
        || og
            .checked_mul(k)
            .is_none_or(|t| t as u64 > tessera_ir::MAX_ELEMENTS)
    {
        return Err(cx.err(format!(
            "channels do not match: X has {c}, W is {}, group {group}, offset_group {og}",
            cx.ty(w).shape
        )));
    }
    let ints = |cx: &Ctx, name: &str, dflt: Vec<i64>| -> R<Vec<i64>> {
        Ok(cx.attr_ints(name)?.unwrap_or(dflt))
    };
    let strides = ints(cx, "strides", vec![1, 1])?;
    let dil = ints(cx, "dilations", vec![1, 1])?;
    let pads = ints(cx, "pads", vec![0; 4])?;
    if strides.len() != 2 || dil.len() != 2 || pads.len() != 4 {
        return Err(cx.err("strides, dilations and pads must have 2, 2 and 4 values"));
    }
    let huge = tessera_ir::MAX_ELEMENTS as i64;
    if strides.iter().chain(&dil).any(|&v| v <= 0 || v > huge)
        || pads.iter().any(|&p| !(0..=huge).contains(&p))
    {
        return Err(cx.err(format!(
            "strides {strides:?} and dilations {dil:?} must be positive and pads {pads:?} \
             non-negative, each at most {huge}"
        )));
    }
    let (oh, ow) = (od[2], od[3]);
    if od[0] != n || od[1] != og * k * 2 {
        return Err(cx.err(format!(
            "offset has shape {}, expected [{n}, {}, OH, OW]",
            cx.ty(off).shape,
            og * k * 2
        )));
    }
    for (i, (&len, &o)) in [ih, iw].iter().zip(&[oh, ow]).enumerate() {
        let span = dil[i] as f64 * (wd[2 + i] as f64 - 1.0) + 1.0;
        let want =
            ((len as f64 - span + (pads[i] + pads[2 + i]) as f64) / strides[i] as f64) as i64 + 1;
        if want != o as i64 {
            return Err(cx.err(format!(
                "the offset's spatial size {oh}×{ow} does not match the convolution's output"
            )));
        }
    }
    if let Some(mk) = mask
        && dims_of(cx, mk) != [n, og * k, oh, ow]
    {
        return Err(cx.err(format!(
            "mask has shape {}, expected [{n}, {}, {oh}, {ow}]",
            cx.ty(mk).shape,
            og * k
        )));
    }
    let p = oh.saturating_mul(ow);
    cx.check_built("the sampling grid", p)?;
    let cd = if matches!(dt, DType::F16 | DType::BF16) {
        DType::F32
    } else {
        dt
    };
    let widen = |cx: &mut Ctx, v: ValueId| -> R<ValueId> {
        if cx.ty(v).dtype == cd {
            Ok(v)
        } else {
            cx.emit1(Op::Cast { to: cd }, &[v])
        }
    };
    let xw = widen(cx, x)?;
    let offw = widen(cx, off)?;
    let offs = reshape(cx, offw, vec![n, og * k * 2, p])?;
    let offs = cx.emit(
        Op::Split {
            axis: 1,
            sizes: vec![1; og * k * 2],
        },
        &[offs],
    )?;
    let masks = match mask {
        Some(mk) => {
            let mk = widen(cx, mk)?;
            let mk = reshape(cx, mk, vec![n, og * k, p])?;
            let parts = if og * k == 1 {
                vec![mk]
            } else {
                cx.emit(
                    Op::Split {
                        axis: 1,
                        sizes: vec![1; og * k],
                    },
                    &[mk],
                )?
            };
            parts.into_iter().map(Some).collect()
        }
        None => vec![None; og * k],
    };
    let cpo = c / og;
    let xf = reshape(cx, xw, vec![n, c, ih * iw])?;
    let xgs = if og == 1 {
        vec![xf]
    } else {
        cx.emit(
            Op::Split {
                axis: 1,
                sizes: vec![cpo; og],
            },
            &[xf],
        )?
    };
    let mut g = G { cx, dtype: cd };
    // The regular sampling grid: row and column of each output position, [1, P].
    let grid = |g: &mut G, axis: usize| -> R<ValueId> {
        let v: Vec<f64> = (0..p)
            .map(|q| {
                let (i, j) = (q / ow, q % ow);
                let o = if axis == 0 { i } else { j };
                o as f64 * strides[axis] as f64 - pads[axis] as f64
            })
            .collect();
        let s = shape(g.cx, vec![1, p])?;
        let t = Tensor::from_vec(s, v).map_err(|e| g.cx.err(e.to_string()))?;
        Ok(g.cx.constant(t.cast(cd)))
    };
    let (gy, gx) = (grid(&mut g, 0)?, grid(&mut g, 1)?);
    let full = shape(g.cx, vec![n, cpo, p])?;
    let mut cols = Vec::with_capacity(og);
    for gi in 0..og {
        let mut taps = Vec::with_capacity(k);
        for t in 0..k {
            let (a, b) = (t / kw, t % kw);
            let base = (gi * k + t) * 2;
            let dy = reshape(g.cx, offs[base], vec![n, p])?;
            let dx = reshape(g.cx, offs[base + 1], vec![n, p])?;
            let y = g.bin(BinaryOp::Add, gy, dy)?;
            let y = g.bin_c(BinaryOp::Add, y, (a as i64 * dil[0]) as f64)?;
            let xx = g.bin(BinaryOp::Add, gx, dx)?;
            let xx = g.bin_c(BinaryOp::Add, xx, (b as i64 * dil[1]) as f64)?;
            let y0 = g.un(UnaryOp::Floor, y)?;
            let x0 = g.un(UnaryOp::Floor, xx)?;
            let ty = g.bin(BinaryOp::Sub, y, y0)?;
            let tx = g.bin(BinaryOp::Sub, xx, x0)?;
            let one = g.c(1.0);
            let wy = [g.bin(BinaryOp::Sub, one, ty)?, ty];
            let wx = [g.bin(BinaryOp::Sub, one, tx)?, tx];
            let y1 = g.bin_c(BinaryOp::Add, y0, 1.0)?;
            let x1 = g.bin_c(BinaryOp::Add, x0, 1.0)?;
            let mut acc: Option<ValueId> = None;
            for (yi, &yv) in [y0, y1].iter().enumerate() {
                for (xi, &xv) in [x0, x1].iter().enumerate() {
                    let oy = g.outside(yv, 0.0, ih as f64 - 1.0)?;
                    let ox = g.outside(xv, 0.0, iw as f64 - 1.0)?;
                    let out = g.bin(BinaryOp::Or, oy, ox)?;
                    let wgt = g.bin(BinaryOp::Mul, wy[yi], wx[xi])?;
                    let zero = g.c(0.0);
                    let wgt = g.select(out, zero, wgt)?;
                    let yc = g.clip(yv, 0.0, ih as f64 - 1.0)?;
                    let xc = g.clip(xv, 0.0, iw as f64 - 1.0)?;
                    let flat = g.bin_c(BinaryOp::Mul, yc, iw as f64)?;
                    let flat = g.bin(BinaryOp::Add, flat, xc)?;
                    let flat = g.cx.emit1(Op::Cast { to: DType::I64 }, &[flat])?;
                    let flat = reshape(g.cx, flat, vec![n, 1, p])?;
                    let flat = g.cx.emit1(
                        Op::Expand {
                            shape: full.clone(),
                        },
                        &[flat],
                    )?;
                    let v =
                        g.cx.emit1(Op::GatherElements { axis: 2 }, &[xgs[gi], flat])?;
                    let wgt = reshape(g.cx, wgt, vec![n, 1, p])?;
                    let term = g.bin(BinaryOp::Mul, v, wgt)?;
                    acc = Some(match acc {
                        None => term,
                        Some(s) => g.bin(BinaryOp::Add, s, term)?,
                    });
                }
            }
            let mut col = acc.ok_or_else(|| g.cx.err("no corners (importer bug)"))?;
            if let Some(mk) = masks[gi * k + t] {
                col = g.bin(BinaryOp::Mul, col, mk)?;
            }
            taps.push(reshape(g.cx, col, vec![n, cpo, 1, p])?);
        }
        cols.push(if k == 1 {
            taps[0]
        } else {
            g.cx.emit1(Op::Concat { axis: 2 }, &taps)?
        });
    }
    let cx = g.cx;
    // [N, C, K, P] → per group [N, C/group·K, P] times W [M/group, C/group·K].
    let cols = if og == 1 {
        cols[0]
    } else {
        cx.emit1(Op::Concat { axis: 1 }, &cols)?
    };
    let cols = reshape(cx, cols, vec![n, c * k, p])?;
    let ww = widen(cx, w)?;
    let ww = reshape(cx, ww, vec![m, cg * k])?;
    let (col_g, w_g) = if group == 1 {
        (vec![cols], vec![ww])
    } else {
        (
            cx.emit(
                Op::Split {
                    axis: 1,
                    sizes: vec![cg * k; group],
                },
                &[cols],
            )?,
            cx.emit(
                Op::Split {
                    axis: 0,
                    sizes: vec![m / group; group],
                },
                &[ww],
            )?,
        )
    };
    let mut outs = Vec::with_capacity(group);
    for (cgv, wgv) in col_g.into_iter().zip(w_g) {
        outs.push(cx.emit1(Op::MatMul, &[wgv, cgv])?);
    }
    let mut y = if outs.len() == 1 {
        outs[0]
    } else {
        cx.emit1(Op::Concat { axis: 1 }, &outs)?
    };
    if let Some(b) = bias {
        if dims_of(cx, b) != [m] {
            return Err(cx.err(format!("B has shape {}, expected [{m}]", cx.ty(b).shape)));
        }
        let b = widen(cx, b)?;
        let b = reshape(cx, b, vec![1, m, 1])?;
        y = cx.emit1(Op::Binary(BinaryOp::Add), &[y, b])?;
    }
    let y = reshape(cx, y, vec![n, m, oh, ow])?;
    if cd != dt {
        return Ok(vec![cx.emit1(Op::Cast { to: dt }, &[y])?]);
    }
    Ok(vec![y])
}

/// `RoiAlign(X, rois [R, 4], batch_indices [R])`: per region and output bin, the average
/// (or maximum) of `sampling_ratio²` bilinear samples, with the reference's edge rules
/// (a sample more than one pixel outside counts as 0; coordinates clamp at 0 and at the
/// last row or column). The regions are run-time values: the sample coordinates are
/// `[R, S]` tensors built from each region's start and bin size, the region's image is
/// gathered by batch index and the four corners by `GatherElements`. The adaptive
/// `sampling_ratio` 0 (a per-region sample count) is not supported.
fn roi_align(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, rois, bidx) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let xd = dims_of(cx, x);
    let dt = cx.ty(x).dtype;
    if !dt.is_float() || xd.len() != 4 || cx.ty(rois).dtype != dt {
        return Err(cx.err(format!(
            "X {} and rois {} must be float [N, C, H, W] and [R, 4] of one dtype",
            cx.ty(x),
            cx.ty(rois)
        )));
    }
    let rd = dims_of(cx, rois);
    if rd.len() != 2 || rd[1] != 4 || dims_of(cx, bidx) != [rd[0]] {
        return Err(cx.err(format!(
            "rois {} and batch_indices {} must be [R, 4] and [R]",
            cx.ty(rois).shape,
            cx.ty(bidx).shape
        )));
    }
    let (c, h, w, r) = (xd[1], xd[2], xd[3], rd[0]);
    let oh = cx.attr_int("output_height")?.unwrap_or(1);
    let ow = cx.attr_int("output_width")?.unwrap_or(1);
    let sr = cx.attr_int("sampling_ratio")?.unwrap_or(0);
    if oh <= 0 || ow <= 0 {
        return Err(cx.err("output_height and output_width must be positive"));
    }
    if sr <= 0 {
        return Err(
            cx.err("sampling_ratio 0 (a sample count per region from its size) is not supported")
        );
    }
    let (oh, ow, sr) = (oh as usize, ow as usize, sr as usize);
    let scale = f64::from(cx.attr_float("spatial_scale")?.unwrap_or(1.0));
    let half = match cx.attr_string("coordinate_transformation_mode")?.as_deref() {
        None | Some("half_pixel") => true,
        Some("output_half_pixel") => false,
        Some(other) => {
            return Err(cx.err(format!("unknown coordinate_transformation_mode {other:?}")));
        }
    };
    let max = match cx.attr_string("mode")?.as_deref() {
        None | Some("avg") => false,
        Some("max") => true,
        Some(other) => return Err(cx.err(format!("unknown mode {other:?}"))),
    };
    if h == 0 || w == 0 {
        return Err(cx.err(format!("X {} has an empty image", cx.ty(x).shape)));
    }
    let s = oh
        .checked_mul(ow)
        .and_then(|n| n.checked_mul(sr))
        .and_then(|n| n.checked_mul(sr))
        .unwrap_or(usize::MAX);
    cx.check_built("the RoiAlign sample grid", s)?;
    let cd = if matches!(dt, DType::F16 | DType::BF16) {
        DType::F32
    } else {
        dt
    };
    let xw = if cd == dt {
        x
    } else {
        cx.emit1(Op::Cast { to: cd }, &[x])?
    };
    let rw = if cd == dt {
        rois
    } else {
        cx.emit1(Op::Cast { to: cd }, &[rois])?
    };
    let parts = cx.emit(
        Op::Split {
            axis: 1,
            sizes: vec![1; 4],
        },
        &[rw],
    )?;
    let bi = if cx.ty(bidx).dtype == DType::I64 {
        bidx
    } else {
        cx.emit1(Op::Cast { to: DType::I64 }, &[bidx])?
    };
    let img = cx.emit1(Op::Gather { axis: 0 }, &[xw, bi])?;
    let img = reshape(cx, img, vec![r, c, h.saturating_mul(w)])?;
    let mut g = G { cx, dtype: cd };
    let off = if half { 0.5 } else { 0.0 };
    let lin = |g: &mut G, v: ValueId| -> R<ValueId> {
        let v = g.bin_c(BinaryOp::Mul, v, scale)?;
        g.bin_c(BinaryOp::Sub, v, off)
    };
    let (x1, y1) = (lin(&mut g, parts[0])?, lin(&mut g, parts[1])?);
    let (x2, y2) = (lin(&mut g, parts[2])?, lin(&mut g, parts[3])?);
    let size = |g: &mut G, a: ValueId, b: ValueId, bins: usize| -> R<ValueId> {
        let mut d = g.bin(BinaryOp::Sub, b, a)?;
        if !half {
            d = g.bin_c(BinaryOp::Max, d, 1.0)?;
        }
        g.bin_c(BinaryOp::Div, d, bins as f64)
    };
    let bw = size(&mut g, x1, x2, ow)?;
    let bh = size(&mut g, y1, y2, oh)?;
    // Sample s = ((ph·ow + pw)·sr + iy)·sr + ix at start + (p + (i + 0.5)/sr)·bin.
    let steps = |g: &mut G, rows: bool| -> R<ValueId> {
        let v: Vec<f64> = (0..s)
            .map(|q| {
                let ix = q % sr;
                let iy = (q / sr) % sr;
                let pw = (q / (sr * sr)) % ow;
                let ph = q / (sr * sr * ow);
                if rows {
                    ph as f64 + (iy as f64 + 0.5) / sr as f64
                } else {
                    pw as f64 + (ix as f64 + 0.5) / sr as f64
                }
            })
            .collect();
        let sh = shape(g.cx, vec![1, s])?;
        let t = Tensor::from_vec(sh, v).map_err(|e| g.cx.err(e.to_string()))?;
        Ok(g.cx.constant(t.cast(cd)))
    };
    let (sy, sx) = (steps(&mut g, true)?, steps(&mut g, false)?);
    let yy = g.bin(BinaryOp::Mul, sy, bh)?;
    let yy = g.bin(BinaryOp::Add, y1, yy)?;
    let xx = g.bin(BinaryOp::Mul, sx, bw)?;
    let xx = g.bin(BinaryOp::Add, x1, xx)?;
    let oy = g.outside(yy, -1.0, h as f64)?;
    let ox = g.outside(xx, -1.0, w as f64)?;
    let dead = g.bin(BinaryOp::Or, oy, ox)?;
    // Per axis: low and high index and the two weights.
    let axis = |g: &mut G, v: ValueId, len: usize| -> R<(ValueId, ValueId, ValueId, ValueId)> {
        let v = g.bin_c(BinaryOp::Max, v, 0.0)?;
        let lo = g.un(UnaryOp::Floor, v)?;
        let last = (len - 1) as f64;
        let at_end = g.bin_c(BinaryOp::GreaterOrEqual, lo, last)?;
        let lastc = g.c(last);
        let lo = g.select(at_end, lastc, lo)?;
        let v = g.select(at_end, lastc, v)?;
        let hi1 = g.bin_c(BinaryOp::Add, lo, 1.0)?;
        let hi = g.select(at_end, lastc, hi1)?;
        let l = g.bin(BinaryOp::Sub, v, lo)?;
        let one = g.c(1.0);
        let hw = g.bin(BinaryOp::Sub, one, l)?;
        Ok((lo, hi, hw, l))
    };
    let (ylo, yhi, hy, ly) = axis(&mut g, yy, h)?;
    let (xlo, xhi, hx, lx) = axis(&mut g, xx, w)?;
    let full = shape(g.cx, vec![r, c, s])?;
    let mut vals = Vec::with_capacity(4);
    for (yi, wy) in [(ylo, hy), (yhi, ly)] {
        for (xi, wx) in [(xlo, hx), (xhi, lx)] {
            let wgt = g.bin(BinaryOp::Mul, wy, wx)?;
            let zero = g.c(0.0);
            let wgt = g.select(dead, zero, wgt)?;
            let pos = g.bin_c(BinaryOp::Mul, yi, w as f64)?;
            let pos = g.bin(BinaryOp::Add, pos, xi)?;
            let pos = g.select(dead, zero, pos)?;
            let pos = g.cx.emit1(Op::Cast { to: DType::I64 }, &[pos])?;
            let pos = reshape(g.cx, pos, vec![r, 1, s])?;
            let pos = g.cx.emit1(
                Op::Expand {
                    shape: full.clone(),
                },
                &[pos],
            )?;
            let v = g.cx.emit1(Op::GatherElements { axis: 2 }, &[img, pos])?;
            let wgt = reshape(g.cx, wgt, vec![r, 1, s])?;
            vals.push(g.bin(BinaryOp::Mul, v, wgt)?);
        }
    }
    let op = if max { BinaryOp::Max } else { BinaryOp::Add };
    let mut acc = vals[0];
    for &v in &vals[1..] {
        acc = g.bin(op, acc, v)?;
    }
    let cx = g.cx;
    let acc = reshape(cx, acc, vec![r, c, oh, ow, sr * sr])?;
    let red = if max { ReduceOp::Max } else { ReduceOp::Mean };
    let y = cx.emit1(
        Op::Reduce {
            op: red,
            axes: vec![4],
            keep_dims: false,
        },
        &[acc],
    )?;
    if cd != dt {
        return Ok(vec![cx.emit1(Op::Cast { to: dt }, &[y])?]);
    }
    Ok(vec![y])
}
