//! Sliding-window ops over `[N, C, spatial...]` inputs: `Conv`, `MaxPool`, `AveragePool`
//! and their global forms, and `LpPool` (an average pool of `|x|^p`), with ONNX padding
//! (`auto_pad`, `pads`) resolved.

use tessera_ir::{
    BinaryOp, ConvAttrs, Op, PoolAttrs, PoolKind, ReduceOp, Shape, Tensor, UnaryOp, ValueId,
};

use super::common::{R, Translator, dims_of};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("Conv", conv),
    ("MaxPool", |cx| pool(cx, true)),
    ("AveragePool", |cx| pool(cx, false)),
    ("LpPool", lp_pool),
    ("GlobalAveragePool", |cx| global_pool(cx, ReduceOp::Mean)),
    ("GlobalMaxPool", |cx| global_pool(cx, ReduceOp::Max)),
];

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

/// The window attributes shared by the pools, for input dims `xd`.
fn pool_attrs(cx: &Ctx, xd: &[usize]) -> R<PoolAttrs> {
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
    Ok(PoolAttrs {
        kernel,
        strides,
        pads,
        dilations,
        ceil_mode: cx.attr_int("ceil_mode")?.unwrap_or(0) != 0,
    })
}

/// `MaxPool` if `max`, else `AveragePool`.
fn pool(cx: &mut Ctx, max: bool) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let xd = dims_of(cx, x);
    let attrs = pool_attrs(cx, &xd)?;
    let indices = cx.output_used(1);
    let column_major = indices && cx.attr_int("storage_order")?.unwrap_or(0) != 0;
    let kind = if max {
        PoolKind::Max { indices }
    } else {
        PoolKind::Average {
            count_include_pad: cx.attr_int("count_include_pad")?.unwrap_or(0) != 0,
        }
    };
    let mut outs = cx.emit(Op::Pool { kind, attrs }, &[x])?;
    if column_major {
        outs[1] = column_major_indices(cx, outs[1], &xd)?;
    }
    Ok(outs)
}

/// `LpPool`: `(Σ|x|^p)^(1/p)` over each window, as an average pool of `|x|^p` that counts
/// the (zero) padding, times the window size. `ceil_mode` is refused: its partial windows
/// would be divided by fewer elements than the window has.
fn lp_pool(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let xd = dims_of(cx, x);
    let attrs = pool_attrs(cx, &xd)?;
    if attrs.ceil_mode {
        return Err(cx.err("ceil_mode is not supported for LpPool"));
    }
    let dtype = cx.ty(x).dtype;
    if !dtype.is_float() {
        return Err(cx.err(format!("input is {dtype}, expected a float dtype")));
    }
    let p = cx.attr_int("p")?.unwrap_or(2);
    if p < 1 {
        return Err(cx.err(format!("p = {p} must be at least 1")));
    }
    let scalar = |cx: &mut Ctx, v: f64| cx.constant(Tensor::full(dtype, Shape::scalar(), v));
    let a = cx.emit1(Op::Unary(UnaryOp::Abs), &[x])?;
    let powered = match p {
        1 => a,
        2 => cx.emit1(Op::Binary(BinaryOp::Mul), &[a, a])?,
        _ => {
            let e = scalar(cx, p as f64);
            cx.emit1(Op::Binary(BinaryOp::Pow), &[a, e])?
        }
    };
    let window: usize = attrs.kernel.iter().product();
    let kind = PoolKind::Average {
        count_include_pad: true,
    };
    let mean = cx.emit1(Op::Pool { kind, attrs }, &[powered])?;
    let k = scalar(cx, window as f64);
    let sum = cx.emit1(Op::Binary(BinaryOp::Mul), &[mean, k])?;
    Ok(vec![match p {
        1 => sum,
        2 => cx.emit1(Op::Unary(UnaryOp::Sqrt), &[sum])?,
        _ => {
            let e = scalar(cx, 1.0 / p as f64);
            cx.emit1(Op::Binary(BinaryOp::Pow), &[sum, e])?
        }
    }])
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

/// `GlobalAveragePool` and `GlobalMaxPool`: `op` over all spatial axes, kept.
fn global_pool(cx: &mut Ctx, op: ReduceOp) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let rank = cx.ty(x).shape.rank();
    if rank < 3 {
        return Err(cx.err("input must be [N, C, spatial...]"));
    }
    Ok(vec![cx.emit1(
        Op::Reduce {
            op,
            axes: (2..rank).collect(),
            keep_dims: true,
        },
        &[x],
    )?])
}
