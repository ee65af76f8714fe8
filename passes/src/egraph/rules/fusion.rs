//! Patterns that become one fused op: GELU, LayerNorm, RMSNorm, Softmax, attention,
//! Conv+BatchNorm, MatMul+Add → Gemm.
//!
//! The patterns expect one-element constants on the right of `add`/`mul` (the algebra
//! family moves them there), and check constant operands numerically.

use egg::Id;
use tessera_ir::{BinaryOp, DType, GeluApprox, Op, ReduceOp, Shape, Tensor, TensorType, UnaryOp};

use super::{Rewriter, Rule, rule, swaps_last_two};

/// The fusion family.
pub fn fusion_rules<'a>() -> Vec<Rule<'a>> {
    vec![
        rule(
            "gelu-erf",
            "(mul ?x (mul (add (erf ?e) ?one) ?half))",
            gelu_erf,
        ),
        rule(
            "gelu-erf-half-first",
            "(mul (mul ?x ?half) (add (erf ?e) ?one))",
            gelu_erf,
        ),
        rule(
            "gelu-erf-half-last",
            "(mul (mul ?x (add (erf ?e) ?one)) ?half)",
            gelu_erf,
        ),
        rule(
            "gelu-tanh",
            "(mul ?x (mul (add (tanh ?e) ?one) ?half))",
            gelu_tanh,
        ),
        rule(
            "gelu-tanh-half-first",
            "(mul (mul ?x ?half) (add (tanh ?e) ?one))",
            gelu_tanh,
        ),
        rule(
            "layer-norm",
            "(add (mul (div ?d (sqrt (add (reduce_mean ?a ?sq) ?eps))) ?g) ?b)",
            layer_norm,
        ),
        rule(
            "layer-norm-no-bias",
            "(mul (div ?d (sqrt (add (reduce_mean ?a ?sq) ?eps))) ?g)",
            layer_norm,
        ),
        rule(
            "layer-norm-plain",
            "(div ?d (sqrt (add (reduce_mean ?a ?sq) ?eps)))",
            layer_norm,
        ),
        rule(
            "rms-norm",
            "(mul (div ?x (sqrt (add (reduce_mean ?a ?sq) ?eps))) ?g)",
            rms_norm,
        ),
        rule(
            "rms-norm-rsqrt",
            "(mul (mul ?x (reciprocal (sqrt (add (reduce_mean ?a ?sq) ?eps)))) ?g)",
            rms_norm,
        ),
        rule(
            "softmax-exp-sum-div",
            "(div (exp ?x) (reduce_sum ?a (exp ?x)))",
            softmax,
        ),
        rule(
            "softmax-shift",
            "(softmax ?a (sub ?x (reduce_max ?m ?x)))",
            softmax_shift,
        ),
        rule(
            "attention",
            "(matmul (softmax ?a (mul (matmul ?q ?kt) ?s)) ?v)",
            |r| attention(r, Scale::Mul, false),
        ),
        rule(
            "attention-mask",
            "(matmul (softmax ?a (add (mul (matmul ?q ?kt) ?s) ?m)) ?v)",
            |r| attention(r, Scale::Mul, true),
        ),
        rule(
            "attention-div",
            "(matmul (softmax ?a (div (matmul ?q ?kt) ?s)) ?v)",
            |r| attention(r, Scale::Div, false),
        ),
        rule(
            "attention-div-mask",
            "(matmul (softmax ?a (add (div (matmul ?q ?kt) ?s) ?m)) ?v)",
            |r| attention(r, Scale::Div, true),
        ),
        rule(
            "attention-unscaled",
            "(matmul (softmax ?a (matmul ?q ?kt)) ?v)",
            |r| attention(r, Scale::One, false),
        ),
        rule(
            "attention-unscaled-mask",
            "(matmul (softmax ?a (add (matmul ?q ?kt) ?m)) ?v)",
            |r| attention(r, Scale::One, true),
        ),
        rule(
            "attention-nan-guard",
            "(matmul (where (is_nan ?p) ?z ?p) ?v)",
            attention_nan_guard,
        ),
        rule(
            "attention-absorb-scale",
            "(attention ?a (mul ?q ?s) ?k ?v)",
            attention_absorb_scale,
        ),
        rule(
            "attention-absorb-scale-mask",
            "(attention ?a (mul ?q ?s) ?k ?v ?m)",
            attention_absorb_scale,
        ),
        rule(
            "conv-mul-constant",
            "(mul (conv ?c ?x ?w ?bias) ?f)",
            conv_mul_constant,
        ),
        rule(
            "conv-mul-constant-no-bias",
            "(mul (conv ?c ?x ?w) ?f)",
            conv_mul_constant,
        ),
        rule(
            "conv-add-constant",
            "(add (conv ?c ?x ?w ?bias) ?f)",
            conv_add_constant,
        ),
        rule(
            "conv-add-constant-no-bias",
            "(add (conv ?c ?x ?w) ?f)",
            conv_add_constant,
        ),
        rule(
            "conv-batch-norm",
            "(batch_norm ?e (conv ?c ?x ?w ?bias) ?g ?beta ?mean ?var)",
            conv_batch_norm,
        ),
        rule(
            "conv-batch-norm-no-bias",
            "(batch_norm ?e (conv ?c ?x ?w) ?g ?beta ?mean ?var)",
            conv_batch_norm,
        ),
        rule(
            "matmul-add-to-gemm",
            "(add (matmul ?a ?b) ?c)",
            matmul_add_to_gemm,
        ),
    ]
}

