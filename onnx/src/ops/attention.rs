//! `Attention` (opsets 23–25), expanded at import into the IR ops of its ONNX function
//! body: 3-D inputs split into heads, the KV cache concatenated (`past_*` → `present_*`),
//! grouped-query heads repeated, `Q·√s · (K·√s)ᵀ`, the soft cap, one additive bias (the
//! mask, the causal and sliding-window frontiers and the `nonpad_kv_seqlen` padding),
//! softmax, the fully-masked-row guard (such rows are zero, not NaN) and `· V`. The
//! optional fourth output is the scores at the stage `qk_matmul_output_mode` names.
//!
//! `FlexAttention` (`ai.onnx.preview` 1) is the same core with its `score_mod` and
//! `prob_mod` subgraphs translated in place around the softmax.
//!
//! Half-precision inputs are computed in f32 and the results narrowed once at the end
//! (as the pointwise expansions in `activation` do): the ONNX expected outputs come from
//! the fused operator, which rounds once, not after every step of the function body.

use tessera_ir::{BinaryOp, DType, Op, ReduceOp, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator, dims_of, reshape, shape};
use crate::context::Ctx;
use crate::proto::GraphProto;
use crate::tensor::dtype_from_onnx;

pub(super) const OPS: &[(&str, Translator)] = &[("Attention", attention)];

/// The `ai.onnx.preview` ops.
pub(super) const PREVIEW_OPS: &[(&str, Translator)] = &[("FlexAttention", flex_attention)];

/// The attributes, read and checked.
struct Attrs {
    is_causal: bool,
    q_heads: Option<usize>,
    kv_heads: Option<usize>,
    mode: i64,
    scale: Option<f64>,
    softcap: f64,
    softmax_dtype: Option<DType>,
    /// Sliding window bounds (opset 25); `None` is unbounded.
    left: Option<i64>,
    right: Option<i64>,
}

fn attrs(cx: &Ctx) -> R<Attrs> {
    let heads = |name: &str| -> R<Option<usize>> {
        match cx.attr_int(name)? {
            None => Ok(None),
            Some(h) if h > 0 => Ok(Some(h as usize)),
            Some(h) => Err(cx.err(format!("{name} = {h} must be positive"))),
        }
    };
    let mode = cx.attr_int("qk_matmul_output_mode")?.unwrap_or(0);
    if !(0..=3).contains(&mode) {
        return Err(cx.err(format!(
            "qk_matmul_output_mode = {mode}; only 0, 1, 2 and 3 are defined"
        )));
    }
    let softmax_dtype = match cx.attr_int("softmax_precision")? {
        None => None,
        Some(code) => {
            let d = dtype_from_onnx(code as i32).map_err(|m| cx.err(m))?;
            if !d.is_float() {
                return Err(cx.err(format!("softmax_precision {d} is not a float dtype")));
            }
            Some(d)
        }
    };
    let window = |name: &str| -> R<Option<i64>> {
        match cx.attr_int(name)?.unwrap_or(-1) {
            -1 => Ok(None),
            w if w >= 0 => Ok(Some(w)),
            w => Err(cx.err(format!("{name} = {w}; expected -1 (unbounded) or >= 0"))),
        }
    };
    let is_causal = match cx.attr_int("is_causal")?.unwrap_or(0) {
        0 => false,
        1 => true,
        c => return Err(cx.err(format!("is_causal = {c}; expected 0 or 1"))),
    };
    Ok(Attrs {
        is_causal,
        q_heads: heads("q_num_heads")?,
        kv_heads: heads("kv_num_heads")?,
        mode,
        scale: cx.attr_float("scale")?.map(f64::from),
        softcap: f64::from(cx.attr_float("softcap")?.unwrap_or(0.0)),
        softmax_dtype,
        left: window("left_window_size")?,
        right: window("right_window_size")?,
    })
}

/// The small expression builder of the expansion: constants in the compute dtype.
struct E<'c, 'a, 'b> {
    cx: &'c mut Ctx<'a, 'b>,
    /// The dtype the expansion computes in.
    c: DType,
}

