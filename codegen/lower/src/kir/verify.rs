//! The kernel IR verifier: [`verify`].
//!
//! The lowering driver runs it on every kernel the builder makes, before any backend sees
//! it, so a bad kernel is an error naming the kernel and its graph nodes, never a panic
//! deep in a code generator. A kernel that verifies satisfies these invariants:
//!
//! 1. **Parameters.** Every parameter id a kernel mentions (loads, stores, matrix views,
//!    accumulators, column buffers, in-place pairs) names one of its parameters. Loads
//!    read parameters whose access is `read` or `read_write`; stores write `write` or
//!    `read_write` ones; every `write` parameter is written by some store or body.
//! 2. **Expressions.** A nest's expressions form a DAG in topological order: every
//!    operand is an earlier expression. `acc` reads a slot of an earlier reduction phase.
//! 3. **Types.** A load has its parameter's dtype; arithmetic operands share the result's
//!    dtype (`pow`'s exponent excepted); comparisons, logic, `is_nan`, `is_inf` and
//!    `in_range` are bool, and so are select conditions and reduction masks; index values
//!    and checked gather indices are i64; reduction results have the reduction's dtype.
//! 4. **Indices.** Every loop variable an index mentions exists in the nest, with the
//!    nest's extent; every value atom names an earlier integer expression. Unguarded loads
//!    and all stores stay inside their parameter (`0 ≤ index < len` over the index's value
//!    range).
//! 5. **Phases.** Once-per-row stores (`looped: false`) do not depend on inner loops
//!    (through their values: checked once the nest's expressions verify).
//! 6. **Hints.** A vectorized nest has the loop it vectorizes and a width of at least 1.
//! 7. **Bodies.** GEMM, convolution and attention sizes match their parameters (the
//!    accumulator holds the whole result, the column buffer the whole im2col matrix), and
//!    their epilogue nests iterate over exactly the result's rows and columns.
//! 8. **In place.** An in-place pair reads a `read` parameter and writes a `write`
//!    parameter of the same length and element size.
//!
//! The verifier itself never panics, whatever ids a kernel holds.

use std::fmt;

use tessera_ir::{BinaryOp, DType, UnaryOp};

use super::{
    Access, Atom, Binding, Body, Expr, ExprId, ExprOp, Index, Kernel, Lit, MatView, Nest, ParamId,
    Phase, ReduceKind, Reduction, Store, Var, VectorAxis, var_deps,
};

