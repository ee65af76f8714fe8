//! Code generators for the kernel IR of `tessera-lower`: Cranelift for the CPU, CUDA C
//! for NVIDIA GPUs.
//!
//! * [`cranelift`]: JIT-compiles loop nests to native code.
//! * [`cuda`]: prints kernels as CUDA C, with their launch parameters.
//!
//! Both take kernels that passed [`tessera_lower::kir::verify`]. This crate never runs
//! kernels; `tessera-runtime` does.
//!
//! Errors: below their entry points the backends return [`KernelError`] (an op on a
//! dtype with no lowering, a construct that cannot be vectorized, a broken kernel-IR
//! invariant, ...); the entry points ([`cranelift::Jit::add_nest`],
//! [`cuda::emit_kernel`]) wrap it in [`CodegenError::Kernel`], which names the backend,
//! the kernel and its graph nodes.

pub mod cranelift;
pub mod cuda;
mod error;

pub use error::{CodegenError, KernelError};
pub use tessera_lower::KernelRef;
