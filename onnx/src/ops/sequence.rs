//! Building blocks of sequence models that ONNX defines by a function body, expanded at
//! import into the IR ops of that body: `RotaryEmbedding` (split, multiply-adds with the
//! gathered cos/sin caches, interleaved or half-split), `SwiGLU` (`swish(a)·b`) and
//! `CausalConvWithState` (the carried state or zeros concatenated in front, a depthwise
//! `Conv`, optional SiLU, and the last `k − 1` positions as the new state) and
//! `LinearAttention` (its recurrence, which the function body runs as a `Scan`, unrolled
//! over the static sequence length).
//!
//! Half-precision inputs are widened to f32 for the pointwise chains and the results
//! narrowed once, as the expansions in `activation` do.

use tessera_ir::{BinaryOp, ConvAttrs, DType, Op, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator, dims_of, reshape, shape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("RotaryEmbedding", rotary_embedding),
    ("SwiGLU", swiglu),
    ("CausalConvWithState", causal_conv_with_state),
    ("LinearAttention", linear_attention),
];

/// The dtype an expansion of `d` computes in: f32 for the half-precision dtypes.
fn wide(d: DType) -> DType {
    if matches!(d, DType::F16 | DType::BF16) {
        DType::F32
    } else {
        d
    }
}

fn cast(cx: &mut Ctx, x: ValueId, to: DType) -> R<ValueId> {
    if cx.ty(x).dtype == to {
        return Ok(x);
    }
    cx.emit1(Op::Cast { to }, &[x])
}

fn bin(cx: &mut Ctx, op: BinaryOp, a: ValueId, b: ValueId) -> R<ValueId> {
    cx.emit1(Op::Binary(op), &[a, b])
}

/// `x[..., start..end:step]` along the last axis.
fn slice_last(cx: &mut Ctx, x: ValueId, start: usize, end: usize, step: usize) -> R<ValueId> {
    let axis = cx.ty(x).shape.rank() - 1;
    cx.emit1(
        Op::Slice {
            axes: vec![axis],
            starts: vec![start as i64],
            ends: vec![end as i64],
            steps: vec![step as i64],
        },
        &[x],
    )
}

fn float_input(cx: &Ctx, x: ValueId, what: &str) -> R<DType> {
    let d = cx.ty(x).dtype;
    if !d.is_float() {
        return Err(cx.err(format!("{what} is {d}, expected a float dtype")));
    }
    Ok(d)
}

