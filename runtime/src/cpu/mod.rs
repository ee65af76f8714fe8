//! The compiled CPU backend.
//!
//! [`compile`] lowers the graph through the shared driver ([`tessera_lower::lower`]: fusion
//! plan, kernels, verification, one arena, parameter locations), supplying the part that
//! is the CPU's: every loop nest JIT-compiled with Cranelift.
//! [`CpuModel::run`] then executes the kernels in order on a thread pool: loop nests split
//! over their outer points, GEMMs (the `gemm` crate) split into output tiles with the
//! epilogue applied to each tile right after it is computed, convolutions as im2col + GEMM
//! per tile of output rows (1-D and 2-D columns filled by a native routine, `Im2col`,
//! others by the kernel's im2col nest), attention per block of queries.
//!
//! Results do not depend on the thread count: work is split into tiles chosen from the
//! problem shape alone, and no sum is ever split across threads.
//!
//! [`Mode::Eager`] compiles one kernel per node with no fusion: GraphNet's "eager"
//! baseline on the same runtime.

mod attention;
mod choice;
mod native;
mod pool;
mod search;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tessera_codegen::cranelift::{
    Jit, JitCode, NestFn, STATUS_DIVISION_BY_ZERO, STATUS_INDEX_OUT_OF_RANGE, parallel_units,
};
use tessera_ir::{DType, Element, Graph, Tensor, ValueId, dispatch_dtype, with_data};
use tessera_lower::fusion::FusionPlan;
use tessera_lower::kir::{Attention, Body, Conv, Gemm, Kernel, Nest};
use tessera_lower::memory::MemoryPlan;

use tessera_kernels::gemm::{BSource, PackedB, View, sgemm};
use tessera_kernels::transpose::transpose;
use tessera_lower::{KernelRef, Location, Lowering, Target};

pub use choice::ConvAlgo;
pub use pool::Pool;
pub use search::{
    Alternative, Decision, Predictor, Search, SearchOptions, SearchReport, Way, fingerprint,
};
pub use tessera_kernels::Isa;
pub use tessera_kernels::direct::Form;
pub use tessera_lower::fusion::Mode;

use crate::RuntimeError;

/// How to compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuOptions {
    pub mode: Mode,
    /// Threads, including the caller's (at least 1).
    pub threads: usize,
    /// The instruction set of the native kernels (GEMM, convolutions): the machine's best
    /// by default; [`Isa::Portable`] forces the fallback (tests run both).
    pub isa: Isa,
}

impl Default for CpuOptions {
    fn default() -> Self {
        CpuOptions {
            mode: Mode::Fused,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            isa: Isa::detect(),
        }
    }
}

/// Below this much work (elements × inner points, or multiply-adds) a kernel runs on
/// the calling thread.
const PARALLEL_WORK: usize = 1 << 15;

struct KernelExec {
    kernel: Kernel,
    /// A GEMM's constant B, or a small 1×1 convolution's transposed weights
    /// ([`transposed`]), packed into panels at compile time (f32).
    packed_b: Option<PackedB>,
    /// A convolution's columns packed per run, kept to reuse the allocation (runs are
    /// serialized by the model's state mutex; the lock is never contended).
    scratch: Mutex<PackedB>,
    /// A transposed convolution's `Xᵀ` per run ([`transposed`]; kept for its
    /// allocation, like `scratch`).
    transposed: Mutex<Vec<f32>>,
    /// An f32 attention's keys and values packed per run, one per batch element (kept
    /// for their allocations, like `scratch`).
    heads: Mutex<Vec<attention::HeadPack>>,
    /// How each nest of the body runs (loops; im2col then epilogue for others).
    fns: Vec<NestCode>,
    /// Batch offsets of GEMM/attention operands.
    offsets: Vec<Vec<isize>>,
    /// A GEMM whose batches run as one `(batch·m) × n` product ([`folds_batch`]).
    fold_batch: bool,
    /// A convolution's algorithm ([`choice::default_algo`] unless a search chose).
    conv: Option<ConvAlgo>,
    /// Runs on the calling thread alone (a search found the pool's hand-off costs more
    /// than the second thread gains); the split into tiles, and so every bit of the
    /// result, is the same either way.
    serial: bool,
}

/// The threads one kernel runs on: the pool, or the calling thread alone.
#[derive(Clone, Copy)]
struct Par<'a> {
    pool: &'a Pool,
    threads: usize,
}

impl Par<'_> {
    fn threads(self) -> usize {
        self.threads
    }

    /// Runs `f(0..tasks)`, on the pool unless this kernel is serial.
    fn run(self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.threads > 1 {
            self.pool.run(tasks, f);
        } else {
            (0..tasks).for_each(f);
        }
    }
}

struct Arena {
    ptr: *mut u8,
    size: usize,
}

impl Arena {
    fn new(size: usize) -> Arena {
        if size == 0 {
            return Arena {
                ptr: std::ptr::NonNull::<u64>::dangling().as_ptr() as *mut u8,
                size,
            };
        }
        let layout = std::alloc::Layout::from_size_align(size, 64)
            .expect("invariant: the arena size fits a layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Arena { ptr, size }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if self.size > 0 {
            let layout = std::alloc::Layout::from_size_align(self.size, 64)
                .expect("invariant: the arena size fits a layout");
            // SAFETY: allocated in `Arena::new` with this layout.
            unsafe { std::alloc::dealloc(self.ptr, layout) };
        }
    }
}

/// Per-run mutable state: the arena and the parameter tables.
struct State {
    arena: Arena,
    ptrs: Vec<Vec<*mut u8>>,
}

// SAFETY: the raw pointers point into the arena (owned here) or into tensors the model
// owns or the caller lends for one run; access is serialized by the model's mutex.
unsafe impl Send for State {}

/// A compiled model.
pub struct CpuModel {
    graph: Graph,
    plan: FusionPlan,
    kernels: Vec<KernelExec>,
    /// Where each kernel's parameters live (the driver's locations).
    locations: Vec<Vec<Location>>,
    /// Keeps the constants the parameter tables point into alive.
    _consts: Vec<Tensor>,
    code: JitCode,
    memory: MemoryPlan,
    pool: std::sync::Arc<Pool>,
    /// The instruction set the native kernels run with.
    isa: Isa,
    state: Mutex<State>,
    compile_seconds: f64,
}

/// The CPU's part of the lowering driver: every loop nest becomes a native pointwise
/// program when it qualifies and the machine has AVX2+FMA ([`native`]), else Cranelift
/// JIT code (GEMM, convolution and attention bodies run natively; only their im2col and
/// epilogue nests are compiled). Every scratch buffer gets arena memory.
struct CpuTarget {
    isa: Isa,
}

/// How one nest runs.
enum NestCode {
    /// Function `i` of the JIT module.
    Jit(usize),
    Native(tessera_kernels::pointwise::Program),
}

