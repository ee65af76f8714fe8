//! Ops that pick elements: `Slice`, the `Gather` family, `ScatterND` and
//! `ScatterElements` (expanded into gathers and selects, see [`scatter_nd`]),
//! `TensorScatter` (a cache write at run-time positions, pulled the same way) and
//! `MaxUnpool` (a `ScatterND` into zeros),
//! `ReverseSequence` (a `GatherElements` of computed time indices), and `Compress`,
//! `NonZero` and `Unique`, whose output shapes depend on data that must therefore be known
//! at import.

use tessera_ir::{BinaryOp, DType, Op, ReduceOp, Shape, Tensor, ValueId};

use super::common::{R, Translator, axis, checked_numel, dims_of, reshape, shape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("Slice", slice),
    ("Gather", gather),
    ("GatherElements", gather_elements),
    ("GatherND", gather_nd),
    ("ScatterND", scatter_nd),
    ("ScatterElements", scatter_elements),
    ("Scatter", scatter_elements),
    ("ReverseSequence", reverse_sequence),
    ("Compress", compress),
    ("NonZero", nonzero),
    ("Unique", unique),
    ("TensorScatter", tensor_scatter),
    ("MaxUnpool", max_unpool),
];

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

fn gather(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, i) = (cx.input(0)?, cx.input(1)?);
    let a = axis(cx, cx.attr_int("axis")?.unwrap_or(0), cx.ty(x).shape.rank())?;
    Ok(vec![cx.emit1(Op::Gather { axis: a }, &[x, i])?])
}

fn gather_elements(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, i) = (cx.input(0)?, cx.input(1)?);
    let a = axis(cx, cx.attr_int("axis")?.unwrap_or(0), cx.ty(x).shape.rank())?;
    Ok(vec![cx.emit1(Op::GatherElements { axis: a }, &[x, i])?])
}

fn gather_nd(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, i) = (cx.input(0)?, cx.input(1)?);
    let b = cx.attr_int("batch_dims")?.unwrap_or(0);
    if b < 0 {
        return Err(cx.err("batch_dims must be non-negative"));
    }
    Ok(vec![cx.emit1(
        Op::GatherNd {
            batch_dims: b as usize,
        },
        &[x, i],
    )?])
}

/// How `ScatterND` combines an update with the element it lands on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

impl Reduction {
    /// The elementwise combination and its reduction over several updates.
    fn ops(self) -> Option<(BinaryOp, ReduceOp)> {
        match self {
            Reduction::None => None,
            Reduction::Add => Some((BinaryOp::Add, ReduceOp::Sum)),
            Reduction::Mul => Some((BinaryOp::Mul, ReduceOp::Prod)),
            Reduction::Max => Some((BinaryOp::Max, ReduceOp::Max)),
            Reduction::Min => Some((BinaryOp::Min, ReduceOp::Min)),
        }
    }

    /// The element that leaves every value unchanged under the reduction.
    fn neutral(self) -> f64 {
        match self {
            Reduction::None | Reduction::Add => 0.0,
            Reduction::Mul => 1.0,
            // Saturates to the dtype's extreme for integers (`Tensor::full`).
            Reduction::Max => f64::NEG_INFINITY,
            Reduction::Min => f64::INFINITY,
        }
    }
}

/// At most this many elements in the update × position comparison that `ScatterND` with
/// run-time indices expands into.
const SCATTER_EXPANSION_LIMIT: usize = 1 << 26;

fn const_tensor<T: tessera_ir::Element>(cx: &Ctx, dims: Vec<usize>, v: Vec<T>) -> R<Tensor> {
    let s = shape(cx, dims)?;
    Tensor::from_vec(s, v).map_err(|e| cx.err(e.to_string()))
}

/// `ScatterND(data, indices, updates)`: `data` with the slices `data[indices[m]]` replaced
/// by (or, with `reduction`, combined with) `updates[m]`, in order of `m`.
///
/// The IR has no scatter op, so the translation pulls instead of pushing. Data shape `D`
/// (rank `r`), indices `[..., k]` (`M` index tuples), updates `[..., D[k..]]`:
///
/// * constant indices (the usual case: exporters' slice assignments): the source update
///   of every position of `D[..k]` is computed here, and each layer of updates (the
///   first, second, ... update landing on a position) is one `gather` of the updates
///   and one `where` over the positions it reaches, so the cost is linear in the output;
/// * run-time indices: every index tuple is compared with every position (`M · |D|`
///   elements, bounded by [`SCATTER_EXPANSION_LIMIT`]); without reduction the last
///   matching update is gathered, with one its matches are reduced and combined with
///   `data`. An out-of-range index tuple matches no position.
fn reduction_attr(cx: &Ctx) -> R<Reduction> {
    Ok(match cx.attr_string("reduction")?.as_deref() {
        None | Some("none") => Reduction::None,
        Some("add") => Reduction::Add,
        Some("mul") => Reduction::Mul,
        Some("max") => Reduction::Max,
        Some("min") => Reduction::Min,
        Some(other) => return Err(cx.err(format!("unknown reduction {other:?}"))),
    })
}

