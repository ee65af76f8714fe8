//! The fusion planner: partitions a verified graph into kernels.
//!
//! Every node that computes something belongs to exactly one group (a future kernel);
//! constants are kernel parameters; views (reshape, transpose, slice, expand, split) are
//! read through by their consumers and belong to no group unless they must be stored —
//! a graph output, or an operand a GEMM cannot read through strides. See
//! [`analyze`](mod@analyze) for which groups the backend can generate and [`classify`](mod@classify) for each op's
//! role.
//!
//! Nodes no graph output depends on are left out. [`plan`] starts from one group per
//! node and greedily merges a producer group into a
//! consumer group, always taking the merge that saves the most bytes of memory traffic
//! ([`metric`]), as long as the merged group is legal, the group graph stays acyclic and
//! the plan's liveness peak ([`FusionPlan::liveness_peak`]) does not grow (a fusion that
//! raises peak memory is rejected). The loop is incremental (`greedy`): candidate gains in
//! a heap, recomputed only for groups a merge changed. [`Mode::Eager`] keeps one kernel per node and stores
//! every view except aliases: GraphNet's "eager" baseline on the same runtime.

pub mod analyze;
mod check;
pub mod classify;
mod greedy;
pub mod metric;
pub mod report;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};

use tessera_ir::{Graph, NodeId, ValueId};

use crate::LowerError;
use crate::memory::{self, StepUse, Write};
use analyze::{Context, GroupKind, GroupShape, Illegal, analyze};
use classify::{OpClass, classify};
use view::{ViewStep, chain_view, is_alias};

pub use check::check_plan;

/// How much to fuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// One kernel per node, no fusion; views other than aliases are copied.
    Eager,
    /// Greedy fusion by bytes saved.
    Fused,
}

/// One kernel-to-be.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// Member nodes in program order.
    pub nodes: Vec<NodeId>,
    pub shape: GroupShape,
    /// Values read from memory (after reading through views): graph inputs, constants and
    /// values stored by earlier groups. Sorted.
    pub inputs: Vec<ValueId>,
    /// Values this group stores: those read by other groups, and graph outputs. Sorted.
    pub outputs: Vec<ValueId>,
}

impl Group {
    pub fn kind(&self) -> GroupKind {
        self.shape.kind
    }
}

/// A partition of a graph into kernels, in execution order.
#[derive(Clone, Debug, PartialEq)]
pub struct FusionPlan {
    pub mode: Mode,
    pub groups: Vec<Group>,
    /// The group of every node (`None` for constants and views read through).
    pub group_of: Vec<Option<usize>>,
    /// The class of every node.
    pub class: Vec<OpClass>,
    /// Merges refused because they would have raised the liveness peak.
    pub rejected_for_memory: usize,
}

impl FusionPlan {
    /// True for a view node that consumers read through.
    pub fn is_virtual(&self, n: NodeId) -> bool {
        self.class[n.index()] == OpClass::View && self.group_of[n.index()].is_none()
    }

    /// The analysis context of this plan.
    pub fn context<'a>(
        &'a self,
        g: &'a Graph,
        virtual_view: &'a dyn Fn(NodeId) -> bool,
    ) -> Context<'a> {
        Context {
            g,
            class: &self.class,
            virtual_view,
        }
    }

    /// The value that reading `v` actually reads from memory, and the views crossed.
    pub fn source(&self, g: &Graph, v: ValueId) -> (ValueId, Vec<ViewStep>) {
        view::view_chain(g, v, &|n| self.is_virtual(n))
    }

    /// What each group reads and stores, as steps for [`memory::lifetimes`]: inputs
    /// read, outputs written, no in-place sharing and no scratch.
    pub fn steps(&self, g: &Graph) -> Vec<StepUse> {
        self.groups
            .iter()
            .map(|grp| StepUse {
                reads: grp.inputs.clone(),
                writes: grp
                    .outputs
                    .iter()
                    .map(|&value| Write {
                        value,
                        bytes: g.ty(value).size_bytes(),
                        in_place_of: None,
                    })
                    .collect(),
                scratch: Vec::new(),
            })
            .collect()
    }

    /// The largest total size of stored values live at one step: what the planner keeps
    /// from growing when it fuses.
    pub fn liveness_peak(&self, g: &Graph) -> usize {
        let outputs: Vec<ValueId> = g.outputs().iter().map(|p| p.value).collect();
        memory::liveness_lower_bound(&memory::lifetimes(&self.steps(g), &outputs).buffers)
    }

    /// Inputs of group `step` that its stored value `o` may overwrite in place: stored by
    /// an earlier group, read by this group only directly (or through aliases) by pointwise
    /// nodes at `o`'s shape, or as a reduction's main input. Only for single-shape
    /// pointwise groups and reduction groups.
    pub fn in_place_candidates(&self, g: &Graph, step: usize, o: ValueId) -> Vec<ValueId> {
        let grp = &self.groups[step];
        let kind = grp.kind();
        let o_shape = &g.ty(o).shape;
        let single_shape = grp.outputs.iter().all(|&v| g.ty(v).shape == *o_shape);
        if !(kind == GroupKind::Reduction || kind == GroupKind::Pointwise && single_shape) {
            return Vec::new();
        }
        let mut out = Vec::new();
        'inputs: for &i in &grp.inputs {
            if g.producer(i)
                .is_none_or(|p| self.group_of[p.index()].is_none())
                || g.ty(i).shape != *o_shape
                || g.ty(i).dtype.size_bytes() != g.ty(o).dtype.size_bytes()
            {
                continue;
            }
            for &n in &grp.nodes {
                let node = g.node(n);
                for (slot, &v) in node.inputs.iter().enumerate() {
                    let (src, chain) = self.source(g, v);
                    if src != i {
                        continue;
                    }
                    let aliases = chain.iter().all(|&(c, _)| is_alias(&g.node(c).op));
                    let direct = match self.class[n.index()] {
                        OpClass::Pointwise => {
                            node.outputs.iter().all(|&w| g.ty(w).shape == *o_shape)
                                && g.ty(v).shape.numel() == o_shape.numel()
                        }
                        OpClass::Reduction => slot == 0 && g.ty(v).shape == *o_shape,
                        _ => false,
                    };
                    if !(aliases && direct) {
                        continue 'inputs;
                    }
                }
            }
            out.push(i);
        }
        out
    }
}

