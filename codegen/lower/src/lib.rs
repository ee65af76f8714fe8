//! The lowering stage: from a verified graph to verified kernels placed in one arena.
//!
//! * [`fusion`]: partitions a graph into kernel groups ([`fusion::plan`]) and checks that
//!   a plan is a partition ([`fusion::check_plan`]).
//! * [`kir`]: the kernel IR (loop nests over index expressions, GEMM/convolution/attention
//!   bodies with epilogues), its canonical text form and its verifier ([`kir::verify`]).
//! * [`build`]: turns each group of a [`fusion::FusionPlan`] into a [`kir::Kernel`].
//! * [`memory`]: buffer lifetimes (one liveness computation for every schedule) and the
//!   static arena planner.
//! * [`driver`]: plan → build → verify → arena → parameter locations, once for every
//!   backend; a backend ([`driver::Target`]) supplies only what differs.
//!
//! This crate depends on `tessera-ir` only: no e-graphs, no solvers, no code generators.
//! Cranelift, CUDA C and MLIR printers live in `tessera-codegen`, execution in
//! `tessera-runtime`.

pub mod build;
pub mod driver;
mod error;
pub mod fusion;
pub mod kir;
pub mod memory;

pub use driver::{Location, Lowering, Target, lower};
pub use error::{KernelRef, LowerError};
