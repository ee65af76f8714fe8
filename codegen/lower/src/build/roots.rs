//! Loop structure per group kind, and the roots' phases.

use crate::fusion::analyze::Placement;
use crate::fusion::view::row_major;
use tessera_ir::{
    BinaryOp, ConvAttrs, DType, NodeId, Op, PoolAttrs, PoolKind, ReduceOp, UnaryOp, ValueId,
};

use super::KernelBuilder;
use super::nest::{NestBuilder, RootValue, broadcast_index, dims, store_of, unflatten};
use crate::LowerError;
use crate::kir::{
    Atom, Attention, Body, Conv, ExprId, ExprOp, Gemm, Guard, Index, Lit, MatView, Nest,
    ReduceKind, Reduction, Var,
};

/// Loops over a space: extents of the outer and inner loops and, per space axis, its
/// index in terms of the loop variables.
#[derive(Clone, Debug)]
pub(crate) struct Loops {
    pub outer: Vec<usize>,
    pub inner: Vec<usize>,
    pub binding: Vec<Index>,
}

/// Each inner list of axes becomes one loop (row-major inside the list); axes of extent 1
/// and axes in no list are bound to 0.
pub(crate) fn grouped(space: &[usize], outer: &[Vec<usize>], inner: &[Vec<usize>]) -> Loops {
    let mut binding = vec![Index::zero(); space.len()];
    let mut mk = |lists: &[Vec<usize>], is_outer: bool| -> Vec<usize> {
        let mut extents = Vec::new();
        for axes in lists {
            let axes: Vec<usize> = axes.iter().copied().filter(|&a| space[a] != 1).collect();
            if axes.is_empty() {
                continue;
            }
            let ext: usize = axes.iter().map(|&a| space[a]).product();
            let k = extents.len() as u8;
            let var = if is_outer {
                Var::Outer(k)
            } else {
                Var::Inner(k)
            };
            let v = Index::var(var, ext);
            let sub: Vec<usize> = axes.iter().map(|&a| space[a]).collect();
            for (a, i) in axes.iter().zip(unflatten(&v, &sub)) {
                binding[*a] = i;
            }
            extents.push(ext);
        }
        extents
    };
    let o = mk(outer, true);
    let i = mk(inner, false);
    Loops {
        outer: o,
        inner: i,
        binding,
    }
}

/// The whole space as `flat = block·o0 + i0`.
pub(crate) fn flat_split(space: &[usize], block: usize) -> Loops {
    let n: usize = space.iter().product();
    let rows = n / block;
    let (outer, flat) = if rows > 1 {
        (
            vec![rows],
            Index::var(Var::Outer(0), rows)
                .scale(block as i64)
                .add(&Index::var(Var::Inner(0), block)),
        )
    } else {
        (Vec::new(), Index::var(Var::Inner(0), block))
    };
    Loops {
        outer,
        inner: vec![block],
        binding: unflatten(&flat, space),
    }
}

/// Number of division/modulo atoms over inner variables in a nest's memory accesses:
/// what a loop structure costs in the innermost loop.
fn inner_divmods(nest: &Nest) -> usize {
    fn count(i: &Index) -> usize {
        i.terms()
            .iter()
            .map(|(a, _)| match a {
                Atom::Div(e, _) | Atom::Mod(e, _) => {
                    let inner = (0..8).any(|k| e.mentions(Var::Inner(k)));
                    usize::from(inner) + count(e)
                }
                _ => 0,
            })
            .sum()
    }
    let mut c = 0;
    for e in &nest.exprs {
        match &e.op {
            ExprOp::Load { index, .. } | ExprOp::LoadIf { index, .. } => c += count(index),
            _ => {}
        }
    }
    for ph in &nest.phases {
        if let crate::kir::Phase::Store { stores, .. } = ph {
            for s in stores {
                c += count(&s.index);
            }
        }
    }
    c
}

/// Loop structures to try for a pointwise space, best first.
fn pointwise_candidates(space: &[usize]) -> Vec<Loops> {
    let axes: Vec<usize> = (0..space.len()).filter(|&a| space[a] != 1).collect();
    let n: usize = space.iter().product();
    let mut out = Vec::new();
    if axes.is_empty() || n == 0 {
        out.push(grouped(space, &[], &[]));
        return out;
    }
    // Fully flat, split in blocks for threads when large.
    let block = if n >= 32768 {
        (256..=8192)
            .rev()
            .find(|&b| b % 16 == 0 && n.is_multiple_of(b))
            .unwrap_or(n)
    } else {
        n
    };
    out.push(flat_split(space, block));
    let (last, rest) = axes
        .split_last()
        .expect("invariant: an empty space returned above");
    out.push(grouped(space, &[rest.to_vec()], &[vec![*last]]));
    out.push(grouped(
        space,
        &rest.iter().map(|&a| vec![a]).collect::<Vec<_>>(),
        &[vec![*last]],
    ));
    out
}

/// Builds with each candidate and keeps the cheapest (fewest divisions in inner loops).
fn best_of(
    kb: &mut KernelBuilder,
    candidates: Vec<Loops>,
    build: &dyn Fn(&mut NestBuilder, &Loops) -> Result<(), LowerError>,
) -> Result<Nest, LowerError> {
    let mut best: Option<(usize, Nest)> = None;
    for l in candidates {
        let mut nb = NestBuilder::new(kb, l.outer.clone(), l.inner.clone());
        build(&mut nb, &l)?;
        let nest = nb.finish();
        // Divisions in inner loops first, then an unvectorized nest, then gathers.
        let gathers = super::hints::gathers(&nest, &kb.params);
        let cost = inner_divmods(&nest) * 1000 + gathers.map_or(100, |g| g.min(99));
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            let done = cost == 0;
            best = Some((cost, nest));
            if done {
                break;
            }
        }
    }
    Ok(best.expect("invariant: every caller offers a candidate").1)
}

