//! The latency-aware search of the CPU backend: measured time decides how each kernel
//! with alternatives runs.
//!
//! [`CpuModel::search`] goes through the compiled kernels in order. For every kernel with
//! more than one way to run ([`Way`]: a convolution's algorithm and form from
//! [`super::choice::candidates`], and with more than one thread whether the kernel uses
//! the pool or the calling thread alone) it looks each alternative up in the [measurement cache](crate::cache), times the
//! alternatives in isolation when any is missing ([`crate::measure::interleaved`]: caches
//! evicted, the activations it reads touched, the pool's workers awake as after the previous
//! kernel, drift corrected against a reference), and keeps
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
use tessera_lower::kir::{Access, Body, print_kernel};
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
    /// Predicted time ([`Predictor`]: the calibrated cost model), nothing measured.
    Model,
}

/// Predicts how long kernel `kernel` of `model` takes when run the way `way` (the
/// calibrated cost model lives above the runtime, in the compiler's passes).
pub trait Predictor {
    fn predict(&self, model: &CpuModel, kernel: usize, way: Way) -> Option<f64>;
}

impl Search {
    pub fn name(self) -> &'static str {
        match self {
            Search::Off => "off",
            Search::Measure => "measure",
            Search::Model => "model",
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
    /// The margin a predicted time must beat the heuristic's by (the model's own error is
    /// larger than the measurement noise: a calibrated roofline is 20–30% off on typical
    /// kernels).
    pub model_margin: f64,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            mode: Search::Off,
            budget: Duration::from_secs(30),
            cache: None,
            protocol: Protocol::default(),
            margin: 0.05,
            model_margin: 0.3,
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
    /// Seconds the predictor gave, when there was one.
    pub predicted: Option<f64>,
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
    /// What the predictor alone would have chosen (the same rule on predicted times),
    /// when there was one.
    pub model_choice: Option<String>,
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

    /// Decisions the predictor also made, and how many of them it made the same way.
    pub fn agreement(&self) -> (usize, usize) {
        let with: Vec<&Decision> = self
            .decisions
            .iter()
            .filter(|d| d.model_choice.is_some())
            .collect();
        let same = with
            .iter()
            .filter(|d| d.model_choice.as_deref() == Some(d.choice.as_str()))
            .count();
        (same, with.len())
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
                    let measured = match a.seconds {
                        Some(s) => {
                            format!(" {:.1} us{}", s * 1e6, if a.cached { " c" } else { "" })
                        }
                        None if a.predicted.is_some() => String::new(),
                        None => " -".to_string(),
                    };
                    let predicted = a
                        .predicted
                        .map_or(String::new(), |p| format!(" (model {:.1} us)", p * 1e6));
                    format!("{mark}{}{measured}{predicted}", a.name)
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

/// The way to run among `ways` (the heuristic's first) given their times: the fastest,
/// if it beats the heuristic's by more than `margin`; the heuristic's when its time is
/// unknown.
fn pick(ways: &[Way], secs: &[Option<f64>], margin: f64) -> Way {
    let default = ways[0];
    let Some(d) = secs[0] else {
        return default;
    };
    let best = ways
        .iter()
        .zip(secs)
        .filter_map(|(&w, s)| s.map(|s| (w, s)))
        .min_by(|x, y| x.1.total_cmp(&y.1));
    match best {
        Some((w, s)) if s < d * (1.0 - margin) => w,
        _ => default,
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

    /// Runs kernel `i` the way `w` from now on ([`CpuModel::set_conv_algo`] and
    /// [`CpuModel::set_serial`]).
    pub fn set_way(&mut self, i: usize, w: Way) -> Result<(), RuntimeError> {
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

    /// Decides the alternatives of every kernel that has some (as the `search` module docs describe),
    /// without a predictor ([`Search::Model`] is then an error).
    pub fn search(&mut self, opts: &SearchOptions) -> Result<SearchReport, RuntimeError> {
        self.search_with(opts, None)
    }

    /// [`CpuModel::search`] with a predictor: [`Search::Model`] decides by its
    /// predictions alone; [`Search::Measure`] records them next to the measurements
    /// (the report's [`SearchReport::agreement`]).
    pub fn search_with(
        &mut self,
        opts: &SearchOptions,
        predictor: Option<&dyn Predictor>,
    ) -> Result<SearchReport, RuntimeError> {
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
        if opts.mode == Search::Model && predictor.is_none() {
            return Err(RuntimeError::Search(
                "the model search needs a calibrated cost model (run `tessera calibrate`)".into(),
            ));
        }
        let mut cache = match &opts.cache {
            Some(p) => {
                let (c, w) = MeasurementCache::load(p);
                report.warnings.extend(w);
                c
            }
            None => MeasurementCache::in_memory(),
        };
        let _zeros = self.bind_zero_inputs();
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
            let predicted: Vec<Option<f64>> = ways
                .iter()
                .map(|&w| predictor.and_then(|p| p.predict(self, i, w)))
                .collect();
            let model_choice = predictor.map(|_| pick(&ways, &predicted, opts.model_margin));
            let known: Vec<Option<Entry>> = keys.iter().map(|k| cache.get(k)).collect();
            let times: Vec<Option<(Entry, bool)>> = if opts.mode == Search::Model {
                vec![None; ways.len()]
            } else if known.iter().all(Option::is_some) {
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
            let choice = match (opts.mode, model_choice) {
                (Search::Model, Some(m)) => m,
                _ => {
                    let secs: Vec<Option<f64>> =
                        times.iter().map(|t| t.map(|(e, _)| e.seconds)).collect();
                    pick(&ways, &secs, opts.margin)
                }
            };
            if choice != default {
                self.set_way(i, choice)?;
            }
            report.decisions.push(Decision {
                kernel: self.kernels[i].kernel.name.clone(),
                choice: choice.name(),
                default: default.name(),
                model_choice: model_choice.map(Way::name),
                alternatives: ways
                    .iter()
                    .zip(&times)
                    .zip(&predicted)
                    .map(|((w, t), &p)| Alternative {
                        name: w.name(),
                        seconds: t.map(|(e, _)| e.seconds),
                        spread: t.map(|(e, _)| e.spread),
                        cached: t.is_some_and(|(_, c)| c),
                        predicted: p,
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

    /// Binds zeros of every graph input's type as the inputs of isolated runs; they must
    /// stay alive while kernels run on them ([`CpuModel::run`] binds its own again).
    fn bind_zero_inputs(&self) -> Vec<Tensor> {
        let zeros: Vec<Tensor> = self
            .graph
            .inputs()
            .iter()
            .map(|p| {
                let ty = self.graph.ty(p.value);
                Tensor::full(ty.dtype, ty.shape.clone(), 0.0)
            })
            .collect();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (k, locs) in self.locations.iter().enumerate() {
            for (pi, l) in locs.iter().enumerate() {
                if let Location::Input(i) = *l {
                    st.ptrs[k][pi] = tensor_ptr(&zeros[i]);
                }
            }
        }
        zeros
    }

    /// Every way of every kernel timed in isolation as the search times them (zeros as
    /// graph inputs), in kernel order: what calibration fits and held-out error is
    /// measured on.
    pub fn time_all_ways(&self, protocol: Protocol) -> Vec<Vec<(Way, Timing)>> {
        let _zeros = self.bind_zero_inputs();
        let mut evict = Evict::new(8 << 20);
        (0..self.kernels.len())
            .map(|i| {
                let ways = self.ways(i);
                let t = self.time_ways(i, &ways, protocol, &mut evict);
                ways.into_iter().zip(t).collect()
            })
            .collect()
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
        // The activations it reads (not its constants): in cache, as after their producer.
        let inputs: Vec<(*const u8, usize)> = e
            .kernel
            .params
            .iter()
            .zip(&self.locations[i])
            .enumerate()
            .filter(|(_, (p, l))| {
                p.access != Access::Write && matches!(l, Location::Arena(_) | Location::Input(_))
            })
            .map(|(pi, (p, _))| (ptrs[pi] as *const u8, p.bytes()))
            .collect();
        let status = AtomicU64::new(0);
        interleaved(
            protocol,
            ways.len(),
            &mut |_| {
                evict.run();
                for &(p, n) in &inputs {
                    // SAFETY: the parameter's buffer holds `n` bytes (arena or input,
                    // bound above).
                    unsafe { touch(p, n) };
                }
                // Inside a model the workers are still spinning from the last kernel; after
                // the eviction they would be asleep, and waking them would be charged to
                // the pool's way. An empty job wakes them first.
                if self.pool.threads() > 1 {
                    self.pool.run(self.pool.threads(), &|_| {});
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
