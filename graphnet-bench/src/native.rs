//! Native runs: GraphNet's measurement protocol on tessera's own backends.
//!
//! For each sample directory (the format of `samples/README.md`), in sorted order and
//! restricted to one [`Shard`] if asked:
//!
//! 1. skip it if its result file already exists (an interrupted run resumes);
//! 2. import the model and load its inputs and reference outputs;
//! 3. measure the baseline ("eager") variant, then the compiled one. A variant is either
//!    one of tessera's backends, compiled here (timed separately) and run with GraphNet's
//!    protocol — one untimed call whose outputs are kept, `warmup` untimed calls, `trials`
//!    timed calls, repeated up to `max_remeasure` times while IQR/median exceeds 0.2 —
//!    or an external [`BaselineFile`] of measurements taken elsewhere (PyTorch eager,
//!    TorchInductor) with the same protocol;
//! 5. compare the compiled outputs with the sample's reference outputs
//!    ([`crate::compare_outputs`]) and write one [`SampleResult`] atomically.
//!
//! This module is the only part of the crate that uses the compiler; the scoring core
//! stays independent of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tessera::ir::{DType as IrDType, Graph, Tensor};
use tessera::sample::Sample;

use crate::compare::{OutputView, Values, compare_outputs};
use crate::error::{BenchError, Result};
use crate::record::{RunOutcome, SampleResult, result_file_name, write_result};
use crate::shard::Shard;
use crate::timing::{TimingStats, timing_stats};
use crate::tolerance::DType;

/// A backend that can run a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The reference interpreter (the oracle; slow by design).
    Reference,
    /// tessera's eager mode: every op its own kernel, no rewrites, no fusion.
    Eager,
    /// tessera's compiled CPU backend.
    Cpu,
    /// tessera's CUDA backend.
    Cuda,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Reference => "reference",
            Backend::Eager => "eager",
            Backend::Cpu => "cpu",
            Backend::Cuda => "cuda",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "reference" => Backend::Reference,
            "eager" => Backend::Eager,
            "cpu" => Backend::Cpu,
            "cuda" => Backend::Cuda,
            other => {
                return Err(format!(
                    "unknown backend {other:?} (reference, eager, cpu, cuda)"
                ));
            }
        })
    }
}

/// Something compiled that runs on inputs.
pub trait Executable {
    /// Runs once; outputs in graph order.
    fn run(&mut self, inputs: &[Tensor]) -> std::result::Result<Vec<Tensor>, String>;
}

struct ReferenceExec(Graph);

impl Executable for ReferenceExec {
    fn run(&mut self, inputs: &[Tensor]) -> std::result::Result<Vec<Tensor>, String> {
        tessera::reference::run(&self.0, inputs).map_err(|e| e.to_string())
    }
}

struct CpuExec(tessera::CompiledModel);

impl Executable for CpuExec {
    fn run(&mut self, inputs: &[Tensor]) -> std::result::Result<Vec<Tensor>, String> {
        self.0.run(inputs).map_err(|e| e.to_string())
    }
}

fn compile_cpu(
    graph: &Graph,
    options: tessera::Options,
) -> std::result::Result<Box<dyn Executable>, String> {
    tessera::compile(graph, options)
        .map(|m| Box::new(CpuExec(m)) as Box<dyn Executable>)
        .map_err(|e| e.to_string())
}

/// Prepares `graph` for `backend` (this is the timed "compile" step).
pub fn prepare(
    backend: Backend,
    graph: &Graph,
) -> std::result::Result<Box<dyn Executable>, String> {
    match backend {
        Backend::Reference => Ok(Box::new(ReferenceExec(graph.clone()))),
        Backend::Eager => compile_cpu(graph, tessera::Options::eager()),
        Backend::Cpu => compile_cpu(graph, tessera::Options::default()),
        Backend::Cuda => compile_cuda(graph),
    }
}

#[cfg(feature = "cuda")]
struct CudaExec(tessera::runtime::cuda::CudaModel);

#[cfg(feature = "cuda")]
impl Executable for CudaExec {
    fn run(&mut self, inputs: &[Tensor]) -> std::result::Result<Vec<Tensor>, String> {
        self.0.run(inputs).map_err(|e| e.to_string())
    }
}

