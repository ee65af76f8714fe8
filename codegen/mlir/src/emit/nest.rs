//! Loop nests as `linalg.generic` ops on tensors.
//!
//! Each phase of a nest is one generic over the nest's loops (the outer loops, then the
//! inner loops where the phase loops over them): a reduction phase has `reduction`
//! iterators over the inner loops and one `[outer…]` result per accumulator; a store
//! phase computes every stored value in the loops' shape. Loads are `tensor.extract`s at
//! the kernel IR's index (views and gathers are indexing), computed from `linalg.index`.
//! A stored tensor becomes the parameter's new flat value by a `tensor.collapse_shape`
//! where the store is the row-major image of the loops, else by an `scf.for` of
//! `tensor.insert`s at the store's index.

use std::collections::BTreeSet;

use tessera_ir::{BinaryOp, DType, UnaryOp};
use tessera_lower::kir::{
    Atom, Expr, ExprId, ExprOp, Guard, Index, Lit, Nest, Phase, ReduceKind, Var,
};

use super::KernelCx;
use super::text::{Body, elem, float_lit, iterators, lit, prefix_map, tensor};
use crate::error::EmitError;

type R<T> = Result<T, EmitError>;

/// An accumulator result: its `[outer…]` tensor and element dtype.
#[derive(Clone)]
struct Acc {
    tensor: String,
    /// The tensor's element type: f64 for float sums and products (the reference
    /// interpreter's precision), else the kernel IR's accumulator dtype.
    store: DType,
}

/// The element type a reduction accumulates in.
fn accumulates_in(kind: ReduceKind, d: DType) -> DType {
    match (kind, d) {
        (ReduceKind::Sum | ReduceKind::Prod, DType::F32 | DType::F16 | DType::BF16) => DType::F64,
        _ => d,
    }
}

/// Emits nest `n`, updating the kernel's current parameter values.
pub(super) fn nest(kx: &mut KernelCx, n: &Nest) -> R<()> {
    let mut accs: Vec<Vec<Acc>> = Vec::new();
    for phase in &n.phases {
        match phase {
            Phase::Reduce(rs) => {
                let got = reduce(kx, n, rs, &accs)?;
                accs.push(got);
            }
            Phase::Store { looped, stores } => {
                store(kx, n, *looped, stores, &accs)?;
                accs.push(Vec::new());
            }
        }
    }
    Ok(())
}

/// Marks every expression `roots` depend on; returns the marks and the accumulators
/// (phase, slot) read.
fn needed(n: &Nest, roots: &[ExprId]) -> (Vec<bool>, BTreeSet<(u16, u16)>) {
    fn index_deps(ix: &Index, out: &mut Vec<ExprId>) {
        for (a, _) in ix.terms() {
            match a {
                Atom::Var(..) => {}
                Atom::Div(e, _) | Atom::Mod(e, _) => index_deps(e, out),
                Atom::Value(x, _) => out.push(*x),
            }
        }
    }
    let mut mark = vec![false; n.exprs.len()];
    let mut accs = BTreeSet::new();
    for r in roots {
        mark[r.index()] = true;
    }
    for i in (0..n.exprs.len()).rev() {
        if !mark[i] {
            continue;
        }
        let mut deps = Vec::new();
        match &n.exprs[i].op {
            ExprOp::Lit(_) => {}
            ExprOp::Load { index, .. } | ExprOp::IndexValue(index) => index_deps(index, &mut deps),
            ExprOp::LoadIf { index, guards, .. } => {
                index_deps(index, &mut deps);
                for g in guards {
                    index_deps(&g.index, &mut deps);
                }
            }
            ExprOp::InRange(gs) => {
                for g in gs {
                    index_deps(&g.index, &mut deps);
                }
            }
            ExprOp::Unary(_, a) | ExprOp::Cast(a) => deps.push(*a),
            ExprOp::CheckIndex { value, .. } => deps.push(*value),
            ExprOp::Binary(_, a, b) => deps.extend([*a, *b]),
            ExprOp::Select(c, a, b) => deps.extend([*c, *a, *b]),
            ExprOp::Acc { phase, slot } => {
                accs.insert((*phase, *slot));
            }
        }
        for d in deps {
            mark[d.index()] = true;
        }
    }
    (mark, accs)
}

/// What a generic body sees: its loop indices and accumulator block arguments.
struct Env {
    outer: Vec<String>,
    inner: Option<Vec<String>>,
    /// Per accumulator read: (phase, slot), block argument, stored and IR dtype.
    accs: Vec<((u16, u16), String, DType)>,
}

impl Env {
    fn var(&self, v: Var) -> Option<String> {
        match v {
            Var::Outer(k) => self.outer.get(k as usize).cloned(),
            Var::Inner(k) => self.inner.as_ref()?.get(k as usize).cloned(),
        }
    }
}

