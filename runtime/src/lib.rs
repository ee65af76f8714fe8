//! Executes tessera graphs.
//!
//! * [`reference`](mod@reference): the reference interpreter, the oracle for every pass and backend.
//! * [`cpu`]: the compiled CPU backend (fused Cranelift kernels, GEMM library calls, one
//!   arena), and its eager mode.
//! * `cuda` (feature `cuda`): the CUDA backend (NVRTC-compiled kernels, cuBLAS, one device
//!   arena, CUDA graphs), and its eager mode.
//!
//! Compiled CPU execution (Cranelift kernels over a static arena) and CUDA execution
//! (feature `cuda`) are added here by later issues, behind the same input/output contract:
//! one tensor per graph input, in order, checked against the graph's declared types.

mod arena;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod reference;

use tessera_ir::{Graph, IrError, NodeRef, Tensor};

/// Everything that can go wrong while running a graph.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Ir(#[from] IrError),

    #[error("graph {graph:?} takes {expected} input(s), {got} given")]
    InputCount {
        graph: String,
        expected: usize,
        got: usize,
    },

    #[error("input {name:?} must be {expected}, got {got}")]
    InputType {
        name: String,
        expected: String,
        got: String,
    },

    #[error("{node}: {message}")]
    Kernel { node: NodeRef, message: String },

    /// Fusion planning failed (compiled backends).
    #[error(transparent)]
    Plan(#[from] tessera_passes::PassError),

    /// Kernel generation failed (compiled backends).
    #[error(transparent)]
    Codegen(#[from] tessera_codegen::CodegenError),

    /// The CUDA backend: no driver or device, a failed driver/NVRTC/cuBLAS call.
    #[error("CUDA: {0}")]
    Cuda(String),
}

/// Checks that `inputs` match `g`'s graph inputs in count, dtype and shape.
pub fn check_inputs(g: &Graph, inputs: &[Tensor]) -> Result<(), RuntimeError> {
    if inputs.len() != g.inputs().len() {
        return Err(RuntimeError::InputCount {
            graph: g.name.clone(),
            expected: g.inputs().len(),
            got: inputs.len(),
        });
    }
    for (p, t) in g.inputs().iter().zip(inputs) {
        let want = g.ty(p.value);
        if &t.ty() != want {
            return Err(RuntimeError::InputType {
                name: p.name.clone(),
                expected: want.to_string(),
                got: t.ty().to_string(),
            });
        }
    }
    Ok(())
}
