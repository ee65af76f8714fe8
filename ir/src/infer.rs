//! Type inference: the dtype and shape of every op's outputs from its inputs' types.
//!
//! [`Op::infer`] is the single source of truth for what an op accepts. Graph building,
//! the text parser and the verifier all call it; errors are plain messages that callers
//! wrap with the node they concern.

use crate::{DType, Domain, Op, PoolKind, Shape, TensorType};

type Result<T> = std::result::Result<T, String>;

/// numpy broadcasting of two shapes.
pub fn broadcast_shapes(a: &Shape, b: &Shape) -> Option<Shape> {
    let (a, b) = (a.dims(), b.dims());
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Shape::new(out).ok()
}

fn broadcast(a: &Shape, b: &Shape) -> Result<Shape> {
    broadcast_shapes(a, b).ok_or_else(|| format!("shapes {a} and {b} do not broadcast"))
}

fn same_dtype(inputs: &[&TensorType]) -> Result<DType> {
    let d = inputs[0].dtype;
    for (i, t) in inputs.iter().enumerate().skip(1) {
        if t.dtype != d {
            return Err(format!(
                "input {i} has dtype {} but input 0 has {d}",
                t.dtype
            ));
        }
    }
    Ok(d)
}

fn need(domain: Domain, what: &str, d: DType) -> Result<()> {
    if domain.contains(d) {
        Ok(())
    } else {
        Err(format!(
            "{what} has dtype {d}, expected {}",
            domain.describe()
        ))
    }
}

fn need_rank(t: &TensorType, what: &str, rank: usize) -> Result<()> {
    if t.shape.rank() == rank {
        Ok(())
    } else {
        Err(format!("{what} must have rank {rank}, got {}", t.ty_str()))
    }
}