/// A nest ready to call, borrowed from its model.
#[derive(Clone, Copy)]
enum NestRun<'a> {
    Jit(NestFn),
    Native(&'a tessera_kernels::pointwise::Program, Isa),
}

impl NestRun<'_> {
    /// Runs units `lo..hi`, columns `c0..c1` (the [`NestFn`] convention).
    ///
    /// # Safety
    /// As [`NestFn`]: `ptrs` is the kernel's parameter table, the ranges lie in the nest.
    unsafe fn call(
        self,
        ptrs: *const *mut u8,
        status: *mut u64,
        lo: u64,
        hi: u64,
        c0: u64,
        c1: u64,
    ) {
        match self {
            // SAFETY: forwarded.
            NestRun::Jit(f) => unsafe { f(ptrs, status, lo, hi, c0, c1) },
            // SAFETY: forwarded; native programs take outer points as units (only nests
            // that are not outer-vectorized qualify) and never write the status word.
            NestRun::Native(p, isa) => unsafe {
                tessera_kernels::pointwise::run(
                    isa,
                    p,
                    ptrs,
                    lo as usize,
                    hi as usize,
                    c0 as usize,
                    c1 as usize,
                )
            },
        }
    }
}

/// The JIT code and, per kernel, how each of its nests runs.
struct CpuCode {
    code: JitCode,
    fns: Vec<Vec<NestCode>>,
}

impl Target for CpuTarget {
    type Code = CpuCode;
    type Error = RuntimeError;

    fn emit(&mut self, g: &Graph, kernels: &[Kernel]) -> Result<CpuCode, RuntimeError> {
        let mut jit = Jit::new()?;
        let mut fns = Vec::with_capacity(kernels.len());
        for k in kernels {
            let kref = KernelRef::new(g, &k.name, &k.nodes);
            let nests: Vec<&Nest> = match &k.body {
                Body::Loops(n) => n.iter().collect(),
                Body::Gemm(gm) => gm.epilogue.iter().collect(),
                Body::Conv(c) => c.im2col.iter().chain(c.epilogue.iter()).collect(),
                Body::Attention(_) => Vec::new(),
            };
            let mut ids = Vec::with_capacity(nests.len());
            for n in nests {
                let native = match self.isa {
                    Isa::Avx2Fma | Isa::Avx512 => native::program(n, &k.params),
                    Isa::Portable => None,
                };
                ids.push(match native {
                    Some(p) => NestCode::Native(p),
                    None => NestCode::Jit(jit.add_nest(&kref, n, &k.params)?),
                });
            }
            fns.push(ids);
        }
        Ok(CpuCode {
            code: jit.finish()?,
            fns,
        })
    }
}

#[derive(Clone, Copy)]
struct SendPtr<T>(T);
// SAFETY: used only to pass pointer tables to pool tasks that the caller waits for.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

fn tensor_ptr(t: &Tensor) -> *mut u8 {
    with_data!(t.data(), v => v.as_ptr() as *mut u8)
}

/// The B operand of an f32 GEMM kernel packed into panels, when it is a constant that
/// every batch element reads at the same offset (weights): packed once here, never per run.
fn pack_constant_b(
    k: &Kernel,
    locs: &[Location],
    consts: &[Tensor],
    offsets: &[Vec<isize>],
) -> Option<PackedB> {
    let Body::Gemm(gm) = &k.body else {
        return None;
    };
    let Location::Const(c) = locs[gm.b.param.index()] else {
        return None;
    };
    let off = *offsets[1].first()?;
    if gm.dtype != DType::F32 || gm.k == 0 || offsets[1].iter().any(|&o| o != off) {
        return None;
    }
    let t = &consts[c];
    let v = View {
        ptr: tensor_ptr(t) as *const f32,
        rs: gm.b.row_stride as isize,
        cs: gm.b.col_stride as isize,
    };
    // SAFETY: the kernel's view addresses the constant's elements (the builder derived it
    // from the constant's shape; kir::verify checked the parameter).
    Some(unsafe {
        PackedB::pack(
            View {
                ptr: v.ptr.wrapping_offset(off),
                ..v
            },
            gm.k,
            gm.n,
        )
    })
}