struct Planner<'g> {
    g: &'g Graph,
    class: Vec<OpClass>,
    group_of: Vec<Option<usize>>,
    members: Vec<Vec<NodeId>>,
    /// Per value: the non-virtual nodes that read it (directly or through virtual views).
    readers: Vec<Vec<NodeId>>,
    graph_out: Vec<bool>,
}

impl<'g> Planner<'g> {
    fn is_virtual(&self, n: NodeId) -> bool {
        self.class[n.index()] == OpClass::View && self.group_of[n.index()].is_none()
    }

    fn source(&self, v: ValueId) -> (ValueId, Vec<ViewStep>) {
        view::view_chain(self.g, v, &|n| self.is_virtual(n))
    }

    fn compute_readers(&mut self) {
        let g = self.g;
        let users = g.users();
        let mut readers = vec![Vec::new(); g.num_values()];
        for (v, r) in readers.iter_mut().enumerate() {
            let mut stack = vec![ValueId::new(v)];
            while let Some(x) = stack.pop() {
                for &(u, _) in &users[x.index()] {
                    if self.is_virtual(u) {
                        stack.extend(g.node(u).outputs.iter().copied());
                    } else if !r.contains(&u) {
                        r.push(u);
                    }
                }
            }
            r.sort();
        }
        self.readers = readers;
    }

    /// External sources and stored values of a node set.
    fn io(&self, nodes: &BTreeSet<NodeId>) -> (Vec<ValueId>, Vec<ValueId>) {
        let g = self.g;
        let mut inputs = BTreeSet::new();
        let mut outputs = BTreeSet::new();
        for &n in nodes {
            let node = g.node(n);
            for &v in &node.inputs {
                let (src, _) = self.source(v);
                if g.producer(src).is_none_or(|p| !nodes.contains(&p)) {
                    inputs.insert(src);
                }
            }
            for &o in &node.outputs {
                if self.graph_out[o.index()]
                    || self.readers[o.index()].iter().any(|r| !nodes.contains(r))
                {
                    outputs.insert(o);
                }
            }
        }
        (inputs.into_iter().collect(), outputs.into_iter().collect())
    }

    fn shape(&self, nodes: &[NodeId], stored: &[ValueId]) -> Result<GroupShape, Illegal> {
        let vv = |n: NodeId| self.is_virtual(n);
        let cx = Context {
            g: self.g,
            class: &self.class,
            virtual_view: &vv,
        };
        analyze(&cx, nodes, stored)
    }

    fn bytes(&self, nodes: &BTreeSet<NodeId>) -> u64 {
        let (i, o) = self.io(nodes);
        metric::kernel_bytes(self.g, &i, &o)
    }

    /// Group ids that read values stored by group `a`.
    fn successors(&self, a: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        for &n in &self.members[a] {
            for &o in &self.g.node(n).outputs {
                for r in &self.readers[o.index()] {
                    if let Some(b) = self.group_of[r.index()]
                        && b != a
                    {
                        out.insert(b);
                    }
                }
            }
        }
        out
    }

