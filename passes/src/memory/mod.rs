//! Static memory planning: one arena, an offset for every buffer, from liveness.
//!
//! A schedule is a sequence of steps (kernels, or nodes for an unfused graph). Each
//! buffer is live from the step that writes it to the last step that reads it, inclusive;
//! two buffers may share bytes only if their live ranges are disjoint — or, for an
//! in-place update, if one dies at the very step that writes the other and that step
//! reads each element before writing the same position (the caller says so with
//! [`Buffer::reuse`]).
//!
//! * [`liveness_lower_bound`]: the largest total size of buffers live at one step, a lower
//!   bound for any arena.
//! * [`plan_buffers`]: offsets by "greedy by size" (largest buffer first, each into the
//!   tightest gap among the buffers it overlaps in time), as in TFLite's arena planner.
//! * [`plan_memory`] / [`plan_memory_fused`]: the same for a graph run node by node, or for
//!   a fusion plan's kernels, keyed by value.

use tessera_ir::{Graph, Op, ValueId};

use crate::fusion::{FusionPlan, classify::OpClass, view::is_alias};

/// Offsets and sizes are multiples of this many bytes.
pub const ALIGN: usize = 64;

/// One buffer to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub bytes: usize,
    /// First step that uses it (writes it).
    pub first: usize,
    /// Last step that uses it, inclusive.
    pub last: usize,
    /// Index of an earlier buffer whose last step is this buffer's first step and whose
    /// storage this one may take over in place.
    pub reuse: Option<usize>,
}

/// Where every buffer went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArenaPlan {
    /// Byte offset of each buffer, in request order.
    pub offsets: Vec<usize>,
    /// Arena size: the end of the highest buffer.
    pub peak_bytes: usize,
    /// [`liveness_lower_bound`] of the buffers after in-place sharing, each rounded up to
    /// [`ALIGN`] (the arena's placement unit).
    pub lower_bound_bytes: usize,
    /// How many in-place reuses were applied.
    pub in_place: usize,
}

fn round_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// The largest sum of sizes of buffers live at one step.
pub fn liveness_lower_bound(bufs: &[Buffer]) -> usize {
    let steps = bufs.iter().map(|b| b.last + 1).max().unwrap_or(0);
    let mut delta = vec![0i64; steps + 1];
    for b in bufs {
        delta[b.first] += b.bytes as i64;
        delta[b.last + 1] -= b.bytes as i64;
    }
    let (mut cur, mut best) = (0i64, 0i64);
    for d in delta {
        cur += d;
        best = best.max(cur);
    }
    best as usize
}

/// Places every buffer in one arena. In-place requests merge a buffer with the one it
/// reuses (same offset) when both are otherwise compatible.
pub fn plan_buffers(bufs: &[Buffer]) -> ArenaPlan {
    // Union in-place chains into slots.
    let mut slot_of: Vec<usize> = (0..bufs.len()).collect();
    let mut slots: Vec<Buffer> = Vec::new();
    let mut slot_index: Vec<Option<usize>> = vec![None; bufs.len()];
    let mut taken = vec![false; bufs.len()];
    let mut in_place = 0;
    for (i, b) in bufs.iter().enumerate() {
        let target = b
            .reuse
            .filter(|&k| k < i && !taken[k] && bufs[k].last == b.first && slot_index[k].is_some());
        match target {
            Some(k) => {
                taken[k] = true;
                in_place += 1;
                let s = slot_index[k].expect("checked above");
                slots[s].bytes = slots[s].bytes.max(b.bytes);
                slots[s].last = slots[s].last.max(b.last);
                slot_index[i] = Some(s);
                slot_of[i] = s;
            }
            None => {
                slot_index[i] = Some(slots.len());
                slot_of[i] = slots.len();
                slots.push(Buffer {
                    bytes: b.bytes,
                    first: b.first,
                    last: b.last,
                    reuse: None,
                });
            }
        }
    }
    // The bound of the buffers as they must be placed: every one on an ALIGN boundary.
    let aligned: Vec<Buffer> = slots
        .iter()
        .map(|b| Buffer {
            bytes: round_up(b.bytes),
            ..b.clone()
        })
        .collect();
    let lower_bound_bytes = liveness_lower_bound(&aligned);
    let slot_offsets = greedy_by_size(&slots);
    let peak_bytes = slots
        .iter()
        .zip(&slot_offsets)
        .map(|(s, &o)| o + round_up(s.bytes))
        .max()
        .unwrap_or(0);
    ArenaPlan {
        offsets: slot_of.iter().map(|&s| slot_offsets[s]).collect(),
        peak_bytes,
        lower_bound_bytes,
        in_place,
    }
}

fn overlaps(a: &Buffer, b: &Buffer) -> bool {
    a.first <= b.last && b.first <= a.last
}