/// One violated invariant: where in the kernel and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// `nest 0 e12`, `nest 1 phase 2`, `gemm acc`, `in_place`, ...
    pub at: String,
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Checks `k` against the invariants of this module; returns every violation found.
pub fn verify(k: &Kernel) -> Result<(), Vec<VerifyError>> {
    let mut v = Verifier {
        k,
        errors: Vec::new(),
        written: vec![false; k.params.len()],
    };
    match &k.body {
        Body::Loops(nests) => {
            for (i, n) in nests.iter().enumerate() {
                v.nest(&format!("nest {i}"), n);
            }
        }
        Body::Gemm(g) => {
            v.view("gemm a", &g.a, g.batch.len());
            v.view("gemm b", &g.b, g.batch.len());
            let nb: usize = g.batch.iter().product();
            v.result("gemm acc", g.acc, nb * g.m * g.n);
            if let Some(e) = &g.epilogue {
                v.rows("gemm epilogue", e, nb * g.m, g.n);
                v.nest("gemm epilogue", e);
            }
        }
        Body::Conv(c) => {
            v.param("conv x", c.x, Access::Read);
            v.param("conv w", c.w, Access::Read);
            if c.group == 0 || c.channels % c.group != 0 || c.out_channels % c.group != 0 {
                v.err(
                    "conv",
                    format!(
                        "{} input and {} output channels do not split into {} groups",
                        c.channels, c.out_channels, c.group
                    ),
                );
            }
            let rank = c.in_spatial.len();
            for (what, len) in [
                ("kernel", c.kernel.len()),
                ("output", c.out_spatial.len()),
                ("strides", c.strides.len()),
                ("dilations", c.dilations.len()),
                ("pads", c.pads_begin.len()),
            ] {
                if len != rank {
                    v.err("conv", format!("{what} has rank {len}, the input {rank}"));
                }
            }
            let p: usize = c.out_spatial.iter().product();
            v.result("conv acc", c.acc, c.batch * c.out_channels * p);
            if let Some(col) = c.col {
                let cg = c.channels / c.group.max(1);
                let kk = cg * c.kernel.iter().product::<usize>();
                v.param("conv col", col, Access::ReadWrite);
                v.len_at_least("conv col", col, kk * p);
            }
            if let Some(n) = &c.im2col {
                if c.col.is_none() {
                    v.err(
                        "conv im2col",
                        "an im2col nest without a column buffer".into(),
                    );
                }
                v.nest("conv im2col", n);
            }
            if let Some(e) = &c.epilogue {
                v.rows("conv epilogue", e, c.batch * c.out_channels, p);
                v.nest("conv epilogue", e);
            }
        }
        Body::Attention(a) => {
            let nb = a.batch.len();
            v.view("attention q", &a.q, nb);
            v.view("attention k", &a.k, nb);
            v.view("attention v", &a.v, nb);
            if let Some(m) = &a.mask {
                v.view("attention mask", m, nb);
            }
            let b: usize = a.batch.iter().product();
            v.result("attention out", a.out, b * a.s * a.e);
            if a.block_q == 0 || a.block_k == 0 {
                v.err("attention", "a block size of 0".into());
            }
        }
    }
    for &(i, o) in &k.in_place {
        let (Some(pi), Some(po)) = (k.params.get(i.index()), k.params.get(o.index())) else {
            v.err("in_place", format!("{i} -> {o} names a missing parameter"));
            continue;
        };
        if pi.access != Access::Read || po.access != Access::Write {
            v.err(
                "in_place",
                format!("{i} -> {o} must pair a read with a write"),
            );
        }
        if pi.len != po.len || pi.dtype.size_bytes() != po.dtype.size_bytes() {
            v.err("in_place", format!("{i} -> {o} differ in size"));
        }
    }
    for (i, p) in k.params.iter().enumerate() {
        if p.access == Access::Write && !v.written[i] && p.len > 0 {
            v.err(
                "params",
                format!("p{i} is write-only but nothing writes it"),
            );
        }
        if let (Binding::Scratch, Access::Read) = (p.binding, p.access) {
            v.err("params", format!("p{i} is read-only scratch"));
        }
    }
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(v.errors)
    }
}

struct Verifier<'k> {
    k: &'k Kernel,
    errors: Vec<VerifyError>,
    written: Vec<bool>,
}

fn is_int(d: DType) -> bool {
    !d.is_float() && d != DType::Bool
}

