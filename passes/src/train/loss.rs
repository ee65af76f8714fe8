//! The built-in losses, appended to the forward graph as ordinary nodes.

use tessera_ir::{BinaryOp, DType, Graph, NodeRef, Op, Shape, TensorType, ValueId};

use super::emit::Emitter;
use super::spec::Loss;
use crate::PassError;

/// A graph input name not taken yet: `base`, `base_`, `base__`, ...
fn fresh_input(g: &Graph, base: &str) -> String {
    let mut name = base.to_string();
    while g.inputs().iter().any(|p| p.name == name) {
        name.push('_');
    }
    name
}

/// Appends `loss` over `y` to `g` and returns the scalar loss value. Mean-squared error
/// adds a `target` input, cross-entropy an i64 `labels` input.
pub(crate) fn build_loss(g: &mut Graph, loss: Loss, y: ValueId) -> Result<ValueId, PassError> {
    let ty = g.ty(y).clone();
    let rank = ty.shape.rank();
    let all: Vec<usize> = (0..rank).collect();
    let origin = NodeRef {
        id: None,
        name: format!("loss:{}", loss.name()),
        op: loss.name().into(),
    };
    let label = origin.name.clone();
    match loss {
        Loss::Sum => {
            let mut e = Emitter::new(g, label, origin, "autodiff");
            e.sum(y, &all, false)
        }
        Loss::Mse => {
            let name = fresh_input(g, "target");
            let target = g.add_input(name, ty);
            let mut e = Emitter::new(g, label, origin, "autodiff");
            let d = e.sub(y, target)?;
            let sq = e.mul(d, d)?;
            e.mean(sq, &all, false)
        }
        Loss::SoftmaxCrossEntropy => {
            if rank < 2 {
                return Err(PassError::Failed {
                    pass: "autodiff",
                    message: format!(
                        "softmax cross-entropy needs logits [N, C, ...] (classes on axis 1), got {ty}"
                    ),
                });
            }
            let dims = ty.shape.dims();
            let classes = dims[1];
            let mut ld = dims.to_vec();
            ld.remove(1);
            let lshape = Shape::new(ld.clone()).map_err(|e| PassError::Failed {
                pass: "autodiff",
                message: e.to_string(),
            })?;
            let name = fresh_input(g, "labels");
            let labels = g.add_input(name, TensorType::new(DType::I64, lshape));
            let mut e = Emitter::new(g, label, origin, "autodiff");
            let logp = e.op(Op::LogSoftmax { axis: 1 }, &[y])?;
            let mut col = ld.clone();
            col.insert(1, 1);
            let lc = e.reshape(labels, &col)?;
            let mut iota_dims = vec![1; rank];
            iota_dims[1] = classes;
            let iota = e.iota(DType::I64, classes, &iota_dims)?;
            let eq = e.binary(BinaryOp::Equal, lc, iota)?;
            let oh = e.cast(eq, ty.dtype)?;
            let picked = e.mul(oh, logp)?;
            let per = e.sum(picked, &[1], false)?;
            let m = e.mean(per, &(0..rank - 1).collect::<Vec<_>>(), false)?;
            e.neg(m)
        }
    }
}
