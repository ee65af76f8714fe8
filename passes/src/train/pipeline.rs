//! A pipeline-parallel schedule simulator: `p` stages, `m` microbatches, per-stage costs
//! of a forward (F), input-gradient backward (B) and weight-gradient backward (W).
//!
//! Each stage runs its ops in a fixed order; an op starts when its stage is free and its
//! dependencies are done: `F(s, j)` after `F(s−1, j)`; `B(s, j)` after `F(s, j)` and
//! `B(s+1, j)`; `W(s, j)` after `B(s, j)`. Communication is free. Times are integers
//! (e.g. FLOPs), so bubbles are exact rationals:
//! `bubble = (makespan − m·ΣT) / (m·ΣT)`, the idle fraction of every stage.
//!
//! Schedules ([`Kind`]):
//! * **1F1B**: stage `s` warms up with `p−1−s` forwards, then alternates F and a combined
//!   backward (B and W as one op). Bubble `(p−1)/m`.
//! * **1F1B, B/W split**: the same order with W right after its B; upstream stages get
//!   their gradient after B only.
//! * **1F1B + 2BP**: W deferred to the end of each stage (the 2BP paper's schedule); the
//!   number of microbatches in flight grows to `m`.
//! * **ZB-H1** (zero-bubble, Qi et al.): `p−s` warm-up forwards, then B, F in steady state
//!   with stage `s` keeping `s` W's deferred to fill the drain. Bubble
//!   `(p−1)(T_F+T_B−T_W)/(m·ΣT)` with at most `p` microbatches in flight, like 1F1B.
//!
//! Memory: a microbatch holds `activation_bytes` on a stage from the end of its F until its
//! B (or combined backward) ends, and then `stash_bytes` until its W ends.

use std::collections::HashMap;
use std::fmt::Write;

use crate::PassError;

/// Which pipeline schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    OneFOneB,
    OneFOneBSplit,
    OneFOneB2bp,
    ZbH1,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::OneFOneB,
        Kind::OneFOneBSplit,
        Kind::OneFOneB2bp,
        Kind::ZbH1,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::OneFOneB => "1F1B",
            Kind::OneFOneBSplit => "1F1B, W after B",
            Kind::OneFOneB2bp => "1F1B+2BP",
            Kind::ZbH1 => "ZB-H1",
        }
    }
}

/// The work one pipeline op does for one microbatch on one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Work {
    F,
    B,
    W,
    /// B and W as one op (plain 1F1B).
    BW,
}

/// Per-microbatch, per-stage costs (time units) and memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageCosts {
    pub f: u64,
    pub b: u64,
    pub w: u64,
    pub activation_bytes: u64,
    pub stash_bytes: u64,
}

/// One executed op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOp {
    pub stage: usize,
    pub microbatch: usize,
    pub work: Work,
    pub start: u64,
    pub end: u64,
}

/// A simulated schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    pub kind: Kind,
    pub stages: usize,
    pub microbatches: usize,
    pub costs: StageCosts,
    pub ops: Vec<TimedOp>,
    pub makespan: u64,
    /// Per stage: most microbatches between F start and W (or combined backward) end.
    pub peak_in_flight: Vec<usize>,
    /// Per stage: peak bytes of activations and stashes held.
    pub peak_bytes: Vec<u64>,
}

impl Timeline {
    /// Position in `ops` of each `(stage, microbatch, work)`.
    fn index(&self) -> HashMap<(usize, usize, Work), usize> {
        self.ops
            .iter()
            .enumerate()
            .map(|(i, o)| ((o.stage, o.microbatch, o.work), i))
            .collect()
    }

    /// Work per stage: `m·(T_F + T_B + T_W)`.
    pub fn work(&self) -> u64 {
        self.microbatches as u64 * (self.costs.f + self.costs.b + self.costs.w)
    }

    /// The bubble as an exact fraction `(idle, work)` per stage.
    pub fn bubble_fraction(&self) -> (u64, u64) {
        (self.makespan - self.work(), self.work())
    }

    pub fn bubble(&self) -> f64 {
        let (n, d) = self.bubble_fraction();
        n as f64 / d as f64
    }

    /// Microbatches per time unit.
    pub fn throughput(&self) -> f64 {
        self.microbatches as f64 / self.makespan as f64
    }

