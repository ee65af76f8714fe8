//! The data-movement metric: compulsory memory traffic of a kernel plan.
//!
//! For each kernel: the bytes of every distinct tensor it reads from memory (graph inputs,
//! constants, values stored by other kernels; a view is charged as the tensor it views)
//! plus the bytes of every value it stores (read by another kernel, or a graph output).
//! Scalar constants are inlined into kernels as literals and cost nothing. This assumes
//! perfect reuse inside a kernel, so it is a lower bound on real traffic (a GEMM re-reads
//! tiles), and it is exact and deterministic, so plans can be snapshotted.
//!
//! The unfused figure is the same sum over the [`Mode::Eager`] plan:
//! one kernel per node, views other than aliases copied.

use tessera_ir::{Graph, Op, ValueId};

use super::{FusionPlan, Mode, plan};
use crate::LowerError;

/// Bytes moved by one kernel reading `inputs` and storing `outputs`.
pub fn kernel_bytes(g: &Graph, inputs: &[ValueId], outputs: &[ValueId]) -> u64 {
    let size = |v: &ValueId| g.ty(*v).size_bytes() as u64;
    let reads: u64 = inputs
        .iter()
        .filter(|v| !is_scalar_constant(g, **v))
        .map(size)
        .sum();
    reads + outputs.iter().map(size).sum::<u64>()
}

/// True for a one-element constant, which kernels inline as a literal.
pub fn is_scalar_constant(g: &Graph, v: ValueId) -> bool {
    g.producer(v)
        .is_some_and(|p| matches!(&g.node(p).op, Op::Constant(t) if t.numel() == 1))
}

/// Bytes moved by every kernel of `plan`, in execution order.
pub fn plan_bytes(g: &Graph, plan: &FusionPlan) -> Vec<u64> {
    plan.groups
        .iter()
        .map(|grp| kernel_bytes(g, &grp.inputs, &grp.outputs))
        .collect()
}

/// Unfused and fused traffic of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataMovement {
    pub unfused_kernels: usize,
    pub unfused_bytes: u64,
    pub fused_kernels: usize,
    pub fused_bytes: u64,
}

impl DataMovement {
    /// `1 - fused / unfused`, as a fraction.
    pub fn reduction(&self) -> f64 {
        if self.unfused_bytes == 0 {
            0.0
        } else {
            1.0 - self.fused_bytes as f64 / self.unfused_bytes as f64
        }
    }
}

/// Compares the eager plan of `g` with `fused` (a [`Mode::Fused`] plan of the same graph).
pub fn data_movement(g: &Graph, fused: &FusionPlan) -> Result<DataMovement, LowerError> {
    let eager = plan(g, Mode::Eager)?;
    Ok(DataMovement {
        unfused_kernels: eager.groups.len(),
        unfused_bytes: plan_bytes(g, &eager).iter().sum(),
        fused_kernels: fused.groups.len(),
        fused_bytes: plan_bytes(g, fused).iter().sum(),
    })
}
