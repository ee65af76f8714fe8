//! Loop nests as CUDA kernels.
//!
//! A nest whose phases are all looped stores is *elementwise*: the whole
//! `outer × inner` space is one grid-stride loop, one thread per point (or per `L`
//! neighbouring points, see below). Any other nest runs *row-wise*: each outer point is a
//! row, handled by one thread, one warp or one block, which loops over the inner space
//! once per phase; reductions combine per-thread partials with warp shuffles and, for
//! blocks, shared memory, so every thread of the row ends with the same result in the
//! same order (results are deterministic).
//!
//! Expressions are emitted at the level of their innermost dependency: what depends only
//! on the row is computed once per row (after the reduction phases it uses), the rest
//! inside the loop of each phase that needs it.
//!
//! Vector lanes: along the last inner loop a thread handles `L` consecutive points. A
//! load or store that is contiguous along that loop and whose other terms are multiples
//! of `L` becomes one `L × size`-byte access (16 bytes for the widest element type);
//! other accesses are done lane by lane. Parameters are 16-byte aligned (the memory plan
//! aligns to 64 bytes), so such an access is aligned.

use std::collections::BTreeSet;
use std::fmt::Write;

use tessera_ir::{BinaryOp, DType, UnaryOp};

use super::c::{self, IndexCx};
use super::{Launch, prelude::STATUS_INDEX_OUT_OF_RANGE};
use crate::KernelError;
use tessera_lower::kir::var_deps;
use tessera_lower::kir::{
    Atom, Expr, ExprId, ExprOp, GpuMapping, Guard, Index, Nest, Param, ParamId, Phase, ReduceKind,
    Reduction, Store, Var,
};

type Result<T> = std::result::Result<T, KernelError>;

const INNER_MASK: u64 = 0xffff_ffff << 32;
/// Grid-stride kernels launch at most this many blocks.
const MAX_BLOCKS: usize = 4096;

fn var_bit(v: Var) -> u64 {
    match v {
        Var::Outer(k) => 1 << k,
        Var::Inner(k) => 1 << (32 + k as u32),
    }
}

/// How a row-wise nest maps rows to threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RowMap {
    /// One thread per row, `block` threads per block.
    Thread { block: u32 },
    /// One warp per row, `warps` rows per block.
    Warp { warps: u32 },
    /// One block of `threads` (a multiple of 32, at least 64) per row.
    Block { threads: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Elementwise { block: u32 },
    Rows(RowMap),
}

/// Per-nest analysis shared by the printers of nests and of GEMM/convolution epilogues.
pub(crate) struct NestInfo<'a> {
    pub nest: &'a Nest,
    pub params: &'a [Param],
    deps: Vec<u64>,
    /// The vectorized variable and its lanes (1 = none).
    vvar: Option<Var>,
    lanes: usize,
    /// Loads done as one vector access.
    vector_loads: BTreeSet<ExprId>,
    pub wide: bool,
}

fn index_of(e: &Expr) -> Option<(ParamId, &Index)> {
    match &e.op {
        ExprOp::Load { param, index } => Some((*param, index)),
        _ => None,
    }
}

/// True if a gathered value inside `ix` (an `Atom::Value`) depends on a loop variable in
/// `mask` (bits as in `var_deps`).
fn values_vary(ix: &Index, deps: &[u64], mask: u64) -> bool {
    ix.terms().iter().any(|(a, _)| match a {
        Atom::Value(x, _) => deps[(*x).index()] & mask != 0,
        Atom::Div(e, _) | Atom::Mod(e, _) => values_vary(e, deps, mask),
        Atom::Var(..) => false,
    })
}

/// True if `ix` varies along `v` (directly or through a gathered value).
fn index_varies(ix: &Index, deps: &[u64], v: Var) -> bool {
    ix.mentions(v) || values_vary(ix, deps, var_bit(v))
}

/// True if `ix` is `v` with stride 1 plus terms that do not vary along `v` and are
/// multiples of `lanes`: `lanes` consecutive values of `v` address one aligned vector.
fn aligned_contiguous(ix: &Index, deps: &[u64], v: Var, lanes: usize) -> bool {
    if ix.stride_of(v) != Some(1) || values_vary(ix, deps, var_bit(v)) {
        return false;
    }
    let base = ix.without(v);
    let l = lanes as i64;
    base.constant_part() % l == 0 && base.terms().iter().all(|(_, c)| c % l == 0)
}

fn all_indices(nest: &Nest) -> Vec<&Index> {
    let mut v = Vec::new();
    for e in &nest.exprs {
        match &e.op {
            ExprOp::Load { index, .. } | ExprOp::IndexValue(index) => v.push(index),
            ExprOp::LoadIf { index, guards, .. } => {
                v.push(index);
                v.extend(guards.iter().map(|g| &g.index));
            }
            ExprOp::InRange(gs) => v.extend(gs.iter().map(|g| &g.index)),
            _ => {}
        }
    }
    for ph in &nest.phases {
        if let Phase::Store { stores, .. } = ph {
            v.extend(stores.iter().map(|s| &s.index));
        }
    }
    v
}

