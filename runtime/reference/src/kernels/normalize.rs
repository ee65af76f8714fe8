//! Reductions (`reduce_*`, `cumsum`) and normalizations.

use tessera_ir::{DType, ReduceOp, Tensor, TensorType};

use super::{from_f64, from_i64};
use crate::index::{broadcast_offsets, offsets, strides};

/// Offsets that list `dims` with the axes in `moved` last (in their order), so that each
/// run of `prod(moved dims)` consecutive offsets is one reduction group.
fn grouped(dims: &[usize], moved: &[usize]) -> (Vec<usize>, usize) {
    let s = strides(dims);
    let mut vd = Vec::new();
    let mut vs = Vec::new();
    for (i, &d) in dims.iter().enumerate() {
        if !moved.contains(&i) {
            vd.push(d);
            vs.push(s[i]);
        }
    }
    for &i in moved {
        vd.push(dims[i]);
        vs.push(s[i]);
    }
    let group = moved.iter().map(|&i| dims[i]).product();
    (offsets(&vd, &vs, 0), group)
}

pub(super) fn reduce(op: ReduceOp, x: &Tensor, axes: &[usize], out: &TensorType) -> Tensor {
    let (offs, r) = grouped(x.shape().dims(), axes);
    let groups = out.shape.numel();
    if x.dtype() == DType::Bool {
        // Max is any, min is all (type inference admits only these for bool).
        let v = x.as_slice::<bool>().expect("invariant: bool storage");
        let y = (0..groups)
            .map(|g| {
                let mut it = offs[g * r..(g + 1) * r].iter().map(|&o| v[o]);
                if op == ReduceOp::Max {
                    it.any(|b| b)
                } else {
                    it.all(|b| b)
                }
            })
            .collect();
        return Tensor::from_vec(out.shape.clone(), y).expect("one per group");
    }
    if x.dtype().is_float() {
        let v = x.to_f64_vec();
        let y = (0..groups)
            .map(|g| {
                let it = offs[g * r..(g + 1) * r].iter().map(|&o| v[o]);
                match op {
                    ReduceOp::Sum => it.sum(),
                    ReduceOp::Mean => it.sum::<f64>() / r as f64,
                    ReduceOp::Prod => it.product(),
                    ReduceOp::Max => {
                        it.fold(
                            f64::NEG_INFINITY,
                            |m, v| if v.is_nan() || v > m { v } else { m },
                        )
                    }
                    ReduceOp::Min => {
                        it.fold(
                            f64::INFINITY,
                            |m, v| if v.is_nan() || v < m { v } else { m },
                        )
                    }
                }
            })
            .collect();
        from_f64(out.dtype, out.shape.clone(), y)
    } else {
        let v = x.to_i64_vec();
        let y = (0..groups)
            .map(|g| {
                let mut it = offs[g * r..(g + 1) * r].iter().map(|&o| v[o]);
                match op {
                    ReduceOp::Sum => it.fold(0i64, |a, b| a.wrapping_add(b)),
                    ReduceOp::Mean => it.fold(0i64, |a, b| a.wrapping_add(b)) / r.max(1) as i64,
                    ReduceOp::Prod => it.fold(1i64, |a, b| a.wrapping_mul(b)),
                    ReduceOp::Max => it.next().map_or(i64::MIN, |f| it.fold(f, i64::max)),
                    ReduceOp::Min => it.next().map_or(i64::MAX, |f| it.fold(f, i64::min)),
                }
            })
            .collect();
        from_i64(out.dtype, out.shape.clone(), y)
    }
}

/// Running sums along `axis`, in order from the first element (the last when `reverse`):
/// floats in f64, each output rounded once; integers wrapping.
pub(super) fn cumsum(x: &Tensor, axis: usize, exclusive: bool, reverse: bool) -> Tensor {
    fn scan<T: Copy>(
        offs: &[usize],
        r: usize,
        v: &[T],
        zero: T,
        add: impl Fn(T, T) -> T,
        (exclusive, reverse): (bool, bool),
    ) -> Vec<T> {
        let mut y = vec![zero; v.len()];
        for row in offs.chunks(r.max(1)) {
            let mut acc = zero;
            for k in 0..row.len() {
                let o = row[if reverse { row.len() - 1 - k } else { k }];
                let next = add(acc, v[o]);
                y[o] = if exclusive { acc } else { next };
                acc = next;
            }
        }
        y
    }
    let (offs, r) = grouped(x.shape().dims(), &[axis]);
    let (dtype, shape) = (x.dtype(), x.shape().clone());
    if dtype.is_float() {
        let y = scan(
            &offs,
            r,
            &x.to_f64_vec(),
            0.0,
            |a, b| a + b,
            (exclusive, reverse),
        );
        from_f64(dtype, shape, y)
    } else {
        let y = scan(
            &offs,
            r,
            &x.to_i64_vec(),
            0,
            i64::wrapping_add,
            (exclusive, reverse),
        );
        from_i64(dtype, shape, y)
    }
}

