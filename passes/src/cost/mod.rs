//! Cost models: how long a node of the graph takes on a device, modeled.
//!
//! [`CostModel`] is the interface the optimizer extracts against: a modeled time in
//! seconds per node, computed from the op and its operand and result types only, so it can
//! price e-nodes that no graph holds yet. Costs are additive per kernel (each node is at
//! most one kernel); a graph's cost is the sum over its nodes ([`graph_cost`]).
//!
//! [`Roofline`] is the first implementation: per kernel
//! `max(flops / peak_flops, bytes / bandwidth) + launch overhead` for a named
//! [`DeviceProfile`]. Ops that only reinterpret metadata (reshape, identity, constants)
//! cost nothing. The latency-aware search issue will calibrate it against measurements;
//! anything implementing the trait can replace it.
//!
//! [`calibrated`] holds the model fitted to this machine's measured kernels (per kernel
//! family, the roofline's form plus a per-tile term), which the CPU backend's latency
//! search predicts with.
//!
//! [`flops()`] is the one FLOP table: the roofline's arithmetic and the training passes'
//! recompute and B/W costs both come from it, so they cannot disagree.

pub mod calibrated;
mod flops;
mod roofline;

pub use flops::{
    ELEMENTWISE, SOFTMAX, TRANSCENDENTAL, flops, node_flops, node_transcendentals, transcendentals,
};
pub use roofline::{DeviceProfile, KernelWork, Roofline, kernel_work};

use tessera_ir::{Graph, Op, TensorType};

/// Modeled time of graph nodes on one device.
pub trait CostModel: Send + Sync {
    /// A short name for reports (`roofline/h200`).
    fn name(&self) -> String;

    /// Modeled seconds of one node: `op` applied to operands of types `inputs`, producing
    /// `outputs`. Zero for nodes that launch no kernel.
    fn node_cost(&self, op: &Op, inputs: &[&TensorType], outputs: &[TensorType]) -> f64;
}

/// Sum of [`CostModel::node_cost`] over the nodes of `g`, in seconds.
pub fn graph_cost(model: &dyn CostModel, g: &Graph) -> f64 {
    g.nodes()
        .map(|(_, n)| {
            let ins: Vec<&TensorType> = n.inputs.iter().map(|&v| g.ty(v)).collect();
            let outs: Vec<TensorType> = n.outputs.iter().map(|&v| g.ty(v).clone()).collect();
            model.node_cost(&n.op, &ins, &outs)
        })
        .sum()
}

/// Number of nodes of `g` that launch a kernel under the roofline model.
pub fn kernel_count(g: &Graph) -> usize {
    g.nodes()
        .filter(|(_, n)| {
            let ins: Vec<&TensorType> = n.inputs.iter().map(|&v| g.ty(v)).collect();
            let outs: Vec<TensorType> = n.outputs.iter().map(|&v| g.ty(v).clone()).collect();
            kernel_work(&n.op, &ins, &outs).is_some()
        })
        .count()
}