/// tessera's CUDA backend on GPU 0 (fails with the reason when there is no GPU).
#[cfg(feature = "cuda")]
fn compile_cuda(graph: &Graph) -> std::result::Result<Box<dyn Executable>, String> {
    use tessera::runtime::cuda::{CudaOptions, standard_include_dirs};
    let opts = CudaOptions {
        include_dirs: standard_include_dirs(),
        ..CudaOptions::default()
    };
    // Rewrites priced for the GPU the graph is compiled for.
    let h200 = tessera::passes::cost::DeviceProfile::h200();
    tessera::compile_cuda(graph, "default", &h200, &opts)
        .map(|m| Box::new(CudaExec(m)) as Box<dyn Executable>)
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "cuda"))]
fn compile_cuda(_: &Graph) -> std::result::Result<Box<dyn Executable>, String> {
    Err(
        "backend cuda is not available in this build (build graphnet-bench with --features cuda)"
            .into(),
    )
}

/// GraphNet's timing protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocol {
    pub warmup: usize,
    pub trials: usize,
    /// Extra measurement rounds when a round is noisy (IQR/median > 0.2).
    pub max_remeasure: usize,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            warmup: 3,
            trials: 5,
            max_remeasure: 3,
        }
    }
}

/// One untimed call (its outputs are returned), warmups, then timed trials, repeated while
/// noisy up to `max_remeasure` times.
pub fn measure(
    exec: &mut dyn Executable,
    inputs: &[Tensor],
    protocol: Protocol,
) -> std::result::Result<(Vec<Tensor>, TimingStats), String> {
    let outputs = exec.run(inputs)?;
    for _ in 0..protocol.warmup {
        exec.run(inputs)?;
    }
    let mut stats = None;
    for _ in 0..=protocol.max_remeasure {
        let mut times = Vec::with_capacity(protocol.trials);
        for _ in 0..protocol.trials.max(1) {
            let t0 = Instant::now();
            exec.run(inputs)?;
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        let s = timing_stats(&times).map_err(|e| e.to_string())?;
        let noisy = s.is_noisy();
        stats = Some(s);
        if !noisy {
            break;
        }
    }
    Ok((outputs, stats.expect("at least one round ran")))
}

/// Measurements taken elsewhere (PyTorch eager, TorchInductor, ...): per-sample timings and
/// optionally the outputs of the untimed first call, as TensorProto files.
/// `graphnet-bench/scripts/torch_baseline.py` writes them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BaselineFile {
    /// Who produced it (`torch-eager`, `torch-compile`, ...).
    pub label: String,
    /// Per sample name.
    pub samples: BTreeMap<String, BaselineSample>,
    /// The file's folder, against which output paths resolve (set by [`BaselineFile::read`]).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// One sample of a [`BaselineFile`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BaselineSample {
    /// Timed trials in milliseconds; empty when the run failed.
    #[serde(default)]
    pub trials_ms: Vec<f64>,
    /// Why the run failed, if it did.
    #[serde(default)]
    pub error: Option<String>,
    /// Output files of the untimed first call (paths relative to the file), graph order.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Compilation time in seconds (for compiled variants).
    #[serde(default)]
    pub compile_s: Option<f64>,
}

impl BaselineFile {
    pub fn read(path: &Path) -> Result<BaselineFile> {
        let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut f: BaselineFile =
            serde_json::from_str(&text).map_err(|source| BenchError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        f.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(f)
    }
}

/// Where one variant's timings (and, for the compiled variant, outputs) come from.
#[derive(Clone, Debug)]
pub enum Variant {
    /// Run one of tessera's backends here.
    Tessera(Backend),
    /// Use measurements taken elsewhere.
    External(BaselineFile),
}

impl Variant {
    /// The variant's name in records: `tessera-<backend>` or the file's label.
    pub fn label(&self) -> String {
        match self {
            Variant::Tessera(b) => format!("tessera-{}", b.name()),
            Variant::External(f) => f.label.clone(),
        }
    }

    /// A backend name, or else the path of a [`BaselineFile`].
    pub fn parse(s: &str) -> Result<Variant> {
        match s.parse::<Backend>() {
            Ok(b) => Ok(Variant::Tessera(b)),
            Err(_) => BaselineFile::read(Path::new(s)).map(Variant::External),
        }
    }
}

/// Settings of one native run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub samples: PathBuf,
    pub out: PathBuf,
    /// The compiled variant.
    pub compiled: Variant,
    /// The eager variant the speedup is measured against.
    pub baseline: Variant,
    pub protocol: Protocol,
    /// The result-set label (one curve per label); defaults to `tessera-<backend>`.
    pub label: String,
    pub shard: Option<Shard>,
}

/// Sample directories under `root` (any depth), as `(name, dir)` sorted by name, where the
/// name is the path relative to `root` with `/` separators.
pub fn discover_samples(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| BenchError::Io {
            path: dir.clone(),
            source,
        })?;
        if dir.join("meta.json").is_file() {
            let rel = dir.strip_prefix(root).unwrap_or(&dir);
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            found.push((if name.is_empty() { ".".into() } else { name }, dir.clone()));
            continue;
        }
        for e in entries.flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Values of a tensor in the scoring core's terms.