fn scatter_nd(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, ind, upd) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let reduction = reduction_attr(cx)?;
    let d = dims_of(cx, x);
    let id = dims_of(cx, ind);
    let dtype = cx.ty(x).dtype;
    if !matches!(cx.ty(ind).dtype, DType::I64 | DType::I32) {
        return Err(cx.err("indices must be int64"));
    }
    let Some((&k, batch)) = id.split_last() else {
        return Err(cx.err("indices must have rank 1 or more"));
    };
    if k > d.len() {
        return Err(cx.err(format!(
            "index tuples have {k} entries but data has rank {}",
            d.len()
        )));
    }
    let rest = &d[k..];
    let want: Vec<usize> = batch.iter().chain(rest).copied().collect();
    if dims_of(cx, upd) != want || cx.ty(upd).dtype != dtype {
        return Err(cx.err(format!(
            "updates are {} but must be {}[{}] for data {} and indices {}",
            cx.ty(upd),
            dtype,
            want.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(","),
            cx.ty(x),
            cx.ty(ind)
        )));
    }
    if reduction != Reduction::None && dtype == DType::Bool {
        return Err(cx.err("a reduction needs numeric data, not bool"));
    }
    let m: usize = batch.iter().product();
    if m == 0 {
        return Ok(vec![cx.emit1(Op::Identity, &[x])?]);
    }
    // Updates as rows: [M, D[k..]].
    let upd = reshape(cx, upd, [m].iter().chain(rest).copied().collect())?;
    let out = match cx.const_value(1).cloned() {
        Some(indices) => scatter_constant(cx, x, upd, &indices.to_i64_vec(), &d, k, m, reduction)?,
        None => scatter_dynamic(cx, x, ind, upd, &d, k, m, reduction)?,
    };
    Ok(vec![out])
}

/// `ScatterElements(data, indices, updates)` along `axis` (and the deprecated `Scatter`,
/// the same op): element `p` of `updates` lands on `data[p with p[axis] = indices[p]]`.
/// That is a `ScatterND` whose index tuples are the positions of `indices` with the axis
/// coordinate replaced, so both share [`scatter_constant`] and [`scatter_dynamic`] (the
/// tuples are computed here for constant indices, and as a concatenation of broadcast
/// index grids for run-time ones).
fn scatter_elements(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, ind, upd) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let reduction = reduction_attr(cx)?;
    let d = dims_of(cx, x);
    let id = dims_of(cx, ind);
    let dtype = cx.ty(x).dtype;
    let r = d.len();
    let a = axis(cx, cx.attr_int("axis")?.unwrap_or(0), r.max(1))?;
    if !matches!(cx.ty(ind).dtype, DType::I64 | DType::I32) {
        return Err(cx.err("indices must be int32 or int64"));
    }
    if r == 0 || id.len() != r || dims_of(cx, upd) != id || cx.ty(upd).dtype != dtype {
        return Err(cx.err(format!(
            "data {}, indices {} and updates {} must have one rank, and updates the shape of indices",
            cx.ty(x),
            cx.ty(ind),
            cx.ty(upd)
        )));
    }
    if id
        .iter()
        .zip(&d)
        .enumerate()
        .any(|(j, (&i, &n))| j != a && i > n)
    {
        return Err(cx.err(format!(
            "indices {} are larger than data {} off the scatter axis",
            cx.ty(ind).shape,
            cx.ty(x).shape
        )));
    }
    if reduction != Reduction::None && dtype == DType::Bool {
        return Err(cx.err("a reduction needs numeric data, not bool"));
    }
    let m: usize = id.iter().product();
    if m == 0 {
        return Ok(vec![cx.emit1(Op::Identity, &[x])?]);
    }
    let upd = reshape(cx, upd, vec![m])?;
    let out = match cx.const_value(1).cloned() {
        Some(indices) => {
            let values = indices.to_i64_vec();
            let mut tuples = Vec::with_capacity(m * r);
            let mut pos = vec![0usize; r];
            for &v in &values {
                for (j, &c) in pos.iter().enumerate() {
                    tuples.push(if j == a { v } else { c as i64 });
                }
                // Next position of `indices`, row-major.
                for j in (0..r).rev() {
                    pos[j] += 1;
                    if pos[j] < id[j] {
                        break;
                    }
                    pos[j] = 0;
                }
            }
            scatter_constant(cx, x, upd, &tuples, &d, r, m, reduction)?
        }
        None => {
            let ind = if cx.ty(ind).dtype == DType::I64 {
                ind
            } else {
                cx.emit1(Op::Cast { to: DType::I64 }, &[ind])?
            };
            let mut cols = Vec::with_capacity(r);
            let col_dims: Vec<usize> = id.iter().copied().chain([1]).collect();
            for j in 0..r {
                let col = if j == a {
                    ind
                } else {
                    let mut grid = vec![1usize; r];
                    grid[j] = id[j];
                    let g = const_tensor(cx, grid, (0..id[j] as i64).collect())?;
                    let g = cx.constant(g);
                    let s = shape(cx, id.clone())?;
                    cx.emit1(Op::Expand { shape: s }, &[g])?
                };
                cols.push(reshape(cx, col, col_dims.clone())?);
            }
            let tuples = cx.emit1(Op::Concat { axis: r }, &cols)?;
            scatter_dynamic(cx, x, tuples, upd, &d, r, m, reduction)?
        }
    };
    Ok(vec![out])
}

