//! Execution schedules and the exact simulator of their memory and FLOPs.
//!
//! A [`Schedule`] lists the node executions of a graph in order. A node may run more
//! than once (recomputation); each run defines fresh *instances* of the node's output
//! values. [`profile`] counts, step by step, the bytes of every instance that is live:
//! defined at or before the step and read at or after it (an instance nobody reads lives
//! for its defining step only). The count is exact from static shapes (`numel × dtype
//! size`, bool = 1 byte). Graph inputs and constants are resident (parameters, data),
//! and graph outputs (the loss and gradients, whose size no schedule changes) are
//! reported apart: `peak_bytes` is the transient working set a schedule decides, which is
//! what checkpointing and the two-stage split trade against recomputation.
//!
//! One function is both the search objective of the checkpoint policies and the oracle of
//! their tests; [`Schedule::to_graph`] turns a schedule into the IR graph that runs it, so
//! the reference interpreter executes exactly what was measured. [`arena`] hands the same
//! live ranges to the static memory planner ([`tessera_lower::memory::plan_buffers`]) for the size
//! of an actual arena (offsets, alignment and fragmentation included).

use tessera_ir::{Graph, NodeId, Op, ValueId};

use crate::cost::node_flops;
use tessera_lower::memory::{ArenaPlan, Buffer, plan_buffers};

/// One computation of a value: the value and which run of its producer made it (0 = the
/// first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instance {
    pub value: ValueId,
    pub copy: u32,
}

/// One node execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub node: NodeId,
    /// True for a recomputation of a forward node in the backward region.
    pub recompute: bool,
    /// Instances read and defined (indices into [`Schedule::instances`]).
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
}

/// An execution order of a graph's nodes, with recomputation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    pub steps: Vec<Step>,
    pub instances: Vec<Instance>,
    /// The instance of each graph output, in output order.
    pub outputs: Vec<usize>,
}

impl Schedule {
    /// The graph's own program order: each node once.
    pub fn program_order(g: &Graph) -> Schedule {
        let order: Vec<NodeId> = g.nodes().map(|(id, _)| id).collect();
        Schedule::in_order(g, &order)
    }

    /// Each node once, in `order` (which must be a topological order of `g`'s nodes).
    pub fn in_order(g: &Graph, order: &[NodeId]) -> Schedule {
        let (mut s, current) = Schedule::prefix(g, order);
        s.outputs = g
            .outputs()
            .iter()
            .map(|p| current[p.value.index()].expect("invariant: outputs are defined"))
            .collect();
        s
    }

    /// Steps for `order` (a topological prefix of `g`), without outputs, and the instance
    /// that defines each value so far.
    pub(crate) fn prefix(g: &Graph, order: &[NodeId]) -> (Schedule, Vec<Option<usize>>) {
        let mut s = Schedule::default();
        let mut current: Vec<Option<usize>> = vec![None; g.num_values()];
        for p in g.inputs() {
            current[p.value.index()] = Some(s.new_instance(p.value, 0));
        }
        for &id in order {
            let n = g.node(id);
            let inputs = n
                .inputs
                .iter()
                .map(|v| current[v.index()].expect("invariant: order is topological"))
                .collect();
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
        (s, current)
    }

    pub(crate) fn new_instance(&mut self, value: ValueId, copy: u32) -> usize {
        self.instances.push(Instance { value, copy });
        self.instances.len() - 1
    }

    /// Number of recomputation steps.
    pub fn recomputed_nodes(&self) -> usize {
        self.steps.iter().filter(|s| s.recompute).count()
    }

    /// FLOPs of the recomputation steps.
    pub fn recompute_flops(&self, g: &Graph) -> u64 {
        self.steps
            .iter()
            .filter(|s| s.recompute)
            .map(|s| node_flops(g, s.node))
            .sum()
    }

    /// The graph that executes this schedule: one node per step in step order;
    /// recomputations are named `remat:<name>`.
    pub fn to_graph(&self, g: &Graph) -> Graph {
        let mut out = Graph::new(g.name.clone());
        let mut map: Vec<Option<ValueId>> = vec![None; self.instances.len()];
        // Graph inputs are the instances with copy 0 that no step defines.
        let mut defined = vec![false; self.instances.len()];
        for s in &self.steps {
            for &i in &s.outputs {
                defined[i] = true;
            }
        }
        for p in g.inputs() {
            let v = out.add_input(p.name.clone(), g.ty(p.value).clone());
            if let Some(i) = self
                .instances
                .iter()
                .enumerate()
                .position(|(i, inst)| !defined[i] && inst.value == p.value)
            {
                map[i] = Some(v);
            }
        }
        for s in &self.steps {
            let n = g.node(s.node);
            let inputs = s
                .inputs
                .iter()
                .map(|&i| map[i].expect("invariant: steps read defined instances"))
                .collect();
            let types = n.outputs.iter().map(|&v| g.ty(v).clone()).collect();
            let name = if s.recompute && !n.name.starts_with("remat:") {
                format!("remat:{}", super::autodiff::node_label(&g.node_ref(s.node)))
            } else {
                n.name.clone()
            };
            let outs = out.push_node_unchecked(n.op.clone(), inputs, types, name);
            for (&i, v) in s.outputs.iter().zip(outs) {
                map[i] = Some(v);
            }
        }
        for (p, &i) in g.outputs().iter().zip(&self.outputs) {
            out.add_output(
                p.name.clone(),
                map[i].expect("invariant: outputs are defined"),
            );
        }
        out
    }
}

/// What [`profile`] measures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryProfile {
    /// Peak bytes of live transient instances (not inputs, constants or outputs).
    pub peak_bytes: u64,
    /// The step at which the peak is first reached.
    pub peak_step: usize,
    /// The instances live at the peak.
    pub live_at_peak: Vec<usize>,
    /// Graph inputs plus constants.
    pub resident_bytes: u64,
    /// Graph outputs.
    pub output_bytes: u64,
}

