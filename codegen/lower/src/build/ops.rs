//! Per-op rules: an op's output element at an index, as an expression of its inputs'
//! elements (for pure ops and root epilogues).

use tessera_ir::{BinaryOp, DType, GeluApprox, NodeId, Op, UnaryOp};

use super::nest::{NestBuilder, broadcast_index, dims, map_view};
use crate::LowerError;
use crate::kir::{ExprId, ExprOp, Index, Lit};

/// Element `idx` of output `slot` of node `n` (a member of the kernel, not a root).
pub(crate) fn eval_node(
    nb: &mut NestBuilder,
    n: NodeId,
    slot: usize,
    idx: &[Index],
) -> Result<ExprId, LowerError> {
    let g = nb.g();
    let node = g.node(n);
    let out = node.outputs[slot];
    let od = dims(g, out);
    let out_dtype = g.ty(out).dtype;
    let input = |nb: &mut NestBuilder, k: usize| -> Result<ExprId, LowerError> {
        let v = node.inputs[k];
        let bi = broadcast_index(&dims(nb.g(), v), &od, idx);
        nb.eval(v, &bi)
    };
    Ok(match &node.op {
        Op::Unary(u) => {
            let x = input(nb, 0)?;
            nb.push(out_dtype, ExprOp::Unary(*u, x))
        }
        Op::Binary(b) => {
            let x = input(nb, 0)?;
            let y = input(nb, 1)?;
            nb.push(out_dtype, ExprOp::Binary(*b, x, y))
        }
        Op::Where => {
            let c = input(nb, 0)?;
            let x = input(nb, 1)?;
            let y = input(nb, 2)?;
            nb.push(out_dtype, ExprOp::Select(c, x, y))
        }
        Op::Clip { min, max } => {
            let x = input(nb, 0)?;
            if out_dtype.is_float() {
                let lo = nb.lit_f(out_dtype, *min);
                let hi = nb.lit_f(out_dtype, *max);
                let a = nb.push(out_dtype, ExprOp::Binary(BinaryOp::Max, x, lo));
                nb.push(out_dtype, ExprOp::Binary(BinaryOp::Min, a, hi))
            } else {
                let lo = nb.lit_i(out_dtype, min.ceil() as i64);
                let hi = nb.lit_i(out_dtype, max.floor() as i64);
                let a = nb.push(out_dtype, ExprOp::Binary(BinaryOp::Max, x, lo));
                nb.push(out_dtype, ExprOp::Binary(BinaryOp::Min, a, hi))
            }
        }
        Op::Gelu { approximate } => {
            let x = input(nb, 0)?;
            gelu(nb, *approximate, x)
        }
        Op::Cast { to } => {
            let x = input(nb, 0)?;
            nb.cast(x, *to)
        }
        Op::BatchNorm { epsilon } => {
            let x = input(nb, 0)?;
            batch_norm(nb, n, *epsilon, idx, x)?
        }
        Op::Dropout { .. } => {
            if slot == 0 {
                input(nb, 0)?
            } else {
                nb.push(DType::Bool, ExprOp::Lit(Lit::B(true)))
            }
        }
        Op::Reduce { .. } => input(nb, 0)?,
        Op::Identity
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Expand { .. }
        | Op::Slice { .. }
        | Op::Split { .. } => {
            let inner = map_view(g, n, slot, idx);
            nb.eval(node.inputs[0], &inner)?
        }
        Op::Gather { axis } => gather(nb, n, *axis, idx)?,
        Op::GatherElements { axis } => gather_elements(nb, n, *axis, idx)?,
        Op::GatherNd { batch_dims } => gather_nd(nb, n, *batch_dims, idx)?,
        Op::Concat { axis } => concat(nb, n, *axis, idx)?,
        op => {
            return Err(nb.kb.error(
                n,
                format!("{} is a root and has no value at this position", op.name()),
            ));
        }
    })
}

/// Batch normalization of `x`, element `idx` of node `n`'s input.
fn batch_norm(
    nb: &mut NestBuilder,
    n: NodeId,
    epsilon: f32,
    idx: &[Index],
    x: ExprId,
) -> Result<ExprId, LowerError> {
    let g = nb.g();
    let node = g.node(n);
    let out = node.outputs[0];
    let out_dtype = g.ty(out).dtype;
    let c = if dims(g, out).len() > 1 {
        idx[1].clone()
    } else {
        Index::zero()
    };
    let p: Vec<ExprId> = (1..5)
        .map(|k| nb.eval(node.inputs[k], std::slice::from_ref(&c)))
        .collect::<Result<_, _>>()?;
    let (scale, bias, mean, var) = (p[0], p[1], p[2], p[3]);
    let eps = nb.lit_f(out_dtype, epsilon as f64);
    let ve = nb.bin(BinaryOp::Add, var, eps);
    let sd = nb.un(UnaryOp::Sqrt, ve);
    let d = nb.bin(BinaryOp::Sub, x, mean);
    // The reciprocal depends on the channel only: computed once per channel.
    let one = nb.lit_f(out_dtype, 1.0);
    let inv = nb.bin(BinaryOp::Div, one, sd);
    let q = nb.bin(BinaryOp::Mul, d, inv);
    let s = nb.bin(BinaryOp::Mul, q, scale);
    Ok(nb.bin(BinaryOp::Add, s, bias))
}

