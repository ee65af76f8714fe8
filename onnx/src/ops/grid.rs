//! `AffineGrid` (opset 20): the sampling grid of an affine transform, a constant grid of
//! normalized homogeneous coordinates `(x, y[, z], 1)` (x along the last axis) multiplied
//! by each batch's `θᵀ`. The function body builds the same grid with `If` on
//! `align_corners`; here the attribute is read directly.

use tessera_ir::{Op, Tensor, ValueId};

use super::common::{R, Translator, dims_of, reshape, shape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[("AffineGrid", affine_grid)];

/// The normalized coordinates of `n` positions in `[-1, 1]`: the pixel corners when
/// `align_corners`, else their centres.
fn coords(n: usize, align_corners: bool) -> Vec<f64> {
    (0..n)
        .map(|i| {
            if align_corners {
                if n == 1 {
                    -1.0
                } else {
                    -1.0 + 2.0 * i as f64 / (n - 1) as f64
                }
            } else {
                -1.0 + (2 * i + 1) as f64 / n as f64
            }
        })
        .collect()
}

fn affine_grid(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let theta = cx.input(0)?;
    let size = cx
        .ints_input(1)?
        .ok_or_else(|| cx.err("required input 1 (size) is missing"))?;
    let dtype = cx.ty(theta).dtype;
    if !dtype.is_float() {
        return Err(cx.err(format!("theta is {dtype}, expected a float dtype")));
    }
    let align_corners = cx.attr_int("align_corners")?.unwrap_or(0) != 0;
    if size.len() != 4 && size.len() != 5 {
        return Err(cx.err(format!(
            "size has {} values; expected [N, C, H, W] or [N, C, D, H, W]",
            size.len()
        )));
    }
    if size.iter().any(|&d| d < 0) {
        return Err(cx.err(format!("size {size:?} has a negative entry")));
    }
    let nd = size.len() - 2;
    let td = dims_of(cx, theta);
    if td != [size[0] as usize, nd, nd + 1] {
        return Err(cx.err(format!(
            "theta {} must be [N = {}, {nd}, {}] for a {nd}-D size",
            cx.ty(theta).shape,
            size[0],
            nd + 1
        )));
    }
    let spatial: Vec<usize> = size[2..].iter().map(|&d| d as usize).collect();
    let points: usize = spatial.iter().product();
    cx.check_built("the base grid", points * (nd + 1))?;
    // Row p holds (x, y[, z], 1) of point p, the last spatial axis varying fastest.
    let axes: Vec<Vec<f64>> = spatial.iter().map(|&n| coords(n, align_corners)).collect();
    let mut data = Vec::with_capacity(points * (nd + 1));
    for p in 0..points {
        let mut rest = p;
        let mut idx = vec![0; nd];
        for a in (0..nd).rev() {
            idx[a] = rest % spatial[a];
            rest /= spatial[a];
        }
        for a in (0..nd).rev() {
            data.push(axes[a][idx[a]]);
        }
        data.push(1.0);
    }
    let sh = shape(cx, vec![points, nd + 1])?;
    let base = Tensor::from_vec(sh, data).map_err(|e| cx.err(e.to_string()))?;
    let base = cx.constant(base.cast(dtype));
    let tt = cx.emit1(
        Op::Transpose {
            perm: vec![0, 2, 1],
        },
        &[theta],
    )?;
    let grid = cx.emit1(Op::MatMul, &[base, tt])?;
    let mut out = vec![td[0]];
    out.extend(&spatial);
    out.push(nd);
    Ok(vec![reshape(cx, grid, out)?])
}
