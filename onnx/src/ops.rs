//! The op table: each supported ONNX op type and its translation into IR ops, with ONNX
//! defaults resolved for opsets 9 and later.

use tessera_ir::{
    BinaryOp, ConvAttrs, DType, GeluApprox, Op, PoolAttrs, PoolKind, ReduceOp, Shape, Tensor,
    UnaryOp, ValueId, broadcast_shapes,
};

use crate::context::Ctx;
use crate::error::ImportError;
use crate::tensor::{dtype_from_onnx, shape_from_dims};

type R<T> = Result<T, ImportError>;

/// Every ONNX op type (default domain) the importer translates.
pub(crate) const SUPPORTED: &[&str] = &[
    "Abs",
    "Add",
    "And",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Ceil",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "Cos",
    "Div",
    "Dropout",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Floor",
    "Gather",
    "GatherElements",
    "GatherND",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Greater",
    "GreaterOrEqual",
    "Identity",
    "IsInf",
    "IsNaN",
    "LRN",
    "LayerNormalization",
    "Less",
    "LessOrEqual",
    "Log",
    "LogSoftmax",
    "MatMul",
    "Max",
    "MaxPool",
    "Mean",
    "Min",
    "Mul",
    "Neg",
    "Not",
    "Or",
    "Pow",
    "Range",
    "Reciprocal",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Round",
    "Shape",
    "Sigmoid",
    "Sign",
    "Sin",
    "Size",
    "Slice",
    "Softmax",
    "Softplus",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "Tile",
    "Transpose",
    "Unsqueeze",
    "Where",
    "Xor",
];

fn unary_op(op_type: &str) -> Option<UnaryOp> {
    Some(match op_type {
        "Neg" => UnaryOp::Neg,
        "Abs" => UnaryOp::Abs,
        "Sign" => UnaryOp::Sign,
        "Relu" => UnaryOp::Relu,
        "Exp" => UnaryOp::Exp,
        "Log" => UnaryOp::Log,
        "Sqrt" => UnaryOp::Sqrt,
        "Reciprocal" => UnaryOp::Reciprocal,
        "Erf" => UnaryOp::Erf,
        "Tanh" => UnaryOp::Tanh,
        "Sigmoid" => UnaryOp::Sigmoid,
        "Softplus" => UnaryOp::Softplus,
        "Sin" => UnaryOp::Sin,
        "Cos" => UnaryOp::Cos,
        "Floor" => UnaryOp::Floor,
        "Ceil" => UnaryOp::Ceil,
        "Round" => UnaryOp::Round,
        "Not" => UnaryOp::Not,
        "IsNaN" => UnaryOp::IsNaN,
        _ => return None,
    })
}

fn binary_op(op_type: &str) -> Option<BinaryOp> {
    Some(match op_type {
        "Add" => BinaryOp::Add,
        "Sub" => BinaryOp::Sub,
        "Mul" => BinaryOp::Mul,
        "Div" => BinaryOp::Div,
        "Pow" => BinaryOp::Pow,
        "Equal" => BinaryOp::Equal,
        "Less" => BinaryOp::Less,
        "LessOrEqual" => BinaryOp::LessOrEqual,
        "Greater" => BinaryOp::Greater,
        "GreaterOrEqual" => BinaryOp::GreaterOrEqual,
        "And" => BinaryOp::And,
        "Or" => BinaryOp::Or,
        "Xor" => BinaryOp::Xor,
        _ => return None,
    })
}

