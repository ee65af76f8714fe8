//! The greedy merge loop of [`super::plan`], incremental.
//!
//! Each step takes the producer→consumer merge that saves the most bytes (ties: the
//! smallest group ids), if it is legal ([`super::analyze`]), keeps the group graph acyclic
//! (no other path from producer to consumer) and does not raise the liveness peak. The
//! choice is the same as recomputing every candidate every step, but bookkept: candidate
//! gains sit in a max-heap and are recomputed only for the groups a merge changed (a gain
//! depends on its two groups alone), group adjacency and stored values are updated in
//! place, and the peak of a tentative merge is one topological pass over cached values on
//! flat arrays reused from call to call (no sets, maps or per-step lists). That pass is
//! linear in the plan, so the loop is still quadratic in principle, with a small
//! constant: about 50 ms of a 64-layer Llama's compile (BENCHMARKS.md, "Compile time").

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use tessera_ir::{NodeId, ValueId};

use super::classify::OpClass;
use super::{Planner, metric};

/// A candidate merge of producer group `a` into consumer group `b`, as of the groups'
/// versions when its gain was computed.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Candidate {
    gain: u64,
    a: usize,
    b: usize,
    va: u32,
    vb: u32,
}

impl Ord for Candidate {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Largest gain first, then the smallest (a, b).
        self.gain
            .cmp(&o.gain)
            .then(o.a.cmp(&self.a))
            .then(o.b.cmp(&self.b))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// A group's read and stored values.
type Io = (Vec<ValueId>, Vec<ValueId>);

/// The planner's groups with their cached stored values, bytes and adjacency.
struct State<'p, 'g> {
    p: &'p mut Planner<'g>,
    io: Vec<Io>,
    bytes: Vec<u64>,
    succ: Vec<BTreeSet<usize>>,
    pred: Vec<BTreeSet<usize>>,
    version: Vec<u32>,
    /// The last member node of each group (members are sorted).
    last: Vec<NodeId>,
    /// Bytes of every value, by value id.
    value_bytes: Vec<usize>,
    graph_outputs: Vec<ValueId>,
}

/// Buffers [`State::peak`] reuses from call to call.
#[derive(Default)]
struct Scratch {
    indeg: Vec<usize>,
    ready: BinaryHeap<Reverse<(NodeId, usize)>>,
    /// Per value: `first`/`last` hold for this call when `stamp` is `generation`.
    stamp: Vec<u32>,
    generation: u32,
    /// The step that first writes the value (`usize::MAX`: not written yet).
    first: Vec<usize>,
    /// The last step that reads or writes it.
    last: Vec<usize>,
    /// Values written, in first-write order.
    written: Vec<ValueId>,
    delta: Vec<i64>,
}

impl State<'_, '_> {
    fn set_of(&self, gs: &[usize]) -> BTreeSet<NodeId> {
        gs.iter()
            .flat_map(|&x| self.p.members[x].iter().copied())
            .collect()
    }

    /// The candidate `a → b`, if merging saves bytes without recomputing `a`
    /// ([`State::recomputes`]).
    fn candidate(&self, a: usize, b: usize) -> Option<Candidate> {
        if self.recomputes(a, b) {
            return None;
        }
        let merged = self.p.bytes(&self.set_of(&[a, b]));
        let before = self.bytes[a] + self.bytes[b];
        (merged < before).then(|| Candidate {
            gain: before - merged,
            a,
            b,
            va: self.version[a],
            vb: self.version[b],
        })
    }

    /// True if `b` reads a value of `a` through a gather with at least twice the value's
    /// elements (an upsampling, say): merged, every gathered element would evaluate `a`'s
    /// nodes again, several times per element of the value, to save one store and load of
    /// it. (Edge and reflect padding gather a little more than they read; that stays fused.)
    fn recomputes(&self, a: usize, b: usize) -> bool {
        let g = self.p.g;
        self.p.members[b].iter().any(|&n| {
            let node = g.node(n);
            self.p.class[n.index()] == OpClass::Gather
                && node.inputs.first().is_some_and(|&data| {
                    let (src, _) = self.p.source(data);
                    g.producer(src)
                        .is_some_and(|p| self.p.group_of[p.index()] == Some(a))
                        && node
                            .outputs
                            .iter()
                            .any(|&o| g.ty(o).shape.numel() >= 2 * g.ty(src).shape.numel())
                })
        })
    }

