//! Ops that pick elements: `Slice` and the `Gather` family.

use tessera_ir::{Op, ValueId};

use super::common::{R, Translator, axis, dims_of};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("Slice", slice),
    ("Gather", gather),
    ("GatherElements", gather_elements),
    ("GatherND", gather_nd),
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
