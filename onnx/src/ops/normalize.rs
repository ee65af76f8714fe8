//! Normalizations: `LayerNormalization`, `RMSNormalization`, `BatchNormalization`
//! (training mode decomposed), `LRN` and `LpNormalization` (a norm reduction and a
//! division).

use tessera_ir::{BinaryOp, Op, ReduceOp, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator, axis, dims_of, reshape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("LayerNormalization", layer_norm),
    ("BatchNormalization", batch_norm),
    ("LRN", lrn),
    ("RMSNormalization", rms_norm),
    ("LpNormalization", lp_norm),
];

/// `RMSNormalization` (opset 23) is the IR's `rms_norm`: `x / sqrt(mean(x²) + ε) · scale`
/// over axes `axis..rank`.
fn rms_norm(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, scale) = (cx.input(0)?, cx.input(1)?);
    let rank = cx.ty(x).shape.rank();
    let ax = axis(cx, cx.attr_int("axis")?.unwrap_or(-1), rank)?;
    let epsilon = cx.attr_float("epsilon")?.unwrap_or(1e-5);
    if cx.attr_int("stash_type")?.unwrap_or(1) != 1 {
        return Err(cx.err("only stash_type = 1 (float32 statistics) is supported"));
    }
    Ok(vec![
        cx.emit1(Op::RmsNorm { axis: ax, epsilon }, &[x, scale])?,
    ])
}

/// `LpNormalization`: `x / Σ|x|` (`p = 1`) or `x / sqrt(Σx²)` (`p = 2`) along `axis`; a
/// slice whose norm is 0 stays 0.
fn lp_norm(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    let ax = axis(cx, cx.attr_int("axis")?.unwrap_or(-1), rank)?;
    let p = cx.attr_int("p")?.unwrap_or(2);
    let mapped = match p {
        1 => cx.emit1(Op::Unary(UnaryOp::Abs), &[x])?,
        2 => cx.emit1(Op::Binary(BinaryOp::Mul), &[x, x])?,
        _ => return Err(cx.err(format!("p = {p}; only 1 and 2 are defined"))),
    };
    let mut norm = cx.emit1(
        Op::Reduce {
            op: ReduceOp::Sum,
            axes: vec![ax],
            keep_dims: true,
        },
        &[mapped],
    )?;
    if p == 2 {
        norm = cx.emit1(Op::Unary(UnaryOp::Sqrt), &[norm])?;
    }
    // An all-zero slice stays zero (onnxruntime divides by 1 there, not 0).
    let dtype = cx.ty(x).dtype;
    let zero = cx.constant(Tensor::full(dtype, Shape::scalar(), 0.0));
    let one = cx.constant(Tensor::full(dtype, Shape::scalar(), 1.0));
    let is_zero = cx.emit1(Op::Binary(BinaryOp::Equal), &[norm, zero])?;
    let norm = cx.emit1(Op::Where, &[is_zero, one, norm])?;
    Ok(vec![cx.emit1(Op::Binary(BinaryOp::Div), &[x, norm])?])
}

fn layer_norm(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    let ax = axis(cx, cx.attr_int("axis")?.unwrap_or(-1), rank)?;
    let epsilon = cx.attr_float("epsilon")?.unwrap_or(1e-5);
    if cx.attr_int("stash_type")?.unwrap_or(1) != 1 {
        return Err(cx.err("only stash_type = 1 (float32 statistics) is supported"));
    }
    let stats = cx.output_used(1) || cx.output_used(2);
    let inputs = cx.all_inputs();
    cx.emit(
        Op::LayerNorm {
            axis: ax,
            epsilon,
            stats,
        },
        &inputs,
    )
}

fn batch_norm(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let epsilon = cx.attr_float("epsilon")?.unwrap_or(1e-5);
    let inputs = (0..5).map(|k| cx.input(k)).collect::<R<Vec<_>>>()?;
    if cx.attr_int("training_mode")?.unwrap_or(0) != 0 || (1..5).any(|k| cx.output_used(k)) {
        return batch_norm_training(cx, &inputs, epsilon);
    }
    Ok(vec![cx.emit1(Op::BatchNorm { epsilon }, &inputs)?])
}

/// Training-mode batch normalization, decomposed: normalize with the batch statistics
/// (population variance) and update the running statistics with `momentum`.
fn batch_norm_training(cx: &mut Ctx, inputs: &[ValueId], epsilon: f32) -> R<Vec<ValueId>> {
    let [x, scale, bias, mean, var] = [inputs[0], inputs[1], inputs[2], inputs[3], inputs[4]];
    let d = dims_of(cx, x);
    if d.len() < 2 {
        return Err(cx.err("input must be [N, C, ...]"));
    }
    let dtype = cx.ty(x).dtype;
    let momentum = cx.attr_float("momentum")?.unwrap_or(0.9) as f64;
    let axes: Vec<usize> = (0..d.len()).filter(|&a| a != 1).collect();
    let mut stat = vec![1; d.len()];
    stat[1] = d[1];
    let reduce = |cx: &mut Ctx, v| {
        cx.emit1(
            Op::Reduce {
                op: ReduceOp::Mean,
                axes: axes.clone(),
                keep_dims: true,
            },
            &[v],
        )
    };
    let bin = |cx: &mut Ctx, op, a, b| cx.emit1(Op::Binary(op), &[a, b]);
    let scalar = |cx: &mut Ctx, v: f64| cx.constant(Tensor::full(dtype, Shape::scalar(), v));
    let cur_mean = reduce(cx, x)?;
    let centered = bin(cx, BinaryOp::Sub, x, cur_mean)?;
    let sq = bin(cx, BinaryOp::Mul, centered, centered)?;
    let cur_var = reduce(cx, sq)?;
    let eps = scalar(cx, epsilon as f64);
    let var_eps = bin(cx, BinaryOp::Add, cur_var, eps)?;
    let std = cx.emit1(Op::Unary(UnaryOp::Sqrt), &[var_eps])?;
    let normed = bin(cx, BinaryOp::Div, centered, std)?;
    let scale = reshape(cx, scale, stat.clone())?;
    let bias = reshape(cx, bias, stat)?;
    let scaled = bin(cx, BinaryOp::Mul, normed, scale)?;
    let y = bin(cx, BinaryOp::Add, scaled, bias)?;
    let keep = scalar(cx, momentum);
    let take = scalar(cx, 1.0 - momentum);
    let mut running = Vec::new();
    for (old, cur) in [(mean, cur_mean), (var, cur_var)] {
        let cur = reshape(cx, cur, vec![d[1]])?;
        let a = bin(cx, BinaryOp::Mul, old, keep)?;
        let b = bin(cx, BinaryOp::Mul, cur, take)?;
        running.push(bin(cx, BinaryOp::Add, a, b)?);
    }
    Ok(vec![y, running[0], running[1]])
}

fn lrn(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let size = cx
        .attr_int("size")?
        .ok_or_else(|| cx.err("attribute \"size\" is missing"))?;
    if size <= 0 {
        return Err(cx.err(format!("size {size} must be positive")));
    }
    let op = Op::Lrn {
        size: size as usize,
        alpha: cx.attr_float("alpha")?.unwrap_or(1e-4),
        beta: cx.attr_float("beta")?.unwrap_or(0.75),
        bias: cx.attr_float("bias")?.unwrap_or(1.0),
    };
    Ok(vec![cx.emit1(op, &[cx.input(0)?])?])
}
