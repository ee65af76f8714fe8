//! The IR's error type.

use std::fmt;

use crate::{NodeId, Shape};

/// Where in a graph something went wrong: our node id plus the node's source name and op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRef {
    pub id: Option<NodeId>,
    /// The node's name in the source model (ONNX `NodeProto.name`); may be empty.
    pub name: String,
    /// The op's text-form name.
    pub op: String,
}

impl fmt::Display for NodeRef {
    /// `node "conv_3" (conv, n12)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {:?} ({}", self.name, self.op)?;
        if let Some(id) = self.id {
            write!(f, ", {id}")?;
        }
        f.write_str(")")
    }
}

/// One violated invariant found by [`crate::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The node at fault, if the problem is local to one.
    pub node: Option<NodeRef>,
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(n) => write!(f, "{n}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Everything that can go wrong inside the IR crate.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum IrError {
    /// Type inference rejected a node: wrong arity, dtype or shape.
    #[error("{node}: {message}")]
    Infer { node: NodeRef, message: String },

    /// A shape beyond [`crate::MAX_ELEMENTS`] or [`crate::MAX_RANK`].
    #[error("shape {dims:?} is too large: {why}")]
    ShapeTooLarge { dims: Vec<u64>, why: String },

    /// Element storage does not match a shape.
    #[error("tensor of shape {shape} expects {expected} elements but has {actual}")]
    DataLength {
        shape: Shape,
        expected: usize,
        actual: usize,
    },

    /// A value id that the graph does not define.
    #[error("value {0} is not defined in this graph")]
    UnknownValue(crate::ValueId),

    /// The text form could not be parsed.
    #[error("line {line}, column {col}: {message}")]
    Parse {
        line: usize,
        col: usize,
        message: String,
    },

    /// A run was given the wrong number of inputs ([`crate::Graph::check_inputs`]).
    #[error("graph {graph:?} takes {expected} input(s), {got} given")]
    InputCount {
        graph: String,
        expected: usize,
        got: usize,
    },

    /// A run input whose dtype or shape is not the graph input's
    /// ([`crate::Graph::check_inputs`]).
    #[error("input {name:?} must be {expected}, got {got}")]
    InputType {
        name: String,
        expected: String,
        got: String,
    },

    /// The verifier found violated invariants (all of them, not just the first).
    #[error("graph failed verification with {} error(s):\n{}", .0.len(), join(.0))]
    Verify(Vec<VerifyError>),
}

fn join(errors: &[VerifyError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}
