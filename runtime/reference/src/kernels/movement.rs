//! Data movement: every kernel computes source offsets and copies elements unchanged.

use tessera_ir::{Shape, Tensor, TensorType};

use super::take;
use crate::index::{broadcast_strides, offsets, strides};

pub(super) fn transpose(x: &Tensor, perm: &[usize], out: &TensorType) -> Tensor {
    let s = strides(x.shape().dims());
    let ps: Vec<isize> = perm.iter().map(|&p| s[p]).collect();
    take(x, &offsets(out.shape.dims(), &ps, 0), out.shape.clone())
}

pub(super) fn expand(x: &Tensor, shape: &Shape) -> Tensor {
    let st = broadcast_strides(x.shape().dims(), shape.dims());
    take(x, &offsets(shape.dims(), &st, 0), shape.clone())
}

pub(super) fn slice(
    x: &Tensor,
    axes: &[usize],
    starts: &[i64],
    steps: &[i64],
    out: &TensorType,
) -> Tensor {
    let s = strides(x.shape().dims());
    let mut vs = s.clone();
    let mut base = 0isize;
    for ((&a, &start), &step) in axes.iter().zip(starts).zip(steps) {
        vs[a] = s[a] * step as isize;
        if out.shape.dims()[a] > 0 {
            base += s[a] * start as isize;
        }
    }
    take(x, &offsets(out.shape.dims(), &vs, base), out.shape.clone())
}

/// Copies each input's block along `axis` into the output.
pub(super) fn concat(xs: &[&Tensor], axis: usize, out: &TensorType) -> Tensor {
    let od = out.shape.dims();
    let outer: usize = od[..axis].iter().product();
    let inner: usize = od[axis + 1..].iter().product();
    // Offsets into a virtual concatenation of all inputs, laid end to end.
    let mut bases = Vec::with_capacity(xs.len());
    let mut total = 0;
    for x in xs {
        bases.push(total);
        total += x.numel();
    }
    let mut offs = Vec::with_capacity(out.shape.numel());
    for o in 0..outer {
        for (x, &base) in xs.iter().zip(&bases) {
            let block = x.shape().dims()[axis] * inner;
            offs.extend((0..block).map(|i| base + o * block + i));
        }
    }
    let joined = joined(xs);
    take(&joined, &offs, out.shape.clone())
}

/// All inputs' elements end to end, as one rank-1 tensor (same dtype).
fn joined(xs: &[&Tensor]) -> Tensor {
    if xs.len() == 1 {
        let n = xs[0].numel();
        return xs[0]
            .reshape(Shape::from_dims(&[n]))
            .expect("same element count");
    }
    let mut bytes = Vec::new();
    for x in xs {
        bytes.extend(x.to_le_bytes());
    }
    let n = xs.iter().map(|x| x.numel()).sum::<usize>();
    Tensor::from_le_bytes(xs[0].dtype(), Shape::from_dims(&[n]), &bytes)
        .expect("invariant: inputs share a dtype")
}

pub(super) fn split(x: &Tensor, axis: usize, sizes: &[usize]) -> Vec<Tensor> {
    let dims = x.shape().dims();
    let s = strides(dims);
    let mut start = 0;
    sizes
        .iter()
        .map(|&n| {
            let mut od = dims.to_vec();
            od[axis] = n;
            let base = if n > 0 { s[axis] * start as isize } else { 0 };
            start += n;
            let shape = Shape::from_dims(&od);
            take(x, &offsets(&od, &s, base), shape)
        })
        .collect()
}

/// An index read from an i32/i64 tensor, made non-negative and bounds-checked.
fn index(raw: i64, dim: usize) -> Result<usize, String> {
    let i = if raw < 0 { raw + dim as i64 } else { raw };
    if i < 0 || i >= dim as i64 {
        Err(format!(
            "index {raw} is out of bounds for a dimension of size {dim}"
        ))
    } else {
        Ok(i as usize)
    }
}

pub(super) fn gather(
    data: &Tensor,
    idx: &Tensor,
    axis: usize,
    out: &TensorType,
) -> Result<Tensor, String> {
    let d = data.shape().dims();
    let outer: usize = d[..axis].iter().product();
    let inner: usize = d[axis + 1..].iter().product();
    let ix = idx
        .to_i64_vec()
        .into_iter()
        .map(|i| index(i, d[axis]))
        .collect::<Result<Vec<_>, _>>()?;
    let mut offs = Vec::with_capacity(out.shape.numel());
    for o in 0..outer {
        for &i in &ix {
            let base = (o * d[axis] + i) * inner;
            offs.extend(base..base + inner);
        }
    }
    Ok(take(data, &offs, out.shape.clone()))
}

pub(super) fn gather_elements(data: &Tensor, idx: &Tensor, axis: usize) -> Result<Tensor, String> {
    let d = data.shape().dims();
    let ds = strides(d);
    let id = idx.shape().dims();
    let is = strides(id);
    let ix = idx.to_i64_vec();
    let mut offs = Vec::with_capacity(ix.len());
    for (k, &raw) in ix.iter().enumerate() {
        let mut off = 0;
        let mut rest = k;
        for a in 0..id.len() {
            let coord = rest / is[a] as usize;
            rest %= is[a] as usize;
            let c = if a == axis { index(raw, d[a])? } else { coord };
            off += c * ds[a] as usize;
        }
        offs.push(off);
    }
    Ok(take(data, &offs, idx.shape().clone()))
}

pub(super) fn gather_nd(
    data: &Tensor,
    idx: &Tensor,
    batch_dims: usize,
    out: &TensorType,
) -> Result<Tensor, String> {
    let d = data.shape().dims();
    let ds = strides(d);
    let id = idx.shape().dims();
    let last = id[id.len() - 1];
    let ix = idx.to_i64_vec();
    let inner: usize = d[batch_dims + last..].iter().product();
    let batch: usize = d[..batch_dims].iter().product();
    let tuples = ix.len() / last;
    let per_batch = tuples / batch.max(1);
    let batch_stride = if batch_dims > 0 {
        ds[batch_dims - 1] as usize
    } else {
        0
    };
    let mut offs = Vec::with_capacity(out.shape.numel());
    for t in 0..tuples {
        let b = t / per_batch.max(1);
        let mut base = b * batch_stride;
        for j in 0..last {
            let a = batch_dims + j;
            base += index(ix[t * last + j], d[a])? * ds[a] as usize;
        }
        offs.extend(base..base + inner);
    }
    Ok(take(data, &offs, out.shape.clone()))
}
