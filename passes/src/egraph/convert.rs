//! IR ⇄ e-graph.
//!
//! [`lower`] adds every node of a graph to a fresh e-graph (graph inputs become `Input`
//! leaves, constants `Const` leaves, multi-output ops tuples read through `Proj`).
//! [`raise`] turns a choice of one e-node per e-class back into a graph: nodes are
//! emitted in a topological order that follows the input's program order (an e-node
//! that was in the input keeps its position, new ones go where the e-class's original
//! node was, or right after their operands), and keep the input's node names.
//!
//! For a graph that no rule touched, `raise(lower(g))` with the input's own choice is `g`
//! without dead nodes and with structurally identical nodes merged (hash-consing is
//! common-subexpression elimination); `tests/egraph_corpus.rs` checks this on every
//! corpus model.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use egg::{Id, Language};
use tessera_ir::{Graph, Op, ValueId};

use super::analysis::{TGraph, TensorAnalysis};
use super::lang::{AttrRef, ConstRef, Kind, TNode};

/// One node of the input graph as it entered the e-graph.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The e-node (children canonical at insertion time).
    pub node: TNode,
    /// Its e-class (a tuple class for multi-output ops).
    pub class: Id,
    pub name: String,
    /// Number of outputs; above one, each is read through a `Proj` e-node.
    pub outputs: usize,
}

/// A graph in an e-graph.
pub struct Lowered<'a> {
    pub egraph: TGraph<'a>,
    /// The e-class of each graph output, in order.
    pub roots: Vec<Id>,
    /// The input's nodes, in program order (constants and ops).
    pub origins: Vec<Origin>,
}

/// Why a graph cannot be optimized by the e-graph pass.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("node {node} ({op}): op not supported by the e-graph optimizer")]
    Unsupported { node: String, op: &'static str },
    #[error("extraction has no e-node for e-class {0}")]
    MissingChoice(Id),
    #[error("extraction has a cycle through e-class {0}")]
    Cycle(Id),
    #[error("rebuilding node for e-class {class}: {message}")]
    Rebuild { class: Id, message: String },
}

/// Adds `g` to a fresh e-graph with `analysis`.
pub fn lower<'a>(g: &Graph, analysis: TensorAnalysis<'a>) -> Result<Lowered<'a>, ConvertError> {
    let mut egraph = TGraph::new(analysis);
    let mut value: Vec<Option<Id>> = vec![None; g.num_values()];
    for (k, p) in g.inputs().iter().enumerate() {
        let k = u32::try_from(k).expect("invariant: fewer than 2^32 graph inputs");
        value[p.value.index()] = Some(egraph.add(TNode::Input(k)));
    }
    let mut origins = Vec::with_capacity(g.num_nodes());
    for (id, n) in g.nodes() {
        let enode = match &n.op {
            Op::Constant(t) => TNode::Const(ConstRef::new(t.clone())),
            op => {
                let kind = Kind::of(op).ok_or_else(|| ConvertError::Unsupported {
                    node: g.node_ref(id).to_string(),
                    op: op.name(),
                })?;
                let mut children = Vec::with_capacity(n.inputs.len() + 1);
                if kind.has_attrs() {
                    children.push(egraph.add(TNode::Attr(AttrRef::new(op.clone()))));
                }
                for v in &n.inputs {
                    children.push(
                        value[v.index()]
                            .expect("invariant: verified graphs define values before use"),
                    );
                }
                TNode::Op(kind, children)
            }
        };
        let class = egraph.add(enode.clone());
        if n.outputs.len() > 1 {
            for (k, v) in n.outputs.iter().enumerate() {
                let k = u32::try_from(k).expect("invariant: few outputs");
                value[v.index()] = Some(egraph.add(TNode::Proj(k, [class])));
            }
        } else if let Some(v) = n.outputs.first() {
            value[v.index()] = Some(class);
        }
        origins.push(Origin {
            node: enode,
            class,
            name: n.name.clone(),
            outputs: n.outputs.len(),
        });
    }
    let roots = g
        .outputs()
        .iter()
        .map(|p| value[p.value.index()].expect("invariant: outputs are defined"))
        .collect();
    egraph.rebuild();
    Ok(Lowered {
        egraph,
        roots,
        origins,
    })
}

