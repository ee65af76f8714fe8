//! MLIR emission of the kernel IR, and (feature `melior`) its verification, lowering and
//! execution through melior.
//!
//! * [`mod@emit`]: the lowering driver's kernels as one MLIR module per model, on tensors:
//!   `linalg` named ops for contractions, `linalg.generic` with `arith`/`math` bodies
//!   for loop nests, a driver `@main` calling one `func.func` per kernel.
//! * `jit` (feature `melior`): parses and verifies a module with MLIR, lowers it (one-shot
//!   bufferization, linalg to loops, LLVM dialect) and runs it with MLIR's execution
//!   engine.
//!
//! The emitter writes MLIR's textual form and depends on nothing heavy, so it builds and
//! is snapshot-tested without LLVM; MLIR itself checks every module it is given.

pub mod emit;
mod error;
#[cfg(feature = "melior")]
pub mod jit;

pub use emit::{MlirModule, MlirTarget, emit};
pub use error::{EmitError, MlirError, Result};