impl E<'_, '_, '_> {
    fn scalar(&mut self, v: f64) -> ValueId {
        self.cx.constant(Tensor::full(self.c, Shape::scalar(), v))
    }

    fn bin(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> R<ValueId> {
        self.cx.emit1(Op::Binary(op), &[a, b])
    }

    fn cast(&mut self, x: ValueId, to: DType) -> R<ValueId> {
        if self.cx.ty(x).dtype == to {
            return Ok(x);
        }
        self.cx.emit1(Op::Cast { to }, &[x])
    }

    /// `cond ? 0 : −∞` in the compute dtype: a boolean "may attend" as an additive bias.
    fn allowed_bias(&mut self, allowed: ValueId) -> R<ValueId> {
        let zero = self.scalar(0.0);
        let neg_inf = self.scalar(f64::NEG_INFINITY);
        self.cx.emit1(Op::Where, &[allowed, zero, neg_inf])
    }

    fn transpose(&mut self, x: ValueId, perm: Vec<usize>) -> R<ValueId> {
        self.cx.emit1(Op::Transpose { perm }, &[x])
    }
}

/// A 3-D `[B, L, H·D]` input as `[B, H, L, D]`; a 4-D one as it is.
fn split_heads(e: &mut E, x: ValueId, heads: Option<usize>, what: &str) -> R<ValueId> {
    let d = dims_of(e.cx, x);
    match d.len() {
        4 => Ok(x),
        3 => {
            let Some(h) = heads else {
                return Err(e.cx.err(format!(
                    "{what} is 3-D, so q_num_heads and kv_num_heads must be given"
                )));
            };
            if !d[2].is_multiple_of(h) {
                return Err(e.cx.err(format!(
                    "{what}'s hidden size {} is not a multiple of its {h} heads",
                    d[2]
                )));
            }
            let x = reshape(e.cx, x, vec![d[0], d[1], h, d[2] / h])?;
            e.transpose(x, vec![0, 2, 1, 3])
        }
        r => Err(e.cx.err(format!(
            "{what} has rank {r}; expected 3 ([batch, seq, hidden]) or 4 ([batch, heads, seq, head_size])"
        ))),
    }
}

/// `[B, Hkv, T, D]` with each head repeated `groups` times: `[B, Hkv·groups, T, D]`.
fn repeat_heads(e: &mut E, x: ValueId, groups: usize) -> R<ValueId> {
    if groups == 1 {
        return Ok(x);
    }
    let d = dims_of(e.cx, x);
    let x = reshape(e.cx, x, vec![d[0], d[1], 1, d[2], d[3]])?;
    let to = shape(e.cx, vec![d[0], d[1], groups, d[2], d[3]])?;
    let x = e.cx.emit1(Op::Expand { shape: to }, &[x])?;
    reshape(e.cx, x, vec![d[0], d[1] * groups, d[2], d[3]])
}