    /// Groups in a topological order, ties broken by the earliest member node.
    fn topo_order(&self) -> Vec<usize> {
        let live: Vec<usize> = (0..self.members.len())
            .filter(|&i| !self.members[i].is_empty())
            .collect();
        let mut indeg: BTreeMap<usize, usize> = live.iter().map(|&i| (i, 0)).collect();
        let succ: BTreeMap<usize, BTreeSet<usize>> =
            live.iter().map(|&i| (i, self.successors(i))).collect();
        for s in succ.values() {
            for b in s {
                *indeg
                    .get_mut(b)
                    .expect("invariant: successors are live groups") += 1;
            }
        }
        let key = |i: usize| (self.members[i][0], i);
        let mut ready: BTreeSet<(NodeId, usize)> = live
            .iter()
            .filter(|i| indeg[i] == 0)
            .map(|&i| key(i))
            .collect();
        let mut order = Vec::new();
        while let Some(k) = ready.pop_first() {
            let i = k.1;
            order.push(i);
            for &b in &succ[&i] {
                let d = indeg
                    .get_mut(&b)
                    .expect("invariant: successors are live groups");
                *d -= 1;
                if *d == 0 {
                    ready.insert(key(b));
                }
            }
        }
        order
    }

    fn build(&self, mode: Mode, rejected_for_memory: usize) -> Result<FusionPlan, LowerError> {
        let order = self.topo_order();
        let mut group_of = vec![None; self.g.num_nodes()];
        let mut groups = Vec::new();
        for (pos, &gid) in order.iter().enumerate() {
            let nodes = self.members[gid].clone();
            let set: BTreeSet<NodeId> = nodes.iter().copied().collect();
            let (inputs, outputs) = self.io(&set);
            let shape = self
                .shape(&nodes, &outputs)
                .map_err(|reason| LowerError::Plan {
                    node: self.g.node_ref(nodes[0]),
                    reason: Box::new(reason),
                })?;
            for &n in &nodes {
                group_of[n.index()] = Some(pos);
            }
            groups.push(Group {
                nodes,
                shape,
                inputs,
                outputs,
            });
        }
        Ok(FusionPlan {
            mode,
            groups,
            group_of,
            class: self.class.clone(),
            rejected_for_memory,
        })
    }
}

/// Partitions `g` (verified) into kernels.
pub fn plan(g: &Graph, mode: Mode) -> Result<FusionPlan, LowerError> {
    let class: Vec<OpClass> = g.nodes().map(|(n, _)| classify(g, n)).collect();
    let mut graph_out = vec![false; g.num_values()];
    for p in g.outputs() {
        graph_out[p.value.index()] = true;
    }
    let mut p = Planner {
        g,
        class,
        group_of: vec![None; g.num_nodes()],
        members: Vec::new(),
        readers: Vec::new(),
        graph_out,
    };
    // One group per computing node; views only where they must be stored.
    let mut materialize = vec![false; g.num_nodes()];
    for (n, node) in g.nodes() {
        if p.class[n.index()] != OpClass::View {
            continue;
        }
        let out = node.outputs.iter().any(|&o| p.graph_out[o.index()]);
        materialize[n.index()] = out || (mode == Mode::Eager && !is_alias(&node.op));
    }
    // Nodes no graph output depends on are not computed at all.
    let mut live = vec![false; g.num_nodes()];
    let mut stack: Vec<ValueId> = g.outputs().iter().map(|o| o.value).collect();
    while let Some(v) = stack.pop() {
        if let Some(n) = g.producer(v)
            && !std::mem::replace(&mut live[n.index()], true)
        {
            stack.extend(g.node(n).inputs.iter().copied());
        }
    }
    for (n, _) in g.nodes() {
        let c = p.class[n.index()];
        if live[n.index()]
            && c != OpClass::Constant
            && (c != OpClass::View || materialize[n.index()])
        {
            p.group_of[n.index()] = Some(p.members.len());
            p.members.push(vec![n]);
        }
    }
    // Library operands that are not strided views of stored values get stored.
    loop {
        let mut changed = false;
        for (n, node) in g.nodes() {
            let c = p.class[n.index()];
            if !matches!(c, OpClass::Contraction | OpClass::Attention) {
                continue;
            }
            for (slot, &v) in node.inputs.iter().enumerate() {
                let (src, chain) = p.source(v);
                let Some(&(last, _)) = chain.last() else {
                    continue;
                };
                let sv = chain_view(g, g.ty(src).shape.dims(), &chain);
                let conv_needs_contiguous = matches!(node.op, tessera_ir::Op::Conv(_)) && slot < 2;
                let ok = match sv {
                    Some(v) => !conv_needs_contiguous || v.is_contiguous(),
                    None => false,
                };
                if !ok {
                    p.group_of[last.index()] = Some(p.members.len());
                    p.members.push(vec![last]);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    p.compute_readers();
    if mode == Mode::Eager {
        return p.build(mode, 0);
    }

    let rejected_for_memory = greedy::merge_greedily(&mut p);
    p.build(mode, rejected_for_memory)
}
