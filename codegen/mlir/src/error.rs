//! The MLIR backend's error type.

use tessera_ir::DType;
use tessera_lower::{KernelRef, LowerError};

/// Everything that can go wrong between a verified graph and MLIR results.
#[derive(Debug, thiserror::Error)]
pub enum MlirError {
    /// A kernel the emitter has no MLIR for; names the kernel, the graph nodes it
    /// computes (source names, ops, our ids) and the construct.
    #[error("mlir: {kernel}: {what}")]
    Unsupported { kernel: KernelRef, what: String },

    /// Lowering failed before any MLIR was emitted.
    #[error(transparent)]
    Lower(#[from] LowerError),

    /// MLIR rejected an emitted module (parse or verifier diagnostics); a bug in the
    /// emitter, never in the model.
    #[error("mlir: module {module} does not verify: {diagnostics}")]
    Invalid { module: String, diagnostics: String },

    /// The lowering pass pipeline failed.
    #[error("mlir: pass pipeline on module {module}: {diagnostics}")]
    Pipeline { module: String, diagnostics: String },

    /// The execution engine could not compile the lowered module.
    #[error("mlir: execution engine: {0}")]
    Engine(String),

    /// A run got another number of inputs than the graph has.
    #[error("mlir: {given} inputs given for the graph's {expected}")]
    InputCount { given: usize, expected: usize },

    /// A run's input does not have its graph input's type.
    #[error("mlir: input {index} is {got}, the graph expects {want}")]
    Input {
        index: usize,
        got: String,
        want: String,
    },
}

/// Why one construct cannot be emitted, before the emitter knows which kernel it is in;
/// [`crate::MlirTarget`] wraps it in [`MlirError::Unsupported`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// An operation on a dtype with no MLIR lowering here.
    #[error("{op} on {dtype} is not supported")]
    Dtype { op: &'static str, dtype: DType },
    /// A kernel-IR construct with no MLIR lowering here.
    #[error("{0} is not supported")]
    Construct(String),
}

pub type Result<T, E = MlirError> = std::result::Result<T, E>;