/// Stores every stored value of `shape` at the binding.
fn store_full(nb: &mut NestBuilder, values: &[ValueId], b: &[Index]) -> Result<(), LowerError> {
    let mut stores = Vec::new();
    for &v in values {
        let e = nb.eval(v, b)?;
        let flat = Index::dot(b, &row_major(&dims(nb.g(), v)));
        stores.push(store_of(nb, v, flat, e));
    }
    nb.store_phase(true, stores);
    Ok(())
}

pub(crate) fn pointwise(kb: &mut KernelBuilder) -> Result<Vec<Nest>, LowerError> {
    let g = kb.g;
    let mut shapes: Vec<Vec<usize>> = Vec::new();
    for &v in &kb.group.outputs {
        let d = dims(g, v);
        if !shapes.contains(&d) {
            shapes.push(d);
        }
    }
    let mut nests = Vec::new();
    for s in shapes
        .into_iter()
        .filter(|s| s.iter().product::<usize>() > 0)
    {
        let values: Vec<ValueId> = kb
            .group
            .outputs
            .iter()
            .copied()
            .filter(|&v| dims(g, v) == s)
            .collect();
        nests.push(best_of(kb, pointwise_candidates(&s), &|nb, l| {
            store_full(nb, &values, &l.binding)
        })?);
    }
    Ok(nests)
}

pub(crate) fn concat(kb: &mut KernelBuilder) -> Result<Vec<Nest>, LowerError> {
    let g = kb.g;
    let root = kb.group.shape.roots[0];
    let node = g.node(root);
    let Op::Concat { axis } = node.op else {
        return Err(kb.error(root, "a concat group without a concatenation"));
    };
    let values = kb.group.outputs.clone();
    let mut nests = Vec::new();
    let mut off = 0usize;
    for (part, &inp) in node.inputs.iter().enumerate() {
        let mut ps = dims(g, node.outputs[0]);
        let size = dims(g, inp)[axis];
        ps[axis] = size;
        let this_off = off;
        off += size;
        if size == 0 {
            continue;
        }
        nests.push(best_of(kb, pointwise_candidates(&ps), &|nb, l| {
            nb.concat_part = Some((root, part));
            let mut b = l.binding.clone();
            b[axis] = b[axis].add_const(this_off as i64);
            store_full(nb, &values, &b)
        })?);
    }
    Ok(nests)
}

/// `b` restricted to the axes not reduced, as a row-major flat index over them: the
/// position of the current outer point in a per-row value.
pub(crate) fn reduced_flat(space: &[usize], b: &[Index], reduced: &[usize]) -> Index {
    let keep: Vec<usize> = (0..space.len()).filter(|a| !reduced.contains(a)).collect();
    let idx: Vec<Index> = keep.iter().map(|&a| b[a].clone()).collect();
    let d: Vec<usize> = keep.iter().map(|&a| space[a]).collect();
    Index::dot(&idx, &row_major(&d))
}

/// Stores for a group with roots: full-shape values in a looped phase, per-row values once
/// per outer point. `skip` values are already in place.
fn store_all(
    nb: &mut NestBuilder,
    space: &[usize],
    b: &[Index],
    reduced: &[usize],
    skip: &[ValueId],
) -> Result<(), LowerError> {
    let g = nb.g();
    let group = nb.kb.group;
    let rflat = reduced_flat(space, b, reduced);
    let (mut full, mut rows) = (Vec::new(), Vec::new());
    for &v in &group.outputs {
        if skip.contains(&v) {
            continue;
        }
        let vd = dims(g, v);
        let placement = group
            .shape
            .placement
            .get(&v)
            .copied()
            .unwrap_or(if vd == space {
                Placement::Full
            } else {
                Placement::Reduced
            });
        match placement {
            Placement::Full => {
                let e = nb.eval(v, b)?;
                let flat = Index::dot(b, &row_major(&vd));
                full.push(store_of(nb, v, flat, e));
            }
            Placement::Reduced => {
                let idx = unflatten(&rflat, &vd);
                let e = nb.eval(v, &idx)?;
                rows.push(store_of(nb, v, rflat.clone(), e));
            }
        }
    }
    // Window nests loop over the window inside each output point: their stores happen
    // once per point, outside those loops.
    let window = nb.kb.group.kind() == crate::fusion::analyze::GroupKind::Window;
    nb.store_phase(!window, full);
    nb.store_phase(false, rows);
    Ok(())
}

fn one_reduction(nb: &mut NestBuilder, kind: ReduceKind, value: ExprId) -> ExprId {
    let dtype = nb.dtype(value);
    nb.reduce_phase(vec![Reduction {
        kind,
        value,
        mask: None,
        dtype,
    }])[0]
}

pub(crate) fn reduction(kb: &mut KernelBuilder) -> Result<Nest, LowerError> {
    let space = kb.group.shape.space.clone();
    let reduced = kb.group.shape.reduced.clone();
    let outer: Vec<usize> = (0..space.len()).filter(|a| !reduced.contains(a)).collect();
    let each = |axes: &[usize]| axes.iter().map(|&a| vec![a]).collect::<Vec<_>>();
    let mut candidates = Vec::new();
    for o in [vec![outer.clone()], each(&outer)] {
        for i in [vec![reduced.clone()], each(&reduced)] {
            candidates.push(grouped(&space, &o, &i));
        }
    }
    best_of(kb, candidates, &|nb, l| {
        reduction_roots(nb, &space, &l.binding, &reduced)?;
        store_all(nb, &space, &l.binding, &reduced, &[])
    })
}

