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
//! * [`lifetimes`]: the one liveness computation, from what each step of a schedule reads
//!   and writes ([`StepUse`]); the fusion planner bounds its plans' peak with it and the
//!   lowering driver places kernels' buffers with it.
//! * [`MemoryPlan`]: lifetimes plus offsets, keyed by value and by scratch buffer, with
//!   the text table `tessera compile --emit plan` prints.

use std::collections::HashMap;

use tessera_ir::{Graph, ValueId};

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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
                let s = slot_index[k].expect("invariant: the target has a slot (checked above)");
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

/// What one step of a schedule does with memory: the input of [`lifetimes`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepUse {
    /// Values the step reads (graph inputs and constants included: they own no buffer).
    pub reads: Vec<ValueId>,
    /// Values the step writes.
    pub writes: Vec<Write>,
    /// Private scratch buffers of the step (live for this step only): `(slot, bytes)`,
    /// where the caller picks the slot numbers (kernels use the parameter index).
    pub scratch: Vec<(usize, usize)>,
}

/// One value a step writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub value: ValueId,
    pub bytes: usize,
    /// A value the step reads whose buffer this one may take over if that value dies at
    /// this step (the step reads each of its elements before writing the same position).
    pub in_place_of: Option<ValueId>,
}

/// Whose bytes a buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Value(ValueId),
    /// Scratch buffer `slot` of step `step` (see [`StepUse::scratch`]).
    Scratch {
        step: usize,
        slot: usize,
    },
}

/// Buffer lifetimes of a schedule: what [`lifetimes`] computes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lifetimes {
    pub steps: usize,
    /// In request order: a value's buffer at the first step that writes it, scratch at its
    /// step.
    pub buffers: Vec<Buffer>,
    pub owners: Vec<Owner>,
}

/// The one liveness computation, for every schedule (fusion groups while planning,
/// kernels when placing the arena): a value written by some step lives from the first
/// step that writes it to the last step that reads or writes it; values in `outputs`
/// live past the last step (nothing reuses them); scratch lives for its step. A write's
/// in-place request becomes [`Buffer::reuse`] when the value it names owns a buffer that
/// dies at this step.
pub fn lifetimes(steps: &[StepUse], outputs: &[ValueId]) -> Lifetimes {
    let mut last: HashMap<ValueId, usize> = HashMap::new();
    for (s, st) in steps.iter().enumerate() {
        let touched = st.reads.iter().chain(st.writes.iter().map(|w| &w.value));
        for &v in touched {
            let e = last.entry(v).or_insert(s);
            *e = (*e).max(s);
        }
    }
    for &v in outputs {
        last.insert(v, steps.len());
    }
    let mut out = Lifetimes {
        steps: steps.len(),
        ..Lifetimes::default()
    };
    let mut buf_of: HashMap<ValueId, usize> = HashMap::new();
    for (s, st) in steps.iter().enumerate() {
        for w in &st.writes {
            if buf_of.contains_key(&w.value) {
                continue;
            }
            let reuse = w
                .in_place_of
                .and_then(|i| buf_of.get(&i).copied())
                .filter(|&b| out.buffers[b].last == s);
            buf_of.insert(w.value, out.buffers.len());
            out.buffers.push(Buffer {
                bytes: w.bytes,
                first: s,
                last: last.get(&w.value).copied().unwrap_or(s).max(s),
                reuse,
            });
            out.owners.push(Owner::Value(w.value));
        }
        for &(slot, bytes) in &st.scratch {
            out.buffers.push(Buffer {
                bytes,
                first: s,
                last: s,
                reuse: None,
            });
            out.owners.push(Owner::Scratch { step: s, slot });
        }
    }
    out
}

/// A placed schedule: lifetimes and the arena offsets of every buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryPlan {
    pub lifetimes: Lifetimes,
    pub arena: ArenaPlan,
    offset_of: HashMap<Owner, usize>,
}

impl MemoryPlan {
    /// Lifetimes, then [`plan_buffers`].
    pub fn new(lifetimes: Lifetimes) -> MemoryPlan {
        let arena = plan_buffers(&lifetimes.buffers);
        let offset_of = lifetimes
            .owners
            .iter()
            .copied()
            .zip(arena.offsets.iter().copied())
            .collect();
        MemoryPlan {
            lifetimes,
            arena,
            offset_of,
        }
    }

    /// The arena offset of a value's buffer, if the value lives in the arena.
    pub fn offset(&self, v: ValueId) -> Option<usize> {
        self.offset_of.get(&Owner::Value(v)).copied()
    }

    /// The arena offset of scratch buffer `slot` of step `step`, if it has memory.
    pub fn scratch_offset(&self, step: usize, slot: usize) -> Option<usize> {
        self.offset_of.get(&Owner::Scratch { step, slot }).copied()
    }

    pub fn peak_bytes(&self) -> usize {
        self.arena.peak_bytes
    }

    pub fn lower_bound_bytes(&self) -> usize {
        self.arena.lower_bound_bytes
    }

    /// `peak / lower bound` (1 for an empty plan).
    pub fn ratio(&self) -> f64 {
        if self.arena.lower_bound_bytes == 0 {
            1.0
        } else {
            self.arena.peak_bytes as f64 / self.arena.lower_bound_bytes as f64
        }
    }

    /// A text table: one line per buffer (offset, size, live steps, owner), then the peak
    /// and the liveness lower bound. `step_name` names a step (a kernel) in scratch lines.
    pub fn print(&self, g: &Graph, step_name: &dyn Fn(usize) -> String) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let rows = self.lifetimes.buffers.iter().zip(&self.lifetimes.owners);
        for ((b, owner), &offset) in rows.zip(&self.arena.offsets) {
            let what = match *owner {
                Owner::Value(v) => format!("{v} {}", g.ty(v)),
                Owner::Scratch { step, slot } => {
                    format!("scratch p{slot} of {}", step_name(step))
                }
            };
            let _ = writeln!(
                out,
                "{:>12} +{:<10} steps {:>3}..={:<3} {what}",
                offset, b.bytes, b.first, b.last
            );
        }
        let _ = writeln!(
            out,
            "peak {} bytes, liveness lower bound {} bytes ({:.3}x), {} in place, {} steps",
            self.arena.peak_bytes,
            self.arena.lower_bound_bytes,
            self.ratio(),
            self.arena.in_place,
            self.lifetimes.steps
        );
        out
    }
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
