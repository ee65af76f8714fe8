//! `CenterCropPad` (opset 18): each named axis cropped to a centred window or padded with
//! zeros on both sides (the odd element on the right), as its function body does with
//! `Pad` and `Slice`.

use tessera_ir::{Op, Tensor, ValueId};

use super::common::{R, Translator, axis, dims_of, shape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[("CenterCropPad", center_crop_pad)];

fn center_crop_pad(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let target = cx
        .ints_input(1)?
        .ok_or_else(|| cx.err("required input 1 (shape) is missing"))?;
    let rank = cx.ty(x).shape.rank();
    let axes: Vec<usize> = match cx.attr_ints("axes")? {
        Some(a) => a
            .iter()
            .map(|&a| axis(cx, a, rank))
            .collect::<R<Vec<_>>>()?,
        None => (0..rank).collect(),
    };
    if target.len() != axes.len() {
        return Err(cx.err(format!(
            "shape has {} values for {} axes",
            target.len(),
            axes.len()
        )));
    }
    if (1..axes.len()).any(|i| axes[..i].contains(&axes[i])) {
        return Err(cx.err(format!("axes {axes:?} repeat an axis")));
    }
    let dtype = cx.ty(x).dtype;
    let mut y = x;
    for (&a, &t) in axes.iter().zip(&target) {
        if t < 0 {
            return Err(cx.err(format!("target size {t} for axis {a} is negative")));
        }
        let t = t as usize;
        let mut d = dims_of(cx, y);
        let n = d[a];
        if t < n {
            let start = (n - t) / 2;
            y = cx.emit1(
                Op::Slice {
                    axes: vec![a],
                    starts: vec![start as i64],
                    ends: vec![(start + t) as i64],
                    steps: vec![1],
                },
                &[y],
            )?;
        } else if t > n {
            let left = (t - n) / 2;
            let right = t - n - left;
            let mut parts = Vec::new();
            for (k, width) in [(0, left), (1, 0), (2, right)] {
                if k == 1 {
                    parts.push(y);
                } else if width > 0 {
                    d[a] = width;
                    cx.check_built("the zero padding", d.iter().product())?;
                    let sh = shape(cx, d.clone())?;
                    parts.push(cx.constant(Tensor::full(dtype, sh, 0.0)));
                }
            }
            y = cx.emit1(Op::Concat { axis: a }, &parts)?;
        }
    }
    if y == x {
        y = cx.emit1(Op::Identity, &[x])?;
    }
    Ok(vec![y])
}
