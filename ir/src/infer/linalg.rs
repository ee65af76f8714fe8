//! Contractions: `matmul`, `gemm` and fused `attention`.

use super::{Result, broadcast, broadcast_shapes, need, one, same_dtype, shape};
use crate::{Domain, Shape, TensorType};

/// numpy `matmul`: rank-1 operands are promoted and the added dimension removed again;
/// batch dimensions broadcast.
pub(super) fn matmul(a: &TensorType, b: &TensorType) -> Result<Vec<TensorType>> {
    if a.dtype != b.dtype {
        return Err(format!(
            "operands have different dtypes {} and {}",
            a.dtype, b.dtype
        ));
    }
    need(Domain::Numeric, "operands", a.dtype)?;
    let (sa, sb) = (a.shape.dims(), b.shape.dims());
    if sa.is_empty() || sb.is_empty() {
        return Err("operands must have rank >= 1".into());
    }
    let (m, k) = if sa.len() == 1 {
        (None, sa[0])
    } else {
        (Some(sa[sa.len() - 2]), sa[sa.len() - 1])
    };
    let (k2, n) = if sb.len() == 1 {
        (sb[0], None)
    } else {
        (sb[sb.len() - 2], Some(sb[sb.len() - 1]))
    };
    if k != k2 {
        return Err(format!(
            "inner dimensions differ: {} @ {}",
            a.shape, b.shape
        ));
    }
    let batch_a =
        Shape::new(sa[..sa.len().saturating_sub(2)].to_vec()).map_err(|e| e.to_string())?;
    let batch_b =
        Shape::new(sb[..sb.len().saturating_sub(2)].to_vec()).map_err(|e| e.to_string())?;
    let batch = broadcast(&batch_a, &batch_b)?;
    let mut out = batch.dims().to_vec();
    out.extend(m);
    out.extend(n);
    Ok(vec![TensorType::new(a.dtype, shape(out)?)])
}

/// `op(A) · op(B)` of rank-2 operands, with an optional C broadcast to `[M, N]`.
pub(super) fn gemm(
    trans_a: bool,
    trans_b: bool,
    inputs: &[&TensorType],
) -> Result<Vec<TensorType>> {
    let d = same_dtype(inputs)?;
    need(Domain::Numeric, "operands", d)?;
    need_rank(inputs[0], "A", 2)?;
    need_rank(inputs[1], "B", 2)?;
    let a = inputs[0].shape.dims();
    let b = inputs[1].shape.dims();
    let (m, k) = if trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
    let (k2, n) = if trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
    if k != k2 {
        return Err(format!(
            "inner dimensions differ: op(A) is [{m},{k}], op(B) is [{k2},{n}]"
        ));
    }
    let out = shape(vec![m, n])?;
    if let Some(c) = inputs.get(2)
        && broadcast_shapes(&c.shape, &out).as_ref() != Some(&out)
    {
        return Err(format!(
            "C of shape {} does not broadcast to {out}",
            c.shape
        ));
    }
    one(d, out)
}

/// Q `[..., S, D]`, K `[..., T, D]`, V `[..., T, E]` and an optional mask broadcast to the
/// scores `[..., S, T]`; the output is `[..., S, E]`.
pub(super) fn attention(inputs: &[&TensorType]) -> Result<Vec<TensorType>> {
    let d = same_dtype(inputs)?;
    need(Domain::Float, "operands", d)?;
    let (q, k, v) = (
        inputs[0].shape.dims(),
        inputs[1].shape.dims(),
        inputs[2].shape.dims(),
    );
    let r = q.len();
    if r < 2 || k.len() != r || v.len() != r {
        return Err(format!(
            "Q, K and V must have the same rank >= 2, got {}, {}, {}",
            inputs[0].shape, inputs[1].shape, inputs[2].shape
        ));
    }
    let batch = &q[..r - 2];
    if &k[..r - 2] != batch || &v[..r - 2] != batch {
        return Err(format!(
            "batch dimensions differ: Q {}, K {}, V {}",
            inputs[0].shape, inputs[1].shape, inputs[2].shape
        ));
    }
    let (s, dk, t) = (q[r - 2], q[r - 1], k[r - 2]);
    if k[r - 1] != dk || v[r - 2] != t {
        return Err(format!(
            "Q {} and K {} must share the last dimension; K and V {} the sequence dimension",
            inputs[0].shape, inputs[1].shape, inputs[2].shape
        ));
    }
    let mut scores = batch.to_vec();
    scores.extend([s, t]);
    let scores = shape(scores)?;
    if let Some(m) = inputs.get(3)
        && broadcast_shapes(&m.shape, &scores).as_ref() != Some(&scores)
    {
        return Err(format!(
            "mask {} does not broadcast to the scores {scores}",
            m.shape
        ));
    }
    let mut out = batch.to_vec();
    out.extend([s, v[r - 1]]);
    Ok(vec![TensorType::new(d, shape(out)?)])
}

fn need_rank(t: &TensorType, what: &str, rank: usize) -> Result<()> {
    if t.shape.rank() == rank {
        Ok(())
    } else {
        Err(format!("{what} must have rank {rank}, got {t}"))
    }
}