/// Header of a generic: inputs are the accumulators `used` reads (each `[outer…]`),
/// outputs `outs` (tensor, map, type). Returns the block's argument names for the used
/// accumulators and the outputs, after writing the `^bb0` line.
struct Generic {
    acc_args: Vec<((u16, u16), String, DType)>,
    out_args: Vec<String>,
    results: Vec<String>,
}

fn open_generic(
    kx: &mut KernelCx,
    dims: usize,
    outer: usize,
    reduction: bool,
    used: &BTreeSet<(u16, u16)>,
    accs: &[Vec<Acc>],
    outs: &[(String, String, DType, String)],
) -> R<Generic> {
    let mut maps = Vec::new();
    let (mut ins, mut in_tys, mut args) = (Vec::new(), Vec::new(), Vec::new());
    let mut acc_args = Vec::new();
    if reduction && dims > outer {
        // linalg needs every loop in some operand's map: an (unread) `[inner…]` operand
        // names the reduced loops.
        let shape = &kx.inner_dims;
        let ty = tensor(shape, DType::Bool);
        let e = kx.body.op("t", &format!("tensor.empty() : {ty}"));
        let ds: Vec<String> = (0..dims).map(|i| format!("d{i}")).collect();
        maps.push(format!(
            "affine_map<({}) -> ({})>",
            ds.join(", "),
            ds[outer..].join(", ")
        ));
        ins.push(e);
        in_tys.push(ty);
        args.push(format!("{}: i1", kx.body.fresh("u")));
    }
    for &(p, s) in used {
        let a = accs
            .get(p as usize)
            .and_then(|v| v.get(s as usize))
            .ok_or_else(|| EmitError::Construct(format!("accumulator {p}.{s} before its phase")))?;
        maps.push(prefix_map(dims, outer));
        ins.push(a.tensor.clone());
        in_tys.push(tensor(&kx.outer_dims, a.store));
        let name = kx.body.fresh("a");
        args.push(format!("{name}: {}", elem(a.store)));
        acc_args.push(((p, s), name, a.store));
    }
    let (mut out_names, mut out_tys, mut out_args) = (Vec::new(), Vec::new(), Vec::new());
    for (t, map, d, ty) in outs {
        maps.push(map.clone());
        out_names.push(t.clone());
        out_tys.push(ty.clone());
        let name = kx.body.fresh("o");
        args.push(format!("{name}: {}", elem(*d)));
        out_args.push(name);
    }
    let reduced = if reduction { dims - outer } else { 0 };
    let results = match outs.len() {
        1 => vec![kx.body.fresh("g")],
        k => {
            let base = kx.body.fresh("g");
            (0..k).map(|i| format!("{base}#{i}")).collect()
        }
    };
    let lhs = if outs.len() == 1 {
        results[0].clone()
    } else {
        format!("{}:{}", results[0].trim_end_matches("#0"), outs.len())
    };
    let ins_text = if ins.is_empty() {
        String::new()
    } else {
        format!(" ins({} : {})", ins.join(", "), in_tys.join(", "))
    };
    kx.body.line(&format!(
        "{lhs} = linalg.generic {{indexing_maps = [{}], iterator_types = [{}]}}{ins_text} outs({} : {}) {{",
        maps.join(", "),
        iterators(dims - reduced, reduced),
        out_names.join(", "),
        out_tys.join(", "),
    ));
    kx.body.line(&format!("^bb0({}):", args.join(", ")));
    Ok(Generic {
        acc_args,
        out_args,
        results,
    })
}

fn close_generic(kx: &mut KernelCx, yields: &[(String, DType)]) {
    let names: Vec<&str> = yields.iter().map(|(n, _)| n.as_str()).collect();
    let tys: Vec<&str> = yields.iter().map(|(_, d)| elem(*d)).collect();
    kx.body.line(&format!(
        "linalg.yield {} : {}",
        names.join(", "),
        tys.join(", ")
    ));
}

/// Closes a generic's region (after [`Body::close`]): `} -> types`.
fn end_generic(kx: &mut KernelCx, result_tys: &[String]) {
    let tys = if result_tys.len() == 1 {
        result_tys[0].clone()
    } else {
        format!("({})", result_tys.join(", "))
    };
    kx.body.line(&format!("}} -> {tys}"));
}

/// `linalg.index` of every loop, split into outer and inner.
fn loop_indices(kx: &mut KernelCx, n: &Nest, looped: bool) -> Env {
    let mut outer = Vec::new();
    for k in 0..n.outer.len() {
        outer.push(kx.body.op("i", &format!("linalg.index {k} : index")));
    }
    let inner = looped.then(|| {
        (0..n.inner.len())
            .map(|k| {
                kx.body
                    .op("i", &format!("linalg.index {} : index", n.outer.len() + k))
            })
            .collect()
    });
    Env {
        outer,
        inner,
        accs: Vec::new(),
    }
}

