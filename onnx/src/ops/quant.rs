//! Linear quantization, expanded into IR ops: `DequantizeLinear` is `(x − zero_point) ·
//! scale` and `QuantizeLinear` `saturate(round(x / scale) + zero_point)` (round half to
//! even), with the scale and zero point per tensor, per axis (`[C]` along `axis`) or per
//! block (`block_size` elements along `axis` share one, gathered out to the input's
//! shape). Integer quantized types only (the IR has no float8 or 4-bit types).
//! `DynamicQuantizeLinear` computes a uint8 scale and zero point from the input's range
//! first, as its ONNX function body does.

use tessera_ir::{BinaryOp, DType, Op, ReduceOp, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator, axis, dims_of, reshape};
use crate::context::Ctx;
use crate::tensor::dtype_from_onnx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("DequantizeLinear", dequantize),
    ("QuantizeLinear", quantize),
    ("DynamicQuantizeLinear", dynamic_quantize),
];

/// Scale or zero point `p`, made to broadcast to `x_dims`: as is when it has one element,
/// along `a` when it is `[x_dims[a]]`, gathered block-wise along `a` with `block > 0`.
fn broadcast_param(
    cx: &mut Ctx,
    p: ValueId,
    what: &str,
    x_dims: &[usize],
    a: Option<usize>,
    block: usize,
) -> R<ValueId> {
    let pd = dims_of(cx, p);
    if pd.iter().product::<usize>() == 1 && pd.len() <= 1 && block == 0 {
        return reshape(cx, p, vec![]);
    }
    let Some(a) = a else {
        return Err(cx.err(format!(
            "{what} has shape {}, which needs an axis, but the axis is out of range for rank {}",
            cx.ty(p).shape,
            x_dims.len()
        )));
    };
    if block > 0 {
        let blocks = x_dims[a].div_ceil(block);
        let mut want = x_dims.to_vec();
        want[a] = blocks;
        if pd != want {
            return Err(cx.err(format!(
                "{what} has shape {}, expected [{}] for blocks of {block} along axis {a}",
                cx.ty(p).shape,
                want.iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )));
        }
        cx.check_built("the block index", x_dims[a])?;
        let idx: Vec<i64> = (0..x_dims[a]).map(|i| (i / block) as i64).collect();
        let shape = tessera_ir::Shape::new(vec![idx.len()]).map_err(|e| cx.err(e.to_string()))?;
        let idx = tessera_ir::Tensor::from_vec(shape, idx).map_err(|e| cx.err(e.to_string()))?;
        let idx = cx.constant(idx);
        return cx.emit1(Op::Gather { axis: a }, &[p, idx]);
    }
    if pd.len() == 1 && x_dims.get(a) == Some(&pd[0]) {
        let mut dims = vec![1; x_dims.len()];
        dims[a] = pd[0];
        return reshape(cx, p, dims);
    }
    Err(cx.err(format!(
        "{what} has shape {}; expected one value, or [{}] along axis {a}",
        cx.ty(p).shape,
        x_dims.get(a).copied().unwrap_or(0)
    )))
}

/// The quantization axis (`None` when out of range for the input's rank: it then matters
/// only if a per-axis or blocked parameter needs it) and the block size.
fn quant_axis(cx: &Ctx, rank: usize) -> R<(Option<usize>, usize)> {
    let raw = cx.attr_int("axis")?.unwrap_or(1);
    let a = axis(cx, raw, rank).ok();
    let block = cx.attr_int("block_size")?.unwrap_or(0);
    if block < 0 {
        return Err(cx.err(format!("block_size {block} must be non-negative")));
    }
    Ok((a, block as usize))
}

pub(super) fn cast_to(cx: &mut Ctx, v: ValueId, to: DType) -> R<ValueId> {
    if cx.ty(v).dtype == to {
        return Ok(v);
    }
    cx.emit1(Op::Cast { to }, &[v])
}

/// `(x − zero_point) · scale`, in the scale's dtype.
fn dequantize(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, scale) = (cx.input(0)?, cx.input(1)?);
    let zp = cx.opt_input(2);
    let d = dims_of(cx, x);
    let (a, block) = quant_axis(cx, d.len())?;
    let f = cx.ty(scale).dtype;
    if !f.is_float() {
        return Err(cx.err(format!("x_scale is {f}, expected a float dtype")));
    }
    let s = broadcast_param(cx, scale, "x_scale", &d, a, block)?;
    let mut v = cast_to(cx, x, f)?;
    if let Some(zp) = zp {
        if cx.ty(zp).dtype != cx.ty(x).dtype {
            return Err(cx.err(format!(
                "x_zero_point is {}, x is {}",
                cx.ty(zp).dtype,
                cx.ty(x).dtype
            )));
        }
        let z = broadcast_param(cx, zp, "x_zero_point", &d, a, block)?;
        let z = cast_to(cx, z, f)?;
        v = cx.emit1(Op::Binary(BinaryOp::Sub), &[v, z])?;
    }
    Ok(vec![cx.emit1(Op::Binary(BinaryOp::Mul), &[v, s])?])
}