thread_local! {
    /// The `positions × channels` product tile of a transposed 1×1 convolution.
    static TILE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `Wᵀ` (`channels·Πkernel × out_channels`) of a convolution that runs
/// [`ConvAlgo::Transposed`] (its weights are a constant), packed once here.
fn pack_transposed_weights(k: &Kernel, locs: &[Location], consts: &[Tensor]) -> Option<PackedB> {
    let Body::Conv(c) = &k.body else {
        return None;
    };
    let Location::Const(w) = locs[c.w.index()] else {
        return None;
    };
    let kk = c.channels * c.kernel.iter().product::<usize>();
    let v = View {
        ptr: tensor_ptr(&consts[w]) as *const f32,
        rs: 1,
        cs: kk as isize,
    };
    // SAFETY: the weights are `[out_channels, channels, kernel…]` (one group).
    Some(unsafe { PackedB::pack(v, kk, c.out_channels) })
}

/// Whether a GEMM's batches are one taller product: every batch reads the same B, and
/// batch `i`'s rows of A start where batch `i − 1`'s would continue (offset `i·m` rows),
/// as for a `[b, s, k] × [k, n]` linear layer over a contiguous activation. The output
/// is `[batch, m, n]` contiguous, so it is the `(batch·m) × n` product; one call keeps
/// its row tiles large (ConvNeXt's `[1, 56, 56, c]` linears were 56 calls of 56 rows).
fn folds_batch(k: &Kernel, offsets: &[Vec<isize>]) -> bool {
    let Body::Gemm(gm) = &k.body else {
        return false;
    };
    let (Some(a), Some(b)) = (offsets.first(), offsets.get(1)) else {
        return false;
    };
    let step = gm.m as isize * gm.a.row_stride as isize;
    a.len() > 1
        && b.iter().all(|&o| Some(&o) == b.first())
        && a.iter()
            .enumerate()
            .all(|(i, &o)| o == a[0] + i as isize * step)
}

/// Compiles `g` for the CPU through the lowering driver ([`tessera_lower::lower`]).
pub fn compile(g: &Graph, opts: &CpuOptions) -> Result<CpuModel, RuntimeError> {
    let start = Instant::now();
    let isa = opts.isa.or_portable();
    let Lowering {
        plan,
        kernels,
        memory,
        locations,
        constants,
        code: CpuCode { code, fns },
    } = tessera_lower::lower(
        g,
        opts.mode,
        &mut CpuTarget {
            isa: opts.isa.or_portable(),
        },
    )?;
    let consts: Vec<Tensor> = constants
        .iter()
        .map(|&v| {
            g.constant(v)
                .cloned()
                .expect("invariant: the driver lists only constants")
        })
        .collect();
    let execs: Vec<KernelExec> = kernels
        .into_iter()
        .zip(fns)
        .zip(&locations)
        .map(|((k, fns), locs)| {
            let offsets = match &k.body {
                Body::Gemm(gm) => vec![
                    attention::batch_offsets(&gm.a.batch_offset, &gm.batch),
                    attention::batch_offsets(&gm.b.batch_offset, &gm.batch),
                ],
                Body::Attention(a) => vec![
                    attention::batch_offsets(&a.q.batch_offset, &a.batch),
                    attention::batch_offsets(&a.k.batch_offset, &a.batch),
                    attention::batch_offsets(&a.v.batch_offset, &a.batch),
                    match &a.mask {
                        Some(m) => attention::batch_offsets(&m.batch_offset, &a.batch),
                        None => Vec::new(),
                    },
                ],
                _ => Vec::new(),
            };
            let fold_batch = folds_batch(&k, &offsets);
            let conv = match &k.body {
                Body::Conv(c) => Some(choice::default_algo(
                    isa,
                    c,
                    matches!(locs[c.w.index()], Location::Const(_)),
                )),
                _ => None,
            };
            let packed_b = match conv {
                Some(ConvAlgo::Transposed) => pack_transposed_weights(&k, locs, &consts),
                _ => pack_constant_b(&k, locs, &consts, &offsets),
            };
            KernelExec {
                kernel: k,
                packed_b,
                fold_batch,
                conv,
                serial: false,
                scratch: Mutex::new(PackedB::default()),
                transposed: Mutex::new(Vec::new()),
                heads: Mutex::new(Vec::new()),
                fns,
                offsets,
            }
        })
        .collect();
    let arena = Arena::new(memory.peak_bytes());
    let ptrs = locations
        .iter()
        .map(|locs| {
            locs.iter()
                .map(|l| match *l {
                    // SAFETY: offsets lie inside the arena (the planner's peak bounds them).
                    Location::Arena(o) => unsafe { arena.ptr.add(o) },
                    Location::Const(c) => tensor_ptr(&consts[c]),
                    Location::Input(_) => std::ptr::null_mut(),
                    Location::Empty | Location::Unused => {
                        std::ptr::NonNull::<u64>::dangling().as_ptr() as *mut u8
                    }
                })
                .collect()
        })
        .collect();
    Ok(CpuModel {
        graph: g.clone(),
        plan,
        kernels: execs,
        locations,
        _consts: consts,
        code,
        memory,
        pool: Pool::shared(opts.threads),
        isa: opts.isa.or_portable(),
        state: Mutex::new(State { arena, ptrs }),
        compile_seconds: start.elapsed().as_secs_f64(),
    })
}

impl CpuModel {
    /// The graph this model was compiled from.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn plan(&self) -> &FusionPlan {
        &self.plan
    }

    /// The kernels, in execution order.
    pub fn kernels(&self) -> impl Iterator<Item = &Kernel> {
        self.kernels.iter().map(|k| &k.kernel)
    }

    /// The memory plan of the arena the kernels run in: lifetimes, offsets, peak and
    /// liveness lower bound.
    pub fn memory(&self) -> &MemoryPlan {
        &self.memory
    }

    /// Arena offset of a stored value.
    pub fn offset(&self, v: ValueId) -> Option<usize> {
        self.memory.offset(v)
    }

    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// The instruction set the native kernels run with.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Whether kernel `i` is loop nests that all run as native pointwise programs (rather
    /// than Cranelift code).
    pub fn runs_native_nests(&self, i: usize) -> bool {
        self.kernels.get(i).is_some_and(|e| {
            matches!(e.kernel.body, Body::Loops(_))
                && !e.fns.is_empty()
                && e.fns.iter().all(|f| matches!(f, NestCode::Native(_)))
        })
    }

    /// Seconds spent in [`compile`].
    pub fn compile_seconds(&self) -> f64 {
        self.compile_seconds
    }

    /// Runs the model on `inputs` (one per graph input, in order).
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, RuntimeError> {
        self.run_timed(inputs, None)
    }

    /// [`CpuModel::run`], also returning each kernel's wall time in seconds.
    pub fn run_profiled(&self, inputs: &[Tensor]) -> Result<(Vec<Tensor>, Vec<f64>), RuntimeError> {
        let mut times = Vec::with_capacity(self.kernels.len());
        let outs = self.run_timed(inputs, Some(&mut times))?;
        Ok((outs, times))
    }

    /// Bytes kernel `i` moves (see [`tessera_lower::fusion::metric`]).
    pub fn kernel_bytes(&self, i: usize) -> u64 {
        let grp = &self.plan.groups[i];
        tessera_lower::fusion::metric::kernel_bytes(&self.graph, &grp.inputs, &grp.outputs)
    }

    fn run_timed(
        &self,
        inputs: &[Tensor],
        mut times: Option<&mut Vec<f64>>,
    ) -> Result<Vec<Tensor>, RuntimeError> {
        self.graph.check_inputs(inputs)?;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *st;
        for (k, locs) in self.locations.iter().enumerate() {
            for (pi, l) in locs.iter().enumerate() {
                if let Location::Input(i) = *l {
                    st.ptrs[k][pi] = tensor_ptr(&inputs[i]);
                }
            }
        }
        for (k, e) in self.kernels.iter().enumerate() {
            let status = AtomicU64::new(0);
            let start = times.as_ref().map(|_| Instant::now());
            self.exec(e, &st.ptrs[k], &status);
            if let (Some(t), Some(s)) = (times.as_deref_mut(), start) {
                t.push(s.elapsed().as_secs_f64());
            }
            let code = status.load(Ordering::Acquire);
            if code != 0 {
                let what = match code {
                    STATUS_INDEX_OUT_OF_RANGE => "a gathered index is out of range",
                    STATUS_DIVISION_BY_ZERO => "integer division by zero",
                    _ => "the kernel reported an error",
                };
                return Err(RuntimeError::Kernel {
                    kernel: KernelRef::new(&self.graph, &e.kernel.name, &e.kernel.nodes),
                    message: what.into(),
                });
            }
        }
        let mut outs = Vec::new();
        for p in self.graph.outputs() {
            let ty = self.graph.ty(p.value);
            let t = if ty.shape.numel() == 0 {
                Tensor::full(ty.dtype, ty.shape.clone(), 0.0)
            } else if let Some(o) = self.memory.offset(p.value) {
                // SAFETY: the value was written at this offset and the arena holds it.
                unsafe { read_tensor(ty.dtype, ty.shape.clone(), st.arena.ptr.add(o)) }
            } else if let Some(i) = self.graph.inputs().iter().position(|q| q.value == p.value) {
                inputs[i].clone()
            } else if let Some(t) = self.graph.constant(p.value) {
                t.clone()
            } else {
                let n = self.graph.producer(p.value);
                return Err(RuntimeError::Kernel {
                    kernel: KernelRef::new(&self.graph, "(none)", n.as_slice()),
                    message: format!("output {:?} was not computed", p.name),
                });
            };
            outs.push(t);
        }
        Ok(outs)
    }

    fn f<'a>(&'a self, code: &'a NestCode) -> NestRun<'a> {
        match code {
            NestCode::Jit(i) => NestRun::Jit(self.code.get(*i)),
            NestCode::Native(p) => NestRun::Native(p, self.isa),
        }
    }

    fn exec(&self, e: &KernelExec, ptrs: &[*mut u8], status: &AtomicU64) {
        self.exec_as(e, e.conv, e.packed_b.as_ref(), e.serial, ptrs, status)
    }

    /// [`CpuModel::exec`] with a convolution's algorithm and packed operand given (the
    /// search times alternatives this way without changing the kernel).
    fn exec_as(
        &self,
        e: &KernelExec,
        conv: Option<ConvAlgo>,
        packed: Option<&PackedB>,
        serial: bool,
        ptrs: &[*mut u8],
        status: &AtomicU64,
    ) {
        let par = Par {
            pool: &self.pool,
            threads: if serial { 1 } else { self.pool.threads() },
        };
        match &e.kernel.body {
            Body::Loops(nests) => {
                for (n, fi) in nests.iter().zip(&e.fns) {
                    self.exec_nest(par, n, self.f(fi), ptrs, status);
                }
            }
            Body::Gemm(gm) => match gm.dtype {
                DType::F64 => self.exec_gemm::<f64>(par, e, gm, ptrs, status),
                _ => self.exec_gemm::<f32>(par, e, gm, ptrs, status),
            },
            Body::Conv(c) => match (conv, packed, choice::direct_geometry(c)) {
                (Some(ConvAlgo::Transposed), Some(pw), _) => {
                    self.exec_transposed(par, e, c, pw, ptrs, status)
                }
                (Some(ConvAlgo::Direct(form)), _, Some(g)) => {
                    self.exec_direct(par, e, c, &g, form, ptrs, status)
                }
                _ if c.dtype == DType::F64 => self.exec_conv::<f64>(par, e, c, ptrs, status),
                _ => self.exec_conv::<f32>(par, e, c, ptrs, status),
            },
            Body::Attention(a) => self.exec_attention(par, e, a, ptrs),
        }
    }

    fn exec_nest(&self, par: Par, n: &Nest, f: NestRun, ptrs: &[*mut u8], status: &AtomicU64) {
        let units = parallel_units(n);
        let cols = n.inner.last().copied().unwrap_or(0) as u64;
        let work = n.outer_points() * n.inner_points().max(1);
        let st = status.as_ptr();
        let p = ptrs.as_ptr();
        if par.threads() == 1 || work < PARALLEL_WORK || units < 2 {
            // SAFETY: the parameter table matches the nest's kernel and the range is whole.
            unsafe { f.call(p, st, 0, units as u64, 0, cols) };
            return;
        }
        let tasks = units.min(par.threads() * 4);
        let chunk = units.div_ceil(tasks);
        let (sp, sst) = (SendPtr(p), SendPtr(st));
        par.run(units.div_ceil(chunk), &|t| {
            let lo = t * chunk;
            let hi = ((t + 1) * chunk).min(units);
            let (p, st) = (sp, sst);
            // SAFETY: as above; tasks cover disjoint outer ranges.
            unsafe { f.call(p.0, st.0, lo as u64, hi as u64, 0, cols) };
        });
    }

    fn exec_gemm<T: GemmScalar>(
        &self,
        par: Par,
        e: &KernelExec,
        gm: &Gemm,
        ptrs: &[*mut u8],
        status: &AtomicU64,
    ) {
        let (m, n, k) = (gm.m, gm.n, gm.k);
        let nb: usize = gm.batch.iter().product();
        if m == 0 || n == 0 || nb == 0 {
            return;
        }
        // Batches that continue A's rows and share B are one taller product.
        let (nb, m) = if e.fold_batch { (1, nb * m) } else { (nb, m) };
        let (rt, ct) = tiles(m, n, k);
        let (mt, nt) = (m.div_ceil(rt), n.div_ceil(ct));
        let tasks = nb * mt * nt;
        let epi = e.fns.first().map(|i| self.f(i));
        let a = ptrs[gm.a.param.index()] as *const T;
        let b = ptrs[gm.b.param.index()] as *const T;
        let acc = ptrs[gm.acc.index()] as *mut T;
        let alpha = T::from_f64(gm.alpha);
        let (sp, sst) = (SendPtr(ptrs.as_ptr()), SendPtr(status.as_ptr()));
        let (sa, sb, sacc) = (SendPtr(a), SendPtr(b), SendPtr(acc));
        let task = |t: usize| {
            let (sp, sst, sa, sb, sacc) = (sp, sst, sa, sb, sacc);
            let bi = t / (mt * nt);
            let r0 = (t / nt) % mt * rt;
            let c0 = t % nt * ct;
            let (r1, c1) = ((r0 + rt).min(m), (c0 + ct).min(n));
            let ap =
                sa.0.wrapping_offset(e.offsets[0][bi] + r0 as isize * gm.a.row_stride as isize);
            let bp =
                sb.0.wrapping_offset(e.offsets[1][bi] + c0 as isize * gm.b.col_stride as isize);
            let dst = sacc.0.wrapping_add((bi * m + r0) * n + c0);
            // SAFETY: the views address the operands' elements; the tile lies inside acc.
            unsafe {
                if k == 0 {
                    for r in 0..r1 - r0 {
                        for c in 0..c1 - c0 {
                            *dst.add(r * n + c) = T::default();
                        }
                    }
                } else {
                    T::tile(
                        self.isa,
                        (r1 - r0, c1 - c0, k),
                        alpha,
                        (ap, gm.a.row_stride as isize, gm.a.col_stride as isize),
                        (bp, gm.b.row_stride as isize, gm.b.col_stride as isize),
                        e.packed_b.as_ref().map(|pb| (pb, c0)),
                        dst,
                        n,
                    );
                }
                if let Some(f) = epi {
                    let row = (bi * m) as u64;
                    f.call(
                        sp.0,
                        sst.0,
                        row + r0 as u64,
                        row + r1 as u64,
                        c0 as u64,
                        c1 as u64,
                    );
                }
            }
        };
        if par.threads() == 1 || tasks == 1 || m * n * k < PARALLEL_WORK {
            (0..tasks).for_each(task);
        } else {
            par.run(tasks, &task);
        }
    }

    /// A convolution's epilogue function, for the bodies that run no im2col nest: the
    /// kernel's nests are the im2col's (when present), then the epilogue's.
    fn conv_epilogue<'a>(&'a self, e: &'a KernelExec, c: &Conv) -> Option<NestRun<'a>> {
        c.epilogue
            .as_ref()
            .and_then(|_| e.fns.get(usize::from(c.im2col.is_some())))
            .map(|i| self.f(i))
    }

    /// A depthwise or small-group 2-D convolution: the native direct kernel per block of
    /// output channels (no columns), then the epilogue over the block's rows.
    #[allow(clippy::too_many_arguments)]
    fn exec_direct(
        &self,
        par: Par,
        e: &KernelExec,
        c: &Conv,
        geom: &tessera_kernels::direct::Geometry,
        form: tessera_kernels::direct::Form,
        ptrs: &[*mut u8],
        status: &AtomicU64,
    ) {
        let epi = self.conv_epilogue(e, c);
        let p = geom.oh * geom.ow;
        let oc = c.out_channels;
        // Channel blocks from the shape only: about 64 KiB of output each, whole groups,
        // and whole vectors of channels in the channel-blocked form (depthwise, one
        // channel per group; a block of five would fill five of a vector's eight lanes).
        let unit = if form == tessera_kernels::direct::Form::Blocked {
            tessera_kernels::direct::channel_block(self.isa, geom)
        } else {
            geom.multiplier.max(1)
        };
        let mut cb = (16384 / p.max(1))
            .clamp(1, oc.max(1))
            .next_multiple_of(unit);
        // Fewer blocks than threads (an RGB stem is one group of 16–32 channels): split
        // groups into whole passes of four channels; each part copies the group's input
        // again, which the second thread more than pays for. Channel ranges never change
        // the bits.
        let threads = par.threads();
        if threads > 1 && c.batch * oc.div_ceil(cb) < threads && unit > 4 {
            cb = oc.div_ceil(threads).next_multiple_of(4);
        }
        let blocks = oc.div_ceil(cb);
        let tasks = c.batch * blocks;
        let (x, w, acc) = (
            SendPtr(ptrs[c.x.index()] as *const f32),
            SendPtr(ptrs[c.w.index()] as *const f32),
            SendPtr(ptrs[c.acc.index()] as *mut f32),
        );
        let (sp, sst) = (SendPtr(ptrs.as_ptr()), SendPtr(status.as_ptr()));
        let in_plane: usize = c.in_spatial.iter().product();
        let task = |t: usize| {
            let (x, w, acc, sp, sst) = (x, w, acc, sp, sst);
            let (n, b) = (t / blocks, t % blocks);
            let (o0, o1) = (b * cb, ((b + 1) * cb).min(oc));
            let row = (n * oc) as u64;
            // The epilogue runs on each piece of output as the kernel finishes it, while
            // it is in cache.
            let mut done = |a: usize, b: usize, p0: usize, p1: usize| {
                if let Some(f) = epi {
                    // SAFETY: rows a..b, columns p0..p1 of image n are final; the kernel
                    // was verified.
                    unsafe {
                        f.call(
                            sp.0,
                            sst.0,
                            row + a as u64,
                            row + b as u64,
                            p0 as u64,
                            p1 as u64,
                        )
                    };
                }
            };
            // SAFETY: image n's input and output planes; the kernel was verified.
            unsafe {
                tessera_kernels::direct::run_form(
                    self.isa,
                    form,
                    geom,
                    x.0.wrapping_add(n * c.channels * in_plane),
                    w.0,
                    acc.0.wrapping_add(n * oc * p),
                    o0,
                    o1,
                    &mut done,
                );
            }
        };
        let work = c.batch * oc * p * geom.kh * geom.kw * geom.group_channels;
        if par.threads() == 1 || tasks == 1 || work < PARALLEL_WORK {
            (0..tasks).for_each(task);
        } else {
            par.run(tasks, &task);
        }
    }

    /// A [`transposed`] convolution: per image and block of output channels,
    /// `Xᵀ · Wᵀ` into a per-thread tile, transposed into the accumulator, then the
    /// epilogue over the block's rows.
    fn exec_transposed(
        &self,
        par: Par,
        e: &KernelExec,
        c: &Conv,
        pw: &PackedB,
        ptrs: &[*mut u8],
        status: &AtomicU64,
    ) {
        let epi = self.conv_epilogue(e, c);
        let p: usize = c.out_spatial.iter().product();
        let s_in: usize = c.in_spatial.iter().product();
        let (k, m) = (
            c.channels * c.kernel.iter().product::<usize>(),
            c.out_channels,
        );
        // Four panels of output channels per task.
        const BLOCK: usize = 64;
        let blocks = m.div_ceil(BLOCK);
        let tasks = c.batch * blocks;
        let (x, acc) = (
            SendPtr(ptrs[c.x.index()] as *const f32),
            SendPtr(ptrs[c.acc.index()] as *mut f32),
        );
        let (sp, sst) = (SendPtr(ptrs.as_ptr()), SendPtr(status.as_ptr()));
        // colᵀ (or Xᵀ) of every image, contiguous (`p × k` each), once: the GEMM reads
        // it in place.
        let im2col = Im2col::new(c);
        let col = c.col.map(|q| ptrs[q.index()] as *mut f32);
        let mut xt = e.transposed.lock().unwrap_or_else(|p| p.into_inner());
        // Every element is written below: no clearing.
        xt.resize(c.batch * p * k, 0.0);
        for (n, img) in xt.chunks_exact_mut(p * k).enumerate() {
            let src = x.0.wrapping_add(n * c.channels * s_in);
            let src = match (&im2col, col) {
                (Some(geom), Some(cp)) => {
                    let ow = *c.out_spatial.last().unwrap_or(&1);
                    // SAFETY: image n's input and the `k × p` column buffer.
                    unsafe { geom.fill(src, cp, 0, p / ow.max(1)) };
                    cp as *const f32
                }
                _ => src,
            };
            // SAFETY: the source is `k × p`, the image's part of `xt` `p × k`.
            unsafe { transpose(self.isa, (k, p), src, p, img.as_mut_ptr(), k) };
        }
        let xt = SendPtr(xt.as_ptr());
        let task = |t: usize| {
            let (xt_, acc, sp, sst) = (xt, acc, sp, sst);
            let (n, b) = (t / blocks, t % blocks);
            let (o0, o1) = (b * BLOCK, ((b + 1) * BLOCK).min(m));
            let nb = o1 - o0;
            let xt = View {
                ptr: xt_.0.wrapping_add(n * p * k),
                rs: k as isize,
                cs: 1,
            };
            TILE.with(|tile| {
                let mut tile = tile.borrow_mut();
                tile.resize(p * nb, 0.0);
                let bs = BSource::Packed { b: pw, col0: o0 };
                // SAFETY: image n's input is `k × p`; the packs hold `k × m`; the tile
                // holds `p × nb`.
                unsafe { sgemm(self.isa, p, nb, k, 1.0, xt, bs, tile.as_mut_ptr(), nb) };
                // SAFETY: accumulator rows (n, o0..o1) hold p elements each.
                unsafe {
                    transpose(
                        self.isa,
                        (p, nb),
                        tile.as_ptr(),
                        nb,
                        acc.0.add((n * m + o0) * p),
                        p,
                    )
                };
            });
            if let Some(f) = epi {
                let r = (n * m) as u64;
                // SAFETY: the epilogue covers rows of this block only.
                unsafe { f.call(sp.0, sst.0, r + o0 as u64, r + o1 as u64, 0, p as u64) };
            }
        };
        if par.threads() == 1 || tasks == 1 || m * p * k < PARALLEL_WORK {
            (0..tasks).for_each(task);
        } else {
            par.run(tasks, &task);
        }
    }

    fn exec_conv<T: GemmScalar>(
        &self,
        par: Par,
        e: &KernelExec,
        c: &Conv,
        ptrs: &[*mut u8],
        status: &AtomicU64,
    ) {
        let p: usize = c.out_spatial.iter().product();
        let ow = *c.out_spatial.last().unwrap_or(&1);
        let rows = p / ow.max(1);
        let cg = c.channels / c.group;
        let mg = c.out_channels / c.group;
        let kk = cg * c.kernel.iter().product::<usize>();
        let s_in: usize = c.in_spatial.iter().product();
        if p == 0 || mg == 0 {
            return;
        }
        let mut fi = e.fns.iter();
        let im2col = c.im2col.as_ref().and_then(|_| fi.next()).map(|i| self.f(i));
        let epi = c
            .epilogue
            .as_ref()
            .and_then(|_| fi.next())
            .map(|i| self.f(i));
        // Output rows of about 256 columns per tile, and blocks of output channels too
        // only when that leaves a thread without two tiles: one block of channels fills
        // each tile's columns and multiplies them while they are in cache, where blocks
        // would share one im2col of the whole plane written out and packed again (a 3×3
        // conv with 96 input channels at 28×28: 2.7 MB, twice). Sums never depend on the
        // tiling, so the thread count may choose it.
        let rb = (256 / ow.max(1)).clamp(1, rows.max(1));
        let col_tiles = rows.div_ceil(rb);
        let m_want = (2 * par.threads() / col_tiles).clamp(1, (mg / 16).max(1));
        let mb = mg.div_ceil(m_want).next_multiple_of(8).min(mg);
        let m_tiles = mg.div_ceil(mb);
        let x = ptrs[c.x.index()] as *const T;
        let w = ptrs[c.w.index()] as *const T;
        let acc = ptrs[c.acc.index()] as *mut T;
        let col = c.col.map(|q| ptrs[q.index()] as *const T);
        let native = Im2col::new(c);
        let big = mg * p * kk >= PARALLEL_WORK && par.threads() > 1;
        let run = |tasks: usize, f: &(dyn Fn(usize) + Sync)| {
            if big {
                par.run(tasks, f);
            } else {
                (0..tasks).for_each(f);
            }
        };
        for n in 0..c.batch {
            for gi in 0..c.group {
                let xs = x.wrapping_add((n * c.channels + gi * cg) * s_in);
                let (sx, sw, sacc, scol) = (SendPtr(xs), SendPtr(w), SendPtr(acc), SendPtr(col));
                let (sp, sst) = (SendPtr(ptrs), SendPtr(status.as_ptr()));
                let fill = |ct: usize| {
                    let (sx, sp, sst, scol) = (sx, sp, sst, scol);
                    let (r0, r1) = (ct * rb, ((ct + 1) * rb).min(rows));
                    if let (Some(geom), Some(cp)) = (&native, scol.0) {
                        // SAFETY: the image/group slice holds `cg` channels of the input
                        // and `col` holds `kk · p` elements (checked when built).
                        unsafe { geom.fill(sx.0, cp as *mut T, r0, r1) };
                    } else if let Some(f) = im2col {
                        let mut table = sp.0.to_vec();
                        table[c.x.index()] = sx.0 as *mut u8;
                        // SAFETY: the image/group slice and the column buffer are valid.
                        unsafe {
                            f.call(
                                table.as_ptr(),
                                sst.0,
                                (r0 * kk) as u64,
                                (r1 * kk) as u64,
                                0,
                                ow as u64,
                            )
                        };
                    }
                };
                let product =
                    |(m0, m1): (usize, usize), (c0, c1): (usize, usize), pb: Option<&PackedB>| {
                        let (sx, sw, sacc, scol, sp, sst) = (sx, sw, sacc, scol, sp, sst);
                        let rhs = match scol.0 {
                            Some(cp) => cp.wrapping_add(c0),
                            None => sx.0.wrapping_add(c0),
                        };
                        let row = n * c.out_channels + gi * mg + m0;
                        let dst = sacc.0.wrapping_add(row * p + c0);
                        // SAFETY: weights, columns and accumulator tile are inside their buffers.
                        unsafe {
                            T::tile(
                                self.isa,
                                (m1 - m0, c1 - c0, kk),
                                T::from_f64(1.0),
                                (sw.0.wrapping_add((gi * mg + m0) * kk), kk as isize, 1),
                                (rhs, p as isize, 1),
                                pb.map(|b| (b, c0)),
                                dst,
                                p,
                            );
                            if let Some(f) = epi {
                                let (r, rr) = (row as u64, (row + m1 - m0) as u64);
                                f.call(sp.0.as_ptr(), sst.0, r, rr, c0 as u64, c1 as u64);
                            }
                        }
                    };
                let row_cols = |ct: usize| (ct * rb * ow, ((ct + 1) * rb).min(rows) * ow);
                if m_tiles == 1 {
                    // Each tile fills its columns and multiplies while they are in cache.
                    run(col_tiles, &|ct| {
                        fill(ct);
                        product((0, mg), row_cols(ct), None);
                    });
                    continue;
                }
                run(col_tiles, &fill);
                // Every block of output channels reads all the columns: pack them once
                // (not once per block), then tile the columns in multiples of the panel.
                let mut scratch = e.scratch.lock().unwrap_or_else(|p| p.into_inner());
                let base = scol.0.unwrap_or(sx.0);
                // SAFETY: the columns (or the 1×1 input slice) are `kk` rows of `p`.
                let packed = unsafe { T::repack(&mut scratch, base, p, kk, p) };
                let pb = packed.then_some(&*scratch);
                const PACKED_COLS: usize = 256;
                let ctiles = if packed {
                    p.div_ceil(PACKED_COLS)
                } else {
                    col_tiles
                };
                let cols = |ct: usize| {
                    if packed {
                        (ct * PACKED_COLS, ((ct + 1) * PACKED_COLS).min(p))
                    } else {
                        row_cols(ct)
                    }
                };
                run(m_tiles * ctiles, &|t| {
                    let (mt, ct) = (t / ctiles, t % ctiles);
                    product((mt * mb, ((mt + 1) * mb).min(mg)), cols(ct), pb);
                });
            }
        }
    }

    fn exec_attention(&self, par: Par, e: &KernelExec, a: &Attention, ptrs: &[*mut u8]) {
        let nb: usize = a.batch.iter().product();
        let qbs = a.s.div_ceil(attention::block_rows(a));
        let tasks = nb * qbs;
        let params = &e.kernel.params;
        let parallel = par.threads() > 1 && tasks > 1;
        let run = |ops: &attention::Operands<f32>| {
            let task = |t: usize| {
                // SAFETY: views were checked when the kernel was built.
                unsafe { attention::block(self.isa, a, ops, t / qbs, t % qbs) }
            };
            if parallel {
                par.run(tasks, &task);
            } else {
                (0..tasks).for_each(task);
            }
        };
        // f32: keys and values packed once per batch element (in parallel), then every
        // query block on the packs.
        let run_packed = |ops: &mut attention::Operands<f32>| {
            let mut heads = e.heads.lock().unwrap_or_else(|p| p.into_inner());
            let mut packs = std::mem::take(&mut *heads);
            packs.resize_with(nb, Default::default);
            {
                let slots: Vec<Mutex<&mut attention::HeadPack>> =
                    packs.iter_mut().map(Mutex::new).collect();
                let pack = |b: usize| {
                    let mut slot = slots[b].lock().unwrap_or_else(|p| p.into_inner());
                    // SAFETY: views were checked when the kernel was built.
                    unsafe { attention::pack(a, ops, b, &mut slot) };
                };
                if parallel && nb > 1 {
                    par.run(nb, &pack);
                } else {
                    (0..nb).for_each(pack);
                }
            }
            ops.packs = packs;
            run(ops);
            *heads = std::mem::take(&mut ops.packs);
        };
        let offs = [
            e.offsets[0].clone(),
            e.offsets[1].clone(),
            e.offsets[2].clone(),
            e.offsets[3].clone(),
        ];
        match a.dtype {
            DType::F32 => {
                let mut ops = attention::Operands {
                    q: ptrs[a.q.param.index()] as *const f32,
                    k: ptrs[a.k.param.index()] as *const f32,
                    v: ptrs[a.v.param.index()] as *const f32,
                    mask: a.mask.as_ref().map(|m| ptrs[m.param.index()] as *const f32),
                    out: ptrs[a.out.index()] as *mut f32,
                    offs,
                    packs: Vec::new(),
                };
                run_packed(&mut ops);
            }
            DType::F64 => {
                let ops = attention::Operands {
                    q: ptrs[a.q.param.index()] as *const f64,
                    k: ptrs[a.k.param.index()] as *const f64,
                    v: ptrs[a.v.param.index()] as *const f64,
                    mask: a.mask.as_ref().map(|m| ptrs[m.param.index()] as *const f64),
                    out: ptrs[a.out.index()] as *mut f64,
                    offs,
                    packs: Vec::new(),
                };
                let task = |t: usize| {
                    // SAFETY: views were checked when the kernel was built.
                    unsafe { attention::block(self.isa, a, &ops, t / qbs, t % qbs) }
                };
                (0..tasks).for_each(task);
            }
            half_type => {
                // f16/bf16: widen whole operands to f32, run, narrow the output.
                let widen = |pi: tessera_lower::kir::ParamId| -> Vec<f32> {
                    let p = &params[pi.index()];
                    // SAFETY: parameter `pi` holds `p.len` elements of `p.dtype`.
                    unsafe {
                        read_tensor(
                            p.dtype,
                            tessera_ir::Shape::from_dims(&[p.len]),
                            ptrs[pi.index()],
                        )
                    }
                    .to_f64_vec()
                    .into_iter()
                    .map(|x| x as f32)
                    .collect()
                };
                let (q, k, v) = (widen(a.q.param), widen(a.k.param), widen(a.v.param));
                let mask = a.mask.as_ref().map(|m| widen(m.param));
                let out_len = params[a.out.index()].len;
                let mut out = vec![0f32; out_len];
                let mut ops = attention::Operands {
                    q: q.as_ptr(),
                    k: k.as_ptr(),
                    v: v.as_ptr(),
                    mask: mask.as_ref().map(|m| m.as_ptr()),
                    out: out.as_mut_ptr(),
                    offs,
                    packs: Vec::new(),
                };
                run_packed(&mut ops);
                let t = Tensor::from_vec(tessera_ir::Shape::from_dims(&[out_len]), out)
                    .expect("invariant: one element per output")
                    .cast(half_type);
                let bytes = t.to_le_bytes();
                // SAFETY: the output parameter holds `out_len` elements of `half_type`.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptrs[a.out.index()], bytes.len())
                };
            }
        }
    }
}