/// Bytes of a value.
pub fn value_bytes(g: &Graph, v: ValueId) -> u64 {
    g.ty(v).size_bytes() as u64
}

/// True for graph inputs and constants.
pub fn is_resident(g: &Graph, v: ValueId) -> bool {
    match g.producer(v) {
        None => true,
        Some(n) => matches!(g.node(n).op, Op::Constant(_)),
    }
}

/// For every instance, `(defining step, last step reading it)`; `None` for instances no
/// step defines (graph inputs).
fn intervals(s: &Schedule) -> Vec<Option<(usize, usize)>> {
    let mut iv: Vec<Option<(usize, usize)>> = vec![None; s.instances.len()];
    for (k, st) in s.steps.iter().enumerate() {
        for &i in &st.outputs {
            iv[i] = Some((k, k));
        }
        for &i in &st.inputs {
            if let Some((_, last)) = &mut iv[i] {
                *last = (*last).max(k);
            }
        }
    }
    iv
}

/// Which instances count as transient: defined by a step, not resident, not an output.
fn transient(g: &Graph, s: &Schedule) -> Vec<bool> {
    let mut t: Vec<bool> = s
        .instances
        .iter()
        .map(|inst| !is_resident(g, inst.value))
        .collect();
    for &i in &s.outputs {
        t[i] = false;
    }
    t
}

/// The live-bytes curve: one entry per step.
pub fn live_curve(g: &Graph, s: &Schedule) -> Vec<u64> {
    let iv = intervals(s);
    let tr = transient(g, s);
    let mut delta = vec![0i64; s.steps.len() + 1];
    for (i, inst) in s.instances.iter().enumerate() {
        if let (true, Some((d, u))) = (tr[i], iv[i]) {
            let b = value_bytes(g, inst.value) as i64;
            delta[d] += b;
            delta[u + 1] -= b;
        }
    }
    let mut acc = 0i64;
    delta[..s.steps.len()]
        .iter()
        .map(|d| {
            acc += d;
            acc as u64
        })
        .collect()
}

/// Peak memory of running `g` by schedule `s`. See the module documentation.
pub fn profile(g: &Graph, s: &Schedule) -> MemoryProfile {
    let curve = live_curve(g, s);
    let (peak_step, peak_bytes) =
        curve.iter().enumerate().fold(
            (0, 0),
            |(bk, bb), (k, &b)| if b > bb { (k, b) } else { (bk, bb) },
        );
    let iv = intervals(s);
    let tr = transient(g, s);
    let live_at_peak = (0..s.instances.len())
        .filter(|&i| tr[i] && iv[i].is_some_and(|(d, u)| d <= peak_step && peak_step <= u))
        .collect();
    let mut resident_bytes = 0;
    for p in g.inputs() {
        resident_bytes += value_bytes(g, p.value);
    }
    for (_, n) in g.nodes() {
        if matches!(n.op, Op::Constant(_)) {
            resident_bytes += value_bytes(g, n.outputs[0]);
        }
    }
    let mut outs: Vec<usize> = s.outputs.clone();
    outs.sort_unstable();
    outs.dedup();
    let output_bytes = outs
        .iter()
        .map(|&i| value_bytes(g, s.instances[i].value))
        .sum();
    MemoryProfile {
        peak_bytes,
        peak_step,
        live_at_peak,
        resident_bytes,
        output_bytes,
    }
}

/// The most instances satisfying `pred` (by value) that are live at once, counting
/// transient instances only: e.g. how many layer activations a chain schedule holds.
pub fn peak_count(g: &Graph, s: &Schedule, pred: impl Fn(ValueId) -> bool) -> usize {
    let iv = intervals(s);
    let tr = transient(g, s);
    let mut delta = vec![0i64; s.steps.len() + 1];
    for (i, inst) in s.instances.iter().enumerate() {
        if let (true, Some((d, u))) = (tr[i], iv[i])
            && pred(inst.value)
        {
            delta[d] += 1;
            delta[u + 1] -= 1;
        }
    }
    let mut acc = 0i64;
    let mut best = 0i64;
    for d in &delta[..s.steps.len()] {
        acc += d;
        best = best.max(acc);
    }
    best as usize
}

/// The arena the static memory planner lays out for the transient instances of `s`: one
/// buffer per instance, live from its defining step to its last reader. Its
/// `lower_bound_bytes` equals [`profile`]'s `peak_bytes`.
pub fn arena(g: &Graph, s: &Schedule) -> ArenaPlan {
    let iv = intervals(s);
    let tr = transient(g, s);
    let bufs: Vec<Buffer> = s
        .instances
        .iter()
        .enumerate()
        .filter_map(|(i, inst)| match (tr[i], iv[i]) {
            (true, Some((first, last))) => Some(Buffer {
                bytes: value_bytes(g, inst.value) as usize,
                first,
                last,
                reuse: None,
            }),
            _ => None,
        })
        .collect();
    plan_buffers(&bufs)
}
