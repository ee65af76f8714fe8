//! Rules for reductions and normalizations.

use tessera_ir::{BinaryOp, ConvAttrs, Op, ReduceOp, UnaryOp, ValueId};

use crate::PassError;
use crate::train::emit::Emitter;

type Grads = Result<Vec<Option<ValueId>>, PassError>;

/// Reductions: the gradient is broadcast back over the reduced axes (divided by the
/// count for `mean`); `max`/`min` split it evenly between the elements equal to the
/// result; `prod` uses `y / x` (undefined where an element is zero).
pub(super) fn reduce(
    e: &mut Emitter,
    op: ReduceOp,
    axes: &[usize],
    keep_dims: bool,
    x: ValueId,
    y: ValueId,
    g: ValueId,
) -> Grads {
    let xd = e.dims(x);
    let kd: Vec<usize> = xd
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let gk = if keep_dims { g } else { e.reshape(g, &kd)? };
    let dx = match op {
        ReduceOp::Sum => e.expand(gk, &xd)?,
        ReduceOp::Mean => {
            let n: usize = axes.iter().map(|&a| xd[a]).product();
            let s = e.scale(gk, 1.0 / n.max(1) as f64)?;
            e.expand(s, &xd)?
        }
        ReduceOp::Max | ReduceOp::Min => {
            let yk = e.reshape(y, &kd)?;
            let eq = e.binary(BinaryOp::Equal, x, yk)?;
            let m = e.cast(eq, e.dtype(x))?;
            let count = e.sum(m, axes, true)?;
            let share = e.div(gk, count)?;
            e.mul(m, share)?
        }
        ReduceOp::Prod => {
            let yk = e.reshape(y, &kd)?;
            let t = e.mul(gk, yk)?;
            e.div(t, x)?
        }
    };
    Ok(vec![Some(dx)])
}

/// `dx = y ⊙ (g − Σ_axis g ⊙ y)`; reads the output.
pub(super) fn softmax(e: &mut Emitter, axis: usize, y: ValueId, g: ValueId) -> Grads {
    let gy = e.mul(g, y)?;
    let s = e.sum(gy, &[axis], true)?;
    let c = e.sub(g, s)?;
    Ok(vec![Some(e.mul(y, c)?)])
}

/// The adjoint of a running sum is the running sum the other way: `x[j]` is a term of
/// every `y[i]` with `i ≥ j` (`i > j` when exclusive). Reads nothing.
pub(super) fn cumsum(
    e: &mut Emitter,
    axis: usize,
    exclusive: bool,
    reverse: bool,
    g: ValueId,
) -> Grads {
    let op = Op::CumSum {
        axis,
        exclusive,
        reverse: !reverse,
    };
    Ok(vec![Some(e.op(op, &[g])?)])
}

/// `dx = g − exp(y) ⊙ Σ_axis g`; reads the output.
pub(super) fn log_softmax(e: &mut Emitter, axis: usize, y: ValueId, g: ValueId) -> Grads {
    let s = e.sum(g, &[axis], true)?;
    let p = e.unary(UnaryOp::Exp, y)?;
    let t = e.mul(p, s)?;
    Ok(vec![Some(e.sub(g, t)?)])
}

/// Mean, `x − mean` and `1/√(var + ε)` over `axes` (kept), recomputed from `x`.
fn moments(
    e: &mut Emitter,
    x: ValueId,
    axes: &[usize],
    eps: f64,
) -> Result<(ValueId, ValueId), PassError> {
    let mean = e.mean(x, axes, true)?;
    let xc = e.sub(x, mean)?;
    let sq = e.mul(xc, xc)?;
    let var = e.mean(sq, axes, true)?;
    let ve = e.add_scalar(var, eps)?;
    let sd = e.unary(UnaryOp::Sqrt, ve)?;
    let rstd = e.unary(UnaryOp::Reciprocal, sd)?;
    Ok((xc, rstd))
}

