//! Kernel IR and the printers that lower it: Cranelift for the CPU, CUDA C for NVIDIA GPUs.
//!
//! * [`kir`]: the kernel IR (loop nests over index expressions, GEMM/convolution/attention
//!   bodies with epilogues) and its canonical text form.
//! * [`build`]: turns each group of a [`tessera_passes::fusion::FusionPlan`] into a kernel.
//! * [`cranelift`]: JIT-compiles loop nests to native code.
//! * [`cuda`]: prints kernels as CUDA C, with their launch parameters.
//!
//! This crate never runs kernels; `tessera-runtime` does.

pub mod build;
pub mod cranelift;
pub mod cuda;
pub mod kir;

use tessera_ir::NodeRef;

/// Everything that can go wrong while generating code.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// A group the builder cannot turn into a kernel.
    #[error("{node}: {message}")]
    Node { node: NodeRef, message: String },

    /// Cranelift rejected a function (a bug in the lowering).
    #[error("compiling kernel {kernel}: {message}")]
    Jit { kernel: String, message: String },

    /// The host is not supported by Cranelift.
    #[error("native code generation is unavailable: {0}")]
    Host(String),
}