/// A possibly negative axis made non-negative for `rank`.
fn axis(cx: &Ctx, a: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    if a < -r || a >= r {
        return Err(cx.err(format!("axis {a} is out of range for rank {rank}")));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

/// Normalized, sorted, de-duplicated axes.
fn axes(cx: &Ctx, raw: &[i64], rank: usize) -> R<Vec<usize>> {
    let mut out = raw
        .iter()
        .map(|&a| axis(cx, a, rank))
        .collect::<R<Vec<_>>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn shape(cx: &Ctx, dims: Vec<usize>) -> R<Shape> {
    Shape::new(dims).map_err(|e| cx.err(e.to_string()))
}

fn dims_of(cx: &Ctx, v: ValueId) -> Vec<usize> {
    cx.ty(v).shape.dims().to_vec()
}

fn reshape(cx: &mut Ctx, x: ValueId, dims: Vec<usize>) -> R<ValueId> {
    let s = shape(cx, dims)?;
    if cx.ty(x).shape == s {
        return Ok(x);
    }
    cx.emit1(Op::Reshape { shape: s }, &[x])
}

/// Translates the current node; returns one value per node output it supports.
pub(crate) fn convert(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let op_type = cx.op_type().to_string();
    if let Some(u) = unary_op(&op_type) {
        return Ok(vec![cx.emit1(Op::Unary(u), &[cx.input(0)?])?]);
    }
    if let Some(b) = binary_op(&op_type) {
        let (a, c) = (cx.input(0)?, cx.input(1)?);
        return Ok(vec![cx.emit1(Op::Binary(b), &[a, c])?]);
    }
    let one = |v: ValueId| Ok(vec![v]);
    match op_type.as_str() {
        "Identity" => one(cx.emit1(Op::Identity, &[cx.input(0)?])?),
        "IsInf" => {
            let neg = cx.attr_int("detect_negative")?.unwrap_or(1);
            let pos = cx.attr_int("detect_positive")?.unwrap_or(1);
            let x = cx.input(0)?;
            let inf = cx.emit1(Op::Unary(UnaryOp::IsInf), &[x])?;
            match (neg != 0, pos != 0) {
                (true, true) => one(inf),
                (false, false) => {
                    let f = cx.constant(Tensor::full(DType::Bool, cx.ty(x).shape.clone(), 0.0));
                    one(f)
                }
                (neg, _) => {
                    // One sign only: infinities whose sign matches.
                    let zero = cx.constant(Tensor::full(cx.ty(x).dtype, Shape::scalar(), 0.0));
                    let cmp = if neg {
                        BinaryOp::Less
                    } else {
                        BinaryOp::Greater
                    };
                    let side = cx.emit1(Op::Binary(cmp), &[x, zero])?;
                    one(cx.emit1(Op::Binary(BinaryOp::And), &[inf, side])?)
                }
            }
        }
        "Dropout" => dropout(cx),
        "Sum" | "Max" | "Min" | "Mean" => variadic(cx, &op_type),
        "Where" => {
            let (c, x, y) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
            one(cx.emit1(Op::Where, &[c, x, y])?)
        }
        "Clip" => clip(cx),
        "Gelu" => {
            let approximate = match cx.attr_string("approximate")?.as_deref().unwrap_or("none") {
                "none" => GeluApprox::None,
                "tanh" => GeluApprox::Tanh,
                other => return Err(cx.err(format!("unknown approximate {other:?}"))),
            };
            one(cx.emit1(Op::Gelu { approximate }, &[cx.input(0)?])?)
        }
        "Cast" => {
            let code = cx
                .attr_int("to")?
                .ok_or_else(|| cx.err("attribute \"to\" is missing"))?;
            let to = dtype_from_onnx(code as i32).map_err(|m| cx.err(m))?;
            one(cx.emit1(Op::Cast { to }, &[cx.input(0)?])?)
        }
        "MatMul" => {
            let (a, b) = (cx.input(0)?, cx.input(1)?);
            one(cx.emit1(Op::MatMul, &[a, b])?)
        }
        "Gemm" => {
            let op = Op::Gemm {
                alpha: cx.attr_float("alpha")?.unwrap_or(1.0),
                beta: cx.attr_float("beta")?.unwrap_or(1.0),
                trans_a: cx.attr_int("transA")?.unwrap_or(0) != 0,
                trans_b: cx.attr_int("transB")?.unwrap_or(0) != 0,
            };
            let inputs = cx.all_inputs();
            one(cx.emit1(op, &inputs)?)
        }
        "Conv" => conv(cx),
        "MaxPool" | "AveragePool" => pool(cx, &op_type),
        "GlobalAveragePool" | "GlobalMaxPool" => {
            let x = cx.input(0)?;
            let rank = cx.ty(x).shape.rank();
            if rank < 3 {
                return Err(cx.err("input must be [N, C, spatial...]"));
            }
            let op = if op_type == "GlobalAveragePool" {
                ReduceOp::Mean
            } else {
                ReduceOp::Max
            };
            one(cx.emit1(
                Op::Reduce {
                    op,
                    axes: (2..rank).collect(),
                    keep_dims: true,
                },
                &[x],
            )?)
        }
        "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" => {
            reduce(cx, &op_type)
        }
        "Softmax" | "LogSoftmax" => softmax(cx, op_type == "LogSoftmax"),
        "LayerNormalization" => {
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
        "BatchNormalization" => {
            let epsilon = cx.attr_float("epsilon")?.unwrap_or(1e-5);
            let inputs = (0..5).map(|k| cx.input(k)).collect::<R<Vec<_>>>()?;
            if cx.attr_int("training_mode")?.unwrap_or(0) != 0 || (1..5).any(|k| cx.output_used(k))
            {
                return batch_norm_training(cx, &inputs, epsilon);
            }
            one(cx.emit1(Op::BatchNorm { epsilon }, &inputs)?)
        }
        "LRN" => {
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
            one(cx.emit1(op, &[cx.input(0)?])?)
        }
        "Reshape" => {
            let x = cx.input(0)?;
            let target = cx
                .ints_input(1)?
                .ok_or_else(|| cx.err("the shape input is missing"))?;
            let allow_zero = cx.attr_int("allowzero")?.unwrap_or(0) != 0;
            let dims = reshape_target(cx, &dims_of(cx, x), &target, allow_zero)?;
            one(reshape(cx, x, dims)?)
        }
        "Flatten" => {
            let x = cx.input(0)?;
            let d = dims_of(cx, x);
            let a = cx.attr_int("axis")?.unwrap_or(1);
            // Flatten accepts axis == rank.
            let a = if a == d.len() as i64 {
                d.len()
            } else {
                axis(cx, a, d.len())?
            };
            let (outer, inner) = (d[..a].iter().product(), d[a..].iter().product());
            one(reshape(cx, x, vec![outer, inner])?)
        }
        "Squeeze" => {
            let x = cx.input(0)?;
            let d = dims_of(cx, x);
            let raw = if cx.opset >= 13 {
                cx.ints_input(1)?
            } else {
                cx.attr_ints("axes")?
            };
            let ax = match raw {
                Some(r) => axes(cx, &r, d.len())?,
                None => (0..d.len()).filter(|&i| d[i] == 1).collect(),
            };
            if let Some(&bad) = ax.iter().find(|&&a| d[a] != 1) {
                return Err(cx.err(format!("cannot squeeze axis {bad} of size {}", d[bad])));
            }
            let out = d
                .iter()
                .enumerate()
                .filter(|(i, _)| !ax.contains(i))
                .map(|(_, &n)| n)
                .collect();
            one(reshape(cx, x, out)?)
        }
        "Unsqueeze" => {
            let x = cx.input(0)?;
            let d = dims_of(cx, x);
            let raw = if cx.opset >= 13 {
                cx.ints_input(1)?
            } else {
                cx.attr_ints("axes")?
            };
            let raw = raw.ok_or_else(|| cx.err("axes are missing"))?;
            let rank = d.len() + raw.len();
            let ax = axes(cx, &raw, rank)?;
            if ax.len() != raw.len() {
                return Err(cx.err("axes repeat"));
            }
            let mut it = d.iter();
            let out = (0..rank)
                .map(|i| {
                    if ax.contains(&i) {
                        1
                    } else {
                        *it.next().expect("rank adds up")
                    }
                })
                .collect();
            one(reshape(cx, x, out)?)
        }
        "Transpose" => {
            let x = cx.input(0)?;
            let rank = cx.ty(x).shape.rank();
            let perm = match cx.attr_ints("perm")? {
                Some(p) => p
                    .iter()
                    .map(|&a| axis(cx, a, rank))
                    .collect::<R<Vec<_>>>()?,
                None => (0..rank).rev().collect(),
            };
            if perm.iter().enumerate().all(|(i, &p)| i == p) {
                return one(cx.emit1(Op::Identity, &[x])?);
            }
            one(cx.emit1(Op::Transpose { perm }, &[x])?)
        }
        "Concat" => {
            let inputs = cx.all_inputs();
            let first = *inputs.first().ok_or_else(|| cx.err("no inputs"))?;
            let rank = cx.ty(first).shape.rank();
            let a = axis(
                cx,
                cx.attr_int("axis")?
                    .ok_or_else(|| cx.err("attribute \"axis\" is missing"))?,
                rank,
            )?;
            one(cx.emit1(Op::Concat { axis: a }, &inputs)?)
        }
        "Split" => split(cx),
        "Slice" => slice(cx),
        "Gather" => {
            let (x, i) = (cx.input(0)?, cx.input(1)?);
            let a = axis(cx, cx.attr_int("axis")?.unwrap_or(0), cx.ty(x).shape.rank())?;
            one(cx.emit1(Op::Gather { axis: a }, &[x, i])?)
        }
        "GatherElements" => {
            let (x, i) = (cx.input(0)?, cx.input(1)?);
            let a = axis(cx, cx.attr_int("axis")?.unwrap_or(0), cx.ty(x).shape.rank())?;
            one(cx.emit1(Op::GatherElements { axis: a }, &[x, i])?)
        }
        "GatherND" => {
            let (x, i) = (cx.input(0)?, cx.input(1)?);
            let b = cx.attr_int("batch_dims")?.unwrap_or(0);
            if b < 0 {
                return Err(cx.err("batch_dims must be non-negative"));
            }
            one(cx.emit1(
                Op::GatherNd {
                    batch_dims: b as usize,
                },
                &[x, i],
            )?)
        }
        "Expand" => {
            let x = cx.input(0)?;
            let target = cx
                .ints_input(1)?
                .ok_or_else(|| cx.err("the shape input is missing"))?;
            let t = shape_from_dims(&target).map_err(|m| cx.err(m))?;
            let out = broadcast_shapes(&cx.ty(x).shape, &t)
                .ok_or_else(|| cx.err(format!("{} does not broadcast with {t}", cx.ty(x).shape)))?;
            if out == cx.ty(x).shape {
                return one(cx.emit1(Op::Identity, &[x])?);
            }
            one(cx.emit1(Op::Expand { shape: out }, &[x])?)
        }
        "Tile" => tile(cx),
        "Shape" => {
            let d: Vec<i64> = dims_of(cx, cx.input(0)?)
                .iter()
                .map(|&n| n as i64)
                .collect();
            let r = d.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let start = clamp(cx.attr_int("start")?.unwrap_or(0));
            let end = clamp(cx.attr_int("end")?.unwrap_or(r));
            let part = d[start..end.max(start)].to_vec();
            let n = part.len();
            one(cx
                .constant(Tensor::from_vec(Shape::from_dims(&[n]), part).expect("length matches")))
        }
        "Size" => {
            let n = cx.ty(cx.input(0)?).shape.numel() as i64;
            one(cx.constant(Tensor::scalar(n)))
        }
        "Constant" => constant(cx),
        "ConstantOfShape" => {
            let target = cx
                .ints_input(0)?
                .ok_or_else(|| cx.err("the shape input is missing"))?;
            let s = shape_from_dims(&target).map_err(|m| cx.err(m))?;
            let value = cx
                .attr_tensor("value")?
                .unwrap_or_else(|| Tensor::scalar(0f32));
            if value.numel() != 1 {
                return Err(cx.err("value must hold exactly one element"));
            }
            let v = value.to_f64_vec()[0];
            one(cx.constant(Tensor::full(value.dtype(), s, v)))
        }
        "Range" => {
            let (s, l, d) = (cx.const_input(0)?, cx.const_input(1)?, cx.const_input(2)?);
            let (Some(s), Some(l), Some(d)) = (s, l, d) else {
                return Err(cx.err("start, limit and delta are required"));
            };
            range(cx, &s, &l, &d).map(|v| vec![v])
        }
        other => Err(cx.err(format!(
            "{other} has no translation (importer bug: listed as supported)"
        ))),
    }
}

fn dropout(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let ratio = if cx.opset >= 12 {
        match cx.const_input(1)? {
            Some(t) => t.to_f64_vec().first().copied().unwrap_or(0.5) as f32,
            None => 0.5,
        }
    } else {
        cx.attr_float("ratio")?.unwrap_or(0.5)
    };
    let training = if cx.opset >= 12 {
        cx.const_input(2)?
            .is_some_and(|t| t.to_f64_vec().first().is_some_and(|&v| v != 0.0))
    } else {
        false
    };
    if training && ratio != 0.0 {
        return Err(cx.err("training-mode dropout is random and not supported"));
    }
    let mask = cx.output_used(1);
    cx.emit(Op::Dropout { ratio, mask }, &[x])
}

fn variadic(cx: &mut Ctx, op_type: &str) -> R<Vec<ValueId>> {
    let inputs = cx.all_inputs();
    let Some((&first, rest)) = inputs.split_first() else {
        return Err(cx.err("needs at least one input"));
    };
    let op = match op_type {
        "Max" => BinaryOp::Max,
        "Min" => BinaryOp::Min,
        _ => BinaryOp::Add,
    };
    if rest.is_empty() {
        return Ok(vec![cx.emit1(Op::Identity, &[first])?]);
    }
    let mut acc = first;
    for &v in rest {
        acc = cx.emit1(Op::Binary(op), &[acc, v])?;
    }
    if op_type == "Mean" {
        let n = cx.constant(Tensor::full(
            cx.ty(acc).dtype,
            Shape::scalar(),
            inputs.len() as f64,
        ));
        acc = cx.emit1(Op::Binary(BinaryOp::Div), &[acc, n])?;
    }
    Ok(vec![acc])
}

fn clip(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let (min, max) = if cx.opset >= 11 {
        let get = |t: Option<Tensor>| t.and_then(|t| t.to_f64_vec().first().copied());
        (get(cx.const_input(1)?), get(cx.const_input(2)?))
    } else {
        (
            cx.attr_float("min")?.map(f64::from),
            cx.attr_float("max")?.map(f64::from),
        )
    };
    let (min, max) = (
        min.unwrap_or(f64::NEG_INFINITY),
        max.unwrap_or(f64::INFINITY),
    );
    if min > max {
        // ONNX: every element becomes max when min > max.
        let t = Tensor::full(cx.ty(x).dtype, cx.ty(x).shape.clone(), max);
        return Ok(vec![cx.constant(t)]);
    }
    Ok(vec![cx.emit1(Op::Clip { min, max }, &[x])?])
}

/// Resolves ONNX `auto_pad`, `pads` and friends for `spatial` axes of `input` dims.
fn window_pads(
    cx: &Ctx,
    input: &[usize],
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
) -> R<Vec<usize>> {
    let sp = input.len();
    let auto = cx
        .attr_string("auto_pad")?
        .unwrap_or_else(|| "NOTSET".into());
    match auto.as_str() {
        "NOTSET" => {
            let pads = cx.attr_ints("pads")?.unwrap_or_else(|| vec![0; 2 * sp]);
            if pads.len() != 2 * sp || pads.iter().any(|&p| p < 0) {
                return Err(cx.err(format!(
                    "pads {pads:?} must be {} non-negative values",
                    2 * sp
                )));
            }
            Ok(pads.iter().map(|&p| p as usize).collect())
        }
        "VALID" => Ok(vec![0; 2 * sp]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut pads = vec![0; 2 * sp];
            for i in 0..sp {
                let out = input[i].div_ceil(strides[i]);
                let span = dilations[i] * (kernel[i] - 1) + 1;
                let total = ((out - 1) * strides[i] + span).saturating_sub(input[i]);
                let small = total / 2;
                let (b, e) = if auto == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
                pads[i] = b;
                pads[sp + i] = e;
            }
            Ok(pads)
        }
        other => Err(cx.err(format!("unknown auto_pad {other:?}"))),
    }
}

fn positive(cx: &Ctx, name: &str, v: Option<Vec<i64>>, n: usize) -> R<Vec<usize>> {
    let v = v.unwrap_or_else(|| vec![1; n]);
    if v.len() != n || v.iter().any(|&x| x <= 0) {
        return Err(cx.err(format!("{name} {v:?} must be {n} positive values")));
    }
    Ok(v.iter().map(|&x| x as usize).collect())
}

fn conv(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let (xd, wd) = (dims_of(cx, x), dims_of(cx, w));
    if xd.len() < 3 || wd.len() != xd.len() {
        return Err(cx.err(format!(
            "X {xd:?} and W {wd:?} must be [N, C, spatial...] and [M, C/group, k...]"
        )));
    }
    let sp = xd.len() - 2;
    let kernel = &wd[2..];
    if let Some(ks) = cx.attr_ints("kernel_shape")?
        && ks.iter().map(|&k| k as usize).ne(kernel.iter().copied())
    {
        return Err(cx.err(format!(
            "kernel_shape {ks:?} disagrees with W of shape {wd:?}"
        )));
    }
    let strides = positive(cx, "strides", cx.attr_ints("strides")?, sp)?;
    let dilations = positive(cx, "dilations", cx.attr_ints("dilations")?, sp)?;
    let pads = window_pads(cx, &xd[2..], kernel, &strides, &dilations)?;
    let group = cx.attr_int("group")?.unwrap_or(1);
    if group <= 0 {
        return Err(cx.err("group must be positive"));
    }
    let op = Op::Conv(ConvAttrs {
        strides,
        pads,
        dilations,
        group: group as usize,
    });
    let inputs = cx.all_inputs();
    Ok(vec![cx.emit1(op, &inputs)?])
}

fn pool(cx: &mut Ctx, op_type: &str) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let xd = dims_of(cx, x);
    if xd.len() < 3 {
        return Err(cx.err("input must be [N, C, spatial...]"));
    }
    let sp = xd.len() - 2;
    let kernel = positive(
        cx,
        "kernel_shape",
        Some(
            cx.attr_ints("kernel_shape")?
                .ok_or_else(|| cx.err("kernel_shape is missing"))?,
        ),
        sp,
    )?;
    let strides = positive(cx, "strides", cx.attr_ints("strides")?, sp)?;
    let dilations = positive(cx, "dilations", cx.attr_ints("dilations")?, sp)?;
    let pads = window_pads(cx, &xd[2..], &kernel, &strides, &dilations)?;
    let indices = cx.output_used(1);
    let column_major = indices && cx.attr_int("storage_order")?.unwrap_or(0) != 0;
    let kind = if op_type == "MaxPool" {
        PoolKind::Max { indices }
    } else {
        PoolKind::Average {
            count_include_pad: cx.attr_int("count_include_pad")?.unwrap_or(0) != 0,
        }
    };
    let attrs = PoolAttrs {
        kernel,
        strides,
        pads,
        dilations,
        ceil_mode: cx.attr_int("ceil_mode")?.unwrap_or(0) != 0,
    };
    let mut outs = cx.emit(Op::Pool { kind, attrs }, &[x])?;
    if column_major {
        outs[1] = column_major_indices(cx, outs[1], &xd)?;
    }
    Ok(outs)
}

/// Rewrites row-major flat indices into a `[N, C, spatial...]` tensor so that the spatial
/// part is column-major (MaxPool's `storage_order = 1`), with integer arithmetic.
fn column_major_indices(cx: &mut Ctx, idx: ValueId, dims: &[usize]) -> R<ValueId> {
    let spatial = &dims[2..];
    let plane: usize = spatial.iter().product();
    let int = |cx: &mut Ctx, v: usize| cx.constant(Tensor::scalar(v as i64));
    let bin = |cx: &mut Ctx, op, a, b| cx.emit1(Op::Binary(op), &[a, b]);
    let p = int(cx, plane);
    let planes = bin(cx, BinaryOp::Div, idx, p)?;
    let base = bin(cx, BinaryOp::Mul, planes, p)?;
    let mut rest = bin(cx, BinaryOp::Sub, idx, base)?;
    let mut acc = base;
    // Peel row-major coordinates off, outermost first; add each at its column-major stride.
    for (i, _) in spatial.iter().enumerate() {
        let row_stride: usize = spatial[i + 1..].iter().product();
        let col_stride: usize = spatial[..i].iter().product();
        let rs = int(cx, row_stride);
        let coord = bin(cx, BinaryOp::Div, rest, rs)?;
        let used = bin(cx, BinaryOp::Mul, coord, rs)?;
        rest = bin(cx, BinaryOp::Sub, rest, used)?;
        let cs = int(cx, col_stride);
        let term = bin(cx, BinaryOp::Mul, coord, cs)?;
        acc = bin(cx, BinaryOp::Add, acc, term)?;
    }
    Ok(acc)
}

fn reduce(cx: &mut Ctx, op_type: &str) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    let op = match op_type {
        "ReduceSum" => ReduceOp::Sum,
        "ReduceMean" => ReduceOp::Mean,
        "ReduceMax" => ReduceOp::Max,
        "ReduceMin" => ReduceOp::Min,
        _ => ReduceOp::Prod,
    };
    // Axes moved from attribute to input at opset 13 for ReduceSum, 18 for the others.
    let axes_as_input = cx.opset >= if op == ReduceOp::Sum { 13 } else { 18 };
    let raw = if axes_as_input {
        cx.ints_input(1)?
    } else {
        cx.attr_ints("axes")?
    };
    let keep_dims = cx.attr_int("keepdims")?.unwrap_or(1) != 0;
    let noop = cx.attr_int("noop_with_empty_axes")?.unwrap_or(0) != 0;
    let ax = match raw {
        Some(r) if !r.is_empty() => axes(cx, &r, rank)?,
        _ if noop => return Ok(vec![cx.emit1(Op::Identity, &[x])?]),
        _ => (0..rank).collect(),
    };
    Ok(vec![cx.emit1(
        Op::Reduce {
            op,
            axes: ax,
            keep_dims,
        },
        &[x],
    )?])
}

fn softmax(cx: &mut Ctx, log: bool) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    let make = |axis| {
        if log {
            Op::LogSoftmax { axis }
        } else {
            Op::Softmax { axis }
        }
    };
    if cx.opset >= 13 {
        let a = axis(cx, cx.attr_int("axis")?.unwrap_or(-1), d.len())?;
        return Ok(vec![cx.emit1(make(a), &[x])?]);
    }
    // Before opset 13 the input is coerced to 2-D at `axis` (default 1) and normalized
    // over the second dimension.
    let a = axis(cx, cx.attr_int("axis")?.unwrap_or(1), d.len().max(1))?;
    if a + 1 == d.len() {
        return Ok(vec![cx.emit1(make(a), &[x])?]);
    }
    let flat = reshape(
        cx,
        x,
        vec![d[..a].iter().product(), d[a..].iter().product()],
    )?;
    let y = cx.emit1(make(1), &[flat])?;
    Ok(vec![reshape(cx, y, d)?])
}

fn reshape_target(cx: &Ctx, input: &[usize], target: &[i64], allow_zero: bool) -> R<Vec<usize>> {
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => out.push(*input.get(i).ok_or_else(|| {
                cx.err(format!(
                    "shape {target:?} copies dimension {i}, which the input lacks"
                ))
            })?),
            t if t >= 0 => out.push(t as usize),
            _ => return Err(cx.err(format!("invalid shape {target:?}"))),
        }
    }
    let total: usize = input.iter().product();
    if let Some(i) = infer {
        let rest: usize = out.iter().product();
        if rest == 0 || !total.is_multiple_of(rest) {
            return Err(cx.err(format!("cannot reshape {input:?} to {target:?}")));
        }
        out[i] = total / rest;
    }
    if out.iter().product::<usize>() != total {
        return Err(cx.err(format!(
            "cannot reshape {input:?} ({total} elements) to {target:?}"
        )));
    }
    Ok(out)
}

