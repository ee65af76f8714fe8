//! `tessera-fuzz`: runs a fuzz campaign against the ONNX importer or the text-IR parser,
//! or cuts seeds from real models.
//!
//! ```text
//! tessera-fuzz --target onnx --seed 1 --execs 10000000 --time-limit 3600
//! tessera-fuzz --target text --seed 7 --first 4711 --execs 1 --write-input /tmp/x.tir
//! tessera-fuzz cut samples/tiny_bert_cls/model.onnx --out fuzz/seeds/onnx
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use tessera_fuzz::alloc::{self, CountingAlloc};
use tessera_fuzz::campaign::{self, current_exec};
use tessera_fuzz::{Config, Corpus, FailureKind, Report, Target};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[derive(Parser)]
#[command(
    name = "tessera-fuzz",
    about = "Fuzz the ONNX importer and the text-IR parser",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[arg(long, value_enum, default_value = "onnx")]
    target: TargetArg,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Index of the first input (inputs are numbered from 0 per seed).
    #[arg(long, default_value_t = 0)]
    first: u64,
    #[arg(long, default_value_t = 100_000)]
    execs: u64,
    /// Stop after this many seconds even if fewer inputs ran.
    #[arg(long)]
    time_limit: Option<f64>,
    /// An input slower than this many seconds is a failure.
    #[arg(long, default_value_t = 1.0)]
    hang_limit: f64,
    /// An input whose allocations peak above this many MiB is a failure.
    #[arg(long, default_value_t = 256)]
    memory_limit: usize,
    /// Allocations beyond this many MiB live are refused, which ends the run.
    #[arg(long, default_value_t = 4096)]
    hard_limit: usize,
    /// An input still running after this many seconds ends the run.
    #[arg(long, default_value_t = 30)]
    watchdog: u64,
    /// ONNX seeds (`*.onnx`).
    #[arg(long, default_value = "fuzz/seeds/onnx")]
    seeds: PathBuf,
    /// Text-IR seeds (`*.tir`, searched recursively).
    #[arg(long, default_value = "tests/cases")]
    cases: PathBuf,
    /// Where failing inputs are written.
    #[arg(long, default_value = "target/fuzz-failures")]
    failures: PathBuf,
    /// Write input `--first` to this file instead of running anything.
    #[arg(long)]
    write_input: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the target's checks on input files and prints how each ended.
    Replay {
        #[arg(long, value_enum, default_value = "onnx")]
        target: TargetArg,
        inputs: Vec<PathBuf>,
    },
    /// Writes a small seed cut from each model: initializers of more than `--keep`
    /// elements become graph inputs.
    Cut {
        models: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 64)]
        keep: usize,
        /// Name each seed after the model's folder (`samples/<name>/model.onnx`).
        #[arg(long)]
        by_folder: bool,
        /// Keep only the first model (in the order given) for each set of op types.
        #[arg(long)]
        distinct_ops: bool,
        /// Skip cuts larger than this many bytes.
        #[arg(long, default_value_t = usize::MAX)]
        max_bytes: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum TargetArg {
    Onnx,
    Text,
}

impl From<TargetArg> for Target {
    fn from(t: TargetArg) -> Target {
        match t {
            TargetArg::Onnx => Target::Onnx,
            TargetArg::Text => Target::Text,
        }
    }
}

fn replay(target: Target, inputs: &[PathBuf]) -> Result<()> {
    let mut failed = 0;
    for path in inputs {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let outcome = campaign::run_one(target, &data);
        println!("{}: {outcome:?}", path.display());
        failed += usize::from(outcome.is_err());
        if target == Target::Onnx && outcome.is_ok() {
            let opts = tessera_onnx::ImportOptions {
                evaluator: Some(&tessera_reference::Reference),
                ..Default::default()
            };
            if let Err(e) = tessera_onnx::import(&data, &opts) {
                println!("  {e}");
            }
            let t0 = Instant::now();
            if let Some(g) = tessera_fuzz::check::import(&data) {
                let t1 = Instant::now();
                let _ = tessera_fuzz::check::accepted(&g);
                println!(
                    "  import {:.3} s, verify and text round trip {:.3} s",
                    (t1 - t0).as_secs_f64(),
                    t1.elapsed().as_secs_f64()
                );
            }
        }
    }
    if failed > 0 {
        bail!("{failed} failing input(s)");
    }
    Ok(())
}

static SEED: AtomicU64 = AtomicU64::new(0);

