//! A graph compiled for one CUDA device: kernels, one arena, constants, launches.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use cudarc::driver::sys::{CUdeviceptr, CUfunction};
use tessera_codegen::cuda::{
    self, CudaKernel, Launch, STATUS_DIVISION_BY_ZERO, STATUS_INDEX_OUT_OF_RANGE, Step,
};
use tessera_ir::{Graph, Tensor};
use tessera_lower::fusion::Mode;
use tessera_lower::kir::{Body, Kernel};
use tessera_lower::memory::MemoryPlan;
use tessera_lower::{KernelRef, Location, Lowering};

use super::blas::{self, Blas, BlasPlan};
use super::driver::{Buffer, Context, DeviceInfo, Event, GraphExec, Module, Stream, launch};
use super::nvrtc;
use crate::RuntimeError;

/// Who multiplies matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmBackend {
    /// cuBLAS where it can run the product (and is installed), else tessera's kernel.
    Auto,
    /// Always tessera's tiled kernel (epilogue fused).
    Builtin,
    /// cuBLAS for every product it can run; fails if cuBLAS is missing.
    Library,
}

/// How to compile and run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaOptions {
    /// `Fused` (the compiler) or `Eager` (one kernel per op: the GPU eager baseline).
    pub mode: Mode,
    pub gemm: GemmBackend,
    /// Capture a run as a CUDA graph and replay it afterwards.
    pub graph: bool,
    /// Fill the arena with 0xFF bytes before every run, so an element no kernel writes
    /// reads as NaN (or -1) instead of a stale value.
    pub poison: bool,
    pub ordinal: usize,
    /// Directories with `cuda_fp16.h` / `cuda_bf16.h` for NVRTC.
    pub include_dirs: Vec<PathBuf>,
}

impl Default for CudaOptions {
    fn default() -> Self {
        CudaOptions {
            mode: Mode::Fused,
            gemm: GemmBackend::Auto,
            graph: true,
            poison: false,
            ordinal: 0,
            include_dirs: Vec::new(),
        }
    }
}

/// Per-run times of [`CudaModel::time`], milliseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timing {
    pub device_ms: Vec<f64>,
    pub wall_ms: Vec<f64>,
}

/// Device time of one step of a model (a launch or a library GEMM).
#[derive(Clone, Debug, PartialEq)]
pub struct StepTime {
    /// The kernel (`k<position>_<op>`).
    pub kernel: String,
    /// The launched function, or `cublas` for a library GEMM.
    pub function: String,
    /// Median milliseconds over the profiled runs.
    pub ms: f64,
    /// Bytes of the kernel's parameters (each read or written once): a lower bound on
    /// its memory traffic.
    pub bytes: usize,
    /// True for loop-nest kernels (elementwise and reductions): memory-bound by design.
    pub memory_bound: bool,
}

/// Compilation statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompileStats {
    pub kernels: usize,
    /// Distinct kernel sources compiled by NVRTC in this process for this model.
    pub nvrtc_compiles: usize,
    /// Sources found in the process-wide cache.
    pub cache_hits: usize,
    pub nvrtc_seconds: f64,
    pub library_gemms: usize,
    pub builtin_gemms: usize,
    pub arena_bytes: usize,
    pub constant_bytes: usize,
    pub seconds: f64,
}

/// One thing to enqueue.
enum Op {
    Launch {
        kernel: usize,
        function: CUfunction,
        name: String,
        grid: [u32; 3],
        block: [u32; 3],
    },
    Gemm {
        kernel: usize,
        plan: BlasPlan,
        a: CUdeviceptr,
        b: CUdeviceptr,
        acc: CUdeviceptr,
    },
}

/// Compiled images by (source hash, architecture), shared by all models of a process:
/// NVRTC runs once per distinct kernel source.
type ImageCache = Mutex<HashMap<(u64, String), Arc<Vec<u8>>>>;