/// GEMM output tile `(rows, cols)`, from the problem shape only.
fn tiles(m: usize, n: usize, k: usize) -> (usize, usize) {
    if m * n * k < 1 << 18 {
        return (m, n);
    }
    let ct = if n > 512 { 256 } else { n };
    let col_tiles = n.div_ceil(ct);
    let want_rows = (8 / col_tiles).max(1);
    let rt = if want_rows > 1 && m >= 64 {
        m.div_ceil(want_rows).next_multiple_of(16).min(m)
    } else {
        m
    };
    (rt, ct)
}

/// A native im2col for 1-D and 2-D convolutions: fills the rows of `col` that the
/// kernel's JIT-compiled `im2col` nest fills, with the same values (a load of `x` or zero
/// in the padding), as row copies instead of per-element guarded loads.
struct Im2col {
    /// Input height and width (height 1 for 1-D).
    h: usize,
    w: usize,
    /// Kernel height and width, output width.
    kh: usize,
    kw: usize,
    ow: usize,
    /// Stride, dilation, begin padding: (height, width).
    s: (usize, usize),
    d: (usize, usize),
    pad: (usize, usize),
    /// `cg · kh · kw` and the number of output positions.
    kk: usize,
    p: usize,
}

impl Im2col {
    fn new(c: &Conv) -> Option<Im2col> {
        c.col?;
        let cg = c.channels / c.group.max(1);
        let p: usize = c.out_spatial.iter().product();
        let at = |v: &[usize], i: usize| v.get(i).copied();
        let geom = match c.in_spatial.len() {
            1 => Im2col {
                h: 1,
                w: c.in_spatial[0],
                kh: 1,
                kw: c.kernel[0],
                ow: c.out_spatial[0],
                s: (1, at(&c.strides, 0)?),
                d: (1, at(&c.dilations, 0)?),
                pad: (0, at(&c.pads_begin, 0)?),
                kk: cg * c.kernel[0],
                p,
            },
            2 => Im2col {
                h: c.in_spatial[0],
                w: c.in_spatial[1],
                kh: c.kernel[0],
                kw: c.kernel[1],
                ow: c.out_spatial[1],
                s: (at(&c.strides, 0)?, at(&c.strides, 1)?),
                d: (at(&c.dilations, 0)?, at(&c.dilations, 1)?),
                pad: (at(&c.pads_begin, 0)?, at(&c.pads_begin, 1)?),
                kk: cg * c.kernel[0] * c.kernel[1],
                p,
            },
            _ => return None,
        };
        (geom.s.1 > 0 && geom.ow > 0).then_some(geom)
    }