fn identity(kind: ReduceKind, d: DType) -> R<Lit> {
    Ok(match (kind, d) {
        (ReduceKind::Sum, DType::Bool) | (ReduceKind::Max, DType::Bool) => Lit::B(false),
        (ReduceKind::Prod, DType::Bool) | (ReduceKind::Min, DType::Bool) => Lit::B(true),
        (ReduceKind::Sum, _) => Lit::I(0),
        (ReduceKind::Prod, _) => Lit::I(1),
        (ReduceKind::Max | ReduceKind::ArgMax { .. }, d) if d.is_float() => {
            Lit::float(f64::NEG_INFINITY)
        }
        (ReduceKind::Min, d) if d.is_float() => Lit::float(f64::INFINITY),
        (ReduceKind::Max | ReduceKind::ArgMax { .. }, d) => Lit::I(int_bounds(d)?.0),
        (ReduceKind::Min, d) => Lit::I(int_bounds(d)?.1),
    })
}

fn int_bounds(d: DType) -> R<(i64, i64)> {
    Ok(match d {
        DType::I8 => (i8::MIN as i64, i8::MAX as i64),
        DType::I16 => (i16::MIN as i64, i16::MAX as i64),
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        DType::I64 => (i64::MIN, i64::MAX),
        DType::U8 => (0, u8::MAX as i64),
        DType::U16 => (0, u16::MAX as i64),
        DType::U32 => (0, u32::MAX as i64),
        // u64's maximum prints as -1 in a signless i64.
        DType::U64 => (0, -1),
        d => {
            return Err(EmitError::Dtype {
                op: "max",
                dtype: d,
            });
        }
    })
}

/// A filled `[outer…]` accumulator init.
fn filled(kx: &mut KernelCx, value: Lit, d: DType) -> String {
    let ty = tensor(&kx.outer_dims, d);
    let e = kx.body.op("t", &format!("tensor.empty() : {ty}"));
    let c = kx.body.constant(&lit(value, d), elem(d));
    kx.body.op(
        "t",
        &format!(
            "linalg.fill ins({c} : {}) outs({e} : {ty}) -> {ty}",
            elem(d)
        ),
    )
}

fn reduce(
    kx: &mut KernelCx,
    n: &Nest,
    rs: &[tessera_lower::kir::Reduction],
    accs: &[Vec<Acc>],
) -> R<Vec<Acc>> {
    kx.outer_dims = n.outer.clone();
    kx.inner_dims = n.inner.clone();
    let mut roots = Vec::new();
    for r in rs {
        roots.push(r.value);
        roots.extend(r.mask);
        if let ReduceKind::ArgMax { arg } = r.kind {
            roots.push(arg);
        }
    }
    let (mark, used) = needed(n, &roots);
    let dims = n.outer.len() + n.inner.len();
    let map = prefix_map(dims, n.outer.len());
    // One output per accumulator; ArgMax keeps its running maximum as an extra output.
    let mut outs = Vec::new();
    for r in rs {
        if let ReduceKind::ArgMax { .. } = r.kind {
            let vd = n.exprs[r.value.index()].dtype;
            let m = filled(kx, identity(r.kind, vd)?, vd);
            outs.push((m, map.clone(), vd, tensor(&n.outer, vd)));
            let a = filled(kx, Lit::I(-1), r.dtype);
            outs.push((a, map.clone(), r.dtype, tensor(&n.outer, r.dtype)));
        } else {
            let at = accumulates_in(r.kind, r.dtype);
            let init = filled(kx, identity(r.kind, at)?, at);
            outs.push((init, map.clone(), at, tensor(&n.outer, at)));
        }
    }
    let g = open_generic(kx, dims, n.outer.len(), true, &used, accs, &outs)?;
    let saved = kx.body.open();
    let mut env = loop_indices(kx, n, true);
    env.accs = g.acc_args.clone();
    let vals = exprs(kx, n, &mark, &env)?;
    let mut yields = Vec::new();
    let mut k = 0;
    for r in rs {
        let at = accumulates_in(r.kind, r.dtype);
        let v = value_as(
            kx,
            n,
            &vals,
            r.value,
            at,
            matches!(r.kind, ReduceKind::ArgMax { .. }),
        )?;
        match r.kind {
            ReduceKind::ArgMax { arg } => {
                let vd = n.exprs[r.value.index()].dtype;
                let (m, a) = (g.out_args[k].clone(), g.out_args[k + 1].clone());
                k += 2;
                let av = get(&vals, arg)?;
                let t = elem(vd);
                let b = &mut kx.body;
                let zero = b.constant("0", "i64");
                let first = b.op("r", &format!("arith.cmpi slt, {a}, {zero} : i64"));
                let take = if vd.is_float() {
                    let gt = b.op("r", &format!("arith.cmpf ogt, {v}, {m} : {t}"));
                    let vnan = b.op("r", &format!("arith.cmpf uno, {v}, {v} : {t}"));
                    let mnum = b.op("r", &format!("arith.cmpf ord, {m}, {m} : {t}"));
                    let win = b.op("r", &format!("arith.ori {vnan}, {gt} : i1"));
                    let win = b.op("r", &format!("arith.andi {mnum}, {win} : i1"));
                    b.op("r", &format!("arith.ori {first}, {win} : i1"))
                } else {
                    let cmp = if vd.is_signed() { "sgt" } else { "ugt" };
                    let gt = b.op("r", &format!("arith.cmpi {cmp}, {v}, {m} : {t}"));
                    b.op("r", &format!("arith.ori {first}, {gt} : i1"))
                };
                let take = masked(b, r.mask.map(|x| vals[x.index()].clone()), take)?;
                let nm = b.op("r", &format!("arith.select {take}, {v}, {m} : {t}"));
                let na = b.op("r", &format!("arith.select {take}, {av}, {a} : i64"));
                yields.push((nm, vd));
                yields.push((na, r.dtype));
            }
            kind => {
                let acc = g.out_args[k].clone();
                k += 1;
                let c = combine(&mut kx.body, kind, at, &acc, &v)?;
                let c = match r.mask {
                    Some(mk) => {
                        let mk = get(&vals, mk)?;
                        kx.body.op(
                            "r",
                            &format!("arith.select {mk}, {c}, {acc} : {}", elem(at)),
                        )
                    }
                    None => c,
                };
                yields.push((c, at));
            }
        }
    }
    let tys: Vec<String> = outs.iter().map(|o| o.3.clone()).collect();
    close_generic(kx, &yields);
    kx.body.close(saved);
    end_generic(kx, &tys);
    let mut got = Vec::new();
    let mut k = 0;
    for r in rs {
        if matches!(r.kind, ReduceKind::ArgMax { .. }) {
            k += 1;
        }
        let store = if matches!(r.kind, ReduceKind::ArgMax { .. }) {
            r.dtype
        } else {
            accumulates_in(r.kind, r.dtype)
        };
        got.push(Acc {
            tensor: g.results[k].clone(),
            store,
        });
        k += 1;
    }
    Ok(got)
}

