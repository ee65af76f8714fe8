//! Ops that are a comparison of index grids and a select: `Trilu` (keep one triangle),
//! `EyeLike` (ones on a diagonal), `OneHot`, `Hardmax` and `TopK` (k rounds of an
//! extremum and the least index holding it). The grids are small i64 constants (`[n]`
//! along one axis, 1 elsewhere) that broadcast, so the comparisons fold at import when
//! the result is small and fuse into one pointwise kernel when it is not.

use tessera_ir::{BinaryOp, DType, Op, ReduceOp, Shape, Tensor, ValueId};

use super::common::{R, Translator, axis, dims_of, reshape};
use super::reduce::arg_index;
use crate::context::Ctx;
use crate::tensor::dtype_from_onnx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("Trilu", trilu),
    ("EyeLike", eye_like),
    ("OneHot", one_hot),
    ("Hardmax", hardmax),
    ("TopK", top_k),
];

/// `0, 1, …, n−1` along axis `a` of a rank-`rank` i64 constant (size 1 elsewhere).
fn iota(cx: &mut Ctx, n: usize, rank: usize, a: usize) -> R<ValueId> {
    cx.check_built("an index grid", n)?;
    let mut dims = vec![1; rank];
    dims[a] = n;
    let shape = Shape::new(dims).map_err(|e| cx.err(e.to_string()))?;
    let t = Tensor::from_vec(shape, (0..n as i64).collect::<Vec<i64>>())
        .map_err(|e| cx.err(e.to_string()))?;
    Ok(cx.constant(t))
}

fn scalar_i64(cx: &mut Ctx, v: i64) -> ValueId {
    cx.constant(Tensor::scalar(v))
}

/// `column − row` over the last two axes of a rank-`rank` value with `n` rows and `m`
/// columns (i64, `[.., n, m]` with leading 1s).
fn diagonal_offsets(cx: &mut Ctx, rank: usize, n: usize, m: usize) -> R<ValueId> {
    let rows = iota(cx, n, rank, rank - 2)?;
    let cols = iota(cx, m, rank, rank - 1)?;
    cx.emit1(Op::Binary(BinaryOp::Sub), &[cols, rows])
}

/// `Trilu`: keeps the elements on and above (`upper`, the default) or on and below the
/// `k`-th diagonal of the last two axes; the others become 0.
fn trilu(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    if d.len() < 2 {
        return Err(cx.err(format!("input has rank {}, expected 2 or more", d.len())));
    }
    let k = match cx.ints_input(1)? {
        None => 0,
        Some(v) if v.len() == 1 => v[0],
        Some(v) => return Err(cx.err(format!("k must be one value, got {v:?}"))),
    };
    let upper = cx.attr_int("upper")?.unwrap_or(1) != 0;
    let (n, m) = (d[d.len() - 2], d[d.len() - 1]);
    let off = diagonal_offsets(cx, d.len(), n, m)?;
    let k = scalar_i64(cx, k);
    let cmp = if upper {
        BinaryOp::GreaterOrEqual
    } else {
        BinaryOp::LessOrEqual
    };
    let keep = cx.emit1(Op::Binary(cmp), &[off, k])?;
    let zero = cx.constant(Tensor::full(cx.ty(x).dtype, Shape::scalar(), 0.0));
    Ok(vec![cx.emit1(Op::Where, &[keep, x, zero])?])
}

/// `EyeLike`: ones where `column − row = k`, zeros elsewhere, in the input's shape and
/// the `dtype` attribute's type (the input's by default). The input's values are not read.
fn eye_like(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    if d.len() != 2 {
        return Err(cx.err(format!("input has rank {}, expected 2", d.len())));
    }
    let dtype = match cx.attr_int("dtype")? {
        Some(code) => dtype_from_onnx(code as i32).map_err(|m| cx.err(m))?,
        None => cx.ty(x).dtype,
    };
    let k = cx.attr_int("k")?.unwrap_or(0);
    let off = diagonal_offsets(cx, 2, d[0], d[1])?;
    let k = scalar_i64(cx, k);
    let on = cx.emit1(Op::Binary(BinaryOp::Equal), &[off, k])?;
    Ok(vec![cx.emit1(Op::Cast { to: dtype }, &[on])?])
}