impl Verifier<'_> {
    fn err(&mut self, at: &str, message: String) {
        self.errors.push(VerifyError {
            at: at.to_string(),
            message,
        });
    }

    /// Checks that `p` exists and allows `access`; records writes.
    fn param(&mut self, at: &str, p: ParamId, access: Access) -> bool {
        let Some(param) = self.k.params.get(p.index()) else {
            self.err(at, format!("{p} is not a parameter"));
            return false;
        };
        let ok = match access {
            Access::Read => param.access != Access::Write,
            Access::Write => param.access != Access::Read,
            Access::ReadWrite => param.access == Access::ReadWrite,
        };
        if !ok {
            let (want, have) = (access.name(), param.access.name());
            self.err(at, format!("{p} is {have} but used as {want}"));
        }
        if access != Access::Read {
            self.written[p.index()] = true;
        }
        true
    }

    fn len_at_least(&mut self, at: &str, p: ParamId, len: usize) {
        if let Some(param) = self.k.params.get(p.index())
            && param.len < len
        {
            self.err(
                at,
                format!("{p} holds {} elements, {len} needed", param.len),
            );
        }
    }

    /// A whole-result parameter (GEMM accumulator, attention output).
    fn result(&mut self, at: &str, p: ParamId, len: usize) {
        if self.param(at, p, Access::Write) {
            self.len_at_least(at, p, len);
        }
    }

    fn view(&mut self, at: &str, m: &MatView, batch_rank: usize) {
        self.param(at, m.param, Access::Read);
        for (a, _) in m.batch_offset.terms() {
            if let Some(msg) = atom_error(a, &|v| match v {
                Var::Outer(i) if (i as usize) < batch_rank => None,
                _ => Some(format!("{v} is not a batch axis")),
            }) {
                self.err(at, msg);
            }
        }
    }

    /// An epilogue over `rows × cols` of a result.
    fn rows(&mut self, at: &str, n: &Nest, rows: usize, cols: usize) {
        if n.outer_points() != rows || n.inner != [cols] {
            self.err(
                at,
                format!(
                    "iterates {:?} × {:?}, the result is {rows} × [{cols}]",
                    n.outer, n.inner
                ),
            );
        }
    }

    /// A nest: its expressions (invariants 2–4), phases (1, 3, 5) and hints (6).
    fn nest(&mut self, at: &str, n: &Nest) {
        let before = self.errors.len();
        for i in 0..n.exprs.len() {
            self.expr(&format!("{at} e{i}"), n, i);
        }
        // `var_deps` walks operands and accumulators' reductions: only for a nest whose
        // expressions verified and whose reductions name existing expressions.
        let deps = (self.errors.len() == before && reductions_exist(n)).then(|| var_deps(n));
        for (p, ph) in n.phases.iter().enumerate() {
            let here = format!("{at} phase {p}");
            match ph {
                Phase::Reduce(rs) => self.reductions(&here, &n.exprs, rs),
                Phase::Store { looped, stores } => {
                    self.stores(&here, n, *looped, stores, deps.as_deref());
                }
            }
        }
        self.hints(at, n);
    }

    /// Records `message()` at `at` unless `ok`.
    fn want(&mut self, at: &str, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            self.err(at, message());
        }
    }

    /// Expression `i` of `n`: operands, types, parameters and indices.
    fn expr(&mut self, here: &str, n: &Nest, i: usize) {
        let exprs = &n.exprs;
        let e = &exprs[i];
        let dt = e.dtype;
        match &e.op {
            ExprOp::Lit(l) => {
                let ok = match l {
                    Lit::F(_) => dt.is_float(),
                    Lit::I(_) => is_int(dt),
                    Lit::B(_) => dt == DType::Bool,
                };
                self.want(here, ok, || format!("literal does not fit {dt}"));
            }
            ExprOp::Load { param, index } => {
                if self.load(here, *param, dt) {
                    self.in_bounds(here, *param, index);
                }
                self.index(here, n, i, "index", index);
            }
            ExprOp::LoadIf {
                param,
                index,
                guards,
                default: _,
            } => {
                self.load(here, *param, dt);
                self.index(here, n, i, "index", index);
                for g in guards {
                    self.index(here, n, i, "guard", &g.index);
                }
            }
            ExprOp::InRange(guards) => {
                self.want(here, dt == DType::Bool, || "in_range is not bool".into());
                for g in guards {
                    self.index(here, n, i, "guard", &g.index);
                }
            }
            ExprOp::Unary(u, a) => {
                if let Some([d]) = self.operands(here, exprs, i, [*a]) {
                    let ok = if u.is_predicate() {
                        dt == DType::Bool
                    } else {
                        dt == d && (*u != UnaryOp::Not || d == DType::Bool)
                    };
                    self.want(here, ok, || format!("{} of {d} cannot be {dt}", u.name()));
                }
            }
            ExprOp::Binary(b, x, y) => {
                if let Some([dx, dy]) = self.operands(here, exprs, i, [*x, *y]) {
                    let same = dx == dy || *b == BinaryOp::Pow;
                    let result = if b.is_predicate() {
                        dt == DType::Bool
                    } else {
                        dt == dx
                    };
                    self.want(here, same && result, || {
                        format!("{} of {dx} and {dy} cannot be {dt}", b.name())
                    });
                }
            }
            ExprOp::Select(c, a, b) => {
                if let Some([dc, da, db]) = self.operands(here, exprs, i, [*c, *a, *b]) {
                    let ok = dc == DType::Bool && da == dt && db == dt;
                    self.want(here, ok, || {
                        format!("select {dc} ? {da} : {db} cannot be {dt}")
                    });
                }
            }
            ExprOp::Cast(a) => {
                self.operands(here, exprs, i, [*a]);
            }
            ExprOp::Acc { phase, slot } => {
                let ok = matches!(
                    n.phases.get(*phase as usize),
                    Some(Phase::Reduce(rs)) if (*slot as usize) < rs.len()
                );
                self.want(here, ok, || {
                    format!("acc {phase}.{slot} names no reduction result")
                });
            }
            ExprOp::IndexValue(idx) => {
                self.want(here, dt == DType::I64, || "index value is not i64".into());
                self.index(here, n, i, "index", idx);
            }
            ExprOp::CheckIndex { value, dim: _ } => {
                if let Some([d]) = self.operands(here, exprs, i, [*value]) {
                    self.want(here, d == DType::I64 && dt == DType::I64, || {
                        format!("check_index of {d} cannot be {dt}")
                    });
                }
            }
        }
    }

    /// The dtypes of operands `xs` of expression `i`; records the first that does not
    /// precede it.
    fn operands<const N: usize>(
        &mut self,
        here: &str,
        exprs: &[Expr],
        i: usize,
        xs: [ExprId; N],
    ) -> Option<[DType; N]> {
        match xs.iter().find(|x| x.index() >= i) {
            Some(x) => {
                self.err(here, format!("operand {x} does not precede it"));
                None
            }
            None => Some(xs.map(|x| exprs[x.index()].dtype)),
        }
    }

    /// A load of `dtype` from `p`: `p` is readable and of that dtype. False if `p` is no
    /// parameter.
    fn load(&mut self, here: &str, p: ParamId, dtype: DType) -> bool {
        if !self.param(here, p, Access::Read) {
            return false;
        }
        let pd = self.k.params[p.index()].dtype;
        self.want(here, pd == dtype, || {
            format!("loads {dtype} from a {pd} parameter")
        });
        true
    }

    /// An index used by expression `i` of `n`: divisions by positive constants, loop
    /// variables of `n` with its extents, value atoms naming earlier integer expressions.
    fn index(&mut self, here: &str, n: &Nest, i: usize, what: &str, idx: &Index) {
        let var_ok = |v: Var, ext: i64| -> Option<String> {
            let extent = match v {
                Var::Outer(k) => n.outer.get(k as usize),
                Var::Inner(k) => n.inner.get(k as usize),
            };
            match extent {
                Some(&e) if e as i64 == ext => None,
                Some(e) => Some(format!("{v} has extent {ext}, the loop {e}")),
                None => Some(format!("{v} is not a loop of this nest")),
            }
        };
        for (a, _) in idx.terms() {
            let msg = atom_error(a, &|_| None)
                .or_else(|| index_vars_error(a, &var_ok))
                .or_else(|| value_atoms_error(a, i, &n.exprs));
            if let Some(m) = msg {
                self.err(here, format!("{what}: {m}"));
            }
        }
    }

    /// The accumulators of one reduction phase.
    fn reductions(&mut self, here: &str, exprs: &[Expr], rs: &[Reduction]) {
        let expr_at = |x: ExprId| x.index() < exprs.len();
        for r in rs {
            if !expr_at(r.value) {
                self.err(here, format!("reduces missing {}", r.value));
                continue;
            }
            let d = exprs[r.value.index()].dtype;
            match r.kind {
                ReduceKind::ArgMax { arg } => {
                    let ok = expr_at(arg)
                        && exprs[arg.index()].dtype == DType::I64
                        && r.dtype == DType::I64;
                    self.want(here, ok, || {
                        "argmax needs an i64 argument and result".into()
                    });
                }
                _ => self.want(here, d == r.dtype, || {
                    format!("reduces {d} into {}", r.dtype)
                }),
            }
            if let Some(m) = r.mask
                && (!expr_at(m) || exprs[m.index()].dtype != DType::Bool)
            {
                self.err(here, format!("mask {m} is not a bool expression"));
            }
        }
    }

    /// The stores of one phase; `deps` are the nest's [`var_deps`] when they could be
    /// computed.
    fn stores(
        &mut self,
        here: &str,
        n: &Nest,
        looped: bool,
        stores: &[Store],
        deps: Option<&[u64]>,
    ) {
        let inner_mask: u64 = 0xffff_ffff << 32;
        for s in stores {
            if self.param(here, s.param, Access::Write) {
                self.in_bounds(here, s.param, &s.index);
            }
            let Some(value) = n.exprs.get(s.value.index()) else {
                self.err(here, format!("stores missing {}", s.value));
                continue;
            };
            let pd = self.k.params.get(s.param.index()).map(|p| p.dtype);
            let vd = value.dtype;
            if pd.is_some_and(|pd| pd != vd) {
                self.err(here, format!("stores {vd} into {}", s.param));
            }
            if !looped {
                let idx_inner = s.index.terms().iter().any(|(a, _)| {
                    (0..n.inner.len()).any(|k| atom_mentions(a, Var::Inner(k as u8)))
                });
                let value_inner = deps.is_some_and(|d| d[s.value.index()] & inner_mask != 0);
                self.want(here, !(value_inner || idx_inner), || {
                    format!("once-per-row store to {} depends on an inner loop", s.param)
                });
            }
        }
    }

    /// The nest's hints name loops it has, with a width and unroll of at least 1.
    fn hints(&mut self, at: &str, n: &Nest) {
        let h = &n.hints;
        let has_axis = match h.vector {
            VectorAxis::None => true,
            VectorAxis::Inner => !n.inner.is_empty(),
            VectorAxis::Outer => !n.outer.is_empty(),
        };
        self.want(at, has_axis && h.width > 0 && h.unroll > 0, || {
            format!(
                "hints {:?} x{} unroll {} do not fit loops {:?} / {:?}",
                h.vector, h.width, h.unroll, n.outer, n.inner
            )
        });
    }

    /// An index into `p` that must stay inside it over its whole value range.
    fn in_bounds(&mut self, at: &str, p: ParamId, idx: &Index) {
        let len = self.k.params[p.index()].len as i64;
        if len == 0 {
            return;
        }
        let (lo, hi) = idx.range();
        if lo < 0 || hi >= len {
            self.err(
                at,
                format!("index {idx} of {p} spans [{lo}, {hi}], outside [0, {len})"),
            );
        }
    }
}

