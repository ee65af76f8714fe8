//! The kernel IR: one kernel per fusion group, at loop level.
//!
//! A [`Kernel`] has parameters (buffers: graph inputs, constants, values of the memory
//! plan, scratch) and a [`Body`]:
//!
//! * [`Body::Loops`]: one or more loop [`Nest`]s. A nest has outer loops (independent
//!   points, split across threads) and, per outer point, a sequence of [`Phase`]s over the
//!   inner loops: reductions (whose results later phases use) and stores. Values are a DAG
//!   of scalar [`Expr`]s in topological order; loads and stores address buffers with
//!   [`Index`] expressions, so views are indexing, never copies.
//! * [`Body::Gemm`], [`Body::Conv`]: a GEMM library call per output tile (convolution by
//!   im2col, itself a nest), then an epilogue nest applied to the tile while it is in cache.
//! * [`Body::Attention`]: fused scaled-dot-product attention with an online softmax.
//!
//! Every nest carries [`Hints`]: which loop is vectorized and how wide, the unroll
//! factor, whether the outer loops may be split across threads, and a GPU mapping hint,
//! so a CUDA printer can read the same kernel without changing its meaning.
//!
//! The text form ([`print`]) is canonical and snapshot-tested.

mod index;
mod print;
mod verify;

pub use index::{Atom, Index, Var};
pub use print::print_kernel;
pub use verify::{VerifyError, verify};

use tessera_ir::{BinaryOp, DType, NodeId, UnaryOp, ValueId};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u32);

        impl $name {
            /// The id of position `i`.
            ///
            /// # Panics
            /// If `i` does not fit a `u32` (no kernel has 4 billion parameters or
            /// expressions: the builder would run out of memory first).
            pub fn new(i: usize) -> $name {
                $name(u32::try_from(i).expect("invariant: kernel ids fit in u32"))
            }

            /// The position this id names.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id!(
    /// A kernel parameter: position in [`Kernel::params`]; prints `p3`.
    ParamId,
    "p"
);
id!(
    /// An expression: position in [`Nest::exprs`]; prints `e5`.
    ExprId,
    "e"
);

/// One compiled unit of work.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// `k<position>_<first op>`, unique in a model.
    pub name: String,
    /// The graph nodes it computes, in program order.
    pub nodes: Vec<NodeId>,
    pub params: Vec<Param>,
    pub body: Body,
    /// `(input, output)` parameter pairs the kernel can run in place: every element of the
    /// input is read only at the position the output writes, in the same iteration, before
    /// the write.
    pub in_place: Vec<(ParamId, ParamId)>,
}

/// A buffer a kernel reads or writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub dtype: DType,
    /// Elements.
    pub len: usize,
    pub access: Access,
    pub binding: Binding,
}

impl Param {
    /// Bytes of the buffer.
    pub fn bytes(&self) -> usize {
        self.len * self.dtype.size_bytes()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

impl Access {
    /// The text form's name (`read`, `write`, `read_write`).
    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "read_write",
        }
    }
}

/// What a parameter is bound to at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binding {
    /// A graph value: a graph input, a constant, or a value stored by some kernel.
    Value(ValueId),
    /// Kernel-private scratch memory (an im2col buffer, a GEMM accumulator).
    Scratch,
}

/// What a kernel does.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Loops(Vec<Nest>),
    Gemm(Gemm),
    Conv(Conv),
    Attention(Attention),
}

/// A typed literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lit {
    /// A float, stored as f64 bits.
    F(u64),
    I(i64),
    B(bool),
}

impl Lit {
    pub fn float(v: f64) -> Lit {
        Lit::F(v.to_bits())
    }

    pub fn as_f64(self) -> f64 {
        match self {
            Lit::F(b) => f64::from_bits(b),
            Lit::I(i) => i as f64,
            Lit::B(b) => b as i64 as f64,
        }
    }

    pub fn as_i64(self) -> i64 {
        match self {
            Lit::F(b) => f64::from_bits(b) as i64,
            Lit::I(i) => i,
            Lit::B(b) => b as i64,
        }
    }
}

/// `lo <= index < hi`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Guard {
    pub index: Index,
    pub lo: i64,
    pub hi: i64,
}

/// A scalar operation. Operands are earlier expressions of the same nest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExprOp {
    Lit(Lit),
    /// Element `index` of a parameter.
    Load {
        param: ParamId,
        index: Index,
    },
    /// Element `index` if every guard holds (nothing is read otherwise), else `default`.
    LoadIf {
        param: ParamId,
        index: Index,
        guards: Vec<Guard>,
        default: Lit,
    },
    /// Bool: every guard holds.
    InRange(Vec<Guard>),
    Unary(UnaryOp, ExprId),
    Binary(BinaryOp, ExprId, ExprId),
    /// `cond ? a : b`.
    Select(ExprId, ExprId, ExprId),
    /// Conversion to this expression's dtype with ONNX `Cast` semantics.
    Cast(ExprId),
    /// Result `slot` of reduction phase `phase` for the current outer point.
    Acc {
        phase: u16,
        slot: u16,
    },
    /// An index as an i64 value.
    IndexValue(Index),
    /// An i64 gather index made non-negative (negative counts from the end) and checked
    /// against `dim`; out of range sets the kernel's error status and reads index 0.
    CheckIndex {
        value: ExprId,
        dim: i64,
    },
}