fn need_axis(axis: usize, rank: usize) -> Result<()> {
    if axis < rank {
        Ok(())
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

fn need_index_dtype(t: &TensorType) -> Result<()> {
    if matches!(t.dtype, DType::I32 | DType::I64) {
        Ok(())
    } else {
        Err(format!("indices must be i32 or i64, got {}", t.dtype))
    }
}

fn shape(dims: Vec<usize>) -> Result<Shape> {
    Shape::new(dims).map_err(|e| e.to_string())
}

impl TensorType {
    fn ty_str(&self) -> String {
        self.to_string()
    }
}

/// Output length of a sliding window (conv and pooling), ONNX rules.
fn window_out(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    pad_end: usize,
    ceil: bool,
) -> Result<usize> {
    if stride == 0 || dilation == 0 || kernel == 0 {
        return Err("kernel, strides and dilations must be positive".into());
    }
    let span = dilation * (kernel - 1) + 1;
    let padded = input + pad_begin + pad_end;
    if padded < span {
        return Err(format!(
            "window of span {span} does not fit in a padded input of {padded}"
        ));
    }
    let mut out = if ceil {
        (padded - span).div_ceil(stride) + 1
    } else {
        (padded - span) / stride + 1
    };
    // With ceil_mode the last window must start inside the input or its begin padding.
    if ceil && (out - 1) * stride >= input + pad_begin {
        out -= 1;
    }
    Ok(out)
}

impl Op {
    /// The types of this op's outputs for the given input types, or a message saying why
    /// the inputs are not acceptable.
    pub fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>> {
        let (lo, hi) = self.arity();
        if inputs.len() < lo || inputs.len() > hi {
            let expected = if lo == hi {
                format!("{lo}")
            } else if hi == usize::MAX {
                format!("at least {lo}")
            } else {
                format!("{lo} to {hi}")
            };
            return Err(format!("expects {expected} input(s), got {}", inputs.len()));
        }
        let one = |dtype: DType, s: Shape| Ok(vec![TensorType::new(dtype, s)]);
        match self {
            Op::Constant(t) => one(t.dtype(), t.shape().clone()),
            Op::Identity => Ok(vec![inputs[0].clone()]),
            Op::Dropout { ratio, mask } => {
                if !(0.0..1.0).contains(ratio) {
                    return Err(format!("ratio {ratio} is not in [0, 1)"));
                }
                let mut out = vec![inputs[0].clone()];
                if *mask {
                    out.push(TensorType::new(DType::Bool, inputs[0].shape.clone()));
                }
                Ok(out)
            }
            Op::Unary(u) => {
                need(u.domain(), "operand", inputs[0].dtype)?;
                let d = if u.is_predicate() {
                    DType::Bool
                } else {
                    inputs[0].dtype
                };
                one(d, inputs[0].shape.clone())
            }
            Op::Binary(b) => {
                let (x, y) = (inputs[0], inputs[1]);
                need(b.domain(), "left operand", x.dtype)?;
                need(b.domain(), "right operand", y.dtype)?;
                if *b != crate::BinaryOp::Pow && x.dtype != y.dtype {
                    return Err(format!(
                        "operands have different dtypes {} and {}",
                        x.dtype, y.dtype
                    ));
                }
                let s = broadcast(&x.shape, &y.shape)?;
                let d = if b.is_predicate() {
                    DType::Bool
                } else {
                    x.dtype
                };
                one(d, s)
            }
            Op::Where => {
                if inputs[0].dtype != DType::Bool {
                    return Err(format!("condition must be bool, got {}", inputs[0].dtype));
                }
                let d = same_dtype(&inputs[1..])?;
                let s = broadcast(
                    &broadcast(&inputs[0].shape, &inputs[1].shape)?,
                    &inputs[2].shape,
                )?;
                one(d, s)
            }
            Op::Clip { min, max } => {
                need(Domain::Numeric, "operand", inputs[0].dtype)?;
                if min > max {
                    return Err(format!("min {min} is greater than max {max}"));
                }
                Ok(vec![inputs[0].clone()])
            }
            Op::Gelu { approximate: _ } => {
                need(Domain::Float, "operand", inputs[0].dtype)?;
                Ok(vec![inputs[0].clone()])
            }
            Op::Cast { to } => one(*to, inputs[0].shape.clone()),
            Op::MatMul => infer_matmul(inputs[0], inputs[1]),
            Op::Gemm {
                trans_a, trans_b, ..
            } => {
                let d = same_dtype(inputs)?;
                need(Domain::Numeric, "operands", d)?;
                need_rank(inputs[0], "A", 2)?;
                need_rank(inputs[1], "B", 2)?;
                let a = inputs[0].shape.dims();
                let b = inputs[1].shape.dims();
                let (m, k) = if *trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
                let (k2, n) = if *trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
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
            Op::Conv(a) => {
                let d = same_dtype(inputs)?;
                need(Domain::Float, "operands", d)?;
                let x = inputs[0].shape.dims();
                let w = inputs[1].shape.dims();
                if x.len() < 3 {
                    return Err(format!(
                        "X must be [N, C, spatial...], got {}",
                        inputs[0].shape
                    ));
                }
                let sp = x.len() - 2;
                if w.len() != x.len() {
                    return Err(format!("W has rank {} but X has rank {}", w.len(), x.len()));
                }
                if a.strides.len() != sp || a.dilations.len() != sp || a.pads.len() != 2 * sp {
                    return Err(format!("attribute lengths do not match {sp} spatial axes"));
                }
                if a.group == 0 || x[1] != w[1] * a.group || !w[0].is_multiple_of(a.group) {
                    return Err(format!(
                        "channels do not match: X has {} channels, W is {}, group {}",
                        x[1], inputs[1].shape, a.group
                    ));
                }
                if let Some(b) = inputs.get(2)
                    && b.shape.dims() != [w[0]]
                {
                    return Err(format!("bias must be [{}], got {}", w[0], b.shape));
                }
                let mut out = vec![x[0], w[0]];
                for i in 0..sp {
                    out.push(window_out(
                        x[2 + i],
                        w[2 + i],
                        a.strides[i],
                        a.dilations[i],
                        a.pads[i],
                        a.pads[sp + i],
                        false,
                    )?);
                }
                one(d, shape(out)?)
            }
            Op::Pool { kind, attrs: a } => {
                let t = inputs[0];
                match kind {
                    PoolKind::Max { .. } => need(Domain::Numeric, "operand", t.dtype)?,
                    PoolKind::Average { .. } => need(Domain::Float, "operand", t.dtype)?,
                }
                let x = t.shape.dims();
                if x.len() < 3 {
                    return Err(format!("X must be [N, C, spatial...], got {}", t.shape));
                }
                let sp = x.len() - 2;
                if a.kernel.len() != sp
                    || a.strides.len() != sp
                    || a.dilations.len() != sp
                    || a.pads.len() != 2 * sp
                {
                    return Err(format!("attribute lengths do not match {sp} spatial axes"));
                }
                let mut out = vec![x[0], x[1]];
                for i in 0..sp {
                    if a.pads[i] >= a.kernel[i] * a.dilations[i]
                        || a.pads[sp + i] >= a.kernel[i] * a.dilations[i]
                    {
                        return Err("pads must be smaller than the window".into());
                    }
                    out.push(window_out(
                        x[2 + i],
                        a.kernel[i],
                        a.strides[i],
                        a.dilations[i],
                        a.pads[i],
                        a.pads[sp + i],
                        a.ceil_mode,
                    )?);
                }
                let out = shape(out)?;
                let mut types = vec![TensorType::new(t.dtype, out.clone())];
                if let PoolKind::Max { indices: true } = kind {
                    types.push(TensorType::new(DType::I64, out));
                }
                Ok(types)
            }
            Op::Reduce {
                op,
                axes,
                keep_dims,
            } => {
                let t = inputs[0];
                // The max and min of bools are any and all.
                let domain = match op {
                    crate::ReduceOp::Max | crate::ReduceOp::Min => Domain::Any,
                    _ => Domain::Numeric,
                };
                need(domain, "operand", t.dtype)?;
                let rank = t.shape.rank();
                if axes.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!("axes {axes:?} must be sorted and unique"));
                }
                if let Some(&a) = axes.last() {
                    need_axis(a, rank)?;
                }
                let mut out = Vec::new();
                for (i, &d) in t.shape.dims().iter().enumerate() {
                    if axes.contains(&i) {
                        if *keep_dims {
                            out.push(1);
                        }
                    } else {
                        out.push(d);
                    }
                }
                one(t.dtype, shape(out)?)
            }
            Op::Softmax { axis } | Op::LogSoftmax { axis } => {
                need(Domain::Float, "operand", inputs[0].dtype)?;
                need_axis(*axis, inputs[0].shape.rank())?;
                Ok(vec![inputs[0].clone()])
            }
            Op::LayerNorm {
                axis,
                epsilon: _,
                stats,
            } => {
                let x = inputs[0];
                need(Domain::Float, "X", x.dtype)?;
                need_axis(*axis, x.shape.rank())?;
                let norm = &x.shape.dims()[*axis..];
                for (i, t) in inputs.iter().enumerate().skip(1) {
                    if t.dtype != x.dtype {
                        return Err(format!(
                            "input {i} has dtype {}, X has {}",
                            t.dtype, x.dtype
                        ));
                    }
                    if broadcast_shapes(&t.shape, &x.shape).as_ref() != Some(&x.shape)
                        || t.shape.rank() > norm.len()
                    {
                        return Err(format!(
                            "input {i} of shape {} does not broadcast over the normalized axes {norm:?}",
                            t.shape
                        ));
                    }
                }
                let mut out = vec![x.clone()];
                if *stats {
                    let mut s = x.shape.dims()[..*axis].to_vec();
                    s.resize(x.shape.rank(), 1);
                    let st = TensorType::new(DType::F32, shape(s)?);
                    out.push(st.clone());
                    out.push(st);
                }
                Ok(out)
            }
            Op::BatchNorm { .. } => {
                let d = same_dtype(inputs)?;
                need(Domain::Float, "operands", d)?;
                let x = inputs[0].shape.dims();
                if x.len() < 2 {
                    return Err(format!("X must be [N, C, ...], got {}", inputs[0].shape));
                }
                for (i, t) in inputs.iter().enumerate().skip(1) {
                    if t.shape.dims() != [x[1]] {
                        return Err(format!("input {i} must be [{}], got {}", x[1], t.shape));
                    }
                }
                Ok(vec![inputs[0].clone()])
            }
            Op::Lrn { size, .. } => {
                need(Domain::Float, "operand", inputs[0].dtype)?;
                if inputs[0].shape.rank() < 3 || *size == 0 {
                    return Err("needs X of shape [N, C, spatial...] and a positive size".into());
                }
                Ok(vec![inputs[0].clone()])
            }
            Op::Reshape { shape: s } => {
                if s.numel() != inputs[0].shape.numel() {
                    return Err(format!(
                        "cannot reshape {} ({} elements) to {s} ({} elements)",
                        inputs[0].shape,
                        inputs[0].shape.numel(),
                        s.numel()
                    ));
                }
                one(inputs[0].dtype, s.clone())
            }
            Op::Transpose { perm } => {
                let x = inputs[0].shape.dims();
                let mut seen = vec![false; x.len()];
                if perm.len() != x.len()
                    || perm
                        .iter()
                        .any(|&p| p >= x.len() || std::mem::replace(&mut seen[p], true))
                {
                    return Err(format!(
                        "perm {perm:?} is not a permutation of rank {}",
                        x.len()
                    ));
                }
                one(
                    inputs[0].dtype,
                    shape(perm.iter().map(|&p| x[p]).collect())?,
                )
            }
            Op::Expand { shape: s } => {
                if broadcast_shapes(&inputs[0].shape, s).as_ref() != Some(s) {
                    return Err(format!("{} does not broadcast to {s}", inputs[0].shape));
                }
                one(inputs[0].dtype, s.clone())
            }
            Op::Concat { axis } => {
                let d = same_dtype(inputs)?;
                let first = inputs[0].shape.dims();
                need_axis(*axis, first.len())?;
                let mut total = 0usize;
                for (i, t) in inputs.iter().enumerate() {
                    let s = t.shape.dims();
                    if s.len() != first.len()
                        || s.iter()
                            .zip(first)
                            .enumerate()
                            .any(|(k, (a, b))| k != *axis && a != b)
                    {
                        return Err(format!(
                            "input {i} of shape {} does not match input 0 of shape {} outside axis {axis}",
                            t.shape, inputs[0].shape
                        ));
                    }
                    total += s[*axis];
                }
                let mut out = first.to_vec();
                out[*axis] = total;
                one(d, shape(out)?)
            }
            Op::Split { axis, sizes } => {
                let x = inputs[0].shape.dims();
                need_axis(*axis, x.len())?;
                if sizes.is_empty() || sizes.iter().sum::<usize>() != x[*axis] {
                    return Err(format!(
                        "split sizes {sizes:?} do not sum to dimension {} of axis {axis}",
                        x[*axis]
                    ));
                }
                sizes
                    .iter()
                    .map(|&n| {
                        let mut s = x.to_vec();
                        s[*axis] = n;
                        Ok(TensorType::new(inputs[0].dtype, shape(s)?))
                    })
                    .collect()
            }
            Op::Slice {
                axes,
                starts,
                ends,
                steps,
            } => {
                let x = inputs[0].shape.dims();
                let n = axes.len();
                if starts.len() != n || ends.len() != n || steps.len() != n {
                    return Err("axes, starts, ends and steps differ in length".into());
                }
                let mut out = x.to_vec();
                for i in 0..n {
                    let a = axes[i];
                    need_axis(a, x.len())?;
                    if axes[..i].contains(&a) {
                        return Err(format!("axis {a} is sliced twice"));
                    }
                    let dim = x[a] as i64;
                    let (s, e, st) = (starts[i], ends[i], steps[i]);
                    let ok = if st > 0 {
                        0 <= s && s <= e && e <= dim
                    } else if st < 0 {
                        -1 <= e && e <= s && s < dim.max(0)
                    } else {
                        false
                    };
                    // An empty slice of a negative step may have start == end == -1 on dim 0.
                    let empty_neg = st < 0 && dim == 0 && s == -1 && e == -1;
                    if !ok && !empty_neg {
                        return Err(format!(
                            "slice [{s}:{e}:{st}] on axis {a} of size {dim} is not normalized"
                        ));
                    }
                    out[a] = if st > 0 {
                        ((e - s) as usize).div_ceil(st as usize)
                    } else {
                        ((s - e) as usize).div_ceil((-st) as usize)
                    };
                }
                one(inputs[0].dtype, shape(out)?)
            }
            Op::Gather { axis } => {
                let (data, idx) = (inputs[0].shape.dims(), inputs[1]);
                need_index_dtype(idx)?;
                need_axis(*axis, data.len())?;
                let mut out = data[..*axis].to_vec();
                out.extend_from_slice(idx.shape.dims());
                out.extend_from_slice(&data[axis + 1..]);
                one(inputs[0].dtype, shape(out)?)
            }
            Op::GatherElements { axis } => {
                let (data, idx) = (inputs[0].shape.dims(), inputs[1]);
                need_index_dtype(idx)?;
                need_axis(*axis, data.len())?;
                let ix = idx.shape.dims();
                if ix.len() != data.len()
                    || ix
                        .iter()
                        .zip(data)
                        .enumerate()
                        .any(|(k, (i, d))| k != *axis && i > d)
                {
                    return Err(format!(
                        "indices of shape {} do not fit data of shape {}",
                        idx.shape, inputs[0].shape
                    ));
                }
                one(inputs[0].dtype, idx.shape.clone())
            }
            Op::RmsNorm { axis, epsilon: _ } => {
                let (x, scale) = (inputs[0], inputs[1]);
                need(Domain::Float, "X", x.dtype)?;
                need_axis(*axis, x.shape.rank())?;
                if scale.dtype != x.dtype {
                    return Err(format!(
                        "scale has dtype {}, X has {}",
                        scale.dtype, x.dtype
                    ));
                }
                if broadcast_shapes(&scale.shape, &x.shape).as_ref() != Some(&x.shape)
                    || scale.shape.rank() > x.shape.rank() - axis
                {
                    return Err(format!(
                        "scale of shape {} does not broadcast over the normalized axes of {}",
                        scale.shape, x.shape
                    ));
                }
                Ok(vec![x.clone()])
            }
            Op::Attention { .. } => infer_attention(inputs),
            Op::GatherNd { batch_dims } => {
                let (data, idx) = (inputs[0].shape.dims(), inputs[1]);
                if idx.dtype != DType::I64 {
                    return Err(format!("indices must be i64, got {}", idx.dtype));
                }
                let ix = idx.shape.dims();
                let b = *batch_dims;
                if ix.is_empty() || b >= ix.len() || b >= data.len() || data[..b] != ix[..b] {
                    return Err(format!(
                        "indices {} and data {} disagree with batch_dims {b}",
                        idx.shape, inputs[0].shape
                    ));
                }
                let last = ix[ix.len() - 1];
                if last < 1 || b + last > data.len() {
                    return Err(format!(
                        "index tuples of length {last} do not fit data of rank {}",
                        data.len()
                    ));
                }
                let mut out = ix[..ix.len() - 1].to_vec();
                out.extend_from_slice(&data[b + last..]);
                one(inputs[0].dtype, shape(out)?)
            }
        }
    }
}

fn infer_attention(inputs: &[&TensorType]) -> Result<Vec<TensorType>> {
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

fn infer_matmul(a: &TensorType, b: &TensorType) -> Result<Vec<TensorType>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BinaryOp, ConvAttrs};

    fn t(d: DType, dims: &[usize]) -> TensorType {
        TensorType::new(d, Shape::from_dims(dims))
    }

    #[test]
    fn broadcasting() {
        let out = Op::Binary(BinaryOp::Add)
            .infer(&[&t(DType::F32, &[2, 1, 3]), &t(DType::F32, &[4, 1])])
            .unwrap();
        assert_eq!(out[0], t(DType::F32, &[2, 4, 3]));
        let err = Op::Binary(BinaryOp::Add)
            .infer(&[&t(DType::F32, &[2, 3]), &t(DType::F32, &[4])])
            .unwrap_err();
        assert_eq!(err, "shapes [2,3] and [4] do not broadcast");
    }

    #[test]
    fn matmul_promotions() {
        let mm = |a: &[usize], b: &[usize]| {
            Op::MatMul
                .infer(&[&t(DType::F32, a), &t(DType::F32, b)])
                .map(|v| v[0].shape.dims().to_vec())
        };
        assert_eq!(mm(&[3], &[3]), Ok(vec![]));
        assert_eq!(mm(&[2, 3], &[3]), Ok(vec![2]));
        assert_eq!(mm(&[3], &[3, 4]), Ok(vec![4]));
        assert_eq!(mm(&[5, 1, 2, 3], &[7, 3, 4]), Ok(vec![5, 7, 2, 4]));
        assert!(mm(&[2, 3], &[4, 5]).is_err());
    }

    #[test]
    fn conv_output_shape() {
        let op = Op::Conv(ConvAttrs {
            strides: vec![2, 2],
            pads: vec![3, 3, 3, 3],
            dilations: vec![1, 1],
            group: 1,
        });
        let out = op
            .infer(&[
                &t(DType::F32, &[1, 3, 224, 224]),
                &t(DType::F32, &[64, 3, 7, 7]),
            ])
            .unwrap();
        assert_eq!(out[0], t(DType::F32, &[1, 64, 112, 112]));
    }

    #[test]
    fn pool_ceil_mode() {
        let pool = |ceil| Op::Pool {
            kind: PoolKind::Max { indices: false },
            attrs: crate::PoolAttrs {
                kernel: vec![3, 3],
                strides: vec![2, 2],
                pads: vec![0; 4],
                dilations: vec![1, 1],
                ceil_mode: ceil,
            },
        };
        let x = t(DType::F32, &[1, 1, 32, 32]);
        assert_eq!(
            pool(false).infer(&[&x]).unwrap()[0].shape.dims(),
            &[1, 1, 15, 15]
        );
        assert_eq!(
            pool(true).infer(&[&x]).unwrap()[0].shape.dims(),
            &[1, 1, 16, 16]
        );
    }

    #[test]
    fn arity_is_checked() {
        let err = Op::MatMul.infer(&[&t(DType::F32, &[2])]).unwrap_err();
        assert_eq!(err, "expects 2 input(s), got 1");
    }
}