/// Layer normalization over `axis..rank`, differentiated from its inputs (X, scale):
/// `x̂ = (x − μ)·r`, `dscale = Σ g⊙x̂`, `dbias = Σ g`,
/// `dx = r ⊙ (ĝ − mean(ĝ) − x̂ ⊙ mean(ĝ ⊙ x̂))` with `ĝ = g ⊙ scale`.
pub(super) fn layer_norm(
    e: &mut Emitter,
    axis: usize,
    eps: f64,
    x: &[ValueId],
    g: ValueId,
    need: &[bool],
) -> Grads {
    let xv = x[0];
    let axes: Vec<usize> = (axis..e.rank(xv)).collect();
    let (xc, rstd) = moments(e, xv, &axes, eps)?;
    let xhat = e.mul(xc, rstd)?;
    let gx = if need[0] {
        let gh = e.mul(g, x[1])?;
        let m1 = e.mean(gh, &axes, true)?;
        let ghx = e.mul(gh, xhat)?;
        let m2 = e.mean(ghx, &axes, true)?;
        let t = e.mul(xhat, m2)?;
        let d1 = e.sub(gh, m1)?;
        let d2 = e.sub(d1, t)?;
        Some(e.mul(d2, rstd)?)
    } else {
        None
    };
    let gscale = if need[1] {
        let t = e.mul(g, xhat)?;
        let d = e.dims(x[1]);
        Some(e.reduce_to(t, &d)?)
    } else {
        None
    };
    let mut out = vec![gx, gscale];
    if let Some(&b) = x.get(2) {
        out.push(if need[2] {
            let d = e.dims(b);
            Some(e.reduce_to(g, &d)?)
        } else {
            None
        });
    }
    Ok(out)
}

/// Inference batch normalization `y = (x − mean)·scale·r + bias`, `r = 1/√(var + ε)`,
/// with per-channel parameters; all five inputs are differentiable.
pub(super) fn batch_norm(
    e: &mut Emitter,
    eps: f64,
    x: &[ValueId],
    g: ValueId,
    need: &[bool],
) -> Grads {
    let xv = x[0];
    let xd = e.dims(xv);
    let c = xd[1];
    // [C] → [C, 1, ..] so that it broadcasts against [N, C, ..].
    let mut cd = vec![c];
    cd.resize(xd.len() - 1, 1);
    let col = |e: &mut Emitter, v: ValueId| e.reshape(v, &cd);
    let sum_axes: Vec<usize> = (0..xd.len()).filter(|&i| i != 1).collect();
    let per_channel = |e: &mut Emitter, v: ValueId| e.sum(v, &sum_axes, false);

    let var = col(e, x[4])?;
    let ve = e.add_scalar(var, eps)?;
    let sd = e.unary(UnaryOp::Sqrt, ve)?;
    let rstd = e.unary(UnaryOp::Reciprocal, sd)?;
    let scale = col(e, x[1])?;
    let sr = e.mul(scale, rstd)?;
    let gx = if need[0] { Some(e.mul(g, sr)?) } else { None };
    let needs_centered = need[1] || need[4];
    let (gscale, gvar) = if needs_centered {
        let mean = col(e, x[3])?;
        let xc = e.sub(xv, mean)?;
        let gxc = e.mul(g, xc)?;
        let s = per_channel(e, gxc)?;
        let rflat = e.reshape(rstd, &[c])?;
        let gscale = if need[1] {
            Some(e.mul(s, rflat)?)
        } else {
            None
        };
        let gvar = if need[4] {
            // Σ g(x − mean) · scale · (−½) r³
            let r2 = e.mul(rflat, rflat)?;
            let r3 = e.mul(r2, rflat)?;
            let t = e.mul(s, x[1])?;
            let t = e.mul(t, r3)?;
            Some(e.scale(t, -0.5)?)
        } else {
            None
        };
        (gscale, gvar)
    } else {
        (None, None)
    };
    let gsum = if need[2] || need[3] {
        Some(per_channel(e, g)?)
    } else {
        None
    };
    let gbias = if need[2] { gsum } else { None };
    let gmean = match gsum {
        Some(s) if need[3] => {
            let srf = e.reshape(sr, &[c])?;
            let t = e.mul(s, srf)?;
            Some(e.neg(t)?)
        }
        _ => None,
    };
    Ok(vec![gx, gscale, gbias, gmean, gvar])
}