fn atom_mentions(a: &Atom, v: Var) -> bool {
    match a {
        Atom::Var(w, _) => *w == v,
        Atom::Div(e, _) | Atom::Mod(e, _) => e.mentions(v),
        Atom::Value(..) => false,
    }
}

/// True if every reduction of `n` names existing expressions (value, mask, argument).
fn reductions_exist(n: &Nest) -> bool {
    let expr_at = |x: ExprId| x.index() < n.exprs.len();
    n.phases.iter().all(|ph| match ph {
        Phase::Reduce(rs) => rs.iter().all(|r| {
            expr_at(r.value)
                && r.mask.is_none_or(expr_at)
                && match r.kind {
                    ReduceKind::ArgMax { arg } => expr_at(arg),
                    _ => true,
                }
        }),
        Phase::Store { .. } => true,
    })
}

/// The first problem of an atom: a division by a non-positive constant, or what `check`
/// says of one of its variables.
fn atom_error(a: &Atom, check: &dyn Fn(Var) -> Option<String>) -> Option<String> {
    match a {
        Atom::Var(v, _) => check(*v),
        Atom::Div(e, d) | Atom::Mod(e, d) => {
            if *d <= 0 {
                return Some(format!("division by {d}"));
            }
            e.terms().iter().find_map(|(x, _)| atom_error(x, check))
        }
        Atom::Value(..) => None,
    }
}