impl ExprOp {
    /// The text form's name of the operation (`load`, `add`, `check_index`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            ExprOp::Lit(_) => "lit",
            ExprOp::Load { .. } => "load",
            ExprOp::LoadIf { .. } => "load_if",
            ExprOp::InRange(_) => "in_range",
            ExprOp::Unary(u, _) => u.name(),
            ExprOp::Binary(b, _, _) => b.name(),
            ExprOp::Select(..) => "select",
            ExprOp::Cast(_) => "cast",
            ExprOp::Acc { .. } => "acc",
            ExprOp::IndexValue(_) => "index",
            ExprOp::CheckIndex { .. } => "check_index",
        }
    }
}

/// One node of a nest's expression DAG.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Expr {
    /// The value's element type (ONNX semantics; backends choose a compute type).
    pub dtype: DType,
    pub op: ExprOp,
}

/// How a reduction combines values. For bool, `Max` is any and `Min` is all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    Sum,
    Prod,
    /// NaN wins and stays; starts at -∞ (the dtype's minimum for integers).
    Max,
    /// NaN wins and stays; starts at +∞.
    Min,
    /// The `arg` (an i64 expression) of the first maximum, with `Max`'s NaN rule; the first
    /// `arg` seen if nothing beats it.
    ArgMax {
        arg: ExprId,
    },
}

/// One accumulator of a reduction phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reduction {
    pub kind: ReduceKind,
    pub value: ExprId,
    /// Only iterations where this bool expression holds contribute.
    pub mask: Option<ExprId>,
    /// Accumulator and result dtype.
    pub dtype: DType,
}

/// A write of `value` to element `index` of `param`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    pub param: ParamId,
    pub index: Index,
    pub value: ExprId,
}

/// One step of the work done per outer point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Loops over the inner space accumulating; results are `Acc` expressions for later
    /// phases.
    Reduce(Vec<Reduction>),
    /// Stores, over the inner space (`looped`) or once per outer point.
    Store { looped: bool, stores: Vec<Store> },
}

/// Which loop a nest vectorizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VectorAxis {
    /// No vectorization.
    None,
    /// The innermost inner loop (rows: reductions and pointwise work along a row).
    Inner,
    /// The innermost outer loop: lanes are neighbouring outer points (windows, reductions
    /// over a strided axis).
    Outer,
}

/// How a GPU printer should map a nest to threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GpuMapping {
    /// One thread per (outer × inner) element, grid-stride, `block` threads per block.
    Elementwise { block: u32 },
    /// One block of `block` threads per outer point; reductions across the block
    /// (warp shuffles, then shared memory).
    RowPerBlock { block: u32 },
    /// One thread per outer point, looping over the inner space.
    ThreadPerRow { block: u32 },
}

/// Execution hints. They never change what a nest computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hints {
    pub vector: VectorAxis,
    /// Lanes (4 for f32 on the CPU: Cranelift's widest type on x86_64 is 128 bits).
    pub width: u8,
    /// Vectors processed per unrolled iteration (independent accumulators).
    pub unroll: u8,
    /// True if outer points may run on different threads.
    pub parallel: bool,
    pub gpu: GpuMapping,
}

/// A loop nest: `for o in outer { for phase { for i in inner { ... } } }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Nest {
    pub outer: Vec<usize>,
    pub inner: Vec<usize>,
    pub exprs: Vec<Expr>,
    pub phases: Vec<Phase>,
    /// How to run it; never changes what it computes.
    pub hints: Hints,
}

impl Nest {
    /// Outer points (product of the outer extents).
    pub fn outer_points(&self) -> usize {
        self.outer.iter().product()
    }

    /// Inner points per outer point.
    pub fn inner_points(&self) -> usize {
        self.inner.iter().product()
    }
}

/// A matrix operand: element `(batch…, r, c)` at `batch_offset + r·row_stride +
/// c·col_stride`, where `batch_offset` is an index over `Var::Outer(i)` = batch index `i`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatView {
    pub param: ParamId,
    pub batch_offset: Index,
    pub row_stride: i64,
    pub col_stride: i64,
}

