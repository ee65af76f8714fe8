//! Two-stage backprop: the backward region split into B and W.
//!
//! **B** is every backward node the input gradients (`input_grad:*` outputs, e.g. the
//! gradient a pipeline stage sends to the previous stage) depend on: the critical path.
//! **W** is the rest: nodes that only feed weight gradients and can run later. A
//! forward op whose rule emits nodes in both sets (a matmul's `dX` and `dW` products, a
//! layer norm's `dx` and `dscale`) is thereby split in two; nodes both sets need go to
//! B. Scheduling W after B keeps alive, from the end of B until W reads them, the
//! *stash*: the forward activations and B-side gradients that W reads.
//!
//! Without input gradients there is no critical path (the graph is a first pipeline
//! stage): B is empty and everything is W.

use std::collections::{BTreeMap, BTreeSet};

use tessera_ir::{Graph, NodeId, ValueId};

use super::schedule::{Schedule, is_resident, profile, value_bytes};
use crate::cost::node_flops;

/// The B/W partition of a training graph's backward region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Index of the first backward node.
    pub boundary: usize,
    /// Backward nodes in B and in W, each in program order.
    pub b: Vec<NodeId>,
    pub w: Vec<NodeId>,
    /// Values W reads that exist before W starts (forward activations and B results),
    /// in program order; all are live from the end of B until W reads them.
    pub stash: Vec<ValueId>,
    pub stash_bytes: u64,
    pub forward_flops: u64,
    pub b_flops: u64,
    pub w_flops: u64,
    /// Forward nodes (by label) whose backward nodes fall into both B and W.
    pub split_ops: Vec<String>,
    /// Number of `input_grad:` outputs that define B.
    pub input_grads: usize,
}

/// Partitions the backward region (nodes from `boundary` on) of `g`.
pub fn partition(g: &Graph, boundary: usize) -> Partition {
    let in_b = b_set(g, boundary);
    let mut b = Vec::new();
    let mut w = Vec::new();
    for (id, _) in g.nodes().skip(boundary) {
        if in_b[id.index()] {
            b.push(id);
        } else {
            w.push(id);
        }
    }
    let mut read_by_w = vec![false; g.num_values()];
    for &id in &w {
        for v in &g.node(id).inputs {
            read_by_w[v.index()] = true;
        }
    }
    let stash: Vec<ValueId> = g
        .nodes()
        .filter(|(id, _)| id.index() < boundary || in_b[id.index()])
        .flat_map(|(_, n)| n.outputs.iter().copied())
        .filter(|&v| read_by_w[v.index()] && !is_resident(g, v))
        .collect();
    let stash_bytes = stash.iter().map(|&v| value_bytes(g, v)).sum();
    let flops = |ids: &[NodeId]| ids.iter().map(|&id| node_flops(g, id)).sum::<u64>();
    let forward_flops = g
        .nodes()
        .take(boundary)
        .map(|(id, _)| node_flops(g, id))
        .sum();
    // Group backward nodes by the forward node named in their label.
    let mut sides: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    for (id, n) in g.nodes().skip(boundary) {
        if let Some(origin) = n.name.strip_prefix("grad:") {
            let e = sides.entry(origin).or_default();
            if in_b[id.index()] {
                e.0 = true;
            } else {
                e.1 = true;
            }
        }
    }
    let split_ops = sides
        .into_iter()
        .filter(|(_, (inb, inw))| *inb && *inw)
        .map(|(k, _)| k.to_string())
        .collect();
    let input_grads = g
        .outputs()
        .iter()
        .filter(|p| p.name.starts_with("input_grad:"))
        .count();
    Partition {
        boundary,
        b_flops: flops(&b),
        w_flops: flops(&w),
        b,
        w,
        stash,
        stash_bytes,
        forward_flops,
        split_ops,
        input_grads,
    }
}

/// For every node, whether it is a backward node in B.
fn b_set(g: &Graph, boundary: usize) -> Vec<bool> {
    let mut in_b = vec![false; g.num_nodes()];
    let mut stack: Vec<ValueId> = g
        .outputs()
        .iter()
        .filter(|p| p.name.starts_with("input_grad:"))
        .map(|p| p.value)
        .collect();
    while let Some(v) = stack.pop() {
        if let Some(n) = g.producer(v)
            && n.index() >= boundary
            && !in_b[n.index()]
        {
            in_b[n.index()] = true;
            stack.extend(&g.node(n).inputs);
        }
    }
    in_b
}

/// The order forward, B, W (each in program order): a topological order, since B never
/// reads W.
pub fn order(g: &Graph, p: &Partition) -> Vec<NodeId> {
    g.nodes()
        .take(p.boundary)
        .map(|(id, _)| id)
        .chain(p.b.iter().copied())
        .chain(p.w.iter().copied())
        .collect()
}

/// Peak transient bytes of `g` in program order and with W after B.
pub fn peak_cost(g: &Graph, p: &Partition) -> (u64, u64) {
    let before = profile(g, &Schedule::program_order(g)).peak_bytes;
    let after = profile(g, &Schedule::in_order(g, &order(g, p))).peak_bytes;
    (before, after)
}

/// The graph with its backward region reordered to B then W.
pub fn reorder(g: &Graph, p: &Partition) -> Graph {
    Schedule::in_order(g, &order(g, p)).to_graph(g)
}

/// Backward labels (`grad:<op>`) by side, for snapshots: `(B labels, W labels)`, each
/// sorted and deduplicated.
pub fn labels(g: &Graph, p: &Partition) -> (Vec<String>, Vec<String>) {
    let collect = |ids: &[NodeId]| {
        ids.iter()
            .map(|&id| g.node(id).name.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    (collect(&p.b), collect(&p.w))
}
