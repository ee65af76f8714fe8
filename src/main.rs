//! The `tessera` command-line tool. The only place that prints or exits.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tessera::ir::{DType, Graph, Op, Tensor, text};
use tessera::sample::{Sample, compare, splitmix64_uniform};

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
    /// Run a model and write each output as an ONNX TensorProto file.
    Run {
        /// An .onnx file, or a sample directory (then its inputs are used and outputs
        /// are compared with its reference outputs).
        model: PathBuf,
        #[arg(long, default_value = "reference", value_parser = ["reference"])]
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
        #[command(flatten)]
        bind: Bind,
    },
}

#[derive(clap::Args)]
struct Bind {
    /// NAME=FILE.pb: freeze a graph input to a constant at import (for inputs that fix a
    /// shape, which must be static).
    #[arg(long = "bind", value_name = "NAME=FILE.pb")]
    bind: Vec<String>,
}

fn parse_pairs(pairs: &[String]) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for p in pairs {
        let (name, file) = p
            .split_once('=')
            .with_context(|| format!("expected NAME=FILE.pb, got {p:?}"))?;
        let (_, t) = tessera::onnx::read_tensor_file(Path::new(file))?;
        out.insert(name.to_string(), t);
    }
    Ok(out)
}

/// The model file and, for a sample directory, the sample.
fn resolve(model: &Path) -> Result<(PathBuf, Option<Sample>)> {
    if model.is_dir() {
        let s = Sample::open(model)?;
        Ok((s.model_path(), Some(s)))
    } else {
        Ok((model.to_path_buf(), None))
    }
}

fn load(model: &Path, bind: &Bind) -> Result<(Graph, Option<Sample>)> {
    let (path, sample) = resolve(model)?;
    let g = tessera::load_onnx(&path, parse_pairs(&bind.bind)?)
        .with_context(|| format!("importing {}", path.display()))?;
    Ok((g, sample))
}

fn inspect(g: &Graph) {
    println!(
        "graph {:?}: {} nodes, {} values",
        g.name,
        g.num_nodes(),
        g.num_values()
    );
    println!("inputs:");
    for p in g.inputs() {
        println!("  {:<40} {}", p.name, g.ty(p.value));
    }
    println!("outputs:");
    for p in g.outputs() {
        println!("  {:<40} {}", p.name, g.ty(p.value));
    }
    let mut hist: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut params, mut bytes) = (0usize, 0usize);
    for (_, n) in g.nodes() {
        *hist.entry(n.op.name()).or_default() += 1;
        if let Op::Constant(t) = &n.op {
            params += t.numel();
            bytes += t.numel() * t.dtype().size_bytes();
        }
    }
    let mut hist: Vec<_> = hist.into_iter().collect();
    hist.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    println!("ops:");
    for (op, n) in hist {
        println!("  {op:<20} {n}");
    }
    println!("constants: {params} elements ({bytes} bytes)");
}

fn summary(t: &Tensor) -> String {
    let mut s = t.ty().to_string();
    if t.numel() > 0 {
        let v = t.to_f64_vec();
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
                (l.min(x), h.max(x))
            });
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        s.push_str(&format!("  min {lo:.6}  mean {mean:.6}  max {hi:.6}"));
    }
    s
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn run(
    model: &Path,
    inputs: &[String],
    seed: u64,
    output_dir: Option<&Path>,
    bind: &Bind,
) -> Result<()> {
    let (g, sample) = load(model, bind)?;
    let mut given = parse_pairs(inputs)?;
    let from_sample = match &sample {
        Some(s) if given.is_empty() => Some(s.inputs()?),
        _ => None,
    };
    let mut args = Vec::new();
    for (i, p) in g.inputs().iter().enumerate() {
        let ty = g.ty(p.value);
        let t = if let Some(t) = given.remove(&p.name) {
            t
        } else if let Some(s) = &from_sample {
            s[i].clone()
        } else {
            let (lo, hi) = match ty.dtype {
                d if d.is_float() => (-1.0, 1.0),
                DType::Bool => (0.0, 1.0),
                _ => (0.0, 10.0),
            };
            eprintln!(
                "input {:?}: random {} in [{lo}, {hi}) (seed {})",
                p.name,
                ty,
                seed + i as u64
            );
            splitmix64_uniform(ty.dtype, ty.shape.clone(), seed + i as u64, lo, hi)
        };
        args.push(t);
    }
    if let Some(name) = given.keys().next() {
        bail!("--input {name:?} is not a graph input");
    }
    let start = Instant::now();
    let outs = tessera::runtime::reference::run(&g, &args)?;
    eprintln!(
        "ran {} nodes on the reference interpreter in {:.3} s",
        g.num_nodes(),
        start.elapsed().as_secs_f64()
    );
    let expected = match &sample {
        Some(s) if from_sample.is_some() => Some(s.reference_outputs()?),
        _ => None,
    };
    if let Some(dir) = output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for (k, (p, t)) in g.outputs().iter().zip(&outs).enumerate() {
        println!("{}: {}", p.name, summary(t));
        if let Some(e) = expected.as_ref().and_then(|e| e.get(k)) {
            // GraphNet's float32 tolerance at level t = -5.
            match compare(t, e, 1e-5, 1.3e-6) {
                Some(c) => println!(
                    "  vs reference: max abs {:.3e}, max rel {:.3e}, {}",
                    c.max_abs,
                    c.max_rel,
                    if c.all_close {
                        "within atol 1e-5 / rtol 1.3e-6"
                    } else {
                        "OUTSIDE atol 1e-5 / rtol 1.3e-6"
                    }
                ),
                None => println!("  vs reference: type differs ({})", e.ty()),
            }
        }
        if let Some(dir) = output_dir {
            let path = dir.join(format!("{}.pb", file_safe(&p.name)));
            std::fs::write(&path, tessera::onnx::encode_tensor(t, &p.name))
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Inspect { model, bind } => load(model, bind).map(|(g, _)| inspect(&g)),
        Command::Dump { model, elide, bind } => load(model, bind).map(|(g, _)| {
            print!(
                "{}",
                text::print(
                    &g,
                    &text::PrintOptions {
                        elide_constants: *elide
                    }
                )
            );
        }),
        Command::Run {
            model,
            backend: _,
            inputs,
            seed,
            output_dir,
            bind,
        } => run(model, inputs, *seed, output_dir.as_deref(), bind),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
