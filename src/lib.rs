//! tessera: a tensor compiler and graph optimizer.
//!
//! This crate is the library facade over the workspace crates and the home of the
//! `tessera` command-line tool:
//!
//! * [`ir`]: the graph IR, its text form and verifier.
//! * [`onnx`]: the ONNX importer.
//! * [`runtime`]: the reference interpreter (and, later, compiled backends).
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
pub use tessera_onnx as onnx;
pub use tessera_passes as passes;
pub use tessera_runtime as runtime;

use tessera_ir::{Graph, Tensor};
use tessera_onnx::{ImportError, ImportOptions};
use tessera_passes::cost::DeviceProfile;
use tessera_passes::egraph::{EGraphConfig, EGraphOptimizer};
use tessera_passes::{PassContext, PassError, PassReport};
use tessera_runtime::reference::Reference;

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