const SQRT_2: f64 = std::f64::consts::SQRT_2;
/// √(2/π), the tanh-GELU constant.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// Relative tolerance for constants stored as f32.
const REL: f64 = 1e-6;

/// True if class `e` computes `x / √2` (or `x · (1/√2)`).
fn is_x_over_sqrt2(r: &Rewriter, e: Id, x: Id) -> bool {
    r.find(e, "div", |_, ops| {
        ops[0] == x && r.is_scalar(ops[1], SQRT_2, REL)
    })
    .is_some()
        || r.find(e, "mul", |_, ops| {
            ops[0] == x && r.is_scalar(ops[1], 1.0 / SQRT_2, REL)
        })
        .is_some()
}

/// `x/2 · (1 + erf(x/√2))`, in the three usual association orders.
fn gelu_erf(r: &mut Rewriter) -> Option<Id> {
    let (x, e, one, half) = (r.v("?x")?, r.v("?e")?, r.v("?one")?, r.v("?half")?);
    if !(r.is_scalar(one, 1.0, 0.0) && r.is_scalar(half, 0.5, 0.0) && is_x_over_sqrt2(r, e, x)) {
        return None;
    }
    r.op(
        Op::Gelu {
            approximate: GeluApprox::None,
        },
        &[x],
    )
}

/// True if class `c` computes `x³` (`pow(x, 3)`, `x·x·x` in either order).
fn is_cube(r: &Rewriter, c: Id, x: Id) -> bool {
    if r.find(c, "pow", |_, ops| {
        ops[0] == x && r.is_scalar(ops[1], 3.0, 0.0)
    })
    .is_some()
    {
        return true;
    }
    let is_square = |s: Id| r.find(s, "mul", |_, ops| ops == [x, x]).is_some();
    r.find(c, "mul", |_, ops| {
        (ops[0] == x && is_square(ops[1])) || (ops[1] == x && is_square(ops[0]))
    })
    .is_some()
}

/// True if class `e` computes `√(2/π) · (x + 0.044715 · x³)`.
fn is_tanh_gelu_arg(r: &Rewriter, e: Id, x: Id) -> bool {
    let inner = |s: Id| {
        r.find(s, "add", |_, ops| {
            ops[0] == x
                && r.find(ops[1], "mul", |_, m| {
                    is_cube(r, m[0], x) && r.is_scalar(m[1], 0.044715, REL)
                })
                .is_some()
        })
        .is_some()
    };
    r.find(e, "mul", |_, ops| {
        inner(ops[0]) && r.is_scalar(ops[1], SQRT_2_OVER_PI, REL)
    })
    .is_some()
}

