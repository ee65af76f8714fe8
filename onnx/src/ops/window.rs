//! Sliding-window ops over `[N, C, spatial...]` inputs: `Conv`, `ConvTranspose` (a
//! convolution of the zero-upsampled input), `MaxPool`, `AveragePool` and their global
//! forms, `LpPool` (an average pool of `|x|^p`) and `Col2Im` (the blocks summed back by
//! gathers at constant indices), with ONNX padding (`auto_pad`, `pads`) resolved.

use tessera_ir::{
    BinaryOp, ConvAttrs, Op, PoolAttrs, PoolKind, ReduceOp, Shape, Tensor, UnaryOp, ValueId,
};

use super::common::{R, Translator, dims_of, reshape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("Conv", conv),
    ("ConvTranspose", conv_transpose),
    ("MaxPool", |cx| pool(cx, true)),
    ("AveragePool", |cx| pool(cx, false)),
    ("LpPool", lp_pool),
    ("GlobalAveragePool", |cx| global_pool(cx, ReduceOp::Mean)),
    ("GlobalMaxPool", |cx| global_pool(cx, ReduceOp::Max)),
    ("Col2Im", col2im),
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

/// `Conv`'s attributes (also `ConvInteger`'s and `QLinearConv`'s) for X and W dims,
/// padding resolved.
pub(super) fn conv_attrs(cx: &Ctx, xd: &[usize], wd: &[usize]) -> R<ConvAttrs> {
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
    Ok(ConvAttrs {
        strides,
        pads,
        dilations,
        group: group as usize,
    })
}

fn conv(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let (xd, wd) = (dims_of(cx, x), dims_of(cx, w));
    let op = Op::Conv(conv_attrs(cx, &xd, &wd)?);
    let inputs = cx.all_inputs();
    Ok(vec![cx.emit1(op, &inputs)?])
}

/// `ConvTranspose` as the convolution it is the adjoint of: the input upsampled with
/// `stride − 1` zeros between elements, padded by `dilation·(k − 1)` less the transposed
/// pads on each side (cropped where that is negative; `output_padding` extends the end),
/// convolved at stride 1 with the kernel flipped in space and its two channel axes
/// swapped per group. `output_shape` and `auto_pad` fix the pads as ONNX specifies.
fn conv_transpose(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, w) = (cx.input(0)?, cx.input(1)?);
    let bias = cx.opt_input(2);
    let (xd, wd) = (dims_of(cx, x), dims_of(cx, w));
    if xd.len() < 3 || wd.len() != xd.len() {
        return Err(cx.err(format!(
            "X {xd:?} and W {wd:?} must be [N, C, spatial...] and [C, M/group, k...]"
        )));
    }
    let sp = xd.len() - 2;
    let kernel = wd[2..].to_vec();
    if let Some(ks) = cx.attr_ints("kernel_shape")?
        && ks.iter().map(|&k| k as usize).ne(kernel.iter().copied())
    {
        return Err(cx.err(format!(
            "kernel_shape {ks:?} disagrees with W of shape {wd:?}"
        )));
    }
    let group = cx.attr_int("group")?.unwrap_or(1);
    if group <= 0 || xd[1] % group as usize != 0 || wd[0] != xd[1] {
        return Err(cx.err(format!(
            "group {group} must be positive and divide the {} input channels, which W's first axis ({}) must equal",
            xd[1], wd[0]
        )));
    }
    let g = group as usize;
    let strides = positive(cx, "strides", cx.attr_ints("strides")?, sp)?;
    let dilations = positive(cx, "dilations", cx.attr_ints("dilations")?, sp)?;
    let out_pad = cx
        .attr_ints("output_padding")?
        .unwrap_or_else(|| vec![0; sp]);
    if out_pad.len() != sp || out_pad.iter().any(|&p| p < 0) {
        return Err(cx.err(format!(
            "output_padding {out_pad:?} must be {sp} non-negative values"
        )));
    }
    let out_pad: Vec<usize> = out_pad.iter().map(|&p| p as usize).collect();
    // The full (unpadded) output size per spatial axis.
    let full = (0..sp)
        .map(|i| {
            let (n, k) = (xd[2 + i], kernel[i]);
            if n == 0 || k == 0 {
                return Err(cx.err(format!(
                    "spatial axis {i} has input size {n} and kernel size {k}; both must be positive"
                )));
            }
            strides[i]
                .checked_mul(n - 1)
                .zip(dilations[i].checked_mul(k - 1))
                .and_then(|(a, b)| a.checked_add(b)?.checked_add(out_pad[i])?.checked_add(1))
                .filter(|&m| m as u64 <= tessera_ir::MAX_ELEMENTS)
                .ok_or_else(|| {
                    cx.err(format!(
                        "the output size along spatial axis {i} is too large"
                    ))
                })
        })
        .collect::<R<Vec<usize>>>()?;
    let auto = cx
        .attr_string("auto_pad")?
        .unwrap_or_else(|| "NOTSET".into());
    let output_shape = match cx.attr_ints("output_shape")? {
        Some(s) => {
            // Either the spatial sizes or the whole shape.
            let s = if s.len() == xd.len() {
                s[2..].to_vec()
            } else {
                s
            };
            if s.len() != sp || s.iter().any(|&v| v <= 0) {
                return Err(cx.err(format!("output_shape {s:?} must be {sp} positive values")));
            }
            Some(s.iter().map(|&v| v as usize).collect::<Vec<_>>())
        }
        None if auto == "SAME_UPPER" || auto == "SAME_LOWER" => {
            Some((0..sp).map(|i| xd[2 + i] * strides[i]).collect())
        }
        None => None,
    };
    let pads: Vec<i64> = match output_shape {
        Some(os) => {
            let mut pads = vec![0i64; 2 * sp];
            for i in 0..sp {
                // Negative when output_shape is larger than the full output (then the
                // pads extend it); halves round down, as in ONNX's definition.
                let total = full[i] as i64 - os[i] as i64;
                let half = total.div_euclid(2);
                let (b, e) = if auto == "SAME_UPPER" {
                    (half, total - half)
                } else {
                    (total - half, half)
                };
                pads[i] = b;
                pads[sp + i] = e;
            }
            pads
        }
        None => match auto.as_str() {
            "NOTSET" => {
                let p = cx.attr_ints("pads")?.unwrap_or_else(|| vec![0; 2 * sp]);
                if p.len() != 2 * sp || p.iter().any(|&v| v < 0) {
                    return Err(
                        cx.err(format!("pads {p:?} must be {} non-negative values", 2 * sp))
                    );
                }
                p
            }
            "VALID" => vec![0; 2 * sp],
            other => return Err(cx.err(format!("unknown auto_pad {other:?}"))),
        },
    };
    let dtype = cx.ty(x).dtype;
    // Zeros between input elements, one spatial axis at a time.
    let mut up = x;
    for i in 0..sp {
        let (n, s) = (xd[2 + i], strides[i]);
        if s == 1 || n == 0 {
            continue;
        }
        let a = 2 + i;
        let mut d = dims_of(cx, up);
        let mut split = d.clone();
        split.insert(a + 1, 1);
        let col = reshape(cx, up, split.clone())?;
        let mut zdims = split;
        zdims[a + 1] = s - 1;
        let z = Shape::new(zdims).map_err(|e| cx.err(e.to_string()))?;
        cx.check_built("the upsampling zeros", z.numel())?;
        let zeros = cx.constant(Tensor::full(dtype, z, 0.0));
        let spread = cx.emit1(Op::Concat { axis: a + 1 }, &[col, zeros])?;
        d[a] = n * s;
        let flat = reshape(cx, spread, d)?;
        up = cx.emit1(
            Op::Slice {
                axes: vec![a],
                starts: vec![0],
                ends: vec![((n - 1) * s + 1) as i64],
                steps: vec![1],
            },
            &[flat],
        )?;
    }
    // Convolution pads; negative ones crop the upsampled input instead.
    let mut conv_pads = vec![0usize; 2 * sp];
    let (mut starts, mut ends, mut axes) = (vec![], vec![], vec![]);
    let ud = dims_of(cx, up);
    for i in 0..sp {
        let reach = (dilations[i] * (kernel[i] - 1)) as i64;
        let b = reach - pads[i];
        let e = reach - pads[sp + i] + out_pad[i] as i64;
        let n = ud[2 + i] as i64;
        let (cb, ce) = (if b < 0 { -b } else { 0 }, if e < 0 { -e } else { 0 });
        if cb + ce > n {
            return Err(cx.err(format!(
                "pads {pads:?} leave no output along spatial axis {i}"
            )));
        }
        if cb > 0 || ce > 0 {
            axes.push(2 + i);
            starts.push(cb);
            ends.push(n - ce);
        }
        conv_pads[i] = b.max(0) as usize;
        conv_pads[sp + i] = e.max(0) as usize;
    }
    if !axes.is_empty() {
        let steps = vec![1; axes.len()];
        up = cx.emit1(
            Op::Slice {
                axes,
                starts,
                ends,
                steps,
            },
            &[up],
        )?;
    }
    // W [C, M/g, k...] → flipped, [M, C/g, k...].
    let (c, mg) = (wd[0], wd[1]);
    let spatial_axes: Vec<usize> = (2..wd.len()).collect();
    let flipped = cx.emit1(
        Op::Slice {
            axes: spatial_axes.clone(),
            starts: kernel.iter().map(|&k| k as i64 - 1).collect(),
            ends: vec![-1; sp],
            steps: vec![-1; sp],
        },
        &[w],
    )?;
    let grouped: Vec<usize> = [g, c / g, mg]
        .into_iter()
        .chain(kernel.iter().copied())
        .collect();
    let wg = reshape(cx, flipped, grouped)?;
    let perm: Vec<usize> = [0, 2, 1].into_iter().chain(3..3 + sp).collect();
    let wt = cx.emit1(Op::Transpose { perm }, &[wg])?;
    let wk = reshape(
        cx,
        wt,
        [g * mg, c / g]
            .into_iter()
            .chain(kernel.iter().copied())
            .collect(),
    )?;
    let op = Op::Conv(ConvAttrs {
        strides: vec![1; sp],
        pads: conv_pads,
        dilations,
        group: g,
    });
    let mut inputs = vec![up, wk];
    inputs.extend(bias);
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

/// `Col2Im(input [N, C·Πblock, L], image_shape, block_shape)`: the sliding blocks summed
/// back into the image, the adjoint of im2col. The block and image shapes fix which
/// column entries land on each image position (at most `Πblock` of them), so the sum is
/// pulled: the columns get one zero appended, and layer `j` is a `Gather` at each
/// position's `j`-th contributor (the zero where it has fewer).
fn col2im(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let image = cx
        .ints_input(1)?
        .ok_or_else(|| cx.err("image_shape is missing"))?;
    let block = cx
        .ints_input(2)?
        .ok_or_else(|| cx.err("block_shape is missing"))?;
    let sp = image.len();
    if sp == 0 || block.len() != sp || image.iter().chain(&block).any(|&v| v <= 0) {
        return Err(cx.err(format!(
            "image_shape {image:?} and block_shape {block:?} must be positive and of one length"
        )));
    }
    let image: Vec<usize> = image.iter().map(|&v| v as usize).collect();
    let block: Vec<usize> = block.iter().map(|&v| v as usize).collect();
    let strides = positive(cx, "strides", cx.attr_ints("strides")?, sp)?;
    let dilations = positive(cx, "dilations", cx.attr_ints("dilations")?, sp)?;
    let pads = cx.attr_ints("pads")?.unwrap_or_else(|| vec![0; 2 * sp]);
    if pads.len() != 2 * sp || pads.iter().any(|&p| p < 0) {
        return Err(cx.err(format!(
            "pads {pads:?} must be {} non-negative values",
            2 * sp
        )));
    }
    let xd = dims_of(cx, x);
    let nb: usize = block.iter().product();
    // Blocks per axis.
    let mut counts = Vec::with_capacity(sp);
    for i in 0..sp {
        let span = dilations[i] * (block[i] - 1) + 1;
        let padded = image[i] + pads[i] as usize + pads[sp + i] as usize;
        if padded < span {
            return Err(cx.err(format!(
                "a block spans {span} on axis {i}, more than the padded image's {padded}"
            )));
        }
        counts.push((padded - span) / strides[i] + 1);
    }
    let l: usize = counts.iter().product();
    if xd.len() != 3 || !xd[1].is_multiple_of(nb) || xd[2] != l {
        return Err(cx.err(format!(
            "input has shape {}, expected [N, C·{nb}, {l}] for these blocks",
            cx.ty(x).shape
        )));
    }
    let (n, c) = (xd[0], xd[1] / nb);
    let size: usize = image.iter().product();
    cx.check_built("the Col2Im indices", size.saturating_mul(nb))?;
    // Contributors of each image position: column entries b·L + l.
    let mut from: Vec<Vec<i64>> = vec![Vec::new(); size];
    for b in 0..nb {
        let mut bi = vec![0; sp];
        let mut rest = b;
        for i in (0..sp).rev() {
            bi[i] = rest % block[i];
            rest /= block[i];
        }
        for li in 0..l {
            let mut rest = li;
            let mut flat = 0usize;
            let mut inside = true;
            let mut pos = vec![0i64; sp];
            for i in (0..sp).rev() {
                let k = rest % counts[i];
                rest /= counts[i];
                pos[i] = (k * strides[i] + bi[i] * dilations[i]) as i64 - pads[i];
            }
            for i in 0..sp {
                if pos[i] < 0 || pos[i] as usize >= image[i] {
                    inside = false;
                    break;
                }
                flat = flat * image[i] + pos[i] as usize;
            }
            if inside {
                from[flat].push((b * l + li) as i64);
            }
        }
    }
    let layers = from.iter().map(Vec::len).max().unwrap_or(0);
    let cols = reshape(cx, x, vec![n, c, nb * l])?;
    let zero_shape = Shape::new(vec![n, c, 1]).map_err(|e| cx.err(e.to_string()))?;
    let zero = cx.constant(Tensor::full(cx.ty(x).dtype, zero_shape, 0.0));
    let cols = cx.emit1(Op::Concat { axis: 2 }, &[cols, zero])?;
    let sentinel = (nb * l) as i64;
    let mut acc: Option<ValueId> = None;
    for j in 0..layers {
        let idx: Vec<i64> = from
            .iter()
            .map(|f| f.get(j).copied().unwrap_or(sentinel))
            .collect();
        let s = Shape::new(vec![size]).map_err(|e| cx.err(e.to_string()))?;
        let t = Tensor::from_vec(s, idx).map_err(|e| cx.err(e.to_string()))?;
        let idx = cx.constant(t);
        let g = cx.emit1(Op::Gather { axis: 2 }, &[cols, idx])?;
        acc = Some(match acc {
            None => g,
            Some(a) => cx.emit1(Op::Binary(BinaryOp::Add), &[a, g])?,
        });
    }
    let y = match acc {
        Some(a) => a,
        None => {
            let s = Shape::new(vec![n, c, size]).map_err(|e| cx.err(e.to_string()))?;
            cx.constant(Tensor::full(cx.ty(x).dtype, s, 0.0))
        }
    };
    let mut out = vec![n, c];
    out.extend_from_slice(&image);
    Ok(vec![reshape(cx, y, out)?])
}