fn masked(b: &mut Body, mask: Option<Option<String>>, take: String) -> R<String> {
    match mask {
        None => Ok(take),
        Some(Some(mk)) => Ok(b.op("r", &format!("arith.andi {mk}, {take} : i1"))),
        Some(None) => Err(EmitError::Construct("mask outside its body".into())),
    }
}

fn get(vals: &[Option<String>], e: ExprId) -> R<String> {
    vals.get(e.index())
        .cloned()
        .flatten()
        .ok_or_else(|| EmitError::Construct(format!("{e} used before it is computed")))
}

/// Expression `e`'s value converted to `d` (an accumulator's dtype).
fn value_as(
    kx: &mut KernelCx,
    n: &Nest,
    vals: &[Option<String>],
    e: ExprId,
    d: DType,
    keep: bool,
) -> R<String> {
    let v = get(vals, e)?;
    let from = n.exprs[e.index()].dtype;
    if keep || from == d {
        Ok(v)
    } else {
        cast(&mut kx.body, &v, from, d)
    }
}

fn combine(b: &mut Body, kind: ReduceKind, d: DType, acc: &str, v: &str) -> R<String> {
    let t = elem(d);
    let op = match (kind, d) {
        (ReduceKind::Sum, DType::Bool) | (ReduceKind::Max, DType::Bool) => "arith.ori",
        (ReduceKind::Prod, DType::Bool) | (ReduceKind::Min, DType::Bool) => "arith.andi",
        (ReduceKind::Sum, d) if d.is_float() => "arith.addf",
        (ReduceKind::Sum, _) => "arith.addi",
        (ReduceKind::Prod, d) if d.is_float() => "arith.mulf",
        (ReduceKind::Prod, _) => "arith.muli",
        (ReduceKind::Max, d) if d.is_float() => "arith.maximumf",
        (ReduceKind::Min, d) if d.is_float() => "arith.minimumf",
        (ReduceKind::Max, d) if d.is_signed() => "arith.maxsi",
        (ReduceKind::Min, d) if d.is_signed() => "arith.minsi",
        (ReduceKind::Max, _) => "arith.maxui",
        (ReduceKind::Min, _) => "arith.minui",
        (ReduceKind::ArgMax { .. }, _) => {
            return Err(EmitError::Construct("argmax as a plain reduction".into()));
        }
    };
    Ok(b.op("r", &format!("{op} {acc}, {v} : {t}")))
}