impl<'a> NestInfo<'a> {
    /// Analyses `nest`; `vectorize` allows vector lanes along the last inner loop.
    pub fn new(nest: &'a Nest, params: &'a [Param], vectorize: bool) -> NestInfo<'a> {
        let deps = var_deps(nest);
        let points = (nest.outer_points() as i64).saturating_mul(nest.inner_points() as i64);
        let wide = points >= c::NARROW_LIMIT
            || params.iter().any(|p| p.len as i64 >= c::NARROW_LIMIT)
            || all_indices(nest)
                .iter()
                .any(|ix| c::index_bound(ix) >= c::NARROW_LIMIT);
        let mut info = NestInfo {
            nest,
            params,
            deps,
            vvar: None,
            lanes: 1,
            vector_loads: BTreeSet::new(),
            wide,
        };
        if vectorize && let Some(&last) = nest.inner.last() {
            let v = Var::Inner(nest.inner.len() as u8 - 1);
            info.choose_lanes(v, last);
        }
        info
    }

    fn choose_lanes(&mut self, v: Var, extent: usize) {
        let bit = var_bit(v);
        let nest = self.nest;
        // Contiguous accesses along `v`: element sizes.
        let mut sizes = Vec::new();
        for e in &nest.exprs {
            if let Some((p, ix)) = index_of(e)
                && ix.stride_of(v) == Some(1)
                && ix.mentions(v)
                && !values_vary(ix, &self.deps, bit)
            {
                sizes.push(self.params[p.index()].dtype.size_bytes());
            }
        }
        for st in self.stores() {
            if st.index.stride_of(v) == Some(1)
                && st.index.mentions(v)
                && !values_vary(&st.index, &self.deps, bit)
            {
                sizes.push(self.params[st.param.index()].dtype.size_bytes());
            }
        }
        let Some(&widest) = sizes.iter().max() else {
            return;
        };
        let mut lanes = (16 / widest).min(8);
        while lanes > 1 && !extent.is_multiple_of(lanes) {
            lanes /= 2;
        }
        if lanes < 2 {
            return;
        }
        let mut loads = BTreeSet::new();
        for (i, e) in nest.exprs.iter().enumerate() {
            if let Some((_, ix)) = index_of(e)
                && self.deps[i] & bit != 0
                && aligned_contiguous(ix, &self.deps, v, lanes)
            {
                loads.insert(ExprId::new(i));
            }
        }
        let any_store = self
            .stores()
            .any(|s| s.index.mentions(v) && aligned_contiguous(&s.index, &self.deps, v, lanes));
        if loads.is_empty() && !any_store {
            return;
        }
        self.vvar = Some(v);
        self.lanes = lanes;
        self.vector_loads = loads;
    }

    fn stores(&self) -> impl Iterator<Item = &'a Store> {
        self.nest.phases.iter().flat_map(|p| match p {
            Phase::Store { stores, .. } => stores.as_slice(),
            Phase::Reduce(_) => &[],
        })
    }

    fn varies(&self, e: ExprId) -> bool {
        self.vvar
            .is_some_and(|v| self.deps[e.index()] & var_bit(v) != 0)
    }

    fn inner_dep(&self, e: ExprId) -> bool {
        self.deps[e.index()] & INNER_MASK != 0
    }

    pub fn it(&self) -> &'static str {
        if self.wide { "long long" } else { "int" }
    }
}

/// Operands of an expression, including the values its indices read.
fn operands(e: &Expr) -> Vec<ExprId> {
    fn index_values(ix: &Index, out: &mut Vec<ExprId>) {
        for (a, _) in ix.terms() {
            match a {
                tessera_lower::kir::Atom::Value(x, _) => out.push(*x),
                tessera_lower::kir::Atom::Div(i, _) | tessera_lower::kir::Atom::Mod(i, _) => {
                    index_values(i, out)
                }
                tessera_lower::kir::Atom::Var(..) => {}
            }
        }
    }
    let mut v = Vec::new();
    match &e.op {
        ExprOp::Lit(_) | ExprOp::Acc { .. } => {}
        ExprOp::Load { index, .. } | ExprOp::IndexValue(index) => index_values(index, &mut v),
        ExprOp::LoadIf { index, guards, .. } => {
            index_values(index, &mut v);
            for g in guards {
                index_values(&g.index, &mut v);
            }
        }
        ExprOp::InRange(gs) => {
            for g in gs {
                index_values(&g.index, &mut v);
            }
        }
        ExprOp::Unary(_, a) | ExprOp::Cast(a) => v.push(*a),
        ExprOp::CheckIndex { value, .. } => v.push(*value),
        ExprOp::Binary(_, a, b) => v.extend([*a, *b]),
        ExprOp::Select(c, a, b) => v.extend([*c, *a, *b]),
    }
    v
}

/// The expressions `roots` need, transitively, in id (topological) order.
pub(crate) fn closure(nest: &Nest, roots: &[ExprId]) -> Vec<ExprId> {
    let mut seen = vec![false; nest.exprs.len()];
    let mut stack: Vec<ExprId> = roots.to_vec();
    while let Some(e) = stack.pop() {
        if std::mem::replace(&mut seen[e.index()], true) {
            continue;
        }
        stack.extend(operands(&nest.exprs[e.index()]));
    }
    (0..nest.exprs.len())
        .filter(|&e| seen[e])
        .map(ExprId::new)
        .collect()
}

fn phase_roots(ph: &Phase) -> Vec<ExprId> {
    match ph {
        Phase::Reduce(rs) => rs
            .iter()
            .flat_map(|r| {
                let mut v = vec![r.value];
                v.extend(r.mask);
                if let ReduceKind::ArgMax { arg } = r.kind {
                    v.push(arg);
                }
                v
            })
            .collect(),
        Phase::Store { stores, .. } => stores.iter().map(|s| s.value).collect(),
    }
}

/// Emits C statements for expressions of a nest, tracking names per lane.
pub(crate) struct ExprEmitter<'i, 'a> {
    pub info: &'i NestInfo<'a>,
    pub out: String,
    pub indent: usize,
    /// Names of emitted expressions, one per lane (or one for lane-invariant values).
    names: Vec<Vec<String>>,
    /// Expressions emitted inside the current loop (forgotten when it closes).
    scoped: Vec<ExprId>,
    in_loop: bool,
    /// Per-parameter extra offset (`+ off`) added to every index (for convolution
    /// images and groups).
    pub param_offset: Vec<Option<String>>,
    /// A C expression that replaces every load of this parameter at any index (a GEMM
    /// epilogue reading the accumulator in registers).
    pub replace_load: Option<(ParamId, String)>,
    /// Prefix of variable names (so two nests can share a function).
    pub prefix: String,
}

