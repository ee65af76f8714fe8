//! The latency-aware search of the CPU backend: measured time decides how each kernel
//! with alternatives runs.
//!
//! [`CpuModel::search`] goes through the compiled kernels in order. For every kernel with
//! more than one way to run ([`Way`]: a convolution's algorithm and form from
//! [`super::choice::candidates`], and with more than one thread whether the kernel uses
//! the pool or the calling thread alone) it looks each alternative up in the [measurement cache](crate::cache), times the
//! alternatives in isolation when any is missing ([`crate::measure::interleaved`]: caches
//! evicted, the activation input touched, drift corrected against a reference), and keeps
//! the fastest when it beats the heuristic's choice by more than
//! [`SearchOptions::margin`]. Once the budget is spent, the remaining kernels keep the
//! heuristic's choice unless the cache already knows them.
//!
//! Invariant: the decisions depend only on the cache's contents once it holds every
//! alternative (a second search of the same model on the same machine measures nothing
//! and decides the same); [`Search::Off`] leaves every kernel as compiled. Every
//! alternative computes the kernel's output; they differ in summation order, so a model
//! searched at one thread count may round differently from one searched at another (the
//! fingerprint, and with it the cache, is per thread count).

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use tessera_ir::Tensor;
use tessera_lower::kir::{Body, print_kernel};
use tessera_lower::{KernelRef, Location};

use super::{ConvAlgo, CpuModel, choice, pack_transposed_weights, tensor_ptr};
use crate::RuntimeError;
use crate::cache::{Entry, MeasurementCache, stable_hash};
use crate::measure::{Evict, Protocol, Timing, interleaved, touch};

/// What decides the kernels' alternatives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// The built-in heuristic alone (what [`super::compile`] does).
    Off,
    /// Measured time, from the cache where it has the alternative.
    Measure,
}

impl Search {
    pub fn name(self) -> &'static str {
        match self {
            Search::Off => "off",
            Search::Measure => "measure",
        }
    }
}

/// One way to run a kernel: a convolution's algorithm (`None` for other kernels) and
/// whether it runs on the calling thread alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Way {
    pub conv: Option<ConvAlgo>,
    pub serial: bool,
}

impl Way {
    /// `direct-rows`, `im2col-gemm/serial`, `pool`, `serial`.
    pub fn name(self) -> String {
        match (self.conv, self.serial) {
            (Some(a), false) => a.name().to_string(),
            (Some(a), true) => format!("{}/serial", a.name()),
            (None, false) => "pool".to_string(),
            (None, true) => "serial".to_string(),
        }
    }
}

/// Options of [`CpuModel::search`].
#[derive(Clone, Debug, PartialEq)]
pub struct SearchOptions {
    pub mode: Search,
    /// Wall time the search may spend measuring; kernels reached after it keep the
    /// heuristic's choice (or the cache's).
    pub budget: Duration,
    /// The cache file ([`crate::cache::default_path`] in the CLI); `None` keeps
    /// measurements in memory for this search only.
    pub cache: Option<PathBuf>,
    pub protocol: Protocol,
    /// An alternative replaces the heuristic's choice only when its median is below
    /// `(1 − margin)` times the heuristic's: differences inside the noise keep today's
    /// choice.
    pub margin: f64,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            mode: Search::Off,
            budget: Duration::from_secs(30),
            cache: None,
            protocol: Protocol::default(),
            margin: 0.05,
        }
    }
}

/// One alternative of a decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Alternative {
    pub name: String,
    /// Median seconds, when measured (now or in the cache).
    pub seconds: Option<f64>,
    /// Its interquartile range over the median.
    pub spread: Option<f64>,
    /// Whether the time came from the cache.
    pub cached: bool,
}

/// The choice made for one kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The kernel (`k12_conv`) and its first graph node.
    pub kernel: String,
    /// The alternative that runs.
    pub choice: String,
    /// The heuristic's alternative (what `--search off` runs).
    pub default: String,
    pub alternatives: Vec<Alternative>,
}

/// What [`CpuModel::search`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchReport {
    pub mode: Search,
    /// One per kernel with alternatives, in kernel order.
    pub decisions: Vec<Decision>,
    /// Alternatives timed by this search.
    pub measured: usize,
    /// Alternatives found in the cache.
    pub cached: usize,
    /// Kernels left to the heuristic because the budget was spent.
    pub over_budget: usize,
    /// Wall time of the search.
    pub seconds: f64,
    /// The device fingerprint the cache keys carry.
    pub fingerprint: String,
    /// Problems that did not stop the search (an unusable cache file, a failed save).
    pub warnings: Vec<String>,
}

impl SearchReport {
    /// Decisions that differ from the heuristic's.
    pub fn changed(&self) -> usize {
        self.decisions
            .iter()
            .filter(|d| d.choice != d.default)
            .count()
    }