fn greedy_by_size(slots: &[Buffer]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..slots.len()).collect();
    order.sort_by(|&a, &b| {
        slots[b]
            .bytes
            .cmp(&slots[a].bytes)
            .then(slots[a].first.cmp(&slots[b].first))
            .then(a.cmp(&b))
    });
    let mut offsets = vec![0usize; slots.len()];
    let mut placed: Vec<usize> = Vec::new();
    for &i in &order {
        let size = round_up(slots[i].bytes);
        let mut conflicts: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&p| overlaps(&slots[p], &slots[i]))
            .map(|&p| (offsets[p], round_up(slots[p].bytes)))
            .collect();
        conflicts.sort();
        let (mut best, mut best_gap) = (None, usize::MAX);
        let mut end = 0usize;
        for (off, sz) in conflicts {
            if off > end {
                let gap = off - end;
                if gap >= size && gap < best_gap {
                    best = Some(end);
                    best_gap = gap;
                }
            }
            end = end.max(off + sz);
        }
        offsets[i] = best.unwrap_or(end);
        placed.push(i);
    }
    offsets
}

/// One value's place in a memory plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub value: ValueId,
    pub offset: usize,
    pub bytes: usize,
    pub first: usize,
    pub last: usize,
}

/// A memory plan keyed by graph value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Number of steps of the schedule.
    pub steps: usize,
    /// Every value that lives in the arena, in the order it is first written.
    pub slots: Vec<Slot>,
    /// Arena bytes.
    pub peak_bytes: usize,
    /// Liveness lower bound (after in-place sharing).
    pub lower_bound_bytes: usize,
    pub in_place: usize,
}

impl MemoryPlan {
    /// The arena offset of `v`, if it lives in the arena.
    pub fn offset(&self, v: ValueId) -> Option<usize> {
        self.slots.iter().find(|s| s.value == v).map(|s| s.offset)
    }

    /// `peak / lower bound` (1 for an empty plan).
    pub fn ratio(&self) -> f64 {
        if self.lower_bound_bytes == 0 {
            1.0
        } else {
            self.peak_bytes as f64 / self.lower_bound_bytes as f64
        }
    }
}

/// A text table of a memory plan: one line per buffer (offset, size, live steps), then
/// the peak and the liveness lower bound.
pub fn print_memory(g: &Graph, plan: &MemoryPlan) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for s in &plan.slots {
        let _ = writeln!(
            out,
            "{:>12} +{:<10} steps {:>3}..={:<3} {} {}",
            s.offset,
            s.bytes,
            s.first,
            s.last,
            s.value,
            g.ty(s.value)
        );
    }
    let _ = writeln!(
        out,
        "peak {} bytes, liveness lower bound {} bytes ({:.3}x), {} in place, {} steps",
        plan.peak_bytes,
        plan.lower_bound_bytes,
        plan.ratio(),
        plan.in_place,
        plan.steps
    );
    out
}

fn finish(steps: usize, values: Vec<ValueId>, bufs: Vec<Buffer>) -> MemoryPlan {
    let arena = plan_buffers(&bufs);
    let slots = values
        .into_iter()
        .zip(bufs.iter().zip(&arena.offsets))
        .map(|(value, (b, &offset))| Slot {
            value,
            offset,
            bytes: b.bytes,
            first: b.first,
            last: b.last,
        })
        .collect();
    MemoryPlan {
        steps,
        slots,
        peak_bytes: arena.peak_bytes,
        lower_bound_bytes: arena.lower_bound_bytes,
        in_place: arena.in_place,
    }
}

/// Memory plan for running `g` node by node: every non-constant node is a step, every
/// value it produces a buffer, except aliases (identity, reshape, inference dropout),
/// which share their input's buffer. Graph outputs live past the last step (nothing
/// reuses them). An elementwise node
/// whose same-size input dies at it writes in place.
pub fn plan_memory(g: &Graph) -> MemoryPlan {
    let mut step_of = vec![usize::MAX; g.num_nodes()];
    let mut steps = 0;
    for (id, n) in g.nodes() {
        if !matches!(n.op, Op::Constant(_)) && !is_alias(&n.op) {
            step_of[id.index()] = steps;
            steps += 1;
        }
    }
    // Each value's storage root: aliases point to their input's root.
    let mut root: Vec<ValueId> = (0..g.num_values()).map(ValueId::new).collect();
    for (_, n) in g.nodes() {
        if is_alias(&n.op) {
            root[n.outputs[0].index()] = root[n.inputs[0].index()];
        }
    }
    let mut last = vec![None::<usize>; g.num_values()];
    for (id, n) in g.nodes() {
        let s = step_of[id.index()];
        if s == usize::MAX {
            continue;
        }
        for v in &n.inputs {
            let r = root[v.index()];
            last[r.index()] = Some(last[r.index()].map_or(s, |l: usize| l.max(s)));
        }
    }
    for p in g.outputs() {
        let r = root[p.value.index()];
        last[r.index()] = Some(steps);
    }
    let mut values = Vec::new();
    let mut bufs: Vec<Buffer> = Vec::new();
    let mut buf_of = vec![None::<usize>; g.num_values()];
    for (id, n) in g.nodes() {
        let s = step_of[id.index()];
        if s == usize::MAX {
            continue;
        }
        for &o in &n.outputs {
            let bytes = g.ty(o).size_bytes();
            let reuse = if n.op.is_elementwise() {
                n.inputs.iter().find_map(|&i| {
                    let r = root[i.index()];
                    let k = buf_of[r.index()]?;
                    (g.ty(i).size_bytes() == bytes && g.ty(i).shape == g.ty(o).shape)
                        .then_some(k)
                        .filter(|&k: &usize| bufs[k].last == s)
                })
            } else {
                None
            };
            buf_of[o.index()] = Some(bufs.len());
            values.push(o);
            bufs.push(Buffer {
                bytes,
                first: s,
                last: last[o.index()].unwrap_or(s),
                reuse,
            });
        }
    }
    finish(steps, values, bufs)
}