/// `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`.
fn gelu_tanh(r: &mut Rewriter) -> Option<Id> {
    let (x, e, one, half) = (r.v("?x")?, r.v("?e")?, r.v("?one")?, r.v("?half")?);
    if !(r.is_scalar(one, 1.0, 0.0) && r.is_scalar(half, 0.5, 0.0) && is_tanh_gelu_arg(r, e, x)) {
        return None;
    }
    r.op(
        Op::Gelu {
            approximate: GeluApprox::Tanh,
        },
        &[x],
    )
}

/// True if class `sq` computes `d²` (`pow(d, 2)` or `d·d`).
fn is_square_of(r: &Rewriter, sq: Id, d: Id) -> bool {
    r.find(sq, "pow", |_, ops| {
        ops[0] == d && r.is_scalar(ops[1], 2.0, 0.0)
    })
    .is_some()
        || r.find(sq, "mul", |_, ops| ops == [d, d]).is_some()
}

/// The first normalized axis if `op` is a keep-dims reduction over the trailing axes of a
/// rank-`rank` tensor.
fn trailing_reduction(op: &Op, kind: ReduceOp, rank: usize) -> Option<usize> {
    match op {
        Op::Reduce {
            op,
            axes,
            keep_dims: true,
        } if *op == kind
            && !axes.is_empty()
            && axes
                .iter()
                .enumerate()
                .all(|(i, &a)| a == rank - axes.len() + i) =>
        {
            axes.first().copied()
        }
        _ => None,
    }
}

/// `(x − mean(x)) / √(mean((x − mean(x))²) + ε) · g + b` over trailing axes.
fn layer_norm(r: &mut Rewriter) -> Option<Id> {
    let (d, a, sq, eps) = (r.v("?d")?, r.v("?a")?, r.v("?sq")?, r.v("?eps")?);
    let rank = r.ty(d)?.shape.rank();
    let axis = trailing_reduction(&r.attr(a)?, ReduceOp::Mean, rank)?;
    let epsilon = r.scalar(eps)?;
    if !is_square_of(r, sq, d) {
        return None;
    }
    // d = x − mean(x) over the same axes.
    let (_, sub) = r.find(d, "sub", |_, ops| {
        r.find(ops[1], "reduce_mean", |op, m| {
            m[0] == ops[0] && trailing_reduction(op, ReduceOp::Mean, rank) == Some(axis)
        })
        .is_some()
    })?;
    let x = sub[0];
    let xt = r.ty(x)?;
    let op = Op::LayerNorm {
        axis,
        epsilon: epsilon as f32,
        stats: false,
    };
    let g = match r.v("?g") {
        Some(g) => g,
        None => {
            let norm = Shape::new(xt.shape.dims()[axis..].to_vec()).ok()?;
            r.constant(Tensor::full(xt.dtype, norm, 1.0))
        }
    };
    match r.v("?b") {
        Some(b) => r.op(op, &[x, g, b]),
        None => r.op(op, &[x, g]),
    }
}

/// `x / √(mean(x²) + ε) · g` (or `x · 1/√(…) · g`) over trailing axes.
fn rms_norm(r: &mut Rewriter) -> Option<Id> {
    let (x, a, sq, eps, g) = (
        r.v("?x")?,
        r.v("?a")?,
        r.v("?sq")?,
        r.v("?eps")?,
        r.v("?g")?,
    );
    let rank = r.ty(x)?.shape.rank();
    let axis = trailing_reduction(&r.attr(a)?, ReduceOp::Mean, rank)?;
    let epsilon = r.scalar(eps)?;
    if !is_square_of(r, sq, x) {
        return None;
    }
    r.op(
        Op::RmsNorm {
            axis,
            epsilon: epsilon as f32,
        },
        &[x, g],
    )
}