    /// The decisions table, one kernel per line: the choice, the heuristic's, and every
    /// alternative's time (`*` marks the choice, `c` a time from the cache).
    pub fn table(&self) -> String {
        let mut out = format!(
            "search {}: {} kernels with alternatives, {} changed; {} timed, {} cached, {} over budget, {:.2} s\n",
            self.mode.name(),
            self.decisions.len(),
            self.changed(),
            self.measured,
            self.cached,
            self.over_budget,
            self.seconds
        );
        for d in &self.decisions {
            let alts: Vec<String> = d
                .alternatives
                .iter()
                .map(|a| {
                    let mark = if a.name == d.choice { "*" } else { "" };
                    match a.seconds {
                        Some(s) => format!(
                            "{mark}{} {:.1} us{}",
                            a.name,
                            s * 1e6,
                            if a.cached { " c" } else { "" }
                        ),
                        None => format!("{mark}{} -", a.name),
                    }
                })
                .collect();
            out.push_str(&format!(
                "  {:<28} {:<15} (heuristic {:<15}) {}\n",
                d.kernel,
                d.choice,
                d.default,
                alts.join(", ")
            ));
        }
        out
    }
}

/// The device part of every cache key: the CPU model, the native kernels' instruction set
/// and the thread count.
pub fn fingerprint(isa: super::Isa, threads: usize) -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("cpu {model} / {isa:?} / {threads} threads")
}

/// The kernel's canonical text without its names (the kernel's own and its values'), so
/// the same kernel in another model or position keys the same.
fn kernel_key(k: &tessera_lower::kir::Kernel) -> u64 {
    let text = print_kernel(k);
    let body = text.split_once('\n').map_or("", |(_, rest)| rest);
    let mut norm = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        norm.push(c);
        if c == '%' {
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
        }
    }
    stable_hash(&norm)
}

impl CpuModel {
    /// The algorithm each kernel runs with (`None` for kernels that are not
    /// convolutions), in kernel order.
    pub fn conv_algos(&self) -> Vec<Option<ConvAlgo>> {
        self.kernels.iter().map(|e| e.conv).collect()
    }

    /// The algorithms kernel `i` can run with, the heuristic's first (empty for kernels
    /// that are not convolutions or out of range).
    pub fn conv_candidates(&self, i: usize) -> Vec<ConvAlgo> {
        let (Some(e), Some(locs)) = (self.kernels.get(i), self.locations.get(i)) else {
            return Vec::new();
        };
        match &e.kernel.body {
            Body::Conv(c) => {
                choice::candidates(self.isa, c, matches!(locs[c.w.index()], Location::Const(_)))
            }
            _ => Vec::new(),
        }
    }

    /// Runs kernel `i` with `algo` from now on; an error unless `algo` is one of its
    /// [candidates](CpuModel::conv_candidates).
    pub fn set_conv_algo(&mut self, i: usize, algo: ConvAlgo) -> Result<(), RuntimeError> {
        if !self.conv_candidates(i).contains(&algo) {
            let (name, nodes) = self
                .kernels
                .get(i)
                .map(|e| (e.kernel.name.clone(), e.kernel.nodes.clone()))
                .unwrap_or_else(|| (format!("kernel {i}"), Vec::new()));
            return Err(RuntimeError::Kernel {
                kernel: KernelRef::new(&self.graph, &name, &nodes),
                message: format!("cannot run as {}", algo.name()),
            });
        }
        let packed = self.packed_for(i, algo);
        let e = &mut self.kernels[i];
        e.conv = Some(algo);
        e.packed_b = packed;
        Ok(())
    }

    /// Runs kernel `i` on the calling thread alone (`true`) or on the pool; the result
    /// is the same to the bit either way. Out of range: nothing happens.
    pub fn set_serial(&mut self, i: usize, serial: bool) {
        if let Some(e) = self.kernels.get_mut(i) {
            e.serial = serial;
        }
    }

    /// Every way kernel `i` can run, the heuristic's (as compiled) first.
    pub fn ways(&self, i: usize) -> Vec<Way> {
        let convs: Vec<Option<ConvAlgo>> = match self.conv_candidates(i) {
            c if c.is_empty() => vec![None],
            c => c.into_iter().map(Some).collect(),
        };
        let serial: &[bool] = if self.threads() > 1 {
            &[false, true]
        } else {
            &[false]
        };
        serial
            .iter()
            .flat_map(|&s| convs.iter().map(move |&conv| Way { conv, serial: s }))
            .collect()
    }

    fn set_way(&mut self, i: usize, w: Way) -> Result<(), RuntimeError> {
        if let Some(a) = w.conv {
            self.set_conv_algo(i, a)?;
        }
        self.set_serial(i, w.serial);
        Ok(())
    }

    /// The packed operand kernel `i` needs to run with `algo` (transposed weights).
    fn packed_for(&self, i: usize, algo: ConvAlgo) -> Option<tessera_kernels::gemm::PackedB> {
        match algo {
            ConvAlgo::Transposed => {
                pack_transposed_weights(&self.kernels[i].kernel, &self.locations[i], &self._consts)
            }
            _ => None,
        }
    }

