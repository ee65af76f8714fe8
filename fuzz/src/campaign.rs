//! A fuzz campaign: generate input `i` from `(seed, i)`, run the target's checks on it
//! under `catch_unwind`, time it and measure its peak memory, and collect what failed.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message;

use crate::check::{self, Verdict};
use crate::rng::Rng;
use crate::seeds::Corpus;
use crate::{Target, alloc, bytes, onnx, text};

/// What a campaign runs.
#[derive(Clone, Debug)]
pub struct Config {
    pub target: Target,
    pub seed: u64,
    /// Index of the first exec (to resume or reproduce one input).
    pub first: u64,
    pub execs: u64,
    /// Stop early once this much time has passed.
    pub time_limit: Option<Duration>,
    /// An input running longer than this is a failure (a hang).
    pub hang_limit: Duration,
    /// An input whose peak memory exceeds this many bytes is a failure.
    pub memory_limit: usize,
}

impl Config {
    pub fn new(target: Target, seed: u64, execs: u64) -> Self {
        Config {
            target,
            seed,
            first: 0,
            execs,
            time_limit: None,
            hang_limit: Duration::from_secs(1),
            memory_limit: 256 << 20,
        }
    }
}

/// Why an input failed.
#[derive(Clone, Debug, PartialEq)]
pub enum FailureKind {
    Panic(String),
    Hang(Duration),
    /// Peak bytes allocated while the input ran.
    Memory(usize),
    /// A broken invariant of an accepted graph (see [`check`]).
    Invariant(String),
}

/// One failing input.
#[derive(Clone, Debug)]
pub struct Failure {
    pub exec: u64,
    pub kind: FailureKind,
    pub input: Vec<u8>,
}

/// What a campaign did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub execs: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub failures: Vec<Failure>,
    pub elapsed: Duration,
    /// The largest per-input peak of allocated bytes above what was live before it.
    pub peak_bytes: usize,
    /// The slowest input: its exec index and time.
    pub slowest: (u64, Duration),
}

static CURRENT: AtomicU64 = AtomicU64::new(u64::MAX);

/// The index of the exec now running (`u64::MAX` between execs), for watchdogs.
pub fn current_exec() -> u64 {
    CURRENT.load(Ordering::Relaxed)
}

thread_local! {
    /// While an input runs: the message and place of a panic, recorded by the hook.
    static PANIC: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that records panics inside an exec instead of printing
/// them, and defers to the previous hook everywhere else.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let inside = PANIC.with(|p| {
                let mut p = p.borrow_mut();
                match p.as_mut() {
                    Some(slot) => {
                        *slot = Some(format!("{info}{}", our_frames()));
                        true
                    }
                    None => false,
                }
            });
            if !inside {
                previous(info);
            }
        }));
    });
}

/// The innermost frames of the current backtrace that are tessera's own code outside
/// this crate (where a panic inside the standard library was called from), one per line.
fn our_frames() -> String {
    let bt = std::backtrace::Backtrace::force_capture().to_string();
    bt.lines()
        .map(str::trim)
        .filter(|l| {
            let harness = ["/fuzz/", "/src/campaign.rs", "/src/check.rs"];
            l.starts_with("at ./") && !harness.iter().any(|h| l.contains(h))
        })
        .take(4)
        .map(|l| format!("\n    {l}"))
        .collect()
}

/// Input `index` of the campaign seeded with `seed`.
pub fn input(corpus: &Corpus, target: Target, seed: u64, index: u64) -> Vec<u8> {
    let mut rng = Rng::for_exec(seed, index);
    match target {
        Target::Onnx => onnx_input(corpus, &mut rng),
        Target::Text => {
            let t = rng.pick(&corpus.texts).map_or("", String::as_str);
            let other = rng.pick(&corpus.texts).map_or("", String::as_str);
            text::mutate(t, other, &corpus.ops, &mut rng).into_bytes()
        }
    }
}

fn onnx_input(corpus: &Corpus, rng: &mut Rng) -> Vec<u8> {
    let max_len = 1 << 22;
    let seed = rng.pick(&corpus.onnx).cloned().unwrap_or_default();
    let other = rng.pick(&corpus.onnx).map_or(&[][..], Vec::as_slice);
    match rng.below(16) {
        0 => seed,
        1..=4 => {
            let mut data = seed;
            for _ in 0..1 + rng.below(4) {
                bytes::mutate(&mut data, other, max_len, rng);
            }
            data
        }
        _ => {
            let Some(mut m) = rng.pick(&corpus.models).cloned() else {
                return seed;
            };
            onnx::mutate_model(&mut m, &corpus.dict, rng);
            let mut data = m.encode_to_vec();
            if rng.one_in(8) {
                bytes::mutate(&mut data, other, max_len, rng);
            }
            data
        }
    }
}

/// Runs `target`'s checks on one input, catching a panic.
pub fn run_one(target: Target, data: &[u8]) -> Result<Verdict, FailureKind> {
    install_hook();
    PANIC.with(|p| *p.borrow_mut() = Some(None));
    let result = panic::catch_unwind(AssertUnwindSafe(|| match target {
        Target::Onnx => check::onnx(data),
        Target::Text => check::text(&String::from_utf8_lossy(data)),
    }));
    let message = PANIC.with(|p| p.borrow_mut().take().flatten());
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(m)) => Err(FailureKind::Invariant(m)),
        Err(_) => Err(FailureKind::Panic(
            message.unwrap_or_else(|| "panic without a message".into()),
        )),
    }
}

/// Runs a campaign. `progress` is called about once a second with the report so far.
pub fn run(config: &Config, corpus: &Corpus, progress: &mut dyn FnMut(&Report)) -> Report {
    let start = Instant::now();
    let mut last = start;
    let mut report = Report::default();
    for index in config.first..config.first.saturating_add(config.execs) {
        if config.time_limit.is_some_and(|t| start.elapsed() >= t) {
            break;
        }
        let data = input(corpus, config.target, config.seed, index);
        CURRENT.store(index, Ordering::Relaxed);
        let base = alloc::live();
        alloc::reset_peak();
        let t0 = Instant::now();
        let outcome = run_one(config.target, &data);
        let took = t0.elapsed();
        let peak = alloc::peak().saturating_sub(base);
        CURRENT.store(u64::MAX, Ordering::Relaxed);
        report.execs += 1;
        report.peak_bytes = report.peak_bytes.max(peak);
        if took > report.slowest.1 {
            report.slowest = (index, took);
        }
        let kind = match outcome {
            Err(k) => Some(k),
            Ok(_) if took > config.hang_limit => Some(FailureKind::Hang(took)),
            Ok(_) if peak > config.memory_limit => Some(FailureKind::Memory(peak)),
            Ok(Verdict::Accepted) => {
                report.accepted += 1;
                None
            }
            Ok(Verdict::Rejected) => {
                report.rejected += 1;
                None
            }
        };
        if let Some(kind) = kind {
            report.failures.push(Failure {
                exec: index,
                kind,
                input: data,
            });
        }
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            report.elapsed = start.elapsed();
            progress(&report);
        }
    }
    report.elapsed = start.elapsed();
    report
}