fn owned_values(t: &Tensor) -> (DType, OwnedValues) {
    let dtype = match t.dtype() {
        IrDType::F32 => DType::Float32,
        IrDType::F64 => DType::Float64,
        IrDType::F16 => DType::Float16,
        IrDType::BF16 => DType::BFloat16,
        IrDType::Bool => DType::Bool,
        IrDType::I8 => DType::Int8,
        IrDType::I16 => DType::Int16,
        IrDType::I32 => DType::Int32,
        IrDType::I64 => DType::Int64,
        IrDType::U8 => DType::UInt8,
        IrDType::U16 => DType::UInt16,
        IrDType::U32 => DType::UInt32,
        IrDType::U64 => DType::UInt64,
    };
    let values = match t.dtype() {
        d if d.is_float() => OwnedValues::Float(t.to_f64_vec()),
        IrDType::Bool => OwnedValues::Bool(
            t.as_slice::<bool>()
                .map(<[bool]>::to_vec)
                .unwrap_or_default(),
        ),
        IrDType::U64 => {
            OwnedValues::UInt(t.as_slice::<u64>().map(<[u64]>::to_vec).unwrap_or_default())
        }
        IrDType::U8 | IrDType::U16 | IrDType::U32 => {
            OwnedValues::UInt(t.to_i64_vec().into_iter().map(|v| v as u64).collect())
        }
        _ => OwnedValues::Int(t.to_i64_vec()),
    };
    (dtype, values)
}

enum OwnedValues {
    Float(Vec<f64>),
    Int(Vec<i64>),
    UInt(Vec<u64>),
    Bool(Vec<bool>),
}

impl OwnedValues {
    fn view(&self) -> Values<'_> {
        match self {
            OwnedValues::Float(v) => Values::Float(v),
            OwnedValues::Int(v) => Values::Int(v),
            OwnedValues::UInt(v) => Values::UInt(v),
            OwnedValues::Bool(v) => Values::Bool(v),
        }
    }
}

type Owned = (DType, Vec<usize>, OwnedValues);

fn views(xs: &[Owned]) -> Result<Vec<OutputView<'_>>> {
    xs.iter()
        .map(|(d, s, v)| OutputView::new(*d, s, v.view()))
        .collect()
}

/// Compares compiled outputs with reference outputs.
fn compare(reference: &[Tensor], actual: &[Tensor]) -> Result<crate::compare::Comparison> {
    let conv = |ts: &[Tensor]| -> Vec<Owned> {
        ts.iter()
            .map(|t| {
                let (d, v) = owned_values(t);
                (d, t.shape().dims().to_vec(), v)
            })
            .collect()
    };
    let (r, a) = (conv(reference), conv(actual));
    Ok(compare_outputs(&views(&r)?, &views(&a)?))
}

/// Runs one sample end to end and returns its record (never fails: failures are statuses).
pub fn run_sample(name: &str, dir: &Path, cfg: &RunConfig) -> SampleResult {
    let outcome = run_sample_outcome(name, dir, cfg);
    let mut r = SampleResult::new(name, cfg.label.clone(), outcome);
    r.meta.insert("compiled".into(), cfg.compiled.label());
    r.meta.insert("baseline".into(), cfg.baseline.label());
    r.meta
        .insert("warmup".into(), cfg.protocol.warmup.to_string());
    r.meta
        .insert("trials".into(), cfg.protocol.trials.to_string());
    r.meta
        .insert("tessera".into(), env!("CARGO_PKG_VERSION").into());
    r
}

/// What one variant produced for one sample.
struct Measured {
    outputs: Vec<Tensor>,
    stats: TimingStats,
    compile_time_s: f64,
}

/// Why a variant produced nothing.
enum Failure {
    Compile(String, f64),
    Run(String, f64),
}