fn cache() -> &'static ImageCache {
    static CACHE: OnceLock<ImageCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn source_hash(s: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// A compiled model on one device.
pub struct CudaModel {
    graph: Graph,
    info: DeviceInfo,
    kernels: Vec<Kernel>,
    sources: Vec<CudaKernel>,
    ops: Vec<Op>,
    /// Kernel arguments: parameter addresses then the kernel's status word.
    args: Vec<Vec<u64>>,
    memory: MemoryPlan,
    inputs: Vec<Buffer>,
    status: Buffer,
    graph_exec: Option<GraphExec>,
    opts: CudaOptions,
    stats: CompileStats,
    // Drop order: everything using the context first.
    blas: Option<Blas>,
    _modules: Vec<Module>,
    arena: Buffer,
    _consts: Buffer,
    stream: Stream,
    ctx: Context,
}

/// Device and driver information, or why there is no usable GPU.
pub fn probe(ordinal: usize) -> Result<DeviceInfo, RuntimeError> {
    Context::new(ordinal).map(|(_, info)| info)
}

fn align(n: usize) -> usize {
    n.div_ceil(256) * 256
}

/// Compiles `g` for CUDA device `opts.ordinal`.
pub fn compile(g: &Graph, opts: &CudaOptions) -> Result<CudaModel, RuntimeError> {
    let start = Instant::now();
    let (ctx, info) = Context::new(opts.ordinal)?;
    let Lowering {
        kernels,
        memory,
        locations,
        constants,
        code: sources,
        ..
    } = tessera_lower::lower(g, opts.mode, &mut cuda::CudaTarget)?;
    let mut stats = CompileStats {
        kernels: kernels.len(),
        ..CompileStats::default()
    };
    let (const_bytes, const_offset) = pack_constants(g, &constants);
    stats.arena_bytes = memory.peak_bytes();
    stats.constant_bytes = const_bytes.len();

    let stream = Stream::new()?;
    let arena = Buffer::new(memory.peak_bytes(), "the arena")?;
    let consts = Buffer::new(const_bytes.len(), "the constants")?;
    stream.upload(consts.ptr, &const_bytes)?;
    let inputs = g
        .inputs()
        .iter()
        .map(|p| {
            Buffer::new(
                align(g.ty(p.value).size_bytes()),
                &format!("input {:?}", p.name),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let status = Buffer::new(8 * kernels.len().max(1), "the status words")?;
    let addr = |l: Location| -> u64 {
        match l {
            Location::Arena(o) => arena.ptr + o as u64,
            Location::Const(c) => consts.ptr + const_offset[c] as u64,
            Location::Input(i) => inputs[i].ptr,
            Location::Empty | Location::Unused => 0,
        }
    };
    let args: Vec<Vec<u64>> = locations
        .iter()
        .enumerate()
        .map(|(s, l)| {
            let mut a: Vec<u64> = l.iter().map(|&x| addr(x)).collect();
            a.push(status.ptr + 8 * s as u64);
            a
        })
        .collect();
    let blas = library_blas(opts, &sources, &stream)?;

    // Modules: NVRTC to a cubin for this device, once per distinct canonical source
    // (kernels that differ only in name share one), in parallel.
    let arch = format!("sm_{}{}", info.capability.0, info.capability.1);
    let nv_opts = nvrtc::Options {
        target: nvrtc::Target::Cubin(arch.clone()),
        include_dirs: opts.include_dirs.clone(),
        line_info: false,
    };
    let canonical: Vec<String> = sources.iter().map(|c| c.canonical_source()).collect();
    let hashes: Vec<u64> = canonical.iter().map(|c| source_hash(c)).collect();
    let images = compile_images(
        g, &kernels, &canonical, &hashes, &arch, &nv_opts, &mut stats,
    )?;
    let mut modules: Vec<Module> = Vec::new();
    let mut module_of: HashMap<u64, usize> = HashMap::new();
    let mut steps = StepOps {
        g,
        opts,
        args: &args,
        library: blas.is_some(),
        ops: Vec::new(),
        stats: &mut stats,
    };
    for (s, (k, src)) in kernels.iter().zip(&sources).enumerate() {
        let h = hashes[s];
        let mi = match module_of.get(&h) {
            Some(&m) => m,
            None => {
                modules.push(Module::load(&images[&h], &src.name)?);
                module_of.insert(h, modules.len() - 1);
                modules.len() - 1
            }
        };
        steps.kernel(s, k, src, &modules[mi])?;
    }
    let ops = steps.ops;
    stats.seconds = start.elapsed().as_secs_f64();
    Ok(CudaModel {
        graph: g.clone(),
        info,
        kernels,
        sources,
        ops,
        args,
        memory,
        inputs,
        status,
        graph_exec: None,
        opts: opts.clone(),
        stats,
        blas,
        _modules: modules,
        arena,
        _consts: consts,
        stream,
        ctx,
    })
}

/// The constants `constants` of `g` in one buffer, each 256-byte aligned, and the offset
/// of each.
fn pack_constants(g: &Graph, constants: &[tessera_ir::ValueId]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes: Vec<u8> = Vec::new();
    let mut offsets = Vec::with_capacity(constants.len());
    for &v in constants {
        let t = g
            .constant(v)
            .expect("invariant: the driver lists only constants");
        let off = align(bytes.len());
        bytes.resize(off, 0);
        bytes.extend(t.to_le_bytes());
        offsets.push(off);
    }
    (bytes, offsets)
}

/// cuBLAS, when some kernel offers a library GEMM and `opts` want it (and, for
/// [`GemmBackend::Auto`], it is installed).
fn library_blas(
    opts: &CudaOptions,
    sources: &[CudaKernel],
    stream: &Stream,
) -> Result<Option<Blas>, RuntimeError> {
    let wants_library = opts.gemm != GemmBackend::Builtin
        && sources.iter().any(|k| {
            k.steps.iter().any(|s| {
                matches!(
                    s,
                    Step::Gemm {
                        library: Some(_),
                        ..
                    }
                )
            })
        });
    if wants_library && (opts.gemm == GemmBackend::Library || blas::present()) {
        Ok(Some(Blas::new(stream)?))
    } else {
        Ok(None)
    }
}

/// Turns the steps of each kernel into [`Op`]s: launches of its module's functions, or
/// library GEMMs.
struct StepOps<'a> {
    g: &'a Graph,
    opts: &'a CudaOptions,
    /// Kernel arguments, per kernel.
    args: &'a [Vec<u64>],
    /// True if cuBLAS is loaded.
    library: bool,
    ops: Vec<Op>,
    stats: &'a mut CompileStats,
}

impl StepOps<'_> {
    /// The ops of kernel `s` (`k`, printed as `src`, loaded as `module`).
    fn kernel(
        &mut self,
        s: usize,
        k: &Kernel,
        src: &CudaKernel,
        module: &Module,
    ) -> Result<(), RuntimeError> {
        for step in &src.steps {
            match step {
                Step::Launch(l) => self.launch(s, src, module, l)?,
                Step::Gemm {
                    builtin,
                    library,
                    after_library,
                } => {
                    let lib = match library {
                        Some(lg) if self.library => BlasPlan::new(lg).map(|p| (p, lg)),
                        _ => None,
                    };
                    match lib {
                        Some((plan, lg)) => {
                            self.stats.library_gemms += 1;
                            let args = &self.args[s];
                            self.ops.push(Op::Gemm {
                                kernel: s,
                                plan,
                                a: args[lg.a.param.index()],
                                b: args[lg.b.param.index()],
                                acc: args[lg.acc.index()],
                            });
                            for l in after_library {
                                self.launch(s, src, module, l)?;
                            }
                        }
                        None => {
                            if self.opts.gemm == GemmBackend::Library && library.is_some() {
                                return Err(RuntimeError::Kernel {
                                    kernel: KernelRef::new(self.g, &k.name, &k.nodes),
                                    message: "cuBLAS cannot run this product (strides or sizes)"
                                        .into(),
                                });
                            }
                            self.stats.builtin_gemms += 1;
                            for l in builtin {
                                self.launch(s, src, module, l)?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Launch `l` of kernel `s`.
    fn launch(
        &mut self,
        s: usize,
        src: &CudaKernel,
        module: &Module,
        l: &Launch,
    ) -> Result<(), RuntimeError> {
        self.ops.push(Op::Launch {
            kernel: s,
            function: module.function(&src.canonical_function(&l.function))?,
            name: l.function.clone(),
            grid: l.grid,
            block: l.block,
        });
        Ok(())
    }
}

/// Compiled images of every distinct source, by hash: from the process-wide cache, or
/// compiled now with NVRTC on several threads.
fn compile_images(
    g: &Graph,
    kernels: &[Kernel],
    canonical: &[String],
    hashes: &[u64],
    arch: &str,
    nv_opts: &nvrtc::Options,
    stats: &mut CompileStats,
) -> Result<HashMap<u64, Arc<Vec<u8>>>, RuntimeError> {
    let mut images: HashMap<u64, Arc<Vec<u8>>> = HashMap::new();
    let mut todo: Vec<usize> = Vec::new();
    {
        let cache = cache().lock().unwrap_or_else(|e| e.into_inner());
        for (i, &h) in hashes.iter().enumerate() {
            if images.contains_key(&h) || todo.iter().any(|&j| hashes[j] == h) {
                continue;
            }
            match cache.get(&(h, arch.to_string())) {
                Some(img) => {
                    stats.cache_hits += 1;
                    images.insert(h, img.clone());
                }
                None => todo.push(i),
            }
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 16)
        .min(todo.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Result<nvrtc::Compiled, RuntimeError>)>> = Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..threads {
            sc.spawn(|| {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&i) = todo.get(n) else { break };
                    let r = nvrtc::compile(&kernels[i].name, &canonical[i], nv_opts);
                    done.lock().unwrap_or_else(|e| e.into_inner()).push((i, r));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|(i, _)| *i);
    let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
    for (i, r) in done {
        let c = r.map_err(|e| RuntimeError::Kernel {
            kernel: KernelRef::new(g, &kernels[i].name, &kernels[i].nodes),
            message: e.to_string(),
        })?;
        stats.nvrtc_compiles += 1;
        stats.nvrtc_seconds += c.seconds;
        let img = Arc::new(c.image);
        cache.insert((hashes[i], arch.to_string()), img.clone());
        images.insert(hashes[i], img);
    }
    Ok(images)
}

/// Directories commonly holding the CUDA headers NVRTC needs for f16/bf16 kernels
/// (`/usr/local/cuda/include`, `/usr/local/cuda-13.0/include`, `.cuda/nvidia/cu13/include`
/// from the wheels), those that exist.
pub fn standard_include_dirs() -> Vec<PathBuf> {
    [
        "/usr/local/cuda/include",
        "/usr/local/cuda-13.0/include",
        ".cuda/nvidia/cu13/include",
    ]
    .into_iter()
    .map(PathBuf::from)
    .filter(|d| d.join("cuda_fp16.h").exists())
    .collect()
}

impl CudaModel {
    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The kernels, in execution order, and their CUDA sources.
    pub fn kernels(&self) -> impl Iterator<Item = (&Kernel, &CudaKernel)> {
        self.kernels.iter().zip(&self.sources)
    }

    pub fn stats(&self) -> &CompileStats {
        &self.stats
    }

    /// The arena plan.
    pub fn memory(&self) -> &MemoryPlan {
        &self.memory
    }

    fn enqueue(&mut self) -> Result<(), RuntimeError> {
        let (ops, args, stream) = (&self.ops, &mut self.args, &self.stream);
        for op in ops {
            match op {
                Op::Launch {
                    kernel,
                    function,
                    name,
                    grid,
                    block,
                } => launch(*function, name, *grid, *block, stream, &mut args[*kernel])?,
                Op::Gemm {
                    plan, a, b, acc, ..
                } => {
                    let blas = self
                        .blas
                        .as_ref()
                        .ok_or_else(|| RuntimeError::Cuda("cuBLAS handle missing".into()))?;
                    plan.run(blas, *a, *b, *acc)?;
                }
            }
        }
        Ok(())
    }

    /// Runs every kernel once on the inputs already on the device (graph replay when
    /// enabled and captured).
    fn execute(&mut self) -> Result<(), RuntimeError> {
        if self.opts.poison {
            self.stream.memset(self.arena.ptr, 0xff, self.arena.bytes)?;
        }
        self.stream.memset(self.status.ptr, 0, self.status.bytes)?;
        match &self.graph_exec {
            Some(ge) => ge.launch(&self.stream),
            None => self.enqueue(),
        }
    }

    fn upload_inputs(&mut self, inputs: &[Tensor]) -> Result<(), RuntimeError> {
        self.graph.check_inputs(inputs)?;
        for (t, b) in inputs.iter().zip(&self.inputs) {
            self.stream.upload(b.ptr, &t.to_le_bytes())?;
        }
        Ok(())
    }

    /// After the first plain run, captures the launches as a CUDA graph (when enabled).
    fn capture(&mut self) -> Result<(), RuntimeError> {
        if !self.opts.graph || self.graph_exec.is_some() || self.ops.is_empty() {
            return Ok(());
        }
        GraphExec::begin(&self.stream)?;
        let enq = self.enqueue();
        let ended = GraphExec::end(&self.stream);
        enq?;
        self.graph_exec = Some(ended?);
        Ok(())
    }

    fn check_status(&self) -> Result<(), RuntimeError> {
        let mut bytes = vec![0u8; self.status.bytes];
        self.stream.download(&mut bytes, self.status.ptr)?;
        for (k, w) in bytes.chunks_exact(8).enumerate().take(self.kernels.len()) {
            let code = u64::from_le_bytes(w.try_into().expect("invariant: chunks of 8 bytes"));
            if code != 0 {
                let what = match code {
                    STATUS_INDEX_OUT_OF_RANGE => "a gathered index is out of range",
                    STATUS_DIVISION_BY_ZERO => "integer division by zero",
                    _ => "the kernel reported errors (several kinds)",
                };
                let kernel = &self.kernels[k];
                return Err(RuntimeError::Kernel {
                    kernel: KernelRef::new(&self.graph, &kernel.name, &kernel.nodes),
                    message: what.into(),
                });
            }
        }
        Ok(())
    }

    /// Times every step on its own (no CUDA graph): `iters` runs after one warm-up run,
    /// median milliseconds per step.
    pub fn profile(
        &mut self,
        inputs: &[Tensor],
        iters: usize,
    ) -> Result<Vec<StepTime>, RuntimeError> {
        self.ctx.make_current()?;
        self.upload_inputs(inputs)?;
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); self.ops.len()];
        let (a, b) = (Event::new()?, Event::new()?);
        for it in 0..=iters {
            self.stream.memset(self.status.ptr, 0, self.status.bytes)?;
            for (i, op) in self.ops.iter().enumerate() {
                a.record(&self.stream)?;
                match op {
                    Op::Launch {
                        kernel,
                        function,
                        name,
                        grid,
                        block,
                    } => launch(
                        *function,
                        name,
                        *grid,
                        *block,
                        &self.stream,
                        &mut self.args[*kernel],
                    )?,
                    Op::Gemm {
                        plan,
                        a: pa,
                        b: pb,
                        acc,
                        ..
                    } => {
                        let blas = self
                            .blas
                            .as_ref()
                            .ok_or_else(|| RuntimeError::Cuda("cuBLAS handle missing".into()))?;
                        plan.run(blas, *pa, *pb, *acc)?;
                    }
                }
                b.record(&self.stream)?;
                let ms = a.elapsed_ms(&b)? as f64;
                if it > 0 {
                    samples[i].push(ms);
                }
            }
        }
        self.stream.sync()?;
        self.check_status()?;
        let mut out = Vec::new();
        for (op, mut t) in self.ops.iter().zip(samples) {
            t.sort_by(f64::total_cmp);
            let ms = t.get(t.len() / 2).copied().unwrap_or(0.0);
            let (k, function) = match op {
                Op::Launch { kernel, name, .. } => (*kernel, name.clone()),
                Op::Gemm { kernel, .. } => (*kernel, "cublas".to_string()),
            };
            let kern = &self.kernels[k];
            out.push(StepTime {
                kernel: kern.name.clone(),
                function,
                ms,
                bytes: kern
                    .params
                    .iter()
                    .map(|p| p.len * p.dtype.size_bytes())
                    .sum(),
                memory_bound: matches!(kern.body, Body::Loops(_)),
            });
        }
        Ok(out)
    }

    /// Runs the model on `inputs` (one per graph input, in order).
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, RuntimeError> {
        self.ctx.make_current()?;
        self.upload_inputs(inputs)?;
        self.execute()?;
        self.stream.sync()?;
        self.check_status()?;
        self.capture()?;
        let mut outs = Vec::new();
        for p in self.graph.outputs() {
            let ty = self.graph.ty(p.value);
            let t = if let Some(o) = self.memory.offset(p.value) {
                let mut bytes = vec![0u8; ty.size_bytes()];
                self.stream
                    .download(&mut bytes, self.arena.ptr + o as u64)?;
                Tensor::from_le_bytes(ty.dtype, ty.shape.clone(), &bytes)?
            } else if let Some(i) = self.graph.inputs().iter().position(|q| q.value == p.value) {
                inputs[i].clone()
            } else if let Some(t) = self.graph.constant(p.value) {
                t.clone()
            } else {
                return Err(RuntimeError::Cuda(format!(
                    "output {:?} was not computed",
                    p.name
                )));
            };
            outs.push(t);
        }
        Ok(outs)
    }

    /// Times `iters` runs after `warmup` runs (inputs uploaded once, outputs not read
    /// back): device milliseconds from CUDA events around each run, and host wall-clock
    /// milliseconds from before the launch to the end of the run.
    pub fn time(
        &mut self,
        inputs: &[Tensor],
        warmup: usize,
        iters: usize,
    ) -> Result<Timing, RuntimeError> {
        self.ctx.make_current()?;
        self.upload_inputs(inputs)?;
        self.execute()?;
        self.stream.sync()?;
        self.check_status()?;
        self.capture()?;
        for _ in 0..warmup {
            self.execute()?;
        }
        self.stream.sync()?;
        let (a, b) = (Event::new()?, Event::new()?);
        let mut t = Timing::default();
        for _ in 0..iters {
            let start = Instant::now();
            a.record(&self.stream)?;
            self.execute()?;
            b.record(&self.stream)?;
            let device = a.elapsed_ms(&b)? as f64;
            t.wall_ms.push(start.elapsed().as_secs_f64() * 1e3);
            t.device_ms.push(device);
        }
        self.stream.sync()?;
        self.check_status()?;
        Ok(t)
    }
}
