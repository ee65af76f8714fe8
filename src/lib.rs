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
