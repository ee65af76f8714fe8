//! The greedy merge loop of [`super::plan`], incremental.
//!
//! Each step takes the producer→consumer merge that saves the most bytes (ties: the
//! smallest group ids), if it is legal ([`super::analyze`]), keeps the group graph acyclic
//! (no other path from producer to consumer) and does not raise the liveness peak. The
//! choice is the same as recomputing every candidate every step, but bookkept: candidate
//! gains sit in a max-heap and are recomputed only for the groups a merge changed (a gain
//! depends on its two groups alone), group adjacency and stored values are updated in
//! place, and the peak of a tentative merge is one topological pass over cached values.
//! Compile time grows about linearly with the graph instead of quadratically.

use std::collections::{BTreeSet, BinaryHeap};

use tessera_ir::{NodeId, ValueId};

use super::{Planner, metric};
use crate::memory::{self, StepUse, Write};

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
}

impl State<'_, '_> {
    fn set_of(&self, gs: &[usize]) -> BTreeSet<NodeId> {
        gs.iter()
            .flat_map(|&x| self.p.members[x].iter().copied())
            .collect()
    }

    /// The candidate `a → b`, if merging saves bytes.
    fn candidate(&self, a: usize, b: usize) -> Option<Candidate> {
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
    /// broken by the earliest member node, then the group id.
    fn peak(&self, merge: Option<(usize, usize, &Io)>) -> usize {
        let n = self.p.members.len();
        let alias = |x: usize| match merge {
            Some((a, b, _)) if x == b => a,
            _ => x,
        };
        let live = |x: usize| !self.p.members[x].is_empty() && merge.is_none_or(|(_, b, _)| x != b);
        let succ_of = |x: usize| -> BTreeSet<usize> {
            let mut s: BTreeSet<usize> = self.succ[x].iter().map(|&y| alias(y)).collect();
            if let Some((a, b, _)) = merge
                && x == a
            {
                s.extend(self.succ[b].iter().map(|&y| alias(y)));
            }
            s.remove(&x);
            s
        };
        let first = |x: usize| match merge {
            Some((a, b, _)) if x == a => self.p.members[a][0].min(self.p.members[b][0]),
            _ => self.p.members[x][0],
        };
        let succs: Vec<BTreeSet<usize>> = (0..n)
            .map(|x| if live(x) { succ_of(x) } else { BTreeSet::new() })
            .collect();
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
        let mut steps = Vec::new();
        let g = self.p.g;
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
        let outputs: Vec<ValueId> = g.outputs().iter().map(|p| p.value).collect();
        memory::liveness_lower_bound(&memory::lifetimes(&steps, &outputs).buffers)
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
    let mut st = State {
        p,
        io,
        bytes,
        succ,
        pred,
        version: vec![0; n],
        last,
    };
    let mut heap = BinaryHeap::new();
    for a in 0..n {
        for &b in &st.succ[a] {
            heap.extend(st.candidate(a, b));
        }
    }
    let mut refused: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut rejected_for_memory = 0;
    let mut current_peak = st.peak(None);
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
        let peak = st.peak(Some((a, b, &merged_io)));
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