/// Memory plan for a fusion plan: each group is a step, each value it stores a buffer
/// (live to the last group reading it; graph outputs past the last step). A pointwise or
/// reduction kernel writes a stored value in place of an input that dies at it when the
/// kernel reads that input only directly, at the stored value's own shape.
pub fn plan_memory_fused(g: &Graph, plan: &FusionPlan) -> MemoryPlan {
    let steps = plan.groups.len();
    let mut last = vec![None::<usize>; g.num_values()];
    for (s, grp) in plan.groups.iter().enumerate() {
        for &v in &grp.inputs {
            last[v.index()] = Some(last[v.index()].map_or(s, |l: usize| l.max(s)));
        }
    }
    for p in g.outputs() {
        last[p.value.index()] = Some(steps);
    }
    let mut values = Vec::new();
    let mut bufs: Vec<Buffer> = Vec::new();
    let mut buf_of = vec![None::<usize>; g.num_values()];
    for (s, grp) in plan.groups.iter().enumerate() {
        for &o in &grp.outputs {
            let bytes = g.ty(o).size_bytes();
            let reuse = plan
                .in_place_candidates(g, s, o)
                .into_iter()
                .filter_map(|i| buf_of[i.index()])
                .find(|&k: &usize| bufs[k].last == s && bufs[k].bytes == bytes);
            buf_of[o.index()] = Some(bufs.len());
            values.push(o);
            bufs.push(Buffer {
                bytes,
                first: s,
                last: last[o.index()].unwrap_or(s),
                reuse,
            });
        }
    }
    finish(steps, values, bufs)
}

/// The liveness lower bound of a fusion plan's stored values (no in-place sharing): what
/// the planner keeps from growing when it fuses.
pub fn plan_liveness(g: &Graph, plan: &FusionPlan) -> usize {
    let steps = plan.groups.len();
    let mut first = vec![None::<usize>; g.num_values()];
    let mut last = vec![0usize; g.num_values()];
    for (s, grp) in plan.groups.iter().enumerate() {
        for &o in &grp.outputs {
            first[o.index()] = Some(s);
            last[o.index()] = last[o.index()].max(s);
        }
        for &v in &grp.inputs {
            last[v.index()] = last[v.index()].max(s);
        }
    }
    for p in g.outputs() {
        last[p.value.index()] = steps;
    }
    let bufs: Vec<Buffer> = (0..g.num_values())
        .filter_map(|i| {
            first[i].map(|f| Buffer {
                bytes: g.ty(ValueId::new(i)).size_bytes(),
                first: f,
                last: last[i].max(f),
                reuse: None,
            })
        })
        .collect();
    liveness_lower_bound(&bufs)
}

/// True if `class` is one whose kernels may update an input in place (see
/// [`plan_memory_fused`]).
pub fn in_place_class(class: OpClass) -> bool {
    matches!(class, OpClass::Pointwise | OpClass::Reduction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(bytes: usize, first: usize, last: usize) -> Buffer {
        Buffer {
            bytes,
            first,
            last,
            reuse: None,
        }
    }

    #[test]
    fn disjoint_lifetimes_share_memory() {
        let bufs = [b(128, 0, 1), b(128, 2, 3), b(64, 1, 2)];
        let p = plan_buffers(&bufs);
        assert_eq!(p.lower_bound_bytes, 192);
        assert_eq!(p.peak_bytes, 192);
        assert_eq!(p.offsets[0], p.offsets[1]);
    }

    #[test]
    fn in_place_merges_slots() {
        let mut second = b(256, 1, 2);
        second.reuse = Some(0);
        let p = plan_buffers(&[b(256, 0, 1), second]);
        assert_eq!(p.in_place, 1);
        assert_eq!(p.peak_bytes, 256);
        assert_eq!(p.offsets, vec![0, 0]);
    }

    #[test]
    fn the_bound_counts_aligned_sizes() {
        let p = plan_buffers(&[b(24, 0, 1), b(32, 1, 2)]);
        assert_eq!((p.lower_bound_bytes, p.peak_bytes), (128, 128));
    }

    #[test]
    fn greedy_fills_gaps() {
        // A long-lived small buffer, two big ones in sequence, then a medium one that fits
        // in the space the first big one leaves.
        let bufs = [b(64, 0, 4), b(1024, 0, 1), b(1024, 2, 3), b(512, 2, 2)];
        let p = plan_buffers(&bufs);
        assert_eq!(p.lower_bound_bytes, 64 + 1024 + 512);
        assert!(p.peak_bytes <= 64 + 1024 + 512, "{p:?}");
    }
}