    /// Fills output rows `r0..r1` (output positions but the last axis) of every column.
    ///
    /// # Safety
    /// `x` points at `kk / (kh·kw)` channels of `h × w` elements, `col` at `kk · p`.
    unsafe fn fill<T: Copy + Default>(&self, x: *const T, col: *mut T, r0: usize, r1: usize) {
        let nk = self.kh * self.kw;
        let (w, ow, sw) = (self.w as i64, self.ow, self.s.1 as i64);
        for k in 0..self.kk {
            let (ci, kr) = (k / nk, k % nk);
            let (ky, kx) = (kr / self.kw, kr % self.kw);
            // Output columns whose input column lies inside the row: lo ≤ o < hi.
            let base = (kx * self.d.1) as i64 - self.pad.1 as i64;
            let lo = if base >= 0 { 0 } else { (-base + sw - 1) / sw };
            let hi = if w - base <= 0 {
                0
            } else {
                (w - base + sw - 1) / sw
            };
            let lo = (lo.max(0) as usize).min(ow);
            let hi = (hi.max(0) as usize).clamp(lo, ow);
            for r in r0..r1 {
                // SAFETY (all accesses): k < kk, r < p / ow, and the input index is
                // checked against the row bounds above.
                let dst = unsafe { col.add(k * self.p + r * ow) };
                let iy = (r * self.s.0 + ky * self.d.0) as i64 - self.pad.0 as i64;
                if iy < 0 || iy >= self.h as i64 {
                    unsafe { std::slice::from_raw_parts_mut(dst, ow) }.fill(T::default());
                    continue;
                }
                let row = unsafe { x.add((ci * self.h + iy as usize) * self.w) };
                let out = unsafe { std::slice::from_raw_parts_mut(dst, ow) };
                out[..lo].fill(T::default());
                out[hi..].fill(T::default());
                if hi == lo {
                    continue;
                }
                let start = lo as i64 * sw + base;
                if sw == 1 {
                    let src =
                        unsafe { std::slice::from_raw_parts(row.add(start as usize), hi - lo) };
                    out[lo..hi].copy_from_slice(src);
                } else if sw == 2 {
                    // Stride 2 (stems, downsampling): every other element of a slice, a
                    // loop the compiler vectorizes with shuffles.
                    let n = hi - lo;
                    let src =
                        unsafe { std::slice::from_raw_parts(row.add(start as usize), 2 * n - 1) };
                    for (o, pair) in out[lo..hi].iter_mut().zip(src.chunks(2)) {
                        *o = pair[0];
                    }
                } else {
                    for (j, o) in out[lo..hi].iter_mut().enumerate() {
                        *o = unsafe { *row.add(start as usize + j * self.s.1) };
                    }
                }
            }
        }
    }
}