fn attention(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let a = attrs(cx)?;
    let (q, k, v) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let (mask, past_k, past_v) = (cx.opt_input(3), cx.opt_input(4), cx.opt_input(5));
    let nonpad = cx.opt_input(6);
    let out = cx.ty(q).dtype;
    if !out.is_float() {
        return Err(cx.err(format!("Q is {out}, expected a float dtype")));
    }
    let operands = [
        ("K", Some(k)),
        ("V", Some(v)),
        ("past_key", past_k),
        ("past_value", past_v),
    ];
    for (name, x) in operands {
        if let Some(x) = x
            && cx.ty(x).dtype != out
        {
            return Err(cx.err(format!(
                "{name} is {}, but Q is {out}; they must have the same dtype",
                cx.ty(x).dtype
            )));
        }
    }
    let q_rank = cx.ty(q).shape.rank();
    for (name, x) in [("K", k), ("V", v)] {
        if cx.ty(x).shape.rank() != q_rank {
            return Err(cx.err(format!(
                "{name} has rank {}, but Q has rank {q_rank}",
                cx.ty(x).shape.rank()
            )));
        }
    }
    if past_k.is_some() != past_v.is_some() {
        return Err(cx.err("past_key and past_value must be given together"));
    }
    if nonpad.is_some() && past_k.is_some() {
        return Err(cx.err(
            "nonpad_kv_seqlen (an external KV cache) cannot be used with past_key/past_value",
        ));
    }
    if !(a.left.is_none() && a.right.is_none()) && cx.opset < 25 {
        return Err(cx.err("left_window_size/right_window_size need opset 25"));
    }
    if a.is_causal && a.right.is_some() {
        return Err(cx.err("right_window_size needs is_causal = 0"));
    }

    let c = if matches!(out, DType::F16 | DType::BF16) {
        DType::F32
    } else {
        out
    };
    let mut e = E { cx, c };

    // Heads: Q [B, Hq, S, D], K [B, Hkv, L, D], V [B, Hkv, L, Dv].
    let q4 = split_heads(&mut e, q, a.q_heads, "Q")?;
    let k4 = split_heads(&mut e, k, a.kv_heads, "K")?;
    let v4 = split_heads(&mut e, v, a.kv_heads, "V")?;
    let (qd, kd, vd) = (dims_of(e.cx, q4), dims_of(e.cx, k4), dims_of(e.cx, v4));
    let (b, hq, s, hd) = (qd[0], qd[1], qd[2], qd[3]);
    let hkv = kd[1];
    if kd[0] != b || vd[0] != b {
        return Err(e.cx.err(format!(
            "batch sizes differ: Q {b}, K {}, V {}",
            kd[0], vd[0]
        )));
    }
    if vd[1] != hkv || vd[2] != kd[2] {
        return Err(e.cx.err(format!(
            "K {} and V {} (as [batch, heads, seq, head_size]) disagree on heads or sequence length",
            e.cx.ty(k4).shape,
            e.cx.ty(v4).shape
        )));
    }
    if kd[3] != hd {
        return Err(e
            .cx
            .err(format!("Q's head size {hd} differs from K's {}", kd[3])));
    }
    if hkv == 0 || hq % hkv != 0 {
        return Err(e.cx.err(format!(
            "q_num_heads {hq} is not a multiple of kv_num_heads {hkv}"
        )));
    }

    // The KV cache: present = concat(past, new) along the sequence axis.
    let mut past_len = 0;
    let (mut kc, mut vc) = (k4, v4);
    if let (Some(pk), Some(pv)) = (past_k, past_v) {
        let (pkd, pvd) = (dims_of(e.cx, pk), dims_of(e.cx, pv));
        let ok = pkd.len() == 4
            && pvd.len() == 4
            && pkd[..2] == [b, hkv]
            && pvd[..2] == [b, hkv]
            && pkd[2] == pvd[2]
            && pkd[3] == hd
            && pvd[3] == vd[3];
        if !ok {
            return Err(e.cx.err(format!(
                "past_key {} / past_value {} must be [batch, kv_num_heads, past_seq, head_size] matching K and V",
                e.cx.ty(pk).shape,
                e.cx.ty(pv).shape
            )));
        }
        past_len = pkd[2];
        kc = e.cx.emit1(Op::Concat { axis: 2 }, &[pk, k4])?;
        vc = e.cx.emit1(Op::Concat { axis: 2 }, &[pv, v4])?;
    }
    let total = past_len + kd[2];

    let bias = bias(&mut e, &a, mask, nonpad, b, s, past_len, total)?;

    // Scores [B, Hq, S, T].
    let groups = hq / hkv;
    let qw = e.cast(q4, c)?;
    let kw = e.cast(kc, c)?;
    let vw = e.cast(vc, c)?;
    let kw = repeat_heads(&mut e, kw, groups)?;
    let vw = repeat_heads(&mut e, vw, groups)?;
    let scale = a.scale.unwrap_or(1.0 / (hd as f64).sqrt());
    // Softmax, in a wider dtype when softmax_precision asks for one.
    let sm = match a.softmax_dtype {
        Some(d) if d.size_bytes() > c.size_bytes() => d,
        _ => c,
    };
    // Rows the bias masks entirely (no key to attend) are zero, not NaN: `masked` marks
    // them, a constant when the bias is.
    let masked = match bias {
        None => None,
        Some(bias) => {
            let last = e.cx.ty(bias).shape.rank() - 1;
            let row_max = e.cx.emit1(
                Op::Reduce {
                    op: ReduceOp::Max,
                    axes: vec![last],
                    keep_dims: true,
                },
                &[bias],
            )?;
            let neg_inf = e.scalar(f64::NEG_INFINITY);
            let m = e.bin(BinaryOp::Equal, row_max, neg_inf)?;
            let none_masked =
                e.cx.constant_value(m)
                    .is_some_and(|t| t.to_f64_vec().iter().all(|&x| x == 0.0));
            (!none_masked).then_some(m)
        }
    };
    let fused = a.softcap == 0.0 && !e.cx.output_used(3) && sm == c && c == DType::F32;
    let (mut y, stages) = if fused {
        // No soft cap or scores output: the IR's fused attention with the bias as its
        // additive mask, and fully-masked rows of the output zeroed (as their
        // probabilities are below).
        let op = Op::Attention {
            scale: scale as f32,
        };
        let mut inputs = vec![qw, kw, vw];
        inputs.extend(bias);
        let mut y = e.cx.emit1(op, &inputs)?;
        if let Some(masked) = masked {
            let zero = e.scalar(0.0);
            y = e.cx.emit1(Op::Where, &[masked, zero, y])?;
        }
        (y, Vec::new())
    } else {
        let kt = e.transpose(kw, vec![0, 1, 3, 2])?;
        let (qs, ks) = if scale > 0.0 {
            // As the function body: both operands scaled by √scale, against overflow.
            let r = e.scalar(scale.sqrt());
            (e.bin(BinaryOp::Mul, qw, r)?, e.bin(BinaryOp::Mul, kt, r)?)
        } else {
            let r = e.scalar(scale);
            (e.bin(BinaryOp::Mul, qw, r)?, kt)
        };
        let mut scores = e.cx.emit1(Op::MatMul, &[qs, ks])?;
        let mut stages = vec![scores];
        if a.softcap != 0.0 {
            let cap = e.scalar(a.softcap);
            let x = e.bin(BinaryOp::Div, scores, cap)?;
            let x = e.cx.emit1(Op::Unary(UnaryOp::Tanh), &[x])?;
            scores = e.bin(BinaryOp::Mul, x, cap)?;
        }
        stages.push(scores);
        if let Some(bias) = bias {
            scores = e.bin(BinaryOp::Add, scores, bias)?;
        }
        stages.push(scores);

        let x = e.cast(scores, sm)?;
        let p = e.cx.emit1(Op::Softmax { axis: 3 }, &[x])?;
        let mut p = e.cast(p, c)?;
        if let Some(masked) = masked {
            let zero = e.scalar(0.0);
            p = e.cx.emit1(Op::Where, &[masked, zero, p])?;
        }
        stages.push(p);

        (e.cx.emit1(Op::MatMul, &[p, vw])?, stages)
    };
    if q_rank == 3 {
        let dv = vd[3];
        y = e.transpose(y, vec![0, 2, 1, 3])?;
        y = reshape(e.cx, y, vec![b, s, hq * dv])?;
    }
    let y = e.cast(y, out)?;
    let mut outs = vec![y, kc, vc];
    if e.cx.output_used(3) {
        let qk = stages[a.mode as usize];
        outs.push(e.cast(qk, out)?);
    }
    Ok(outs)
}

