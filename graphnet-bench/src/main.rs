//! `graphnet-bench`: command-line shell over the `tessera_graphnet_bench` library.
//!
//! Only this file prints or exits. Subcommands: `run` (measure samples natively with
//! GraphNet's protocol), `score-log` (GraphNet logs), `score` (per-sample result
//! directories), `merge` (combine result directories) and `shard` (print one shard of a
//! sample list).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use tessera_graphnet_bench::native::{Progress, Protocol, RunConfig, Variant, run_all};
use tessera_graphnet_bench::{
    Interpretation, NoisyPolicy, ResultSet, ScoreConfig, ScoreReport, Shard, merge_results,
    read_name_list, report_json_line, report_table, sets_from_dirs, sets_from_logs, write_svg,
};

#[derive(Parser)]
#[command(
    name = "graphnet-bench",
    version,
    about = "GraphNet S(t)/ES(t) scoring for tessera"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run samples with GraphNet's protocol on a tessera backend and write one JSON result
    /// per sample (an interrupted run resumes: existing results are kept).
    Run {
        /// Directory of samples (any depth; a sample is a folder with meta.json).
        #[arg(long)]
        samples: PathBuf,
        /// The compiled variant: a tessera backend (reference, eager, cpu, cuda) or a JSON
        /// file of measurements taken elsewhere (graphnet-bench/scripts/torch_baseline.py).
        #[arg(long)]
        backend: String,
        /// The eager variant, likewise (default: tessera's eager backend).
        #[arg(long, default_value = "eager")]
        baseline: String,
        /// Result directory (default `results/<label>`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Result-set label (default: the compiled variant's label).
        #[arg(long)]
        label: Option<String>,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value_t = 5)]
        trials: usize,
        /// Extra measurement rounds while IQR/median > 0.2, before `noisy`.
        #[arg(long, default_value_t = 3)]
        max_remeasure: usize,
        /// `i/n`: run only sample k of the sorted list when k mod n = i.
        #[arg(long)]
        shard: Option<Shard>,
        /// Print each result record as one JSON line (no progress bar).
        #[arg(long)]
        json: bool,
    },
    /// Score GraphNet benchmark logs (one curve per log file), reproducing GraphNet's numbers.
    ScoreLog {
        /// GraphNet `test_compiler` log files.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        #[command(flatten)]
        opts: ScoreOpts,
    },
    /// Score per-sample result directories (one curve per compiler/backend label).
    Score {
        /// Directories of per-sample JSON result files.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[command(flatten)]
        opts: ScoreOpts,
    },
    /// Merge result directories into one (errors on conflicting duplicates).
    Merge {
        /// Output directory (created if missing; its existing records take part).
        #[arg(short, long)]
        out: PathBuf,
        /// Input result directories.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Print the sample names of one shard of a newline-separated list.
    Shard {
        /// `i/n`: sample k of the sorted list belongs to shard k mod n.
        #[arg(long)]
        shard: Shard,
        /// File with one sample name per line (`#` comments and blank lines skipped).
        list: PathBuf,
    },
}

#[derive(Args)]
struct ScoreOpts {
    /// Slowdown penalty exponent p (GraphNet code default 0; its paper uses 0.1).
    #[arg(long = "p", default_value_t = 0.0)]
    p: f64,
    /// Score of a failed sample, b (GraphNet `--fpdb`).
    #[arg(long = "b", default_value_t = 0.1)]
    b: f64,
    /// ES(t) error-tolerance interpretation: default or mismatch_extended.
    #[arg(long, default_value_t = Interpretation::Default)]
    interpretation: Interpretation,
    /// How noisy samples are scored: keep (by their bits and speedup) or fail (as runtime).
    #[arg(long, default_value_t = NoisyPolicy::Keep)]
    noisy: NoisyPolicy,
    /// Print one JSON object per result set (one per line) instead of tables.
    #[arg(long)]
    json: bool,
    /// Also write an SVG plot of S(t) and ES(t) to this file.
    #[arg(long)]
    svg: Option<PathBuf>,
}

impl ScoreOpts {
    fn config(&self) -> ScoreConfig {
        ScoreConfig {
            p: self.p,
            b: self.b,
            interpretation: self.interpretation,
            noisy: self.noisy,
        }
    }
}

fn emit(sets: &[ResultSet], opts: &ScoreOpts, title: &str) -> Result<()> {
    let config = opts.config();
    let reports = sets
        .iter()
        .map(|s| s.score(&config))
        .collect::<tessera_graphnet_bench::Result<Vec<ScoreReport>>>()?;
    for (i, (set, report)) in sets.iter().zip(&reports).enumerate() {
        if opts.json {
            println!("{}", report_json_line(report, set.log.as_deref()));
        } else {
            if i > 0 {
                println!();
            }
            print!("{}", report_table(report));
        }
    }
    if let Some(path) = &opts.svg {
        write_svg(path, &reports, title).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn native_run(cfg: RunConfig, json: bool) -> Result<()> {
    use std::io::IsTerminal;
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} samples, ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let total = run_all(&cfg, &mut |i, n, p| {
        if let Some(b) = &bar {
            b.set_length(n as u64);
            b.set_position(i as u64 + 1);
        }
        match p {
            Progress::Resumed { name } => {
                *counts.entry("resumed".into()).or_default() += 1;
                if let Some(b) = &bar {
                    b.set_message(format!("{name}: kept"));
                }
            }
            Progress::Done { name, result, .. } => {
                *counts.entry(result.status.to_string()).or_default() += 1;
                if json {
                    println!("{}", serde_json::to_string(&*result).unwrap_or_default());
                } else if let Some(b) = &bar {
                    b.set_message(format!("{name}: {}", result.status));
                } else {
                    let speed = result
                        .speedup
                        .map(|s| format!(" speedup {s:.3}"))
                        .unwrap_or_default();
                    eprintln!("[{}/{n}] {name}: {}{speed}", i + 1, result.status);
                }
            }
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if !json {
        eprintln!("{total} sample(s) in {}: {counts:?}", cfg.out.display());
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run {
            samples,
            backend,
            baseline,
            out,
            label,
            warmup,
            trials,
            max_remeasure,
            shard,
            json,
        } => {
            let compiled = Variant::parse(&backend)?;
            let baseline = Variant::parse(&baseline)?;
            let label = label.unwrap_or_else(|| compiled.label());
            let cfg = RunConfig {
                samples,
                out: out.unwrap_or_else(|| PathBuf::from("results").join(&label)),
                compiled,
                baseline,
                protocol: Protocol {
                    warmup,
                    trials,
                    max_remeasure,
                },
                label,
                shard,
            };
            native_run(cfg, json)
        }
        Command::ScoreLog { logs, opts } => {
            let sets = sets_from_logs(&logs)?;
            emit(&sets, &opts, "GraphNet S(t) / ES(t)")
        }
        Command::Score { dirs, opts } => {
            let sets = sets_from_dirs(&dirs)?;
            anyhow::ensure!(!sets.is_empty(), "no result files found");
            emit(&sets, &opts, "tessera S(t) / ES(t)")
        }
        Command::Merge { out, inputs } => {
            let n = merge_results(&out, &inputs)?;
            eprintln!("{n} records in {}", out.display());
            Ok(())
        }
        Command::Shard { shard, list } => {
            let names = read_name_list(&list)?;
            for name in shard.select(&names) {
                println!("{name}");
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", tessera::error_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
