//! The lowering stage's error type.

use std::fmt;

use tessera_ir::{Graph, IrError, NodeId, NodeRef, ValueId};

use crate::fusion::analyze::Illegal;
use crate::kir::VerifyError;

/// A kernel as errors name it: its name and the graph nodes it computes (our node ids,
/// source names and ops).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRef {
    pub name: String,
    pub nodes: Vec<NodeRef>,
}

impl KernelRef {
    /// The kernel `name` computing `nodes` of `g`.
    pub fn new(g: &Graph, name: &str, nodes: &[NodeId]) -> KernelRef {
        KernelRef {
            name: name.to_string(),
            nodes: nodes.iter().map(|&n| g.node_ref(n)).collect(),
        }
    }
}

impl fmt::Display for KernelRef {
    /// `kernel k3_conv (node "conv_1" (conv, n12) and 2 more)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kernel {}", self.name)?;
        match self.nodes.split_first() {
            None => Ok(()),
            Some((first, [])) => write!(f, " ({first})"),
            Some((first, rest)) => write!(f, " ({first} and {} more)", rest.len()),
        }
    }
}

/// Everything that can go wrong between a verified graph and placed kernels.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    /// The graph does not verify.
    #[error(transparent)]
    Ir(#[from] IrError),

    /// The fusion planner could not give a group a legal shape; `node` is the group's
    /// first node.
    #[error("fusion plan: {node}: {reason}")]
    Plan { node: NodeRef, reason: Box<Illegal> },

    /// A fusion plan breaks an invariant of [`crate::fusion::check_plan`] (all of them
    /// listed).
    #[error("fusion plan is not a partition in topological order: {}", .0.join("; "))]
    InvalidPlan(Vec<String>),

    /// The builder cannot turn a node's group into a kernel.
    #[error("{node}: {message}")]
    Build { node: NodeRef, message: String },

    /// A built kernel breaks an invariant of [`crate::kir::verify`] (all of them listed).
    #[error("{kernel}: invalid kernel IR: {}", join(.errors))]
    InvalidKernel {
        kernel: KernelRef,
        errors: Vec<VerifyError>,
    },

    /// A kernel reads a value that is no graph input or constant and that no kernel
    /// stores.
    #[error("{kernel} reads {value}, which nothing stores")]
    Unstored { kernel: KernelRef, value: ValueId },
}

fn join(errors: &[VerifyError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