pub(super) fn softmax(x: &Tensor, axis: usize, log: bool) -> Tensor {
    let (offs, r) = grouped(x.shape().dims(), &[axis]);
    let v = x.to_f64_vec();
    let mut y = vec![0.0; v.len()];
    for row in offs.chunks(r.max(1)) {
        let max = row.iter().map(|&o| v[o]).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|&o| (v[o] - max).exp()).sum();
        for &o in row {
            y[o] = if log {
                v[o] - max - sum.ln()
            } else {
                (v[o] - max).exp() / sum
            };
        }
    }
    from_f64(x.dtype(), x.shape().clone(), y)
}

pub(super) fn layer_norm(
    x: &Tensor,
    scale: &Tensor,
    bias: Option<&Tensor>,
    axis: usize,
    epsilon: f32,
    stats: bool,
    out: &[TensorType],
) -> Vec<Tensor> {
    let dims = x.shape().dims();
    let norm = &dims[axis..];
    let r: usize = norm.iter().product();
    let rows = x.numel().checked_div(r).unwrap_or(0);
    let v = x.to_f64_vec();
    let expand = |t: &Tensor| {
        let tv = t.to_f64_vec();
        match broadcast_offsets(t.shape().dims(), norm) {
            Some(m) => m.into_iter().map(|o| tv[o]).collect(),
            None => tv,
        }
    };
    let sc: Vec<f64> = expand(scale);
    let bi: Vec<f64> = bias.map_or_else(|| vec![0.0; r], expand);
    let mut y = vec![0.0; v.len()];
    let (mut means, mut inv_stds) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for i in 0..rows {
        let row = &v[i * r..(i + 1) * r];
        let mean = row.iter().sum::<f64>() / r as f64;
        let var = row.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / r as f64;
        let inv = 1.0 / (var + epsilon as f64).sqrt();
        for j in 0..r {
            y[i * r + j] = (row[j] - mean) * inv * sc[j] + bi[j];
        }
        means.push(mean);
        inv_stds.push(inv);
    }
    let mut result = vec![from_f64(x.dtype(), x.shape().clone(), y)];
    if stats {
        result.push(from_f64(DType::F32, out[1].shape.clone(), means));
        result.push(from_f64(DType::F32, out[2].shape.clone(), inv_stds));
    }
    result
}

pub(super) fn batch_norm(x: &[&Tensor], epsilon: f32) -> Tensor {
    let dims = x[0].shape().dims();
    let c = dims[1];
    let inner: usize = dims[2..].iter().product();
    let v = x[0].to_f64_vec();
    let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| x[i].to_f64_vec());
    let y = v
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let ch = (i / inner.max(1)) % c;
            (a - mean[ch]) / (var[ch] + epsilon as f64).sqrt() * scale[ch] + bias[ch]
        })
        .collect();
    from_f64(x[0].dtype(), x[0].shape().clone(), y)
}

pub(super) fn lrn(x: &Tensor, size: usize, alpha: f32, beta: f32, bias: f32) -> Tensor {
    let dims = x.shape().dims();
    let c = dims[1];
    let inner: usize = dims[2..].iter().product();
    let v = x.to_f64_vec();
    let (lo, hi) = ((size - 1) / 2, (size - 1).div_ceil(2));
    let y = (0..v.len())
        .map(|i| {
            let ch = (i / inner) % c;
            let first = ch.saturating_sub(lo);
            let last = (ch + hi).min(c - 1);
            let base = i - ch * inner;
            let sq: f64 = (first..=last).map(|k| v[base + k * inner].powi(2)).sum();
            v[i] / (bias as f64 + alpha as f64 / size as f64 * sq).powf(beta as f64)
        })
        .collect();
    from_f64(x.dtype(), x.shape().clone(), y)
}

pub(super) fn rms_norm(x: &Tensor, scale: &Tensor, axis: usize, epsilon: f32) -> Tensor {
    let dims = x.shape().dims();
    let norm = &dims[axis..];
    let r: usize = norm.iter().product();
    let v = x.to_f64_vec();
    let sv = scale.to_f64_vec();
    let sc: Vec<f64> = match broadcast_offsets(scale.shape().dims(), norm) {
        Some(m) => m.into_iter().map(|o| sv[o]).collect(),
        None => sv,
    };
    let mut y = vec![0.0; v.len()];
    for (row, out) in v.chunks(r.max(1)).zip(y.chunks_mut(r.max(1))) {
        let ms = row.iter().map(|a| a * a).sum::<f64>() / r as f64;
        let inv = 1.0 / (ms + epsilon as f64).sqrt();
        for j in 0..row.len() {
            out[j] = row[j] * inv * sc[j];
        }
    }
    from_f64(x.dtype(), x.shape().clone(), y)
}
