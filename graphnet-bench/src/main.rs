//! `graphnet-bench`: command-line shell over the `tessera_graphnet_bench` library.
//!
//! Only this file prints or exits. Subcommands: `score-log` (GraphNet logs), `score`
//! (per-sample result directories), `merge` (combine result directories) and `shard`
//! (print one shard of a sample list).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
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

fn run(cli: Cli) -> Result<()> {
    match cli.command {
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
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