/// [`scatter_nd`] with constant `indices` (`m` tuples of `k` values, row-major) and
/// updates `upd` as `[m, D[k..]]` rows.
#[allow(clippy::too_many_arguments)]
fn scatter_constant(
    cx: &mut Ctx,
    x: ValueId,
    upd: ValueId,
    indices: &[i64],
    d: &[usize],
    k: usize,
    m: usize,
    reduction: Reduction,
) -> R<ValueId> {
    let (head, rest) = d.split_at(k);
    let positions: usize = head.iter().product();
    // For each position of D[..k], the updates landing there, in order.
    let mut sources: Vec<Vec<i64>> = vec![Vec::new(); positions];
    for row in 0..m {
        let tuple = &indices[row * k..(row + 1) * k];
        let mut p = 0usize;
        for (j, (&i, &n)) in tuple.iter().zip(head).enumerate().take(k) {
            let n = n as i64;
            let i = if i < 0 { i + n } else { i };
            if !(0..n).contains(&i) {
                return Err(cx.err(format!(
                    "index tuple {row} is out of range at entry {j}: {} for a dimension of {n}",
                    tuple[j]
                )));
            }
            p = p * n as usize + i as usize;
        }
        match reduction {
            Reduction::None => sources[p] = vec![row as i64],
            _ => sources[p].push(row as i64),
        }
    }
    let layers = sources.iter().map(Vec::len).max().unwrap_or(0);
    let mask_dims: Vec<usize> = head.iter().copied().chain(rest.iter().map(|_| 1)).collect();
    let mut out = x;
    for layer in 0..layers {
        let src: Vec<i64> = sources
            .iter()
            .map(|s| s.get(layer).copied().unwrap_or(-1))
            .collect();
        let rows = const_tensor(cx, head.to_vec(), src.iter().map(|&s| s.max(0)).collect())?;
        let rows = cx.constant(rows);
        let g = cx.emit1(Op::Gather { axis: 0 }, &[upd, rows])?;
        let v = match reduction.ops() {
            None => g,
            Some((combine, _)) => cx.emit1(Op::Binary(combine), &[out, g])?,
        };
        out = if src.iter().all(|&s| s >= 0) {
            v
        } else {
            let hit = const_tensor(cx, mask_dims.clone(), src.iter().map(|&s| s >= 0).collect())?;
            let hit = cx.constant(hit);
            cx.emit1(Op::Where, &[hit, v, out])?
        };
    }
    Ok(out)
}