/// `OneHot`: a new axis of size `depth` at `axis`; `values[1]` where the index along it
/// equals the input's (negative indices count from `depth`), `values[0]` elsewhere.
fn one_hot(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (indices, values) = (cx.input(0)?, cx.input(2)?);
    let depth = cx
        .const_input(1)?
        .ok_or_else(|| cx.err("the depth input is missing"))?
        .to_f64_vec();
    let [depth] = depth[..] else {
        return Err(cx.err(format!(
            "depth must be one value, got {} values",
            depth.len()
        )));
    };
    if !(depth >= 1.0 && depth <= tessera_ir::MAX_ELEMENTS as f64) {
        return Err(cx.err(format!("depth {depth} must be a positive size")));
    }
    let depth = depth as usize;
    if dims_of(cx, values) != [2] {
        return Err(cx.err(format!(
            "values has shape {}, expected [2] (off, on)",
            cx.ty(values).shape
        )));
    }
    let mut d = dims_of(cx, indices);
    let a = axis(cx, cx.attr_int("axis")?.unwrap_or(-1), d.len() + 1)?;
    let dt = cx.ty(indices).dtype;
    if dt == DType::Bool {
        return Err(cx.err("indices are bool, expected a numeric dtype"));
    }
    let idx = if dt.is_float() {
        // Fractional indices are truncated, as in onnxruntime.
        cx.emit1(Op::Cast { to: DType::I64 }, &[indices])?
    } else if dt != DType::I64 {
        cx.emit1(Op::Cast { to: DType::I64 }, &[indices])?
    } else {
        indices
    };
    let zero = scalar_i64(cx, 0);
    let n = scalar_i64(cx, depth as i64);
    let neg = cx.emit1(Op::Binary(BinaryOp::Less), &[idx, zero])?;
    let wrapped = cx.emit1(Op::Binary(BinaryOp::Add), &[idx, n])?;
    let idx = cx.emit1(Op::Where, &[neg, wrapped, idx])?;
    d.insert(a, 1);
    let idx = reshape(cx, idx, d.clone())?;
    let grid = iota(cx, depth, d.len(), a)?;
    let hit = cx.emit1(Op::Binary(BinaryOp::Equal), &[idx, grid])?;
    let off_i = scalar_i64(cx, 0);
    let on_i = scalar_i64(cx, 1);
    let off = cx.emit1(Op::Gather { axis: 0 }, &[values, off_i])?;
    let on = cx.emit1(Op::Gather { axis: 0 }, &[values, on_i])?;
    Ok(vec![cx.emit1(Op::Where, &[hit, on, off])?])
}

/// `Hardmax`: 1 at the first maximum along `axis`, 0 elsewhere (opset 13 and later;
/// before, the input is coerced to 2-D at `axis` and the maximum taken per row).
fn hardmax(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    let dtype = cx.ty(x).dtype;
    if cx.opset < 13 {
        let a = axis(cx, cx.attr_int("axis")?.unwrap_or(1), d.len().max(1))?;
        let rows = d[..a].iter().product();
        let cols = d[a..].iter().product();
        let flat = reshape(cx, x, vec![rows, cols])?;
        let y = hardmax_along(cx, flat, 1, dtype)?;
        return Ok(vec![reshape(cx, y, d)?]);
    }
    let a = axis(cx, cx.attr_int("axis")?.unwrap_or(-1), d.len())?;
    Ok(vec![hardmax_along(cx, x, a, dtype)?])
}

fn hardmax_along(cx: &mut Ctx, x: ValueId, a: usize, dtype: DType) -> R<ValueId> {
    let rank = cx.ty(x).shape.rank();
    let n = cx.ty(x).shape.dims()[a];
    if n == 0 {
        // Nothing to mark: the empty input is its own result.
        return cx.emit1(Op::Identity, &[x]);
    }
    let first = arg_index(cx, x, a, true, false, true)?;
    let grid = iota(cx, n, rank, a)?;
    let hit = cx.emit1(Op::Binary(BinaryOp::Equal), &[grid, first])?;
    cx.emit1(Op::Cast { to: dtype }, &[hit])
}

/// The largest `k` TopK expands to: each selected element costs one reduction over the
/// axis, so a larger `k` is refused rather than unrolled.
const TOPK_MAX_K: usize = 256;