fn store(
    kx: &mut KernelCx,
    n: &Nest,
    looped: bool,
    stores: &[tessera_lower::kir::Store],
    accs: &[Vec<Acc>],
) -> R<()> {
    if stores.is_empty() {
        return Ok(());
    }
    kx.outer_dims = n.outer.clone();
    let mut shape = n.outer.clone();
    if looped {
        shape.extend(&n.inner);
    }
    let roots: Vec<ExprId> = stores.iter().map(|s| s.value).collect();
    let (mark, used) = needed(n, &roots);
    let dims = shape.len();
    let mut outs = Vec::new();
    for s in stores {
        let d = kx.param_dtype(s.param)?;
        let ty = tensor(&shape, d);
        let e = kx.body.op("t", &format!("tensor.empty() : {ty}"));
        outs.push((e, prefix_map(dims, dims), d, ty));
    }
    let g = open_generic(kx, dims, n.outer.len(), false, &used, accs, &outs)?;
    let saved = kx.body.open();
    let mut env = loop_indices(kx, n, looped);
    env.accs = g.acc_args.clone();
    let vals = exprs(kx, n, &mark, &env)?;
    let mut yields = Vec::new();
    for (s, o) in stores.iter().zip(&outs) {
        let v = value_as(kx, n, &vals, s.value, o.2, false)?;
        yields.push((v, o.2));
    }
    let tys: Vec<String> = outs.iter().map(|o| o.3.clone()).collect();
    close_generic(kx, &yields);
    kx.body.close(saved);
    end_generic(kx, &tys);
    let vars: Vec<Var> = (0..n.outer.len())
        .map(|k| Var::Outer(k as u8))
        .chain((0..if looped { n.inner.len() } else { 0 }).map(|k| Var::Inner(k as u8)))
        .collect();
    for (s, (v, o)) in stores.iter().zip(g.results.iter().zip(&outs)) {
        kx.write(s.param, v, &shape, &vars, &s.index, o.2)?;
    }
    Ok(())
}

/// The row-major linearization of `vars` over `shape`.
pub(super) fn row_major(shape: &[usize], vars: &[Var]) -> Index {
    let mut ix = Index::zero();
    let mut stride = 1i64;
    for (k, &e) in shape.iter().enumerate().rev() {
        ix = ix.add(&Index::var(vars[k], e).scale(stride));
        stride *= e as i64;
    }
    ix
}

/// Every marked expression of `n`, in order, as SSA values inside a generic body.
fn exprs(kx: &mut KernelCx, n: &Nest, mark: &[bool], env: &Env) -> R<Vec<Option<String>>> {
    let mut vals: Vec<Option<String>> = vec![None; n.exprs.len()];
    for (i, e) in n.exprs.iter().enumerate() {
        if !mark[i] {
            continue;
        }
        let v = expr(kx, n, e, &vals, env)?;
        vals[i] = Some(v);
    }
    Ok(vals)
}

fn guards(kx: &mut KernelCx, gs: &[Guard], env: &Env, vals: &[Option<String>]) -> R<String> {
    let var = |v: Var| env.var(v);
    let value = |x: ExprId| vals.get(x.index()).cloned().flatten();
    let mut cond: Option<String> = None;
    for g in gs {
        let x = kx.body.index(&g.index, &var, &value)?;
        let lo = kx.body.index_const(g.lo);
        let hi = kx.body.index_const(g.hi);
        let a = kx
            .body
            .op("b", &format!("arith.cmpi sge, {x}, {lo} : index"));
        let b = kx
            .body
            .op("b", &format!("arith.cmpi slt, {x}, {hi} : index"));
        let ab = kx.body.op("b", &format!("arith.andi {a}, {b} : i1"));
        cond = Some(match cond {
            None => ab,
            Some(c) => kx.body.op("b", &format!("arith.andi {c}, {ab} : i1")),
        });
    }
    Ok(match cond {
        Some(c) => c,
        None => kx.body.constant("true", "i1"),
    })
}

