//! Lowering one loop nest to a Cranelift function
//! `fn(params: *const *mut u8, status: *mut u64, begin, end, col_begin, col_end)`.
//!
//! `[begin, end)` is a range of parallel units: outer points (row-major over all outer
//! loops), or in outer-vectorized nests, rows of all outer loops but the last, which is
//! run whole, four lanes at a time. `[col_begin, col_end)` restricts the last inner loop
//! (GEMM epilogues run per output tile); callers pass the full extent otherwise, and always
//! for outer-vectorized nests.
//!
//! Expressions are emitted at the loop level of their innermost dependency (loop-invariant
//! code is computed once per row or per outer iteration). In vectorized nests, values that
//! vary along the vector loop are f32x4 (bool masks i32x4); the innermost vector loop is
//! unrolled with independent accumulators and followed by a one-vector loop and a scalar
//! tail. Integers compute in i64 and bools in i8, mirroring the reference interpreter.
//!
//! Windows (pools, depthwise convolutions): the row-only part of each load's index is
//! computed once per row; lanes of a strided load are loads at constant offsets from one
//! address; and in outer-vectorized nests each row runs as border, interior, border,
//! where the interior is the interval of the vector loop on which every column guard
//! holds for every window tap (`interior`), so it runs without them; windows of at most
//! 32 taps are unrolled into straight-line code.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, F32X4, F64, I8, I16, I32, I32X4, I64};
use cranelift_codegen::ir::{Endianness, FuncRef, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use tessera_ir::{BinaryOp, DType, UnaryOp};

use super::math::Math;
use crate::KernelError;
use tessera_lower::kir::var_deps;
use tessera_lower::kir::{
    Atom, Expr, ExprId, ExprOp, Guard, Index, Lit, Nest, Param, ParamId, Phase, ReduceKind, Var,
    VectorAxis,
};

type Result<T> = std::result::Result<T, KernelError>;

/// Error codes written to the status word.
pub const STATUS_INDEX_OUT_OF_RANGE: u64 = 1;
pub const STATUS_DIVISION_BY_ZERO: u64 = 2;

#[derive(Clone, Copy, Debug)]
enum Val {
    S(Value),
    V(Value),
}

/// The compute type of a dtype.
fn ct(d: DType) -> Type {
    match d {
        DType::F32 | DType::F16 | DType::BF16 => F32,
        DType::F64 => F64,
        DType::Bool => I8,
        _ => I64,
    }
}

fn trusted() -> MemFlagsData {
    MemFlagsData::trusted()
}

fn vflags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// Reduction accumulators of one phase.
struct Accs {
    vec: Vec<Vec<Variable>>,
    scalar: Vec<Variable>,
    /// ArgMax state per accumulator: (best, found).
    arg_state: Vec<Option<(Variable, Variable)>>,
}

pub(crate) struct Lower<'a, 'b> {
    b: &'a mut FunctionBuilder<'b>,
    nest: &'a Nest,
    params: &'a [Param],
    helpers: &'a HashMap<&'static str, FuncRef>,
    fma: bool,
    levels: Vec<u8>,
    vec: Vec<bool>,
    vec_var: Option<Var>,
    host: u8,
    /// Lanes of the current pass for vector-varying values (4, or 1 in tails).
    lanes: u8,
    vec_base: Option<Value>,
    vec_off: i64,
    outer_vals: Vec<Option<Value>>,
    inner_vals: Vec<Option<Value>>,
    cache: Vec<Option<Val>>,
    ptrs: Vec<Option<Value>>,
    err: Variable,
    col: (Value, Value),
    /// Set while emitting the interior of an outer-vectorized row, where every column
    /// guard (see [`column_guard`]) is known to hold and is not emitted.
    interior: bool,
    /// Per load expression, the part of its index that depends only on the current row
    /// (constant plus terms in row variables), computed once at the top of the row.
    row_base: Vec<Option<Value>>,
    /// Outer variables that are fixed for a whole row (all but the vector one).
    row_vars: usize,
}

/// A guard that depends on the vector loop `vv` with a positive coefficient and otherwise
/// only on inner loops (a window's column bound): it holds for every inner point on one
/// interval of `vv`, computed by [`interior`]. The bounds `(lo, hi)` of `vv` when it is.
fn column_guard(g: &Guard, vv: Var) -> Option<(i64, i64)> {
    fn only_inner(i: &Index) -> bool {
        i.terms().iter().all(|(a, _)| match a {
            Atom::Var(v, _) => matches!(v, Var::Inner(_)),
            Atom::Div(e, _) | Atom::Mod(e, _) => only_inner(e),
            Atom::Value(..) => false,
        })
    }
    let a = g.index.stride_of(vv)?;
    let rest = g.index.without(vv);
    if a <= 0 || !only_inner(&rest) {
        return None;
    }
    let (rmin, rmax) = rest.range();
    // a·v + rmin ≥ lo and a·v + rmax < hi for every inner point.
    let lo = (g.lo - rmin).max(0);
    let lo = (lo + a - 1) / a;
    let top = g.hi - 1 - rmax;
    let hi = if top < 0 { 0 } else { top / a + 1 };
    Some((lo, hi))
}

/// The interval `[lo, hi)` of the vector loop on which every column guard of `nest`
/// holds, when there is at least one column guard.
fn interior(nest: &Nest, vv: Var) -> Option<(i64, i64)> {
    let mut found = false;
    let (mut lo, mut hi) = (0i64, i64::MAX);
    for e in &nest.exprs {
        let gs = match &e.op {
            ExprOp::LoadIf { guards, .. } => guards,
            ExprOp::InRange(gs) => gs,
            _ => continue,
        };
        for g in gs {
            if let Some((l, h)) = column_guard(g, vv) {
                found = true;
                lo = lo.max(l);
                hi = hi.min(h);
            }
        }
    }
    found.then_some((lo, hi))
}

/// Lowers `nest` into the (empty) function of `b`.
pub(crate) fn lower_nest(
    b: &mut FunctionBuilder,
    nest: &Nest,
    params: &[Param],
    helpers: &HashMap<&'static str, FuncRef>,
    fma: bool,
) -> Result<()> {
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let args: Vec<Value> = b.block_params(entry).to_vec();
    let (pp, status, begin, end, cb, ce) = (args[0], args[1], args[2], args[3], args[4], args[5]);
    let err = b.declare_var(I64);
    let zero = b.ins().iconst(I64, 0);
    b.def_var(err, zero);
    let mut ptrs = vec![None; params.len()];
    for (i, slot) in ptrs.iter_mut().enumerate() {
        *slot = Some(b.ins().load(I64, trusted(), pp, (8 * i) as i32));
    }
    let deps = var_deps(nest);
    let vec_var = match nest.hints.vector {
        VectorAxis::None => None,
        VectorAxis::Inner => Some(Var::Inner(nest.inner.len() as u8 - 1)),
        VectorAxis::Outer => Some(Var::Outer(nest.outer.len() as u8 - 1)),
    };
    let host = if nest.hints.vector == VectorAxis::Outer {
        2
    } else {
        1
    };
    let vbit = match vec_var {
        Some(Var::Outer(k)) => 1u64 << k,
        Some(Var::Inner(k)) => 1u64 << (32 + k as u32),
        None => 0,
    };
    let mut l = Lower {
        b,
        nest,
        params,
        helpers,
        fma,
        levels: Vec::new(),
        vec: deps.iter().map(|d| d & vbit != 0).collect(),
        vec_var,
        host,
        lanes: 1,
        vec_base: None,
        vec_off: 0,
        outer_vals: vec![None; nest.outer.len()],
        inner_vals: vec![None; nest.inner.len()],
        cache: vec![None; nest.exprs.len()],
        ptrs,
        err,
        col: (cb, ce),
        interior: false,
        row_base: vec![None; nest.exprs.len()],
        row_vars: if host == 2 {
            nest.outer.len() - 1
        } else {
            nest.outer.len()
        },
    };
    l.levels = l.compute_levels();
    // Row loop over parallel units.
    let row_dims: Vec<usize> = if host == 2 {
        nest.outer[..nest.outer.len() - 1].to_vec()
    } else {
        nest.outer.clone()
    };
    l.counted_loop(begin, end, 1, &mut |l, u| {
        l.clear_from(1);
        // Decompose u into the row's outer variables.
        let mut stride: i64 = row_dims.iter().map(|&d| d as i64).product();
        for (k, &d) in row_dims.iter().enumerate() {
            stride /= (d as i64).max(1);
            let q = if stride > 1 {
                let s = l.b.ins().iconst(I64, stride);
                l.b.ins().udiv(u, s)
            } else {
                u
            };
            let v = if k > 0 && d > 0 {
                let dv = l.b.ins().iconst(I64, d as i64);
                l.b.ins().urem(q, dv)
            } else {
                q
            };
            l.outer_vals[k] = Some(v);
        }
        l.row_bases();
        if l.host == 2 {
            let all: Vec<ExprId> = (0..l.nest.phases.len()).flat_map(|p| l.needed(p)).collect();
            l.preemit(&all, 1)?;
            let ol = l.nest.outer[l.nest.outer.len() - 1] as i64;
            // Windows: the columns where no column guard can fail run without them.
            let split = l
                .vec_var
                .and_then(|vv| interior(l.nest, vv))
                .map(|(lo, hi)| (lo.clamp(0, ol), hi.clamp(0, ol)))
                .filter(|(lo, hi)| hi - lo >= 8);
            let segments = match split {
                Some((lo, hi)) => vec![(0, lo, false), (lo, hi, true), (hi, ol, false)],
                None => vec![(0, ol, false)],
            };
            for (from, to, inside) in segments {
                if from >= to {
                    continue;
                }
                l.interior = inside;
                let fv = l.b.ins().iconst(I64, from);
                let tv = l.b.ins().iconst(I64, to);
                l.lanes = 4;
                let after = l.counted_loop(fv, tv, 4, &mut |l, ov| {
                    l.clear_from(2);
                    l.vec_base = Some(ov);
                    l.vec_off = 0;
                    l.phases()
                })?;
                l.lanes = 1;
                l.counted_loop(after, tv, 1, &mut |l, ov| {
                    l.clear_from(2);
                    l.vec_base = Some(ov);
                    l.vec_off = 0;
                    l.phases()
                })?;
                l.clear_from(2);
            }
            l.interior = false;
            l.lanes = 4;
            Ok(())
        } else {
            l.lanes = if l.vec_var.is_some() { 4 } else { 1 };
            l.phases()
        }
    })?;
    // Exit: report errors.
    let e = l.b.use_var(err);
    let report = l.b.create_block();
    let done = l.b.create_block();
    l.b.ins().brif(e, report, &[], done, &[]);
    l.b.switch_to_block(report);
    l.b.ins().store(trusted(), e, status, 0);
    l.b.ins().jump(done, &[]);
    l.b.switch_to_block(done);
    l.b.ins().return_(&[]);
    l.b.seal_all_blocks();
    Ok(())
}

impl<'a, 'b> Lower<'a, 'b> {
    fn var_level(&self, v: Var) -> u8 {
        match v {
            Var::Outer(k) => {
                if self.host == 2 && k as usize == self.nest.outer.len() - 1 {
                    2
                } else {
                    1
                }
            }
            Var::Inner(j) => self.host + 1 + j,
        }
    }

    fn index_level(&self, i: &Index, levels: &[u8]) -> u8 {
        let mut l = 1;
        for (a, _) in i.terms() {
            l = l.max(match a {
                Atom::Var(v, _) => self.var_level(*v),
                Atom::Div(e, _) | Atom::Mod(e, _) => self.index_level(e, levels),
                Atom::Value(x, _) => levels[(*x).index()],
            });
        }
        l
    }

    fn compute_levels(&self) -> Vec<u8> {
        let mut lv = vec![1u8; self.nest.exprs.len()];
        for (i, e) in self.nest.exprs.iter().enumerate() {
            lv[i] = match &e.op {
                ExprOp::Lit(_) => 1,
                ExprOp::Load { index, .. } | ExprOp::IndexValue(index) => {
                    self.index_level(index, &lv)
                }
                ExprOp::LoadIf { index, guards, .. } => {
                    guards.iter().fold(self.index_level(index, &lv), |m, g| {
                        m.max(self.index_level(&g.index, &lv))
                    })
                }
                ExprOp::InRange(gs) => gs
                    .iter()
                    .fold(1, |m, g| m.max(self.index_level(&g.index, &lv))),
                ExprOp::Unary(_, a) | ExprOp::Cast(a) => lv[(*a).index()],
                ExprOp::CheckIndex { value, .. } => lv[(*value).index()],
                ExprOp::Binary(_, a, b) => lv[(*a).index()].max(lv[(*b).index()]),
                ExprOp::Select(c, a, b) => {
                    lv[(*c).index()].max(lv[(*a).index()]).max(lv[(*b).index()])
                }
                ExprOp::Acc { .. } => self.host,
            };
        }
        lv
    }

    fn index_values(i: &Index, out: &mut Vec<ExprId>) {
        for (a, _) in i.terms() {
            match a {
                Atom::Value(x, _) => out.push(*x),
                Atom::Div(e, _) | Atom::Mod(e, _) => Self::index_values(e, out),
                Atom::Var(..) => {}
            }
        }
    }

    /// Expressions phase `p` needs (transitively), sorted; `Acc`s are leaves.
    fn needed(&self, p: usize) -> Vec<ExprId> {
        let mut stack: Vec<ExprId> = Vec::new();
        match &self.nest.phases[p] {
            Phase::Reduce(rs) => {
                for r in rs {
                    stack.push(r.value);
                    stack.extend(r.mask);
                    if let ReduceKind::ArgMax { arg } = r.kind {
                        stack.push(arg);
                    }
                }
            }
            Phase::Store { stores, .. } => {
                for s in stores {
                    stack.push(s.value);
                    Self::index_values(&s.index, &mut stack);
                }
            }
        }
        let mut seen = vec![false; self.nest.exprs.len()];
        while let Some(e) = stack.pop() {
            if std::mem::replace(&mut seen[e.index()], true) {
                continue;
            }
            let mut ops = Vec::new();
            match &self.nest.exprs[e.index()].op {
                ExprOp::Lit(_) | ExprOp::Acc { .. } => {}
                ExprOp::Load { index, .. } | ExprOp::IndexValue(index) => {
                    Self::index_values(index, &mut ops)
                }
                ExprOp::LoadIf { index, guards, .. } => {
                    Self::index_values(index, &mut ops);
                    for g in guards {
                        Self::index_values(&g.index, &mut ops);
                    }
                }
                ExprOp::InRange(gs) => {
                    for g in gs {
                        Self::index_values(&g.index, &mut ops);
                    }
                }
                ExprOp::Unary(_, a) | ExprOp::Cast(a) => ops.push(*a),
                ExprOp::CheckIndex { value, .. } => ops.push(*value),
                ExprOp::Binary(_, a, b) => ops.extend([*a, *b]),
                ExprOp::Select(c, a, b) => ops.extend([*c, *a, *b]),
            }
            stack.extend(ops);
        }
        (0..self.nest.exprs.len())
            .filter(|&e| seen[e])
            .map(ExprId::new)
            .collect()
    }

    fn clear_from(&mut self, level: u8) {
        for (i, c) in self.cache.iter_mut().enumerate() {
            if self.levels[i] >= level && !matches!(self.nest.exprs[i].op, ExprOp::Acc { .. }) {
                *c = None;
            }
        }
        if level <= self.host {
            for (i, c) in self.cache.iter_mut().enumerate() {
                if matches!(self.nest.exprs[i].op, ExprOp::Acc { .. }) && self.levels[i] >= level {
                    *c = None;
                }
            }
        }
    }

    /// Emits the needed expressions of exactly `level` (and any missing shallower ones).
    fn preemit(&mut self, needed: &[ExprId], level: u8) -> Result<()> {
        for &e in needed {
            if self.levels[e.index()] <= level
                && self.cache[e.index()].is_none()
                && !matches!(self.nest.exprs[e.index()].op, ExprOp::Acc { .. })
            {
                self.emit(e)?;
            }
        }
        Ok(())
    }

    /// `for i in (start..end).step_by(step)` while `i + step <= end`; returns the counter
    /// value at exit.
    fn counted_loop(
        &mut self,
        start: Value,
        end: Value,
        step: i64,
        body: &mut dyn FnMut(&mut Self, Value) -> Result<()>,
    ) -> Result<Value> {
        let header = self.b.create_block();
        let body_blk = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(header, I64);
        self.b.ins().jump(header, &[start.into()]);
        self.b.switch_to_block(header);
        let i = self.b.block_params(header)[0];
        let next = self.b.ins().iadd_imm_s(i, step);
        let ok = self.b.ins().icmp(IntCC::SignedLessThanOrEqual, next, end);
        self.b.ins().brif(ok, body_blk, &[], exit, &[]);
        self.b.switch_to_block(body_blk);
        body(self, i)?;
        self.b.ins().jump(header, &[next.into()]);
        self.b.switch_to_block(exit);
        Ok(i)
    }

    fn phases(&mut self) -> Result<()> {
        let empty_inner = self.nest.inner.contains(&0);
        for p in 0..self.nest.phases.len() {
            if empty_inner {
                // The inner loops never run: reductions keep their initial values and
                // nothing they would load may be touched (a hoisted load would read an
                // empty buffer).
                match &self.nest.phases[p] {
                    Phase::Reduce(rs) => {
                        let rs = rs.clone();
                        self.empty_reduction(p, &rs)?;
                        continue;
                    }
                    Phase::Store { looped: true, .. } => continue,
                    Phase::Store { looped: false, .. } => {}
                }
            }
            let needed = self.needed(p);
            self.preemit(&needed, self.host)?;
            let phase = self.nest.phases[p].clone();
            match phase {
                Phase::Reduce(rs) => self.reduce_phase(p, &rs, &needed)?,
                Phase::Store { looped, stores } => {
                    if looped {
                        self.inner(0, &needed, &mut |l, copy| l.stores(&stores, copy))?;
                    } else {
                        self.stores(&stores, Copy::Single)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs `body` over the inner loops starting at `depth`.
    fn inner(
        &mut self,
        depth: usize,
        needed: &[ExprId],
        body: &mut dyn FnMut(&mut Self, Copy) -> Result<()>,
    ) -> Result<()> {
        let ni = self.nest.inner.len();
        if depth == ni {
            return body(self, Copy::Single);
        }
        let level = self.host + 1 + depth as u8;
        let last = depth == ni - 1;
        let (start, end) = if last {
            self.col
        } else {
            let z = self.b.ins().iconst(I64, 0);
            let e = self.b.ins().iconst(I64, self.nest.inner[depth] as i64);
            (z, e)
        };
        let vectorized = last && self.vec_var == Some(Var::Inner(depth as u8));
        // Small windows of outer-vectorized nests (pools, depthwise convolutions; callers
        // never restrict their columns) are unrolled: the taps become straight-line code
        // whose indices and guards fold against constant offsets.
        let taps: usize = self.nest.inner.iter().product();
        if self.host == 2 && taps <= 32 {
            for i in 0..self.nest.inner[depth] {
                self.clear_from(level);
                self.inner_vals[depth] = Some(self.b.ins().iconst(I64, i as i64));
                self.preemit(needed, level)?;
                self.inner(depth + 1, needed, body)?;
            }
            self.clear_from(level);
            return Ok(());
        }
        if !vectorized {
            self.counted_loop(start, end, 1, &mut |l, i| {
                l.clear_from(level);
                l.inner_vals[depth] = Some(i);
                l.preemit(needed, level)?;
                l.inner(depth + 1, needed, body)
            })?;
            self.clear_from(level);
            return Ok(());
        }
        let unroll = self.nest.hints.unroll.max(1) as i64;
        let mut at = start;
        if unroll > 1 {
            at = self.counted_loop(at, end, 4 * unroll, &mut |l, i| {
                for u in 0..unroll {
                    l.clear_from(level);
                    l.lanes = 4;
                    l.vec_base = Some(i);
                    l.vec_off = 4 * u;
                    l.inner_vals[depth] = Some(i);
                    l.preemit(needed, level)?;
                    body(l, Copy::Vector(u as usize))?;
                }
                Ok(())
            })?;
        }
        at = self.counted_loop(at, end, 4, &mut |l, i| {
            l.clear_from(level);
            l.lanes = 4;
            l.vec_base = Some(i);
            l.vec_off = 0;
            l.inner_vals[depth] = Some(i);
            l.preemit(needed, level)?;
            body(l, Copy::Vector(0))
        })?;
        self.counted_loop(at, end, 1, &mut |l, i| {
            l.clear_from(level);
            l.lanes = 1;
            l.vec_base = Some(i);
            l.vec_off = 0;
            l.inner_vals[depth] = Some(i);
            l.preemit(needed, level)?;
            body(l, Copy::Tail)
        })?;
        self.lanes = 4;
        self.clear_from(level);
        Ok(())
    }

    fn is_vec(&self, e: ExprId) -> bool {
        self.vec[e.index()] && self.lanes == 4
    }

    fn var_value(&mut self, v: Var, lane: i64) -> Value {
        if Some(v) == self.vec_var {
            let base = self
                .vec_base
                .expect("invariant: the vector loop binds its variable");
            let off = self.vec_off + if self.lanes == 4 { lane } else { 0 };
            return if off == 0 {
                base
            } else {
                self.b.ins().iadd_imm_s(base, off)
            };
        }
        match v {
            Var::Outer(k) => self.outer_vals[k as usize]
                .expect("invariant: the row loop binds every outer variable"),
            Var::Inner(j) => self.inner_vals[j as usize]
                .expect("invariant: inner loops bind their variables before their bodies"),
        }
    }

    /// Whether `a` depends only on row variables (and so is fixed for the whole row).
    fn row_only(&self, a: &Atom) -> bool {
        match a {
            Atom::Var(Var::Outer(k), _) => (*k as usize) < self.row_vars,
            Atom::Var(Var::Inner(_), _) | Atom::Value(..) => false,
            Atom::Div(e, _) | Atom::Mod(e, _) => e.terms().iter().all(|(a, _)| self.row_only(a)),
        }
    }

    /// Computes `row_base` for every load emitted below the row level whose index has a
    /// row-only term: its divisions and products then run once per row, not per point.
    fn row_bases(&mut self) {
        for e in 0..self.nest.exprs.len() {
            self.row_base[e] = None;
            if self.levels[e] <= 1 {
                continue;
            }
            let index = match &self.nest.exprs[e].op {
                ExprOp::Load { index, .. } | ExprOp::LoadIf { index, .. } => index.clone(),
                _ => continue,
            };
            if !index.terms().iter().any(|(a, _)| self.row_only(a)) {
                continue;
            }
            let c = self.b.ins().iconst(I64, index.constant_part());
            // Row-only atoms are variables and divisions of them: nothing here can fail.
            let Ok(acc) = self.add_terms(c, &index, 0, &|l, a| l.row_only(a)) else {
                continue;
            };
            self.row_base[e] = Some(self.opaque(acc));
        }
    }

    /// `v` through a stack slot. Without it Cranelift's egraph sinks a pure row-level
    /// computation back into the loops that use it: in a max pool's optimized CLIF the
    /// magic-number division for `(o0)/55` ran at every window tap; with it, once per row
    /// (the store/load pair itself is forwarded away).
    fn opaque(&mut self, v: Value) -> Value {
        let slot = self
            .b
            .create_sized_stack_slot(cranelift_codegen::ir::StackSlotData::new(
                cranelift_codegen::ir::StackSlotKind::ExplicitSlot,
                8,
                3,
            ));
        self.b.ins().stack_store(I64, v, slot, 0);
        self.b.ins().stack_load(I64, I64, slot, 0)
    }

    /// The index of load expression `e` at `lane`, from its row base when it has one.
    fn load_index(&mut self, e: ExprId, i: &Index, lane: i64) -> Result<Value> {
        let Some(base) = self.row_base[e.index()] else {
            return self.index(i, lane);
        };
        self.add_terms(base, i, lane, &|l, a| !l.row_only(a))
    }

    /// Four lanes of f32 `param` at `index`, `stride` elements apart along the vector loop
    /// (`None`: not affine in it), as scalar loads from one address when the stride is known.
    fn lanes_f32(
        &mut self,
        e: ExprId,
        param: ParamId,
        index: &Index,
        stride: Option<i64>,
    ) -> Result<Value> {
        let mut lanes = Vec::new();
        match stride {
            Some(st) if self.params[param.index()].dtype == DType::F32 && st.abs() < 1 << 20 => {
                let i = self.load_index(e, index, 0)?;
                let a = self.addr(param, i);
                for lane in 0..4 {
                    let off = (lane * st * 4) as i32;
                    lanes.push(self.b.ins().load(F32, trusted(), a, off));
                }
            }
            _ => {
                for lane in 0..4 {
                    let i = self.load_index(e, index, lane)?;
                    lanes.push(self.load_scalar(param, i));
                }
            }
        }
        Ok(self.pack_f(&lanes))
    }

    fn atom(&mut self, a: &Atom, lane: i64) -> Result<Value> {
        Ok(match a {
            Atom::Var(v, _) => self.var_value(*v, lane),
            Atom::Div(e, d) => {
                let x = self.index(e, lane)?;
                let dv = self.b.ins().iconst(I64, *d);
                self.b.ins().udiv(x, dv)
            }
            Atom::Mod(e, d) => {
                let x = self.index(e, lane)?;
                let dv = self.b.ins().iconst(I64, *d);
                self.b.ins().urem(x, dv)
            }
            Atom::Value(x, _) => match self.cache[(*x).index()] {
                Some(Val::S(v)) => v,
                Some(Val::V(_)) => {
                    return Err(KernelError::NotVectorizable {
                        expr: *x,
                        what: "a gathered index",
                    });
                }
                None => {
                    return Err(KernelError::Invariant(format!(
                        "index value {x} is read before it is computed"
                    )));
                }
            },
        })
    }

    fn index(&mut self, i: &Index, lane: i64) -> Result<Value> {
        let c = self.b.ins().iconst(I64, i.constant_part());
        self.add_terms(c, i, lane, &|_, _| true)
    }

    /// `acc` plus the terms of `i` that `pick` selects, at `lane`.
    fn add_terms(
        &mut self,
        mut acc: Value,
        i: &Index,
        lane: i64,
        pick: &dyn Fn(&Self, &Atom) -> bool,
    ) -> Result<Value> {
        for (a, c) in i.terms() {
            if !pick(self, a) {
                continue;
            }
            let v = self.atom(a, lane)?;
            let t = if *c == 1 {
                v
            } else {
                self.b.ins().imul_imm_s(v, *c)
            };
            acc = self.b.ins().iadd(acc, t);
        }
        Ok(acc)
    }

    fn addr(&mut self, param: ParamId, idx: Value) -> Value {
        let size = self.params[param.index()].dtype.size_bytes() as i64;
        let off = if size == 1 {
            idx
        } else {
            self.b.ins().imul_imm_s(idx, size)
        };
        let base = self.ptrs[param.index()]
            .expect("invariant: the entry block loads every parameter pointer");
        self.b.ins().iadd(base, off)
    }

    fn call(&mut self, name: &str, args: &[Value]) -> Value {
        let f = self.helpers[name];
        let inst = self.b.ins().call(f, args);
        self.b.inst_results(inst)[0]
    }

    /// Scalar load of element `idx` of `param`, converted to the compute type.
    fn load_scalar(&mut self, param: ParamId, idx: Value) -> Value {
        let a = self.addr(param, idx);
        let b = &mut self.b;
        match self.params[param.index()].dtype {
            DType::F32 => b.ins().load(F32, trusted(), a, 0),
            DType::F64 => b.ins().load(F64, trusted(), a, 0),
            DType::F16 => {
                let bits = b.ins().uload16(I32, trusted(), a, 0);
                self.call("tessera_f16_to_f32", &[bits])
            }
            DType::BF16 => {
                let bits = b.ins().uload16(I32, trusted(), a, 0);
                let sh = b.ins().ishl_imm_u(bits, 16);
                b.ins().bitcast(F32, MemFlagsData::new(), sh)
            }
            DType::I8 => b.ins().sload8(I64, trusted(), a, 0),
            DType::U8 => b.ins().uload8(I64, trusted(), a, 0),
            DType::I16 => b.ins().sload16(I64, trusted(), a, 0),
            DType::U16 => b.ins().uload16(I64, trusted(), a, 0),
            DType::I32 => b.ins().sload32(trusted(), a, 0),
            DType::U32 => b.ins().uload32(trusted(), a, 0),
            DType::I64 | DType::U64 => b.ins().load(I64, trusted(), a, 0),
            DType::Bool => b.ins().load(I8, trusted(), a, 0),
        }
    }

    fn store_scalar(&mut self, param: ParamId, idx: Value, v: Value) {
        let a = self.addr(param, idx);
        match self.params[param.index()].dtype {
            DType::F32 | DType::F64 | DType::I64 | DType::U64 | DType::Bool => {
                self.b.ins().store(trusted(), v, a, 0);
            }
            DType::F16 => {
                let bits = self.call("tessera_f32_to_f16", &[v]);
                self.b.ins().istore16(trusted(), bits, a, 0);
            }
            DType::BF16 => {
                let bits = self.call("tessera_f32_to_bf16", &[v]);
                self.b.ins().istore16(trusted(), bits, a, 0);
            }
            DType::I8 | DType::U8 => {
                self.b.ins().istore8(trusted(), v, a, 0);
            }
            DType::I16 | DType::U16 => {
                self.b.ins().istore16(trusted(), v, a, 0);
            }
            DType::I32 | DType::U32 => {
                self.b.ins().istore32(trusted(), v, a, 0);
            }
        }
    }

    fn lit(&mut self, l: Lit, dtype: DType) -> Value {
        match ct(dtype) {
            F32 => {
                let v = l.as_f64();
                let v = match dtype {
                    DType::F16 => half::f16::from_f64(v).to_f64(),
                    DType::BF16 => half::bf16::from_f64(v).to_f64(),
                    _ => v,
                };
                self.b.ins().f32const(v as f32)
            }
            F64 => self.b.ins().f64const(l.as_f64()),
            I8 => self.b.ins().iconst(I8, (l.as_i64() != 0) as i64),
            _ => self.b.ins().iconst(I64, l.as_i64()),
        }
    }

    fn splat_f(&mut self, v: Val) -> Value {
        match v {
            Val::V(x) => x,
            Val::S(x) => self.b.ins().splat(F32X4, x),
        }
    }

    /// A value as an i32x4 lane mask (from a vector mask or a scalar bool).
    fn mask(&mut self, v: Val) -> Value {
        match v {
            Val::V(x) => x,
            Val::S(x) => {
                let m1 = self.b.ins().iconst(I32, -1);
                let z = self.b.ins().iconst(I32, 0);
                let s = self.b.ins().select(x, m1, z);
                self.b.ins().splat(I32X4, s)
            }
        }
    }

    /// Vector max (`cc` = greater than) or min (less than) with ONNX's NaN rule (a NaN
    /// operand gives NaN): `x cc y ? x : y`, which is `y` when either is NaN, then `x`
    /// where `x` is NaN. Two compares and two blends; Cranelift's `fmax`/`fmin` also order
    /// signed zeros and cost about five times as many instructions on x64 (the HardSwish
    /// epilogue of a stem convolution took as long as the convolution). The sign of a zero
    /// result is unspecified, as for the reference interpreter.
    fn vminmax(&mut self, cc: FloatCC, x: Value, y: Value) -> Value {
        let pick_x = self.b.ins().fcmp(cc, x, y);
        let m = self.vselect(pick_x, x, y);
        let x_nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
        self.vselect(x_nan, x, m)
    }

    fn vselect(&mut self, m: Value, a: Value, b: Value) -> Value {
        let mf = self.b.ins().bitcast(F32X4, vflags(), m);
        self.b.ins().bitselect(mf, a, b)
    }

    fn get(&mut self, e: ExprId) -> Result<Val> {
        match self.cache[e.index()] {
            Some(v) => Ok(v),
            None => self.emit(e),
        }
    }

    fn scalar(&mut self, e: ExprId) -> Result<Value> {
        match self.get(e)? {
            Val::S(v) => Ok(v),
            Val::V(_) => Err(KernelError::NotVectorizable {
                expr: e,
                what: "an operand of scalar code",
            }),
        }
    }

    fn math(&mut self, vector: bool) -> Math<'_, 'b> {
        Math {
            b: self.b,
            vector,
            fma: self.fma,
        }
    }

    /// The guards that must still be checked (all but the column guards in the interior).
    fn live(&self, gs: &[Guard]) -> Vec<Guard> {
        match (self.interior, self.vec_var) {
            (true, Some(vv)) => gs
                .iter()
                .filter(|g| column_guard(g, vv).is_none())
                .cloned()
                .collect(),
            _ => gs.to_vec(),
        }
    }

    /// Guards as a scalar bool for one lane.
    fn guards(&mut self, gs: &[Guard], lane: i64) -> Result<Value> {
        let gs = self.live(gs);
        let mut acc = self.b.ins().iconst(I8, 1);
        for g in &gs {
            let i = self.index(&g.index, lane)?;
            let d = self.b.ins().iadd_imm_s(i, -g.lo);
            let ok = self
                .b
                .ins()
                .icmp_imm_u(IntCC::UnsignedLessThan, d, g.hi - g.lo);
            acc = self.b.ins().band(acc, ok);
        }
        Ok(acc)
    }

    fn emit(&mut self, e: ExprId) -> Result<Val> {
        let expr = self.nest.exprs[e.index()].clone();
        let vector = self.is_vec(e);
        let v = if vector {
            Val::V(self.emit_vector(e, &expr)?)
        } else {
            Val::S(self.emit_scalar(e, &expr)?)
        };
        self.cache[e.index()] = Some(v);
        Ok(v)
    }

    /// The vector loop's variable.
    fn vector_var(&self) -> Var {
        self.vec_var
            .expect("invariant: vector code is emitted only in vectorized nests")
    }

    /// Expression `e` (`expr`), which varies along the vector loop, as a vector: f32x4,
    /// or an i32x4 lane mask for bools.
    fn emit_vector(&mut self, e: ExprId, expr: &Expr) -> Result<Value> {
        Ok(match &expr.op {
            ExprOp::Load { param, index } => self.vector_load(e, *param, index)?,
            ExprOp::LoadIf {
                param,
                index,
                guards,
                default,
            } => self.vector_load_if(e, expr.dtype, *param, index, guards, *default)?,
            ExprOp::InRange(gs) => self.vector_in_range(gs)?,
            ExprOp::Unary(u, a) => self.vector_unary(*u, *a)?,
            ExprOp::Binary(op, a, b) => self.vector_binary(*op, *a, *b)?,
            ExprOp::Select(c, a, b) => {
                let cv = self.get(*c)?;
                let m = self.mask(cv);
                let (av, bv) = (self.get(*a)?, self.get(*b)?);
                let (x, y) = (self.splat_f(av), self.splat_f(bv));
                self.vselect(m, x, y)
            }
            ExprOp::Acc { .. } => {
                return Err(KernelError::Invariant(format!(
                    "accumulator {e} is read before its phase"
                )));
            }
            op => {
                return Err(KernelError::NotVectorizable {
                    expr: e,
                    what: op.name(),
                });
            }
        })
    }

    /// Load `e`: four lanes of f32 `param` at `index`, one vector load where `index` is
    /// contiguous along the vector loop.
    fn vector_load(&mut self, e: ExprId, param: ParamId, index: &Index) -> Result<Value> {
        let stride = index.stride_of(self.vector_var());
        if stride == Some(1) {
            let i = self.load_index(e, index, 0)?;
            let a = self.addr(param, i);
            Ok(self.b.ins().load(F32X4, trusted(), a, 0))
        } else {
            self.lanes_f32(e, param, index, stride)
        }
    }

    /// Guarded load `e` of `dtype`: unguarded in a window's interior, else per lane, or
    /// (guards affine along the vector loop) one branch on the first and last lanes.
    fn vector_load_if(
        &mut self,
        e: ExprId,
        dtype: DType,
        param: ParamId,
        index: &Index,
        guards: &[Guard],
        default: Lit,
    ) -> Result<Value> {
        let vv = self.vector_var();
        let fast =
            index.stride_of(vv).is_some() && guards.iter().all(|g| g.index.stride_of(vv).is_some());
        let slow = |l: &mut Self| -> Result<Value> {
            let mut lanes = Vec::new();
            for lane in 0..4 {
                let ok = l.guards(guards, lane)?;
                let i = l.load_index(e, index, lane)?;
                let z = l.b.ins().iconst(I64, 0);
                let safe = l.b.ins().select(ok, i, z);
                let x = l.load_scalar(param, safe);
                let d = l.lit(default, dtype);
                lanes.push(l.b.ins().select(ok, x, d));
            }
            Ok(l.pack_f(&lanes))
        };
        if fast && self.live(guards).is_empty() {
            // The interior of a window: every guard is known to hold.
            return self.vector_load(e, param, index);
        }
        if !fast {
            return slow(self);
        }
        // Guards affine along the vector loop hold on an interval of lanes: when the
        // first and the last lane pass, all do, and the load is unguarded.
        self.branch_lanes(
            guards,
            F32X4,
            &mut |l| l.vector_load(e, param, index),
            &mut |l| slow(l),
        )
    }

    /// `in_range` of guards `gs` as a lane mask.
    fn vector_in_range(&mut self, gs: &[Guard]) -> Result<Value> {
        let per_lane = |l: &mut Self| -> Result<Value> {
            let mut lanes = Vec::new();
            for lane in 0..4 {
                let ok = l.guards(gs, lane)?;
                let m1 = l.b.ins().iconst(I32, -1);
                let z = l.b.ins().iconst(I32, 0);
                lanes.push(l.b.ins().select(ok, m1, z));
            }
            let mut v = l.b.ins().splat(I32X4, lanes[0]);
            for (k, x) in lanes.iter().enumerate().skip(1) {
                v = l.b.ins().insertlane(v, *x, k as u8);
            }
            Ok(v)
        };
        let vv = self.vector_var();
        if self.live(gs).is_empty() {
            let m1 = self.b.ins().iconst(I32, -1);
            Ok(self.b.ins().splat(I32X4, m1))
        } else if gs.iter().all(|g| g.index.stride_of(vv).is_some()) {
            self.branch_lanes(
                gs,
                I32X4,
                &mut |l| {
                    let m1 = l.b.ins().iconst(I32, -1);
                    Ok(l.b.ins().splat(I32X4, m1))
                },
                &mut |l| per_lane(l),
            )
        } else {
            per_lane(self)
        }
    }

    /// `u` of operand `a` along the vector loop.
    fn vector_unary(&mut self, u: UnaryOp, a: ExprId) -> Result<Value> {
        let av = self.get(a)?;
        Ok(if u == UnaryOp::Not {
            let m = self.mask(av);
            self.b.ins().bnot(m)
        } else if matches!(u, UnaryOp::IsNaN | UnaryOp::IsInf) {
            let x = self.splat_f(av);
            if u == UnaryOp::IsNaN {
                self.b.ins().fcmp(FloatCC::Unordered, x, x)
            } else {
                let ab = self.b.ins().fabs(x);
                let s = self.b.ins().f32const(f32::INFINITY);
                let inf = self.b.ins().splat(F32X4, s);
                self.b.ins().fcmp(FloatCC::Equal, ab, inf)
            }
        } else {
            let x = self.splat_f(av);
            self.unary_f32(u, x, true)?
        })
    }

    /// `op` of operands `a`, `b` along the vector loop: logic on lane masks, the rest on
    /// f32x4 (a scalar exponent of another dtype converted first).
    fn vector_binary(&mut self, op: BinaryOp, a: ExprId, b: ExprId) -> Result<Value> {
        let (av, bv) = (self.get(a)?, self.get(b)?);
        if let BinaryOp::And | BinaryOp::Or | BinaryOp::Xor = op {
            let (x, y) = (self.mask(av), self.mask(bv));
            return Ok(match op {
                BinaryOp::And => self.b.ins().band(x, y),
                BinaryOp::Or => self.b.ins().bor(x, y),
                _ => self.b.ins().bxor(x, y),
            });
        }
        let x = self.splat_f(av);
        let bdt = self.nest.exprs[b.index()].dtype;
        let y = match bv {
            Val::S(s) if bdt != DType::F32 => {
                let f = self.f32_of(s, bdt);
                self.b.ins().splat(F32X4, f)
            }
            other => self.splat_f(other),
        };
        self.binary_f32_vec(op, x, y)
    }

    /// `if guards hold for lanes 0 and 3 { fast } else { slow }`, both producing a value
    /// of type `ty`.
    fn branch_lanes(
        &mut self,
        guards: &[Guard],
        ty: Type,
        fast: &mut dyn FnMut(&mut Self) -> Result<Value>,
        slow: &mut dyn FnMut(&mut Self) -> Result<Value>,
    ) -> Result<Value> {
        let first = self.guards(guards, 0)?;
        let last = self.guards(guards, 3)?;
        let all = self.b.ins().band(first, last);
        let fast_blk = self.b.create_block();
        let slow_blk = self.b.create_block();
        let merge = self.b.create_block();
        self.b.append_block_param(merge, ty);
        self.b.ins().brif(all, fast_blk, &[], slow_blk, &[]);
        self.b.switch_to_block(fast_blk);
        let v = fast(self)?;
        self.b.ins().jump(merge, &[v.into()]);
        self.b.switch_to_block(slow_blk);
        let v = slow(self)?;
        self.b.ins().jump(merge, &[v.into()]);
        self.b.switch_to_block(merge);
        Ok(self.b.block_params(merge)[0])
    }

    fn pack_f(&mut self, lanes: &[Value]) -> Value {
        let mut v = self.b.ins().splat(F32X4, lanes[0]);
        for (l, x) in lanes.iter().enumerate().skip(1) {
            v = self.b.ins().insertlane(v, *x, l as u8);
        }
        v
    }

    fn f32_of(&mut self, v: Value, dtype: DType) -> Value {
        match ct(dtype) {
            F32 => v,
            F64 => self.b.ins().fdemote(F32, v),
            _ => self.b.ins().fcvt_from_sint(F32, v),
        }
    }

    /// Per-lane helper call on an f32x4.
    fn per_lane(&mut self, name: &str, xs: &[Value]) -> Value {
        let mut lanes = Vec::new();
        for l in 0..4u8 {
            let args: Vec<Value> = xs.iter().map(|&x| self.b.ins().extractlane(x, l)).collect();
            lanes.push(self.call(name, &args));
        }
        self.pack_f(&lanes)
    }

    fn unary_f32(&mut self, u: UnaryOp, x: Value, vector: bool) -> Result<Value> {
        let ty = if vector { F32X4 } else { F32 };
        let c = |l: &mut Self, v: f32| {
            let s = l.b.ins().f32const(v);
            if vector { l.b.ins().splat(F32X4, s) } else { s }
        };
        let _ = ty;
        Ok(match u {
            UnaryOp::Neg => self.b.ins().fneg(x),
            UnaryOp::Abs => self.b.ins().fabs(x),
            UnaryOp::Sign => {
                let z = c(self, 0.0);
                let one = c(self, 1.0);
                let m1 = c(self, -1.0);
                let mut m = self.math(vector);
                let pos = m.fcmp(FloatCC::GreaterThan, x, z);
                let neg = m.fcmp(FloatCC::LessThan, x, z);
                let t = m.select(neg, m1, x);
                m.select(pos, one, t)
            }
            UnaryOp::Relu => {
                // x < 0 ? 0 : x — NaN stays NaN; -0 stays -0 (== 0). IEEE fmax costs ~8
                // instructions per vector on x86.
                let z = c(self, 0.0);
                let mut m = self.math(vector);
                let neg = m.fcmp(FloatCC::LessThan, x, z);
                m.select(neg, z, x)
            }
            UnaryOp::Exp => self.math(vector).exp(x),
            UnaryOp::Log => self.math(vector).log(x),
            UnaryOp::Tanh => self.math(vector).tanh(x),
            UnaryOp::Sigmoid => self.math(vector).sigmoid(x),
            UnaryOp::Erf => self.math(vector).erf(x),
            UnaryOp::Sqrt => self.b.ins().sqrt(x),
            UnaryOp::Reciprocal => {
                let one = c(self, 1.0);
                self.b.ins().fdiv(one, x)
            }
            UnaryOp::Floor => self.b.ins().floor(x),
            UnaryOp::Ceil => self.b.ins().ceil(x),
            UnaryOp::Round => self.b.ins().nearest(x),
            UnaryOp::Softplus | UnaryOp::Sin | UnaryOp::Cos => {
                let name = match u {
                    UnaryOp::Softplus => "tessera_softplus_f32",
                    UnaryOp::Sin => "tessera_sin_f32",
                    _ => "tessera_cos_f32",
                };
                if vector {
                    self.per_lane(name, &[x])
                } else {
                    self.call(name, &[x])
                }
            }
            UnaryOp::Not | UnaryOp::IsNaN | UnaryOp::IsInf => {
                return Err(KernelError::Unsupported {
                    op: u.name(),
                    dtype: DType::F32,
                });
            }
        })
    }

    fn binary_f32_vec(&mut self, op: BinaryOp, x: Value, y: Value) -> Result<Value> {
        Ok(match op {
            BinaryOp::Add => self.b.ins().fadd(x, y),
            BinaryOp::Sub => self.b.ins().fsub(x, y),
            BinaryOp::Mul => self.b.ins().fmul(x, y),
            BinaryOp::Div => self.b.ins().fdiv(x, y),
            BinaryOp::Max => self.vminmax(FloatCC::GreaterThan, x, y),
            BinaryOp::Min => self.vminmax(FloatCC::LessThan, x, y),
            BinaryOp::Pow => self.per_lane("tessera_pow_f32", &[x, y]),
            BinaryOp::Equal => self.b.ins().fcmp(FloatCC::Equal, x, y),
            BinaryOp::Less => self.b.ins().fcmp(FloatCC::LessThan, x, y),
            BinaryOp::LessOrEqual => self.b.ins().fcmp(FloatCC::LessThanOrEqual, x, y),
            BinaryOp::Greater => self.b.ins().fcmp(FloatCC::GreaterThan, x, y),
            BinaryOp::GreaterOrEqual => self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, x, y),
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => {
                return Err(KernelError::Unsupported {
                    op: op.name(),
                    dtype: DType::F32,
                });
            }
        })
    }

    fn emit_scalar(&mut self, e: ExprId, expr: &Expr) -> Result<Value> {
        let dt = expr.dtype;
        let v = match &expr.op {
            ExprOp::Lit(l) => return Ok(self.lit(*l, dt)),
            ExprOp::Load { param, index } => {
                let i = self.load_index(e, index, 0)?;
                return Ok(self.load_scalar(*param, i));
            }
            ExprOp::LoadIf {
                param,
                index,
                guards,
                default,
            } => {
                if self.live(guards).is_empty() {
                    let i = self.load_index(e, index, 0)?;
                    return Ok(self.load_scalar(*param, i));
                }
                let ok = self.guards(guards, 0)?;
                let i = self.load_index(e, index, 0)?;
                let z = self.b.ins().iconst(I64, 0);
                let safe = self.b.ins().select(ok, i, z);
                let x = self.load_scalar(*param, safe);
                let d = self.lit(*default, dt);
                return Ok(self.b.ins().select(ok, x, d));
            }
            ExprOp::InRange(gs) => return self.guards(gs, 0),
            ExprOp::IndexValue(i) => return self.index(i, 0),
            ExprOp::CheckIndex { value, dim } => {
                let v = self.scalar(*value)?;
                let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, v, 0);
                let w = self.b.ins().iadd_imm_s(v, *dim);
                let w = self.b.ins().select(neg, w, v);
                let oob = self
                    .b
                    .ins()
                    .icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, w, *dim);
                self.flag(oob, STATUS_INDEX_OUT_OF_RANGE);
                let z = self.b.ins().iconst(I64, 0);
                return Ok(self.b.ins().select(oob, z, w));
            }
            ExprOp::Acc { .. } => {
                return Err(KernelError::Invariant(format!(
                    "accumulator {e} is read before its phase"
                )));
            }
            ExprOp::Unary(u, a) => {
                let adt = self.nest.exprs[(*a).index()].dtype;
                let x = self.scalar(*a)?;
                self.unary_scalar(*u, x, adt)?
            }
            ExprOp::Binary(op, a, b) => {
                let (adt, bdt) = (
                    self.nest.exprs[(*a).index()].dtype,
                    self.nest.exprs[(*b).index()].dtype,
                );
                let x = self.scalar(*a)?;
                let y = self.scalar(*b)?;
                self.binary_scalar(*op, x, adt, y, bdt, dt)?
            }
            ExprOp::Select(c, a, b) => {
                let cv = self.scalar(*c)?;
                let x = self.scalar(*a)?;
                let y = self.scalar(*b)?;
                return Ok(self.b.ins().select(cv, x, y));
            }
            ExprOp::Cast(a) => {
                let from = self.nest.exprs[(*a).index()].dtype;
                let x = self.scalar(*a)?;
                self.cast(x, from, dt)
            }
        };
        Ok(self.round_half(v, dt))
    }

    /// Rounds an f32 compute value to f16/bf16 precision when that is its dtype.
    fn round_half(&mut self, v: Value, dt: DType) -> Value {
        match dt {
            DType::F16 => self.call("tessera_round_f16", &[v]),
            DType::BF16 => self.call("tessera_round_bf16", &[v]),
            _ => v,
        }
    }

    fn flag(&mut self, cond: Value, code: u64) {
        let c = self.b.ins().uextend(I64, cond);
        let m = self.b.ins().imul_imm_s(c, code as i64);
        let e = self.b.use_var(self.err);
        let e = self.b.ins().bor(e, m);
        self.b.def_var(self.err, e);
    }

    fn unary_scalar(&mut self, u: UnaryOp, x: Value, dt: DType) -> Result<Value> {
        Ok(match ct(dt) {
            F32 => match u {
                UnaryOp::IsNaN => self.b.ins().fcmp(FloatCC::Unordered, x, x),
                UnaryOp::IsInf => {
                    let a = self.b.ins().fabs(x);
                    let inf = self.b.ins().f32const(f32::INFINITY);
                    self.b.ins().fcmp(FloatCC::Equal, a, inf)
                }
                _ => self.unary_f32(u, x, false)?,
            },
            F64 => {
                let c = |l: &mut Self, v: f64| l.b.ins().f64const(v);
                match u {
                    UnaryOp::Neg => self.b.ins().fneg(x),
                    UnaryOp::Abs => self.b.ins().fabs(x),
                    UnaryOp::Sign => {
                        let z = c(self, 0.0);
                        let one = c(self, 1.0);
                        let m1 = c(self, -1.0);
                        let pos = self.b.ins().fcmp(FloatCC::GreaterThan, x, z);
                        let neg = self.b.ins().fcmp(FloatCC::LessThan, x, z);
                        let t = self.b.ins().select(neg, m1, x);
                        self.b.ins().select(pos, one, t)
                    }
                    UnaryOp::Relu => {
                        let z = c(self, 0.0);
                        self.b.ins().fmax(x, z)
                    }
                    UnaryOp::Sqrt => self.b.ins().sqrt(x),
                    UnaryOp::Reciprocal => {
                        let one = c(self, 1.0);
                        self.b.ins().fdiv(one, x)
                    }
                    UnaryOp::Floor => self.b.ins().floor(x),
                    UnaryOp::Ceil => self.b.ins().ceil(x),
                    UnaryOp::Round => self.b.ins().nearest(x),
                    UnaryOp::IsNaN => self.b.ins().fcmp(FloatCC::Unordered, x, x),
                    UnaryOp::IsInf => {
                        let a = self.b.ins().fabs(x);
                        let inf = c(self, f64::INFINITY);
                        self.b.ins().fcmp(FloatCC::Equal, a, inf)
                    }
                    UnaryOp::Exp => self.call("tessera_exp_f64", &[x]),
                    UnaryOp::Log => self.call("tessera_log_f64", &[x]),
                    UnaryOp::Tanh => self.call("tessera_tanh_f64", &[x]),
                    UnaryOp::Erf => self.call("tessera_erf_f64", &[x]),
                    UnaryOp::Sigmoid => self.call("tessera_sigmoid_f64", &[x]),
                    UnaryOp::Softplus => self.call("tessera_softplus_f64", &[x]),
                    UnaryOp::Sin => self.call("tessera_sin_f64", &[x]),
                    UnaryOp::Cos => self.call("tessera_cos_f64", &[x]),
                    UnaryOp::Not => return Err(unsupported(u.name(), dt)),
                }
            }
            I8 => match u {
                UnaryOp::Not => self.b.ins().bxor_imm_s(x, 1),
                _ => return Err(unsupported(u.name(), dt)),
            },
            _ => match u {
                UnaryOp::Neg => self.b.ins().ineg(x),
                UnaryOp::Abs => self.b.ins().iabs(x),
                UnaryOp::Sign => {
                    let one = self.b.ins().iconst(I64, 1);
                    let m1 = self.b.ins().iconst(I64, -1);
                    let z = self.b.ins().iconst(I64, 0);
                    let pos = self.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, x, 0);
                    let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
                    let t = self.b.ins().select(neg, m1, z);
                    self.b.ins().select(pos, one, t)
                }
                UnaryOp::Relu => {
                    let z = self.b.ins().iconst(I64, 0);
                    self.b.ins().smax(x, z)
                }
                _ => return Err(unsupported(u.name(), dt)),
            },
        })
    }

    fn binary_scalar(
        &mut self,
        op: BinaryOp,
        x: Value,
        xdt: DType,
        y: Value,
        ydt: DType,
        out: DType,
    ) -> Result<Value> {
        let xt = ct(xdt);
        if xt == I8 {
            return Ok(match op {
                BinaryOp::And => self.b.ins().band(x, y),
                BinaryOp::Or => self.b.ins().bor(x, y),
                BinaryOp::Xor => self.b.ins().bxor(x, y),
                BinaryOp::Equal => self.b.ins().icmp(IntCC::Equal, x, y),
                _ => return Err(unsupported(op.name(), xdt)),
            });
        }
        if xt == F32 || xt == F64 {
            let y = if ct(ydt) == xt {
                y
            } else {
                // A pow exponent of another dtype.
                match ct(ydt) {
                    F32 => self.b.ins().fpromote(F64, y),
                    F64 => self.b.ins().fdemote(F32, y),
                    _ => self.b.ins().fcvt_from_sint(xt, y),
                }
            };
            return Ok(match op {
                BinaryOp::Add => self.b.ins().fadd(x, y),
                BinaryOp::Sub => self.b.ins().fsub(x, y),
                BinaryOp::Mul => self.b.ins().fmul(x, y),
                BinaryOp::Div => self.b.ins().fdiv(x, y),
                BinaryOp::Max => self.b.ins().fmax(x, y),
                BinaryOp::Min => self.b.ins().fmin(x, y),
                BinaryOp::Pow => {
                    if xt == F32 {
                        self.call("tessera_pow_f32", &[x, y])
                    } else {
                        self.call("tessera_pow_f64", &[x, y])
                    }
                }
                BinaryOp::Equal => self.b.ins().fcmp(FloatCC::Equal, x, y),
                BinaryOp::Less => self.b.ins().fcmp(FloatCC::LessThan, x, y),
                BinaryOp::LessOrEqual => self.b.ins().fcmp(FloatCC::LessThanOrEqual, x, y),
                BinaryOp::Greater => self.b.ins().fcmp(FloatCC::GreaterThan, x, y),
                BinaryOp::GreaterOrEqual => self.b.ins().fcmp(FloatCC::GreaterThanOrEqual, x, y),
                _ => return Err(unsupported(op.name(), xdt)),
            });
        }
        // Integers (i64).
        let unsigned = xdt == DType::U64;
        let cmp =
            |l: &mut Self, s: IntCC, u: IntCC| l.b.ins().icmp(if unsigned { u } else { s }, x, y);
        Ok(match op {
            BinaryOp::Add => self.b.ins().iadd(x, y),
            BinaryOp::Sub => self.b.ins().isub(x, y),
            BinaryOp::Mul => self.b.ins().imul(x, y),
            BinaryOp::Div => {
                let zero = self.b.ins().icmp_imm_s(IntCC::Equal, y, 0);
                self.flag(zero, STATUS_DIVISION_BY_ZERO);
                let m1 = self.b.ins().icmp_imm_s(IntCC::Equal, y, -1);
                let one = self.b.ins().iconst(I64, 1);
                let bad = self.b.ins().bor(zero, m1);
                let safe = self.b.ins().select(bad, one, y);
                let q = self.b.ins().sdiv(x, safe);
                let n = self.b.ins().ineg(x);
                let q = self.b.ins().select(m1, n, q);
                let z = self.b.ins().iconst(I64, 0);
                self.b.ins().select(zero, z, q)
            }
            BinaryOp::Pow => {
                if ct(ydt) == I64 {
                    self.call("tessera_pow_i64", &[x, y])
                } else {
                    let xf = self.b.ins().fcvt_from_sint(F64, x);
                    let yf = match ct(ydt) {
                        F32 => self.b.ins().fpromote(F64, y),
                        _ => y,
                    };
                    let p = self.call("tessera_pow_f64", &[xf, yf]);
                    return Ok(self.cast(p, DType::F64, out));
                }
            }
            BinaryOp::Max => self.b.ins().smax(x, y),
            BinaryOp::Min => self.b.ins().smin(x, y),
            BinaryOp::Equal => self.b.ins().icmp(IntCC::Equal, x, y),
            BinaryOp::Less => cmp(self, IntCC::SignedLessThan, IntCC::UnsignedLessThan),
            BinaryOp::LessOrEqual => cmp(
                self,
                IntCC::SignedLessThanOrEqual,
                IntCC::UnsignedLessThanOrEqual,
            ),
            BinaryOp::Greater => cmp(self, IntCC::SignedGreaterThan, IntCC::UnsignedGreaterThan),
            BinaryOp::GreaterOrEqual => cmp(
                self,
                IntCC::SignedGreaterThanOrEqual,
                IntCC::UnsignedGreaterThanOrEqual,
            ),
            _ => return Err(unsupported(op.name(), xdt)),
        })
    }

    /// ONNX `Cast` between compute values.
    fn cast(&mut self, x: Value, from: DType, to: DType) -> Value {
        let (ft, tt) = (ct(from), ct(to));
        let b = &mut self.b;
        let v = if from.is_float() {
            if to.is_float() {
                match (ft, tt) {
                    (F32, F64) => b.ins().fpromote(F64, x),
                    (F64, F32) => b.ins().fdemote(F32, x),
                    _ => x,
                }
            } else if to == DType::Bool {
                let z = if ft == F32 {
                    b.ins().f32const(0.0)
                } else {
                    b.ins().f64const(0.0)
                };
                b.ins().fcmp(FloatCC::NotEqual, x, z)
            } else {
                let xd = if ft == F32 {
                    b.ins().fpromote(F64, x)
                } else {
                    x
                };
                if to == DType::U64 {
                    b.ins().fcvt_to_uint_sat(I64, xd)
                } else {
                    let i = b.ins().fcvt_to_sint_sat(I64, xd);
                    let (lo, hi) = int_range(to);
                    let lo = b.ins().iconst(I64, lo);
                    let hi = b.ins().iconst(I64, hi);
                    let i = b.ins().smax(i, lo);
                    b.ins().smin(i, hi)
                }
            }
        } else {
            // From an integer or bool.
            let xi = if ft == I8 { b.ins().uextend(I64, x) } else { x };
            if to.is_float() {
                let d = if from == DType::U64 {
                    b.ins().fcvt_from_uint(F64, xi)
                } else {
                    b.ins().fcvt_from_sint(F64, xi)
                };
                if tt == F32 {
                    b.ins().fdemote(F32, d)
                } else {
                    d
                }
            } else if to == DType::Bool {
                b.ins().icmp_imm_s(IntCC::NotEqual, xi, 0)
            } else {
                wrap_int(b, xi, to)
            }
        };
        self.round_half(v, to)
    }

    fn stores(&mut self, stores: &[tessera_lower::kir::Store], _copy: Copy) -> Result<()> {
        for s in stores {
            let val = self.get(s.value)?;
            let vector_store = self.lanes == 4 && self.vec_var.is_some_and(|v| s.index.mentions(v))
                || matches!(val, Val::V(_));
            if vector_store {
                let vv = self.vector_var();
                let x = self.splat_f(val);
                if s.index.stride_of(vv) == Some(1) {
                    let i = self.index(&s.index, 0)?;
                    let a = self.addr(s.param, i);
                    self.b.ins().store(trusted(), x, a, 0);
                } else {
                    for l in 0..4 {
                        let i = self.index(&s.index, l)?;
                        let lane = self.b.ins().extractlane(x, l as u8);
                        self.store_scalar(s.param, i, lane);
                    }
                }
            } else {
                let Val::S(x) = val else {
                    unreachable!("vector values take the branch above")
                };
                let i = self.index(&s.index, 0)?;
                self.store_scalar(s.param, i, x);
            }
        }
        Ok(())
    }

    fn reduce_phase(
        &mut self,
        p: usize,
        rs: &[tessera_lower::kir::Reduction],
        needed: &[ExprId],
    ) -> Result<()> {
        let unroll = if self.vec_var.is_some_and(|v| matches!(v, Var::Inner(_))) {
            self.nest.hints.unroll.max(1) as usize
        } else {
            1
        };
        let inner_vec = matches!(self.vec_var, Some(Var::Inner(_)));
        let outer_vec = matches!(self.vec_var, Some(Var::Outer(_))) && self.lanes == 4;
        // Accumulators.
        let mut accs = Accs {
            vec: Vec::new(),
            scalar: Vec::new(),
            arg_state: Vec::new(),
        };
        for r in rs {
            let t = ct(r.dtype);
            let init = self.reduce_init(r.kind, r.dtype);
            let s = self.b.declare_var(if outer_vec { F32X4 } else { t });
            let iv = if outer_vec {
                self.b.ins().splat(F32X4, init)
            } else {
                init
            };
            self.b.def_var(s, iv);
            accs.scalar.push(s);
            let mut vs = Vec::new();
            if inner_vec {
                for _ in 0..unroll {
                    let v = self.b.declare_var(F32X4);
                    let iv = self.b.ins().splat(F32X4, init);
                    self.b.def_var(v, iv);
                    vs.push(v);
                }
            }
            accs.vec.push(vs);
            accs.arg_state
                .push(if let ReduceKind::ArgMax { .. } = r.kind {
                    let vt = ct(self.nest.exprs[r.value.index()].dtype);
                    let best = self.b.declare_var(vt);
                    let binit =
                        self.reduce_init(ReduceKind::Max, self.nest.exprs[r.value.index()].dtype);
                    self.b.def_var(best, binit);
                    let found = self.b.declare_var(I8);
                    let z = self.b.ins().iconst(I8, 0);
                    self.b.def_var(found, z);
                    Some((best, found))
                } else {
                    None
                });
        }
        let accs_ref = &accs;
        self.inner(0, needed, &mut |l, copy| l.accumulate(rs, accs_ref, copy))?;
        // Combine and bind the results.
        for (slot, r) in rs.iter().enumerate() {
            let mut result = self.b.use_var(accs.scalar[slot]);
            if inner_vec {
                let mut v = self.b.use_var(accs.vec[slot][0]);
                for u in 1..unroll {
                    let w = self.b.use_var(accs.vec[slot][u]);
                    v = self.combine(r.kind, r.dtype, v, w);
                }
                let mut h = self.b.ins().extractlane(v, 0);
                for l in 1..4u8 {
                    let x = self.b.ins().extractlane(v, l);
                    h = self.combine(r.kind, r.dtype, h, x);
                }
                result = self.combine(r.kind, r.dtype, h, result);
            }
            let acc_expr = self.nest.exprs.iter().position(|e| {
                e.op == ExprOp::Acc {
                    phase: p as u16,
                    slot: slot as u16,
                }
            });
            if let Some(a) = acc_expr {
                let result = self.materialize(result);
                self.cache[a] = Some(if outer_vec {
                    Val::V(result)
                } else {
                    Val::S(result)
                });
            }
        }
        Ok(())
    }

    /// Binds the results of a reduction over an empty inner space: the initial values.
    fn empty_reduction(&mut self, p: usize, rs: &[tessera_lower::kir::Reduction]) -> Result<()> {
        for (slot, r) in rs.iter().enumerate() {
            let v = self.reduce_init(r.kind, r.dtype);
            let outer_vec = matches!(self.vec_var, Some(Var::Outer(_))) && self.lanes == 4;
            let val = if outer_vec {
                if ct(r.dtype) != F32 {
                    return Err(KernelError::NotVectorizable {
                        expr: r.value,
                        what: "a reduction that does not accumulate f32",
                    });
                }
                Val::V(self.b.ins().splat(F32X4, v))
            } else {
                Val::S(v)
            };
            if let Some(a) = self.nest.exprs.iter().position(|e| {
                e.op == ExprOp::Acc {
                    phase: p as u16,
                    slot: slot as u16,
                }
            }) {
                self.cache[a] = Some(val);
            }
        }
        Ok(())
    }

    /// `v` through a stack slot. Reduction results are defined after their loop, but
    /// Cranelift's code placement would otherwise recompute pure uses of them (horizontal
    /// combines) inside the next phase's loop; a load stays where it is emitted.
    fn materialize(&mut self, v: Value) -> Value {
        let ty = self.b.func.dfg.value_type(v);
        let slot = self
            .b
            .create_sized_stack_slot(cranelift_codegen::ir::StackSlotData::new(
                cranelift_codegen::ir::StackSlotKind::ExplicitSlot,
                ty.bytes(),
                4,
            ));
        self.b.ins().stack_store(I64, v, slot, 0);
        self.b.ins().stack_load(I64, ty, slot, 0)
    }

    fn reduce_init(&mut self, kind: ReduceKind, dtype: DType) -> Value {
        let t = ct(dtype);
        match (kind, t) {
            (ReduceKind::ArgMax { .. }, _) => self.b.ins().iconst(I64, 0),
            (ReduceKind::Sum, F32) => self.b.ins().f32const(0.0),
            (ReduceKind::Sum, F64) => self.b.ins().f64const(0.0),
            (ReduceKind::Prod, F32) => self.b.ins().f32const(1.0),
            (ReduceKind::Prod, F64) => self.b.ins().f64const(1.0),
            (ReduceKind::Max, F32) => self.b.ins().f32const(f32::NEG_INFINITY),
            (ReduceKind::Max, F64) => self.b.ins().f64const(f64::NEG_INFINITY),
            (ReduceKind::Min, F32) => self.b.ins().f32const(f32::INFINITY),
            (ReduceKind::Min, F64) => self.b.ins().f64const(f64::INFINITY),
            (ReduceKind::Max, I8) => self.b.ins().iconst(I8, 0),
            (ReduceKind::Min, I8) => self.b.ins().iconst(I8, 1),
            (ReduceKind::Sum, I8) => self.b.ins().iconst(I8, 0),
            (ReduceKind::Prod, I8) => self.b.ins().iconst(I8, 1),
            (ReduceKind::Sum, _) => self.b.ins().iconst(I64, 0),
            (ReduceKind::Prod, _) => self.b.ins().iconst(I64, 1),
            (ReduceKind::Max, _) => self.b.ins().iconst(I64, i64::MIN),
            (ReduceKind::Min, _) => self.b.ins().iconst(I64, i64::MAX),
        }
    }

    fn combine(&mut self, kind: ReduceKind, dtype: DType, a: Value, x: Value) -> Value {
        let t = ct(dtype);
        let float = t == F32 || t == F64;
        match kind {
            ReduceKind::Sum if float => self.b.ins().fadd(a, x),
            ReduceKind::Sum => self.b.ins().iadd(a, x),
            ReduceKind::Prod if float => self.b.ins().fmul(a, x),
            ReduceKind::Prod => self.b.ins().imul(a, x),
            ReduceKind::Max if float => self.b.ins().fmax(a, x),
            ReduceKind::Max if t == I8 => self.b.ins().bor(a, x),
            ReduceKind::Max => self.b.ins().smax(a, x),
            ReduceKind::Min if float => self.b.ins().fmin(a, x),
            ReduceKind::Min if t == I8 => self.b.ins().band(a, x),
            ReduceKind::Min => self.b.ins().smin(a, x),
            ReduceKind::ArgMax { .. } => a,
        }
    }

    fn accumulate(
        &mut self,
        rs: &[tessera_lower::kir::Reduction],
        accs: &Accs,
        copy: Copy,
    ) -> Result<()> {
        for (slot, r) in rs.iter().enumerate() {
            if let ReduceKind::ArgMax { arg } = r.kind {
                let (best, found) = accs.arg_state[slot]
                    .expect("invariant: every argmax accumulator has its state");
                let v = self.scalar(r.value)?;
                let a = self.scalar(arg)?;
                let m = match r.mask {
                    Some(m) => self.scalar(m)?,
                    None => self.b.ins().iconst(I8, 1),
                };
                let bv = self.b.use_var(best);
                let fv = self.b.use_var(found);
                let vdt = self.nest.exprs[r.value.index()].dtype;
                let better = if ct(vdt) == F32 || ct(vdt) == F64 {
                    let gt = self.b.ins().fcmp(FloatCC::GreaterThan, v, bv);
                    let vn = self.b.ins().fcmp(FloatCC::Unordered, v, v);
                    let bn = self.b.ins().fcmp(FloatCC::Unordered, bv, bv);
                    let nbn = self.b.ins().bxor_imm_s(bn, 1);
                    let nan_wins = self.b.ins().band(vn, nbn);
                    self.b.ins().bor(gt, nan_wins)
                } else {
                    self.b.ins().icmp(IntCC::SignedGreaterThan, v, bv)
                };
                let nf = self.b.ins().bxor_imm_s(fv, 1);
                let cand = self.b.ins().bor(nf, better);
                let take = self.b.ins().band(m, cand);
                let nb = self.b.ins().select(take, v, bv);
                self.b.def_var(best, nb);
                let iv = self.b.use_var(accs.scalar[slot]);
                let ni = self.b.ins().select(take, a, iv);
                self.b.def_var(accs.scalar[slot], ni);
                let nfv = self.b.ins().bor(fv, m);
                self.b.def_var(found, nfv);
                continue;
            }
            let val = self.get(r.value)?;
            // A mask that is the literal `true` (pools without padding) selects nothing.
            let always =
                |m: ExprId| matches!(self.nest.exprs[m.index()].op, ExprOp::Lit(Lit::B(true)));
            let mask = match r.mask {
                Some(m) if !always(m) => Some((m, self.get(m)?)),
                _ => None,
            };
            let var = match copy {
                Copy::Vector(u) if !accs.vec[slot].is_empty() => accs.vec[slot][u],
                _ => accs.scalar[slot],
            };
            let cur = self.b.use_var(var);
            let vector_acc = matches!(copy, Copy::Vector(_)) && !accs.vec[slot].is_empty()
                || (self.lanes == 4 && matches!(self.vec_var, Some(Var::Outer(_))));
            if vector_acc {
                let x = self.splat_f(val);
                let new = self.combine(r.kind, r.dtype, cur, x);
                let new = match mask {
                    Some((_, m)) => {
                        let mm = self.mask(m);
                        self.vselect(mm, new, cur)
                    }
                    None => new,
                };
                self.b.def_var(var, new);
            } else {
                let Val::S(x) = val else {
                    return Err(KernelError::NotVectorizable {
                        expr: r.value,
                        what: "the value of a scalar accumulator",
                    });
                };
                let new = self.combine(r.kind, r.dtype, cur, x);
                let new = match mask {
                    Some((_, Val::S(m))) => self.b.ins().select(m, new, cur),
                    Some((m, Val::V(_))) => {
                        return Err(KernelError::NotVectorizable {
                            expr: m,
                            what: "the mask of a scalar accumulator",
                        });
                    }
                    None => new,
                };
                self.b.def_var(var, new);
            }
        }
        Ok(())
    }
}

/// Which copy of the innermost loop body is being emitted.
#[derive(Clone, Copy, Debug)]
enum Copy {
    /// The loop is not vectorized.
    Single,
    /// Unrolled vector copy `u`.
    Vector(usize),
    /// The scalar tail of a vectorized loop.
    Tail,
}

fn unsupported(op: &'static str, dtype: DType) -> KernelError {
    KernelError::Unsupported { op, dtype }
}

fn int_range(d: DType) -> (i64, i64) {
    match d {
        DType::I8 => (i8::MIN as i64, i8::MAX as i64),
        DType::U8 => (0, u8::MAX as i64),
        DType::I16 => (i16::MIN as i64, i16::MAX as i64),
        DType::U16 => (0, u16::MAX as i64),
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        DType::U32 => (0, u32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    }
}

/// Two's-complement wrap of an i64 into `to`, re-extended to i64.
fn wrap_int(b: &mut FunctionBuilder, x: Value, to: DType) -> Value {
    match to {
        DType::I8 => {
            let r = b.ins().ireduce(I8, x);
            b.ins().sextend(I64, r)
        }
        DType::U8 => {
            let r = b.ins().ireduce(I8, x);
            b.ins().uextend(I64, r)
        }
        DType::I16 => {
            let r = b.ins().ireduce(I16, x);
            b.ins().sextend(I64, r)
        }
        DType::U16 => {
            let r = b.ins().ireduce(I16, x);
            b.ins().uextend(I64, r)
        }
        DType::I32 => {
            let r = b.ins().ireduce(I32, x);
            b.ins().sextend(I64, r)
        }
        DType::U32 => {
            let r = b.ins().ireduce(I32, x);
            b.ins().uextend(I64, r)
        }
        _ => x,
    }
}