/// Element `idx` of `gather` node `n` along `axis`.
fn gather(
    nb: &mut NestBuilder,
    n: NodeId,
    axis: usize,
    idx: &[Index],
) -> Result<ExprId, LowerError> {
    let g = nb.g();
    let node = g.node(n);
    let data = node.inputs[0];
    let ind = node.inputs[1];
    let ir = g.ty(ind).shape.rank();
    let dd = dims(g, data);
    let raw = nb.eval(ind, &idx[axis..axis + ir])?;
    let checked = check(nb, raw, dd[axis]);
    let mut di: Vec<Index> = idx[..axis].to_vec();
    di.push(Index::value(checked, dd[axis]));
    di.extend_from_slice(&idx[axis + ir..]);
    nb.eval(data, &di)
}

/// Element `idx` of `gather_elements` node `n` along `axis`.
fn gather_elements(
    nb: &mut NestBuilder,
    n: NodeId,
    axis: usize,
    idx: &[Index],
) -> Result<ExprId, LowerError> {
    let g = nb.g();
    let node = g.node(n);
    let data = node.inputs[0];
    let dd = dims(g, data);
    let raw = nb.eval(node.inputs[1], idx)?;
    let checked = check(nb, raw, dd[axis]);
    let mut di = idx.to_vec();
    di[axis] = Index::value(checked, dd[axis]);
    nb.eval(data, &di)
}

/// Element `idx` of `gather_nd` node `n` with `batch_dims` leading batch axes.
fn gather_nd(
    nb: &mut NestBuilder,
    n: NodeId,
    batch_dims: usize,
    idx: &[Index],
) -> Result<ExprId, LowerError> {
    let g = nb.g();
    let node = g.node(n);
    let data = node.inputs[0];
    let ind = node.inputs[1];
    let dd = dims(g, data);
    let id = dims(g, ind);
    let last = id[id.len() - 1];
    let t = &idx[..id.len() - 1];
    let mut di: Vec<Index> = t[..batch_dims].to_vec();
    for j in 0..last {
        let mut ti = t.to_vec();
        ti.push(Index::constant(j as i64));
        let raw = nb.eval(ind, &ti)?;
        let dim = dd[batch_dims + j];
        let checked = check(nb, raw, dim);
        di.push(Index::value(checked, dim));
    }
    di.extend_from_slice(&idx[id.len() - 1..]);
    nb.eval(data, &di)
}

/// Element `idx` of `concat` node `n` along `axis`, inside the concatenation's own
/// kernel: the input part being written.
fn concat(
    nb: &mut NestBuilder,
    n: NodeId,
    axis: usize,
    idx: &[Index],
) -> Result<ExprId, LowerError> {
    let g = nb.g();
    let node = g.node(n);
    let Some((_, part)) = nb.concat_part.filter(|&(c, _)| c == n) else {
        return Err(nb
            .kb
            .error(n, "a concatenation is evaluated outside its own kernel"));
    };
    let off: usize = node.inputs[..part].iter().map(|&v| dims(g, v)[axis]).sum();
    let mut ii = idx.to_vec();
    ii[axis] = idx[axis].add_const(-(off as i64));
    nb.eval(node.inputs[part], &ii)
}

/// `raw` as an i64 gather index checked against `dim`.
fn check(nb: &mut NestBuilder, raw: ExprId, dim: usize) -> ExprId {
    let raw = nb.cast(raw, DType::I64);
    nb.push(
        DType::I64,
        ExprOp::CheckIndex {
            value: raw,
            dim: dim as i64,
        },
    )
}

/// GELU expanded into primitive ops (in f32 for f16/bf16, rounded back).
pub(crate) fn gelu(nb: &mut NestBuilder, approx: GeluApprox, x: ExprId) -> ExprId {
    let dt = nb.dtype(x);
    let w = nb.widen(x);
    let cd = nb.dtype(w);
    let half = nb.lit_f(cd, 0.5);
    let one = nb.lit_f(cd, 1.0);
    let inner = match approx {
        GeluApprox::None => {
            let r = nb.lit_f(cd, std::f64::consts::FRAC_1_SQRT_2);
            let a = nb.bin(BinaryOp::Mul, w, r);
            nb.un(UnaryOp::Erf, a)
        }
        GeluApprox::Tanh => {
            let k = nb.lit_f(cd, (2.0 / std::f64::consts::PI).sqrt());
            let c = nb.lit_f(cd, 0.044715);
            let x2 = nb.bin(BinaryOp::Mul, w, w);
            let x3 = nb.bin(BinaryOp::Mul, x2, w);
            let cx3 = nb.bin(BinaryOp::Mul, c, x3);
            let s = nb.bin(BinaryOp::Add, w, cx3);
            let ks = nb.bin(BinaryOp::Mul, k, s);
            nb.un(UnaryOp::Tanh, ks)
        }
    };
    let p = nb.bin(BinaryOp::Add, one, inner);
    let hx = nb.bin(BinaryOp::Mul, half, w);
    let y = nb.bin(BinaryOp::Mul, hx, p);
    nb.cast(y, dt)
}