/// The input's e-nodes, canonical in the current e-graph, mapped to their first position
/// in program order.
pub fn origin_rank(egraph: &TGraph<'_>, origins: &[Origin]) -> HashMap<TNode, usize> {
    let mut rank = HashMap::new();
    for (i, o) in origins.iter().enumerate() {
        let canon = o.node.clone().map_children(|c| egraph.find(c));
        rank.entry(canon).or_insert(i);
        if o.outputs > 1 {
            for k in 0..o.outputs {
                let k = u32::try_from(k).expect("invariant: few outputs");
                rank.entry(TNode::Proj(k, [egraph.find(o.class)]))
                    .or_insert(i);
            }
        }
    }
    rank
}

/// Where a node goes: (program position, tier: 0 input node, 1 new node in an input
/// node's e-class, 2 new node elsewhere; post-order index).
type PlaceKey = (usize, u8, usize);

/// The extraction being raised: the e-graph, the chosen node per class, and where the
/// input's nodes were.
struct Raiser<'e, 'a> {
    egraph: &'e TGraph<'a>,
    choice: &'e HashMap<Id, TNode>,
    origins: &'e [Origin],
    /// Program position of each input node (canonical e-node → origin index).
    rank: HashMap<TNode, usize>,
    /// The first origin in each e-class.
    class_origin: HashMap<Id, usize>,
}

impl Raiser<'_, '_> {
    fn chosen(&self, c: Id) -> Result<&TNode, ConvertError> {
        self.choice
            .get(&self.egraph.find(c))
            .ok_or(ConvertError::MissingChoice(c))
    }

    /// The classes `roots` need, children before parents (iterative post-order DFS).
    fn needed(&self, roots: &[Id]) -> Result<Vec<Id>, ConvertError> {
        let egraph = self.egraph;
        let mut order: Vec<Id> = Vec::new();
        let mut state: HashMap<Id, u8> = HashMap::new();
        for &r in roots {
            let r = egraph.find(r);
            if state.contains_key(&r) {
                continue;
            }
            let mut stack: Vec<(Id, usize)> = vec![(r, 0)];
            state.insert(r, 1);
            while let Some(&mut (c, ref mut next)) = stack.last_mut() {
                let node = self.chosen(c)?;
                if let Some(&child) = node.children().get(*next) {
                    *next += 1;
                    let child = egraph.find(child);
                    match state.get(&child) {
                        None => {
                            state.insert(child, 1);
                            stack.push((child, 0));
                        }
                        Some(1) => return Err(ConvertError::Cycle(child)),
                        _ => {}
                    }
                } else {
                    state.insert(c, 2);
                    order.push(c);
                    stack.pop();
                }
            }
        }
        Ok(order)
    }

    /// Placement keys: (program position, tier, post-order index). Input nodes keep their
    /// position; new nodes in an input node's class take its position; other new nodes go
    /// right after their latest operand.
    fn keys(&self, order: &[Id]) -> Result<HashMap<Id, PlaceKey>, ConvertError> {
        let egraph = self.egraph;
        let mut key: HashMap<Id, PlaceKey> = HashMap::new();
        for (seq, &c) in order.iter().enumerate() {
            let node = self.chosen(c)?;
            let canon = node.clone().map_children(|x| egraph.find(x));
            let k = if let Some(&r) = self.rank.get(&canon) {
                (r, 0, seq)
            } else if let Some(&r) = self.class_origin.get(&c) {
                (r, 1, seq)
            } else {
                let after = node
                    .children()
                    .iter()
                    .filter_map(|x| key.get(&egraph.find(*x)).map(|k| k.0))
                    .max()
                    .unwrap_or(0);
                (after, 2, seq)
            };
            key.insert(c, k);
        }
        Ok(key)
    }