fn reduction_roots(
    nb: &mut NestBuilder,
    space: &[usize],
    b: &[Index],
    reduced: &[usize],
) -> Result<(), LowerError> {
    let g = nb.g();
    let n_red: usize = reduced.iter().map(|&a| space[a]).product();
    let rflat = reduced_flat(space, b, reduced);
    let full = Index::dot(b, &row_major(space));
    for r in nb.kb.group.shape.roots.clone() {
        let node = g.node(r);
        let x = nb.eval(node.inputs[0], b)?;
        let xw = nb.widen(x);
        let cd = nb.dtype(xw);
        let out = node.outputs[0];
        let odt = g.ty(out).dtype;
        let count = |nb: &mut NestBuilder| nb.lit_f(cd, n_red as f64);
        match &node.op {
            Op::Reduce { op, .. } => {
                let kind = match op {
                    ReduceOp::Sum | ReduceOp::Mean => ReduceKind::Sum,
                    ReduceOp::Prod => ReduceKind::Prod,
                    ReduceOp::Max => ReduceKind::Max,
                    ReduceOp::Min => ReduceKind::Min,
                };
                let acc = one_reduction(nb, kind, xw);
                let res = if *op == ReduceOp::Mean {
                    let n = if cd.is_float() {
                        count(nb)
                    } else {
                        nb.lit_i(cd, n_red.max(1) as i64)
                    };
                    nb.bin(BinaryOp::Div, acc, n)
                } else {
                    acc
                };
                let res = nb.cast(res, odt);
                nb.roots.insert(
                    out,
                    RootValue {
                        flat: rflat.clone(),
                        expr: res,
                    },
                );
            }
            Op::Softmax { .. } | Op::LogSoftmax { .. } => {
                let m = one_reduction(nb, ReduceKind::Max, xw);
                let d = nb.bin(BinaryOp::Sub, xw, m);
                let e = nb.un(UnaryOp::Exp, d);
                let s = one_reduction(nb, ReduceKind::Sum, e);
                let y = if matches!(node.op, Op::Softmax { .. }) {
                    // One division per row, a multiplication per element (within an ulp).
                    let one = nb.lit_f(cd, 1.0);
                    let inv = nb.bin(BinaryOp::Div, one, s);
                    nb.bin(BinaryOp::Mul, e, inv)
                } else {
                    let ls = nb.un(UnaryOp::Log, s);
                    nb.bin(BinaryOp::Sub, d, ls)
                };
                let y = nb.cast(y, odt);
                nb.roots.insert(
                    out,
                    RootValue {
                        flat: full.clone(),
                        expr: y,
                    },
                );
            }
            Op::LayerNorm { epsilon, stats, .. } => {
                let s1 = one_reduction(nb, ReduceKind::Sum, xw);
                let n = count(nb);
                let mean = nb.bin(BinaryOp::Div, s1, n);
                let d = nb.bin(BinaryOp::Sub, xw, mean);
                let d2 = nb.bin(BinaryOp::Mul, d, d);
                let s2 = one_reduction(nb, ReduceKind::Sum, d2);
                let var = nb.bin(BinaryOp::Div, s2, n);
                let eps = nb.lit_f(cd, *epsilon as f64);
                let ve = nb.bin(BinaryOp::Add, var, eps);
                let sd = nb.un(UnaryOp::Sqrt, ve);
                let one = nb.lit_f(cd, 1.0);
                let rstd = nb.bin(BinaryOp::Div, one, sd);
                let sc = param_at(nb, node.inputs[1], space, b)?;
                let mut y = nb.bin(BinaryOp::Mul, d, rstd);
                y = nb.bin(BinaryOp::Mul, y, sc);
                if let Some(&bias) = node.inputs.get(2) {
                    let bv = param_at(nb, bias, space, b)?;
                    y = nb.bin(BinaryOp::Add, y, bv);
                }
                let y = nb.cast(y, odt);
                nb.roots.insert(
                    out,
                    RootValue {
                        flat: full.clone(),
                        expr: y,
                    },
                );
                if *stats {
                    let m32 = nb.cast(mean, DType::F32);
                    let r32 = nb.cast(rstd, DType::F32);
                    nb.roots.insert(
                        node.outputs[1],
                        RootValue {
                            flat: rflat.clone(),
                            expr: m32,
                        },
                    );
                    nb.roots.insert(
                        node.outputs[2],
                        RootValue {
                            flat: rflat.clone(),
                            expr: r32,
                        },
                    );
                }
            }
            Op::RmsNorm { epsilon, .. } => {
                let x2 = nb.bin(BinaryOp::Mul, xw, xw);
                let s = one_reduction(nb, ReduceKind::Sum, x2);
                let n = count(nb);
                let ms = nb.bin(BinaryOp::Div, s, n);
                let eps = nb.lit_f(cd, *epsilon as f64);
                let me = nb.bin(BinaryOp::Add, ms, eps);
                let sd = nb.un(UnaryOp::Sqrt, me);
                let one = nb.lit_f(cd, 1.0);
                let inv = nb.bin(BinaryOp::Div, one, sd);
                let sc = param_at(nb, node.inputs[1], space, b)?;
                let y = nb.bin(BinaryOp::Mul, xw, inv);
                let y = nb.bin(BinaryOp::Mul, y, sc);
                let y = nb.cast(y, odt);
                nb.roots.insert(
                    out,
                    RootValue {
                        flat: full.clone(),
                        expr: y,
                    },
                );
            }
            op => return Err(nb.kb.error(r, format!("{} is not a reduction", op.name()))),
        }
    }
    Ok(())
}

/// A normalization parameter broadcast over the space, widened.
fn param_at(
    nb: &mut NestBuilder,
    v: ValueId,
    space: &[usize],
    b: &[Index],
) -> Result<ExprId, LowerError> {
    let idx = broadcast_index(&dims(nb.g(), v), space, b);
    let e = nb.eval(v, &idx)?;
    Ok(nb.widen(e))
}

/// Inner loop variables for window extents (extent-1 windows are index 0).
fn window_vars(extents: &[usize]) -> (Vec<usize>, Vec<Index>) {
    let mut ext = Vec::new();
    let mut idx = Vec::new();
    for &w in extents {
        if w > 1 {
            idx.push(Index::var(Var::Inner(ext.len() as u8), w));
            ext.push(w);
        } else {
            idx.push(Index::zero());
        }
    }
    (ext, idx)
}

/// The outer loops of a window space: all axes but the last collapsed, then the last.
fn window_outer(space: &[usize]) -> Loops {
    let axes: Vec<usize> = (0..space.len()).filter(|&a| space[a] != 1).collect();
    match axes.split_last() {
        Some((last, rest)) => grouped(space, &[rest.to_vec(), vec![*last]], &[]),
        None => grouped(space, &[], &[]),
    }
}