fn measure_variant(
    v: &Variant,
    name: &str,
    graph: &Graph,
    inputs: &[Tensor],
    p: Protocol,
) -> std::result::Result<Measured, Failure> {
    match v {
        Variant::Tessera(b) => {
            let t0 = Instant::now();
            let prepared = prepare(*b, graph);
            let compile_time_s = t0.elapsed().as_secs_f64();
            let mut exec = prepared.map_err(|m| Failure::Compile(m, compile_time_s))?;
            let (outputs, stats) =
                measure(exec.as_mut(), inputs, p).map_err(|m| Failure::Run(m, compile_time_s))?;
            Ok(Measured {
                outputs,
                stats,
                compile_time_s,
            })
        }
        Variant::External(f) => {
            let s = f.samples.get(name).ok_or_else(|| {
                Failure::Compile(format!("{} has no entry for this sample", f.label), 0.0)
            })?;
            let compile_time_s = s.compile_s.unwrap_or(0.0);
            if let Some(e) = &s.error {
                return Err(Failure::Run(e.clone(), compile_time_s));
            }
            let stats = timing_stats(&s.trials_ms)
                .map_err(|e| Failure::Run(e.to_string(), compile_time_s))?;
            let outputs = s
                .outputs
                .iter()
                .map(|o| tessera::onnx::read_tensor_file(&f.dir.join(o)).map(|(_, t)| t))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Failure::Run(e.to_string(), compile_time_s))?;
            Ok(Measured {
                outputs,
                stats,
                compile_time_s,
            })
        }
    }
}

fn run_sample_outcome(name: &str, dir: &Path, cfg: &RunConfig) -> RunOutcome {
    let loaded = Sample::open(dir).map_err(|e| e.to_string()).and_then(|s| {
        let g =
            tessera::load_onnx(&s.model_path(), Default::default()).map_err(|e| e.to_string())?;
        let inputs = s.inputs().map_err(|e| e.to_string())?;
        let reference = s.reference_outputs().map_err(|e| e.to_string())?;
        Ok((g, inputs, reference))
    });
    let (graph, inputs, reference) = match loaded {
        Ok(x) => x,
        Err(message) => {
            return RunOutcome::EagerFailed {
                message,
                eager: None,
            };
        }
    };
    let eager = match measure_variant(&cfg.baseline, name, &graph, &inputs, cfg.protocol) {
        Ok(m) => m.stats,
        Err(Failure::Compile(message, _) | Failure::Run(message, _)) => {
            return RunOutcome::EagerFailed {
                message,
                eager: None,
            };
        }
    };
    let compiled = match measure_variant(&cfg.compiled, name, &graph, &inputs, cfg.protocol) {
        Ok(m) => m,
        Err(Failure::Compile(message, t)) => {
            return RunOutcome::CompileFailed {
                message,
                eager: Some(eager),
                compile_time_s: Some(t),
            };
        }
        Err(Failure::Run(message, t)) => {
            return RunOutcome::RuntimeFailed {
                message,
                eager: Some(eager),
                compile_time_s: Some(t),
            };
        }
    };
    match compare(&reference, &compiled.outputs) {
        Ok(comparison) => RunOutcome::Completed {
            comparison,
            eager,
            compiled: compiled.stats,
            compile_time_s: compiled.compile_time_s,
        },
        Err(e) => RunOutcome::RuntimeFailed {
            message: format!("outputs cannot be compared: {e}"),
            eager: Some(eager),
            compile_time_s: Some(compiled.compile_time_s),
        },
    }
}

/// What happened to one sample in [`run_all`].
#[derive(Clone, Debug)]
pub enum Progress {
    /// Its result file existed: skipped.
    Resumed { name: String },
    /// It ran; the record was written to `path`.
    Done {
        name: String,
        result: Box<SampleResult>,
        path: PathBuf,
    },
}

/// Runs every selected sample, skipping those whose result file exists, and reports each
/// one to `on_progress`. Returns the number of samples selected.
pub fn run_all(
    cfg: &RunConfig,
    on_progress: &mut dyn FnMut(usize, usize, Progress),
) -> Result<usize> {
    let all = discover_samples(&cfg.samples)?;
    // Nothing to run is a mistake (a wrong path, an unpacked archive one level down), not
    // an empty success: scoring zero samples has no geometric mean either.
    if all.is_empty() {
        return Err(BenchError::NoSamplesFound {
            root: cfg.samples.clone(),
        });
    }
    let selected: Vec<(String, PathBuf)> = match cfg.shard {
        Some(shard) => {
            let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
            let keep = shard.select(&names);
            all.into_iter().filter(|(n, _)| keep.contains(n)).collect()
        }
        None => all,
    };
    std::fs::create_dir_all(&cfg.out).map_err(|source| BenchError::Io {
        path: cfg.out.clone(),
        source,
    })?;
    let total = selected.len();
    for (i, (name, dir)) in selected.into_iter().enumerate() {
        let path = cfg.out.join(result_file_name(&name, &cfg.label));
        if path.exists() {
            on_progress(i, total, Progress::Resumed { name });
            continue;
        }
        let result = run_sample(&name, &dir, cfg);
        let path = write_result(&cfg.out, &result)?;
        on_progress(
            i,
            total,
            Progress::Done {
                name,
                result: Box::new(result),
                path,
            },
        );
    }
    Ok(total)
}