fn expr(kx: &mut KernelCx, n: &Nest, e: &Expr, vals: &[Option<String>], env: &Env) -> R<String> {
    let d = e.dtype;
    let t = elem(d);
    let var = |v: Var| env.var(v);
    let value = |x: ExprId| vals.get(x.index()).cloned().flatten();
    let dt = |x: &ExprId| n.exprs[x.index()].dtype;
    Ok(match &e.op {
        ExprOp::Lit(l) => kx.body.constant(&lit(*l, d), t),
        ExprOp::Load { param, index } => {
            let (src, ty) = kx.current(*param)?;
            let ix = kx.body.index(index, &var, &value)?;
            kx.body
                .op("l", &format!("tensor.extract {src}[{ix}] : {ty}"))
        }
        ExprOp::LoadIf {
            param,
            index,
            guards: gs,
            default,
        } => {
            let ok = guards(kx, gs, env, vals)?;
            let (src, ty) = kx.current(*param)?;
            let ix = kx.body.index(index, &var, &value)?;
            let zero = kx.body.index_const(0);
            let safe = kx
                .body
                .op("x", &format!("arith.select {ok}, {ix}, {zero} : index"));
            let l = kx
                .body
                .op("l", &format!("tensor.extract {src}[{safe}] : {ty}"));
            let dflt = kx.body.constant(&lit(*default, d), t);
            kx.body
                .op("l", &format!("arith.select {ok}, {l}, {dflt} : {t}"))
        }
        ExprOp::InRange(gs) => guards(kx, gs, env, vals)?,
        ExprOp::Unary(op, a) => {
            let x = get(vals, *a)?;
            unary(&mut kx.body, *op, &x, dt(a), d)?
        }
        ExprOp::Binary(op, a, b) => {
            let (x, y) = (get(vals, *a)?, get(vals, *b)?);
            binary(&mut kx.body, *op, &x, dt(a), &y, dt(b), d)?
        }
        ExprOp::Select(c, a, b) => {
            let (c, x, y) = (get(vals, *c)?, get(vals, *a)?, get(vals, *b)?);
            kx.body
                .op("v", &format!("arith.select {c}, {x}, {y} : {t}"))
        }
        ExprOp::Cast(a) => {
            let x = get(vals, *a)?;
            cast(&mut kx.body, &x, dt(a), d)?
        }
        ExprOp::Acc { phase, slot } => {
            let (n, store) = env
                .accs
                .iter()
                .find(|(k, _, _)| *k == (*phase, *slot))
                .map(|(_, n, st)| (n.clone(), *st))
                .ok_or_else(|| EmitError::Construct(format!("acc {phase}.{slot} not in scope")))?;
            cast(&mut kx.body, &n, store, d)?
        }
        ExprOp::IndexValue(ix) => {
            let i = kx.body.index(ix, &var, &value)?;
            if !d.is_int() {
                return Err(EmitError::Dtype {
                    op: "index",
                    dtype: d,
                });
            }
            kx.body
                .op("v", &format!("arith.index_cast {i} : index to {t}"))
        }
        ExprOp::CheckIndex { value: x, dim } => {
            let v = get(vals, *x)?;
            let vt = elem(dt(x));
            let b = &mut kx.body;
            let zero = b.constant("0", vt);
            let dimc = b.constant(&dim.to_string(), vt);
            let neg = b.op("v", &format!("arith.cmpi slt, {v}, {zero} : {vt}"));
            let up = b.op("v", &format!("arith.addi {v}, {dimc} : {vt}"));
            let w = b.op("v", &format!("arith.select {neg}, {up}, {v} : {vt}"));
            let lo = b.op("v", &format!("arith.cmpi sge, {w}, {zero} : {vt}"));
            let hi = b.op("v", &format!("arith.cmpi slt, {w}, {dimc} : {vt}"));
            let ok = b.op("v", &format!("arith.andi {lo}, {hi} : i1"));
            let r = b.op("v", &format!("arith.select {ok}, {w}, {zero} : {vt}"));
            if dt(x) == d {
                r
            } else {
                cast(b, &r, dt(x), d)?
            }
        }
    })
}

fn fconst(b: &mut Body, v: f64, d: DType) -> String {
    b.constant(&float_lit(v, d), elem(d))
}