/// `acc[batch…, m, n] = alpha · Σ_k a[batch…, m, k] · b[batch…, k, n]`, then the epilogue.
#[derive(Clone, Debug, PartialEq)]
pub struct Gemm {
    pub dtype: DType,
    pub batch: Vec<usize>,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: MatView,
    pub b: MatView,
    /// Contiguous `[batch…, m, n]` accumulator.
    pub acc: ParamId,
    pub alpha: f64,
    /// Outer loop over `batch·m` rows, inner over `n` columns, reading `acc`.
    pub epilogue: Option<Nest>,
}

/// Convolution as im2col + GEMM per image and group, tile by tile.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub dtype: DType,
    pub x: ParamId,
    pub w: ParamId,
    /// Contiguous `[n, m, out spatial…]` accumulator.
    pub acc: ParamId,
    /// `[cg·Πkernel, Πout spatial]` column buffer, absent for 1×1 stride-1 unpadded convs.
    pub col: Option<ParamId>,
    pub batch: usize,
    pub channels: usize,
    pub out_channels: usize,
    pub group: usize,
    pub in_spatial: Vec<usize>,
    pub kernel: Vec<usize>,
    pub out_spatial: Vec<usize>,
    /// Per spatial axis: stride, dilation and begin padding. `im2col` already encodes
    /// them in its indexing; they are repeated here so a runtime may fill `col` with a
    /// native routine (row copies) that computes exactly what the nest computes.
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads_begin: Vec<usize>,
    /// Fills `col` for one image and group: outer `[rows, K]` where rows are the output
    /// positions but the last spatial axis, inner the last output axis; reads `x` from the
    /// image-and-group's first channel.
    pub im2col: Option<Nest>,
    /// Outer loop over `n·m` rows, inner over the output positions, reading `acc`.
    pub epilogue: Option<Nest>,
}

/// `out[b, s, :] = softmax(q[b,s,:]·k[b,:,:]ᵀ·scale + mask[b,s,:]) · v[b]`, computed in
/// blocks of `block_q` queries against blocks of `block_k` keys with an online softmax,
/// so no `s × t` score matrix is ever stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Attention {
    pub dtype: DType,
    pub batch: Vec<usize>,
    pub s: usize,
    pub t: usize,
    pub d: usize,
    pub e: usize,
    pub scale: f64,
    pub q: MatView,
    pub k: MatView,
    pub v: MatView,
    pub mask: Option<MatView>,
    /// Contiguous `[batch…, s, e]` output.
    pub out: ParamId,
    pub block_q: usize,
    pub block_k: usize,
}

/// Bitset of the loop variables an expression depends on: bit `k` for `Outer(k)`, bit
/// `32 + k` for `Inner(k)`.
pub fn var_deps(nest: &Nest) -> Vec<u64> {
    fn bit(v: Var) -> u64 {
        match v {
            Var::Outer(k) => 1 << k,
            Var::Inner(k) => 1 << (32 + k as u32),
        }
    }
    fn index_deps(i: &Index, deps: &[u64]) -> u64 {
        let mut m = 0;
        for (a, _) in i.terms() {
            m |= match a {
                Atom::Var(v, _) => bit(*v),
                Atom::Div(e, _) | Atom::Mod(e, _) => index_deps(e, deps),
                Atom::Value(x, _) => deps[x.index()],
            };
        }
        m
    }
    let inner_mask: u64 = 0xffff_ffff << 32;
    let mut deps = vec![0u64; nest.exprs.len()];
    for (i, e) in nest.exprs.iter().enumerate() {
        deps[i] = match &e.op {
            ExprOp::Lit(_) => 0,
            ExprOp::Load { index, .. } => index_deps(index, &deps),
            ExprOp::LoadIf { index, guards, .. } => {
                guards.iter().fold(index_deps(index, &deps), |m, g| {
                    m | index_deps(&g.index, &deps)
                })
            }
            ExprOp::InRange(gs) => gs.iter().fold(0, |m, g| m | index_deps(&g.index, &deps)),
            ExprOp::Unary(_, a) | ExprOp::Cast(a) => deps[(*a).index()],
            ExprOp::CheckIndex { value, .. } => deps[(*value).index()],
            ExprOp::Binary(_, a, b) => deps[(*a).index()] | deps[(*b).index()],
            ExprOp::Select(c, a, b) => deps[(*c).index()] | deps[(*a).index()] | deps[(*b).index()],
            ExprOp::IndexValue(ix) => index_deps(ix, &deps),
            ExprOp::Acc { phase, slot } => match &nest.phases[*phase as usize] {
                Phase::Reduce(rs) => {
                    let r = &rs[*slot as usize];
                    let mut m = deps[r.value.index()];
                    if let Some(k) = r.mask {
                        m |= deps[k.index()];
                    }
                    if let ReduceKind::ArgMax { arg } = r.kind {
                        m |= deps[arg.index()];
                    }
                    m & !inner_mask
                }
                Phase::Store { .. } => 0,
            },
        };
    }
    deps
}