impl<'i, 'a> ExprEmitter<'i, 'a> {
    pub fn new(info: &'i NestInfo<'a>, indent: usize) -> Self {
        ExprEmitter {
            info,
            out: String::new(),
            indent,
            names: vec![Vec::new(); info.nest.exprs.len()],
            scoped: Vec::new(),
            in_loop: false,
            param_offset: vec![None; info.params.len()],
            replace_load: None,
            prefix: String::new(),
        }
    }

    pub fn line(&mut self, s: &str) {
        for _ in 0..self.indent {
            self.out.push_str("  ");
        }
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn lanes_of(&self, e: ExprId) -> usize {
        if self.info.varies(e) {
            self.info.lanes
        } else {
            1
        }
    }

    /// The C expression of `e` in lane `l`.
    pub fn name(&self, e: ExprId, l: usize) -> String {
        let n = &self.names[e.index()];
        n.get(l).or_else(|| n.first()).cloned().unwrap_or_default()
    }

    pub fn bind(&mut self, e: ExprId, names: Vec<String>) {
        self.names[e.index()] = names;
    }

    fn var_name(&self, v: Var, lane: usize) -> String {
        let base = match v {
            Var::Outer(k) => format!("{}o{k}", self.prefix),
            Var::Inner(k) => format!("{}i{k}", self.prefix),
        };
        if lane > 0 && Some(v) == self.info.vvar {
            format!("({base} + {lane})")
        } else {
            base
        }
    }

    fn index(&self, ix: &Index, lane: usize) -> String {
        let var = |v: Var| self.var_name(v, lane);
        let value = |x: ExprId| self.name(x, lane);
        c::index(
            ix,
            &IndexCx {
                wide: self.info.wide,
                var: &var,
                value: &value,
            },
        )
    }

    fn addr(&self, p: ParamId, ix: &Index, lane: usize) -> String {
        let i = self.index(ix, lane);
        match &self.param_offset[p.index()] {
            Some(off) => format!("{p}[{off} + {i}]"),
            None => format!("{p}[{i}]"),
        }
    }

    fn guards(&self, gs: &[Guard], lane: usize) -> String {
        gs.iter()
            .map(|g| {
                let i = self.index(&g.index, lane);
                format!("({} <= {i} && {i} < {})", g.lo, g.hi)
            })
            .collect::<Vec<_>>()
            .join(" && ")
    }

    /// Emits every expression of `list` not yet emitted (operands first), except
    /// accumulators, which reductions bind.
    pub fn emit_all(&mut self, list: &[ExprId]) -> Result<()> {
        for &e in list {
            if !self.names[e.index()].is_empty()
                || matches!(self.info.nest.exprs[e.index()].op, ExprOp::Acc { .. })
            {
                continue;
            }
            self.emit(e)?;
            if self.in_loop {
                self.scoped.push(e);
            }
        }
        Ok(())
    }

    /// Starts a loop scope: expressions emitted from now on are forgotten by `close`.
    pub fn open(&mut self) {
        self.in_loop = true;
    }

    pub fn close(&mut self) {
        for e in std::mem::take(&mut self.scoped) {
            self.names[e.index()].clear();
        }
        self.in_loop = false;
    }

    fn emit(&mut self, e: ExprId) -> Result<()> {
        let x = &self.info.nest.exprs[e.index()];
        let dt = x.dtype;
        let ct = c::compute(dt);
        let lanes = self.lanes_of(e);
        let p = &self.prefix;
        let names: Vec<String> = if lanes == 1 {
            vec![format!("{p}{e}")]
        } else {
            (0..lanes).map(|l| format!("{p}{e}_{l}")).collect()
        };
        if let ExprOp::Lit(l) = &x.op {
            self.names[e.index()] = vec![c::lit(*l, dt)];
            return Ok(());
        }
        if let ExprOp::Load { param, index } = &x.op {
            if let Some((rp, with)) = &self.replace_load
                && rp == param
            {
                self.names[e.index()] = vec![with.clone()];
                return Ok(());
            }
            if lanes > 1 && self.info.vector_loads.contains(&e) {
                self.vector_load(e, *param, index, &names);
                self.names[e.index()] = names;
                return Ok(());
            }
        }
        for (l, name) in names.iter().enumerate() {
            let v = self.value(e, x, l)?;
            self.line(&format!("const {ct} {name} = {v};"));
        }
        self.names[e.index()] = names;
        Ok(())
    }

    fn vector_load(&mut self, e: ExprId, param: ParamId, index: &Index, names: &[String]) {
        let pd = self.info.params[param.index()].dtype;
        let dt = self.info.nest.exprs[e.index()].dtype;
        let lanes = self.info.lanes;
        let (vt, words) = vector_type(lanes * pd.size_bytes());
        let addr = self.addr(param, index, 0);
        let v = format!("{}v{}", self.prefix, e.0);
        self.line(&format!(
            "const {vt} {v} = *reinterpret_cast<const {vt}*>(&{addr});"
        ));
        for (l, name) in names.iter().enumerate() {
            let bits = lane_bits(&v, &words, pd.size_bytes(), l);
            let val = c::from_bits(pd, &bits);
            let val = if pd == dt { val } else { cast(pd, dt, &val) };
            self.line(&format!("const {} {name} = {val};", c::compute(dt)));
        }
    }

    /// The C expression computing `x` in lane `l` (operands already named).
    fn value(&self, _e: ExprId, x: &Expr, l: usize) -> Result<String> {
        let dt = x.dtype;
        let nm = |o: ExprId| self.name(o, l);
        let ty = |o: ExprId| self.info.nest.exprs[o.index()].dtype;
        Ok(match &x.op {
            ExprOp::Lit(lit) => c::lit(*lit, dt),
            ExprOp::Load { param, index } => {
                let pd = self.info.params[(*param).index()].dtype;
                let v = c::load_conv(pd, &self.addr(*param, index, l));
                if pd == dt { v } else { cast(pd, dt, &v) }
            }
            ExprOp::LoadIf {
                param,
                index,
                guards,
                default,
            } => {
                let pd = self.info.params[(*param).index()].dtype;
                let v = c::load_conv(pd, &self.addr(*param, index, l));
                let v = if pd == dt { v } else { cast(pd, dt, &v) };
                format!(
                    "({}) ? {v} : {}",
                    self.guards(guards, l),
                    c::lit(*default, dt)
                )
            }
            ExprOp::InRange(gs) => self.guards(gs, l),
            ExprOp::Unary(u, a) => unary(*u, ty(*a), dt, &nm(*a))?,
            ExprOp::Binary(b, a, c2) => binary(*b, ty(*a), ty(*c2), dt, &nm(*a), &nm(*c2))?,
            ExprOp::Select(cnd, a, b) => format!("{} ? {} : {}", nm(*cnd), nm(*a), nm(*b)),
            ExprOp::Cast(a) => cast(ty(*a), dt, &nm(*a)),
            ExprOp::Acc { phase, slot } => {
                return Err(KernelError::Invariant(format!(
                    "accumulator {phase}.{slot} is read before its phase"
                )));
            }
            ExprOp::IndexValue(ix) => format!("(long long)({})", self.index(ix, l)),
            ExprOp::CheckIndex { value, dim } => {
                let _ = STATUS_INDEX_OUT_OF_RANGE;
                format!("t_check_index({}, {dim}LL, status)", nm(*value))
            }
        })
    }

    /// Emits `stores` (values and indices already emitted).
    pub fn stores(&mut self, stores: &[Store]) {
        for s in stores {
            let pd = self.info.params[s.param.index()].dtype;
            let vdt = self.info.nest.exprs[s.value.index()].dtype;
            let lanes = match self.info.vvar {
                Some(v)
                    if self.info.lanes > 1
                        && (index_varies(&s.index, &self.info.deps, v)
                            || self.info.varies(s.value)) =>
                {
                    self.info.lanes
                }
                _ => 1,
            };
            let conv = |l: usize, this: &Self| {
                let v = this.name(s.value, l);
                if vdt == pd { v } else { cast(vdt, pd, &v) }
            };
            let vectorizable = lanes > 1
                && self
                    .info
                    .vvar
                    .is_some_and(|v| aligned_contiguous(&s.index, &self.info.deps, v, lanes));
            if vectorizable {
                let size = pd.size_bytes();
                let (vt, words) = vector_type(lanes * size);
                let parts: Vec<String> =
                    (0..lanes).map(|l| c::to_bits(pd, &conv(l, self))).collect();
                let w = pack_words(&parts, size, words.len().max(1), vt);
                let addr = self.addr(s.param, &s.index, 0);
                self.line(&format!("*reinterpret_cast<{vt}*>(&{addr}) = {w};"));
            } else {
                for l in 0..lanes {
                    let addr = self.addr(s.param, &s.index, l);
                    let v = c::store_conv(pd, &conv(l, self));
                    self.line(&format!("{addr} = {v};"));
                }
            }
        }
    }

    /// Emits `const <it> <names> = …` decomposing `linear` (row-major) over `dims`; the
    /// last one multiplied by `last_scale`.
    pub fn decompose(&mut self, linear: &str, vars: &[(String, usize)], last_scale: usize) {
        let it = self.info.it();
        let n = vars.len();
        let mut stride: usize = vars.iter().map(|(_, d)| *d).product();
        for (k, (name, d)) in vars.iter().enumerate() {
            stride /= (*d).max(1);
            let q = if stride > 1 {
                format!("t_div({linear}, {stride})")
            } else {
                linear.to_string()
            };
            let v = if k > 0 { format!("t_mod({q}, {d})") } else { q };
            let v = if k + 1 == n && last_scale > 1 {
                format!("{v} * {last_scale}")
            } else {
                v
            };
            self.line(&format!("const {it} {name} = {v};"));
        }
    }
}

/// The C type of a `bytes`-wide vector access and its 32-bit word fields.
fn vector_type(bytes: usize) -> (&'static str, Vec<&'static str>) {
    match bytes {
        16 => ("uint4", vec!["x", "y", "z", "w"]),
        8 => ("uint2", vec!["x", "y"]),
        4 => ("unsigned int", vec![""]),
        _ => ("unsigned short", vec![""]),
    }
}

fn word(v: &str, words: &[&str], w: usize) -> String {
    match words.get(w) {
        Some(&"") | None => v.to_string(),
        Some(f) => format!("{v}.{f}"),
    }
}

/// The bits of lane `l` (elements of `size` bytes) in vector `v`.
fn lane_bits(v: &str, words: &[&str], size: usize, l: usize) -> String {
    match size {
        8 => format!(
            "(((unsigned long long){} << 32) | (unsigned long long){})",
            word(v, words, 2 * l + 1),
            word(v, words, 2 * l)
        ),
        4 => word(v, words, l),
        _ => {
            let per = 4 / size;
            let w = word(v, words, l / per);
            let shift = (l % per) * size * 8;
            let mask = if size == 2 { "0xffffu" } else { "0xffu" };
            if shift == 0 {
                format!("({w} & {mask})")
            } else {
                format!("(({w} >> {shift}) & {mask})")
            }
        }
    }
}

/// A vector value of type `vt` from per-lane element bits.
fn pack_words(parts: &[String], size: usize, nwords: usize, vt: &str) -> String {
    let words: Vec<String> = match size {
        8 => parts
            .iter()
            .flat_map(|p| {
                [
                    format!("(unsigned int)({p})"),
                    format!("(unsigned int)(({p}) >> 32)"),
                ]
            })
            .collect(),
        4 => parts.to_vec(),
        _ => {
            let per = 4 / size;
            parts
                .chunks(per)
                .map(|ch| {
                    ch.iter()
                        .enumerate()
                        .map(|(i, p)| {
                            if i == 0 {
                                format!("(unsigned int)({p})")
                            } else {
                                format!("((unsigned int)({p}) << {})", i * size * 8)
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" | ")
                })
                .collect()
        }
    };
    match vt {
        "uint4" => format!("make_uint4({})", words.join(", ")),
        "uint2" => format!("make_uint2({})", words.join(", ")),
        "unsigned short" => format!("(unsigned short)({})", words.join(" | ")),
        _ => {
            debug_assert_eq!(nwords, 1);
            words.join(" | ")
        }
    }
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

fn i64_lit(v: i64) -> String {
    if v == i64::MIN {
        "(-9223372036854775807LL - 1)".into()
    } else {
        format!("{v}LL")
    }
}

/// ONNX `Cast` of compute value `x` from `from` to `to`.
pub(crate) fn cast(from: DType, to: DType, x: &str) -> String {
    if from == to {
        return x.to_string();
    }
    let v = if from.is_float() {
        if to.is_float() {
            format!("({})({x})", c::compute(to))
        } else if to == DType::Bool {
            format!("(({x}) != 0)")
        } else if to == DType::U64 {
            format!("t_f2u((double)({x}))")
        } else {
            let (lo, hi) = int_range(to);
            format!("t_f2i((double)({x}), {}, {})", i64_lit(lo), i64_lit(hi))
        }
    } else if to.is_float() {
        let d = if from == DType::U64 {
            format!("(double)({x})")
        } else {
            format!("(double)(long long)({x})")
        };
        if to == DType::F64 {
            d
        } else {
            format!("(float){d}")
        }
    } else if to == DType::Bool {
        format!("(({x}) != 0)")
    } else {
        match to {
            DType::I64 => format!("(long long)({x})"),
            DType::U64 => format!("(unsigned long long)({x})"),
            d => format!("(long long)({})({x})", c::storage(d)),
        }
    };
    c::round(to, &v)
}

fn unsupported(op: &'static str, dtype: DType) -> KernelError {
    KernelError::Unsupported { op, dtype }
}

fn unary(u: UnaryOp, from: DType, dt: DType, a: &str) -> Result<String> {
    let ct = c::compute(from);
    let v = match ct {
        "float" | "double" => {
            let f = if ct == "float" { "f" } else { "" };
            let one = if ct == "float" { "1.0f" } else { "1.0" };
            match u {
                UnaryOp::Neg => format!("-{a}"),
                UnaryOp::Abs => format!("fabs{f}({a})"),
                UnaryOp::Sign => format!("t_sign({a})"),
                UnaryOp::Relu => format!("t_relu({a})"),
                UnaryOp::Exp => format!("exp{f}({a})"),
                UnaryOp::Log => format!("log{f}({a})"),
                UnaryOp::Sqrt => format!("sqrt{f}({a})"),
                UnaryOp::Reciprocal => format!("{one} / {a}"),
                UnaryOp::Erf => format!("erf{f}({a})"),
                UnaryOp::Tanh => format!("tanh{f}({a})"),
                UnaryOp::Sigmoid => format!("t_sigmoid({a})"),
                UnaryOp::Softplus => format!("t_softplus({a})"),
                UnaryOp::Sin if ct == "float" => format!("t_sin({a})"),
                UnaryOp::Cos if ct == "float" => format!("t_cos({a})"),
                UnaryOp::Sin => format!("sin({a})"),
                UnaryOp::Cos => format!("cos({a})"),
                UnaryOp::Floor => format!("floor{f}({a})"),
                UnaryOp::Ceil => format!("ceil{f}({a})"),
                UnaryOp::Round => format!("rint{f}({a})"),
                UnaryOp::IsNaN => return Ok(format!("isnan({a})")),
                UnaryOp::IsInf => return Ok(format!("isinf({a})")),
                UnaryOp::Not => return Err(unsupported(u.name(), from)),
            }
        }
        "bool" => match u {
            UnaryOp::Not => format!("!{a}"),
            _ => return Err(unsupported(u.name(), from)),
        },
        "unsigned long long" => match u {
            UnaryOp::Neg => format!("(0ULL - {a})"),
            UnaryOp::Abs | UnaryOp::Relu => a.to_string(),
            UnaryOp::Sign => format!("(unsigned long long)({a} > 0ULL)"),
            _ => return Err(unsupported(u.name(), from)),
        },
        _ => match u {
            UnaryOp::Neg => format!("t_wneg({a})"),
            UnaryOp::Abs => format!("t_wabs({a})"),
            UnaryOp::Sign => format!("t_isign({a})"),
            UnaryOp::Relu => format!("t_max({a}, 0LL)"),
            _ => return Err(unsupported(u.name(), from)),
        },
    };
    Ok(c::round(dt, &v))
}

fn binary(op: BinaryOp, at: DType, bt: DType, dt: DType, a: &str, b: &str) -> Result<String> {
    let ct = c::compute(at);
    let cmp = |s: &str| format!("({a} {s} {b})");
    match op {
        BinaryOp::Equal => return Ok(cmp("==")),
        BinaryOp::Less => return Ok(cmp("<")),
        BinaryOp::LessOrEqual => return Ok(cmp("<=")),
        BinaryOp::Greater => return Ok(cmp(">")),
        BinaryOp::GreaterOrEqual => return Ok(cmp(">=")),
        BinaryOp::And => return Ok(format!("({a} && {b})")),
        BinaryOp::Or => return Ok(format!("({a} || {b})")),
        BinaryOp::Xor => return Ok(format!("({a} != {b})")),
        _ => {}
    }
    let v = match ct {
        "float" | "double" => {
            let b = if c::compute(bt) == ct {
                b.to_string()
            } else {
                cast(
                    bt,
                    if ct == "float" {
                        DType::F32
                    } else {
                        DType::F64
                    },
                    b,
                )
            };
            match op {
                BinaryOp::Add => format!("{a} + {b}"),
                BinaryOp::Sub => format!("{a} - {b}"),
                BinaryOp::Mul => format!("{a} * {b}"),
                BinaryOp::Div => format!("{a} / {b}"),
                BinaryOp::Pow if ct == "float" => format!("t_pow({a}, {b})"),
                BinaryOp::Pow => format!("pow({a}, {b})"),
                BinaryOp::Max => format!("t_max({a}, {b})"),
                BinaryOp::Min => format!("t_min({a}, {b})"),
                _ => unreachable!("predicates returned above"),
            }
        }
        "unsigned long long" => match op {
            BinaryOp::Add => format!("{a} + {b}"),
            BinaryOp::Sub => format!("{a} - {b}"),
            BinaryOp::Mul => format!("{a} * {b}"),
            BinaryOp::Div => format!("t_idiv({a}, {b}, status)"),
            BinaryOp::Max => format!("t_max({a}, {b})"),
            BinaryOp::Min => format!("t_min({a}, {b})"),
            BinaryOp::Pow => {
                let p = format!("pow((double)({a}), (double)({b}))");
                return Ok(cast(DType::F64, dt, &p));
            }
            _ => unreachable!("predicates returned above"),
        },
        "long long" => match op {
            BinaryOp::Add => format!("t_wadd({a}, {b})"),
            BinaryOp::Sub => format!("t_wsub({a}, {b})"),
            BinaryOp::Mul => format!("t_wmul({a}, {b})"),
            BinaryOp::Div => format!("t_idiv({a}, {b}, status)"),
            BinaryOp::Max => format!("t_max({a}, {b})"),
            BinaryOp::Min => format!("t_min({a}, {b})"),
            BinaryOp::Pow if !bt.is_float() => format!("t_ipow({a}, {b})"),
            BinaryOp::Pow => {
                let p = format!("pow((double)({a}), (double)({b}))");
                return Ok(cast(DType::F64, dt, &p));
            }
            _ => unreachable!("predicates returned above"),
        },
        _ => return Err(unsupported(op.name(), at)),
    };
    Ok(c::round(dt, &v))
}

/// Accumulator C type (bools accumulate in `int` so warps can shuffle them).
fn acc_type(d: DType) -> &'static str {
    if d == DType::Bool {
        "int"
    } else {
        c::compute(d)
    }
}

fn reduce_init(kind: ReduceKind, d: DType) -> String {
    let ct = acc_type(d);
    match (kind, ct) {
        (ReduceKind::ArgMax { .. }, _) => "0LL".into(),
        (ReduceKind::Sum, "int") => "0".into(),
        (ReduceKind::Prod, "int") => "1".into(),
        (ReduceKind::Max, "int") => "0".into(),
        (ReduceKind::Min, "int") => "1".into(),
        (ReduceKind::Sum, "float") => "0.0f".into(),
        (ReduceKind::Sum, "double") => "0.0".into(),
        (ReduceKind::Prod, "float") => "1.0f".into(),
        (ReduceKind::Prod, "double") => "1.0".into(),
        (ReduceKind::Max, "float") => c::real(f64::NEG_INFINITY, false),
        (ReduceKind::Max, "double") => c::real(f64::NEG_INFINITY, true),
        (ReduceKind::Min, "float") => c::real(f64::INFINITY, false),
        (ReduceKind::Min, "double") => c::real(f64::INFINITY, true),
        (ReduceKind::Sum, "unsigned long long") => "0ULL".into(),
        (ReduceKind::Prod, "unsigned long long") => "1ULL".into(),
        (ReduceKind::Max, "unsigned long long") => "0ULL".into(),
        (ReduceKind::Min, "unsigned long long") => "18446744073709551615ULL".into(),
        (ReduceKind::Sum, _) => "0LL".into(),
        (ReduceKind::Prod, _) => "1LL".into(),
        (ReduceKind::Max, _) => "(-9223372036854775807LL - 1)".into(),
        (ReduceKind::Min, _) => "9223372036854775807LL".into(),
    }
}

/// `acc ⊕ x` for a reduction of dtype `d`.
fn combine(kind: ReduceKind, d: DType, acc: &str, x: &str) -> String {
    let ct = acc_type(d);
    match (kind, ct) {
        (ReduceKind::Sum, "long long") => format!("t_wadd({acc}, {x})"),
        (ReduceKind::Prod, "long long") => format!("t_wmul({acc}, {x})"),
        (ReduceKind::Sum, "int") | (ReduceKind::Max, "int") => format!("({acc} | {x})"),
        (ReduceKind::Prod, "int") | (ReduceKind::Min, "int") => format!("({acc} & {x})"),
        (ReduceKind::Sum, _) => format!("{acc} + {x}"),
        (ReduceKind::Prod, _) => format!("{acc} * {x}"),
        (ReduceKind::Max, _) => format!("t_max({acc}, {x})"),
        (ReduceKind::Min, _) => format!("t_min({acc}, {x})"),
        (ReduceKind::ArgMax { .. }, _) => acc.to_string(),
    }
}

fn choose_mode(nest: &Nest, info: &NestInfo) -> Mode {
    let rowwise = nest
        .phases
        .iter()
        .any(|p| !matches!(p, Phase::Store { looped: true, .. }));
    if !rowwise {
        let block = match nest.hints.gpu {
            GpuMapping::Elementwise { block } => block.clamp(32, 1024),
            _ => 256,
        };
        return Mode::Elementwise { block };
    }
    let argmax = nest.phases.iter().any(|p| {
        matches!(p, Phase::Reduce(rs) if rs.iter().any(|r| matches!(r.kind, ReduceKind::ArgMax { .. })))
    });
    let chunks = nest.inner_points() / info.lanes;
    // Neighbouring rows contiguous in memory (a reduction over a strided axis): one thread
    // per row keeps a warp's accesses coalesced.
    let contiguous = |v: Option<Var>| {
        v.map_or(0, |v| {
            nest.exprs
                .iter()
                .filter(|e| {
                    index_of(e).is_some_and(|(_, ix)| ix.stride_of(v) == Some(1) && ix.mentions(v))
                })
                .count()
        })
    };
    let last_inner = nest.inner.len().checked_sub(1).map(|k| Var::Inner(k as u8));
    let last_outer = nest.outer.len().checked_sub(1).map(|k| Var::Outer(k as u8));
    let across_rows = contiguous(last_outer) > contiguous(last_inner);
    if argmax || chunks < 8 || across_rows {
        return Mode::Rows(RowMap::Thread { block: 128 });
    }
    let rows = nest.outer_points();
    if chunks <= 512 && rows >= 64 {
        return Mode::Rows(RowMap::Warp { warps: 4 });
    }
    // Few or long rows: a block per row, wider when rows are few.
    let per_thread = if rows < 256 { 4 } else { 8 };
    let threads = ((chunks / per_thread).next_power_of_two() as u32).clamp(64, 1024);
    Mode::Rows(RowMap::Block { threads })
}

/// `__launch_bounds__` for `threads` per block, asking for 512 resident threads per SM.
/// (ptxas 13 given only the block size aims for full occupancy and spills registers
/// to get it; 512 threads allow 128 registers.)
fn launch_bounds(threads: u32) -> String {
    format!(
        "__launch_bounds__({threads}, {})",
        (512 / threads.max(1)).max(1)
    )
}

/// Emits the function `name` computing `nest`; returns its launch (`None` when the nest
/// has no points).
pub(crate) fn emit(
    out: &mut String,
    name: &str,
    sig: &str,
    nest: &Nest,
    params: &[Param],
) -> Result<Option<Launch>> {
    let info = NestInfo::new(nest, params, true);
    let mode = choose_mode(nest, &info);
    let it = info.it();
    let mut em = ExprEmitter::new(&info, 1);
    let outer_vars: Vec<(String, usize)> = nest
        .outer
        .iter()
        .enumerate()
        .map(|(k, &d)| (format!("o{k}"), d))
        .collect();
    let lanes = info.lanes;
    let mut inner_vars: Vec<(String, usize)> = nest
        .inner
        .iter()
        .enumerate()
        .map(|(k, &d)| (format!("i{k}"), d))
        .collect();
    if let Some(last) = inner_vars.last_mut() {
        last.1 /= lanes;
    }
    let rows = nest.outer_points();
    let chunks = nest.inner_points() / lanes;
    let (block, grid, shared, head) = match mode {
        Mode::Elementwise { block } => {
            let points = rows * chunks;
            let mut all = outer_vars.clone();
            all.extend(inner_vars.iter().cloned());
            em.line(&format!(
                "for ({it} t = ({it})blockIdx.x * {block} + ({it})threadIdx.x; t < {points}; t += ({it})gridDim.x * {block}) {{"
            ));
            em.indent += 1;
            em.decompose("t", &all, lanes);
            let roots: Vec<ExprId> = nest.phases.iter().flat_map(phase_roots).collect();
            let list = closure(nest, &roots);
            em.emit_all(&list)?;
            for ph in &nest.phases {
                if let Phase::Store { stores, .. } = ph {
                    em.stores(stores);
                }
            }
            em.indent -= 1;
            em.line("}");
            let grid = c::grid_for(points, block as usize, MAX_BLOCKS);
            let head = launch_bounds(block);
            ([block, 1, 1], [grid, 1, 1], 0, (head, points))
        }
        Mode::Rows(map) => {
            let (t, r) = match map {
                RowMap::Thread { block } => (1u32, block),
                RowMap::Warp { warps } => (32, warps),
                RowMap::Block { threads } => (threads, 1),
            };
            let row_loop = match map {
                RowMap::Thread { block } => format!(
                    "for ({it} row = ({it})blockIdx.x * {block} + ({it})threadIdx.x; row < {rows}; row += ({it})gridDim.x * {block}) {{"
                ),
                RowMap::Warp { warps } => {
                    em.line("const int lane = threadIdx.x;");
                    format!(
                        "for ({it} row = ({it})blockIdx.x * {warps} + ({it})threadIdx.y; row < {rows}; row += ({it})gridDim.x * {warps}) {{"
                    )
                }
                RowMap::Block { .. } => {
                    em.line("const int lane = threadIdx.x;");
                    format!("for ({it} row = blockIdx.x; row < {rows}; row += gridDim.x) {{")
                }
            };
            em.line(&row_loop);
            em.indent += 1;
            em.decompose("row", &outer_vars, 1);
            let shared = rows_body(&mut em, t, &inner_vars, chunks)?;
            em.indent -= 1;
            em.line("}");
            let threads = t * r;
            let grid = c::grid_for(rows, r as usize, MAX_BLOCKS);
            let block = if t == 1 { [r, 1, 1] } else { [t, r, 1] };
            let head = launch_bounds(threads);
            (block, [grid, 1, 1], shared, (head, rows))
        }
    };
    let _ = writeln!(
        out,
        "extern \"C\" __global__ void {} {name}({sig}) {{",
        head.0
    );
    out.push_str(&em.out);
    out.push_str("}\n\n");
    if head.1 == 0 {
        return Ok(None);
    }
    Ok(Some(Launch {
        function: name.to_string(),
        grid,
        block,
        shared_bytes: shared,
    }))
}

/// The per-row phases of a row-wise nest, `t` threads per row. Returns the static shared
/// memory it declares.
fn rows_body(
    em: &mut ExprEmitter,
    t: u32,
    inner_vars: &[(String, usize)],
    chunks: usize,
) -> Result<u32> {
    let nest = em.info.nest;
    let it = em.info.it();
    let lanes = em.info.lanes;
    let mut shared = 0u32;
    for (p, ph) in nest.phases.iter().enumerate() {
        let list = closure(nest, &phase_roots(ph));
        let (outer_list, inner_list): (Vec<ExprId>, Vec<ExprId>) =
            list.iter().partition(|&&e| !em.info.inner_dep(e));
        em.emit_all(&outer_list)?;
        let open_loop = |em: &mut ExprEmitter| {
            if t == 1 {
                em.line(&format!("for ({it} j = 0; j < {chunks}; ++j) {{"));
            } else {
                em.line(&format!("for ({it} j = lane; j < {chunks}; j += {t}) {{"));
            }
            em.indent += 1;
            em.decompose("j", inner_vars, lanes);
            em.open();
        };
        match ph {
            Phase::Reduce(rs) => {
                em.line(&format!("// phase {p}: reduce"));
                for (s, r) in rs.iter().enumerate() {
                    let at = acc_type(r.dtype);
                    em.line(&format!(
                        "{at} acc{p}_{s} = {};",
                        reduce_init(r.kind, r.dtype)
                    ));
                    if matches!(r.kind, ReduceKind::ArgMax { .. }) {
                        let vdt = nest.exprs[r.value.index()].dtype;
                        em.line(&format!(
                            "{} best{p}_{s} = {};",
                            c::compute(vdt),
                            reduce_init(ReduceKind::Max, vdt)
                        ));
                        em.line(&format!("bool found{p}_{s} = false;"));
                    }
                }
                open_loop(em);
                em.emit_all(&inner_list)?;
                for l in 0..lanes {
                    for (s, r) in rs.iter().enumerate() {
                        accumulate(em, p, s, r, l);
                    }
                }
                em.indent -= 1;
                em.line("}");
                em.close();
                if t > 1 {
                    shared += cross_thread(em, p, rs, t);
                }
                for (s, r) in rs.iter().enumerate() {
                    let acc = ExprOp::Acc {
                        phase: p as u16,
                        slot: s as u16,
                    };
                    if let Some(a) = nest.exprs.iter().position(|e| e.op == acc) {
                        let name = if r.dtype == DType::Bool {
                            format!("(acc{p}_{s} != 0)")
                        } else {
                            format!("acc{p}_{s}")
                        };
                        em.bind(ExprId::new(a), vec![name]);
                    }
                }
            }
            Phase::Store {
                looped: true,
                stores,
            } if chunks > 0
                && inner_list.is_empty()
                && stores.iter().all(|s| {
                    (0..nest.inner.len()).all(|k| !s.index.mentions(Var::Inner(k as u8)))
                        && !values_vary(&s.index, &em.info.deps, INNER_MASK)
                }) =>
            {
                // The same stores at every inner point: once is enough.
                em.line(&format!(
                    "// phase {p}: store (the same at every inner point)"
                ));
                if t > 1 {
                    em.line("if (lane == 0) {");
                    em.indent += 1;
                }
                em.stores(stores);
                if t > 1 {
                    em.indent -= 1;
                    em.line("}");
                }
            }
            Phase::Store {
                looped: true,
                stores,
            } => {
                em.line(&format!("// phase {p}: store"));
                open_loop(em);
                em.emit_all(&inner_list)?;
                em.stores(stores);
                em.indent -= 1;
                em.line("}");
                em.close();
            }
            Phase::Store {
                looped: false,
                stores,
            } => {
                em.line(&format!("// phase {p}: store once per row"));
                if !inner_list.is_empty() {
                    return Err(KernelError::Invariant(format!(
                        "phase {p}: a once-per-row store depends on an inner loop"
                    )));
                }
                if t > 1 {
                    em.line("if (lane == 0) {");
                    em.indent += 1;
                }
                em.stores(stores);
                if t > 1 {
                    em.indent -= 1;
                    em.line("}");
                }
            }
        }
    }
    Ok(shared)
}

fn accumulate(em: &mut ExprEmitter, p: usize, s: usize, r: &Reduction, l: usize) {
    let v = em.name(r.value, l);
    let acc = format!("acc{p}_{s}");
    let mask = r.mask.map(|m| em.name(m, l));
    if let ReduceKind::ArgMax { arg } = r.kind {
        let vdt = em.info.nest.exprs[r.value.index()].dtype;
        let a = em.name(arg, l);
        let best = format!("best{p}_{s}");
        let found = format!("found{p}_{s}");
        let better = if vdt.is_float() {
            format!("{v} > {best} || (isnan({v}) && !isnan({best}))")
        } else {
            format!("{v} > {best}")
        };
        let cond = match mask {
            Some(m) => format!("{m} && (!{found} || {better})"),
            None => format!("!{found} || {better}"),
        };
        em.line(&format!(
            "if ({cond}) {{ {best} = {v}; {acc} = {a}; {found} = true; }}"
        ));
        return;
    }
    let v = if r.dtype == DType::Bool {
        format!("(int){v}")
    } else {
        let vdt = em.info.nest.exprs[r.value.index()].dtype;
        if vdt == r.dtype {
            v
        } else {
            cast(vdt, r.dtype, &v)
        }
    };
    let upd = format!("{acc} = {};", combine(r.kind, r.dtype, &acc, &v));
    match mask {
        Some(m) => em.line(&format!("if ({m}) {upd}")),
        None => em.line(&upd),
    }
}

/// Combines per-thread partials of a `t`-thread row; returns the shared memory used.
fn cross_thread(em: &mut ExprEmitter, p: usize, rs: &[Reduction], t: u32) -> u32 {
    let mut shared = 0;
    for (s, r) in rs.iter().enumerate() {
        let acc = format!("acc{p}_{s}");
        let upd = combine(
            r.kind,
            r.dtype,
            &acc,
            &format!("__shfl_xor_sync(0xffffffffu, {acc}, k)"),
        );
        em.line(&format!("for (int k = 16; k > 0; k >>= 1) {acc} = {upd};"));
        if t > 32 {
            let at = acc_type(r.dtype);
            let warps = t / 32;
            em.line(&format!("__shared__ {at} red{p}_{s}[{warps}];"));
            em.line(&format!(
                "if ((lane & 31) == 0) red{p}_{s}[lane >> 5] = {acc};"
            ));
            em.line("__syncthreads();");
            em.line(&format!("{acc} = red{p}_{s}[0];"));
            let upd = combine(r.kind, r.dtype, &acc, &format!("red{p}_{s}[w]"));
            em.line(&format!("for (int w = 1; w < {warps}; ++w) {acc} = {upd};"));
            em.line("__syncthreads();");
            shared += warps * if matches!(at, "int" | "float") { 4 } else { 8 };
        }
    }
    shared
}