fn lit_zero(dtype: DType) -> Lit {
    if dtype.is_float() {
        Lit::float(0.0)
    } else if dtype == DType::Bool {
        Lit::B(false)
    } else {
        Lit::I(0)
    }
}

pub(crate) fn window(kb: &mut KernelBuilder) -> Result<Nest, LowerError> {
    let g = kb.g;
    let root = kb.group.shape.roots[0];
    let node = g.node(root);
    let space = kb.group.shape.space.clone();
    let inner_extents: Vec<usize> = match &node.op {
        Op::Pool { attrs, .. } => attrs.kernel.clone(),
        Op::Lrn { size, .. } => vec![*size],
        Op::CumSum { axis, .. } => vec![dims(g, node.inputs[0])[*axis]],
        Op::Conv(_) => {
            let w = dims(g, node.inputs[1]);
            w[1..].to_vec()
        }
        Op::MatMul => {
            let a = dims(g, node.inputs[0]);
            vec![a[a.len() - 1]]
        }
        Op::Gemm { trans_a, .. } => {
            let a = dims(g, node.inputs[0]);
            vec![if *trans_a { a[0] } else { a[1] }]
        }
        op => return Err(kb.error(root, format!("{} is not a window op", op.name()))),
    };
    let mut loops = window_outer(&space);
    let (inner, w) = window_vars(&inner_extents);
    loops.inner = inner;
    let mut nb = NestBuilder::new(kb, loops.outer.clone(), loops.inner.clone());
    window_root(&mut nb, root, &space, &loops.binding, &w)?;
    store_all(&mut nb, &space, &loops.binding, &[], &[])?;
    Ok(nb.finish())
}

/// `value at idx of external value v`, through views: a guarded load.
fn guarded(
    nb: &mut NestBuilder,
    v: ValueId,
    idx: &[Index],
    guards: Vec<Guard>,
    n: NodeId,
) -> Result<ExprId, LowerError> {
    let dtype = nb.g().ty(v).dtype;
    let Some((src, flat)) = nb.memory_index(v, idx) else {
        return Err(nb.kb.error(n, "a window input must come from memory"));
    };
    Ok(nb.load_if(src, flat, guards, lit_zero(dtype)))
}

fn in_range(nb: &mut NestBuilder, guards: Vec<Guard>) -> ExprId {
    let guards: Vec<Guard> = guards
        .into_iter()
        .filter(|g| {
            let (lo, hi) = g.index.range();
            !(lo >= g.lo && hi < g.hi)
        })
        .collect();
    if guards.is_empty() {
        nb.push(DType::Bool, ExprOp::Lit(Lit::B(true)))
    } else {
        nb.push(DType::Bool, ExprOp::InRange(guards))
    }
}

/// Where a window root's phase runs: `b` indexes its output at the current outer point,
/// `w` the window (the inner loops), and `full` is `b` flattened over the output.
struct At<'a> {
    root: NodeId,
    b: &'a [Index],
    w: &'a [Index],
    full: Index,
}

/// The reduction phase of window root `root` over `space` (its output's shape) and the
/// value it binds for the epilogue.
fn window_root(
    nb: &mut NestBuilder,
    root: NodeId,
    space: &[usize],
    b: &[Index],
    w: &[Index],
) -> Result<(), LowerError> {
    let g = nb.g();
    let node = g.node(root);
    let at = At {
        root,
        b,
        w,
        full: Index::dot(b, &row_major(space)),
    };
    match &node.op {
        Op::Pool { kind, attrs } => pool_root(nb, at, kind, attrs),
        Op::Lrn {
            size,
            alpha,
            beta,
            bias,
        } => lrn_root(nb, at, *size, *alpha, *beta, *bias),
        Op::CumSum {
            axis,
            exclusive,
            reverse,
        } => cumsum_root(nb, at, *axis, *exclusive, *reverse),
        Op::Conv(a) => conv_root(nb, at, a),
        Op::MatMul | Op::Gemm { .. } => contraction_root(nb, at, space),
        op => Err(nb
            .kb
            .error(root, format!("{} is not a window op", op.name()))),
    }
}

/// Max (optionally with indices) or average pooling.
fn pool_root(
    nb: &mut NestBuilder,
    at: At,
    kind: &PoolKind,
    attrs: &PoolAttrs,
) -> Result<(), LowerError> {
    let At { root, b, w, full } = at;
    let g = nb.g();
    let node = g.node(root);
    let out = node.outputs[0];
    let odt = g.ty(out).dtype;
    let x = node.inputs[0];
    let xd = dims(g, x);
    let sp = xd.len() - 2;
    let mut idx = vec![b[0].clone(), b[1].clone()];
    let (mut guards, mut pad_guards) = (Vec::new(), Vec::new());
    for j in 0..sp {
        let ih = b[2 + j]
            .scale(attrs.strides[j] as i64)
            .add(&w[j].scale(attrs.dilations[j] as i64))
            .add_const(-(attrs.pads[j] as i64));
        guards.push(Guard {
            index: ih.clone(),
            lo: 0,
            hi: xd[2 + j] as i64,
        });
        pad_guards.push(Guard {
            index: ih.clone(),
            lo: -(attrs.pads[j] as i64),
            hi: (xd[2 + j] + attrs.pads[sp + j]) as i64,
        });
        idx.push(ih);
    }
    let v = guarded(nb, x, &idx, guards.clone(), root)?;
    let vw = nb.widen(v);
    let cd = nb.dtype(vw);
    let valid = in_range(nb, guards);
    match kind {
        PoolKind::Max { indices } => {
            let mut accs = vec![Reduction {
                kind: ReduceKind::Max,
                value: vw,
                mask: Some(valid),
                dtype: cd,
            }];
            if *indices {
                let flat_x = Index::dot(&idx, &row_major(&xd));
                let arg = nb.push(DType::I64, ExprOp::IndexValue(flat_x));
                accs.push(Reduction {
                    kind: ReduceKind::ArgMax { arg },
                    value: vw,
                    mask: Some(valid),
                    dtype: DType::I64,
                });
            }
            let r = nb.reduce_phase(accs);
            let y = nb.cast(r[0], odt);
            nb.roots.insert(
                out,
                RootValue {
                    flat: full.clone(),
                    expr: y,
                },
            );
            if *indices {
                nb.roots.insert(
                    node.outputs[1],
                    RootValue {
                        flat: full,
                        expr: r[1],
                    },
                );
            }
        }
        PoolKind::Average { count_include_pad } => {
            let one = nb.lit_f(cd, 1.0);
            let zero = nb.lit_f(cd, 0.0);
            let c = if *count_include_pad {
                let inpad = in_range(nb, pad_guards);
                let p = nb.push(cd, ExprOp::Select(inpad, one, zero));
                nb.push(cd, ExprOp::Select(valid, one, p))
            } else {
                nb.push(cd, ExprOp::Select(valid, one, zero))
            };
            let r = nb.reduce_phase(vec![
                Reduction {
                    kind: ReduceKind::Sum,
                    value: vw,
                    mask: None,
                    dtype: cd,
                },
                Reduction {
                    kind: ReduceKind::Sum,
                    value: c,
                    mask: None,
                    dtype: cd,
                },
            ]);
            let y = nb.bin(BinaryOp::Div, r[0], r[1]);
            let y = nb.cast(y, odt);
            nb.roots.insert(
                out,
                RootValue {
                    flat: full,
                    expr: y,
                },
            );
        }
    }
    Ok(())
}