/// `exp(x) / sum(exp(x), axis)` over one axis, keeping it.
fn softmax(r: &mut Rewriter) -> Option<Id> {
    let (x, a) = (r.v("?x")?, r.v("?a")?);
    let Op::Reduce {
        op: ReduceOp::Sum,
        axes,
        keep_dims: true,
    } = r.attr(a)?
    else {
        return None;
    };
    let [axis] = axes.as_slice() else {
        return None;
    };
    r.op(Op::Softmax { axis: *axis }, &[x])
}

/// Softmax ignores a shift by the maximum over its own axis.
fn softmax_shift(r: &mut Rewriter) -> Option<Id> {
    let (a, x, m) = (r.v("?a")?, r.v("?x")?, r.v("?m")?);
    let Op::Softmax { axis } = r.attr(a)? else {
        return None;
    };
    match r.attr(m)? {
        Op::Reduce {
            op: ReduceOp::Max,
            axes,
            keep_dims: true,
        } if axes == [axis] => r.op(Op::Softmax { axis }, &[x]),
        _ => None,
    }
}

/// How the attention scores are scaled in the matched pattern.
#[derive(Clone, Copy)]
enum Scale {
    Mul,
    Div,
    One,
}

/// `softmax(Q·Kᵀ·s (+ mask)) · V` over the last axis, with `Kᵀ` a transpose of the last
/// two axes of `K`. A constant scale becomes the attribute; a runtime one-element divisor
/// divides `Q` instead.
fn attention(r: &mut Rewriter, scale: Scale, masked: bool) -> Option<Id> {
    let (a, q, kt, v) = (r.v("?a")?, r.v("?q")?, r.v("?kt")?, r.v("?v")?);
    let rank = r.ty(q)?.shape.rank();
    match r.attr(a)? {
        Op::Softmax { axis } if axis + 1 == rank => {}
        _ => return None,
    }
    let (_, k) = r.find(
        kt,
        "transpose",
        |op, _| matches!(op, Op::Transpose { perm } if swaps_last_two(perm)),
    )?;
    let k = k[0];
    let (q, scale) = match scale {
        Scale::One => (q, 1.0),
        Scale::Mul => (q, r.scalar(r.v("?s")?)?),
        Scale::Div => {
            let s = r.v("?s")?;
            match r.scalar(s) {
                Some(c) if c != 0.0 => (q, 1.0 / c),
                Some(_) => return None,
                None if r.ty(s)?.shape.numel() == 1 => {
                    (r.op(Op::Binary(BinaryOp::Div), &[q, s])?, 1.0)
                }
                None => return None,
            }
        }
    };
    let op = Op::Attention {
        scale: scale as f32,
    };
    if masked {
        let m = r.v("?m")?;
        r.op(op, &[q, k, v, m])
    } else {
        r.op(op, &[q, k, v])
    }
}

/// The scores of an attention: `Q`, `Kᵀ`, the scale and the additive mask, if `x` is one
/// of `Q·Kᵀ`, `Q·Kᵀ·s`, `Q·Kᵀ/s` (constant `s`), each optionally plus a mask.
fn attention_scores(r: &Rewriter, x: Id) -> Option<(Id, Id, f64, Option<Id>)> {
    // Q·Kᵀ with Kᵀ a transpose of the last two axes (the class may also hold Q·Kᵀ forms
    // with the scale still inside; they do not qualify).
    let kt_ok = |kt: Id| {
        r.find(
            kt,
            "transpose",
            |op, _| matches!(op, Op::Transpose { perm } if swaps_last_two(perm)),
        )
        .is_some()
    };
    let qk = |c: Id| {
        r.find(c, "matmul", |_, o| kt_ok(o[1]))
            .map(|(_, o)| (o[0], o[1]))
    };
    let scaled = |c: Id| -> Option<(Id, Id, f64)> {
        if let Some((q, kt)) = qk(c) {
            return Some((q, kt, 1.0));
        }
        let found = r
            .find(c, "mul", |_, o| {
                r.scalar(o[1]).is_some() && qk(o[0]).is_some()
            })
            .map(|(_, o)| (o[0], r.scalar(o[1])))
            .or_else(|| {
                r.find(c, "div", |_, o| {
                    r.scalar(o[1]).is_some_and(|s| s != 0.0) && qk(o[0]).is_some()
                })
                .map(|(_, o)| (o[0], r.scalar(o[1]).map(|s| 1.0 / s)))
            })?;
        let (q, kt) = qk(found.0)?;
        Some((q, kt, found.1?))
    };
    if let Some((q, kt, s)) = scaled(x) {
        return Some((q, kt, s, None));
    }
    let (_, o) = r.find(x, "add", |_, o| scaled(o[0]).is_some())?;
    let (q, kt, s) = scaled(o[0])?;
    Some((q, kt, s, Some(o[1])))
}

