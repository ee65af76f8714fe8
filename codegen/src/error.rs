//! The code generators' error types: [`CodegenError`] at the crate's entry points,
//! [`KernelError`] inside a backend, before it knows which kernel it is working on.

use tessera_ir::DType;
use tessera_lower::KernelRef;
use tessera_lower::kir::ExprId;

/// Everything that can go wrong while generating code.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// A kernel this backend cannot generate; names the backend, the kernel and the graph
    /// nodes it computes.
    #[error("{backend}: {kernel}: {error}")]
    Kernel {
        backend: &'static str,
        kernel: KernelRef,
        error: KernelError,
    },

    /// The host is not supported by Cranelift.
    #[error("native code generation is unavailable: {0}")]
    Host(String),

    /// Cranelift could not declare its helper functions or link the module (no kernel is
    /// at fault).
    #[error("cranelift: {0}")]
    Module(String),

    /// Lowering failed before any code was generated (a printer lowered through the
    /// driver, as [`crate::cuda::CudaTarget`] does).
    #[error(transparent)]
    Lower(#[from] tessera_lower::LowerError),
}

impl CodegenError {
    /// `error` in `kernel`, found by `backend`.
    pub fn kernel(backend: &'static str, kernel: KernelRef, error: KernelError) -> CodegenError {
        CodegenError::Kernel {
            backend,
            kernel,
            error,
        }
    }
}

/// Why a backend cannot generate one kernel. Backends return it from everything below
/// their entry points; the entry points wrap it in [`CodegenError::Kernel`], which names
/// the kernel.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// An operation on an element type the backend has no lowering for (`op` is the
    /// kernel IR's name for it: `not`, `pow`, `contraction`, `attention`, ...).
    #[error("{op} on {dtype} is not supported")]
    Unsupported { op: &'static str, dtype: DType },

    /// A construct the backend computes only lane by lane, in a loop the nest's hints
    /// vectorize (the hints promised it would not be there).
    #[error("{expr}: {what} cannot be vectorized")]
    NotVectorizable { expr: ExprId, what: &'static str },

    /// A kernel that needs more static shared memory per block than a GPU has.
    #[error("{what} needs {needed} bytes of shared memory, more than the {limit} a block has")]
    SharedMemory {
        what: &'static str,
        needed: usize,
        limit: usize,
    },

    /// A kernel-IR assumption that [`tessera_lower::kir::verify`] or the builder should
    /// have guaranteed: a bug in lowering, not in the model.
    #[error("broken kernel-IR invariant: {0}")]
    Invariant(String),

    /// Cranelift rejected a function the backend built (a bug in the backend).
    #[error("cranelift rejected the function: {0}")]
    Cranelift(String),
}