    /// Every op starts after its stage's previous op and its dependencies end; returns the
    /// first violation.
    pub fn check(&self) -> Result<(), String> {
        let index = self.index();
        let find = |s: usize, j: usize, k: Work| index.get(&(s, j, k)).map(|&i| &self.ops[i]);
        let combined = self.kind == Kind::OneFOneB;
        for o in &self.ops {
            let mut deps = Vec::new();
            match o.work {
                Work::F => {
                    if o.stage > 0 {
                        deps.push((o.stage - 1, Work::F));
                    }
                }
                Work::B | Work::BW => {
                    deps.push((o.stage, Work::F));
                    if o.stage + 1 < self.stages {
                        deps.push((o.stage + 1, if combined { Work::BW } else { Work::B }));
                    }
                }
                Work::W => deps.push((o.stage, Work::B)),
            }
            for (s, k) in deps {
                let d = find(s, o.microbatch, k)
                    .ok_or_else(|| format!("{o:?} depends on a missing {k:?} at stage {s}"))?;
                if d.end > o.start {
                    return Err(format!("{o:?} starts before {d:?} ends"));
                }
            }
        }
        for s in 0..self.stages {
            let mut mine: Vec<&TimedOp> = self.ops.iter().filter(|o| o.stage == s).collect();
            mine.sort_by_key(|o| o.start);
            for w in mine.windows(2) {
                if w[0].end > w[1].start {
                    return Err(format!("{:?} and {:?} overlap on stage {s}", w[0], w[1]));
                }
            }
        }
        Ok(())
    }
}

/// The per-stage op order of `kind`.
pub fn stage_order(kind: Kind, p: usize, m: usize) -> Vec<Vec<(Work, usize)>> {
    (0..p)
        .map(|s| {
            let mut l = Vec::new();
            match kind {
                Kind::OneFOneB | Kind::OneFOneBSplit | Kind::OneFOneB2bp => {
                    let warm = (p - 1 - s).min(m);
                    l.extend((0..warm).map(|j| (Work::F, j)));
                    let mut f = warm;
                    for b in 0..m {
                        if f < m {
                            l.push((Work::F, f));
                            f += 1;
                        }
                        match kind {
                            Kind::OneFOneB => l.push((Work::BW, b)),
                            Kind::OneFOneBSplit => {
                                l.push((Work::B, b));
                                l.push((Work::W, b));
                            }
                            _ => l.push((Work::B, b)),
                        }
                    }
                    if kind == Kind::OneFOneB2bp {
                        l.extend((0..m).map(|j| (Work::W, j)));
                    }
                }
                Kind::ZbH1 => {
                    let warm = (p - s).min(m);
                    l.extend((0..warm).map(|j| (Work::F, j)));
                    let (mut f, mut w) = (warm, 0);
                    for b in 0..m {
                        l.push((Work::B, b));
                        while b + 1 - w > s {
                            l.push((Work::W, w));
                            w += 1;
                        }
                        if f < m {
                            l.push((Work::F, f));
                            f += 1;
                        }
                    }
                    l.extend((w..m).map(|j| (Work::W, j)));
                }
            }
            l
        })
        .collect()
}

/// The most stage × microbatch pairs [`simulate`] accepts (each is up to three ops).
pub const MAX_STAGE_MICROBATCHES: usize = 1 << 20;

/// Simulates `kind` on `p` stages and `m` microbatches.
pub fn simulate(kind: Kind, p: usize, m: usize, costs: StageCosts) -> Result<Timeline, PassError> {
    let fail = |message: String| PassError::Failed {
        pass: "pipeline",
        message,
    };
    if p == 0 || m == 0 {
        return Err(fail(format!(
            "a pipeline needs at least one stage and one microbatch (got p={p}, m={m})"
        )));
    }
    if p.saturating_mul(m) > MAX_STAGE_MICROBATCHES {
        return Err(fail(format!(
            "p·m = {} exceeds the simulator's limit of {MAX_STAGE_MICROBATCHES} (p={p}, m={m})",
            p.saturating_mul(m)
        )));
    }
    let order = stage_order(kind, p, m);
    let dur = |k: Work| match k {
        Work::F => costs.f,
        Work::B => costs.b,
        Work::W => costs.w,
        Work::BW => costs.b + costs.w,
    };
    // end[stage][work][mb]
    let slot = |k: Work| match k {
        Work::F => 0,
        Work::B | Work::BW => 1,
        Work::W => 2,
    };
    let mut end: Vec<[Vec<Option<u64>>; 3]> = (0..p)
        .map(|_| [vec![None; m], vec![None; m], vec![None; m]])
        .collect();
    let mut free = vec![0u64; p];
    let mut next = vec![0usize; p];
    let mut ops = Vec::new();
    let total: usize = order.iter().map(Vec::len).sum();
    while ops.len() < total {
        let mut progressed = false;
        for s in 0..p {
            while let Some(&(k, j)) = order[s].get(next[s]) {
                let deps: Vec<Option<u64>> = match k {
                    Work::F => {
                        if s > 0 {
                            vec![end[s - 1][0][j]]
                        } else {
                            vec![]
                        }
                    }
                    Work::B | Work::BW => {
                        let mut d = vec![end[s][0][j]];
                        if s + 1 < p {
                            d.push(end[s + 1][1][j]);
                        }
                        d
                    }
                    Work::W => vec![end[s][1][j]],
                };
                if deps.iter().any(Option::is_none) {
                    break;
                }
                let start = deps.into_iter().flatten().fold(free[s], u64::max);
                let e = start + dur(k);
                end[s][slot(k)][j] = Some(e);
                free[s] = e;
                next[s] += 1;
                ops.push(TimedOp {
                    stage: s,
                    microbatch: j,
                    work: k,
                    start,
                    end: e,
                });
                progressed = true;
            }
        }
        if !progressed {
            return Err(fail(format!("{} deadlocks", kind.name())));
        }
    }
    let makespan = free.iter().copied().max().unwrap_or(0);
    let (peak_in_flight, peak_bytes) = memory(&ops, p, m, costs);
    Ok(Timeline {
        kind,
        stages: p,
        microbatches: m,
        costs,
        ops,
        makespan,
        peak_in_flight,
        peak_bytes,
    })
}

