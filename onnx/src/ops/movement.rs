//! Data movement that keeps every element: reshapes (`Reshape`, `Flatten`, `Squeeze`,
//! `Unsqueeze`), `Transpose`, broadcasting (`Expand`, `Tile`), `Concat`, `Split`, and
//! `DepthToSpace`/`SpaceToDepth` as the reshape, transpose, reshape they are.

use tessera_ir::{Op, ValueId, broadcast_shapes};

use super::common::{R, Translator, axes, axis, checked_numel, dims_of, reshape, shape};
use crate::context::Ctx;
use crate::tensor::shape_from_dims;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("Reshape", reshape_op),
    ("Flatten", flatten),
    ("Squeeze", squeeze),
    ("Unsqueeze", unsqueeze),
    ("Transpose", transpose),
    ("Expand", expand),
    ("Tile", tile),
    ("Concat", concat),
    ("Split", split),
    ("DepthToSpace", |cx| depth_space(cx, true)),
    ("SpaceToDepth", |cx| depth_space(cx, false)),
];

/// `DepthToSpace` (`to_space`) and `SpaceToDepth` on `[N, C, H, W]` with block size `b`:
/// split the channel (or the spatial) axes into blocks, move the blocks, merge. `DCR`
/// mode (the default) orders channels as (block row, block column, channel), `CRD` as
/// (channel, block row, block column).
fn depth_space(cx: &mut Ctx, to_space: bool) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    let [n, c, h, w] = d[..] else {
        return Err(cx.err(format!(
            "input has rank {}, expected 4 ([N, C, H, W])",
            d.len()
        )));
    };
    let b = cx
        .attr_int("blocksize")?
        .ok_or_else(|| cx.err("attribute \"blocksize\" is missing"))?;
    // b² ≤ MAX_ELEMENTS keeps b², h·b and w·b clear of overflow.
    if b <= 0 || (b as u64).saturating_mul(b as u64) > tessera_ir::MAX_ELEMENTS {
        return Err(cx.err(format!(
            "blocksize {b} must be positive and its square at most {}",
            tessera_ir::MAX_ELEMENTS
        )));
    }
    let b = b as usize;
    let dcr = match cx.attr_string("mode")?.as_deref().unwrap_or("DCR") {
        "DCR" => true,
        "CRD" => false,
        other => return Err(cx.err(format!("unknown mode {other:?}"))),
    };
    let (split, perm, out) = if to_space {
        if c % (b * b) != 0 {
            return Err(cx.err(format!(
                "channels {c} are not a multiple of blocksize² {}",
                b * b
            )));
        }
        let cc = c / (b * b);
        if dcr {
            (
                vec![n, b, b, cc, h, w],
                vec![0, 3, 4, 1, 5, 2],
                vec![n, cc, h * b, w * b],
            )
        } else {
            (
                vec![n, cc, b, b, h, w],
                vec![0, 1, 4, 2, 5, 3],
                vec![n, cc, h * b, w * b],
            )
        }
    } else {
        if h % b != 0 || w % b != 0 {
            return Err(cx.err(format!(
                "spatial size {h}×{w} is not a multiple of blocksize {b}"
            )));
        }
        let (hh, ww) = (h / b, w / b);
        let perm = if dcr {
            vec![0, 3, 5, 1, 2, 4]
        } else {
            vec![0, 1, 3, 5, 2, 4]
        };
        (vec![n, c, hh, b, ww, b], perm, vec![n, c * b * b, hh, ww])
    };
    let s = reshape(cx, x, split)?;
    let t = cx.emit1(Op::Transpose { perm }, &[s])?;
    Ok(vec![reshape(cx, t, out)?])
}

fn reshape_op(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let target = cx
        .ints_input(1)?
        .ok_or_else(|| cx.err("the shape input is missing"))?;
    let allow_zero = cx.attr_int("allowzero")?.unwrap_or(0) != 0;
    let dims = reshape_target(cx, &dims_of(cx, x), &target, allow_zero)?;
    Ok(vec![reshape(cx, x, dims)?])
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
    // Target dims come from the model and may overflow a product: `None` is "too many".
    let product = checked_numel;
    let total: usize = input.iter().product();
    if let Some(i) = infer {
        let rest = product(&out).unwrap_or(0);
        if rest == 0 || !total.is_multiple_of(rest) {
            return Err(cx.err(format!("cannot reshape {input:?} to {target:?}")));
        }
        out[i] = total / rest;
    }
    if product(&out) != Some(total) {
        return Err(cx.err(format!(
            "cannot reshape {input:?} ({total} elements) to {target:?}"
        )));
    }
    Ok(out)
}

fn flatten(cx: &mut Ctx) -> R<Vec<ValueId>> {
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
    Ok(vec![reshape(cx, x, vec![outer, inner])?])
}

/// The axes of `Squeeze` and `Unsqueeze`: an input from opset 13, an attribute before.
fn squeeze_axes(cx: &Ctx) -> R<Option<Vec<i64>>> {
    if cx.opset >= 13 {
        cx.ints_input(1)
    } else {
        cx.attr_ints("axes")
    }
}

fn squeeze(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    let ax = match squeeze_axes(cx)? {
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
    Ok(vec![reshape(cx, x, out)?])
}

fn unsqueeze(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    let raw = squeeze_axes(cx)?.ok_or_else(|| cx.err("axes are missing"))?;
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
    Ok(vec![reshape(cx, x, out)?])
}

fn transpose(cx: &mut Ctx) -> R<Vec<ValueId>> {
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
        return Ok(vec![cx.emit1(Op::Identity, &[x])?]);
    }
    Ok(vec![cx.emit1(Op::Transpose { perm }, &[x])?])
}

fn expand(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let target = cx
        .ints_input(1)?
        .ok_or_else(|| cx.err("the shape input is missing"))?;
    let t = shape_from_dims(&target).map_err(|m| cx.err(m))?;
    let out = broadcast_shapes(&cx.ty(x).shape, &t)
        .ok_or_else(|| cx.err(format!("{} does not broadcast with {t}", cx.ty(x).shape)))?;
    if out == cx.ty(x).shape {
        return Ok(vec![cx.emit1(Op::Identity, &[x])?]);
    }
    Ok(vec![cx.emit1(Op::Expand { shape: out }, &[x])?])
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

fn concat(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let inputs = cx.all_inputs();
    let first = *inputs.first().ok_or_else(|| cx.err("no inputs"))?;
    let rank = cx.ty(first).shape.rank();
    let a = axis(
        cx,
        cx.attr_int("axis")?
            .ok_or_else(|| cx.err("attribute \"axis\" is missing"))?,
        rank,
    )?;
    Ok(vec![cx.emit1(Op::Concat { axis: a }, &inputs)?])
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
            if parts > n {
                return Err(cx.err(format!(
                    "num_outputs is {parts} but the node has {n} output(s)"
                )));
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