fn split(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    let a = axis(cx, cx.attr_int("axis")?.unwrap_or(0), d.len())?;
    let given = if cx.opset >= 13 {
        cx.ints_input(1)?
    } else {
        cx.attr_ints("split")?
    };
    let n = cx.num_outputs();
    let sizes = match given {
        Some(s) => {
            if s.iter().any(|&v| v < 0) {
                return Err(cx.err(format!("split sizes {s:?} must be non-negative")));
            }
            s.iter().map(|&v| v as usize).collect()
        }
        None => {
            let parts = cx.attr_int("num_outputs")?.map_or(n, |v| v.max(0) as usize);
            if parts == 0 {
                return Err(cx.err("no outputs to split into"));
            }
            let chunk = d[a].div_ceil(parts);
            if cx.opset < 18 && !d[a].is_multiple_of(parts) {
                return Err(cx.err(format!(
                    "dimension {} does not split evenly into {parts}",
                    d[a]
                )));
            }
            (0..parts)
                .map(|i| chunk.min(d[a].saturating_sub(i * chunk)))
                .collect::<Vec<_>>()
        }
    };
    cx.emit(Op::Split { axis: a, sizes }, &[x])
}

fn slice(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    let (starts, ends, raw_axes, steps) = if cx.opset >= 10 {
        (
            cx.ints_input(1)?
                .ok_or_else(|| cx.err("starts are missing"))?,
            cx.ints_input(2)?
                .ok_or_else(|| cx.err("ends are missing"))?,
            cx.ints_input(3)?,
            cx.ints_input(4)?,
        )
    } else {
        (
            cx.attr_ints("starts")?
                .ok_or_else(|| cx.err("starts are missing"))?,
            cx.attr_ints("ends")?
                .ok_or_else(|| cx.err("ends are missing"))?,
            cx.attr_ints("axes")?,
            None,
        )
    };
    let n = starts.len();
    let raw_axes = raw_axes.unwrap_or_else(|| (0..n as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; n]);
    if ends.len() != n || raw_axes.len() != n || steps.len() != n {
        return Err(cx.err("starts, ends, axes and steps differ in length"));
    }
    let (mut axes_out, mut s_out, mut e_out, mut st_out) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let a = axis(cx, raw_axes[i], d.len())?;
        if axes_out.contains(&a) {
            return Err(cx.err(format!("axis {a} is sliced twice")));
        }
        let step = steps[i];
        if step == 0 {
            return Err(cx.err("slice step cannot be 0"));
        }
        let dim = d[a] as i64;
        let fix = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
        let (mut s, mut e) = (fix(starts[i]), fix(ends[i]));
        if step > 0 {
            s = s.clamp(0, dim);
            e = e.clamp(0, dim).max(s);
        } else {
            s = s.clamp(0, (dim - 1).max(0));
            e = e.clamp(-1, dim - 1).min(s);
            if dim == 0 {
                (s, e) = (-1, -1);
            }
        }
        if s == 0 && e == dim && step == 1 {
            continue; // The whole axis.
        }
        axes_out.push(a);
        s_out.push(s);
        e_out.push(e);
        st_out.push(step);
    }
    if axes_out.is_empty() {
        return Ok(vec![cx.emit1(Op::Identity, &[x])?]);
    }
    let op = Op::Slice {
        axes: axes_out,
        starts: s_out,
        ends: e_out,
        steps: st_out,
    };
    Ok(vec![cx.emit1(op, &[x])?])
}