/// The representable range of an integer quantized type.
pub(super) fn int_range(dt: DType) -> Option<(f64, f64)> {
    Some(match dt {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::U32 => (0.0, u32::MAX as f64),
        _ => return None,
    })
}

/// `saturate(round(x / scale) + zero_point)` in the zero point's dtype (else
/// `output_dtype`, else uint8).
fn quantize(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (x, scale) = (cx.input(0)?, cx.input(1)?);
    let zp = cx.opt_input(2);
    let d = dims_of(cx, x);
    let (a, block) = quant_axis(cx, d.len())?;
    let f = cx.ty(scale).dtype;
    if !f.is_float() || !cx.ty(x).dtype.is_float() {
        return Err(cx.err(format!(
            "x is {} and y_scale {}, expected float dtypes",
            cx.ty(x).dtype,
            f
        )));
    }
    let to = match (zp, cx.attr_int("output_dtype")?.filter(|&c| c != 0)) {
        (Some(zp), _) => cx.ty(zp).dtype,
        (None, Some(code)) => dtype_from_onnx(code as i32).map_err(|m| cx.err(m))?,
        (None, None) => DType::U8,
    };
    let Some((lo, hi)) = int_range(to) else {
        return Err(cx.err(format!("quantizing to {to} is not supported")));
    };
    let s = broadcast_param(cx, scale, "y_scale", &d, a, block)?;
    let xf = cast_to(cx, x, f)?;
    let q = cx.emit1(Op::Binary(BinaryOp::Div), &[xf, s])?;
    let mut q = cx.emit1(Op::Unary(UnaryOp::Round), &[q])?;
    if let Some(zp) = zp {
        let z = broadcast_param(cx, zp, "y_zero_point", &d, a, block)?;
        let z = cast_to(cx, z, f)?;
        q = cx.emit1(Op::Binary(BinaryOp::Add), &[q, z])?;
    }
    let q = cx.emit1(Op::Clip { min: lo, max: hi }, &[q])?;
    Ok(vec![cx.emit1(Op::Cast { to }, &[q])?])
}

/// `DynamicQuantizeLinear`: scale `(max(x, 0) − min(x, 0)) / 255`, zero point
/// `round(clip(−min(x, 0) / scale, 0, 255))` (uint8), then `QuantizeLinear` with them.
/// Outputs y, the scale and the zero point.
fn dynamic_quantize(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let dt = cx.ty(x).dtype;
    if dt != DType::F32 {
        return Err(cx.err(format!("input is {dt}, expected f32")));
    }
    let rank = cx.ty(x).shape.rank();
    let all = |op| Op::Reduce {
        op,
        axes: (0..rank).collect(),
        keep_dims: false,
    };
    let c = |cx: &mut Ctx, v: f64| cx.constant(Tensor::full(DType::F32, Shape::scalar(), v));
    let zero = c(cx, 0.0);
    let lo = cx.emit1(all(ReduceOp::Min), &[x])?;
    let lo = cx.emit1(Op::Binary(BinaryOp::Min), &[lo, zero])?;
    let hi = cx.emit1(all(ReduceOp::Max), &[x])?;
    let hi = cx.emit1(Op::Binary(BinaryOp::Max), &[hi, zero])?;
    let range = cx.emit1(Op::Binary(BinaryOp::Sub), &[hi, lo])?;
    let qmax = c(cx, 255.0);
    let scale = cx.emit1(Op::Binary(BinaryOp::Div), &[range, qmax])?;
    let lo_scaled = cx.emit1(Op::Binary(BinaryOp::Div), &[lo, scale])?;
    let zp = cx.emit1(Op::Unary(UnaryOp::Neg), &[lo_scaled])?;
    let zp = cx.emit1(
        Op::Clip {
            min: 0.0,
            max: 255.0,
        },
        &[zp],
    )?;
    let zp = cx.emit1(Op::Unary(UnaryOp::Round), &[zp])?;
    let q = cx.emit1(Op::Binary(BinaryOp::Div), &[x, scale])?;
    let q = cx.emit1(Op::Unary(UnaryOp::Round), &[q])?;
    let q = cx.emit1(Op::Binary(BinaryOp::Add), &[q, zp])?;
    let q = cx.emit1(
        Op::Clip {
            min: 0.0,
            max: 255.0,
        },
        &[q],
    )?;
    let y = cx.emit1(Op::Cast { to: DType::U8 }, &[q])?;
    let zp = cx.emit1(Op::Cast { to: DType::U8 }, &[zp])?;
    Ok(vec![y, scale, zp])
}
