//! tessera: a tensor compiler and graph optimizer.
//!
//! This crate is the library facade over the workspace crates and the home of the
//! `tessera` command-line tool:
//!
//! * [`ir`]: the graph IR, its text form and verifier.
//! * [`onnx`]: the ONNX importer.
//! * [`runtime`]: the reference interpreter and the compiled CPU (and CUDA) backends.
//! * [`passes`], [`codegen`]: the optimizer and kernel generation.
//! * [`sample`]: the on-disk sample format (model, inputs, reference outputs).
//! * [`specialize`]: models with symbolic input dimensions, compiled and cached per
//!   concrete shape signature ([`SymbolicModel`]).
//!
//! [`load_onnx`] wires the importer to the reference interpreter, so constant shape
//! arithmetic in exported graphs folds to exactly what the oracle computes.

pub mod calibrate;
pub mod sample;
pub mod specialize;

use std::collections::HashMap;
use std::path::Path;

pub use tessera_codegen as codegen;
pub use tessera_ir as ir;
pub use tessera_lower as lower;
#[cfg(feature = "mlir")]
pub use tessera_mlir as mlir;
pub use tessera_onnx as onnx;
pub use tessera_passes as passes;
pub use tessera_reference as reference;
pub use tessera_runtime as runtime;

use tessera_ir::{Graph, Tensor};
use tessera_onnx::{ImportError, ImportOptions};
use tessera_passes::cost::DeviceProfile;
use tessera_passes::{PassContext, PassError, PassReport};
use tessera_reference::Reference;

pub use specialize::{Cache, Signature, Specialization, SymbolicModel};
pub use tessera_runtime::cpu::{Search, SearchOptions, SearchReport};

/// An error and its causes on one line, `: `-separated, leaving out a cause whose text the
/// line already contains (our errors quote their I/O source in their own message). Both
/// command-line tools report errors this way.
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

/// True if `e` or one of its causes is a write to a closed pipe: command-line tools end
/// quietly on it (`tessera dump model.onnx | head`).
pub fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Imports an ONNX model file whose graph inputs (in order, initializers excluded) take the
/// values `inputs`. Symbolic input dimensions are sized by the inputs' shapes, and the
/// inputs a shape depends on — those the importer reports with
/// [`ImportError::NeedsBinding`] — are bound to their values; the graph and the values
/// of the inputs it still takes, in order, are returned. An input the importer needs but
/// `inputs` lacks returns that `NeedsBinding` error.
pub fn load_onnx_with_inputs(
    path: &Path,
    inputs: &[Tensor],
) -> Result<(Graph, Vec<Tensor>), ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let proto = tessera_onnx::decode(&bytes)?;
    let decls = tessera_onnx::input_decls(&proto, &|_| false)?;
    let names: Vec<String> = decls.iter().map(|d| d.name.clone()).collect();
    let shapes: Vec<(&str, &tessera_ir::Shape)> = names
        .iter()
        .zip(inputs)
        .map(|(n, t)| (n.as_str(), t.shape()))
        .collect();
    let sizes = tessera_onnx::bind_symbols(&decls, &HashMap::new(), &shapes)?;
    let mut bind: HashMap<String, Tensor> = HashMap::new();
    let graph = loop {
        let opts = ImportOptions {
            evaluator: Some(&Reference),
            bind: bind.clone(),
            shapes: sizes.clone(),
            base_dir: path.parent().map(Path::to_path_buf),
            ..ImportOptions::default()
        };
        match tessera_onnx::import_model(&proto, &opts) {
            Ok(g) => break g,
            Err(ImportError::NeedsBinding {
                node,
                input,
                graph_inputs,
            }) => {
                // Each needed input: known, supplied, and not bound already (else the
                // importer would loop).
                let fresh: Option<Vec<(String, Tensor)>> = graph_inputs
                    .iter()
                    .map(|n| {
                        let t = inputs.get(names.iter().position(|x| x == n)?)?;
                        (!bind.contains_key(n)).then(|| (n.clone(), t.clone()))
                    })
                    .collect();
                match fresh {
                    Some(v) => bind.extend(v),
                    None => {
                        return Err(ImportError::NeedsBinding {
                            node,
                            input,
                            graph_inputs,
                        });
                    }
                }
            }
            Err(e) => return Err(e),
        }
    };
    let rest = names
        .iter()
        .zip(inputs)
        .filter(|(n, _)| !bind.contains_key(*n))
        .map(|(_, t)| t.clone())
        .collect();
    Ok((graph, rest))
}

