//! The `tessera` command-line tool. The only place that prints or exits.
#![allow(clippy::print_stdout, clippy::print_stderr)]

/// `print!` to stdout that returns the write's `io::Result` instead of panicking, so a
/// closed pipe (`tessera dump m.onnx | head`) ends the program quietly (see `main`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `println!` counterpart of `out!`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera::ir::text;

use cli::common::load;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Tensor compiler and graph optimizer: ONNX in, fused kernels out."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Op histogram, inputs and outputs with shapes, parameter count.
    Inspect {
        /// An .onnx file, or a sample directory holding model.onnx.
        model: PathBuf,
        #[command(flatten)]
        bind: Bind,
    },
    /// Print the canonical text IR of a model.
    Dump {
        model: PathBuf,
        /// Show large constants by fingerprint instead of their data.
        #[arg(long)]
        elide: bool,
        #[command(flatten)]
        bind: Bind,
    },
    /// Optimize a model with a pass pipeline; print the result (stdout) and a pass table
    /// (stderr).
    Compile {
        model: PathBuf,
        /// What to print.
        #[arg(long, value_enum, default_value = "ir")]
        emit: cli::compile::Emit,
        /// The pass pipeline (`default` = dce, egraph, dce; `none`).
        #[arg(long, default_value = "default")]
        pipeline: String,
        /// Run only the first N passes of the pipeline (to bisect a bad rewrite).
        #[arg(long, value_name = "N")]
        stop_after: Option<usize>,
        /// Device profile the e-graph cost model prices kernels for (`cpu`, `h200`);
        /// default: `h200` for `--emit cuda`, `cpu` otherwise.
        #[arg(long)]
        device: Option<String>,
        /// Show large constants by fingerprint instead of their data.
        #[arg(long)]
        elide: bool,
        /// Directory for `--emit cuda` (kernels, PTX, manifest.json) and `--emit mlir`
        /// (`<model>.mlir`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[command(flatten)]
        bind: Bind,
    },
    /// Run a model and write each output as an ONNX TensorProto file.
    Run {
        /// An .onnx file, or a sample directory (then its inputs are used and outputs
        /// are compared with its reference outputs).
        model: PathBuf,
        /// `cpu`: compiled (default pipeline, fused kernels), timed against its eager
        /// baseline; `eager`: one kernel per node; `reference`: the interpreter; `cuda`;
        /// `mlir`: the MLIR backend (feature `mlir`), timed against `cpu`.
        #[arg(long, default_value = "cpu", value_parser = ["cpu", "eager", "reference", "cuda", "mlir"])]
        backend: String,
        /// NAME=FILE.pb: the value of a graph input (others are random, by --seed).
        #[arg(long = "input", value_name = "NAME=FILE.pb")]
        inputs: Vec<String>,
        /// Seed for inputs that are not given.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write `<output name>.pb` files here.
        #[arg(long)]
        output_dir: Option<PathBuf>,
        /// Run the reference or eager backend on the graph after the `default` pass
        /// pipeline (the compiled backends always run it).
        #[arg(long)]
        optimize: bool,
        /// Do not compare the outputs with the reference interpreter.
        #[arg(long)]
        no_check: bool,
        /// Timed runs of the compiled model and its eager baseline (`--backend cpu`).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[command(flatten)]
        bind: Bind,
        #[command(flatten)]
        search: SearchArgs,
    },
    /// Build the training graph; plan checkpointing, the B/W split and pipeline schedules.
    TrainPlan(cli::train_plan::Args),
    /// Fit the cost model to this machine: time a sweep of kernels of every family in
    /// every way, fit `max(flops/a, bytes/b) + c·tiles + d` per family, write it (what
    /// `--search model` predicts with); with --held-out, its error on other models.
    Calibrate {
        /// Threads, the caller's included (the calibration is per thread count).
        #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
        threads: usize,
        /// Where to write it (default: calibration.json beside the measurement cache).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Timed rounds per kernel way.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Seconds after which the remaining sweep graphs are skipped.
        #[arg(long, default_value_t = 100.0, value_name = "SECONDS")]
        limit: f64,
        /// .onnx files or directories of them whose kernels measure the model's error.
        #[arg(long = "held-out", value_name = "PATH")]
        held_out: Vec<PathBuf>,
        /// Write every sample and prediction as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        #[command(flatten)]
        bind: Bind,
    },
    /// Time the compiled CPU backend against its eager mode (interleaved runs, medians).
    Bench {
        /// An .onnx file, or a sample directory (then its inputs are used).
        model: PathBuf,
        /// Threads, the caller's included.
        #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
        threads: usize,
        /// Timed runs of each mode.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Untimed runs of each mode first.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Print one JSON object: eager_ms, compiled_ms, speedup, compile_s, threads, ...
        #[arg(long)]
        json: bool,
        /// Seed for random inputs (models that are not sample directories).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// NAME=FILE.pb: the value of a graph input (others are random, by --seed).
        #[arg(long = "input", value_name = "NAME=FILE.pb")]
        inputs: Vec<String>,
        /// Pass pipeline of the compiled side (`default`, `none`); eager runs none.
        #[arg(long, default_value = "default")]
        pipeline: String,
        /// Also print the N compiled kernels taking the most time (stderr).
        #[arg(long, default_value_t = 0, value_name = "N")]
        profile: usize,
        #[command(flatten)]
        bind: Bind,
        #[command(flatten)]
        search: SearchArgs,
        /// Also compile with `--search off`, `model` (when a calibration is there) and
        /// `measure`, and time the three side by side, interleaved run by run.
        #[arg(long)]
        compare_search: bool,
    },
}