/// Called by the allocator before it refuses a request; writes without allocating.
fn on_refuse(size: usize) {
    let mut buf = [0u8; 160];
    let mut w = &mut buf[..];
    let _ = writeln!(
        w,
        "allocation of {size} bytes refused at exec {} (seed {})",
        current_exec(),
        SEED.load(Ordering::Relaxed)
    );
    let left = w.len();
    let _ = std::io::stderr().write_all(&buf[..buf.len() - left]);
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Cut {
        models,
        out,
        keep,
        by_folder,
        distinct_ops,
        max_bytes,
    }) = &cli.command
    {
        let opts = CutOptions {
            keep: *keep,
            by_folder: *by_folder,
            distinct_ops: *distinct_ops,
            max_bytes: *max_bytes,
        };
        return cut(models, out, &opts);
    }
    if let Some(Command::Replay { target, inputs }) = &cli.command {
        return replay((*target).into(), inputs);
    }
    let target = cli.target.into();
    let corpus = Corpus::load(&cli.seeds, &[cli.cases.as_path()])?;
    if let Some(path) = &cli.write_input {
        let data = campaign::input(&corpus, target, cli.seed, cli.first);
        std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
        return Ok(());
    }
    SEED.store(cli.seed, Ordering::Relaxed);
    alloc::set_limit(cli.hard_limit << 20, on_refuse);
    watchdog(Duration::from_secs(cli.watchdog), cli.seed);
    let config = Config {
        target,
        seed: cli.seed,
        first: cli.first,
        execs: cli.execs,
        time_limit: cli.time_limit.map(Duration::from_secs_f64),
        hang_limit: Duration::from_secs_f64(cli.hang_limit),
        memory_limit: cli.memory_limit << 20,
    };
    println!(
        "{} seeds ({} ONNX, {} text); target {:?}, seed {}, execs {}..{}",
        corpus.onnx.len() + corpus.texts.len(),
        corpus.onnx.len(),
        corpus.texts.len(),
        target,
        cli.seed,
        cli.first,
        cli.first.saturating_add(cli.execs)
    );
    let mut next_line = Instant::now() + Duration::from_secs(60);
    let report = campaign::run(&config, &corpus, &mut |r| {
        if Instant::now() >= next_line {
            next_line += Duration::from_secs(60);
            println!("  {}", summary(r));
        }
    });
    println!("{}", summary(&report));
    println!(
        "peak memory: {:.1} MiB allocated by one input at most; process high-water mark {}",
        report.peak_bytes as f64 / (1 << 20) as f64,
        high_water_mark().unwrap_or_else(|| "unknown".into())
    );
    if report.failures.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(&cli.failures)
        .with_context(|| format!("creating {}", cli.failures.display()))?;
    for f in &report.failures {
        let ext = if target == Target::Onnx {
            "onnx"
        } else {
            "tir"
        };
        let path = cli
            .failures
            .join(format!("{}-{}-{}.{ext}", ext, cli.seed, f.exec));
        std::fs::write(&path, &f.input)?;
        let what = match &f.kind {
            FailureKind::Panic(m) => format!("panic: {m}"),
            FailureKind::Hang(t) => format!("hang: {:.2} s", t.as_secs_f64()),
            FailureKind::Memory(b) => format!("memory: {} MiB", b >> 20),
            FailureKind::Invariant(m) => format!("invariant: {m}"),
        };
        println!("exec {} ({}): {what}", f.exec, path.display());
    }
    bail!("{} failing input(s)", report.failures.len())
}

fn summary(r: &Report) -> String {
    let secs = r.elapsed.as_secs_f64();
    format!(
        "{} execs in {:.1} s ({:.0}/s): {} accepted, {} rejected, {} failing; slowest exec {} ({:.1} ms)",
        r.execs,
        secs,
        r.execs as f64 / secs.max(1e-9),
        r.accepted,
        r.rejected,
        r.failures.len(),
        r.slowest.0,
        r.slowest.1.as_secs_f64() * 1e3
    )
}

/// The process's peak resident set (`VmHWM`), where the OS reports it.
fn high_water_mark() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.trim_start_matches("VmHWM:").trim().to_string())
}

/// Ends the process when one input runs longer than `limit`: a hang that never returns
/// would otherwise stop the campaign silently.
fn watchdog(limit: Duration, seed: u64) {
    std::thread::spawn(move || {
        let mut seen = u64::MAX;
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = current_exec();
            if now != seen {
                seen = now;
                since = Instant::now();
            } else if now != u64::MAX && since.elapsed() > limit {
                eprintln!(
                    "exec {now} has run for over {} s; reproduce with --seed {seed} --first {now} --execs 1",
                    limit.as_secs()
                );
                std::process::exit(2);
            }
        }
    });
}

struct CutOptions {
    keep: usize,
    by_folder: bool,
    distinct_ops: bool,
    max_bytes: usize,
}

fn cut(models: &[PathBuf], out: &Path, opts: &CutOptions) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let mut op_sets = std::collections::BTreeSet::new();
    let (mut written, mut bytes_written) = (0, 0);
    for path in models {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let model = tessera_onnx::decode(&bytes)?;
        if opts.distinct_ops {
            let ops: std::collections::BTreeSet<String> = model
                .graph
                .iter()
                .flat_map(|g| &g.node)
                .filter_map(|n| n.op_type.clone())
                .collect();
            if !op_sets.insert(ops) {
                continue;
            }
        }
        let seed = tessera_fuzz::seeds::cut(&model, opts.keep);
        if seed.len() > opts.max_bytes {
            continue;
        }
        let stem = if opts.by_folder {
            path.parent().and_then(Path::file_name)
        } else {
            path.file_stem()
        };
        let name = stem
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "seed".into());
        std::fs::write(out.join(format!("{name}.onnx")), &seed)?;
        written += 1;
        bytes_written += seed.len();
    }
    println!(
        "{written} seed(s), {bytes_written} bytes, in {}",
        out.display()
    );
    Ok(())
}
