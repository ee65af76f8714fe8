//! tessera's graph IR.
//!
//! A [`Graph`] is an arena of [`Node`]s and [`Value`]s addressed by typed `u32` ids
//! ([`NodeId`], [`ValueId`]), stored in program order (always a topological order). Each
//! node applies one [`Op`] from a closed enum whose attributes are typed and normalized;
//! each value has a static [`TensorType`]. Constants hold reference-counted [`Tensor`]s, so
//! an initializer is stored once however often it is used or the graph is cloned.
//!
//! * [`Op::infer`] computes output types; [`Graph::add_node`] uses it, so a graph built
//!   through the API is well typed by construction.
//! * [`verify`] checks the invariants listed in its module documentation.
//! * [`text::print`] and [`text::parse`] are the one canonical text form.
//!
//! This crate knows nothing of ONNX, e-graphs, devices or files: importers, passes and
//! backends depend on it, never the other way round. Evaluating ops is also outside it:
//! the [`Evaluator`] trait lets the reference interpreter (in `tessera-runtime`) lend its
//! kernels to whoever needs constant folding.
//!
//! ```
//! use tessera_ir::{DType, Graph, Op, Shape, TensorType, UnaryOp, text};
//!
//! let mut g = Graph::new("tiny");
//! let x = g.add_input("x", TensorType::new(DType::F32, Shape::from_dims(&[2, 3])));
//! let y = g.add_node1(Op::Unary(UnaryOp::Relu), &[x], "act").unwrap();
//! g.add_output("y", y);
//! tessera_ir::verify(&g).unwrap();
//! let txt = text::print(&g, &Default::default());
//! assert_eq!(txt, "graph \"tiny\" {\n  input \"x\" %0: f32[2,3]\n  %1: f32[2,3] = relu(%0) \"act\"\n  output \"y\" %1\n}\n");
//! assert_eq!(text::print(&text::parse(&txt).unwrap(), &Default::default()), txt);
//! ```

mod dtype;
mod error;
mod graph;
mod infer;
mod op;
mod shape;
mod tensor;
pub mod text;
mod verify;

pub use dtype::DType;
pub use error::{IrError, NodeRef, VerifyError};
pub use graph::{Graph, Node, NodeId, Port, Value, ValueDef, ValueId};
pub use infer::broadcast_shapes;
pub use op::{BinaryOp, ConvAttrs, Domain, GeluApprox, Op, PoolAttrs, PoolKind, ReduceOp, UnaryOp};
pub use shape::{MAX_ELEMENTS, MAX_RANK, Shape, TensorType};
pub use tensor::{Element, Tensor, TensorData};
pub use verify::verify;

/// Re-exported so that [`dispatch_dtype!`] works in other crates.
pub use half;

/// Computes one op on constant inputs. The reference interpreter implements it; importers
/// and passes use it to fold constant subgraphs without depending on the runtime crate.
pub trait Evaluator {
    /// The op's outputs for these inputs, or a message saying why it cannot be computed.
    fn eval(&self, op: &Op, inputs: &[&Tensor]) -> Result<Vec<Tensor>, String>;
}