pub(crate) trait GemmScalar: Copy + Default + 'static + Send + Sync {
    fn from_f64(v: f64) -> Self;

    /// Packs the `k × n` matrix at `b` (row stride `rs`, contiguous rows) into `buf` for
    /// [`GemmScalar::tile`]; false when this type has no packed form (then `tile` packs
    /// per call).
    ///
    /// # Safety
    /// `b` must address `k` rows of `n` elements at stride `rs`.
    unsafe fn repack(buf: &mut PackedB, b: *const Self, rs: usize, k: usize, n: usize) -> bool;

    /// `dst[m×n]` (row stride `ldc`) `= alpha · A · B` for one tile, `(m, n, k) = mnk`,
    /// `k > 0`: A element `(r, c)` at `a.0 + r·a.1 + c·a.2`, B likewise, or columns
    /// `col0..col0 + n` of `packed` when given (f32 only).
    ///
    /// # Safety
    /// The views address their operands' elements; `dst` holds the tile.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        isa: Isa,
        mnk: (usize, usize, usize),
        alpha: Self,
        a: (*const Self, isize, isize),
        b: (*const Self, isize, isize),
        packed: Option<(&PackedB, usize)>,
        dst: *mut Self,
        ldc: usize,
    );
}

impl GemmScalar for f32 {
    fn from_f64(v: f64) -> f32 {
        v as f32
    }