/// `RotaryEmbedding` (opset 23): rotates the first `rotary_embedding_dim` features of
/// each head by the position's angle, pairs taken as halves or (`interleaved`) adjacent.
fn rotary_embedding(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, cos, sin) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let pos = cx.opt_input(3);
    let out = float_input(cx, x, "input")?;
    float_input(cx, cos, "cos_cache")?;
    float_input(cx, sin, "sin_cache")?;
    let interleaved = cx.attr_int("interleaved")?.unwrap_or(0) != 0;
    let d = dims_of(cx, x);
    // To [B, S, H, D].
    let xin = match d.len() {
        4 => cx.emit1(
            Op::Transpose {
                perm: vec![0, 2, 1, 3],
            },
            &[x],
        )?,
        3 => {
            let h = match cx.attr_int("num_heads")? {
                Some(h) if h > 0 && d[2].is_multiple_of(h as usize) => h as usize,
                Some(h) => {
                    return Err(cx.err(format!(
                        "num_heads = {h} does not divide the hidden size {}",
                        d[2]
                    )));
                }
                None => return Err(cx.err("input is 3-D, so num_heads must be given")),
            };
            reshape(cx, x, vec![d[0], d[1], h, d[2] / h])?
        }
        r => {
            return Err(cx.err(format!(
                "input has rank {r}; expected 3 ([batch, seq, hidden]) or 4 ([batch, heads, seq, head_size])"
            )));
        }
    };
    let xd = dims_of(cx, xin);
    let (b, s, h, hd) = (xd[0], xd[1], xd[2], xd[3]);
    let rd = match cx.attr_int("rotary_embedding_dim")?.unwrap_or(0) {
        0 => hd,
        r if r > 0 && r as usize <= hd && r % 2 == 0 => r as usize,
        r => {
            return Err(cx.err(format!(
                "rotary_embedding_dim = {r} must be even and at most the head size {hd}"
            )));
        }
    };
    if rd % 2 != 0 {
        return Err(cx.err(format!("the head size {hd} must be even")));
    }
    let half = rd / 2;
    let c = wide(out);
    let mut caches = Vec::new();
    for (name, cache) in [("cos_cache", cos), ("sin_cache", sin)] {
        let cd = dims_of(cx, cache);
        let g = match pos {
            Some(p) => {
                if cd.len() != 2 || dims_of(cx, p) != [b, s] || !cx.ty(p).dtype.is_int() {
                    return Err(cx.err(format!(
                        "with position_ids (integers [batch, seq]), {name} must be 2-D [max_position, rotary_dim / 2]; got {} and {}",
                        cx.ty(cache),
                        cx.ty(p)
                    )));
                }
                cx.emit1(Op::Gather { axis: 0 }, &[cache, p])?
            }
            None => {
                if cd.len() != 3 || cd[..2] != [b, s] {
                    return Err(cx.err(format!(
                        "without position_ids, {name} must be [batch = {b}, seq = {s}, rotary_dim / 2], got {}",
                        cx.ty(cache).shape
                    )));
                }
                cache
            }
        };
        let w = *dims_of(cx, g).last().unwrap_or(&0);
        if w < half {
            return Err(cx.err(format!(
                "{name} has {w} entries per position, fewer than rotary_dim / 2 = {half}"
            )));
        }
        let g = if w > half {
            slice_last(cx, g, 0, half, 1)?
        } else {
            g
        };
        let g = reshape(cx, g, vec![b, s, 1, half])?;
        caches.push(cast(cx, g, c)?);
    }
    let (cos, sin) = (caches[0], caches[1]);
    let xw = cast(cx, xin, c)?;
    let rot = if rd < hd {
        slice_last(cx, xw, 0, rd, 1)?
    } else {
        xw
    };
    let (x1, x2) = if interleaved {
        (
            slice_last(cx, rot, 0, rd, 2)?,
            slice_last(cx, rot, 1, rd, 2)?,
        )
    } else {
        (
            slice_last(cx, rot, 0, half, 1)?,
            slice_last(cx, rot, half, rd, 1)?,
        )
    };
    let cx1 = bin(cx, BinaryOp::Mul, cos, x1)?;
    let sx2 = bin(cx, BinaryOp::Mul, sin, x2)?;
    let real = bin(cx, BinaryOp::Sub, cx1, sx2)?;
    let sx1 = bin(cx, BinaryOp::Mul, sin, x1)?;
    let cx2 = bin(cx, BinaryOp::Mul, cos, x2)?;
    let imag = bin(cx, BinaryOp::Add, sx1, cx2)?;
    let mut y = if interleaved {
        let real = reshape(cx, real, vec![b, s, h, half, 1])?;
        let imag = reshape(cx, imag, vec![b, s, h, half, 1])?;
        let pairs = cx.emit1(Op::Concat { axis: 4 }, &[real, imag])?;
        reshape(cx, pairs, vec![b, s, h, rd])?
    } else {
        cx.emit1(Op::Concat { axis: 3 }, &[real, imag])?
    };
    if rd < hd {
        let pass = slice_last(cx, xw, rd, hd, 1)?;
        y = cx.emit1(Op::Concat { axis: 3 }, &[y, pass])?;
    }
    let y = cast(cx, y, out)?;
    let y = if d.len() == 4 {
        cx.emit1(
            Op::Transpose {
                perm: vec![0, 2, 1, 3],
            },
            &[y],
        )?
    } else {
        reshape(cx, y, d)?
    };
    Ok(vec![y])
}

/// `x · sigmoid(alpha · x)` in the compute dtype.
fn silu(cx: &mut Ctx, x: ValueId, alpha: f64) -> R<ValueId> {
    let dtype = cx.ty(x).dtype;
    let ax = if alpha == 1.0 {
        x
    } else {
        let a = cx.constant(Tensor::full(dtype, Shape::scalar(), alpha));
        bin(cx, BinaryOp::Mul, x, a)?
    };
    let s = cx.emit1(Op::Unary(UnaryOp::Sigmoid), &[ax])?;
    bin(cx, BinaryOp::Mul, x, s)
}