/// Sums `v` ([N, C, ...]) over a window of channels `[c − lo, c + hi]` (clipped), as a
/// convolution with a ones kernel over the channel axis.
fn channel_window_sum(
    e: &mut Emitter,
    v: ValueId,
    size: usize,
    lo: usize,
    hi: usize,
) -> Result<ValueId, PassError> {
    let d = e.dims(v);
    let rest: usize = d[2..].iter().product();
    let r = e.reshape(v, &[d[0], 1, d[1], rest])?;
    let ones = e.full(e.dtype(v), &[1, 1, size, 1], 1.0)?;
    let attrs = ConvAttrs {
        strides: vec![1, 1],
        pads: vec![lo, 0, hi, 0],
        dilations: vec![1, 1],
        group: 1,
    };
    let s = e.op(Op::Conv(attrs), &[r, ones])?;
    e.reshape(s, &d)
}

/// Local response normalization `y = x · D^(−β)`, `D = bias + α/size · Σ_window x²`:
/// `dx_i = g_i D_i^(−β) − (2αβ/size) · x_i · Σ_{j: i ∈ window(j)} g_j x_j D_j^(−β−1)`.
pub(super) fn lrn(
    e: &mut Emitter,
    size: usize,
    (alpha, beta, bias): (f64, f64, f64),
    x: ValueId,
    g: ValueId,
) -> Grads {
    let (lo, hi) = ((size - 1) / 2, (size - 1).div_ceil(2));
    let sq = e.mul(x, x)?;
    let s = channel_window_sum(e, sq, size, lo, hi)?;
    let sa = e.scale(s, alpha / size as f64)?;
    let d = e.add_scalar(sa, bias)?;
    let nb = e.scalar(e.dtype(x), -beta);
    let dpow = e.binary(BinaryOp::Pow, d, nb)?;
    let direct = e.mul(g, dpow)?;
    let gx = e.mul(g, x)?;
    let t = e.mul(gx, dpow)?;
    let t = e.div(t, d)?;
    // The transposed window: j with i ∈ [j − lo, j + hi] ⟺ j ∈ [i − hi, i + lo].
    let back = channel_window_sum(e, t, size, hi, lo)?;
    let xb = e.mul(x, back)?;
    let cross = e.scale(xb, 2.0 * alpha * beta / size as f64)?;
    Ok(vec![Some(e.sub(direct, cross)?)])
}

/// RMS normalization `y = x · r · scale`, `r = 1/√(mean(x²) + ε)` over `axis..rank`:
/// `dscale = Σ g⊙x⊙r`, `dx = r ⊙ (ĝ − x ⊙ r² ⊙ mean(ĝ ⊙ x))` with `ĝ = g ⊙ scale`.
pub(super) fn rms_norm(
    e: &mut Emitter,
    axis: usize,
    eps: f64,
    x: &[ValueId],
    g: ValueId,
    need: &[bool],
) -> Grads {
    let xv = x[0];
    let axes: Vec<usize> = (axis..e.rank(xv)).collect();
    let sq = e.mul(xv, xv)?;
    let ms = e.mean(sq, &axes, true)?;
    let me = e.add_scalar(ms, eps)?;
    let sd = e.unary(UnaryOp::Sqrt, me)?;
    let r = e.unary(UnaryOp::Reciprocal, sd)?;
    let gx = if need[0] {
        let gh = e.mul(g, x[1])?;
        let ghx = e.mul(gh, xv)?;
        let m = e.mean(ghx, &axes, true)?;
        let r2 = e.mul(r, r)?;
        let t = e.mul(xv, r2)?;
        let t = e.mul(t, m)?;
        let d = e.sub(gh, t)?;
        Some(e.mul(d, r)?)
    } else {
        None
    };
    let gscale = if need[1] {
        let xr = e.mul(xv, r)?;
        let t = e.mul(g, xr)?;
        let d = e.dims(x[1]);
        Some(e.reduce_to(t, &d)?)
    } else {
        None
    };
    Ok(vec![gx, gscale])
}