    unsafe fn repack(buf: &mut PackedB, b: *const f32, rs: usize, k: usize, n: usize) -> bool {
        let v = View {
            ptr: b,
            rs: rs as isize,
            cs: 1,
        };
        // SAFETY: forwarded contract.
        unsafe { buf.repack(v, k, n) };
        true
    }

    unsafe fn tile(
        isa: Isa,
        (m, n, k): (usize, usize, usize),
        alpha: f32,
        a: (*const f32, isize, isize),
        b: (*const f32, isize, isize),
        packed: Option<(&PackedB, usize)>,
        dst: *mut f32,
        ldc: usize,
    ) {
        let av = View {
            ptr: a.0,
            rs: a.1,
            cs: a.2,
        };
        let bs = match packed {
            Some((b, col0)) => BSource::Packed { b, col0 },
            None => BSource::View(View {
                ptr: b.0,
                rs: b.1,
                cs: b.2,
            }),
        };
        // SAFETY: forwarded.
        unsafe { sgemm(isa, m, n, k, alpha, av, bs, dst, ldc) }
    }
}

impl GemmScalar for f64 {
    fn from_f64(v: f64) -> f64 {
        v
    }

    unsafe fn repack(_: &mut PackedB, _: *const f64, _: usize, _: usize, _: usize) -> bool {
        false
    }