/// Local response normalization across channels.
fn lrn_root(
    nb: &mut NestBuilder,
    at: At,
    size: usize,
    alpha: f32,
    beta: f32,
    bias: f32,
) -> Result<(), LowerError> {
    let At { root, b, w, full } = at;
    let g = nb.g();
    let node = g.node(root);
    let out = node.outputs[0];
    let odt = g.ty(out).dtype;
    let x = node.inputs[0];
    let xd = dims(g, x);
    let lo = ((size - 1) / 2) as i64;
    let c = b[1].add(&w[0]).add_const(-lo);
    let mut idx = b.to_vec();
    idx[1] = c.clone();
    let v = guarded(
        nb,
        x,
        &idx,
        vec![Guard {
            index: c,
            lo: 0,
            hi: xd[1] as i64,
        }],
        root,
    )?;
    let vw = nb.widen(v);
    let cd = nb.dtype(vw);
    let v2 = nb.bin(BinaryOp::Mul, vw, vw);
    let sq = one_reduction(nb, ReduceKind::Sum, v2);
    let xc = nb.eval(x, b)?;
    let xc = nb.widen(xc);
    let bias = nb.lit_f(cd, bias as f64);
    let k = nb.lit_f(cd, alpha as f64 / size as f64);
    let ks = nb.bin(BinaryOp::Mul, k, sq);
    let base = nb.bin(BinaryOp::Add, bias, ks);
    let be = nb.lit_f(cd, beta as f64);
    let den = nb.push(cd, ExprOp::Binary(BinaryOp::Pow, base, be));
    let y = nb.bin(BinaryOp::Div, xc, den);
    let y = nb.cast(y, odt);
    nb.roots.insert(
        out,
        RootValue {
            flat: full,
            expr: y,
        },
    );
    Ok(())
}

/// A running sum: the window is the whole axis, read in the order a sequential scan adds
/// (ascending, or descending when `reverse`), each element counted when it is at or
/// before (after, when `reverse`) the output's position, strictly so when `exclusive`.
fn cumsum_root(
    nb: &mut NestBuilder,
    at: At,
    axis: usize,
    exclusive: bool,
    reverse: bool,
) -> Result<(), LowerError> {
    let At { root, b, w, full } = at;
    let g = nb.g();
    let node = g.node(root);
    let out = node.outputs[0];
    let odt = g.ty(out).dtype;
    let x = node.inputs[0];
    let n = dims(g, x)[axis] as i64;
    let j = if reverse {
        w[0].scale(-1).add_const(n - 1)
    } else {
        w[0].clone()
    };
    // How far past the output's position (towards the scan's start) element j lies.
    let behind = if reverse {
        j.add(&b[axis].scale(-1))
    } else {
        b[axis].add(&j.scale(-1))
    };
    let mut idx = b.to_vec();
    idx[axis] = j;
    let guard = Guard {
        index: behind,
        lo: i64::from(exclusive),
        hi: n,
    };
    let v = guarded(nb, x, &idx, vec![guard], root)?;
    let vw = nb.widen(v);
    let s = one_reduction(nb, ReduceKind::Sum, vw);
    let y = nb.cast(s, odt);
    nb.roots.insert(
        out,
        RootValue {
            flat: full,
            expr: y,
        },
    );
    Ok(())
}

/// A direct (grouped) convolution, bias included.
fn conv_root(nb: &mut NestBuilder, at: At, a: &ConvAttrs) -> Result<(), LowerError> {
    let At { root, b, w, full } = at;
    let g = nb.g();
    let node = g.node(root);
    let out = node.outputs[0];
    let odt = g.ty(out).dtype;
    let (x, wt) = (node.inputs[0], node.inputs[1]);
    let (xd, wd) = (dims(g, x), dims(g, wt));
    let sp = xd.len() - 2;
    let cg = wd[1];
    let mg = wd[0] / a.group;
    let gi = b[1].div(mg as i64);
    let cin = gi.scale(cg as i64).add(&w[0]);
    let mut idx = vec![b[0].clone(), cin];
    let mut guards = Vec::new();
    for j in 0..sp {
        let ih = b[2 + j]
            .scale(a.strides[j] as i64)
            .add(&w[1 + j].scale(a.dilations[j] as i64))
            .add_const(-(a.pads[j] as i64));
        guards.push(Guard {
            index: ih.clone(),
            lo: 0,
            hi: xd[2 + j] as i64,
        });
        idx.push(ih);
    }
    let xv = guarded(nb, x, &idx, guards, root)?;
    let mut widx = vec![b[1].clone()];
    widx.extend(w.iter().cloned());
    let wv = nb.eval(wt, &widx)?;
    let xv = nb.widen(xv);
    let wv = nb.widen(wv);
    let p = nb.bin(BinaryOp::Mul, xv, wv);
    let mut y = one_reduction(nb, ReduceKind::Sum, p);
    if let Some(&bias) = node.inputs.get(2) {
        let bv = nb.eval(bias, std::slice::from_ref(&b[1]))?;
        let bv = nb.widen(bv);
        y = nb.bin(BinaryOp::Add, y, bv);
    }
    let y = nb.cast(y, odt);
    nb.roots.insert(
        out,
        RootValue {
            flat: full,
            expr: y,
        },
    );
    Ok(())
}