    /// True if `to` is reachable from `from` other than by the direct edge. A group on a
    /// path to `to` has a member before `to`'s last member, which bounds the search.
    fn indirect_path(&self, from: usize, to: usize) -> bool {
        let bound = self.last[to];
        let mut stack: Vec<usize> = self.succ[from]
            .iter()
            .copied()
            .filter(|&s| s != to)
            .collect();
        let mut seen = BTreeSet::new();
        while let Some(x) = stack.pop() {
            if x == to {
                return true;
            }
            if self.p.members[x][0] >= bound || !seen.insert(x) {
                continue;
            }
            stack.extend(self.succ[x].iter().copied());
        }
        false
    }

    /// The liveness peak of the plan, or of the plan with `b` merged into `a` (stored and
    /// read values `merged_io`), in the planner's group order: Kahn's algorithm, ties
    /// broken by the earliest member node, then the group id. The same figure as
    /// [`FusionPlan::liveness_peak`](super::FusionPlan::liveness_peak) of that plan
    /// ([`crate::memory::lifetimes`], then [`crate::memory::liveness_lower_bound`]), on flat
    /// arrays reused from call to call: the loop calls this once per candidate it tries.
    fn peak(&self, merge: Option<(usize, usize, &Io)>, sc: &mut Scratch) -> usize {
        let n = self.p.members.len();
        let (ma, mb) = match merge {
            Some((a, b, _)) => (a, b),
            None => (usize::MAX, usize::MAX),
        };
        let live = |x: usize| !self.p.members[x].is_empty() && x != mb;
        let first = |x: usize| {
            if x == ma {
                self.p.members[ma][0].min(self.p.members[mb][0])
            } else {
                self.p.members[x][0]
            }
        };
        // In-degrees count edges with multiplicity (an edge into `b` counts for `a`), and
        // outputs below decrement the same way, so a group becomes ready exactly when all
        // its predecessor groups have run.
        sc.indeg.clear();
        sc.indeg.resize(n, 0);
        for (x, d) in sc.indeg.iter_mut().enumerate() {
            if live(x) {
                *d = self.pred[x].len();
            }
        }
        if merge.is_some() {
            // `a → b` disappears; `b`'s other predecessors become `a`'s.
            sc.indeg[ma] += self.pred[mb].len() - 1;
        }
        sc.ready.clear();
        for x in 0..n {
            if live(x) && sc.indeg[x] == 0 {
                sc.ready.push(Reverse((first(x), x)));
            }
        }
        sc.generation = sc.generation.wrapping_add(1);
        if sc.generation == 0 {
            sc.stamp.fill(0);
            sc.generation = 1;
        }
        let generation = sc.generation;
        sc.written.clear();
        let mut step = 0usize;
        while let Some(Reverse((_, x))) = sc.ready.pop() {
            let (inputs, outputs) = match merge {
                Some((a, _, io)) if x == a => io,
                _ => &self.io[x],
            };
            for &v in inputs.iter().chain(outputs) {
                let i = v.index();
                if sc.stamp[i] != generation {
                    sc.stamp[i] = generation;
                    sc.first[i] = usize::MAX;
                }
                sc.last[i] = step;
            }
            for &v in outputs {
                let i = v.index();
                if sc.first[i] == usize::MAX {
                    sc.first[i] = step;
                    sc.written.push(v);
                }
            }
            let release = |y: usize, sc: &mut Scratch| {
                let y = if y == mb { ma } else { y };
                sc.indeg[y] -= 1;
                if sc.indeg[y] == 0 {
                    sc.ready.push(Reverse((first(y), y)));
                }
            };
            for &y in &self.succ[x] {
                if x != ma || y != mb {
                    release(y, sc);
                }
            }
            if x == ma {
                for &y in &self.succ[mb] {
                    release(y, sc);
                }
            }
            step += 1;
        }
        for &v in &self.graph_outputs {
            if sc.stamp[v.index()] == generation {
                sc.last[v.index()] = step;
            }
        }
        sc.delta.clear();
        sc.delta.resize(step + 2, 0);
        for &v in &sc.written {
            let i = v.index();
            let bytes = self.value_bytes[i] as i64;
            sc.delta[sc.first[i]] += bytes;
            sc.delta[sc.last[i] + 1] -= bytes;
        }
        let (mut cur, mut best) = (0i64, 0i64);
        for &d in &sc.delta {
            cur += d;
            best = best.max(cur);
        }
        best as usize
    }