    unsafe fn tile(
        _: Isa,
        (m, n, k): (usize, usize, usize),
        alpha: f64,
        a: (*const f64, isize, isize),
        b: (*const f64, isize, isize),
        _: Option<(&PackedB, usize)>,
        dst: *mut f64,
        ldc: usize,
    ) {
        // SAFETY: forwarded; the `gemm` crate reads the views by their strides.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst,
                1,
                ldc as isize,
                false,
                a.0,
                a.2,
                a.1,
                b.0,
                b.2,
                b.1,
                0.0,
                alpha,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        }
    }
}

/// Copies `shape.numel()` elements of `dtype` at `p` into a tensor.
///
/// # Safety
/// `p` must point to that many initialized elements (bools as 0/1 bytes).
unsafe fn read_tensor(dtype: DType, shape: tessera_ir::Shape, p: *const u8) -> Tensor {
    unsafe fn go<T: Element>(shape: tessera_ir::Shape, p: *const u8) -> Tensor {
        let n = shape.numel();
        // SAFETY: the caller guarantees `n` valid elements of `T` at `p`.
        let v = unsafe { std::slice::from_raw_parts(p as *const T, n) }.to_vec();
        Tensor::from_vec(shape, v).expect("invariant: one element per position")
    }
    // SAFETY: forwarded contract.
    unsafe { dispatch_dtype!(dtype, go(shape, p)) }
}

#[cfg(test)]
mod tests;