/// [`scatter_nd`] with run-time indices `ind` (`[..., k]`, `m` tuples) and updates `upd`
/// as `[m, D[k..]]` rows.
#[allow(clippy::too_many_arguments)]
fn scatter_dynamic(
    cx: &mut Ctx,
    x: ValueId,
    ind: ValueId,
    upd: ValueId,
    d: &[usize],
    k: usize,
    m: usize,
    reduction: Reduction,
) -> R<ValueId> {
    let numel: usize = d.iter().product();
    if m.saturating_mul(numel) > SCATTER_EXPANSION_LIMIT {
        return Err(cx.err(format!(
            "run-time indices: {m} updates into {numel} elements exceed the {SCATTER_EXPANSION_LIMIT}-element \
             comparison ScatterND expands into; make the indices constant (--bind)"
        )));
    }
    let (head, rest) = d.split_at(k);
    let ones = |n: usize| std::iter::repeat_n(1usize, n);
    let ind = if cx.ty(ind).dtype == DType::I64 {
        ind
    } else {
        cx.emit1(Op::Cast { to: DType::I64 }, &[ind])?
    };
    let ind = reshape(cx, ind, vec![m, k])?;
    // Negative indices count from the end of their dimension.
    let zero = const_tensor(cx, vec![], vec![0i64])?;
    let zero = cx.constant(zero);
    let sizes = const_tensor(cx, vec![k], head.iter().map(|&n| n as i64).collect())?;
    let sizes = cx.constant(sizes);
    let neg = cx.emit1(Op::Binary(BinaryOp::Less), &[ind, zero])?;
    let wrapped = cx.emit1(Op::Binary(BinaryOp::Add), &[ind, sizes])?;
    let ind = cx.emit1(Op::Where, &[neg, wrapped, ind])?;
    // hit[m, p] = every entry of tuple m equals the coordinate of position p: [M, D[..k]].
    let mut hit = {
        let t = const_tensor(cx, vec![m], vec![true; m])?;
        let t = cx.constant(t);
        reshape(cx, t, [m].into_iter().chain(ones(k)).collect())?
    };
    for (j, &n) in head.iter().enumerate() {
        let col = cx.emit1(
            Op::Slice {
                axes: vec![1],
                starts: vec![j as i64],
                ends: vec![j as i64 + 1],
                steps: vec![1],
            },
            &[ind],
        )?;
        let col = reshape(cx, col, [m].into_iter().chain(ones(k)).collect())?;
        let mut iota_dims: Vec<usize> = ones(k + 1).collect();
        iota_dims[1 + j] = n;
        cx.check_built("an index grid", n)?;
        let iota = const_tensor(cx, iota_dims, (0..n as i64).collect())?;
        let iota = cx.constant(iota);
        let eq = cx.emit1(Op::Binary(BinaryOp::Equal), &[col, iota])?;
        hit = cx.emit1(Op::Binary(BinaryOp::And), &[hit, eq])?;
    }
    match reduction.ops() {
        None => {
            // The last matching update's row, or -1.
            let row_dims: Vec<usize> = [m].into_iter().chain(ones(k)).collect();
            let rows = const_tensor(cx, row_dims, (0..m as i64).collect())?;
            let rows = cx.constant(rows);
            let none = const_tensor(cx, vec![], vec![-1i64])?;
            let none = cx.constant(none);
            let cand = cx.emit1(Op::Where, &[hit, rows, none])?;
            let last = cx.emit1(
                Op::Reduce {
                    op: ReduceOp::Max,
                    axes: vec![0],
                    keep_dims: false,
                },
                &[cand],
            )?;
            let found = cx.emit1(Op::Binary(BinaryOp::GreaterOrEqual), &[last, zero])?;
            let row = cx.emit1(Op::Binary(BinaryOp::Max), &[last, zero])?;
            let g = cx.emit1(Op::Gather { axis: 0 }, &[upd, row])?;
            let found = reshape(
                cx,
                found,
                head.iter().copied().chain(ones(rest.len())).collect(),
            )?;
            cx.emit1(Op::Where, &[found, g, x])
        }
        Some((combine, reduce)) => {
            let hit = reshape(
                cx,
                hit,
                [m].into_iter()
                    .chain(head.iter().copied())
                    .chain(ones(rest.len()))
                    .collect(),
            )?;
            let upd = reshape(
                cx,
                upd,
                [m].into_iter()
                    .chain(ones(k))
                    .chain(rest.iter().copied())
                    .collect(),
            )?;
            let dtype = cx.ty(x).dtype;
            let neutral = cx.constant(Tensor::full(dtype, Shape::scalar(), reduction.neutral()));
            let picked = cx.emit1(Op::Where, &[hit, upd, neutral])?;
            let r = cx.emit1(
                Op::Reduce {
                    op: reduce,
                    axes: vec![0],
                    keep_dims: false,
                },
                &[picked],
            )?;
            cx.emit1(Op::Binary(combine), &[x, r])
        }
    }
}

