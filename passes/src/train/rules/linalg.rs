//! Rules for contractions: `matmul`, `gemm` and fused `attention`.

use tessera_ir::{Op, ValueId};

use crate::PassError;
use crate::train::emit::Emitter;

type Grads = Result<Vec<Option<ValueId>>, PassError>;

/// numpy matmul: rank-1 operands are promoted (`[K]` → `[1, K]` on the left, `[K, 1]` on
/// the right), batch dims broadcast. `dA = dY·Bᵀ`, `dB = Aᵀ·dY`, each summed over the batch
/// dims its operand was broadcast along.
pub(super) fn matmul(e: &mut Emitter, x: &[ValueId], g: ValueId, need: &[bool]) -> Grads {
    let (a, b) = (x[0], x[1]);
    let (da, db) = (e.dims(a), e.dims(b));
    let pa = if da.len() == 1 {
        e.reshape(a, &[1, da[0]])?
    } else {
        a
    };
    let pb = if db.len() == 1 {
        e.reshape(b, &[db[0], 1])?
    } else {
        b
    };
    // The output with the promoted axes put back: [batch.., M, N].
    let mut gd = e.dims(g);
    if da.len() == 1 {
        let n = gd.len();
        gd.insert(n - usize::from(db.len() != 1), 1);
    }
    if db.len() == 1 {
        gd.push(1);
    }
    let gp = e.reshape(g, &gd)?;
    let ga = if need[0] {
        let bt = e.transpose_last2(pb)?;
        let full = e.matmul(gp, bt)?;
        let pd = e.dims(pa);
        let r = e.reduce_to(full, &pd)?;
        Some(e.reshape(r, &da)?)
    } else {
        None
    };
    let gb = if need[1] {
        let at = e.transpose_last2(pa)?;
        let full = e.matmul(at, gp)?;
        let pd = e.dims(pb);
        let r = e.reduce_to(full, &pd)?;
        Some(e.reshape(r, &db)?)
    } else {
        None
    };
    Ok(vec![ga, gb])
}

fn gemm_op(alpha: f64, trans_a: bool, trans_b: bool) -> Op {
    Op::Gemm {
        alpha: alpha as f32,
        beta: 0.0,
        trans_a,
        trans_b,
    }
}

/// `Y = α·op(A)·op(B) + β·C`: each operand gradient is one more `gemm` with the
/// transposes folded into its flags.
pub(super) fn gemm(
    e: &mut Emitter,
    x: &[ValueId],
    g: ValueId,
    need: &[bool],
    (alpha, beta, ta, tb): (f64, f64, bool, bool),
) -> Grads {
    let (a, b) = (x[0], x[1]);
    let ga = if need[0] {
        Some(if ta {
            // (α·g·op(B)ᵀ)ᵀ = α·op(B)·gᵀ
            e.op(gemm_op(alpha, tb, true), &[b, g])?
        } else {
            e.op(gemm_op(alpha, false, !tb), &[g, b])?
        })
    } else {
        None
    };
    let gb = if need[1] {
        Some(if tb {
            // (α·op(A)ᵀ·g)ᵀ = α·gᵀ·op(A)
            e.op(gemm_op(alpha, true, ta), &[g, a])?
        } else {
            e.op(gemm_op(alpha, !ta, false), &[a, g])?
        })
    } else {
        None
    };
    let gc = match x.get(2) {
        Some(&c) if need.get(2) == Some(&true) => {
            let s = e.scale(g, beta)?;
            let d = e.dims(c);
            Some(e.reduce_to(s, &d)?)
        }
        Some(_) => None,
        None => return Ok(vec![ga, gb]),
    };
    Ok(vec![ga, gb, gc])
}

/// Fused attention, differentiated by recomputing the probabilities from Q and K (as
/// flash attention's backward does): `P = softmax(Q·Kᵀ·s + M)`, `dV = Pᵀ·dO`,
/// `dP = dO·Vᵀ`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))`, `dQ = s·dS·K`, `dK = s·dSᵀ·Q`,
/// `dM = dS` summed to the mask's shape.
pub(super) fn attention(
    e: &mut Emitter,
    x: &[ValueId],
    g: ValueId,
    need: &[bool],
    scale: f64,
) -> Grads {
    let (q, k, v) = (x[0], x[1], x[2]);
    let last = e.rank(q) - 1;
    let kt = e.transpose_last2(k)?;
    let qk = e.matmul(q, kt)?;
    let mut s = e.scale(qk, scale)?;
    if let Some(&m) = x.get(3) {
        s = e.add(s, m)?;
    }
    let p = e.op(Op::Softmax { axis: last }, &[s])?;
    let gv = if need[2] {
        let pt = e.transpose_last2(p)?;
        Some(e.matmul(pt, g)?)
    } else {
        None
    };
    let any_score = need[0] || need[1] || need.get(3) == Some(&true);
    if !any_score {
        let mut out = vec![None, None, gv];
        if x.len() == 4 {
            out.push(None);
        }
        return Ok(out);
    }
    let vt = e.transpose_last2(v)?;
    let gp = e.matmul(g, vt)?;
    let gpp = e.mul(gp, p)?;
    let rs = e.sum(gpp, &[last], true)?;
    let c = e.sub(gp, rs)?;
    let gs = e.mul(p, c)?;
    let gq = if need[0] {
        let t = e.matmul(gs, k)?;
        Some(e.scale(t, scale)?)
    } else {
        None
    };
    let gk = if need[1] {
        let gst = e.transpose_last2(gs)?;
        let t = e.matmul(gst, q)?;
        Some(e.scale(t, scale)?)
    } else {
        None
    };
    let mut out = vec![gq, gk, gv];
    if let Some(&m) = x.get(3) {
        out.push(if need[3] {
            let d = e.dims(m);
            Some(e.reduce_to(gs, &d)?)
        } else {
            None
        });
    }
    Ok(out)
}
