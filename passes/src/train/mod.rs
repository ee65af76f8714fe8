//! Training graphs: reverse-mode autodiff, sublinear-memory checkpointing, two-stage
//! backprop and a pipeline-schedule simulator.
//!
//! * [`autodiff`] builds a *training graph* (forward, loss, backward; ordinary IR) from a
//!   forward graph and a [`TrainSpec`]. Gradient rules live in `rules`, one per
//!   differentiable op.
//! * [`schedule`] is the exact execution simulator: peak live bytes and FLOPs of a graph
//!   run in program order (or any other order), counted from static shapes (FLOPs by
//!   [`crate::cost::flops()`], the table the roofline uses too).
//! * [`remat`] recomputes forward values in the backward region from a set of kept ones;
//!   [`checkpoint`] chooses that set: store-all, Chen's √n segments, Chen's greedy under
//!   a byte budget, or a min-cut (petgraph max-flow) that never recomputes contractions.
//!   [`revolve`] is the optimal-chain oracle the budget policy is measured against.
//! * [`split`] partitions the backward region into B (input gradients) and W (weight
//!   gradients) and schedules W after B; [`pipeline`] simulates 1F1B, 1F1B with deferred
//!   W and ZB-H1 pipeline schedules and draws them.
//! * [`models`] builds the benchmark graphs (n-layer MLP and residual chains, a
//!   transformer MLP block, a BERT layer).
//!
//! The [`crate::Pass`] wrappers ([`Autodiff`], [`Checkpoint`], [`TwoStage`]) make these
//! composable in a pipeline; they find the backward region by the seed node
//! ([`SEED_NAME`]) and report their figures as metrics named in [`metric`].

mod autodiff;
pub mod checkpoint;
mod emit;
mod loss;
pub mod metric;
pub mod models;
mod passes;
pub mod pipeline;
pub mod remat;
pub mod revolve;
mod rules;
pub mod schedule;
mod spec;
pub mod split;

use tessera_ir::{DType, Graph, Op, ValueId};

pub use autodiff::{GradKind, Gradient, SEED_NAME, TrainGraph, autodiff};
pub use passes::{Autodiff, Checkpoint, TwoStage};
pub use spec::{Loss, ParamSelection, TrainSpec, glob_match};

use crate::PassError;

/// A copy of `g` without the nodes no output depends on (graph inputs are kept), and the
/// map from old value ids to new ones (`None` for dropped values).
pub fn prune(g: &Graph) -> (Graph, Vec<Option<ValueId>>) {
    let mut live = vec![false; g.num_nodes()];
    let mut stack: Vec<ValueId> = g.outputs().iter().map(|p| p.value).collect();
    while let Some(v) = stack.pop() {
        if let Some(n) = g.producer(v)
            && !live[n.index()]
        {
            live[n.index()] = true;
            stack.extend(&g.node(n).inputs);
        }
    }
    let mut out = Graph::new(g.name.clone());
    let mut map: Vec<Option<ValueId>> = vec![None; g.num_values()];
    for p in g.inputs() {
        map[p.value.index()] = Some(out.add_input(p.name.clone(), g.ty(p.value).clone()));
    }
    for (id, n) in g.nodes() {
        if !live[id.index()] {
            continue;
        }
        let inputs = n
            .inputs
            .iter()
            .map(|v| map[v.index()].expect("invariant: live node inputs are mapped"))
            .collect();
        let types = n.outputs.iter().map(|&v| g.ty(v).clone()).collect();
        let outs = out.push_node_unchecked(n.op.clone(), inputs, types, n.name.clone());
        for (old, new) in n.outputs.iter().zip(outs) {
            map[old.index()] = Some(new);
        }
    }
    for p in g.outputs() {
        let v = map[p.value.index()].expect("invariant: outputs are live");
        out.add_output(p.name.clone(), v);
    }
    (out, map)
}

/// Index of the seed node (the first node of the backward region) of a training graph.
pub fn seed_index(g: &Graph) -> Option<usize> {
    g.nodes()
        .position(|(_, n)| n.name == SEED_NAME && matches!(n.op, Op::Constant(_)))
}

/// The seed index, or an error saying the graph is not a training graph.
pub(crate) fn backward_region(g: &Graph, pass: &'static str) -> Result<usize, PassError> {
    seed_index(g).ok_or_else(|| PassError::Failed {
        pass,
        message: format!(
            "not a training graph: no seed node {SEED_NAME:?} (run the autodiff pass first)"
        ),
    })
}

/// Forward values (outputs of non-constant nodes before `boundary`) that nodes at or after
/// `boundary` read, in program order: the tensors saved for backward.
pub fn saved_values(g: &Graph, boundary: usize) -> Vec<ValueId> {
    let mut read = vec![false; g.num_values()];
    for (_, n) in g.nodes().skip(boundary) {
        for v in &n.inputs {
            read[v.index()] = true;
        }
    }
    g.nodes()
        .take(boundary)
        .filter(|(_, n)| !matches!(n.op, Op::Constant(_)))
        .flat_map(|(_, n)| n.outputs.iter().copied())
        .filter(|v| read[v.index()])
        .collect()
}

/// `g` with every `from` float (inputs, constants, casts, results) turned into `to`, types
/// re-inferred: e.g. an f32 model as f64 for finite-difference gradient checks. Statistics
/// outputs that ops define as f32 stay f32.
pub fn cast_floats(g: &Graph, from: DType, to: DType) -> Result<Graph, PassError> {
    let fail = |message: String| PassError::Failed {
        pass: "cast-floats",
        message,
    };
    let mut out = Graph::new(g.name.clone());
    let mut map: Vec<Option<ValueId>> = vec![None; g.num_values()];
    for p in g.inputs() {
        let mut ty = g.ty(p.value).clone();
        if ty.dtype == from {
            ty.dtype = to;
        }
        map[p.value.index()] = Some(out.add_input(p.name.clone(), ty));
    }
    for (id, n) in g.nodes() {
        let op = match &n.op {
            Op::Constant(t) if t.dtype() == from => Op::Constant(t.cast(to)),
            Op::Cast { to: d } if *d == from => Op::Cast { to },
            other => other.clone(),
        };
        let inputs: Vec<ValueId> = n
            .inputs
            .iter()
            .map(|v| {
                map[v.index()]
                    .ok_or_else(|| fail(format!("value {v} is used before it is defined")))
            })
            .collect::<Result<_, _>>()?;
        let outs = out
            .add_node(op, &inputs, n.name.clone())
            .map_err(|e| PassError::Node {
                pass: "cast-floats",
                node: g.node_ref(id),
                message: e.to_string(),
            })?;
        for (old, new) in n.outputs.iter().zip(outs) {
            map[old.index()] = Some(new);
        }
    }
    for p in g.outputs() {
        let v = map[p.value.index()]
            .ok_or_else(|| fail(format!("output {:?} is undefined", p.name)))?;
        out.add_output(p.name.clone(), v);
    }
    Ok(out)
}