/// A matmul or Gemm as a loop contraction over `space`.
fn contraction_root(nb: &mut NestBuilder, at: At, space: &[usize]) -> Result<(), LowerError> {
    let At { root, b, w, full } = at;
    let g = nb.g();
    let node = g.node(root);
    let out = node.outputs[0];
    let odt = g.ty(out).dtype;
    let (ai, bi) = (node.inputs[0], node.inputs[1]);
    let (sa, sb) = (dims(g, ai), dims(g, bi));
    let kk = w[0].clone();
    let (aidx, bidx) = match &node.op {
        Op::Gemm {
            trans_a, trans_b, ..
        } => (
            if *trans_a {
                vec![kk.clone(), b[0].clone()]
            } else {
                vec![b[0].clone(), kk.clone()]
            },
            if *trans_b {
                vec![b[1].clone(), kk.clone()]
            } else {
                vec![kk.clone(), b[1].clone()]
            },
        ),
        _ => matmul_indices(&sa, &sb, space, b, &kk),
    };
    let av = nb.eval(ai, &aidx)?;
    let bv = nb.eval(bi, &bidx)?;
    let av = nb.widen(av);
    let bv = nb.widen(bv);
    let p = nb.bin(BinaryOp::Mul, av, bv);
    let acc = one_reduction(nb, ReduceKind::Sum, p);
    let y = if let Op::Gemm { alpha, beta, .. } = &node.op {
        let cd = if odt.is_float() {
            nb.dtype(acc)
        } else {
            DType::F64
        };
        let accf = nb.cast(acc, cd);
        let al = nb.lit_f(cd, *alpha as f64);
        let mut y = nb.bin(BinaryOp::Mul, al, accf);
        if let Some(&c) = node.inputs.get(2) {
            let ci = broadcast_index(&dims(g, c), space, b);
            let cv = nb.eval(c, &ci)?;
            let cv = nb.widen(cv);
            let cv = nb.cast(cv, cd);
            let be = nb.lit_f(cd, *beta as f64);
            let bc = nb.bin(BinaryOp::Mul, be, cv);
            y = nb.bin(BinaryOp::Add, y, bc);
        }
        y
    } else {
        acc
    };
    let y = nb.cast(y, odt);
    nb.roots.insert(
        out,
        RootValue {
            flat: full,
            expr: y,
        },
    );
    Ok(())
}

/// Operand indices of a numpy matmul at output index `b` with contraction index `kk`.
fn matmul_indices(
    sa: &[usize],
    sb: &[usize],
    out: &[usize],
    b: &[Index],
    kk: &Index,
) -> (Vec<Index>, Vec<Index>) {
    let (ra, rb) = (sa.len(), sb.len());
    let nb = out.len() - usize::from(ra > 1) - usize::from(rb > 1);
    let batch = &out[..nb];
    let bb = &b[..nb];
    let ai = if ra == 1 {
        vec![kk.clone()]
    } else {
        let mut v = broadcast_index(&sa[..ra - 2], batch, bb);
        v.push(b[nb].clone());
        v.push(kk.clone());
        v
    };
    let bi = if rb == 1 {
        vec![kk.clone()]
    } else {
        let mut v = broadcast_index(&sb[..rb - 2], batch, bb);
        v.push(kk.clone());
        v.push(b[nb + usize::from(ra > 1)].clone());
        v
    };
    (ai, bi)
}

/// A matrix operand read through views: rows are `Var::Inner(0)`, columns `Var::Inner(1)`,
/// batch axes `Var::Outer(j)`.
fn mat_view(
    kb: &mut KernelBuilder,
    v: ValueId,
    idx: &[Index],
    n: NodeId,
) -> Result<MatView, LowerError> {
    let Some((src, flat)) = kb.memory_index(v, idx) else {
        return Err(kb.error(
            n,
            "a library contraction must read its operands from memory",
        ));
    };
    let (r, c) = (Var::Inner(0), Var::Inner(1));
    let (Some(rs), Some(cs)) = (flat.stride_of(r), flat.stride_of(c)) else {
        return Err(kb.error(n, format!("operand {v} is not a strided matrix: [{flat}]")));
    };
    let off = flat.without(r).without(c);
    if off.mentions(r) || off.mentions(c) {
        return Err(kb.error(n, format!("operand {v} is not a strided matrix: [{flat}]")));
    }
    Ok(MatView {
        param: kb.read_param(src),
        batch_offset: off,
        row_stride: rs,
        col_stride: cs,
    })
}

fn batch_vars(batch: &[usize]) -> Vec<Index> {
    batch
        .iter()
        .enumerate()
        .map(|(j, &d)| {
            if d == 1 {
                Index::zero()
            } else {
                Index::var(Var::Outer(j as u8), d)
            }
        })
        .collect()
}

fn rc(rows: usize, cols: usize) -> (Index, Index) {
    (
        if rows == 1 {
            Index::zero()
        } else {
            Index::var(Var::Inner(0), rows)
        },
        if cols == 1 {
            Index::zero()
        } else {
            Index::var(Var::Inner(1), cols)
        },
    )
}

/// The accumulator of a library contraction with output `out`: its own buffer when stored,
/// else a stored epilogue value of the same type (updated in place), else scratch.
fn accumulator(kb: &mut KernelBuilder, out: ValueId) -> crate::kir::ParamId {
    let g = kb.g;
    let ty = g.ty(out).clone();
    let group = kb.group;
    let p = if group.outputs.contains(&out) {
        kb.write_param(out)
    } else if let Some(&v) = group.outputs.iter().find(|&&v| *g.ty(v) == ty) {
        kb.write_param(v)
    } else {
        kb.scratch(ty.dtype, ty.shape.numel())
    };
    kb.params[p.index()].access = crate::kir::Access::ReadWrite;
    p
}