    /// Decides the alternatives of every kernel that has some ([module docs](self)).
    pub fn search(&mut self, opts: &SearchOptions) -> Result<SearchReport, RuntimeError> {
        let start = Instant::now();
        let fp = fingerprint(self.isa, self.threads());
        let mut report = SearchReport {
            mode: opts.mode,
            decisions: Vec::new(),
            measured: 0,
            cached: 0,
            over_budget: 0,
            seconds: 0.0,
            fingerprint: fp.clone(),
            warnings: Vec::new(),
        };
        if opts.mode == Search::Off {
            return Ok(report);
        }
        let mut cache = match &opts.cache {
            Some(p) => {
                let (c, w) = MeasurementCache::load(p);
                report.warnings.extend(w);
                c
            }
            None => MeasurementCache::in_memory(),
        };
        // Inputs for isolated runs: zeros of every graph input's type, alive until the end.
        let zeros: Vec<Tensor> = self
            .graph
            .inputs()
            .iter()
            .map(|p| {
                let ty = self.graph.ty(p.value);
                Tensor::full(ty.dtype, ty.shape.clone(), 0.0)
            })
            .collect();
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            for (k, locs) in self.locations.iter().enumerate() {
                for (pi, l) in locs.iter().enumerate() {
                    if let Location::Input(i) = *l {
                        st.ptrs[k][pi] = tensor_ptr(&zeros[i]);
                    }
                }
            }
        }
        let mut evict = Evict::new(8 << 20);
        for i in 0..self.kernels.len() {
            let ways = self.ways(i);
            if ways.len() < 2 {
                continue;
            }
            let default = ways[0];
            let base = format!("{fp} | {:016x}", kernel_key(&self.kernels[i].kernel));
            let keys: Vec<String> = ways
                .iter()
                .map(|w| format!("{base} | {}", w.name()))
                .collect();
            let known: Vec<Option<Entry>> = keys.iter().map(|k| cache.get(k)).collect();
            let times: Vec<Option<(Entry, bool)>> = if known.iter().all(Option::is_some) {
                report.cached += ways.len();
                known.into_iter().map(|e| e.map(|e| (e, true))).collect()
            } else if start.elapsed() >= opts.budget {
                report.over_budget += 1;
                known.into_iter().map(|e| e.map(|e| (e, true))).collect()
            } else {
                let t = self.time_ways(i, &ways, opts.protocol, &mut evict);
                report.measured += ways.len();
                keys.iter()
                    .zip(&t)
                    .map(|(k, t)| {
                        let e = Entry {
                            seconds: t.median,
                            spread: t.spread(),
                            runs: t.runs as u32,
                        };
                        cache.insert(k.clone(), e);
                        Some((e, false))
                    })
                    .collect()
            };
            // The fastest, if it beats the heuristic's by more than the margin.
            let mut choice = default;
            if let Some((d, _)) = times[0] {
                let best = ways
                    .iter()
                    .zip(&times)
                    .filter_map(|(&w, t)| t.map(|(e, _)| (w, e.seconds)))
                    .min_by(|x, y| x.1.total_cmp(&y.1));
                if let Some((w, s)) = best
                    && s < d.seconds * (1.0 - opts.margin)
                {
                    choice = w;
                }
            }
            if choice != default {
                self.set_way(i, choice)?;
            }
            report.decisions.push(Decision {
                kernel: self.kernels[i].kernel.name.clone(),
                choice: choice.name(),
                default: default.name(),
                alternatives: ways
                    .iter()
                    .zip(&times)
                    .map(|(w, t)| Alternative {
                        name: w.name(),
                        seconds: t.map(|(e, _)| e.seconds),
                        spread: t.map(|(e, _)| e.spread),
                        cached: t.is_some_and(|(_, c)| c),
                    })
                    .collect(),
            });
        }
        if let Err(e) = cache.save() {
            report.warnings.push(format!(
                "could not save the measurement cache {}: {e}",
                cache
                    .path()
                    .map_or(String::new(), |p| p.display().to_string())
            ));
        }
        report.seconds = start.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Times kernel `i` run each of `ways`, interleaved.
    fn time_ways(
        &self,
        i: usize,
        ways: &[Way],
        protocol: Protocol,
        evict: &mut Evict,
    ) -> Vec<Timing> {
        let e = &self.kernels[i];
        let packed: Vec<Option<tessera_kernels::gemm::PackedB>> = ways
            .iter()
            .map(|w| w.conv.and_then(|a| self.packed_for(i, a)))
            .collect();
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let ptrs = &st.ptrs[i];
        let input = match &e.kernel.body {
            Body::Conv(c) => Some((
                ptrs[c.x.index()] as *const u8,
                e.kernel.params[c.x.index()].bytes(),
            )),
            _ => None,
        };
        let status = AtomicU64::new(0);
        interleaved(
            protocol,
            ways.len(),
            &mut |_| {
                evict.run();
                if let Some((p, n)) = input {
                    // SAFETY: the parameter's buffer holds `n` bytes (arena, input or
                    // constant, bound above).
                    unsafe { touch(p, n) };
                }
            },
            &mut |j| {
                let packed = match ways[j].conv {
                    Some(_) => packed[j].as_ref(),
                    None => e.packed_b.as_ref(),
                };
                self.exec_as(e, ways[j].conv, packed, ways[j].serial, ptrs, &status)
            },
        )
    }
}