    /// Adds the chosen node of class `c` to `g`; returns its values.
    fn emit(
        &self,
        g: &mut Graph,
        c: Id,
        values: &HashMap<Id, Vec<ValueId>>,
    ) -> Result<Vec<ValueId>, ConvertError> {
        let egraph = self.egraph;
        let node = self.chosen(c)?;
        let name = {
            let canon = node.clone().map_children(|x| egraph.find(x));
            self.rank
                .get(&canon)
                .or_else(|| self.class_origin.get(&c))
                .map(|&i| self.origins[i].name.clone())
                .unwrap_or_default()
        };
        let rebuild = |message: String| ConvertError::Rebuild { class: c, message };
        Ok(match node {
            TNode::Input(k) => {
                let p = g
                    .inputs()
                    .get(*k as usize)
                    .ok_or_else(|| rebuild(format!("no graph input {k}")))?;
                vec![p.value]
            }
            TNode::Attr(_) => Vec::new(),
            TNode::Const(t) => vec![g.add_constant(t.tensor().clone(), name)],
            TNode::Proj(k, [t]) => {
                let v = values
                    .get(&egraph.find(*t))
                    .and_then(|vs| vs.get(*k as usize))
                    .ok_or_else(|| rebuild(format!("projection {k} of a missing tuple")))?;
                vec![*v]
            }
            TNode::Op(kind, children) => {
                let (op, operands) = match kind.plain_op() {
                    Some(op) => (op, children.as_slice()),
                    None => {
                        let (first, rest) = children
                            .split_first()
                            .ok_or_else(|| rebuild("attribute child missing".into()))?;
                        let op = egraph[*first]
                            .data
                            .attr
                            .clone()
                            .ok_or_else(|| rebuild("first child is not an attribute".into()))?;
                        (op, rest)
                    }
                };
                let mut inputs = Vec::with_capacity(operands.len());
                for x in operands {
                    let vs = values
                        .get(&egraph.find(*x))
                        .ok_or_else(|| rebuild("operand not emitted".into()))?;
                    match vs.as_slice() {
                        [v] => inputs.push(*v),
                        _ => return Err(rebuild("operand is not a single value".into())),
                    }
                }
                g.add_node(op, &inputs, name)
                    .map_err(|e| rebuild(e.to_string()))?
            }
        })
    }
}

/// Builds the graph that `choice` (an e-node per e-class, by e-class id) extracts for
/// `roots`. `source` gives the graph name, inputs and output names; `origins` the
/// input's node order and names. Nodes are placed by Kahn's algorithm over the needed
/// classes, smallest placement key first, so the input's program order is kept.
pub fn raise(
    egraph: &TGraph<'_>,
    choice: &HashMap<Id, TNode>,
    roots: &[Id],
    source: &Graph,
    origins: &[Origin],
) -> Result<Graph, ConvertError> {
    let mut class_origin: HashMap<Id, usize> = HashMap::new();
    for (i, o) in origins.iter().enumerate() {
        class_origin.entry(egraph.find(o.class)).or_insert(i);
    }
    let r = Raiser {
        egraph,
        choice,
        origins,
        rank: origin_rank(egraph, origins),
        class_origin,
    };
    let order = r.needed(roots)?;
    let key = r.keys(&order)?;

    let mut users: HashMap<Id, Vec<Id>> = HashMap::new();
    let mut pending: HashMap<Id, usize> = HashMap::new();
    for &c in &order {
        let mut kids: Vec<Id> = r
            .chosen(c)?
            .children()
            .iter()
            .map(|x| egraph.find(*x))
            .collect();
        kids.sort();
        kids.dedup();
        pending.insert(c, kids.len());
        for k in kids {
            users.entry(k).or_default().push(c);
        }
    }
    let mut ready: BinaryHeap<Reverse<(PlaceKey, Id)>> = order
        .iter()
        .filter(|c| pending[c] == 0)
        .map(|&c| Reverse((key[&c], c)))
        .collect();

    let mut g = Graph::new(source.name.clone());
    for p in source.inputs() {
        g.add_input(p.name.clone(), source.ty(p.value).clone());
    }
    let mut values: HashMap<Id, Vec<ValueId>> = HashMap::new();
    while let Some(Reverse((_, c))) = ready.pop() {
        let outs = r.emit(&mut g, c, &values)?;
        values.insert(c, outs);
        for u in users.get(&c).into_iter().flatten() {
            let p = pending
                .get_mut(u)
                .expect("invariant: users are needed classes");
            *p -= 1;
            if *p == 0 {
                ready.push(Reverse((key[u], *u)));
            }
        }
    }
    for (p, &root) in source.outputs().iter().zip(roots) {
        let root = egraph.find(root);
        let v = values
            .get(&root)
            .and_then(|vs| match vs.as_slice() {
                [v] => Some(*v),
                _ => None,
            })
            .ok_or(ConvertError::MissingChoice(root))?;
        g.add_output(p.name.clone(), v);
    }
    Ok(g)
}
