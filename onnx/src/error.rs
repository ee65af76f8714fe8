//! [`ImportError`], the one error type of the importer.

use std::fmt;
use std::path::PathBuf;

use tessera_ir::{IrError, NodeRef};

/// One node the importer cannot translate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedNode {
    pub name: String,
    pub op_type: String,
    /// The operator-set domain (`ai.onnx` for the default one).
    pub domain: String,
    pub opset: i64,
}

impl fmt::Display for UnsupportedNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {:?}: {} ({} opset {})",
            self.name, self.op_type, self.domain, self.opset
        )
    }
}

/// Where a symbol's size came from: an input's shape at an axis, or the explicit binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolSource {
    /// The graph input, or `None` for the explicit binding.
    pub input: Option<String>,
    pub axis: usize,
    pub value: usize,
}

impl fmt::Display for SymbolSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.input {
            Some(name) => write!(
                f,
                "{} in graph input {name:?} (axis {})",
                self.value, self.axis
            ),
            None => write!(f, "{} by the given shape binding", self.value),
        }
    }
}

/// Everything that can go wrong while importing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("not a valid ONNX model: {0}")]
    Decode(String),

    #[error("the model has no graph")]
    NoGraph,

    /// The model imports a version of an operator-set domain newer than the importer
    /// knows ([`KNOWN_OPSETS`](crate::KNOWN_OPSETS)).
    #[error(
        "the model imports opset {version} of domain {domain:?}, but the newest tessera knows is {newest}"
    )]
    OpsetTooNew {
        domain: String,
        version: i64,
        newest: i64,
    },

    /// The model's opset imports contradict themselves or name an impossible version.
    #[error("the model imports domain {domain:?} {problem}")]
    BadOpset { domain: String, problem: String },

    #[error("{} unsupported node(s):\n{}", .0.len(), list(.0))]
    Unsupported(Vec<UnsupportedNode>),

    #[error("graph input {name:?}: {message}")]
    Input { name: String, message: String },

    /// A symbolic input dimension that nothing gives a size: no explicit value
    /// ([`ImportOptions::shapes`](crate::ImportOptions::shapes)) and no input value.
    #[error(
        "graph input {input:?}: dimension {axis} is the symbol {symbol:?}, which has no value; bind it (`--shape {symbol}=<size>`) or pass an input of that shape"
    )]
    UnboundSymbol {
        symbol: String,
        input: String,
        axis: usize,
    },

    /// Two sources give one symbol different sizes.
    #[error("symbol {symbol:?} is {first} but {second}")]
    SymbolConflict {
        symbol: String,
        first: SymbolSource,
        second: SymbolSource,
    },

    /// A size given for a symbol no graph input has.
    #[error("the model has no symbol {symbol:?} (its symbols: {})", if known.is_empty() { "none, all shapes are static".to_string() } else { known.join(", ") })]
    UnknownSymbol { symbol: String, known: Vec<String> },

    #[error("initializer {name:?}: {message}")]
    Initializer { name: String, message: String },

    #[error("ONNX {node}: {message}")]
    Node { node: NodeRef, message: String },

    /// A shape operand comes from a graph input; shapes are static, so the input must be
    /// bound to a value ([`ImportOptions::bind`](crate::ImportOptions::bind)).
    #[error(
        "ONNX {node}: input {input:?} fixes a shape and must be constant, but it depends on graph input(s) {graph_inputs:?}; bind them to values"
    )]
    NeedsBinding {
        node: NodeRef,
        input: String,
        graph_inputs: Vec<String>,
    },

    #[error(
        "ONNX node {node:?} ({op_type}) reads {value:?}, which no node, initializer or graph input defines"
    )]
    MissingValue {
        node: String,
        op_type: String,
        value: String,
    },

    #[error("the graph has a cycle through node(s) {}", .0.join(", "))]
    Cycle(Vec<String>),

    #[error("graph output {0:?} is not produced by any node, initializer or input")]
    MissingOutput(String),

    #[error("{}: {message}", path.display())]
    TensorFile { path: PathBuf, message: String },

    #[error("imported graph is invalid (an importer bug): {0}")]
    Ir(#[from] IrError),
}

fn list(nodes: &[UnsupportedNode]) -> String {
    nodes
        .iter()
        .map(|n| format!("  {n}"))
        .collect::<Vec<_>>()
        .join("\n")
}
