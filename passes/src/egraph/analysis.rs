//! The e-class analysis: dtype and shape of every e-class, and the value of constant ones.
//!
//! Types come from [`Op::infer`], the IR's one type rule, so an e-class's type is exactly
//! what the extracted node will have. Constant values are computed with the
//! [`Evaluator`] the pass context lends (the reference interpreter): an op whose operands
//! are all constant gets its value when it is added, within a size limit and a budget, and
//! the `constant-fold` rule then adds the value as a `Const` e-node.

use egg::{Analysis, DidMerge, EGraph, Id, Language};
use tessera_ir::{Evaluator, Op, TensorType};

use super::lang::{ConstRef, TNode};

/// The e-graph type of the optimizer.
pub type TGraph<'a> = EGraph<TNode, TensorAnalysis<'a>>;

/// Per e-class facts.
#[derive(Clone, Debug)]
pub struct Data {
    /// One type for a value, one per output for a tuple (multi-output op), none for an
    /// attribute class.
    pub types: Vec<TensorType>,
    /// True for the e-class of a multi-output op (read through `Proj`).
    pub tuple: bool,
    /// The value, when the e-class is a constant.
    pub konst: Option<ConstRef>,
    /// The op, for attribute classes.
    pub attr: Option<Op>,
}

impl Data {
    /// The type of a value class (`None` for tuples and attributes).
    pub fn ty(&self) -> Option<&TensorType> {
        if self.tuple { None } else { self.types.first() }
    }
}

/// The analysis state: graph input types and constant folding settings.
pub struct TensorAnalysis<'a> {
    /// Types of the graph inputs, by index.
    pub inputs: Vec<TensorType>,
    /// Folds constant ops; `None` disables folding.
    pub evaluator: Option<&'a dyn Evaluator>,
    /// Largest constant (in elements) folding may produce.
    pub fold_limit: usize,
    /// Elements folding may still produce in this e-graph.
    pub fold_budget: usize,
}

impl<'a> TensorAnalysis<'a> {
    pub fn new(
        inputs: Vec<TensorType>,
        evaluator: Option<&'a dyn Evaluator>,
        fold_limit: usize,
        fold_budget: usize,
    ) -> Self {
        TensorAnalysis {
            inputs,
            evaluator,
            fold_limit,
            fold_budget,
        }
    }
}

/// The op an `Op` e-node applies and its operand e-classes (without the attribute class).
pub fn node_op<'g>(egraph: &'g TGraph<'_>, node: &'g TNode) -> Option<(Op, &'g [Id])> {
    let TNode::Op(kind, children) = node else {
        return None;
    };
    match kind.plain_op() {
        Some(op) => Some((op, children.as_slice())),
        None => {
            let (first, rest) = children.split_first()?;
            let op = egraph[*first].data.attr.clone()?;
            Some((op, rest))
        }
    }
}

fn empty() -> Data {
    Data {
        types: Vec::new(),
        tuple: false,
        konst: None,
        attr: None,
    }
}

impl<'a> Analysis<TNode> for TensorAnalysis<'a> {
    type Data = Data;

    fn make(egraph: &mut TGraph<'a>, enode: &TNode, _id: Id) -> Data {
        match enode {
            TNode::Input(k) => Data {
                types: egraph
                    .analysis
                    .inputs
                    .get(*k as usize)
                    .cloned()
                    .into_iter()
                    .collect(),
                ..empty()
            },
            TNode::Const(c) => Data {
                types: vec![c.tensor().ty()],
                konst: Some(c.clone()),
                ..empty()
            },
            TNode::Attr(a) => Data {
                attr: Some(a.op().clone()),
                ..empty()
            },
            TNode::Proj(k, [t]) => {
                let d = &egraph[*t].data;
                Data {
                    types: d.types.get(*k as usize).cloned().into_iter().collect(),
                    ..empty()
                }
            }
            TNode::Op(..) => {
                let Some((op, operands)) = node_op(egraph, enode) else {
                    return empty();
                };
                let operands: Vec<Id> = operands.to_vec();
                let types: Vec<TensorType> = operands
                    .iter()
                    .filter_map(|&c| egraph[c].data.ty().cloned())
                    .collect();
                if types.len() != operands.len() {
                    return empty();
                }
                let refs: Vec<&TensorType> = types.iter().collect();
                // Rules check types before they add a node (see `rules::Rewriter::op`), and
                // converted graphs are verified, so inference succeeds; an empty type list
                // would only make the e-class unusable, never wrong.
                let Ok(out) = op.infer(&refs) else {
                    return empty();
                };
                let tuple = op.num_outputs() > 1;
                let konst = if tuple {
                    None
                } else {
                    fold(egraph, &op, &operands, &out)
                };
                Data {
                    types: out,
                    tuple,
                    konst,
                    attr: None,
                }
            }
        }
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        debug_assert_eq!(a.types, b.types, "merged e-classes disagree on types");
        match (&a.konst, &b.konst) {
            (None, Some(_)) => {
                a.konst = b.konst;
                DidMerge(true, false)
            }
            (Some(_), None) => DidMerge(false, true),
            _ => DidMerge(false, false),
        }
    }
}

/// The value of `op` on constant operands, if all are constant and folding is allowed.
fn fold(egraph: &mut TGraph<'_>, op: &Op, operands: &[Id], out: &[TensorType]) -> Option<ConstRef> {
    let evaluator = egraph.analysis.evaluator?;
    let n = out.first()?.shape.numel();
    if n > egraph.analysis.fold_limit || n > egraph.analysis.fold_budget {
        return None;
    }
    let args: Vec<ConstRef> = operands
        .iter()
        .map(|&c| egraph[c].data.konst.clone())
        .collect::<Option<_>>()?;
    // Folding costs what it computes: skip contractions that would take long.
    let work: usize = match op {
        Op::MatMul | Op::Gemm { .. } | Op::Conv(_) | Op::Attention { .. } => {
            args.iter().map(|c| c.tensor().numel()).sum::<usize>() * n.max(1)
        }
        _ => 0,
    };
    if work > 1 << 26 {
        return None;
    }
    let refs: Vec<&tessera_ir::Tensor> = args.iter().map(|c| c.tensor()).collect();
    let mut outs = evaluator.eval(op, &refs).ok()?;
    if outs.len() != 1 || outs[0].ty() != out[0] {
        return None;
    }
    egraph.analysis.fold_budget -= n;
    Some(ConstRef::new(outs.remove(0)))
}

/// True if every child of `node` is in an e-class with a type (used by extraction).
pub fn well_typed(egraph: &TGraph<'_>, node: &TNode) -> bool {
    node.all(|c| !egraph[c].data.types.is_empty() || egraph[c].data.attr.is_some())
}