fn unary(b: &mut Body, op: UnaryOp, x: &str, from: DType, d: DType) -> R<String> {
    let t = elem(from);
    let unsupported = || EmitError::Dtype {
        op: op.name(),
        dtype: from,
    };
    if op == UnaryOp::Not {
        let one = b.constant("true", "i1");
        return Ok(b.op("v", &format!("arith.xori {x}, {one} : i1")));
    }
    if from.is_float() {
        let m = |b: &mut Body, name: &str| b.op("v", &format!("math.{name} {x} : {t}"));
        return Ok(match op {
            UnaryOp::Neg => b.op("v", &format!("arith.negf {x} : {t}")),
            UnaryOp::Abs => m(b, "absf"),
            UnaryOp::Exp => m(b, "exp"),
            UnaryOp::Log => m(b, "log"),
            UnaryOp::Sqrt => m(b, "sqrt"),
            UnaryOp::Erf => m(b, "erf"),
            UnaryOp::Tanh => m(b, "tanh"),
            UnaryOp::Sin => m(b, "sin"),
            UnaryOp::Cos => m(b, "cos"),
            UnaryOp::Floor => m(b, "floor"),
            UnaryOp::Ceil => m(b, "ceil"),
            UnaryOp::Round => m(b, "roundeven"),
            UnaryOp::Reciprocal => {
                let one = fconst(b, 1.0, from);
                b.op("v", &format!("arith.divf {one}, {x} : {t}"))
            }
            UnaryOp::Relu => {
                let zero = fconst(b, 0.0, from);
                let keep = b.op("v", &format!("arith.cmpf ugt, {x}, {zero} : {t}"));
                b.op("v", &format!("arith.select {keep}, {x}, {zero} : {t}"))
            }
            UnaryOp::Sign => {
                let (zero, one, neg) = (
                    fconst(b, 0.0, from),
                    fconst(b, 1.0, from),
                    fconst(b, -1.0, from),
                );
                let gt = b.op("v", &format!("arith.cmpf ogt, {x}, {zero} : {t}"));
                let lt = b.op("v", &format!("arith.cmpf olt, {x}, {zero} : {t}"));
                let s = b.op("v", &format!("arith.select {lt}, {neg}, {x} : {t}"));
                b.op("v", &format!("arith.select {gt}, {one}, {s} : {t}"))
            }
            UnaryOp::Sigmoid => {
                let one = fconst(b, 1.0, from);
                let n = b.op("v", &format!("arith.negf {x} : {t}"));
                let e = b.op("v", &format!("math.exp {n} : {t}"));
                let s = b.op("v", &format!("arith.addf {one}, {e} : {t}"));
                b.op("v", &format!("arith.divf {one}, {s} : {t}"))
            }
            UnaryOp::Softplus => {
                // max(x, 0) + log1p(exp(-|x|)): no overflow for large |x|.
                let zero = fconst(b, 0.0, from);
                let a = b.op("v", &format!("math.absf {x} : {t}"));
                let n = b.op("v", &format!("arith.negf {a} : {t}"));
                let e = b.op("v", &format!("math.exp {n} : {t}"));
                let l = b.op("v", &format!("math.log1p {e} : {t}"));
                let m = b.op("v", &format!("arith.maximumf {x}, {zero} : {t}"));
                b.op("v", &format!("arith.addf {m}, {l} : {t}"))
            }
            UnaryOp::IsNaN => b.op("v", &format!("arith.cmpf uno, {x}, {x} : {t}")),
            UnaryOp::IsInf => {
                let inf = fconst(b, f64::INFINITY, from);
                let a = b.op("v", &format!("math.absf {x} : {t}"));
                b.op("v", &format!("arith.cmpf oeq, {a}, {inf} : {t}"))
            }
            UnaryOp::Not => return Err(unsupported()),
        });
    }
    if !from.is_int() || d != from {
        return Err(unsupported());
    }
    let zero = b.constant("0", t);
    Ok(match op {
        UnaryOp::Neg => b.op("v", &format!("arith.subi {zero}, {x} : {t}")),
        UnaryOp::Abs if from.is_signed() => b.op("v", &format!("math.absi {x} : {t}")),
        UnaryOp::Abs => x.to_string(),
        UnaryOp::Relu if from.is_signed() => b.op("v", &format!("arith.maxsi {x}, {zero} : {t}")),
        UnaryOp::Relu => x.to_string(),
        UnaryOp::Sign => {
            let one = b.constant("1", t);
            let cmp = if from.is_signed() { "s" } else { "u" };
            let gt = b.op("v", &format!("arith.cmpi {cmp}gt, {x}, {zero} : {t}"));
            let neg = b.constant("-1", t);
            let lt = b.op("v", &format!("arith.cmpi {cmp}lt, {x}, {zero} : {t}"));
            let s = b.op("v", &format!("arith.select {lt}, {neg}, {zero} : {t}"));
            b.op("v", &format!("arith.select {gt}, {one}, {s} : {t}"))
        }
        _ => return Err(unsupported()),
    })
}