/// Imports an ONNX model file, folding constant shape subgraphs with the reference
/// interpreter. `bind` replaces graph inputs by constant values (by name).
pub fn load_onnx(path: &Path, bind: HashMap<String, Tensor>) -> Result<Graph, ImportError> {
    tessera_onnx::import_file(
        path,
        ImportOptions {
            evaluator: Some(&Reference),
            bind,
            ..ImportOptions::default()
        },
    )
}

/// [`load_onnx`] from bytes in memory (no external data).
pub fn load_onnx_bytes(bytes: &[u8], bind: HashMap<String, Tensor>) -> Result<Graph, ImportError> {
    tessera_onnx::import(
        bytes,
        &ImportOptions {
            evaluator: Some(&Reference),
            bind,
            ..ImportOptions::default()
        },
    )
}

/// The pass context every entry point uses: the reference interpreter lent for constant
/// folding, rewrites priced for `device`.
pub fn pass_context(device: &DeviceProfile) -> PassContext<'static> {
    PassContext::new(device.clone()).with_evaluator(&Reference)
}

/// Runs the pass pipeline `pipeline` (`tessera_passes::pipeline`: a name or a comma list
/// of passes) on `g`, pricing rewrites for `device` and folding constants with the
/// reference interpreter. Stops after the first `stop_after` passes when given. Returns
/// the final graph and one report per pass run.
pub fn optimize(
    g: &Graph,
    pipeline: &str,
    device: &DeviceProfile,
    stop_after: Option<usize>,
) -> Result<(Graph, Vec<PassReport>), PassError> {
    let passes = tessera_passes::pipeline(pipeline)?;
    tessera_passes::run_pipeline(g, &passes, &pass_context(device), stop_after)
}

/// A model compiled for the CPU (see [`compile`]): the runnable model and the reports of
/// the passes that optimized its graph. Derefs to the [`CpuModel`](tessera_runtime::cpu::CpuModel).
pub struct CompiledModel {
    model: tessera_runtime::cpu::CpuModel,
    reports: Vec<PassReport>,
    search: tessera_runtime::cpu::SearchReport,
}

impl CompiledModel {
    /// One report per pass of the pipeline that ran before lowering.
    pub fn reports(&self) -> &[PassReport] {
        &self.reports
    }

    /// What the latency search decided (no decisions with [`Search::Off`]).
    pub fn search(&self) -> &tessera_runtime::cpu::SearchReport {
        &self.search
    }

    /// The compiled CPU model.
    pub fn cpu(&self) -> &tessera_runtime::cpu::CpuModel {
        &self.model
    }
}

impl std::ops::Deref for CompiledModel {
    type Target = tessera_runtime::cpu::CpuModel;

    fn deref(&self) -> &Self::Target {
        &self.model
    }
}

/// Options of [`compile`].
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The pass pipeline run before fusion (`default`: the optimizer; `none`).
    pub pipeline: String,
    /// Fused kernels, or one kernel per node (GraphNet's eager baseline).
    pub mode: tessera_runtime::cpu::Mode,
    /// Threads, the caller's included.
    pub threads: usize,
    /// The device cost-driven passes price rewrites for: the CPU profile by default,
    /// since [`compile`] compiles for the CPU.
    pub device: DeviceProfile,
    /// The latency search run after lowering ([`Search::Off`] by default: the built-in
    /// heuristics decide every kernel's algorithm).
    pub search: SearchOptions,
    /// The calibrated cost model ([`calibrate`]): what [`Search::Model`] decides by and
    /// what [`Search::Measure`] records its predictions from. The pass pipeline still
    /// prices rewrites for `device` (see [`compile`]).
    pub calibration: Option<tessera_passes::cost::calibrated::Calibration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pipeline: "default".into(),
            mode: tessera_runtime::cpu::Mode::Fused,
            threads: tessera_runtime::cpu::CpuOptions::default().threads,
            device: DeviceProfile::cpu_epyc_2core(),
            search: SearchOptions::default(),
            calibration: None,
        }
    }
}

impl Options {
    /// The eager baseline: no rewrites, no fusion, one kernel per node.
    pub fn eager() -> Options {
        Options {
            pipeline: "none".into(),
            mode: tessera_runtime::cpu::Mode::Eager,
            ..Options::default()
        }
    }
}

