//! Code generators for the kernel IR of `tessera-lower`: Cranelift for the CPU, CUDA C
//! for NVIDIA GPUs.
//!
//! * [`cranelift`]: JIT-compiles loop nests to native code.
//! * [`cuda`]: prints kernels as CUDA C, with their launch parameters.
//!
//! Both take kernels that passed [`tessera_lower::kir::verify`]. This crate never runs
//! kernels; `tessera-runtime` does.

pub mod cranelift;
pub mod cuda;

pub use tessera_lower::KernelRef;

/// Everything that can go wrong while generating code.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// A kernel this backend cannot generate, or that Cranelift rejected (a bug in the
    /// lowering); names the kernel and the graph nodes it computes.
    #[error("{backend}: {kernel}: {message}")]
    Kernel {
        backend: &'static str,
        kernel: KernelRef,
        message: String,
    },

    /// The host is not supported by Cranelift.
    #[error("native code generation is unavailable: {0}")]
    Host(String),

    /// Lowering failed before any code was generated (a printer lowered through the
    /// driver, as [`cuda::CudaTarget`] does).
    #[error(transparent)]
    Lower(#[from] tessera_lower::LowerError),
}