/// `SwiGLU` (opset 28): `swish(a; alpha) · b`.
fn swiglu(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    let out = float_input(cx, a, "A")?;
    if cx.ty(b).dtype != out {
        return Err(cx.err(format!(
            "B is {}, but A is {out}; they must have the same dtype",
            cx.ty(b).dtype
        )));
    }
    let alpha = f64::from(cx.attr_float("alpha")?.unwrap_or(1.0));
    let c = wide(out);
    let (aw, bw) = (cast(cx, a, c)?, cast(cx, b, c)?);
    let gate = silu(cx, aw, alpha)?;
    let y = bin(cx, BinaryOp::Mul, gate, bw)?;
    Ok(vec![cast(cx, y, out)?])
}

/// `CausalConvWithState` (opset 27): a causal depthwise 1-D convolution of
/// `[B, C, L]` with weight `[C, 1, k]`, continuing from `past_state` `[B, C, k − 1]`
/// (zeros when absent). Outputs the convolution and the new state.
fn causal_conv_with_state(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let (bias, past) = (cx.opt_input(2), cx.opt_input(3));
    let out = float_input(cx, x, "input")?;
    let act = cx.attr_string("activation")?;
    let silu_act = match act.as_deref().unwrap_or("none") {
        "none" => false,
        "silu" | "swish" => true,
        other => {
            return Err(cx.err(format!(
                "activation {other:?}; expected \"silu\", \"swish\" or \"none\""
            )));
        }
    };
    let (xd, wd) = (dims_of(cx, x), dims_of(cx, w));
    if xd.len() != 3 {
        return Err(cx.err(format!(
            "input has rank {}; expected 3 ([batch, channels, length])",
            xd.len()
        )));
    }
    let (b, ch) = (xd[0], xd[1]);
    if wd.len() != 3 || wd[0] != ch || wd[1] != 1 || wd[2] == 0 {
        return Err(cx.err(format!(
            "weight {} must be [channels = {ch}, 1, k] with k ≥ 1",
            cx.ty(w).shape
        )));
    }
    if let Some(bi) = bias
        && dims_of(cx, bi) != [ch]
    {
        return Err(cx.err(format!(
            "bias {} must be [channels = {ch}]",
            cx.ty(bi).shape
        )));
    }
    let km1 = wd[2] - 1;
    let padded = if km1 == 0 {
        x
    } else {
        let state = match past {
            Some(p) => {
                if dims_of(cx, p) != [b, ch, km1] {
                    return Err(cx.err(format!(
                        "past_state {} must be [batch = {b}, channels = {ch}, k − 1 = {km1}]",
                        cx.ty(p).shape
                    )));
                }
                p
            }
            None => {
                cx.check_built("the zero state", b * ch * km1)?;
                let sh = shape(cx, vec![b, ch, km1])?;
                cx.constant(Tensor::full(out, sh, 0.0))
            }
        };
        cx.emit1(Op::Concat { axis: 2 }, &[state, x])?
    };
    let op = Op::Conv(ConvAttrs {
        strides: vec![1],
        pads: vec![0, 0],
        dilations: vec![1],
        group: ch,
    });
    let mut inputs = vec![padded, w];
    inputs.extend(bias);
    let mut y = cx.emit1(op, &inputs)?;
    if silu_act {
        let yw = cast(cx, y, wide(out))?;
        let yw = silu(cx, yw, 1.0)?;
        y = cast(cx, yw, out)?;
    }
    let total = dims_of(cx, padded)[2];
    let state = slice_last(cx, padded, total - km1, total, 1)?;
    Ok(vec![y, state])
}

/// `x[.., start..start + 1, ..]` along `axis` (the axis kept, of size 1).
fn step_slice(cx: &mut Ctx, x: ValueId, axis: usize, start: usize) -> R<ValueId> {
    cx.emit1(
        Op::Slice {
            axes: vec![axis],
            starts: vec![start as i64],
            ends: vec![start as i64 + 1],
            steps: vec![1],
        },
        &[x],
    )
}