/// `Tile` as data movement the IR already has: reshape to interleave unit axes, expand
/// them to the repeat counts, reshape back.
fn tile(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    let reps = cx
        .ints_input(1)?
        .ok_or_else(|| cx.err("repeats are missing"))?;
    if reps.len() != d.len() || reps.iter().any(|&r| r < 0) {
        return Err(cx.err(format!(
            "repeats {reps:?} must be {} non-negative values",
            d.len()
        )));
    }
    let (mut split, mut expanded, mut out) = (vec![], vec![], vec![]);
    for (&n, &r) in d.iter().zip(&reps) {
        split.extend([1, n]);
        expanded.extend([r as usize, n]);
        out.push(r as usize * n);
    }
    let v = reshape(cx, x, split)?;
    let s = shape(cx, expanded)?;
    let v = cx.emit1(Op::Expand { shape: s }, &[v])?;
    Ok(vec![reshape(cx, v, out)?])
}

fn constant(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let t = if let Some(t) = cx.attr_tensor("value")? {
        t
    } else if let Some(f) = cx.attr_float("value_float")? {
        Tensor::scalar(f)
    } else if let Some(i) = cx.attr_int("value_int")? {
        Tensor::scalar(i)
    } else if let Some(v) = cx.attr_floats("value_floats")? {
        let n = v.len();
        Tensor::from_vec(Shape::from_dims(&[n]), v).expect("length matches")
    } else if let Some(v) = cx.attr_ints("value_ints")? {
        let n = v.len();
        Tensor::from_vec(Shape::from_dims(&[n]), v).expect("length matches")
    } else if cx.has_attr("sparse_value")
        || cx.has_attr("value_string")
        || cx.has_attr("value_strings")
    {
        return Err(cx.err("sparse and string constants are not supported"));
    } else {
        return Err(cx.err("the constant has no value"));
    };
    Ok(vec![cx.constant(t)])
}

fn range(cx: &mut Ctx, start: &Tensor, limit: &Tensor, delta: &Tensor) -> R<ValueId> {
    let dtype = start.dtype();
    let get = |t: &Tensor| {
        t.to_f64_vec()
            .first()
            .copied()
            .ok_or_else(|| cx.err("range operands must be scalars"))
    };
    let (s, l, d) = (get(start)?, get(limit)?, get(delta)?);
    if d == 0.0 {
        return Err(cx.err("range delta cannot be 0"));
    }
    let n = ((l - s) / d).ceil().max(0.0);
    if n > tessera_ir::MAX_ELEMENTS as f64 {
        return Err(cx.err(format!("range of {n} elements is too large")));
    }
    let v: Vec<f64> = (0..n as usize).map(|i| s + i as f64 * d).collect();
    let len = v.len();
    let t = Tensor::from_vec(Shape::from_dims(&[len]), v)
        .expect("length matches")
        .cast(dtype);
    Ok(cx.constant(t))
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
