//! Runs compiled tessera models.
//!
//! * [`cpu`]: the compiled CPU backend (fused Cranelift kernels, native GEMM, convolution
//!   and attention routines, one arena), and its eager mode.
//! * `cuda` (feature `cuda`): the CUDA backend (NVRTC-compiled kernels, cuBLAS, one device
//!   arena, CUDA graphs), and its eager mode.
//!
//! Both lower graphs through the one driver of `tessera-lower` and run what it placed,
//! behind the same contract: one tensor per graph input, in order, checked against the
//! graph's declared types ([`tessera_ir::Graph::check_inputs`]). The reference
//! interpreter, the oracle both are tested against, is the `tessera-reference` crate.
//!
//! * [`measure`] times work in isolation (interleaved rounds, drift corrected against a
//!   reference workload) and [`cache`] keeps measured times on disk; the CPU backend's
//!   latency search ([`cpu::CpuModel::search`]) is built on both.

pub mod cache;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod measure;

use tessera_ir::IrError;
use tessera_lower::KernelRef;

/// Everything that can go wrong while running a graph.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Ir(#[from] IrError),

    /// A kernel failed at run time (an out-of-range gather index, an integer division by
    /// zero) or could not be set up.
    #[error("{kernel}: {message}")]
    Kernel { kernel: KernelRef, message: String },

    /// Lowering failed: fusion plan, kernel build or verification, memory plan.
    #[error(transparent)]
    Lower(#[from] tessera_lower::LowerError),

    /// Kernel generation failed (compiled backends).
    #[error(transparent)]
    Codegen(#[from] tessera_codegen::CodegenError),

    /// The CUDA backend: no driver or device, a failed driver/NVRTC/cuBLAS call.
    #[error("CUDA: {0}")]
    Cuda(String),

    /// The latency search could not run as asked.
    #[error("search: {0}")]
    Search(String),
}
