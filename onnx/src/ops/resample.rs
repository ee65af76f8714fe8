//! Ops whose output elements are input elements at index maps fixed by static attributes
//! (`Pad`), translated into data movement the IR already has: per axis, a `Slice` for
//! cropping, a `Concat` with constant blocks for constant padding, and a `Gather` at
//! constant indices for edge, reflect and wrap padding.

use tessera_ir::{Op, Tensor, ValueId};

use super::common::{R, Translator, axis, dims_of, reshape, shape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[("Pad", pad)];

/// A constant 1-D tensor.
fn vector<T: tessera_ir::Element>(cx: &mut Ctx, v: Vec<T>) -> R<ValueId> {
    let s = shape(cx, vec![v.len()])?;
    let t = Tensor::from_vec(s, v).map_err(|e| cx.err(e.to_string()))?;
    Ok(cx.constant(t))
}

/// `x` gathered along `axis` at the constant `indices` (each within the axis).
fn gather_at(cx: &mut Ctx, x: ValueId, axis: usize, indices: Vec<i64>) -> R<ValueId> {
    let dim = dims_of(cx, x)[axis];
    if indices.len() == dim && indices.iter().enumerate().all(|(i, &j)| i as i64 == j) {
        return Ok(x);
    }
    let i = vector(cx, indices)?;
    cx.emit1(Op::Gather { axis }, &[x, i])
}

/// The dims of `x` with `axis` set to `n`.
fn with_dim(cx: &Ctx, x: ValueId, axis: usize, n: usize) -> Vec<usize> {
    let mut d = dims_of(cx, x);
    d[axis] = n;
    d
}

/// How `Pad` fills the positions it adds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PadMode {
    Constant,
    Edge,
    Reflect,
    Wrap,
}

/// The value constant padding fills with.
enum Fill {
    Literal(f64),
    /// A scalar (or one-element) value of the data's dtype.
    Value(ValueId),
}

fn pad(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let d = dims_of(cx, x);
    let rank = d.len();
    let mode = match cx.attr_string("mode")?.as_deref().unwrap_or("constant") {
        "constant" => PadMode::Constant,
        "edge" => PadMode::Edge,
        "reflect" => PadMode::Reflect,
        "wrap" => PadMode::Wrap,
        other => return Err(cx.err(format!("unknown pad mode {other:?}"))),
    };
    let (pads, fill, raw_axes) = if cx.opset >= 11 {
        let pads = cx
            .ints_input(1)?
            .ok_or_else(|| cx.err("the pads input is missing"))?;
        let fill = match cx.opt_input(2) {
            Some(v) => {
                let t = cx.ty(v);
                if t.shape.numel() != 1 {
                    return Err(cx.err(format!(
                        "constant_value must be a single value, got shape {}",
                        t.shape
                    )));
                }
                if t.dtype != cx.ty(x).dtype {
                    return Err(cx.err(format!(
                        "constant_value is {}, the data {}",
                        t.dtype,
                        cx.ty(x).dtype
                    )));
                }
                Fill::Value(v)
            }
            None => Fill::Literal(0.0),
        };
        (pads, fill, cx.ints_input(3)?)
    } else {
        let pads = match cx.attr_ints("pads")? {
            Some(p) => p,
            None => cx
                .attr_ints("paddings")?
                .ok_or_else(|| cx.err("attribute \"pads\" is missing"))?,
        };
        let value = cx.attr_float("value")?.unwrap_or(0.0);
        (pads, Fill::Literal(value.into()), None)
    };
    let axes: Vec<usize> = match raw_axes {
        Some(a) => a
            .iter()
            .map(|&a| axis(cx, a, rank))
            .collect::<R<Vec<_>>>()?,
        None => (0..rank).collect(),
    };
    let n = axes.len();
    if pads.len() != 2 * n {
        return Err(cx.err(format!(
            "{} pads for {n} axes, expected {}",
            pads.len(),
            2 * n
        )));
    }
    if (1..n).any(|i| axes[..i].contains(&axes[i])) {
        return Err(cx.err(format!("axes {axes:?} repeat an axis")));
    }
    let mut y = x;
    for (i, &a) in axes.iter().enumerate() {
        y = pad_axis(cx, y, a, pads[i], pads[n + i], mode, &fill)?;
    }
    if y == x {
        y = cx.emit1(Op::Identity, &[x])?;
    }
    Ok(vec![y])
}

/// Pads (or, for negative pads, crops) `x` along `axis` by `begin` and `end`. Cropping
/// comes first, so edge, reflect and wrap padding read the cropped data.
fn pad_axis(
    cx: &mut Ctx,
    x: ValueId,
    axis: usize,
    begin: i64,
    end: i64,
    mode: PadMode,
    fill: &Fill,
) -> R<ValueId> {
    let dim = dims_of(cx, x)[axis] as i64;
    let (crop_b, crop_e) = ((-begin).max(0), (-end).max(0));
    if crop_b + crop_e > dim {
        return Err(cx.err(format!(
            "pads {begin} and {end} crop more than axis {axis}'s {dim} elements"
        )));
    }
    let mut x = x;
    if crop_b + crop_e > 0 {
        let op = Op::Slice {
            axes: vec![axis],
            starts: vec![crop_b],
            ends: vec![dim - crop_e],
            steps: vec![1],
        };
        x = cx.emit1(op, &[x])?;
    }
    let n = dim - crop_b - crop_e;
    let (b, e) = (begin.max(0), end.max(0));
    if b == 0 && e == 0 {
        return Ok(x);
    }
    if mode == PadMode::Constant {
        let mut parts = Vec::new();
        for (len, at_end) in [(b, false), (e, true)] {
            if len > 0 {
                let dims = with_dim(cx, x, axis, len as usize);
                let block = fill_block(cx, x, dims, fill)?;
                parts.push((at_end, block));
            }
        }
        let mut inputs: Vec<ValueId> = parts.iter().filter(|p| !p.0).map(|p| p.1).collect();
        inputs.push(x);
        inputs.extend(parts.iter().filter(|p| p.0).map(|p| p.1));
        return cx.emit1(Op::Concat { axis }, &inputs);
    }
    if n == 0 {
        return Err(cx.err(format!(
            "axis {axis} is empty: there is nothing to pad it with"
        )));
    }
    let indices = (-b..n + e)
        .map(|j| match mode {
            PadMode::Edge => j.clamp(0, n - 1),
            PadMode::Wrap => j.rem_euclid(n),
            // numpy's "reflect": mirrored about the edge elements, periodic beyond.
            _ if n == 1 => 0,
            _ => {
                let m = j.rem_euclid(2 * (n - 1));
                if m < n { m } else { 2 * (n - 1) - m }
            }
        })
        .collect();
    gather_at(cx, x, axis, indices)
}

/// A block of `dims` filled with the pad value, in `x`'s dtype.
fn fill_block(cx: &mut Ctx, x: ValueId, dims: Vec<usize>, fill: &Fill) -> R<ValueId> {
    let s = shape(cx, dims)?;
    match *fill {
        Fill::Literal(v) => Ok(cx.constant(Tensor::full(cx.ty(x).dtype, s, v))),
        Fill::Value(v) => {
            let ones = vec![1; s.rank()];
            let v = reshape(cx, v, ones)?;
            cx.emit1(Op::Expand { shape: s }, &[v])
        }
    }
}
