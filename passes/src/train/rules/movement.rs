//! Rules for data movement: concat, split, slice and the gathers. Gathers scatter their
//! gradient back through a one-hot matrix product (`[index == j]` built with `equal`
//! against an iota), which sums repeated indices as a scatter-add would.

use tessera_ir::{BinaryOp, DType, ValueId};

use crate::PassError;
use crate::train::emit::Emitter;

type Grads = Result<Vec<Option<ValueId>>, PassError>;

pub(super) fn concat(
    e: &mut Emitter,
    axis: usize,
    x: &[ValueId],
    g: ValueId,
    need: &[bool],
) -> Grads {
    let mut at = 0i64;
    let mut out = Vec::with_capacity(x.len());
    for (i, &xi) in x.iter().enumerate() {
        let n = e.dims(xi)[axis] as i64;
        out.push(if need[i] {
            Some(e.slice(g, axis, at, at + n, 1)?)
        } else {
            None
        });
        at += n;
    }
    Ok(out)
}

pub(super) fn split(
    e: &mut Emitter,
    axis: usize,
    x: ValueId,
    y: &[ValueId],
    gy: &[Option<ValueId>],
) -> Grads {
    let dt = e.dtype(x);
    let mut parts = Vec::with_capacity(y.len());
    for (&yi, gi) in y.iter().zip(gy) {
        parts.push(match gi {
            Some(g) => *g,
            None => {
                let d = e.dims(yi);
                e.full(dt, &d, 0.0)?
            }
        });
    }
    Ok(vec![Some(e.concat(&parts, axis)?)])
}

/// The adjoint of a strided slice: the gradient placed at the positions the slice read
/// (interior zeros for the stride, zeros before and after), per sliced axis.
pub(super) fn slice(
    e: &mut Emitter,
    axes: &[usize],
    starts: &[i64],
    steps: &[i64],
    x: ValueId,
    g: ValueId,
) -> Grads {
    let xd = e.dims(x);
    let mut v = g;
    for i in 0..axes.len() {
        let a = axes[i];
        let (start, step) = (starts[i], steps[i]);
        let n = e.dims(v)[a] as i64;
        let dim = xd[a] as i64;
        if n == 0 {
            let mut d = e.dims(v);
            d[a] = xd[a];
            v = e.full(e.dtype(g), &d, 0.0)?;
            continue;
        }
        let stride = step.unsigned_abs() as usize;
        let (first, oriented) = if step > 0 {
            (start, v)
        } else {
            // Read backwards: flip so positions ascend, starting at the lowest one read.
            (start + (n - 1) * step, e.flip(v, a)?)
        };
        let last = first + (n - 1) * stride as i64;
        v = e.pad(oriented, a, first, dim - 1 - last, stride - 1, 0.0)?;
    }
    Ok(vec![Some(v)])
}

/// Indices with negatives counted from the end: `i < 0 ? i + dim : i` (`dim` broadcast).
fn normalize_indices(e: &mut Emitter, idx: ValueId, dim: ValueId) -> Result<ValueId, PassError> {
    let zero = e.scalar(e.dtype(idx), 0.0);
    let neg = e.binary(BinaryOp::Less, idx, zero)?;
    let wrapped = e.add(idx, dim)?;
    e.op(tessera_ir::Op::Where, &[neg, wrapped, idx])
}

/// `[idx == j]` as a float tensor: `idx` gets a trailing axis of `n` classes.
fn one_hot(e: &mut Emitter, idx: ValueId, n: usize, dtype: DType) -> Result<ValueId, PassError> {
    let mut d = e.dims(idx);
    d.push(1);
    let col = e.reshape(idx, &d)?;
    let iota = e.iota(e.dtype(idx), n, &[n])?;
    let eq = e.binary(BinaryOp::Equal, col, iota)?;
    e.cast(eq, dtype)
}