/// The additive bias broadcast against the scores `[B, Hq, S, T]` (0 where a key may be
/// attended, −∞ where not, plus a float mask), or `None` when nothing is masked.
#[allow(clippy::too_many_arguments)]
fn bias(
    e: &mut E,
    a: &Attrs,
    mask: Option<ValueId>,
    nonpad: Option<ValueId>,
    b: usize,
    s: usize,
    past_len: usize,
    total: usize,
) -> R<Option<ValueId>> {
    let c = e.c;
    let mut parts = Vec::new();
    if let Some(m) = mask {
        let md = dims_of(e.cx, m);
        if md.is_empty() || md.len() > 4 {
            return Err(e.cx.err(format!(
                "attn_mask has rank {}; expected 1 to 4 dimensions broadcasting to [batch, q_num_heads, q_seq, total_seq]",
                md.len()
            )));
        }
        let mut m = if e.cx.ty(m).dtype == DType::Bool {
            e.allowed_bias(m)?
        } else {
            e.cast(m, c)?
        };
        let last = md[md.len() - 1];
        if last > total || (last != total && last != 1 && e.cx.opset < 24) {
            return Err(e.cx.err(format!(
                "attn_mask's last dimension {last} does not match the total sequence length {total}"
            )));
        }
        if last < total && e.cx.opset >= 24 {
            // Opset 24: a shorter mask is padded with −∞ to the total length.
            let mut pad = md.clone();
            pad[md.len() - 1] = total - last;
            e.cx.check_built("the attn_mask padding", pad.iter().product())?;
            let pad_shape = shape(e.cx, pad)?;
            let pad = e.cx.constant(Tensor::full(c, pad_shape, f64::NEG_INFINITY));
            m = e.cx.emit1(Op::Concat { axis: md.len() - 1 }, &[m, pad])?;
        }
        parts.push(m);
    }
    let structural = a.is_causal || a.left.is_some() || a.right.is_some();
    if let Some(np) = nonpad {
        let npd = dims_of(e.cx, np);
        if npd != [b] || !e.cx.ty(np).dtype.is_int() {
            return Err(e.cx.err(format!(
                "nonpad_kv_seqlen must be an integer vector [batch = {b}], got {}",
                e.cx.ty(np)
            )));
        }
        // Per batch: query i sits at absolute position i + nonpad − S; keys j ≥ nonpad
        // are padding.
        let np = e.cast(np, DType::I64)?;
        let np = reshape(e.cx, np, vec![b, 1, 1, 1])?;
        let col = index_const(e, [1, 1, 1, total], total)?;
        let mut allowed = e.bin(BinaryOp::Less, col, np)?;
        if structural {
            let row = index_const(e, [1, 1, s, 1], s)?;
            let s_c = e.cx.constant(Tensor::scalar(s as i64));
            let off = e.bin(BinaryOp::Sub, np, s_c)?;
            let abs = e.bin(BinaryOp::Add, row, off)?;
            // diff = abs − j: causal needs diff ≥ 0, the left window diff ≤ left, the
            // right window −diff ≤ right.
            let diff = e.bin(BinaryOp::Sub, abs, col)?;
            let mut conds = Vec::new();
            if a.is_causal {
                let zero = e.cx.constant(Tensor::scalar(0i64));
                conds.push(e.bin(BinaryOp::GreaterOrEqual, diff, zero)?);
            }
            if let Some(l) = a.left {
                let l = e.cx.constant(Tensor::scalar(l));
                conds.push(e.bin(BinaryOp::LessOrEqual, diff, l)?);
            }
            if let Some(r) = a.right {
                let r = e.cx.constant(Tensor::scalar(-r));
                conds.push(e.bin(BinaryOp::GreaterOrEqual, diff, r)?);
            }
            for cond in conds {
                allowed = e.bin(BinaryOp::And, allowed, cond)?;
            }
        }
        parts.push(e.allowed_bias(allowed)?);
    } else if structural {
        // A constant [S, T] frontier: query i sits at absolute position i + past_len.
        e.cx.check_built("the causal/window mask", s * total)?;
        let mut data = Vec::with_capacity(s * total);
        for i in 0..s {
            for j in 0..total {
                let diff = (i + past_len) as i64 - j as i64;
                let ok = (!a.is_causal || diff >= 0)
                    && a.left.is_none_or(|l| diff <= l)
                    && a.right.is_none_or(|r| -diff <= r);
                data.push(if ok { 0.0 } else { f64::NEG_INFINITY });
            }
        }
        let sh = shape(e.cx, vec![s, total])?;
        let t = Tensor::from_vec(sh, data).map_err(|err| e.cx.err(err.to_string()))?;
        parts.push(e.cx.constant(t.cast(c)));
    }
    let mut acc: Option<ValueId> = None;
    for p in parts {
        acc = Some(match acc {
            None => p,
            Some(x) => e.bin(BinaryOp::Add, x, p)?,
        });
    }
    Ok(acc)
}