/// `ReverseSequence(input, sequence_lens)`: along `time_axis`, the first `sequence_lens[b]`
/// elements of batch entry `b` (along `batch_axis`) reversed, the rest kept. One
/// `GatherElements` of the time index `t < len ? len − 1 − t : t`, built from a broadcast
/// comparison of a time grid with the lengths (clamped to the axis, so a bad length cannot
/// index out of range).
fn reverse_sequence(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, lens) = (cx.input(0)?, cx.input(1)?);
    let d = dims_of(cx, x);
    if d.len() < 2 {
        return Err(cx.err(format!(
            "input has shape {}, expected rank 2 or more",
            cx.ty(x).shape
        )));
    }
    let ta = axis(cx, cx.attr_int("time_axis")?.unwrap_or(0), d.len())?;
    let ba = axis(cx, cx.attr_int("batch_axis")?.unwrap_or(1), d.len())?;
    if ta == ba {
        return Err(cx.err(format!("time_axis and batch_axis are both {ta}")));
    }
    if dims_of(cx, lens) != [d[ba]] {
        return Err(cx.err(format!(
            "sequence_lens has shape {}, expected [{}] (the batch axis)",
            cx.ty(lens).shape,
            d[ba]
        )));
    }
    let ldt = cx.ty(lens).dtype;
    if !matches!(ldt, DType::I32 | DType::I64) {
        return Err(cx.err(format!("sequence_lens is {ldt}, expected int64")));
    }
    let steps = d[ta];
    cx.check_built("the time index grid", steps)?;
    let mut grid_dims = vec![1; d.len()];
    grid_dims[ta] = steps;
    let grid = const_tensor(cx, grid_dims, (0..steps as i64).collect::<Vec<i64>>())?;
    let grid = cx.constant(grid);
    let mut len_dims = vec![1; d.len()];
    len_dims[ba] = d[ba];
    let l = if ldt == DType::I64 {
        lens
    } else {
        cx.emit1(Op::Cast { to: DType::I64 }, &[lens])?
    };
    let l = cx.emit1(
        Op::Clip {
            min: 0.0,
            max: steps as f64,
        },
        &[l],
    )?;
    let l = reshape(cx, l, len_dims)?;
    let inside = cx.emit1(Op::Binary(BinaryOp::Less), &[grid, l])?;
    let one = cx.constant(Tensor::scalar(1i64));
    let lm1 = cx.emit1(Op::Binary(BinaryOp::Sub), &[l, one])?;
    let rev = cx.emit1(Op::Binary(BinaryOp::Sub), &[lm1, grid])?;
    let idx = cx.emit1(Op::Where, &[inside, rev, grid])?;
    let s = shape(cx, d)?;
    let idx = cx.emit1(Op::Expand { shape: s }, &[idx])?;
    Ok(vec![cx.emit1(Op::GatherElements { axis: ta }, &[x, idx])?])
}

/// `Compress(input, condition)`: the slices along `axis` (of the flattened input without
/// one) where the constant `condition` is true, as one `Gather`. The condition fixes the
/// output's shape, so it must be known at import (a graph input is bound to its value).
fn compress(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let cond = cx
        .const_input(1)?
        .ok_or_else(|| cx.err("required input 1 is missing"))?;
    if cond.shape().rank() != 1 {
        return Err(cx.err(format!(
            "condition has shape {}, expected rank 1",
            cond.shape()
        )));
    }
    let d = dims_of(cx, x);
    let (x, a) = match cx.attr_int("axis")? {
        Some(raw) => (x, axis(cx, raw, d.len())?),
        None => {
            let n = d.iter().product();
            (reshape(cx, x, vec![n])?, 0)
        }
    };
    let len = dims_of(cx, x)[a];
    let picked: Vec<i64> = cond
        .to_f64_vec()
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c != 0.0)
        .map(|(i, _)| i as i64)
        .collect();
    if let Some(&i) = picked.iter().find(|&&i| i as usize >= len) {
        return Err(cx.err(format!(
            "condition selects index {i}, but axis {a} has {len} elements"
        )));
    }
    let n = picked.len();
    let idx = const_tensor(cx, vec![n], picked)?;
    let idx = cx.constant(idx);
    Ok(vec![cx.emit1(Op::Gather { axis: a }, &[x, idx])?])
}