    /// Merges `b` into `a` for good.
    fn commit(&mut self, a: usize, b: usize, nodes: Vec<NodeId>, io: Io) {
        let moved = std::mem::take(&mut self.p.members[b]);
        for &n in &moved {
            self.p.group_of[n.index()] = Some(a);
        }
        self.last[a] = *nodes.last().expect("invariant: groups are not empty");
        self.p.members[a] = nodes;
        self.bytes[a] = metric::kernel_bytes(self.p.g, &io.0, &io.1);
        self.io[a] = io;
        let (sb, pb) = (
            std::mem::take(&mut self.succ[b]),
            std::mem::take(&mut self.pred[b]),
        );
        for &y in &sb {
            self.pred[y].remove(&b);
            if y != a {
                self.pred[y].insert(a);
                self.succ[a].insert(y);
            }
        }
        for &x in &pb {
            self.succ[x].remove(&b);
            if x != a {
                self.succ[x].insert(a);
                self.pred[a].insert(x);
            }
        }
        self.succ[a].remove(&b);
        self.succ[a].remove(&a);
        self.pred[a].remove(&a);
        self.version[a] += 1;
        self.version[b] += 1;
    }
}

#[cfg(test)]
impl State<'_, '_> {
    /// [`State::peak`] the plain way: the merged group graph, its Kahn order, the steps,
    /// [`crate::memory::lifetimes`] and [`crate::memory::liveness_lower_bound`].
    fn reference_peak(&self, merge: Option<(usize, usize, &Io)>) -> usize {
        use crate::memory::{self, StepUse, Write};
        let n = self.p.members.len();
        let alias = |x: usize| match merge {
            Some((a, b, _)) if x == b => a,
            _ => x,
        };
        let live = |x: usize| !self.p.members[x].is_empty() && merge.is_none_or(|(_, b, _)| x != b);
        let succs: Vec<BTreeSet<usize>> = (0..n)
            .map(|x| {
                if !live(x) {
                    return BTreeSet::new();
                }
                let mut s: BTreeSet<usize> = self.succ[x].iter().map(|&y| alias(y)).collect();
                if let Some((a, b, _)) = merge
                    && x == a
                {
                    s.extend(self.succ[b].iter().map(|&y| alias(y)));
                }
                s.remove(&x);
                s
            })
            .collect();
        let first = |x: usize| match merge {
            Some((a, b, _)) if x == a => self.p.members[a][0].min(self.p.members[b][0]),
            _ => self.p.members[x][0],
        };
        let mut indeg = vec![0usize; n];
        for s in &succs {
            for &y in s {
                indeg[y] += 1;
            }
        }
        let mut ready: BTreeSet<(NodeId, usize)> = (0..n)
            .filter(|&x| live(x) && indeg[x] == 0)
            .map(|x| (first(x), x))
            .collect();
        let g = self.p.g;
        let mut steps = Vec::new();
        while let Some((_, x)) = ready.pop_first() {
            let (inputs, outputs) = match merge {
                Some((a, _, io)) if x == a => io,
                _ => &self.io[x],
            };
            steps.push(StepUse {
                reads: inputs.clone(),
                writes: outputs
                    .iter()
                    .map(|&value| Write {
                        value,
                        bytes: g.ty(value).size_bytes(),
                        in_place_of: None,
                    })
                    .collect(),
                scratch: Vec::new(),
            });
            for &y in &succs[x] {
                indeg[y] -= 1;
                if indeg[y] == 0 {
                    ready.insert((first(y), y));
                }
            }
        }
        memory::liveness_lower_bound(&memory::lifetimes(&steps, &self.graph_outputs).buffers)
    }
}

/// Runs the merge loop on `p`'s single-node groups; returns how many merges were refused
/// because they would have raised the liveness peak.
pub(super) fn merge_greedily(p: &mut Planner) -> usize {
    let n = p.members.len();
    let io: Vec<_> = (0..n)
        .map(|x| p.io(&p.members[x].iter().copied().collect()))
        .collect();
    let bytes = io
        .iter()
        .map(|(i, o)| metric::kernel_bytes(p.g, i, o))
        .collect();
    let succ: Vec<BTreeSet<usize>> = (0..n).map(|x| p.successors(x)).collect();
    let mut pred = vec![BTreeSet::new(); n];
    for (x, s) in succ.iter().enumerate() {
        for &y in s {
            pred[y].insert(x);
        }
    }
    let last = p
        .members
        .iter()
        .map(|m| *m.last().expect("invariant: groups are not empty"))
        .collect();
    let g = p.g;
    let value_bytes = g.values().map(|(v, _)| g.ty(v).size_bytes()).collect();
    let graph_outputs = g.outputs().iter().map(|o| o.value).collect();
    let mut sc = Scratch {
        stamp: vec![0; g.num_values()],
        first: vec![0; g.num_values()],
        last: vec![0; g.num_values()],
        ..Scratch::default()
    };
    let mut st = State {
        p,
        io,
        bytes,
        succ,
        pred,
        version: vec![0; n],
        last,
        value_bytes,
        graph_outputs,
    };
    let mut heap = BinaryHeap::new();
    for a in 0..n {
        for &b in &st.succ[a] {
            heap.extend(st.candidate(a, b));
        }
    }
    let mut refused: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut rejected_for_memory = 0;
    let mut current_peak = st.peak(None, &mut sc);
    #[cfg(test)]
    assert_eq!(current_peak, st.reference_peak(None));
    while let Some(c) = heap.pop() {
        let (a, b) = (c.a, c.b);
        let stale = c.va != st.version[a] || c.vb != st.version[b];
        if stale || refused.contains(&(a, b)) || !st.succ[a].contains(&b) {
            continue;
        }
        if st.indirect_path(a, b) {
            // Other merges may remove the path: consider it again when `a` or `b` changes.
            continue;
        }
        let set = st.set_of(&[a, b]);
        let nodes: Vec<NodeId> = set.iter().copied().collect();
        let merged_io = st.p.io(&set);
        if st.p.shape(&nodes, &merged_io.1).is_err() {
            refused.insert((a, b));
            continue;
        }
        let peak = st.peak(Some((a, b, &merged_io)), &mut sc);
        #[cfg(test)]
        assert_eq!(peak, st.reference_peak(Some((a, b, &merged_io))));
        if peak > current_peak {
            refused.insert((a, b));
            rejected_for_memory += 1;
            continue;
        }
        current_peak = peak;
        st.commit(a, b, nodes, merged_io);
        // Merged groups get new neighbours: forget refusals involving them, and price
        // every edge of the merged group anew.
        refused.retain(|&(x, y)| x != a && y != a && x != b && y != b);
        let preds: Vec<usize> = st.pred[a].iter().copied().collect();
        for x in preds {
            heap.extend(st.candidate(x, a));
        }
        let succs: Vec<usize> = st.succ[a].iter().copied().collect();
        for y in succs {
            heap.extend(st.candidate(a, y));
        }
    }
    rejected_for_memory
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use tessera_ir::text;

    use crate::fusion::{Mode, plan};

    /// A residual stack in the text form: per layer a reduction, views, a matmul, a
    /// softmax, a broadcast product reduced again, and a skip from two layers back, so
    /// merges reorder groups and lengthen lifetimes.
    fn stack(layers: usize) -> String {
        let mut s = String::from(
            "graph \"stack\" {\n  input \"x\" %0: f32[8,16]\n  input \"w\" %1: f32[16,16]\n  input \"v\" %2: f32[16,256]\n",
        );
        let mut next = 3;
        let mut val = |s: &mut String, ty: &str, rhs: String| {
            let _ = writeln!(s, "  %{next}: {ty} = {rhs}");
            next += 1;
            next - 1
        };
        let (mut h, mut skip) = (0, 0);
        for l in 0..layers {
            let m = val(
                &mut s,
                "f32[8,1]",
                format!("reduce_mean(%{h}) {{axes=[1], keep_dims=true}} \"mean{l}\""),
            );
            let c = val(
                &mut s,
                "f32[8,16]",
                format!("sub(%{h}, %{m}) \"center{l}\""),
            );
            let q = val(
                &mut s,
                "f32[8,16]",
                format!("mul(%{c}, %{c}) \"square{l}\""),
            );
            let t = val(
                &mut s,
                "f32[16,8]",
                format!("transpose(%{q}) {{perm=[1,0]}} \"t{l}\""),
            );
            let k = val(&mut s, "f32[16,8]", format!("matmul(%1, %{t}) \"mm{l}\""));
            let u = val(
                &mut s,
                "f32[8,16]",
                format!("transpose(%{k}) {{perm=[1,0]}} \"u{l}\""),
            );
            let e = val(&mut s, "f32[8,16]", format!("exp(%{u}) \"exp{l}\""));
            let sm = val(
                &mut s,
                "f32[8,16]",
                format!("softmax(%{e}) {{axis=1}} \"softmax{l}\""),
            );
            let a = val(
                &mut s,
                "f32[8,16,1]",
                format!("reshape(%{h}) {{shape=[8,16,1]}} \"col{l}\""),
            );
            let b = val(
                &mut s,
                "f32[8,1,16]",
                format!("reshape(%{sm}) {{shape=[8,1,16]}} \"row{l}\""),
            );
            let p = val(
                &mut s,
                "f32[8,16,16]",
                format!("mul(%{a}, %{b}) \"outer{l}\""),
            );
            let r = val(
                &mut s,
                "f32[8,16]",
                format!("reduce_sum(%{p}) {{axes=[2], keep_dims=false}} \"sum{l}\""),
            );
            // Two wide matmul outputs (stored: a matmul's output feeds no prologue) and a
            // late reader of a reduction of the first: merging the reduction into it
            // keeps the first product live across the second.
            let b1 = val(
                &mut s,
                "f32[8,256]",
                format!("matmul(%{r}, %2) \"wide1_{l}\""),
            );
            let s1 = val(
                &mut s,
                "f32[8,1]",
                format!("reduce_sum(%{b1}) {{axes=[1], keep_dims=true}} \"s1_{l}\""),
            );
            let m1 = val(
                &mut s,
                "f32[8,1]",
                format!("reduce_max(%{b1}) {{axes=[1], keep_dims=true}} \"m1_{l}\""),
            );
            let t1 = val(&mut s, "f32[8,16]", format!("mul(%{r}, %{m1}) \"t1_{l}\""));
            let b2 = val(
                &mut s,
                "f32[8,256]",
                format!("matmul(%{t1}, %2) \"wide2_{l}\""),
            );
            let s2 = val(
                &mut s,
                "f32[8,1]",
                format!("reduce_max(%{b2}) {{axes=[1], keep_dims=true}} \"s2_{l}\""),
            );
            let z = val(
                &mut s,
                "f32[8,1]",
                format!("add(%{s1}, %{s2}) \"late_{l}\""),
            );
            let z = val(
                &mut s,
                "f32[8,16]",
                format!("mul(%{t1}, %{z}) \"scale_{l}\""),
            );
            let o = val(
                &mut s,
                "f32[8,16]",
                format!("add(%{z}, %{skip}) \"residual{l}\""),
            );
            (skip, h) = (h, o);
        }
        let _ = writeln!(s, "  output \"y\" %{h}\n}}");
        s
    }

    /// A sigmoid gathered along its last axis by `width` indices: an upsampling (twice
    /// the elements) keeps the sigmoid in its own kernel, stored once; a pad-like gather
    /// (a few more elements) fuses it.
    fn gathered(width: usize) -> String {
        format!(
            "graph \"g\" {{\n  input \"x\" %0: f32[1,4,8,8]\n  input \"i\" %1: i64[{width}]\n  \
             %2: f32[1,4,8,8] = sigmoid(%0) \"act\"\n  \
             %3: f32[1,4,8,{width}] = gather(%2, %1) {{axis=3}} \"resize\"\n  \
             output \"y\" %3\n}}\n"
        )
    }

    #[test]
    fn an_upsampling_gather_does_not_recompute_its_producer() {
        for (width, groups) in [(16, 2), (10, 1)] {
            let g = text::parse(&gathered(width)).expect("parses");
            let p = plan(&g, Mode::Fused).expect("plans");
            assert_eq!(p.groups.len(), groups, "gather to width {width}");
        }
    }

    /// `merge_greedily` asserts, in test builds, that the peak of the plan and of every
    /// merge it tries equals the plain computation ([`super::State::reference_peak`]).
    #[test]
    fn every_tried_peak_matches_the_lifetimes_computation() {
        for layers in [1, 2, 5, 12] {
            let g = text::parse(&stack(layers)).expect("parses");
            let p = plan(&g, Mode::Fused).expect("plans");
            assert!(
                p.groups.len() < 20 * layers,
                "{layers} layers: {} groups",
                p.groups.len()
            );
            assert!(
                p.rejected_for_memory > 0,
                "{layers} layers: no merge refused for memory"
            );
        }
    }
}
