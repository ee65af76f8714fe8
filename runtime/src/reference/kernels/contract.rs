//! Contractions: matrix products in f64.

use tessera_ir::{Tensor, TensorType};

use super::from_f64;
use crate::reference::index::{broadcast_offsets, offsets, strides};

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
