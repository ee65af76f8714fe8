//! Contractions: matrix products in f64.

use tessera_ir::{Tensor, TensorType};

use super::from_f64;
use crate::index::{broadcast_offsets, offsets, strides};

/// `c += a · b` for row-major `a: [m, k]`, `b: [k, n]`, `c: [m, n]`. The i-k-j order walks
/// `b` and `c` rows contiguously, which the compiler vectorizes.
pub(crate) fn gemm_acc(m: usize, n: usize, k: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
    for i in 0..m {
        let crow = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let aip = a[i * k + p];
            let brow = &b[p * n..(p + 1) * n];
            for (cj, bj) in crow.iter_mut().zip(brow) {
                *cj += aip * bj;
            }
        }
    }
}

pub(super) fn matmul(a: &Tensor, b: &Tensor, out: &TensorType) -> Tensor {
    let (sa, sb) = (a.shape().dims(), b.shape().dims());
    let (m, k) = if sa.len() == 1 {
        (1, sa[0])
    } else {
        (sa[sa.len() - 2], sa[sa.len() - 1])
    };
    let n = if sb.len() == 1 { 1 } else { sb[sb.len() - 1] };
    let batch_a = &sa[..sa.len().saturating_sub(2)];
    let batch_b = &sb[..sb.len().saturating_sub(2)];
    let rank = batch_a.len().max(batch_b.len());
    // The broadcast batch shape is the output's leading dims.
    let batch: Vec<usize> = out.shape.dims()[..rank].to_vec();
    let nb: usize = batch.iter().product();
    let oa = broadcast_offsets(batch_a, &batch).unwrap_or_else(|| (0..nb).collect());
    let ob = broadcast_offsets(batch_b, &batch).unwrap_or_else(|| (0..nb).collect());
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    let mut c = vec![0.0; nb * m * n];
    for i in 0..nb {
        let xa = &x[oa[i] * m * k..(oa[i] + 1) * m * k];
        let yb = &y[ob[i] * k * n..(ob[i] + 1) * k * n];
        gemm_acc(m, n, k, xa, yb, &mut c[i * m * n..(i + 1) * m * n]);
    }
    from_f64(out.dtype, out.shape.clone(), c)
}

/// A rank-2 tensor as row-major f64, transposed if asked.
fn matrix(t: &Tensor, transpose: bool) -> Vec<f64> {
    let v = t.to_f64_vec();
    if !transpose {
        return v;
    }
    let d = t.shape().dims();
    let s = strides(d);
    offsets(&[d[1], d[0]], &[s[1], s[0]], 0)
        .into_iter()
        .map(|o| v[o])
        .collect()
}

pub(super) fn gemm(
    a: &Tensor,
    b: &Tensor,
    c: Option<&Tensor>,
    (alpha, beta, trans_a, trans_b): (f32, f32, bool, bool),
    out: &TensorType,
) -> Tensor {
    let (m, n) = (out.shape.dims()[0], out.shape.dims()[1]);
    let k = if trans_a {
        a.shape().dims()[0]
    } else {
        a.shape().dims()[1]
    };
    let (x, y) = (matrix(a, trans_a), matrix(b, trans_b));
    let mut acc = vec![0.0; m * n];
    gemm_acc(m, n, k, &x, &y, &mut acc);
    let (alpha, beta) = (alpha as f64, beta as f64);
    for v in &mut acc {
        *v *= alpha;
    }
    if let Some(c) = c {
        let cv = c.to_f64_vec();
        let map = broadcast_offsets(c.shape().dims(), out.shape.dims());
        for (i, v) in acc.iter_mut().enumerate() {
            let ci = match &map {
                Some(mp) => cv[mp[i]],
                None => cv[i],
            };
            *v += beta * ci;
        }
    }
    from_f64(out.dtype, out.shape.clone(), acc)
}

/// `softmax(Q·Kᵀ·scale + mask)·V` per batch element, in f64: the definition, with the
/// scores materialized (this is the oracle, not the fast kernel).
pub(super) fn attention(x: &[&Tensor], scale: f32, out: &TensorType) -> Tensor {
    let (q, k, v) = (x[0], x[1], x[2]);
    let (qd, kd, vd) = (q.shape().dims(), k.shape().dims(), v.shape().dims());
    let r = qd.len();
    let (s, d, t, e) = (qd[r - 2], qd[r - 1], kd[r - 2], vd[r - 1]);
    let nb: usize = qd[..r - 2].iter().product();
    let (qv, kv, vv) = (q.to_f64_vec(), k.to_f64_vec(), v.to_f64_vec());
    let mut scores_shape = qd[..r - 2].to_vec();
    scores_shape.extend([s, t]);
    let mask: Option<Vec<f64>> = x.get(3).map(|m| {
        let mv = m.to_f64_vec();
        match broadcast_offsets(m.shape().dims(), &scores_shape) {
            Some(map) => map.into_iter().map(|o| mv[o]).collect(),
            None => mv,
        }
    });
    let mut y = vec![0.0; nb * s * e];
    for b in 0..nb {
        let (qb, kb, vb) = (&qv[b * s * d..], &kv[b * t * d..], &vv[b * t * e..]);
        for i in 0..s {
            let mut row: Vec<f64> = (0..t)
                .map(|j| {
                    let dot: f64 = (0..d).map(|c| qb[i * d + c] * kb[j * d + c]).sum();
                    let m = mask.as_ref().map_or(0.0, |m| m[(b * s + i) * t + j]);
                    dot * scale as f64 + m
                })
                .collect();
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for w in &mut row {
                *w = (*w - max).exp();
                sum += *w;
            }
            for c in 0..e {
                let acc: f64 = (0..t).map(|j| row[j] * vb[j * e + c]).sum();
                y[(b * s + i) * e + c] = acc / sum;
            }
        }
    }
    from_f64(out.dtype, out.shape.clone(), y)
}
