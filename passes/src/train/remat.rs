//! Rematerialization: the one mechanism behind every checkpoint policy.
//!
//! Given a training graph and the set of forward values to *keep* (hold from the forward
//! pass until the backward pass reads them), [`rematerialize`] schedules the forward pass
//! as is, then the backward region in program order; when a backward node reads a forward
//! value that was not kept, the value is recomputed just before that node from kept values,
//! resident ones (parameters, inputs) and values recomputed earlier, recursively. A
//! recomputed value stays available to later backward nodes until its last use, so a
//! segment between two checkpoints is recomputed once, when the backward pass first needs
//! it (Chen et al.'s segment scheme falls out of keeping segment boundaries).
//!
//! Recomputation repeats the same ops on the same operands, so every gradient is bitwise
//! identical to the store-all graph's on a deterministic backend.

use tessera_ir::{Graph, NodeId, Op, ValueId};

use super::schedule::{Schedule, Step, is_resident};

/// The schedule that keeps the forward values with `keep[v]` and recomputes the others
/// where the backward region (nodes from `boundary` on) reads them.
pub fn rematerialize(g: &Graph, boundary: usize, keep: &[bool]) -> Schedule {
    let order: Vec<NodeId> = g.nodes().map(|(id, _)| id).collect();
    let (mut s, defined) = Schedule::prefix(g, &order[..boundary]);
    // The instance backward nodes read for each value, if available without recomputing:
    // resident values and kept forward values.
    let mut current: Vec<Option<usize>> = vec![None; g.num_values()];
    for (v, inst) in defined.iter().enumerate() {
        let Some(i) = *inst else { continue };
        let value = s.instances[i].value;
        if is_resident(g, value) || keep.get(v).copied().unwrap_or(false) {
            current[v] = Some(i);
        }
    }
    let mut copies: Vec<u32> = vec![0; g.num_values()];
    for &id in &order[boundary..] {
        let n = g.node(id);
        let mut inputs = Vec::with_capacity(n.inputs.len());
        for &v in &n.inputs {
            inputs.push(ensure(g, &mut s, &mut current, &mut copies, v));
        }
        let outputs: Vec<usize> = n.outputs.iter().map(|&v| s.new_instance(v, 0)).collect();
        for (&v, &i) in n.outputs.iter().zip(&outputs) {
            current[v.index()] = Some(i);
        }
        s.steps.push(Step {
            node: id,
            recompute: false,
            inputs,
            outputs,
        });
    }
    s.outputs = g
        .outputs()
        .iter()
        .map(|p| {
            // The loss is a forward value: its first computation, kept or not.
            current[p.value.index()]
                .or(defined[p.value.index()])
                .expect("invariant: outputs are defined")
        })
        .collect();
    s
}

/// An instance of `v` available now, recomputing its producer (and, first, whatever the
/// producer needs) if there is none. Iterative, so deep chains do not overflow the stack.
fn ensure(
    g: &Graph,
    s: &mut Schedule,
    current: &mut [Option<usize>],
    copies: &mut [u32],
    v: ValueId,
) -> usize {
    if let Some(i) = current[v.index()] {
        return i;
    }
    // Depth-first: a node is emitted once all its inputs are available.
    let mut stack: Vec<(NodeId, bool)> = vec![(producer(g, v), false)];
    while let Some((id, expanded)) = stack.pop() {
        let n = g.node(id);
        if n.outputs.iter().all(|o| current[o.index()].is_some()) {
            continue;
        }
        let missing: Vec<ValueId> = n
            .inputs
            .iter()
            .copied()
            .filter(|u| current[u.index()].is_none())
            .collect();
        if !expanded && !missing.is_empty() {
            stack.push((id, true));
            for u in missing.into_iter().rev() {
                stack.push((producer(g, u), false));
            }
            continue;
        }
        let inputs = n
            .inputs
            .iter()
            .map(|u| current[u.index()].expect("invariant: inputs recomputed first"))
            .collect();
        let outputs: Vec<usize> = n
            .outputs
            .iter()
            .map(|&o| {
                copies[o.index()] += 1;
                s.new_instance(o, copies[o.index()])
            })
            .collect();
        for (&o, &i) in n.outputs.iter().zip(&outputs) {
            current[o.index()] = Some(i);
        }
        s.steps.push(Step {
            node: id,
            recompute: true,
            inputs,
            outputs,
        });
    }
    current[v.index()].expect("invariant: recomputed")
}

fn producer(g: &Graph, v: ValueId) -> NodeId {
    let n = g
        .producer(v)
        .expect("invariant: only node outputs are ever missing");
    debug_assert!(!matches!(g.node(n).op, Op::Constant(_)));
    n
}
