//! Loss functions, expanded into IR ops: `NegativeLogLikelihoodLoss` is a gather of the
//! target class's score (and weight), a mask for `ignore_index` and a reduction;
//! `SoftmaxCrossEntropyLoss` is the same after a `log_softmax` over the class axis.

use tessera_ir::{BinaryOp, DType, Op, ReduceOp, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator, dims_of, reshape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("NegativeLogLikelihoodLoss", nll_loss),
    ("SoftmaxCrossEntropyLoss", softmax_cross_entropy),
];

fn nll_loss(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (input, target) = (cx.input(0)?, cx.input(1)?);
    let weight = cx.opt_input(2);
    Ok(vec![nll(cx, input, target, weight)?])
}

fn softmax_cross_entropy(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (scores, labels) = (cx.input(0)?, cx.input(1)?);
    let weight = cx.opt_input(2);
    if cx.ty(scores).shape.rank() < 2 {
        return Err(cx.err("scores must be [N, C, ...]"));
    }
    let log_prob = cx.emit1(Op::LogSoftmax { axis: 1 }, &[scores])?;
    let loss = nll(cx, log_prob, labels, weight)?;
    if cx.output_used(1) {
        Ok(vec![loss, log_prob])
    } else {
        Ok(vec![loss])
    }
}

/// `−input[n, target[n, d…], d…] · weight[target[n, d…]]`, 0 where the target is
/// `ignore_index`; then reduced: `none`, `sum`, or `mean` (the sum over the sum of the
/// weights that count).
fn nll(cx: &mut Ctx, input: ValueId, target: ValueId, weight: Option<ValueId>) -> R<ValueId> {
    let d = dims_of(cx, input);
    let td = dims_of(cx, target);
    let dtype = cx.ty(input).dtype;
    let tdtype = cx.ty(target).dtype;
    if !dtype.is_float() {
        return Err(cx.err(format!("input is {dtype}, expected a float dtype")));
    }
    if !matches!(tdtype, DType::I32 | DType::I64) {
        return Err(cx.err(format!("target is {tdtype}, expected i32 or i64")));
    }
    if d.len() < 2 || td.len() + 1 != d.len() || td[0] != d[0] || td[1..] != d[2..] {
        return Err(cx.err(format!(
            "input {} and target {} are not [N, C, d…] and [N, d…]",
            cx.ty(input).shape,
            cx.ty(target).shape
        )));
    }
    let reduction = cx
        .attr_string("reduction")?
        .unwrap_or_else(|| "mean".into());
    if !matches!(reduction.as_str(), "none" | "sum" | "mean") {
        return Err(cx.err(format!("unknown reduction {reduction:?}")));
    }
    let ignore = cx.attr_int("ignore_index")?;
    let scalar =
        |cx: &mut Ctx, dt: DType, v: f64| cx.constant(Tensor::full(dt, Shape::scalar(), v));
    // Ignored positions read class 0 (any valid class) and get weight 0.
    let (safe, keep) = match ignore {
        Some(ii) => {
            let ii = scalar(cx, tdtype, ii as f64);
            let hit = cx.emit1(Op::Binary(BinaryOp::Equal), &[target, ii])?;
            let zero = scalar(cx, tdtype, 0.0);
            let safe = cx.emit1(Op::Where, &[hit, zero, target])?;
            (safe, Some(cx.emit1(Op::Unary(UnaryOp::Not), &[hit])?))
        }
        None => (target, None),
    };
    let mut idx_dims = td.clone();
    idx_dims.insert(1, 1);
    let idx = reshape(cx, safe, idx_dims)?;
    let picked = cx.emit1(Op::GatherElements { axis: 1 }, &[input, idx])?;
    let picked = reshape(cx, picked, td.clone())?;
    let w = match weight {
        Some(w) => Some(cx.emit1(Op::Gather { axis: 0 }, &[w, safe])?),
        None => None,
    };
    let w = match (w, keep) {
        (Some(w), Some(keep)) => {
            let zero = scalar(cx, dtype, 0.0);
            Some(cx.emit1(Op::Where, &[keep, w, zero])?)
        }
        (Some(w), None) => Some(w),
        (None, Some(keep)) => Some(cx.emit1(Op::Cast { to: dtype }, &[keep])?),
        (None, None) => None,
    };
    let neg = cx.emit1(Op::Unary(UnaryOp::Neg), &[picked])?;
    let loss = match w {
        Some(w) => cx.emit1(Op::Binary(BinaryOp::Mul), &[neg, w])?,
        None => neg,
    };
    let sum_all = |cx: &mut Ctx, v: ValueId| {
        cx.emit1(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: (0..td.len()).collect(),
                keep_dims: false,
            },
            &[v],
        )
    };
    match reduction.as_str() {
        "none" => Ok(loss),
        "sum" => sum_all(cx, loss),
        _ => {
            let total = sum_all(cx, loss)?;
            let count = match w {
                Some(w) => sum_all(cx, w)?,
                None => {
                    let n: usize = td.iter().product();
                    scalar(cx, dtype, n as f64)
                }
            };
            cx.emit1(Op::Binary(BinaryOp::Div), &[total, count])
        }
    }
}