/// An i64 constant of shape `dims` counting `0..n` along its one non-unit axis.
fn index_const(e: &mut E, dims: [usize; 4], n: usize) -> R<ValueId> {
    e.cx.check_built("an index range", n)?;
    let sh = shape(e.cx, dims.to_vec())?;
    let t = Tensor::from_vec(sh, (0..n as i64).collect::<Vec<i64>>())
        .map_err(|err| e.cx.err(err.to_string()))?;
    Ok(e.cx.constant(t))
}

/// `FlexAttention` (`ai.onnx.preview` 1): `softmax(score_mod(Q·Kᵀ·scale))`, then
/// `prob_mod`, then `· V`, for rank-4 inputs with grouped-query heads; scores and
/// probabilities in `softmax_precision` (f32 unless the inputs are f64).
fn flex_attention(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (q, k, v) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let out = cx.ty(q).dtype;
    if !out.is_float() {
        return Err(cx.err(format!("Q is {out}, expected a float dtype")));
    }
    for (name, x) in [("Q", q), ("K", k), ("V", v)] {
        let t = cx.ty(x);
        if t.dtype != out || t.shape.rank() != 4 {
            return Err(cx.err(format!(
                "{name} is {t}; Q, K and V must be rank-4 tensors of one float dtype"
            )));
        }
    }
    let (qd, kd, vd) = (dims_of(cx, q), dims_of(cx, k), dims_of(cx, v));
    let (hq, hkv, hd) = (qd[1], kd[1], qd[3]);
    if kd[0] != qd[0] || vd[..3] != kd[..3] || kd[3] != hd || hkv == 0 || hq % hkv != 0 {
        return Err(cx.err(format!(
            "Q {}, K {} and V {} must be [batch, heads, seq, head_size] with equal batches, K and V agreeing on heads and length, Q and K on head size, and Q's heads a multiple of K's",
            cx.ty(q).shape,
            cx.ty(k).shape,
            cx.ty(v).shape
        )));
    }
    let sp = match cx.attr_int("softmax_precision")? {
        Some(code) => {
            let d = dtype_from_onnx(code as i32).map_err(|m| cx.err(m))?;
            if !d.is_float() {
                return Err(cx.err(format!("softmax_precision {d} is not a float dtype")));
            }
            d
        }
        None if out == DType::F64 => DType::F64,
        None => DType::F32,
    };
    let scale = cx
        .attr_float("scale")?
        .map_or(1.0 / (hd as f64).sqrt(), f64::from);
    let score_mod = cx.attr_graph("score_mod")?;
    let prob_mod = cx.attr_graph("prob_mod")?;
    let c = if matches!(out, DType::F16 | DType::BF16) {
        DType::F32
    } else {
        out
    };
    let mut e = E { cx, c };
    let groups = hq / hkv;
    let (qw, kw, vw) = (e.cast(q, c)?, e.cast(k, c)?, e.cast(v, c)?);
    let kw = repeat_heads(&mut e, kw, groups)?;
    let vw = repeat_heads(&mut e, vw, groups)?;
    if score_mod.is_none() && prob_mod.is_none() && sp == c && c == DType::F32 {
        // No modifiers: exactly the IR's fused attention.
        let op = Op::Attention {
            scale: scale as f32,
        };
        let y = e.cx.emit1(op, &[qw, kw, vw])?;
        return Ok(vec![e.cast(y, out)?]);
    }
    let kt = e.transpose(kw, vec![0, 1, 3, 2])?;
    let (qs, ks) = if scale > 0.0 {
        let r = e.scalar(scale.sqrt());
        (e.bin(BinaryOp::Mul, qw, r)?, e.bin(BinaryOp::Mul, kt, r)?)
    } else {
        let r = e.scalar(scale);
        (e.bin(BinaryOp::Mul, qw, r)?, kt)
    };
    let scores = e.cx.emit1(Op::MatMul, &[qs, ks])?;
    let mut scores = e.cast(scores, sp)?;
    if let Some(g) = &score_mod {
        scores = apply_mod(e.cx, g, scores, "score_mod")?;
    }
    let mut p = e.cx.emit1(Op::Softmax { axis: 3 }, &[scores])?;
    if let Some(g) = &prob_mod {
        p = apply_mod(e.cx, g, p, "prob_mod")?;
    }
    let vs = e.cast(vw, sp)?;
    let y = e.cx.emit1(Op::MatMul, &[p, vs])?;
    Ok(vec![e.cast(y, out)?])
}

/// Subgraph `g` applied to `x`; its one output must have `x`'s type.
fn apply_mod(cx: &mut Ctx, g: &GraphProto, x: ValueId, what: &str) -> R<ValueId> {
    let outs = cx.inline(g, &[x])?;
    match outs.as_slice() {
        [y] if cx.ty(*y) == cx.ty(x) => Ok(*y),
        [y] => Err(cx.err(format!(
            "{what} turns {} into {}; it must keep the type",
            cx.ty(x),
            cx.ty(*y)
        ))),
        _ => Err(cx.err(format!("{what} has {} outputs, expected 1", outs.len()))),
    }
}