/// Why [`compile`] (or specializing a [`SymbolicModel`]) failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("importing: {0}")]
    Import(#[from] ImportError),
    #[error("{given} input value(s) given for the model's {expected} graph input(s)")]
    InputCount { given: usize, expected: usize },
    #[error("optimizing: {0}")]
    Pass(#[from] tessera_passes::PassError),
    #[error(transparent)]
    Runtime(#[from] tessera_runtime::RuntimeError),
    #[cfg(feature = "mlir")]
    #[error(transparent)]
    Mlir(#[from] tessera_mlir::MlirError),
}

/// Compiles `g` for the CPU: the pass pipeline of `options` (priced for
/// `options.device`), then the lowering driver (fusion, kernels, verification, memory
/// plan) and Cranelift, then the latency search of `options.search`. Run the result with
/// [`CompiledModel::run`](tessera_runtime::cpu::CpuModel::run).
pub fn compile(g: &Graph, options: Options) -> Result<CompiledModel, CompileError> {
    // The pipeline keeps `options.device` even with a calibration: pricing the e-graph
    // with `Calibration::device_profile` made Whisper's encoder 0.77x as fast at one
    // thread (scripts/bench_search.py, 2026-12-07), so the implied profile stays a
    // library function for callers to opt into, not the default.
    let (g, reports) = optimize(g, &options.pipeline, &options.device, None)?;
    let cpu = tessera_runtime::cpu::CpuOptions {
        mode: options.mode,
        threads: options.threads,
        ..tessera_runtime::cpu::CpuOptions::default()
    };
    let mut model = tessera_runtime::cpu::compile(&g, &cpu)?;
    let predictor = options.calibration.as_ref().map(calibrate::Calibrated);
    let search = model.search_with(
        &options.search,
        predictor
            .as_ref()
            .map(|p| p as &dyn tessera_runtime::cpu::Predictor),
    )?;
    Ok(CompiledModel {
        model,
        reports,
        search,
    })
}

/// The CUDA kernels of `g` (no GPU needed): the pass pipeline `pipeline` priced for
/// `device`, then the lowering driver with the CUDA C printer as its target. Returns the
/// graph the kernels compute (after the pipeline), the kernels and their CUDA sources.
pub fn cuda_kernels(
    g: &Graph,
    pipeline: &str,
    device: &DeviceProfile,
    mode: tessera_lower::fusion::Mode,
) -> Result<
    (
        Graph,
        Vec<tessera_lower::kir::Kernel>,
        Vec<tessera_codegen::cuda::CudaKernel>,
    ),
    CompileError,
> {
    let (g, _) = optimize(g, pipeline, device, None)?;
    let lowering = tessera_lower::lower(&g, mode, &mut tessera_codegen::cuda::CudaTarget)
        .map_err(tessera_runtime::RuntimeError::from)?;
    Ok((g, lowering.kernels, lowering.code))
}

/// The MLIR module of `g` (feature `mlir`): the pass pipeline `pipeline` priced for
/// `device`, the lowering driver with [`tessera_mlir::MlirTarget`], then MLIR's parser
/// and verifier. Returns the optimized graph and the verified module.
#[cfg(feature = "mlir")]
pub fn mlir_module(
    g: &Graph,
    pipeline: &str,
    device: &DeviceProfile,
) -> Result<(Graph, tessera_mlir::MlirModule), CompileError> {
    let (g, _) = optimize(g, pipeline, device, None)?;
    let lowering = tessera_mlir::emit(&g, tessera_lower::fusion::Mode::Fused)?;
    tessera_mlir::jit::verify(&lowering.code)?;
    Ok((g, lowering.code))
}

/// Compiles `g` with MLIR for the CPU (feature `mlir`): the pass pipeline `pipeline`
/// priced for `device`, then [`tessera_mlir::jit::compile`] (emit, verify, lower to the
/// LLVM dialect, JIT).
#[cfg(feature = "mlir")]
pub fn compile_mlir(
    g: &Graph,
    pipeline: &str,
    device: &DeviceProfile,
) -> Result<tessera_mlir::jit::MlirModel, CompileError> {
    let (g, _) = optimize(g, pipeline, device, None)?;
    Ok(tessera_mlir::jit::compile(&g)?)
}

/// Compiles `g` for a CUDA GPU (feature `cuda`): the pass pipeline `pipeline` priced for
/// `device`, then [`tessera_runtime::cuda::compile`]. Without a driver or GPU this returns
/// an error saying so.
#[cfg(feature = "cuda")]
pub fn compile_cuda(
    g: &Graph,
    pipeline: &str,
    device: &DeviceProfile,
    options: &tessera_runtime::cuda::CudaOptions,
) -> Result<tessera_runtime::cuda::CudaModel, CompileError> {
    let (g, _) = optimize(g, pipeline, device, None)?;
    Ok(tessera_runtime::cuda::compile(&g, options)?)
}
