//! Checkpoint policies: which forward values a training graph keeps for the backward
//! pass; [`super::remat`] recomputes the rest.
//!
//! * [`Policy::StoreAll`] keeps everything the backward region reads.
//! * [`Policy::Sqrt`] is Chen et al.'s √n segmentation: the forward pass is cut into
//!   *layers* at articulation values (the only non-resident forward value live across a
//!   point of the forward order), grouped from the loss backwards into segments of
//!   `round(√L)` layers; only segment boundaries are kept, plus the whole last segment,
//!   which the backward pass starts with.
//! * [`Policy::Budget`] is Chen's greedy planner under a byte budget: for every segment
//!   threshold `b` it closes a segment when the saved bytes accumulated (from the loss
//!   backwards) exceed `b`; with these, the equal-layer-count segmentations (√n's among
//!   them) are candidates too. Every candidate is simulated exactly, and the cheapest one
//!   (fewest recomputed FLOPs) whose peak fits the budget wins.
//! * [`Policy::MinCut`] is PyTorch's min-cut rematerialization partitioner: each forward
//!   value splits into `in → out` with capacity = its bytes, data edges and
//!   "the backward reads it" edges are infinite, and values of contractions (matmul,
//!   gemm, conv, attention) are tied to the source, so they are never recomputed. The
//!   minimum cut (petgraph Dinic max-flow, then a residual search) is the cheapest set of
//!   values to save.

use std::collections::HashSet;

use petgraph::algo::dinics;
use petgraph::graph::{DiGraph, NodeIndex};
use tessera_ir::{Graph, NodeId, Op, ValueId};

use super::remat::rematerialize;
use super::schedule::{MemoryProfile, Schedule, is_resident, profile, value_bytes};
use crate::PassError;
use crate::cost::node_flops;

/// Which checkpoint policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    StoreAll,
    Sqrt,
    /// Peak transient bytes allowed.
    Budget(u64),
    MinCut,
}

impl Policy {
    /// Parses `none`, `sqrt`, `mincut` or `budget=BYTES` (with an optional `K`, `M`,
    /// `G` binary suffix: `budget=64M`).
    pub fn parse(s: &str) -> Result<Policy, String> {
        match s {
            "none" | "store-all" => Ok(Policy::StoreAll),
            "sqrt" => Ok(Policy::Sqrt),
            "mincut" | "min-cut" => Ok(Policy::MinCut),
            _ => {
                let Some(b) = s.strip_prefix("budget=") else {
                    return Err(format!(
                        "unknown checkpoint policy {s:?}; expected none, sqrt, budget=BYTES or mincut"
                    ));
                };
                let (num, mul) = match b.char_indices().last() {
                    Some((i, 'K' | 'k')) => (&b[..i], 1u64 << 10),
                    Some((i, 'M' | 'm')) => (&b[..i], 1 << 20),
                    Some((i, 'G' | 'g')) => (&b[..i], 1 << 30),
                    _ => (b, 1),
                };
                num.parse::<u64>()
                    .ok()
                    .and_then(|n| n.checked_mul(mul))
                    .map(Policy::Budget)
                    .ok_or_else(|| {
                        format!("budget {b:?} is not a byte count (e.g. 1048576 or 64M)")
                    })
            }
        }
    }

    pub fn name(&self) -> String {
        match self {
            Policy::StoreAll => "none".into(),
            Policy::Sqrt => "sqrt".into(),
            Policy::Budget(b) => format!("budget={b}"),
            Policy::MinCut => "mincut".into(),
        }
    }
}

/// A checkpoint plan for a training graph and what it costs.
#[derive(Clone, Debug)]
pub struct CheckpointPlan {
    pub policy: Policy,
    /// Forward values held from the forward into the backward pass (program order).
    pub saved: Vec<ValueId>,
    pub saved_bytes: u64,
    /// The schedule that realizes the plan (forward, then backward with recomputation).
    pub schedule: Schedule,
    pub memory: MemoryProfile,
    pub recompute_flops: u64,
    pub recompute_nodes: usize,
    /// FLOPs of one forward pass (nodes before the seed, loss included).
    pub forward_flops: u64,
    /// FLOPs of the backward region without recomputation.
    pub backward_flops: u64,
}

const PASS: &str = "checkpoint";

/// Plans checkpointing of training graph `g` (backward region from `boundary`).
pub fn plan(g: &Graph, boundary: usize, policy: Policy) -> Result<CheckpointPlan, PassError> {
    let saved_all = super::saved_values(g, boundary);
    let keep = match policy {
        Policy::StoreAll => saved_all.clone(),
        Policy::Sqrt => {
            let layers = Layers::new(g, boundary);
            let l = layers.ends.len();
            let seg = ((l as f64).sqrt().round() as usize).max(1);
            layers.keep_uniform(g, boundary, seg, seg)
        }
        Policy::Budget(budget) => return budget_plan(g, boundary, budget),
        Policy::MinCut => min_cut_keep(g, boundary)?,
    };
    Ok(evaluate(g, boundary, policy, &keep))
}