/// Per stage: peak microbatches in flight and peak bytes held.
fn memory(ops: &[TimedOp], p: usize, m: usize, c: StageCosts) -> (Vec<usize>, Vec<u64>) {
    let index: HashMap<(usize, usize, Work), &TimedOp> = ops
        .iter()
        .map(|o| ((o.stage, o.microbatch, o.work), o))
        .collect();
    let mut counts = Vec::with_capacity(p);
    let mut bytes = Vec::with_capacity(p);
    for s in 0..p {
        // Events (time, order, Δcount, Δbytes); releases sort before acquisitions at a tie.
        let mut ev: Vec<(u64, u8, i64, i64)> = Vec::new();
        for j in 0..m {
            let get = |k: Work| index.get(&(s, j, k)).copied();
            let Some(f) = get(Work::F) else { continue };
            let act = c.activation_bytes as i64;
            let stash = c.stash_bytes as i64;
            ev.push((f.start, 1, 1, 0));
            ev.push((f.end, 1, 0, act));
            if let Some(bw) = get(Work::BW) {
                ev.push((bw.end, 0, -1, -act));
            } else if let (Some(b), Some(w)) = (get(Work::B), get(Work::W)) {
                ev.push((b.end, 0, 0, stash - act));
                ev.push((w.end, 0, -1, -stash));
            }
        }
        ev.sort();
        let (mut n, mut by, mut bn, mut bb) = (0i64, 0i64, 0i64, 0i64);
        for (_, _, dn, db) in ev {
            n += dn;
            by += db;
            bn = bn.max(n);
            bb = bb.max(by);
        }
        counts.push(bn as usize);
        bytes.push(bb as u64);
    }
    (counts, bytes)
}

/// An SVG Gantt chart of one or more timelines (one panel each, stages as rows, F blue,
/// B green, W orange, combined backward teal; numbers are microbatches).
pub fn svg(timelines: &[Timeline]) -> String {
    let row = 22.0;
    let gap = 40.0;
    let left = 110.0;
    let width = 900.0;
    let span = timelines
        .iter()
        .map(|t| t.makespan)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let scale = width / span;
    let height: f64 = timelines
        .iter()
        .map(|t| t.stages as f64 * row + gap)
        .sum::<f64>()
        + 30.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height:.0}" font-family="sans-serif" font-size="11">"#,
        left + width + 20.0
    );
    let _ = writeln!(
        out,
        r#"<rect x="0" y="0" width="{}" height="{height:.0}" fill="white"/>"#,
        left + width + 20.0
    );
    let mut y0 = 20.0;
    for t in timelines {
        let (n, d) = t.bubble_fraction();
        let _ = writeln!(
            out,
            r#"<text x="4" y="{:.1}" font-weight="bold">{} (p={}, m={}): makespan {}, bubble {n}/{d} = {:.4}, peak in flight {}</text>"#,
            y0 - 6.0,
            escape(t.kind.name()),
            t.stages,
            t.microbatches,
            t.makespan,
            t.bubble(),
            t.peak_in_flight.iter().max().copied().unwrap_or(0)
        );
        for s in 0..t.stages {
            let y = y0 + s as f64 * row;
            let _ = writeln!(
                out,
                r#"<text x="4" y="{:.1}">stage {s}</text>"#,
                y + row * 0.7
            );
            let _ = writeln!(
                out,
                "<rect x=\"{left}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#eeeeee\"/>",
                t.makespan as f64 * scale,
                row - 2.0
            );
        }
        for o in &t.ops {
            let (fill, label) = match o.work {
                Work::F => ("#4878cf", "F"),
                Work::B => ("#6acc65", "B"),
                Work::W => ("#f0a040", "W"),
                Work::BW => ("#38a8a0", "BW"),
            };
            let x = left + o.start as f64 * scale;
            let w = (o.end - o.start) as f64 * scale;
            let y = y0 + o.stage as f64 * row;
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{fill}" stroke="white" stroke-width="0.5"><title>{label}{} stage {} [{}, {})</title></rect>"#,
                row - 2.0,
                o.microbatch,
                o.stage,
                o.start,
                o.end
            );
            if w >= 12.0 {
                let _ = writeln!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="white">{}</text>"#,
                    x + w / 2.0,
                    y + row * 0.65,
                    o.microbatch
                );
            }
        }
        y0 += t.stages as f64 * row + gap;
    }
    out.push_str("</svg>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