/// `TopK`: the `k` largest (or with `largest = 0`, smallest) elements along `axis` and
/// their indices, sorted (ties in index order). Expanded as `k` rounds of: the extremum
/// of the elements not yet taken, the least index holding it, that index marked taken;
/// then the values gathered at the indices.
fn top_k(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    if d.is_empty() {
        return Err(cx.err("input is a scalar; it has no axis to select along"));
    }
    let k = match cx.ints_input(1)? {
        Some(v) if v.len() == 1 => v[0],
        Some(v) => return Err(cx.err(format!("k must be one value, got {v:?}"))),
        None if cx.opset < 10 => cx
            .attr_int("k")?
            .ok_or_else(|| cx.err("attribute \"k\" is missing"))?,
        None => return Err(cx.err("the k input is missing")),
    };
    let a = axis(cx, cx.attr_int("axis")?.unwrap_or(-1), d.len())?;
    let largest = cx.attr_int("largest")?.unwrap_or(1) != 0;
    let n = d[a];
    if k < 0 || k as usize > n {
        return Err(cx.err(format!("k = {k} must be between 0 and the axis size {n}")));
    }
    let k = k as usize;
    if k > TOPK_MAX_K {
        return Err(cx.err(format!(
            "k = {k} is more than the {TOPK_MAX_K} selections TopK is expanded into"
        )));
    }
    let dtype = cx.ty(x).dtype;
    if dtype == DType::Bool {
        return Err(cx.err("input is bool, expected a numeric dtype"));
    }
    if k == 0 {
        let empty = Op::Slice {
            axes: vec![a],
            starts: vec![0],
            ends: vec![0],
            steps: vec![1],
        };
        let v = cx.emit1(empty, &[x])?;
        let i = cx.emit1(Op::Cast { to: DType::I64 }, &[v])?;
        return Ok(vec![v, i]);
    }
    let grid = iota(cx, n, d.len(), a)?;
    // Taken elements read as the worst value (saturated to the dtype's extreme for ints).
    let worst = if largest {
        f64::NEG_INFINITY
    } else {
        f64::INFINITY
    };
    let fill = cx.constant(Tensor::full(dtype, Shape::scalar(), worst));
    let none = scalar_i64(cx, n as i64);
    let ext_op = if largest {
        ReduceOp::Max
    } else {
        ReduceOp::Min
    };
    let reduce = |op, axes: Vec<usize>| Op::Reduce {
        op,
        axes,
        keep_dims: true,
    };
    let mut taken: Option<ValueId> = None;
    let mut picks = Vec::with_capacity(k);
    for _ in 0..k {
        let cur = match taken {
            Some(t) => cx.emit1(Op::Where, &[t, fill, x])?,
            None => x,
        };
        let ext = cx.emit1(reduce(ext_op, vec![a]), &[cur])?;
        let mut hit = cx.emit1(Op::Binary(BinaryOp::Equal), &[cur, ext])?;
        if dtype.is_float() {
            // A NaN extremum equals nothing; NaNs then rank first, as in numpy.
            let nan = cx.emit1(Op::Unary(tessera_ir::UnaryOp::IsNaN), &[cur])?;
            hit = cx.emit1(Op::Binary(BinaryOp::Or), &[hit, nan])?;
        }
        if let Some(t) = taken {
            let free = cx.emit1(Op::Unary(tessera_ir::UnaryOp::Not), &[t])?;
            hit = cx.emit1(Op::Binary(BinaryOp::And), &[hit, free])?;
        }
        let cand = cx.emit1(Op::Where, &[hit, grid, none])?;
        let idx = cx.emit1(reduce(ReduceOp::Min, vec![a]), &[cand])?;
        let now = cx.emit1(Op::Binary(BinaryOp::Equal), &[grid, idx])?;
        taken = Some(match taken {
            Some(t) => cx.emit1(Op::Binary(BinaryOp::Or), &[t, now])?,
            None => now,
        });
        picks.push(idx);
    }
    let indices = if picks.len() == 1 {
        picks[0]
    } else {
        cx.emit1(Op::Concat { axis: a }, &picks)?
    };
    let values = cx.emit1(Op::GatherElements { axis: a }, &[x, indices])?;
    Ok(vec![values, indices])
}