/// Simulates keeping `keep` (plus nothing else) and measures the result.
pub fn evaluate(g: &Graph, boundary: usize, policy: Policy, keep: &[ValueId]) -> CheckpointPlan {
    let mut mask = vec![false; g.num_values()];
    for v in keep {
        mask[v.index()] = true;
    }
    let schedule = rematerialize(g, boundary, &mask);
    let memory = profile(g, &schedule);
    // Saved = forward (copy 0) instances some backward step reads.
    let forward_steps = boundary;
    let mut read = vec![false; schedule.instances.len()];
    for st in &schedule.steps[forward_steps..] {
        for &i in &st.inputs {
            read[i] = true;
        }
    }
    let mut saved: Vec<ValueId> = Vec::new();
    for st in &schedule.steps[..forward_steps] {
        for &i in &st.outputs {
            let v = schedule.instances[i].value;
            if read[i] && !is_resident(g, v) {
                saved.push(v);
            }
        }
    }
    let saved_bytes = saved.iter().map(|&v| value_bytes(g, v)).sum();
    let forward_flops = g
        .nodes()
        .take(boundary)
        .map(|(id, _)| node_flops(g, id))
        .sum();
    let backward_flops = g
        .nodes()
        .skip(boundary)
        .map(|(id, _)| node_flops(g, id))
        .sum();
    CheckpointPlan {
        policy,
        saved,
        saved_bytes,
        recompute_flops: schedule.recompute_flops(g),
        recompute_nodes: schedule.recomputed_nodes(),
        schedule,
        memory,
        forward_flops,
        backward_flops,
    }
}

/// A crossing value counts as significant at a cut unless it is this many times smaller
/// than the largest one there (an attention mask beside the residual stream, say).
const SIGNIFICANT: u64 = 16;

/// The forward pass cut into layers at articulation cuts: points of the forward order
/// where one non-resident value defined right before the cut is live across it, beside
/// only small values or values carried past its next reader (side inputs such as an
/// attention mask). A checkpoint at a cut keeps every value live across it.
struct Layers {
    /// For each layer, the values live across the cut that ends it (the significant one
    /// first), in forward order of the layers.
    ends: Vec<Vec<ValueId>>,
    /// For each layer end, the index of the node before the cut.
    end_nodes: Vec<usize>,
}

impl Layers {
    fn new(g: &Graph, boundary: usize) -> Layers {
        let saved: HashSet<ValueId> = super::saved_values(g, boundary).into_iter().collect();
        // Forward readers of every value, in order.
        let mut readers: Vec<Vec<usize>> = vec![Vec::new(); g.num_values()];
        for (k, (_, n)) in g.nodes().take(boundary).enumerate() {
            for v in &n.inputs {
                if readers[v.index()].last() != Some(&k) {
                    readers[v.index()].push(k);
                }
            }
        }
        let last_fwd: Vec<Option<usize>> = readers.iter().map(|r| r.last().copied()).collect();
        let mut ends = Vec::new();
        let mut end_nodes = Vec::new();
        let mut live: std::collections::BTreeSet<ValueId> = std::collections::BTreeSet::new();
        let mut mem_since = 0u64;
        for (k, (_, n)) in g.nodes().take(boundary).enumerate() {
            live.retain(|v| last_fwd[v.index()].is_some_and(|l| l > k));
            for &v in &n.outputs {
                if last_fwd[v.index()].is_some_and(|l| l > k) && !is_resident(g, v) {
                    live.insert(v);
                }
            }
            mem_since += n
                .outputs
                .iter()
                .filter(|v| saved.contains(v))
                .map(|&v| value_bytes(g, v))
                .sum::<u64>();
            let Some(big) = live.iter().map(|&v| value_bytes(g, v)).max() else {
                continue;
            };
            // A candidate main value is defined here; every other live value must be small
            // or carried past the main value's next reader (a side input every layer reads,
            // like an attention mask), so the checkpoint holds one layer's worth of state.
            let main = n.outputs.iter().copied().find(|v| live.contains(v));
            if let Some(main) = main
                && mem_since > 0
            {
                // Live values are read after k, so main has a reader after k.
                let next = readers[main.index()].first().copied().unwrap_or(boundary);
                let side_ok = |v: ValueId| {
                    v == main
                        || value_bytes(g, v) * SIGNIFICANT < big
                        || last_fwd[v.index()].is_some_and(|l| l > next)
                };
                if !live.iter().all(|&v| side_ok(v)) {
                    continue;
                }
                let mut cut = vec![main];
                cut.extend(live.iter().copied().filter(|&v| v != main));
                ends.push(cut);
                end_nodes.push(k);
                mem_since = 0;
            }
        }
        Layers { ends, end_nodes }
    }