/// Adds a library root's own pointwise terms to its accumulator value at an index.
type RootTerms<'x> = dyn Fn(&mut NestBuilder, ExprId, &[Index]) -> Result<ExprId, LowerError> + 'x;

/// The epilogue over `rows × cols` of the accumulator; `extra` adds the root's own
/// pointwise terms (bias, beta·C) to the accumulator value.
fn epilogue(
    kb: &mut KernelBuilder,
    out: ValueId,
    acc: crate::kir::ParamId,
    cols: usize,
    extra: &RootTerms<'_>,
) -> Result<Option<Nest>, LowerError> {
    let g = kb.g;
    let od = dims(g, out);
    let n: usize = od.iter().product();
    let rows = n.checked_div(cols).unwrap_or(0);
    let dtype = g.ty(out).dtype;
    let outer = if rows > 1 { vec![rows] } else { Vec::new() };
    let flat = if rows > 1 {
        Index::var(Var::Outer(0), rows)
            .scale(cols as i64)
            .add(&Index::var(Var::Inner(0), cols))
    } else {
        Index::var(Var::Inner(0), cols)
    };
    let b = unflatten(&flat, &od);
    let acc_is_out = kb.params[acc.index()].binding == crate::kir::Binding::Value(out);
    let mut nb = NestBuilder::new(kb, outer, vec![cols]);
    let av = nb.push(
        dtype,
        ExprOp::Load {
            param: acc,
            index: flat.clone(),
        },
    );
    let y = extra(&mut nb, av, &b)?;
    let skip = if acc_is_out && y == av {
        vec![out]
    } else {
        Vec::new()
    };
    nb.roots.insert(out, RootValue { flat, expr: y });
    store_all(&mut nb, &od, &b, &[], &skip)?;
    if nb.phases.is_empty() {
        return Ok(None);
    }
    Ok(Some(nb.finish_tiled()))
}

pub(crate) fn contraction(kb: &mut KernelBuilder) -> Result<Body, LowerError> {
    let g = kb.g;
    let root = kb.group.shape.roots[0];
    let node = g.node(root);
    let out = node.outputs[0];
    let od = dims(g, out);
    let dtype = g.ty(out).dtype;
    match &node.op {
        Op::MatMul | Op::Gemm { .. } => {
            let (ai, bi) = (node.inputs[0], node.inputs[1]);
            let (sa, sb) = (dims(g, ai), dims(g, bi));
            let (batch, m, n, k, aidx, bidx, alpha) = match &node.op {
                Op::Gemm {
                    alpha,
                    trans_a,
                    trans_b,
                    ..
                } => {
                    let (m, n) = (od[0], od[1]);
                    let k = if *trans_a { sa[0] } else { sa[1] };
                    let (r, c) = rc(m, k);
                    let aidx = if *trans_a { vec![c, r] } else { vec![r, c] };
                    let (r, c) = rc(k, n);
                    let bidx = if *trans_b { vec![c, r] } else { vec![r, c] };
                    (Vec::new(), m, n, k, aidx, bidx, *alpha as f64)
                }
                _ => {
                    let (ra, rb) = (sa.len(), sb.len());
                    let nbatch = od.len() - usize::from(ra > 1) - usize::from(rb > 1);
                    let batch = od[..nbatch].to_vec();
                    let m = if ra == 1 { 1 } else { sa[ra - 2] };
                    let k = sa[ra - 1];
                    let n = if rb == 1 { 1 } else { sb[rb - 1] };
                    let bv = batch_vars(&batch);
                    let (r, c) = rc(m, k);
                    let aidx = if ra == 1 {
                        vec![c]
                    } else {
                        let mut v = broadcast_index(&sa[..ra - 2], &batch, &bv);
                        v.extend([r, c]);
                        v
                    };
                    let (r, c) = rc(k, n);
                    let bidx = if rb == 1 {
                        vec![r]
                    } else {
                        let mut v = broadcast_index(&sb[..rb - 2], &batch, &bv);
                        v.extend([r, c]);
                        v
                    };
                    (batch, m, n, k, aidx, bidx, 1.0)
                }
            };
            let a = mat_view(kb, ai, &aidx, root)?;
            let b = mat_view(kb, bi, &bidx, root)?;
            let acc = accumulator(kb, out);
            let c_in = match &node.op {
                Op::Gemm { beta, .. } => node.inputs.get(2).map(|&c| (c, *beta as f64)),
                _ => None,
            };
            let epi = epilogue(kb, out, acc, n, &|nb, av, b| {
                let Some((c, beta)) = c_in else { return Ok(av) };
                let ci = broadcast_index(&dims(nb.g(), c), &od, b);
                let cv = nb.eval(c, &ci)?;
                let be = nb.lit_f(dtype, beta);
                let bc = nb.bin(BinaryOp::Mul, be, cv);
                Ok(nb.bin(BinaryOp::Add, av, bc))
            })?;
            Ok(Body::Gemm(Gemm {
                dtype,
                batch,
                m,
                n,
                k,
                a,
                b,
                acc,
                alpha,
                epilogue: epi,
            }))
        }
        Op::Conv(attrs) => {
            let (x, w) = (node.inputs[0], node.inputs[1]);
            let (xd, wd) = (dims(g, x), dims(g, w));
            let (xs, _) = kb.plan.source(g, x);
            let (ws, _) = kb.plan.source(g, w);
            let xp = kb.read_param(xs);
            let wp = kb.read_param(ws);
            let sp = xd.len() - 2;
            let cg = wd[1];
            let kernel = wd[2..].to_vec();
            let out_sp = od[2..].to_vec();
            let p: usize = out_sp.iter().product();
            let kk: usize = cg * kernel.iter().product::<usize>();
            let direct = kernel.iter().all(|&k| k == 1)
                && attrs.strides.iter().all(|&s| s == 1)
                && attrs.pads.iter().all(|&q| q == 0);
            let col = (!direct).then(|| kb.scratch(dtype, kk * p));
            let im2col = match col {
                Some(colp) => Some(im2col_nest(
                    kb,
                    xp,
                    colp,
                    &xd[1..],
                    cg,
                    &kernel,
                    &out_sp,
                    attrs,
                    sp,
                )?),
                None => None,
            };
            let acc = accumulator(kb, out);
            let bias = node.inputs.get(2).copied();
            let epi = epilogue(kb, out, acc, p, &|nb, av, b| {
                let Some(bias) = bias else { return Ok(av) };
                let bv = nb.eval(bias, std::slice::from_ref(&b[1]))?;
                Ok(nb.bin(BinaryOp::Add, av, bv))
            })?;
            Ok(Body::Conv(Conv {
                dtype,
                x: xp,
                w: wp,
                acc,
                col,
                batch: xd[0],
                channels: xd[1],
                out_channels: wd[0],
                group: attrs.group,
                in_spatial: xd[2..].to_vec(),
                kernel,
                out_spatial: out_sp,
                strides: attrs.strides.clone(),
                dilations: attrs.dilations.clone(),
                pads_begin: attrs.pads[..sp].to_vec(),
                im2col,
                epilogue: epi,
            }))
        }
        op => Err(kb.error(root, format!("{} is not a library contraction", op.name()))),
    }
}