/// What `var_ok` says of the first of an atom's variables (with their extents) it
/// objects to.
fn index_vars_error(a: &Atom, var_ok: &dyn Fn(Var, i64) -> Option<String>) -> Option<String> {
    match a {
        Atom::Var(v, ext) => var_ok(*v, *ext),
        Atom::Div(e, _) | Atom::Mod(e, _) => e
            .terms()
            .iter()
            .find_map(|(x, _)| index_vars_error(x, var_ok)),
        Atom::Value(..) => None,
    }
}

/// The first value atom of `a` that does not name an integer expression before `at`.
fn value_atoms_error(a: &Atom, at: usize, exprs: &[Expr]) -> Option<String> {
    match a {
        Atom::Var(..) => None,
        Atom::Div(e, _) | Atom::Mod(e, _) => e
            .terms()
            .iter()
            .find_map(|(x, _)| value_atoms_error(x, at, exprs)),
        Atom::Value(x, _) => {
            if x.index() >= at {
                Some(format!("value {x} does not precede its use"))
            } else if !is_int(exprs[x.index()].dtype) {
                Some(format!("value {x} is not an integer"))
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tessera_ir::{BinaryOp, DType, UnaryOp, ValueId};

    use super::verify;
    use crate::kir::{
        Access, Binding, Body, Expr, ExprId, ExprOp, GpuMapping, Guard, Hints, Index, Kernel, Lit,
        Nest, Param, ParamId, Phase, ReduceKind, Reduction, Store, Var, VectorAxis,
    };

    fn param(dtype: DType, len: usize, access: Access, v: usize) -> Param {
        Param {
            dtype,
            len,
            access,
            binding: Binding::Value(ValueId::new(v)),
        }
    }

    fn e(dtype: DType, op: ExprOp) -> Expr {
        Expr { dtype, op }
    }

    fn i0() -> Index {
        Index::var(Var::Inner(0), 8)
    }

    fn load(index: Index) -> ExprOp {
        ExprOp::Load {
            param: ParamId(0),
            index,
        }
    }

    fn hints() -> Hints {
        Hints {
            vector: VectorAxis::None,
            width: 1,
            unroll: 1,
            parallel: true,
            gpu: GpuMapping::Elementwise { block: 256 },
        }
    }

    /// `p0: f32[8] read`, `p1: f32[8] write`, then `extra`.
    fn kernel(nest: Nest, extra: Vec<Param>, in_place: Vec<(ParamId, ParamId)>) -> Vec<String> {
        let mut params = vec![
            param(DType::F32, 8, Access::Read, 0),
            param(DType::F32, 8, Access::Write, 1),
        ];
        params.extend(extra);
        let k = Kernel {
            name: "k0_bad".into(),
            nodes: Vec::new(),
            params,
            body: Body::Loops(vec![nest]),
            in_place,
        };
        verify(&k)
            .expect_err("the kernel is broken")
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn every_broken_expression_is_reported_without_panicking() {
        let nest = Nest {
            outer: Vec::new(),
            inner: vec![8],
            exprs: vec![
                e(DType::F32, load(i0())),
                e(
                    DType::F32,
                    ExprOp::Binary(BinaryOp::Add, ExprId(0), ExprId(2)),
                ),
                e(DType::I64, load(i0())),
                e(DType::Bool, ExprOp::Lit(Lit::float(1.0))),
                e(
                    DType::F32,
                    ExprOp::Load {
                        param: ParamId(1),
                        index: i0(),
                    },
                ),
                e(DType::F32, load(i0().add_const(8))),
                e(DType::F32, ExprOp::Acc { phase: 9, slot: 0 }),
                e(DType::I64, ExprOp::IndexValue(Index::var(Var::Inner(1), 8))),
                e(DType::F32, ExprOp::Select(ExprId(0), ExprId(0), ExprId(0))),
                e(DType::F32, load(Index::var(Var::Inner(0), 4))),
                e(DType::F32, load(Index::value(ExprId(0), 8))),
                e(DType::F32, ExprOp::Unary(UnaryOp::Not, ExprId(0))),
                e(
                    DType::F32,
                    ExprOp::CheckIndex {
                        value: ExprId(0),
                        dim: 8,
                    },
                ),
                e(
                    DType::F32,
                    ExprOp::InRange(vec![Guard {
                        index: Index::var(Var::Outer(0), 2),
                        lo: 0,
                        hi: 8,
                    }]),
                ),
                e(DType::F32, ExprOp::Cast(ExprId(20))),
                e(DType::I64, ExprOp::IndexValue(Index::value(ExprId(99), 8))),
                e(DType::F32, ExprOp::Acc { phase: 0, slot: 0 }),
            ],
            phases: vec![
                Phase::Reduce(vec![Reduction {
                    kind: ReduceKind::Sum,
                    value: ExprId(40),
                    mask: None,
                    dtype: DType::F32,
                }]),
                Phase::Store {
                    looped: true,
                    stores: vec![Store {
                        param: ParamId(1),
                        index: i0(),
                        value: ExprId(16),
                    }],
                },
            ],
            hints: hints(),
        };
        let want = [
            "nest 0 e1: operand e2 does not precede it",
            "nest 0 e2: loads i64 from a f32 parameter",
            "nest 0 e3: literal does not fit bool",
            "nest 0 e4: p1 is write but used as read",
            "nest 0 e5: index i0 + 8 of p0 spans [8, 15], outside [0, 8)",
            "nest 0 e6: acc 9.0 names no reduction result",
            "nest 0 e7: index: i1 is not a loop of this nest",
            "nest 0 e8: select f32 ? f32 : f32 cannot be f32",
            "nest 0 e9: index: i0 has extent 4, the loop 8",
            "nest 0 e10: index: value e0 is not an integer",
            "nest 0 e11: not of f32 cannot be f32",
            "nest 0 e12: check_index of f32 cannot be f32",
            "nest 0 e13: in_range is not bool",
            "nest 0 e13: guard: o0 is not a loop of this nest",
            "nest 0 e14: operand e20 does not precede it",
            "nest 0 e15: index: value e99 does not precede its use",
            "nest 0 phase 0: reduces missing e40",
        ];
        let errors = kernel(nest, Vec::new(), Vec::new());
        assert_eq!(errors, want, "{errors:#?}");
    }

    #[test]
    fn every_broken_phase_hint_and_parameter_is_reported() {
        let nest = Nest {
            outer: Vec::new(),
            inner: vec![8],
            exprs: vec![
                e(DType::F32, load(i0())),
                e(DType::I64, ExprOp::IndexValue(i0())),
                e(DType::F32, ExprOp::Acc { phase: 0, slot: 0 }),
            ],
            phases: vec![
                Phase::Reduce(vec![Reduction {
                    kind: ReduceKind::Sum,
                    value: ExprId(0),
                    mask: Some(ExprId(0)),
                    dtype: DType::F64,
                }]),
                Phase::Reduce(vec![Reduction {
                    kind: ReduceKind::ArgMax { arg: ExprId(0) },
                    value: ExprId(0),
                    mask: None,
                    dtype: DType::I64,
                }]),
                Phase::Store {
                    looped: false,
                    stores: vec![
                        Store {
                            param: ParamId(1),
                            index: Index::zero(),
                            value: ExprId(0),
                        },
                        Store {
                            param: ParamId(1),
                            index: i0(),
                            value: ExprId(2),
                        },
                    ],
                },
                Phase::Store {
                    looped: true,
                    stores: vec![
                        Store {
                            param: ParamId(1),
                            index: Index::zero(),
                            value: ExprId(1),
                        },
                        Store {
                            param: ParamId(0),
                            index: i0(),
                            value: ExprId(0),
                        },
                        Store {
                            param: ParamId(1),
                            index: i0(),
                            value: ExprId(30),
                        },
                    ],
                },
            ],
            hints: Hints {
                vector: VectorAxis::Outer,
                width: 4,
                ..hints()
            },
        };
        let extra = vec![
            param(DType::F32, 8, Access::Write, 2),
            param(DType::F32, 4, Access::Read, 3),
        ];
        let in_place = vec![(ParamId(3), ParamId(1)), (ParamId(0), ParamId(9))];
        let want = [
            "nest 0 phase 0: reduces f32 into f64",
            "nest 0 phase 0: mask e0 is not a bool expression",
            "nest 0 phase 1: argmax needs an i64 argument and result",
            "nest 0 phase 2: once-per-row store to p1 depends on an inner loop",
            "nest 0 phase 2: once-per-row store to p1 depends on an inner loop",
            "nest 0 phase 3: stores i64 into p1",
            "nest 0 phase 3: p0 is read but used as write",
            "nest 0 phase 3: stores missing e30",
            "nest 0: hints Outer x4 unroll 1 do not fit loops [] / [8]",
            "in_place: p3 -> p1 differ in size",
            "in_place: p0 -> p9 names a missing parameter",
            "params: p2 is write-only but nothing writes it",
        ];
        let errors = kernel(nest, extra, in_place);
        assert_eq!(errors, want, "{errors:#?}");
    }
}