/// `where(is_nan(P), 0, P) · V` with `P = softmax(scores)`: the guard PyTorch's exporter
/// puts after the softmax of every attention with a boolean mask. It becomes
/// `where(is_nan(A), 0, A)` of the fused attention `A`: rows whose scores hold NaN or
/// infinities are NaN in both `P` and `A` (so zero after either guard); the two forms
/// differ only where `V` itself holds NaN (the product of a zeroed row with it).
fn attention_nan_guard(r: &mut Rewriter) -> Option<Id> {
    let (p, z, v) = (r.v("?p")?, r.v("?z")?, r.v("?v")?);
    if !r.is_scalar(z, 0.0, 0.0) {
        return None;
    }
    let rank = r.ty(v)?.shape.rank();
    let (op, x) = r.find(
        p,
        "softmax",
        |op, _| matches!(op, Op::Softmax { axis } if axis + 1 == rank),
    )?;
    let _ = op;
    let (q, kt, scale, mask) = attention_scores(r, x[0])?;
    let (_, k) = r.find(
        kt,
        "transpose",
        |op, _| matches!(op, Op::Transpose { perm } if swaps_last_two(perm)),
    )?;
    let op = Op::Attention {
        scale: scale as f32,
    };
    let a = match mask {
        Some(m) => r.op(op, &[q, k[0], v, m])?,
        None => r.op(op, &[q, k[0], v])?,
    };
    let nan = r.op(Op::Unary(UnaryOp::IsNaN), &[a])?;
    r.op(Op::Where, &[nan, z, a])
}

/// `attention(Q · s, K, V, M?; scale c) = attention(Q, K, V, M?; scale c·s)` for a
/// one-element constant `s` (Whisper scales the query projection before its reshape).
fn attention_absorb_scale(r: &mut Rewriter) -> Option<Id> {
    let (a, q, s, k, v) = (r.v("?a")?, r.v("?q")?, r.v("?s")?, r.v("?k")?, r.v("?v")?);
    let Op::Attention { scale } = r.attr(a)? else {
        return None;
    };
    let f = r.scalar(s)?;
    // A one-element factor that does not broadcast Q to a higher rank.
    if r.ty(s)?.shape.rank() > r.ty(q)?.shape.rank() {
        return None;
    }
    let op = Op::Attention {
        scale: (scale as f64 * f) as f32,
    };
    match r.v("?m") {
        Some(m) => r.op(op, &[q, k, v, m]),
        None => r.op(op, &[q, k, v]),
    }
}