/// `gather(data, idx, axis)`: with data `[P.., D, Q..]` and `n` indices,
/// `ddata[p, j, q] = Σ_i [idx_i = j] · g[p, i, q]`, a matmul of the transposed one-hot
/// `[D, n]` with `g` viewed as `[P, n, Q]`.
pub(super) fn gather(
    e: &mut Emitter,
    axis: usize,
    x: &[ValueId],
    g: ValueId,
    need: &[bool],
) -> Grads {
    if !need[0] {
        return Ok(vec![None, None]);
    }
    let (data, idx) = (x[0], x[1]);
    let dd = e.dims(data);
    let p: usize = dd[..axis].iter().product();
    let q: usize = dd[axis + 1..].iter().product();
    let n = e.ty(idx).shape.numel();
    let flat = e.reshape(idx, &[n])?;
    let dim = e.scalar(e.dtype(idx), dd[axis] as f64);
    let norm = normalize_indices(e, flat, dim)?;
    let oh = one_hot(e, norm, dd[axis], e.dtype(data))?;
    let oht = e.transpose(oh, &[1, 0])?;
    let g3 = e.reshape(g, &[p, n, q])?;
    let r = e.matmul(oht, g3)?;
    Ok(vec![Some(e.reshape(r, &dd)?), None])
}

/// `gather_elements(data, idx, axis)`: one-hot along a new axis after `axis`, weighted by
/// `g` and summed over the index axis, then zero-padded where `idx` is smaller than the
/// data on the other axes.
pub(super) fn gather_elements(
    e: &mut Emitter,
    axis: usize,
    x: &[ValueId],
    g: ValueId,
    need: &[bool],
) -> Grads {
    if !need[0] {
        return Ok(vec![None, None]);
    }
    let (data, idx) = (x[0], x[1]);
    let (dd, id) = (e.dims(data), e.dims(idx));
    let dim = e.scalar(e.dtype(idx), dd[axis] as f64);
    let norm = normalize_indices(e, idx, dim)?;
    // [.., n, ..] → [.., n, 1, ..] == iota [1.., D, 1..] → [.., n, D, ..]
    let mut un = id.clone();
    un.insert(axis + 1, 1);
    let col = e.reshape(norm, &un)?;
    let mut iota_dims = vec![1; un.len()];
    iota_dims[axis + 1] = dd[axis];
    let iota = e.iota(e.dtype(idx), dd[axis], &iota_dims)?;
    let eq = e.binary(BinaryOp::Equal, col, iota)?;
    let oh = e.cast(eq, e.dtype(data))?;
    let gu = e.reshape(g, &un)?;
    let w = e.mul(oh, gu)?;
    let mut r = e.sum(w, &[axis], false)?;
    for (a, (&have, &want)) in id.iter().zip(&dd).enumerate() {
        if a != axis && have < want {
            r = e.pad(r, a, 0, (want - have) as i64, 0, 0.0)?;
        }
    }
    Ok(vec![Some(r), None])
}

/// `gather_nd(data, idx, batch_dims)`: each index tuple is turned into a linear offset
/// into the indexed dims, then scattered back like [`gather`], per batch element.
pub(super) fn gather_nd(
    e: &mut Emitter,
    batch_dims: usize,
    x: &[ValueId],
    g: ValueId,
    need: &[bool],
) -> Grads {
    if !need[0] {
        return Ok(vec![None, None]);
    }
    let (data, idx) = (x[0], x[1]);
    let (dd, id) = (e.dims(data), e.dims(idx));
    let b = batch_dims;
    let l = id[id.len() - 1];
    let bn: usize = dd[..b].iter().product();
    let indexed = &dd[b..b + l];
    let dn: usize = indexed.iter().product();
    let rn: usize = dd[b + l..].iter().product();
    let inn: usize = id[b..id.len() - 1].iter().product();
    let i3 = e.reshape(idx, &[bn, inn, l])?;
    let dims_t = tessera_ir::Tensor::from_vec(
        tessera_ir::Shape::from_dims(&[l]),
        indexed.iter().map(|&d| d as i64).collect::<Vec<i64>>(),
    )
    .map_err(|er| e.error(er.to_string()))?;
    let dims_v = e.constant(dims_t);
    let norm = normalize_indices(e, i3, dims_v)?;
    let mut strides = vec![1i64; l];
    for k in (0..l.saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * indexed[k + 1] as i64;
    }
    let st = tessera_ir::Tensor::from_vec(tessera_ir::Shape::from_dims(&[l]), strides)
        .map_err(|er| e.error(er.to_string()))?;
    let sv = e.constant(st);
    let weighted = e.mul(norm, sv)?;
    let lin = e.sum(weighted, &[2], false)?;
    let oh = one_hot(e, lin, dn, e.dtype(data))?;
    let oht = e.transpose(oh, &[0, 2, 1])?;
    let g3 = e.reshape(g, &[bn, inn, rn])?;
    let r = e.matmul(oht, g3)?;
    Ok(vec![Some(e.reshape(r, &dd)?), None])
}
