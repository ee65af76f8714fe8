//! Reference kernels, one function per op family.

mod contract;
mod elementwise;
mod movement;
mod normalize;
mod window;

use tessera_ir::{DType, Element, Op, Shape, Tensor, TensorType, dispatch_dtype};

/// Computes `op` on inputs whose types `op.infer` accepted, producing `out` types.
pub(super) fn eval(op: &Op, x: &[&Tensor], out: &[TensorType]) -> Result<Vec<Tensor>, String> {
    let one = |t: Tensor| Ok(vec![t]);
    match op {
        Op::Constant(t) => one(t.clone()),
        Op::Identity => one(x[0].clone()),
        Op::Dropout { mask, .. } => {
            let mut v = vec![x[0].clone()];
            if *mask {
                v.push(Tensor::full(DType::Bool, x[0].shape().clone(), 1.0));
            }
            Ok(v)
        }
        Op::Unary(u) => one(elementwise::unary(*u, x[0], &out[0])?),
        Op::Binary(b) => one(elementwise::binary(*b, x[0], x[1], &out[0])?),
        Op::Where => one(elementwise::select(x[0], x[1], x[2], &out[0])),
        Op::Clip { min, max } => one(elementwise::clip(x[0], *min, *max)),
        Op::Gelu { approximate } => one(elementwise::gelu(*approximate, x[0])),
        Op::Cast { to } => one(x[0].cast(*to)),
        Op::MatMul => one(contract::matmul(x[0], x[1], &out[0])),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => one(contract::gemm(
            x[0],
            x[1],
            x.get(2).copied(),
            (*alpha, *beta, *trans_a, *trans_b),
            &out[0],
        )),
        Op::Conv(a) => one(window::conv(x[0], x[1], x.get(2).copied(), a, &out[0])),
        Op::Pool { kind, attrs } => Ok(window::pool(x[0], *kind, attrs, out)),
        Op::Reduce {
            op,
            axes,
            keep_dims: _,
        } => one(normalize::reduce(*op, x[0], axes, &out[0])),
        Op::Softmax { axis } => one(normalize::softmax(x[0], *axis, false)),
        Op::CumSum {
            axis,
            exclusive,
            reverse,
        } => one(normalize::cumsum(x[0], *axis, *exclusive, *reverse)),
        Op::LogSoftmax { axis } => one(normalize::softmax(x[0], *axis, true)),
        Op::LayerNorm {
            axis,
            epsilon,
            stats,
        } => Ok(normalize::layer_norm(
            x[0],
            x[1],
            x.get(2).copied(),
            *axis,
            *epsilon,
            *stats,
            out,
        )),
        Op::BatchNorm { epsilon } => one(normalize::batch_norm(x, *epsilon)),
        Op::Lrn {
            size,
            alpha,
            beta,
            bias,
        } => one(normalize::lrn(x[0], *size, *alpha, *beta, *bias)),
        Op::Reshape { shape } => one(x[0].reshape(shape.clone()).map_err(|e| e.to_string())?),
        Op::Transpose { perm } => one(movement::transpose(x[0], perm, &out[0])),
        Op::Expand { shape } => one(movement::expand(x[0], shape)),
        Op::Concat { axis } => one(movement::concat(x, *axis, &out[0])),
        Op::Split { axis, sizes } => Ok(movement::split(x[0], *axis, sizes)),
        Op::Slice {
            axes,
            starts,
            ends: _,
            steps,
        } => one(movement::slice(x[0], axes, starts, steps, &out[0])),
        Op::Gather { axis } => one(movement::gather(x[0], x[1], *axis, &out[0])?),
        Op::GatherElements { axis } => one(movement::gather_elements(x[0], x[1], *axis)?),
        Op::RmsNorm { axis, epsilon } => one(normalize::rms_norm(x[0], x[1], *axis, *epsilon)),
        Op::Attention { scale } => one(contract::attention(x, *scale, &out[0])),
        Op::GatherNd { batch_dims } => one(movement::gather_nd(x[0], x[1], *batch_dims, &out[0])?),
    }
}

/// A tensor of `dtype` from f64 values (rounded or converted as by `Element::from_f64`).
pub(super) fn from_f64(dtype: DType, shape: Shape, v: Vec<f64>) -> Tensor {
    fn go<T: Element>(shape: Shape, v: Vec<f64>) -> Tensor {
        Tensor::from_vec(shape, v.into_iter().map(T::from_f64).collect())
            .expect("invariant: kernels produce as many elements as the shape holds")
    }
    dispatch_dtype!(dtype, go(shape, v))
}

/// A tensor of `dtype` from i64 values (wrapping as by `Element::from_i64`).
pub(super) fn from_i64(dtype: DType, shape: Shape, v: Vec<i64>) -> Tensor {
    fn go<T: Element>(shape: Shape, v: Vec<i64>) -> Tensor {
        Tensor::from_vec(shape, v.into_iter().map(T::from_i64).collect())
            .expect("invariant: kernels produce as many elements as the shape holds")
    }
    dispatch_dtype!(dtype, go(shape, v))
}

/// Elements of `t` at `offsets`, as a tensor of `shape` (any dtype, no conversion).
pub(super) fn take(t: &Tensor, offsets: &[usize], shape: Shape) -> Tensor {
    fn go<T: Element>(t: &Tensor, offsets: &[usize], shape: Shape) -> Tensor {
        let s = t.as_slice::<T>().expect("invariant: dtype matches storage");
        Tensor::from_vec(shape, offsets.iter().map(|&o| s[o]).collect())
            .expect("invariant: one offset per output element")
    }
    dispatch_dtype!(t.dtype(), go(t, offsets, shape))
}