/// The per-output-channel factor of a constant `f` broadcast against a convolution's
/// output `[N, C, spatial…]`: `f` is one element or `C` elements along axis 1 (shapes
/// `[C, 1, …]` or `[1, C, 1, …]` after alignment). Returns `f` as a `[C]` tensor.
fn per_channel(r: &Rewriter, f: Id, out: &TensorType) -> Option<Tensor> {
    let t = r.konst(f)?;
    let c = *out.shape.dims().get(1)?;
    let dims = t.shape().dims().to_vec();
    let rank = out.shape.rank();
    if dims.len() > rank {
        return None;
    }
    // Align to the output's rank from the right.
    let mut aligned = vec![1usize; rank - dims.len()];
    aligned.extend(dims);
    let channel_only = aligned
        .iter()
        .enumerate()
        .all(|(i, &d)| d == 1 || (i == 1 && d == c));
    if !channel_only || t.dtype() != out.dtype {
        return None;
    }
    let v = t.to_f64_vec();
    let vals: Vec<f64> = (0..c)
        .map(|i| if v.len() == 1 { v[0] } else { v[i] })
        .collect();
    Some(
        Tensor::from_vec(Shape::new(vec![c]).ok()?, vals)
            .ok()?
            .cast(out.dtype),
    )
}

/// True if the root is the only consumer of the convolution that its
/// `(kind (conv ?c ?x ?w …) …)` pattern matched: folding a constant into a convolution
/// that feeds other nodes too would compute the convolution twice (HardSwish's
/// `x · clip(x/6 + ½)` after a convolution is the common case).
fn conv_feeds_only_root(r: &Rewriter, kind: &str) -> bool {
    let (Some(c), Some(x), Some(w)) = (r.v("?c"), r.v("?x"), r.v("?w")) else {
        return false;
    };
    let Some(conv) = r.attr(c) else {
        return false;
    };
    r.find(r.root, kind, |_, ops| {
        ops.first().is_some_and(|&o| {
            r.find(o, "conv", |op, cops| {
                *op == conv && cops.first() == Some(&x) && cops.get(1) == Some(&w)
            })
            .is_some()
        })
    })
    .is_some_and(|(_, ops)| r.used_only_by(ops[0], r.root))
}

/// `conv(x, W, b?) · f = conv(x, W·f, b·f)` for a constant per-output-channel (or scalar)
/// `f` and constant `W`, `b`.
fn conv_mul_constant(r: &mut Rewriter) -> Option<Id> {
    let (c, x, w, f) = (r.v("?c")?, r.v("?x")?, r.v("?w")?, r.v("?f")?);
    r.konst(w)?;
    if !conv_feeds_only_root(r, "mul") {
        return None;
    }
    let out = r.ty(r.root)?;
    let fc = per_channel(r, f, &out)?;
    let conv = r.attr(c)?;
    let wt = r.ty(w)?;
    let fcid = r.constant(fc);
    let mut fshape = vec![wt.shape.dims()[0]];
    fshape.resize(wt.shape.rank(), 1);
    let fw = r.op(
        Op::Reshape {
            shape: Shape::new(fshape).ok()?,
        },
        &[fcid],
    )?;
    let w2 = r.op(Op::Binary(BinaryOp::Mul), &[w, fw])?;
    r.konst(w2)?;
    match r.v("?bias") {
        Some(b) => {
            r.konst(b)?;
            let b2 = r.op(Op::Binary(BinaryOp::Mul), &[b, fcid])?;
            r.op(conv, &[x, w2, b2])
        }
        None => r.op(conv, &[x, w2]),
    }
}

/// `conv(x, W, b?) + f = conv(x, W, b + f)` for a constant per-output-channel (or scalar)
/// `f` and constant `b`.
fn conv_add_constant(r: &mut Rewriter) -> Option<Id> {
    let (c, x, w, f) = (r.v("?c")?, r.v("?x")?, r.v("?w")?, r.v("?f")?);
    if !conv_feeds_only_root(r, "add") {
        return None;
    }
    let out = r.ty(r.root)?;
    let fc = per_channel(r, f, &out)?;
    let conv = r.attr(c)?;
    let fcid = r.constant(fc);
    let b2 = match r.v("?bias") {
        Some(b) => {
            r.konst(b)?;
            r.op(Op::Binary(BinaryOp::Add), &[b, fcid])?
        }
        None => fcid,
    };
    r.op(conv, &[x, w, b2])
}

