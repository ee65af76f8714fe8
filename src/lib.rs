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
//!
//! [`load_onnx`] wires the importer to the reference interpreter, so constant shape
//! arithmetic in exported graphs folds to exactly what the oracle computes.

pub mod sample;

use std::collections::HashMap;
use std::path::Path;

pub use tessera_codegen as codegen;
pub use tessera_ir as ir;
pub use tessera_lower as lower;
pub use tessera_onnx as onnx;
pub use tessera_passes as passes;
pub use tessera_reference as reference;
pub use tessera_runtime as runtime;

use tessera_ir::{Graph, Tensor};
use tessera_onnx::{ImportError, ImportOptions};
use tessera_passes::cost::DeviceProfile;
use tessera_passes::egraph::{EGraphConfig, EGraphOptimizer};
use tessera_passes::{PassContext, PassError, PassReport};
use tessera_reference::Reference;

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

/// Imports an ONNX model file whose graph inputs (in order, initializers excluded) take the
/// values `inputs`. Shapes are static, so the inputs a shape depends on — those the
/// importer reports with [`ImportError::NeedsBinding`] — are bound to their values; the
/// graph and the values of the inputs it still takes, in order, are returned. An input
/// the importer needs but `inputs` lacks returns that `NeedsBinding` error.
pub fn load_onnx_with_inputs(
    path: &Path,
    inputs: &[Tensor],
) -> Result<(Graph, Vec<Tensor>), ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let names = tessera_onnx::graph_input_names(&bytes)?;
    let mut bind: HashMap<String, Tensor> = HashMap::new();
    let graph = loop {
        match load_onnx(path, bind.clone()) {
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

/// Runs the named pass pipeline (`tessera_passes::pipeline`) on `g`, lending the reference
/// interpreter for constant folding; with `device`, the e-graph pass prices kernels for
/// that profile instead of its default. Stops after the first `stop_after` passes when
/// given. Returns the final graph and one report per pass run.
pub fn optimize(
    g: &Graph,
    pipeline: &str,
    device: Option<DeviceProfile>,
    stop_after: Option<usize>,
) -> Result<(Graph, Vec<PassReport>), PassError> {
    let mut passes = tessera_passes::pipeline(pipeline)?;
    if let Some(device) = device {
        for p in passes.iter_mut() {
            if p.name() == "egraph" {
                *p = Box::new(EGraphOptimizer {
                    config: EGraphConfig {
                        device: device.clone(),
                        ..EGraphConfig::default()
                    },
                });
            }
        }
    }
    let cx = PassContext {
        evaluator: Some(&Reference),
    };
    tessera_passes::run_pipeline(g, &passes, &cx, stop_after)
}

/// A model compiled for the CPU (see [`compile`]).
pub use tessera_runtime::cpu::CpuModel as CompiledModel;

/// Options of [`compile`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The pass pipeline run before fusion (`default`: the optimizer; `none`).
    pub pipeline: String,
    /// Fused kernels, or one kernel per node (GraphNet's eager baseline).
    pub mode: tessera_runtime::cpu::Mode,
    /// Threads, the caller's included.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pipeline: "default".into(),
            mode: tessera_runtime::cpu::Mode::Fused,
            threads: tessera_runtime::cpu::CpuOptions::default().threads,
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

/// Why [`compile`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("optimizing: {0}")]
    Pass(#[from] tessera_passes::PassError),
    #[error(transparent)]
    Runtime(#[from] tessera_runtime::RuntimeError),
}

/// Compiles `g` for the CPU: the pass pipeline of `options`, then fusion, kernel
/// generation (Cranelift) and memory planning. Run the result with
/// [`CompiledModel::run`].
pub fn compile(g: &Graph, options: Options) -> Result<CompiledModel, CompileError> {
    let passes = tessera_passes::pipeline(&options.pipeline)?;
    let cx = tessera_passes::PassContext {
        evaluator: Some(&Reference),
    };
    let (g, _) = tessera_passes::run_pipeline(g, &passes, &cx, None)?;
    let cpu = tessera_runtime::cpu::CpuOptions {
        mode: options.mode,
        threads: options.threads,
    };
    Ok(tessera_runtime::cpu::compile(&g, &cpu)?)
}

/// The CUDA kernels of `g` (no GPU needed): the pass pipeline `pipeline`, fusion in
/// `mode`, kernel generation and the CUDA C printer. Returns the graph the kernels
/// compute (after the pipeline), the kernels and their CUDA sources.
pub fn cuda_kernels(
    g: &Graph,
    pipeline: &str,
    mode: tessera_lower::fusion::Mode,
) -> Result<
    (
        Graph,
        Vec<tessera_lower::kir::Kernel>,
        Vec<tessera_codegen::cuda::CudaKernel>,
    ),
    CompileError,
> {
    let passes = tessera_passes::pipeline(pipeline)?;
    let cx = PassContext {
        evaluator: Some(&Reference),
    };
    let (g, _) = tessera_passes::run_pipeline(g, &passes, &cx, None)?;
    let lowering = tessera_lower::lower(&g, mode, &mut tessera_codegen::cuda::CudaTarget)
        .map_err(tessera_runtime::RuntimeError::from)?;
    let (kernels, cuda) = (lowering.kernels, lowering.code);
    Ok((g, kernels, cuda))
}

/// Compiles `g` for a CUDA GPU (feature `cuda`): the pass pipeline `pipeline`, then
/// [`tessera_runtime::cuda::compile`]. Without a driver or GPU this returns an error
/// saying so.
#[cfg(feature = "cuda")]
pub fn compile_cuda(
    g: &Graph,
    pipeline: &str,
    options: &tessera_runtime::cuda::CudaOptions,
) -> Result<tessera_runtime::cuda::CudaModel, CompileError> {
    let passes = tessera_passes::pipeline(pipeline)?;
    let cx = PassContext {
        evaluator: Some(&Reference),
    };
    let (g, _) = tessera_passes::run_pipeline(g, &passes, &cx, None)?;
    Ok(tessera_runtime::cuda::compile(&g, options)?)
}
