//! The window functions `HannWindow`, `HammingWindow` and `BlackmanWindow` (opset 17):
//! cosine sums `a0 − a1·cos(θn) + a2·cos(2θn)` of a constant length, so they become
//! constants, computed in f32 step by step as the ONNX function bodies do.

use tessera_ir::{Tensor, ValueId};

use super::common::{R, Translator, shape};
use crate::context::Ctx;
use crate::tensor::dtype_from_onnx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("HannWindow", |cx| window(cx, [0.5, 0.5, 0.0])),
    ("HammingWindow", |cx| {
        window(cx, [25.0 / 46.0, 21.0 / 46.0, 0.0])
    }),
    ("BlackmanWindow", |cx| window(cx, [0.42, 0.5, 0.08])),
];

/// The window of `size` (input 0, a constant scalar) with coefficients `a`; periodic
/// (`θ = 2π / size`) unless `periodic = 0` (`θ = 2π / (size − 1)`).
fn window(cx: &mut Ctx, a: [f32; 3]) -> R<Vec<ValueId>> {
    let size = cx
        .ints_input(0)?
        .ok_or_else(|| cx.err("required input 0 is missing"))?;
    let &[n] = size.as_slice() else {
        return Err(cx.err(format!(
            "size must be one integer, got {} values",
            size.len()
        )));
    };
    if n < 0 {
        return Err(cx.err(format!("size {n} is negative")));
    }
    let n = n as usize;
    let periodic = cx.attr_int("periodic")?.unwrap_or(1) != 0;
    let code = cx.attr_int("output_datatype")?.unwrap_or(1);
    let to = dtype_from_onnx(code as i32).map_err(|m| cx.err(m))?;
    cx.check_built("the window", n)?;
    let denom = if periodic { n as f32 } else { n as f32 - 1.0 };
    let step = std::f32::consts::TAU / denom;
    let values: Vec<f32> = (0..n)
        .map(|k| {
            let t = k as f32 * step;
            a[0] - a[1] * t.cos() + a[2] * (t * 2.0).cos()
        })
        .collect();
    let sh = shape(cx, vec![n])?;
    let t = Tensor::from_vec(sh, values).map_err(|e| cx.err(e.to_string()))?;
    Ok(vec![cx.constant(t.cast(to))])
}