/// BatchNorm of a convolution with constant weights and statistics is the convolution
/// with scaled weights and a shifted bias:
/// `f = γ/√(var+ε)`, `W' = W·f` (per output channel), `b' = (b − mean)·f + β`.
fn conv_batch_norm(r: &mut Rewriter) -> Option<Id> {
    let (e, c, w) = (r.v("?e")?, r.v("?c")?, r.v("?w")?);
    let (g, beta, mean, var) = (r.v("?g")?, r.v("?beta")?, r.v("?mean")?, r.v("?var")?);
    let x = r.v("?x")?;
    for id in [w, g, beta, mean, var] {
        r.konst(id)?;
    }
    if !conv_feeds_only_root(r, "batch_norm") {
        return None;
    }
    let Op::BatchNorm { epsilon } = r.attr(e)? else {
        return None;
    };
    let conv = r.attr(c)?;
    let wt = r.ty(w)?;
    let dtype = wt.dtype;
    let eps = r.scalar_const(dtype, epsilon as f64);
    let bin = |op| Op::Binary(op);
    let ve = r.op(bin(BinaryOp::Add), &[var, eps])?;
    let sd = r.op(Op::Unary(UnaryOp::Sqrt), &[ve])?;
    let f = r.op(bin(BinaryOp::Div), &[g, sd])?;
    let mut fshape = vec![wt.shape.dims()[0]];
    fshape.resize(wt.shape.rank(), 1);
    let fw = r.op(
        Op::Reshape {
            shape: Shape::new(fshape).ok()?,
        },
        &[f],
    )?;
    let w2 = r.op(bin(BinaryOp::Mul), &[w, fw])?;
    let centered = match r.v("?bias") {
        Some(b) => {
            r.konst(b)?;
            r.op(bin(BinaryOp::Sub), &[b, mean])?
        }
        None => r.op(Op::Unary(UnaryOp::Neg), &[mean])?,
    };
    let scaled = r.op(bin(BinaryOp::Mul), &[centered, f])?;
    let b2 = r.op(bin(BinaryOp::Add), &[scaled, beta])?;
    if dtype != DType::F32 && dtype != DType::F64 {
        return None;
    }
    r.op(conv, &[x, w2, b2])
}

/// `matmul(a, b) + c` is a Gemm: directly for rank-2 `a`, through reshapes of `a` (and
/// of the result) when `a` has leading batch dims and `b` is a matrix.
fn matmul_add_to_gemm(r: &mut Rewriter) -> Option<Id> {
    let (a, b, c) = (r.v("?a")?, r.v("?b")?, r.v("?c")?);
    let (at, bt, ct) = (r.ty(a)?, r.ty(b)?, r.ty(c)?);
    let gemm = Op::Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: false,
    };
    if bt.shape.rank() != 2 || at.shape.rank() < 2 {
        return None;
    }
    if at.shape.rank() == 2 {
        return r.op(gemm, &[a, b, c]);
    }
    let out = r.ty(r.root)?.shape;
    let k = *at.shape.dims().last()?;
    let n = bt.shape.dims()[1];
    let m = at.shape.numel() / k.max(1);
    // The bias must be a row vector (leading dims 1) or already the full output.
    let c2 = if ct.shape.dims().iter().rev().skip(1).all(|&d| d == 1) && ct.shape.numel() == n {
        r.op(
            Op::Reshape {
                shape: Shape::new(vec![n]).ok()?,
            },
            &[c],
        )?
    } else if ct.shape == out {
        r.op(
            Op::Reshape {
                shape: Shape::new(vec![m, n]).ok()?,
            },
            &[c],
        )?
    } else {
        return None;
    };
    let a2 = r.op(
        Op::Reshape {
            shape: Shape::new(vec![m, k]).ok()?,
        },
        &[a],
    )?;
    let y = r.op(gemm, &[a2, b, c2])?;
    r.op(Op::Reshape { shape: out }, &[y])
}