/// The latency search of the compiled CPU side (`run --backend cpu`, `bench`).
#[derive(clap::Args)]
pub struct SearchArgs {
    /// What decides how each kernel runs (convolution algorithm; with threads, pool or
    /// calling thread): `off`, the built-in heuristics; `model`, the calibrated cost model
    /// (`tessera calibrate`); `measure`, measured time (alternatives timed in isolation,
    /// kept in the measurement cache).
    #[arg(long, value_enum, default_value = "off")]
    pub search: SearchMode,
    /// The calibration `--search model` predicts with (default: calibration.json beside
    /// the measurement cache); `--search measure` also records its predictions when the
    /// file is there.
    #[arg(long, value_name = "FILE")]
    pub calibration: Option<PathBuf>,
    /// Seconds the search may spend measuring; kernels reached later keep the heuristic's
    /// choice unless the cache knows them.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub budget: f64,
    /// The measurement cache file (default: measurements.json under $TESSERA_CACHE_DIR,
    /// $XDG_CACHE_HOME/tessera or ~/.cache/tessera).
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SearchMode {
    Off,
    Model,
    Measure,
}

impl SearchArgs {
    /// The calibration to predict with: required by `model`, used by `measure` when
    /// present (an unusable file is then a warning), not read by `off`.
    pub fn calibration(
        &self,
    ) -> anyhow::Result<Option<tessera::passes::cost::calibrated::Calibration>> {
        let path = self
            .calibration
            .clone()
            .or_else(tessera::calibrate::default_path);
        match (self.search, path) {
            (SearchMode::Off, _) => Ok(None),
            (SearchMode::Model, None) => {
                anyhow::bail!(
                    "--search model: no cache directory for the calibration, give --calibration FILE"
                )
            }
            (SearchMode::Model, Some(p)) => tessera::calibrate::load(&p)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("--search model: {e} (run `tessera calibrate`)")),
            (SearchMode::Measure, Some(p)) if p.exists() => match tessera::calibrate::load(&p) {
                Ok(c) => Ok(Some(c)),
                Err(e) => {
                    eprintln!("warning: {e}; measuring without predictions");
                    Ok(None)
                }
            },
            (SearchMode::Measure, _) => Ok(None),
        }
    }

    /// The library's search options.
    pub fn options(&self) -> anyhow::Result<tessera::SearchOptions> {
        if !(self.budget.is_finite() && self.budget >= 0.0) {
            anyhow::bail!("--budget must be a number of seconds, got {}", self.budget);
        }
        Ok(tessera::SearchOptions {
            mode: match self.search {
                SearchMode::Off => tessera::Search::Off,
                SearchMode::Model => tessera::Search::Model,
                SearchMode::Measure => tessera::Search::Measure,
            },
            budget: std::time::Duration::from_secs_f64(self.budget),
            cache: self
                .cache
                .clone()
                .or_else(tessera::runtime::cache::default_path),
            ..tessera::SearchOptions::default()
        })
    }
}

#[derive(clap::Args)]
pub struct Bind {
    /// NAME=FILE.pb: freeze a graph input to a constant at import (for inputs that fix a
    /// shape, which must be static).
    #[arg(long = "bind", value_name = "NAME=FILE.pb")]
    pub bind: Vec<String>,
    /// SYMBOL=SIZE[,SYMBOL=SIZE...]: sizes of symbolic input dimensions (`dim_param`
    /// names; `INPUT.AXIS` for unnamed ones). Symbols not given take the sizes of the
    /// input values (--input, a sample's inputs); the model is specialized to them.
    #[arg(long = "shape", value_name = "SYMBOL=SIZE,...")]
    pub shape: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Inspect { model, bind } => {
            load(model, bind).and_then(|(g, _)| cli::inspect::inspect(&g))
        }
        Command::Dump { model, elide, bind } => load(model, bind).and_then(|(g, _)| {
            out!(
                "{}",
                text::print(
                    &g,
                    &text::PrintOptions {
                        elide_constants: *elide
                    }
                )
            )?;
            Ok(())
        }),
        Command::Compile {
            model,
            emit,
            pipeline,
            stop_after,
            device,
            elide,
            out,
            bind,
        } => cli::compile::compile(&cli::compile::CompileArgs {
            model,
            emit: *emit,
            pipeline,
            stop_after: *stop_after,
            device: device.as_deref(),
            elide: *elide,
            bind,
            out: out.as_deref(),
        }),
        Command::Run {
            model,
            backend,
            inputs,
            seed,
            output_dir,
            optimize,
            no_check,
            runs,
            bind,
            search,
        } => cli::run::run(&cli::run::RunArgs {
            search,
            model,
            backend,
            inputs,
            seed: *seed,
            output_dir: output_dir.as_deref(),
            optimize: *optimize,
            check: !*no_check,
            runs: *runs,
            bind,
        }),
        Command::TrainPlan(args) => cli::train_plan::run(args),
        Command::Calibrate {
            threads,
            out,
            rounds,
            limit,
            held_out,
            json,
            bind,
        } => cli::calibrate::calibrate(&cli::calibrate::CalibrateArgs {
            threads: *threads,
            out: out.as_deref(),
            rounds: *rounds,
            limit: *limit,
            held_out,
            bind,
            json: json.as_deref(),
        }),
        Command::Bench {
            model,
            threads,
            runs,
            warmup,
            json,
            seed,
            inputs,
            pipeline,
            profile,
            bind,
            search,
            compare_search,
        } => cli::bench::bench(&cli::bench::BenchArgs {
            search,
            compare_search: *compare_search,
            inputs,
            model,
            threads: *threads,
            runs: *runs,
            warmup: *warmup,
            json: *json,
            seed: *seed,
            pipeline,
            profile: *profile,
            bind,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): nothing more to say, and nobody to say it to.
        Err(e) if tessera::is_broken_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", tessera::error_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
