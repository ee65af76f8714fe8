//! Type inference: the dtype and shape of every op's outputs from its inputs' types.
//!
//! [`Op::infer`] is the single source of truth for what an op accepts. Graph building,
//! the text parser and the verifier all call it; errors are plain messages that callers
//! wrap with the node they concern.
//!
//! `infer` checks the arity and dispatches; the rules live in one module per op family
//! (the families of the gradient rules in `tessera-passes`): [`elementwise`], [`linalg`]
//! (contractions), [`movement`], [`norm`] (reductions and normalizations) and [`window`]
//! (convolution and pooling). This module holds the checks they share.

mod elementwise;
mod linalg;
mod movement;
mod norm;
mod window;

use crate::{DType, Domain, Op, Shape, TensorType};

type Result<T> = std::result::Result<T, String>;

impl Op {
    /// The types of this op's outputs for the given input types, or a message saying why
    /// the inputs are not acceptable.
    pub fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>> {
        self.check_arity(inputs.len())?;
        match self {
            Op::Constant(t) => one(t.dtype(), t.shape().clone()),
            Op::Identity => Ok(vec![inputs[0].clone()]),
            Op::Dropout { ratio, mask } => elementwise::dropout(*ratio, *mask, inputs[0]),
            Op::Unary(u) => elementwise::unary(*u, inputs[0]),
            Op::Binary(b) => elementwise::binary(*b, inputs[0], inputs[1]),
            Op::Where => elementwise::select(inputs),
            Op::Clip { min, max } => elementwise::clip(*min, *max, inputs[0]),
            Op::Gelu { .. } => elementwise::gelu(inputs[0]),
            Op::Cast { to } => one(*to, inputs[0].shape.clone()),
            Op::MatMul => linalg::matmul(inputs[0], inputs[1]),
            Op::Gemm {
                trans_a, trans_b, ..
            } => linalg::gemm(*trans_a, *trans_b, inputs),
            Op::Attention { .. } => linalg::attention(inputs),
            Op::Conv(a) => window::conv(a, inputs),
            Op::Pool { kind, attrs } => window::pool(*kind, attrs, inputs[0]),
            Op::Reduce {
                op,
                axes,
                keep_dims,
            } => norm::reduce(*op, axes, *keep_dims, inputs[0]),
            Op::Softmax { axis } | Op::LogSoftmax { axis } => norm::softmax(*axis, inputs[0]),
            Op::CumSum { axis, .. } => norm::cumsum(*axis, inputs[0]),
            Op::LayerNorm { axis, stats, .. } => norm::layer_norm(*axis, *stats, inputs),
            Op::RmsNorm { axis, .. } => norm::rms_norm(*axis, inputs[0], inputs[1]),
            Op::BatchNorm { .. } => norm::batch_norm(inputs),
            Op::Lrn { size, .. } => norm::lrn(*size, inputs[0]),
            Op::Reshape { shape } => movement::reshape(shape, inputs[0]),
            Op::Transpose { perm } => movement::transpose(perm, inputs[0]),
            Op::Expand { shape } => movement::expand(shape, inputs[0]),
            Op::Concat { axis } => movement::concat(*axis, inputs),
            Op::Split { axis, sizes } => movement::split(*axis, sizes, inputs[0]),
            Op::Slice {
                axes,
                starts,
                ends,
                steps,
            } => movement::slice(axes, starts, ends, steps, inputs[0]),
            Op::Gather { axis } => movement::gather(*axis, inputs[0], inputs[1]),
            Op::GatherElements { axis } => movement::gather_elements(*axis, inputs[0], inputs[1]),
            Op::GatherNd { batch_dims } => movement::gather_nd(*batch_dims, inputs[0], inputs[1]),
        }
    }

    /// An error unless `n` inputs are within [`Op::arity`].
    fn check_arity(&self, n: usize) -> Result<()> {
        let (lo, hi) = self.arity();
        if n < lo || n > hi {
            let expected = if lo == hi {
                format!("{lo}")
            } else if hi == usize::MAX {
                format!("at least {lo}")
            } else {
                format!("{lo} to {hi}")
            };
            return Err(format!("expects {expected} input(s), got {n}"));
        }
        Ok(())
    }
}

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

/// A single output.
fn one(dtype: DType, s: Shape) -> Result<Vec<TensorType>> {
    Ok(vec![TensorType::new(dtype, s)])
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

fn need_axis(axis: usize, rank: usize) -> Result<()> {
    if axis < rank {
        Ok(())
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

fn shape(dims: Vec<usize>) -> Result<Shape> {
    Shape::new(dims).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BinaryOp, ConvAttrs, PoolKind};

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