/// `NonZero(X)`: the indices of the non-zero elements, `[rank, count]` in row-major
/// order. The count is the output's shape, so `X` must be known at import (a graph input
/// is bound to its value) and the result is a constant.
fn nonzero(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx
        .const_input(0)?
        .ok_or_else(|| cx.err("required input 0 is missing"))?;
    let dims = x.shape().dims().to_vec();
    let values = x.to_f64_vec();
    let hits: Vec<usize> = (0..values.len()).filter(|&i| values[i] != 0.0).collect();
    cx.check_built("the indices", hits.len() * dims.len().max(1))?;
    let rank = dims.len();
    let mut out = vec![0i64; rank * hits.len()];
    for (k, &flat) in hits.iter().enumerate() {
        let mut rest = flat;
        for a in (0..rank).rev() {
            out[a * hits.len() + k] = (rest % dims[a]) as i64;
            rest /= dims[a];
        }
    }
    let t = const_tensor(cx, vec![rank, hits.len()], out)?;
    Ok(vec![cx.constant(t)])
}

/// Orders f64 values as `numpy.unique` does: −0 equals 0, NaNs are equal and last.
fn cmp_values(a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// `Unique(X)`: the distinct elements (or, with `axis`, slices along it), sorted or in
/// order of first occurrence, with the index of each one's first occurrence, the index of
/// each input element (slice) in the result and the counts. The number of distinct values
/// is the output's shape, so `X` must be known at import (a graph input is bound); `Y`
/// is a `Gather` of `X` at the first occurrences, the three index outputs constants.
fn unique(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let t = cx
        .const_input(0)?
        .ok_or_else(|| cx.err("required input 0 is missing"))?;
    let sorted = cx.attr_int("sorted")?.unwrap_or(1) != 0;
    let d = dims_of(cx, x);
    let (x, a) = match cx.attr_int("axis")? {
        Some(raw) => (x, axis(cx, raw, d.len())?),
        None => {
            let n = d.iter().product();
            (reshape(cx, x, vec![n])?, 0)
        }
    };
    let dims = dims_of(cx, x);
    let values = t.to_f64_vec();
    // Slice k along the axis, as its elements in row-major order.
    let (outer, len) = (dims[..a].iter().product::<usize>(), dims[a]);
    let inner: usize = dims[a + 1..].iter().product();
    let slice = |k: usize| -> Vec<f64> {
        (0..outer)
            .flat_map(|o| (0..inner).map(move |i| (o * len + k) * inner + i))
            .map(|j| values[j])
            .collect()
    };
    let slices: Vec<Vec<f64>> = (0..len).map(slice).collect();
    let cmp = |p: &[f64], q: &[f64]| {
        p.iter()
            .zip(q)
            .map(|(&u, &v)| cmp_values(u, v))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    // Equal slices grouped by a stable sort (so each group starts at its first
    // occurrence), the groups then numbered in order of appearance.
    let mut by_value: Vec<usize> = (0..len).collect();
    by_value.sort_by(|&p, &q| cmp(&slices[p], &slices[q]));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &k in &by_value {
        match groups.last_mut() {
            Some(g) if cmp(&slices[g[0]], &slices[k]).is_eq() => g.push(k),
            _ => groups.push(vec![k]),
        }
    }
    groups.sort_by_key(|g| g[0]);
    let first: Vec<usize> = groups.iter().map(|g| g[0]).collect();
    let mut inverse = vec![0usize; len];
    for (u, g) in groups.iter().enumerate() {
        for &k in g {
            inverse[k] = u;
        }
    }
    // The output order: sorted, or as they appeared.
    let mut order: Vec<usize> = (0..first.len()).collect();
    if sorted {
        order.sort_by(|&p, &q| cmp(&slices[first[p]], &slices[first[q]]));
    }
    let mut rank = vec![0usize; first.len()];
    for (pos, &u) in order.iter().enumerate() {
        rank[u] = pos;
    }
    let n = first.len();
    let indices: Vec<i64> = order.iter().map(|&u| first[u] as i64).collect();
    let inverse: Vec<i64> = inverse.iter().map(|&u| rank[u] as i64).collect();
    let mut counts = vec![0i64; n];
    for &r in &inverse {
        counts[r as usize] += 1;
    }
    let idx = const_tensor(cx, vec![n], indices)?;
    let idx = cx.constant(idx);
    let y = cx.emit1(Op::Gather { axis: a }, &[x, idx])?;
    let inv = const_tensor(cx, vec![len], inverse)?;
    let inv = cx.constant(inv);
    let cnt = const_tensor(cx, vec![n], counts)?;
    let cnt = cx.constant(cnt);
    Ok(vec![y, idx, inv, cnt])
}

/// `TensorScatter(past_cache, update, write_indices)`: `update` written into the cache
/// along `axis` at each batch entry's run-time position (`linear`), or wrapping around the
/// axis (`circular`). Pulled like the other scatters: cache position `t` of batch `b`
/// takes `update[t − w_b]` (mod the axis for `circular`) where that lies in the update,
/// else the past value; one `GatherElements` and one `Where`. A linear write past the end
/// of the axis is dropped.
fn tensor_scatter(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (past, update) = (cx.input(0)?, cx.input(1)?);
    let pd = dims_of(cx, past);
    let ud = dims_of(cx, update);
    let r = pd.len();
    if r < 2 || ud.len() != r || cx.ty(update).dtype != cx.ty(past).dtype {
        return Err(cx.err(format!(
            "past_cache {} and update {} must have one dtype and rank 2 or more",
            cx.ty(past).shape,
            cx.ty(update).shape
        )));
    }
    let a = axis(cx, cx.attr_int("axis")?.unwrap_or(-2), r)?;
    if a == 0 {
        return Err(cx.err("axis must not be the batch axis 0"));
    }
    if (0..r).any(|i| {
        if i == a {
            ud[i] > pd[i]
        } else {
            ud[i] != pd[i]
        }
    }) {
        return Err(cx.err(format!(
            "update {} does not fit past_cache {} along axis {a}",
            cx.ty(update).shape,
            cx.ty(past).shape
        )));
    }
    let circular = match cx.attr_string("mode")?.as_deref() {
        None | Some("linear") => false,
        Some("circular") => true,
        Some(other) => return Err(cx.err(format!("unknown mode {other:?}"))),
    };
    let (len, n) = (pd[a] as i64, ud[a] as i64);
    if n == 0 {
        return Ok(vec![past]);
    }
    let c = |cx: &mut Ctx, v: i64| cx.constant(Tensor::scalar(v));
    let bin =
        |cx: &mut Ctx, op: BinaryOp, p: ValueId, q: ValueId| cx.emit1(Op::Binary(op), &[p, q]);
    let mut grid_dims = vec![1; r];
    grid_dims[a] = pd[a];
    let grid = const_tensor(cx, grid_dims, (0..len).collect::<Vec<i64>>())?;
    let grid = cx.constant(grid);
    let mut j = grid;
    if let Some(w) = cx.opt_input(2) {
        let wdt = cx.ty(w).dtype;
        if !matches!(wdt, DType::I32 | DType::I64) || dims_of(cx, w) != [pd[0]] {
            return Err(cx.err(format!(
                "write_indices is {} {}, expected int64 [{}]",
                wdt,
                cx.ty(w).shape,
                pd[0]
            )));
        }
        let w = if wdt == DType::I64 {
            w
        } else {
            cx.emit1(Op::Cast { to: DType::I64 }, &[w])?
        };
        let mut wd = vec![1; r];
        wd[0] = pd[0];
        let w = reshape(cx, w, wd)?;
        j = bin(cx, BinaryOp::Sub, grid, w)?;
    }
    if circular && len > 0 {
        // j mod len, for any sign of j: j − len·⌊j/len⌋ with the truncating division
        // corrected where j is negative and inexact.
        let l = c(cx, len);
        let q = bin(cx, BinaryOp::Div, j, l)?;
        let ql = bin(cx, BinaryOp::Mul, q, l)?;
        let m = bin(cx, BinaryOp::Sub, j, ql)?;
        let zero = c(cx, 0);
        let neg = bin(cx, BinaryOp::Less, m, zero)?;
        let up = bin(cx, BinaryOp::Add, m, l)?;
        j = cx.emit1(Op::Where, &[neg, up, m])?;
    }
    let zero = c(cx, 0);
    let nn = c(cx, n);
    let ge = bin(cx, BinaryOp::GreaterOrEqual, j, zero)?;
    let lt = bin(cx, BinaryOp::Less, j, nn)?;
    let inside = bin(cx, BinaryOp::And, ge, lt)?;
    let jc = cx.emit1(
        Op::Clip {
            min: 0.0,
            max: (n - 1) as f64,
        },
        &[j],
    )?;
    let s = shape(cx, pd)?;
    let jc = cx.emit1(Op::Expand { shape: s.clone() }, &[jc])?;
    let inside = cx.emit1(Op::Expand { shape: s }, &[inside])?;
    let taken = cx.emit1(Op::GatherElements { axis: a }, &[update, jc])?;
    Ok(vec![cx.emit1(Op::Where, &[inside, taken, past])?])
}

/// `MaxUnpool(X, I, output_shape?)`: zeros of the output shape with `X`'s values at the
/// flat indices `I` (as `MaxPool` returns them, counted over the whole tensor): the
/// `ScatterND` expansion over the flattened output (run-time indices compare every index
/// with every position, within the scatter limit; an out-of-range index writes nothing).
fn max_unpool(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, ind) = (cx.input(0)?, cx.input(1)?);
    let d = dims_of(cx, x);
    if d.len() < 3 || dims_of(cx, ind) != d {
        return Err(cx.err(format!(
            "X {} and I {} must be one shape [N, C, spatial...]",
            cx.ty(x).shape,
            cx.ty(ind).shape
        )));
    }
    if cx.ty(ind).dtype != DType::I64 {
        return Err(cx.err(format!("I is {}, expected int64", cx.ty(ind).dtype)));
    }
    let sp = d.len() - 2;
    let kernel = cx
        .attr_ints("kernel_shape")?
        .ok_or_else(|| cx.err("kernel_shape is missing"))?;
    let strides = cx.attr_ints("strides")?.unwrap_or_else(|| vec![1; sp]);
    let pads = cx.attr_ints("pads")?.unwrap_or_else(|| vec![0; 2 * sp]);
    if kernel.len() != sp || strides.len() != sp || pads.len() != 2 * sp {
        return Err(cx.err(format!(
            "kernel_shape {kernel:?}, strides {strides:?} and pads {pads:?} do not match {sp} spatial axes"
        )));
    }
    // The indices address the inferred shape; output_shape, if larger, pads its end.
    let mut inferred = vec![d[0], d[1]];
    for i in 0..sp {
        let v = (d[2 + i] as i128 - 1) * i128::from(strides[i]) + i128::from(kernel[i])
            - i128::from(pads[i])
            - i128::from(pads[sp + i]);
        if v <= 0 || v > i128::from(tessera_ir::MAX_ELEMENTS) {
            return Err(cx.err(format!(
                "spatial axis {i} would have size {v}, outside 1..={}",
                tessera_ir::MAX_ELEMENTS
            )));
        }
        inferred.push(v as usize);
    }
    let out: Vec<usize> = match cx.ints_input(2)? {
        Some(s) => {
            let ok = s.len() == d.len()
                && s.iter().zip(&inferred).enumerate().all(|(i, (&o, &n))| {
                    if i < 2 { o == n as i64 } else { o >= n as i64 }
                });
            if !ok {
                return Err(cx.err(format!(
                    "output_shape {s:?} must be [{}, {}, spatial...] at least {inferred:?}",
                    d[0], d[1]
                )));
            }
            s.iter().map(|&v| v as usize).collect()
        }
        None => inferred.clone(),
    };
    let product = |v: &[usize]| checked_numel(v).unwrap_or(usize::MAX);
    cx.check_built("the unpooled output", product(&out))?;
    cx.check_built("the unpooled output", product(&inferred))?;
    let numel = product(&inferred);
    let m: usize = d.iter().product();
    let zero_shape = shape(cx, vec![numel])?;
    let dtype = cx.ty(x).dtype;
    let zeros = cx.constant(Tensor::full(dtype, zero_shape, 0.0));
    let upd = reshape(cx, x, vec![m])?;
    let idx = reshape(cx, ind, vec![m, 1])?;
    let flat = match cx.const_value(1).cloned() {
        Some(i) => scatter_constant(
            cx,
            zeros,
            upd,
            &i.to_i64_vec(),
            &[numel],
            1,
            m,
            Reduction::None,
        )?,
        None => scatter_dynamic(cx, zeros, idx, upd, &[numel], 1, m, Reduction::None)?,
    };
    let mut y = reshape(cx, flat, inferred.clone())?;
    let mut cur = inferred;
    for a in 2..d.len() {
        if out[a] > cur[a] {
            let mut zd = cur.clone();
            zd[a] = out[a] - cur[a];
            let zs = shape(cx, zd)?;
            let z = cx.constant(Tensor::full(dtype, zs, 0.0));
            y = cx.emit1(Op::Concat { axis: a }, &[y, z])?;
            cur[a] = out[a];
        }
    }
    Ok(vec![y])
}