/// The im2col nest for one image and group: outer `[rows, K]`, inner `[last out axis]`.
#[allow(clippy::too_many_arguments)]
fn im2col_nest(
    kb: &mut KernelBuilder,
    xp: crate::kir::ParamId,
    colp: crate::kir::ParamId,
    x_chw: &[usize],
    cg: usize,
    kernel: &[usize],
    out_sp: &[usize],
    attrs: &tessera_ir::ConvAttrs,
    sp: usize,
) -> Result<Nest, LowerError> {
    let dtype = kb.params[xp.index()].dtype;
    let in_sp = &x_chw[1..];
    let nk: usize = kernel.iter().product();
    let kk = cg * nk;
    let p: usize = out_sp.iter().product();
    let ow = out_sp[sp - 1];
    let rows = p / ow.max(1);
    let row = Index::var(Var::Outer(0), rows);
    let kv = Index::var(Var::Outer(1), kk);
    let owv = Index::var(Var::Inner(0), ow);
    let ci = kv.div(nk as i64);
    let kidx = unflatten(&kv.rem(nk as i64), kernel);
    let mut oidx = unflatten(&row, &out_sp[..sp - 1]);
    oidx.push(owv.clone());
    let mut idx = vec![ci];
    let mut guards = Vec::new();
    for j in 0..sp {
        let ih = oidx[j]
            .scale(attrs.strides[j] as i64)
            .add(&kidx[j].scale(attrs.dilations[j] as i64))
            .add_const(-(attrs.pads[j] as i64));
        guards.push(Guard {
            index: ih.clone(),
            lo: 0,
            hi: in_sp[j] as i64,
        });
        idx.push(ih);
    }
    let mut slice = vec![cg];
    slice.extend_from_slice(in_sp);
    let flat = Index::dot(&idx, &row_major(&slice));
    let mut nb = NestBuilder::new(kb, vec![rows, kk], vec![ow]);
    let guards: Vec<Guard> = guards
        .into_iter()
        .filter(|g| {
            let (lo, hi) = g.index.range();
            !(lo >= g.lo && hi < g.hi)
        })
        .collect();
    let v = if guards.is_empty() {
        nb.push(
            dtype,
            ExprOp::Load {
                param: xp,
                index: flat,
            },
        )
    } else {
        nb.push(
            dtype,
            ExprOp::LoadIf {
                param: xp,
                index: flat,
                guards,
                default: Lit::float(0.0),
            },
        )
    };
    let dst = kv.scale(p as i64).add(&row.scale(ow as i64)).add(&owv);
    nb.phases.push(crate::kir::Phase::Store {
        looped: true,
        stores: vec![crate::kir::Store {
            param: colp,
            index: dst,
            value: v,
        }],
    });
    Ok(nb.finish_tiled())
}

pub(crate) fn attention(kb: &mut KernelBuilder) -> Result<Body, LowerError> {
    let g = kb.g;
    let root = kb.group.shape.roots[0];
    let node = g.node(root);
    let Op::Attention { scale } = node.op else {
        return Err(kb.error(root, "not an attention node"));
    };
    let out = node.outputs[0];
    let od = dims(g, out);
    let r = od.len();
    let (qd, kd, vd) = (
        dims(g, node.inputs[0]),
        dims(g, node.inputs[1]),
        dims(g, node.inputs[2]),
    );
    let batch = od[..r - 2].to_vec();
    let (s, d, t, e) = (qd[r - 2], qd[r - 1], kd[r - 2], vd[r - 1]);
    let bv = batch_vars(&batch);
    let with = |rows: usize, cols: usize| {
        let (rr, cc) = rc(rows, cols);
        let mut v = bv.clone();
        v.extend([rr, cc]);
        v
    };
    let q = mat_view(kb, node.inputs[0], &with(s, d), root)?;
    let k = mat_view(kb, node.inputs[1], &with(t, d), root)?;
    let v = mat_view(kb, node.inputs[2], &with(t, e), root)?;
    let mask = match node.inputs.get(3) {
        Some(&m) => {
            let mut scores = batch.clone();
            scores.extend([s, t]);
            let idx = broadcast_index(&dims(g, m), &scores, &with(s, t));
            Some(mat_view(kb, m, &idx, root)?)
        }
        None => None,
    };
    let outp = kb.write_param(out);
    Ok(Body::Attention(Attention {
        dtype: g.ty(out).dtype,
        batch,
        s,
        t,
        d,
        e,
        scale: scale as f64,
        q,
        k,
        v,
        mask,
        out: outp,
        block_q: 32,
        block_k: 64,
    }))
}