    /// Bytes the store-all plan saves per layer (layer `i` = nodes after end `i−1` up to
    /// end `i`); the nodes after the last end belong to the last layer.
    fn layer_bytes(&self, g: &Graph, boundary: usize) -> Vec<u64> {
        let saved: HashSet<ValueId> = super::saved_values(g, boundary).into_iter().collect();
        let mut out = vec![0u64; self.ends.len().max(1)];
        let mut layer = 0;
        for (k, (_, n)) in g.nodes().take(boundary).enumerate() {
            let b: u64 = n
                .outputs
                .iter()
                .filter(|v| saved.contains(v))
                .map(|&v| value_bytes(g, v))
                .sum();
            let last = out.len() - 1;
            out[layer.min(last)] += b;
            if self.end_nodes.get(layer) == Some(&k) {
                layer += 1;
            }
        }
        out
    }

    /// Keep set for checkpoints at the given layer ends: the checkpoint values, plus every
    /// saved value after the last checkpoint (the segment the backward pass starts with).
    fn keep_at(&self, g: &Graph, boundary: usize, checkpoints: &[usize]) -> Vec<ValueId> {
        let mut keep: Vec<ValueId> = checkpoints
            .iter()
            .flat_map(|&j| self.ends[j].iter().copied())
            .collect();
        let tail_from = checkpoints
            .iter()
            .max()
            .map_or(0, |&j| self.end_nodes[j] + 1);
        let saved = super::saved_values(g, boundary);
        for v in saved {
            let p = g
                .producer(v)
                .expect("invariant: saved values are node outputs")
                .index();
            if p >= tail_from {
                keep.push(v);
            }
        }
        keep
    }

    /// Segments of `seg` layers from the loss backwards, the last one `tail` layers.
    fn keep_uniform(&self, g: &Graph, boundary: usize, tail: usize, seg: usize) -> Vec<ValueId> {
        let l = self.ends.len();
        let mut cps = Vec::new();
        // Layer ends are 0-based; a checkpoint at end j closes layers 0..=j.
        let mut next = l as i64 - tail as i64 - 1;
        while next >= 0 {
            cps.push(next as usize);
            next -= seg as i64;
        }
        self.keep_at(g, boundary, &cps)
    }
}

/// Chen's greedy under a budget: for each threshold, segments close (walking from the
/// loss backwards) when their saved bytes exceed it; the plans are simulated and the one
/// with the fewest recomputed FLOPs whose peak fits wins.
fn budget_plan(g: &Graph, boundary: usize, budget: u64) -> Result<CheckpointPlan, PassError> {
    let layers = Layers::new(g, boundary);
    let bytes = layers.layer_bytes(g, boundary);
    let mut thresholds: Vec<u64> = Vec::new();
    // Every distinct suffix sum is a threshold at which the greedy changes its mind.
    let mut acc = 0u64;
    for &b in bytes.iter().rev() {
        acc += b;
        thresholds.push(acc.saturating_sub(1));
    }
    thresholds.sort_unstable();
    thresholds.dedup();
    let mut candidates: Vec<Vec<ValueId>> = vec![super::saved_values(g, boundary)];
    // Segments of equal layer counts (the sqrt plan among them), so that a budget the
    // sqrt plan meets is always met.
    for seg in 1..=layers.ends.len() {
        candidates.push(layers.keep_uniform(g, boundary, seg, seg));
    }
    for &t in &thresholds {
        let mut cps = Vec::new();
        let mut temp = 0u64;
        for j in (1..bytes.len()).rev() {
            temp += bytes[j];
            if temp > t {
                cps.push(j - 1);
                temp = 0;
            }
        }
        candidates.push(layers.keep_at(g, boundary, &cps));
    }
    let policy = Policy::Budget(budget);
    let mut best: Option<CheckpointPlan> = None;
    let mut smallest = u64::MAX;
    for keep in &candidates {
        let p = evaluate(g, boundary, policy, keep);
        smallest = smallest.min(p.memory.peak_bytes);
        if p.memory.peak_bytes <= budget
            && best.as_ref().is_none_or(|b| {
                (p.recompute_flops, p.memory.peak_bytes) < (b.recompute_flops, b.memory.peak_bytes)
            })
        {
            best = Some(p);
        }
    }
    best.ok_or_else(|| PassError::Failed {
        pass: PASS,
        message: format!(
            "no checkpoint plan fits a budget of {budget} bytes; the smallest peak the greedy planner reaches is {smallest} bytes"
        ),
    })
}