fn binary(
    b: &mut Body,
    op: BinaryOp,
    x: &str,
    xd: DType,
    y: &str,
    yd: DType,
    d: DType,
) -> R<String> {
    let t = elem(xd);
    let unsupported = || EmitError::Dtype {
        op: op.name(),
        dtype: xd,
    };
    if matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor) {
        let name = match op {
            BinaryOp::And => "andi",
            BinaryOp::Or => "ori",
            _ => "xori",
        };
        return Ok(b.op("v", &format!("arith.{name} {x}, {y} : i1")));
    }
    if op == BinaryOp::Pow {
        // In the base's float type; integer results go through f64, as the reference does.
        let ft = if xd.is_float() { xd } else { DType::F64 };
        let bx = cast(b, x, xd, ft)?;
        let by = cast(b, y, yd, ft)?;
        let p = b.op("v", &format!("math.powf {bx}, {by} : {}", elem(ft)));
        return cast(b, &p, ft, d);
    }
    if yd != xd {
        return Err(unsupported());
    }
    if xd.is_float() {
        let arith = |b: &mut Body, name: &str| b.op("v", &format!("arith.{name} {x}, {y} : {t}"));
        let cmp = |b: &mut Body, p: &str| b.op("v", &format!("arith.cmpf {p}, {x}, {y} : {t}"));
        return Ok(match op {
            BinaryOp::Add => arith(b, "addf"),
            BinaryOp::Sub => arith(b, "subf"),
            BinaryOp::Mul => arith(b, "mulf"),
            BinaryOp::Div => arith(b, "divf"),
            BinaryOp::Max => arith(b, "maximumf"),
            BinaryOp::Min => arith(b, "minimumf"),
            BinaryOp::Equal => cmp(b, "oeq"),
            BinaryOp::Less => cmp(b, "olt"),
            BinaryOp::LessOrEqual => cmp(b, "ole"),
            BinaryOp::Greater => cmp(b, "ogt"),
            BinaryOp::GreaterOrEqual => cmp(b, "oge"),
            _ => return Err(unsupported()),
        });
    }
    let s = xd.is_signed() || xd == DType::Bool;
    let arith = |b: &mut Body, name: &str| b.op("v", &format!("arith.{name} {x}, {y} : {t}"));
    let cmp = |b: &mut Body, p: &str| {
        let p = if p == "eq" {
            "eq".to_string()
        } else {
            format!("{}{p}", if s { "s" } else { "u" })
        };
        b.op("v", &format!("arith.cmpi {p}, {x}, {y} : {t}"))
    };
    Ok(match op {
        BinaryOp::Add => arith(b, "addi"),
        BinaryOp::Sub => arith(b, "subi"),
        BinaryOp::Mul => arith(b, "muli"),
        BinaryOp::Div => {
            // Division by zero is the reference's error; here it must not be UB.
            let zero = b.constant("0", t);
            let one = b.constant("1", t);
            let z = b.op("v", &format!("arith.cmpi eq, {y}, {zero} : {t}"));
            let safe = b.op("v", &format!("arith.select {z}, {one}, {y} : {t}"));
            let name = if s { "divsi" } else { "divui" };
            b.op("v", &format!("arith.{name} {x}, {safe} : {t}"))
        }
        BinaryOp::Max => arith(b, if s { "maxsi" } else { "maxui" }),
        BinaryOp::Min => arith(b, if s { "minsi" } else { "minui" }),
        BinaryOp::Equal => cmp(b, "eq"),
        BinaryOp::Less => cmp(b, "lt"),
        BinaryOp::LessOrEqual => cmp(b, "le"),
        BinaryOp::Greater => cmp(b, "gt"),
        BinaryOp::GreaterOrEqual => cmp(b, "ge"),
        _ => return Err(unsupported()),
    })
}

fn width(d: DType) -> usize {
    match d {
        DType::Bool => 1,
        d => d.size_bytes() * 8,
    }
}

/// ONNX `Cast` from `from` to `to`.
pub(super) fn cast(b: &mut Body, x: &str, from: DType, to: DType) -> R<String> {
    if from == to {
        return Ok(x.to_string());
    }
    let (ft, tt) = (elem(from), elem(to));
    Ok(if from.is_float() && to.is_float() {
        if matches!(
            (from, to),
            (DType::F16, DType::BF16) | (DType::BF16, DType::F16)
        ) {
            let w = b.op("v", &format!("arith.extf {x} : {ft} to f32"));
            b.op("v", &format!("arith.truncf {w} : f32 to {tt}"))
        } else if width(to) > width(from) {
            b.op("v", &format!("arith.extf {x} : {ft} to {tt}"))
        } else {
            b.op("v", &format!("arith.truncf {x} : {ft} to {tt}"))
        }
    } else if from.is_float() && to == DType::Bool {
        let zero = fconst(b, 0.0, from);
        b.op("v", &format!("arith.cmpf une, {x}, {zero} : {ft}"))
    } else if from.is_float() {
        let op = if to.is_signed() { "fptosi" } else { "fptoui" };
        b.op("v", &format!("arith.{op} {x} : {ft} to {tt}"))
    } else if to.is_float() {
        let op = if from.is_signed() { "sitofp" } else { "uitofp" };
        b.op("v", &format!("arith.{op} {x} : {ft} to {tt}"))
    } else if to == DType::Bool {
        let zero = b.constant("0", ft);
        b.op("v", &format!("arith.cmpi ne, {x}, {zero} : {ft}"))
    } else if width(to) > width(from) {
        let op = if from.is_signed() { "extsi" } else { "extui" };
        b.op("v", &format!("arith.{op} {x} : {ft} to {tt}"))
    } else if width(to) < width(from) {
        b.op("v", &format!("arith.trunci {x} : {ft} to {tt}"))
    } else {
        x.to_string()
    })
}
