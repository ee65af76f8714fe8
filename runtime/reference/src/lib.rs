//! The reference interpreter: runs a verified graph on the CPU, one op at a time.
//!
//! It is the oracle every pass and backend is compared with, so it is written to be
//! obviously right rather than fast: float math is done in f64 and rounded once to the
//! output dtype (so it is at least as accurate as any f32 backend), reductions and
//! contractions accumulate in f64, and data movement is expressed as one mechanism
//! (strided offset lists, see [`index`]). It is still quick enough to run the bundled
//! GraphNet samples in seconds: contractions use im2col and a cache-friendly loop order.
//!
//! Kernels may rely on their inputs having the types [`tessera_ir::Op::infer`] accepts:
//! [`eval_op`] checks that first, and [`run`] verifies the whole graph.

pub mod index;
mod kernels;

use tessera_ir::{Evaluator, Graph, IrError, NodeRef, Op, Tensor, verify};

/// Why the interpreter could not run a graph.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The graph does not verify, or the inputs do not match its inputs.
    #[error(transparent)]
    Ir(#[from] IrError),

    /// An op rejected its operands at run time (an out-of-range gather index, say).
    #[error("{node}: {message}")]
    Node { node: NodeRef, message: String },
}

/// Computes one op. Input types are checked against [`Op::infer`] first, so a bad call
/// returns an error, never panics.
pub fn eval_op(op: &Op, inputs: &[&Tensor]) -> Result<Vec<Tensor>, String> {
    let types: Vec<_> = inputs.iter().map(|t| t.ty()).collect();
    let type_refs: Vec<_> = types.iter().collect();
    let out_types = op.infer(&type_refs)?;
    let outs = kernels::eval(op, inputs, &out_types)?;
    debug_assert_eq!(
        outs.iter().map(|t| t.ty()).collect::<Vec<_>>(),
        out_types,
        "kernel for {} produced the wrong types",
        op.name()
    );
    Ok(outs)
}

/// The reference interpreter as an [`Evaluator`], for constant folding at import.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reference;

impl Evaluator for Reference {
    fn eval(&self, op: &Op, inputs: &[&Tensor]) -> Result<Vec<Tensor>, String> {
        eval_op(op, inputs)
    }
}

/// Runs `g` on `inputs` (one per graph input, in order) and returns the graph outputs in
/// order. Each intermediate is freed after its last use.
pub fn run(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, ReferenceError> {
    verify(g)?;
    g.check_inputs(inputs)?;
    let mut values: Vec<Option<Tensor>> = vec![None; g.num_values()];
    for (p, t) in g.inputs().iter().zip(inputs) {
        values[p.value.index()] = Some(t.clone());
    }
    // Remaining reads of each value; graph outputs count as one read that never happens.
    let mut remaining = vec![0usize; g.num_values()];
    for (_, n) in g.nodes() {
        for v in &n.inputs {
            remaining[v.index()] += 1;
        }
    }
    for p in g.outputs() {
        remaining[p.value.index()] += 1;
    }
    for (id, n) in g.nodes() {
        let args: Vec<&Tensor> = n
            .inputs
            .iter()
            .map(|v| {
                values[v.index()]
                    .as_ref()
                    .expect("invariant: verified graphs define values before use")
            })
            .collect();
        let outs = eval_op(&n.op, &args).map_err(|message| ReferenceError::Node {
            node: g.node_ref(id),
            message,
        })?;
        for (v, t) in n.outputs.iter().zip(outs) {
            values[v.index()] = Some(t);
        }
        for v in &n.inputs {
            remaining[v.index()] -= 1;
            if remaining[v.index()] == 0 {
                values[v.index()] = None;
            }
        }
    }
    Ok(g.outputs()
        .iter()
        .map(|p| {
            values[p.value.index()]
                .clone()
                .expect("invariant: outputs are defined and kept alive")
        })
        .collect())
}

/// Describes a node that is not part of a graph (for errors from [`eval_op`] callers).
pub fn detached_node(op: &Op, name: &str) -> NodeRef {
    NodeRef {
        id: None,
        name: name.to_string(),
        op: op.name().to_string(),
    }
}