/// `[B, T, H·D]` as `[B, H, T, D]`.
fn unpack_heads(cx: &mut Ctx, x: ValueId, heads: usize, what: &str) -> R<ValueId> {
    let d = dims_of(cx, x);
    if d.len() != 3 || !d[2].is_multiple_of(heads) {
        return Err(cx.err(format!(
            "{what} {} must be [batch, seq, heads · size] with {heads} heads",
            cx.ty(x).shape
        )));
    }
    let x = reshape(cx, x, vec![d[0], d[1], heads, d[2] / heads])?;
    cx.emit1(
        Op::Transpose {
            perm: vec![0, 2, 1, 3],
        },
        &[x],
    )
}

/// `LinearAttention` (opset 27): the recurrent state `S` `[B, Hkv, dk, dv]` updated token
/// by token (`linear`: `S += k⊗v`; `gated`: `S = exp(g)·S + k⊗v`; `delta`/`gated_delta`:
/// the value corrected by `β·(v − Sᵀk)` first) and read as `scale · qᵀS`, query heads in
/// contiguous groups per KV head. Computed in f32 (f64 for f64 inputs).
fn linear_attention(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (q, k, v) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let (past, decay, beta) = (cx.opt_input(3), cx.opt_input(4), cx.opt_input(5));
    let out = float_input(cx, q, "query")?;
    let operands = [
        ("key", Some(k)),
        ("value", Some(v)),
        ("past_state", past),
        ("decay", decay),
        ("beta", beta),
    ];
    for (name, x) in operands {
        if let Some(x) = x {
            float_input(cx, x, name)?;
        }
    }
    let rule = cx.attr_string("update_rule")?;
    let (gating, delta) = match rule.as_deref().unwrap_or("gated_delta") {
        "linear" => (false, false),
        "gated" => (true, false),
        "delta" => (false, true),
        "gated_delta" => (true, true),
        other => {
            return Err(cx.err(format!(
                "update_rule {other:?}; expected \"linear\", \"gated\", \"delta\" or \"gated_delta\""
            )));
        }
    };
    if gating != decay.is_some() || delta != beta.is_some() {
        return Err(cx.err(format!(
            "update_rule {:?} {} decay and {} beta",
            rule.as_deref().unwrap_or("gated_delta"),
            if gating { "needs" } else { "takes no" },
            if delta { "needs" } else { "takes no" }
        )));
    }
    let heads = |cx: &Ctx, name: &str| -> R<usize> {
        match cx.attr_int(name)? {
            Some(h) if h > 0 => Ok(h as usize),
            _ => Err(cx.err(format!("{name} must be given and positive"))),
        }
    };
    let (hq, hkv) = (heads(cx, "q_num_heads")?, heads(cx, "kv_num_heads")?);
    if !hq.is_multiple_of(hkv) {
        return Err(cx.err(format!(
            "q_num_heads {hq} is not a multiple of kv_num_heads {hkv}"
        )));
    }
    let c = if out == DType::F64 { out } else { DType::F32 };
    let q4 = unpack_heads(cx, q, hq, "query")?;
    let k4 = unpack_heads(cx, k, hkv, "key")?;
    let v4 = unpack_heads(cx, v, hkv, "value")?;
    let (qd, kd, vd) = (dims_of(cx, q4), dims_of(cx, k4), dims_of(cx, v4));
    let (b, t, dk, dv) = (qd[0], qd[2], qd[3], vd[3]);
    if kd[..3] != [b, hkv, t] || vd[..3] != [b, hkv, t] || kd[3] != dk {
        return Err(cx.err(format!(
            "query {}, key {} and value {} disagree on batch, length or key size",
            cx.ty(q).shape,
            cx.ty(k).shape,
            cx.ty(v).shape
        )));
    }
    if t == 0 {
        return Err(cx.err("the sequence is empty; there is no token to attend"));
    }
    let (q4, k4, v4) = (cast(cx, q4, c)?, cast(cx, k4, c)?, cast(cx, v4, c)?);
    // decay as [B, Hkv, T, 1 or dk], beta as [B, 1 or Hkv, T, 1].
    let decay4 = match decay {
        None => None,
        Some(g) => {
            let gd = dims_of(cx, g);
            let g4 = if gd.len() == 3 && gd[..2] == [b, t] && gd[2] == hkv {
                let g = reshape(cx, g, vec![b, t, hkv, 1])?;
                cx.emit1(
                    Op::Transpose {
                        perm: vec![0, 2, 1, 3],
                    },
                    &[g],
                )?
            } else if gd.len() == 3 && gd[..2] == [b, t] && gd[2] == hkv * dk {
                unpack_heads(cx, g, hkv, "decay")?
            } else {
                return Err(cx.err(format!(
                    "decay {} must be [batch, seq, kv_num_heads] or [batch, seq, kv_num_heads · d_k]",
                    cx.ty(g).shape
                )));
            };
            Some(cast(cx, g4, c)?)
        }
    };
    let beta4 = match beta {
        None => None,
        Some(bt) => {
            let bd = dims_of(cx, bt);
            if bd.len() != 3 || bd[..2] != [b, t] || !(bd[2] == hkv || bd[2] == 1) {
                return Err(cx.err(format!(
                    "beta {} must be [batch, seq, kv_num_heads or 1]",
                    cx.ty(bt).shape
                )));
            }
            let bt = reshape(cx, bt, vec![b, t, bd[2], 1])?;
            let bt = cx.emit1(
                Op::Transpose {
                    perm: vec![0, 2, 1, 3],
                },
                &[bt],
            )?;
            Some(cast(cx, bt, c)?)
        }
    };
    let state_dims = vec![b, hkv, dk, dv];
    let mut state = match past {
        Some(p) => {
            if dims_of(cx, p) != state_dims {
                return Err(cx.err(format!(
                    "past_state {} must be [batch, kv_num_heads, d_k, d_v] = [{b}, {hkv}, {dk}, {dv}]",
                    cx.ty(p).shape
                )));
            }
            cast(cx, p, c)?
        }
        None => {
            cx.check_built("the zero state", state_dims.iter().product())?;
            let sh = shape(cx, state_dims.clone())?;
            cx.constant(Tensor::full(c, sh, 0.0))
        }
    };
    let scale = match cx.attr_float("scale")? {
        Some(s) if s != 0.0 => f64::from(s),
        _ => 1.0 / (dk as f64).sqrt(),
    };
    let scale = cx.constant(Tensor::full(c, Shape::scalar(), scale));
    let groups = hq / hkv;
    let mut outs = Vec::with_capacity(t);
    for i in 0..t {
        let k_t = step_slice(cx, k4, 2, i)?; // [B, Hkv, 1, dk]
        let mut v_t = step_slice(cx, v4, 2, i)?; // [B, Hkv, 1, dv]
        if let Some(g) = decay4 {
            let g_t = step_slice(cx, g, 2, i)?;
            let gw = dims_of(cx, g_t)[3];
            let g_t = reshape(cx, g_t, vec![b, hkv, gw, 1])?;
            let e = cx.emit1(Op::Unary(UnaryOp::Exp), &[g_t])?;
            state = bin(cx, BinaryOp::Mul, state, e)?;
        }
        if let Some(bt) = beta4 {
            let retrieved = cx.emit1(Op::MatMul, &[k_t, state])?;
            let diff = bin(cx, BinaryOp::Sub, v_t, retrieved)?;
            let b_t = step_slice(cx, bt, 2, i)?;
            v_t = bin(cx, BinaryOp::Mul, b_t, diff)?;
        }
        let k_col = reshape(cx, k_t, vec![b, hkv, dk, 1])?;
        let outer = cx.emit1(Op::MatMul, &[k_col, v_t])?;
        state = bin(cx, BinaryOp::Add, state, outer)?;
        // Query heads h·groups..(h+1)·groups read KV head h.
        let q_t = step_slice(cx, q4, 2, i)?;
        let q_t = reshape(cx, q_t, vec![b, hkv, groups, dk])?;
        let o = cx.emit1(Op::MatMul, &[q_t, state])?;
        let o = bin(cx, BinaryOp::Mul, o, scale)?;
        outs.push(reshape(cx, o, vec![b, hq, 1, dv])?);
    }
    let y = if outs.len() == 1 {
        outs[0]
    } else {
        cx.emit1(Op::Concat { axis: 2 }, &outs)?
    };
    let y = cx.emit1(
        Op::Transpose {
            perm: vec![0, 2, 1, 3],
        },
        &[y],
    )?;
    let y = reshape(cx, y, vec![b, t, hq * dv])?;
    let y = cast(cx, y, out)?;
    let state_dtype = past.map_or(out, |p| cx.ty(p).dtype);
    let state = cast(cx, state, state_dtype)?;
    Ok(vec![y, state])
}
