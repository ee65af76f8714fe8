//! Gradient rules (vector-Jacobian products), one per differentiable op.
//!
//! A rule reads the forward inputs `x`, the forward outputs `y` and the gradients of the
//! outputs `gy` (`None` for an output nothing downstream differentiates), and emits IR
//! nodes computing the gradient of every input `i` with `need[i]`. It returns one entry
//! per input: `Some(gradient)` (same type as the input), or `None` when the input needs
//! none or its gradient is identically zero.
//!
//! Rules build the backward pass from ordinary IR ops only, so the training graph runs on
//! every backend: a convolution's input gradient is a convolution of the dilated output
//! gradient with the flipped, regrouped kernel; its weight gradient is a convolution of the
//! input with the output gradient as kernel; max-pool scatters through first-maximum masks
//! and strided-slice adjoints; gathers scatter through one-hot matrix products. Which forward
//! values a rule reads is its saved set (see the research note's table §1.2): e.g. `relu`,
//! `tanh`, `sigmoid`, `exp`, `softmax` read their output; `gelu`, `erf`, `log` their input.

mod elementwise;
mod linalg;
mod movement;
mod norm;
mod window;

use tessera_ir::{Op, ValueId};

use super::emit::Emitter;
use crate::PassError;

/// Gradients of `op`'s inputs. See the module documentation.
pub(crate) fn vjp(
    e: &mut Emitter,
    op: &Op,
    x: &[ValueId],
    y: &[ValueId],
    gy: &[Option<ValueId>],
    need: &[bool],
) -> Result<Vec<Option<ValueId>>, PassError> {
    // Single-output ops get their one gradient; multi-output ops look at `gy` themselves.
    let single = || gy[0].ok_or_else(|| e.error("invariant: rule called without a gradient"));
    match op {
        Op::Constant(_) => Ok(vec![]),
        Op::Identity => Ok(vec![Some(single()?)]),
        Op::Dropout { .. } => {
            // Inference-mode dropout is the identity; the mask output carries no gradient.
            Ok(vec![gy[0]])
        }
        Op::Unary(u) => elementwise::unary(e, *u, x[0], y[0], single()?),
        Op::Binary(b) => elementwise::binary(e, *b, x, y[0], single()?, need),
        Op::Where => elementwise::select(e, x, single()?, need),
        Op::Clip { min, max } => elementwise::clip(e, x[0], *min, *max, single()?),
        Op::Gelu { approximate } => elementwise::gelu(e, *approximate, x[0], single()?),
        Op::Cast { .. } => {
            let g = single()?;
            let to = e.dtype(x[0]);
            Ok(vec![Some(e.cast(g, to)?)])
        }
        Op::MatMul => linalg::matmul(e, x, single()?, need),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => linalg::gemm(
            e,
            x,
            single()?,
            need,
            (*alpha as f64, *beta as f64, *trans_a, *trans_b),
        ),
        Op::Attention { scale } => linalg::attention(e, x, single()?, need, *scale as f64),
        Op::Conv(a) => window::conv(e, a, x, single()?, need),
        Op::Pool { kind, attrs } => window::pool(e, *kind, attrs, x[0], y[0], single()?),
        Op::Reduce {
            op,
            axes,
            keep_dims,
        } => norm::reduce(e, *op, axes, *keep_dims, x[0], y[0], single()?),
        Op::Softmax { axis } => norm::softmax(e, *axis, y[0], single()?),
        Op::LogSoftmax { axis } => norm::log_softmax(e, *axis, y[0], single()?),
        Op::CumSum {
            axis,
            exclusive,
            reverse,
        } => norm::cumsum(e, *axis, *exclusive, *reverse, single()?),
        Op::LayerNorm { axis, epsilon, .. } => {
            if gy.iter().skip(1).any(Option::is_some) {
                return Err(e.error(
                    "the loss depends on layer_norm's mean/inverse-std outputs; their gradient is not supported",
                ));
            }
            norm::layer_norm(e, *axis, *epsilon as f64, x, single()?, need)
        }
        Op::BatchNorm { epsilon } => norm::batch_norm(e, *epsilon as f64, x, single()?, need),
        Op::Lrn {
            size,
            alpha,
            beta,
            bias,
        } => norm::lrn(
            e,
            *size,
            (*alpha as f64, *beta as f64, *bias as f64),
            x[0],
            single()?,
        ),
        Op::RmsNorm { axis, epsilon } => {
            norm::rms_norm(e, *axis, *epsilon as f64, x, single()?, need)
        }
        Op::Reshape { .. } => {
            let d = e.dims(x[0]);
            Ok(vec![Some(e.reshape(single()?, &d)?)])
        }
        Op::Transpose { perm } => {
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            Ok(vec![Some(e.transpose(single()?, &inv)?)])
        }
        Op::Expand { .. } => {
            let d = e.dims(x[0]);
            Ok(vec![Some(e.reduce_to(single()?, &d)?)])
        }
        Op::Concat { axis } => movement::concat(e, *axis, x, single()?, need),
        Op::Split { axis, .. } => movement::split(e, *axis, x[0], y, gy),
        Op::Slice {
            axes,
            starts,
            steps,
            ..
        } => movement::slice(e, axes, starts, steps, x[0], single()?),
        Op::Gather { axis } => movement::gather(e, *axis, x, single()?, need),
        Op::GatherElements { axis } => movement::gather_elements(e, *axis, x, single()?, need),
        Op::GatherNd { batch_dims } => movement::gather_nd(e, *batch_dims, x, single()?, need),
    }
}

/// Whether output `slot` of `op` has a (possibly) nonzero derivative with respect to the
/// op's float inputs. Piecewise-constant functions (`sign`, `floor`, `ceil`, `round`) and
/// non-float outputs do not.
pub(crate) fn differentiable(op: &Op, slot: usize) -> bool {
    use tessera_ir::{PoolKind, UnaryOp};
    match op {
        Op::Unary(u) => !matches!(
            u,
            UnaryOp::Sign | UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round
        ),
        Op::Binary(b) => !b.is_predicate(),
        Op::Dropout { .. } => slot == 0,
        Op::Pool {
            kind: PoolKind::Max { .. },
            ..
        } => slot == 0,
        _ => true,
    }
}