/// Ops whose results the min-cut policy never recomputes (compute-bound contractions).
pub fn banned_from_recompute(op: &Op) -> bool {
    matches!(
        op,
        Op::MatMul | Op::Gemm { .. } | Op::Conv(_) | Op::Attention { .. }
    )
}

/// The min-cut keep set. See the module documentation.
fn min_cut_keep(g: &Graph, boundary: usize) -> Result<Vec<ValueId>, PassError> {
    let saved = super::saved_values(g, boundary);
    let fwd: Vec<(NodeId, &tessera_ir::Node)> = g.nodes().take(boundary).collect();
    let values: Vec<ValueId> = fwd
        .iter()
        .filter(|(_, n)| !matches!(n.op, Op::Constant(_)))
        .flat_map(|(_, n)| n.outputs.iter().copied())
        .collect();
    let cut = min_cut(g, &values, &saved, |v| {
        g.producer(v)
            .is_some_and(|n| banned_from_recompute(&g.node(n).op))
    })?;
    Ok(cut)
}

/// Minimum-bytes set of `values` to save so that every value in `needed` is saved or
/// recomputable from saved and resident values without recomputing a `banned` one (among
/// equal-bytes sets, one saving the most `needed` values). Returned in the order of
/// `values`.
pub fn min_cut(
    g: &Graph,
    values: &[ValueId],
    needed: &[ValueId],
    banned: impl Fn(ValueId) -> bool,
) -> Result<Vec<ValueId>, PassError> {
    // Capacity = bytes·(N+1) + tie-break, the tie-break 1 for values the backward pass
    // does not read itself: among cuts of equal bytes, save what is read (recompute less).
    // The tie-breaks of a cut sum to at most N, so bytes always decide first.
    let needed_set: HashSet<ValueId> = needed.iter().copied().collect();
    let weight = values.len() as u64 + 1;
    let cap = |v: ValueId| value_bytes(g, v) * weight + u64::from(!needed_set.contains(&v));
    let finite: u64 = values.iter().map(|&v| cap(v)).sum();
    let inf = finite.saturating_add(1);
    let mut net: DiGraph<(), u64> = DiGraph::new();
    let source = net.add_node(());
    let sink = net.add_node(());
    let mut index: std::collections::HashMap<ValueId, (NodeIndex, NodeIndex)> =
        std::collections::HashMap::new();
    let mut split_edges = Vec::new();
    for &v in values {
        let (i, o) = (net.add_node(()), net.add_node(()));
        split_edges.push((v, net.add_edge(i, o, cap(v))));
        index.insert(v, (i, o));
        if banned(v) {
            net.add_edge(source, i, inf);
        }
    }
    for &v in values {
        let (vi, _) = index[&v];
        let Some(n) = g.producer(v) else { continue };
        for u in &g.node(n).inputs {
            if let Some(&(_, uo)) = index.get(u) {
                net.add_edge(uo, vi, inf);
            } else if !is_resident(g, *u) {
                // A value outside the candidate set is treated as unavailable: it must be
                // recomputed from its own inputs, so tie this value to the source.
                net.add_edge(source, vi, inf);
            }
        }
    }
    for v in needed {
        if let Some(&(_, o)) = index.get(v) {
            net.add_edge(o, sink, inf);
        }
    }
    let (flow, flows) = dinics(&net, source, sink);
    if flow >= inf {
        return Err(PassError::Failed {
            pass: PASS,
            message: "min-cut found no finite cut (a needed value cannot be saved)".into(),
        });
    }
    // Source side of the minimum cut: reachable in the residual network.
    let mut seen = vec![false; net.node_count()];
    let mut stack = vec![source];
    seen[source.index()] = true;
    while let Some(x) = stack.pop() {
        for e in net.edges_directed(x, petgraph::Direction::Outgoing) {
            use petgraph::visit::EdgeRef;
            let t = e.target();
            if !seen[t.index()] && flows[e.id().index()] < *e.weight() {
                seen[t.index()] = true;
                stack.push(t);
            }
        }
        for e in net.edges_directed(x, petgraph::Direction::Incoming) {
            use petgraph::visit::EdgeRef;
            let s = e.source();
            if !seen[s.index()] && flows[e.id().index()] > 0 {
                seen[s.index()] = true;
                stack.push(s);
            }
        }
    }
    Ok(split_edges
        .into_iter()
        .filter(|(v, _)| {
            let (i, o) = index[v];
            seen[i.index()] && !seen[o.index()]
        })
        .map(|(v, _)| v)
        .collect())
}
