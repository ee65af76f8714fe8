//! `tessera compile`: optimize a model with a pass pipeline and emit the result.
//!
//! The emitted artifact goes to stdout (so `> out.tir` keeps it parseable); the pass table
//! goes to stderr.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use tessera::ir::text;
use tessera::passes::PassReport;
use tessera::passes::cost::DeviceProfile;

use super::common::load;
use crate::Bind;

/// What `compile` writes to stdout. Later backends add their artifacts here (kernels,
/// buffer plans, Graphviz, CUDA C).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    /// The optimized graph in the canonical text IR.
    Ir,
    /// Every kernel as a CUDA C file, its PTX (when NVRTC loads) and a launch manifest,
    /// into `--out DIR`.
    Cuda,
    /// The fused CPU kernels in the kernel IR text form.
    Kernels,
    /// The fusion plan, its data movement, and the memory plan.
    Plan,
    /// Graphviz of the fusion plan (one cluster per kernel).
    Dot,
    /// The model as one MLIR module (linalg, arith, math on tensors), verified by MLIR,
    /// into `--out DIR` as `<model>.mlir` (feature `mlir`).
    Mlir,
}

/// Options of the verb, as parsed by clap in `main.rs`.
pub struct CompileArgs<'a> {
    pub model: &'a Path,
    pub emit: Emit,
    pub pipeline: &'a str,
    pub stop_after: Option<usize>,
    pub device: Option<&'a str>,
    pub elide: bool,
    pub bind: &'a Bind,
    /// Output directory (`--emit cuda`, `--emit mlir`).
    pub out: Option<&'a Path>,
}

pub fn compile(a: &CompileArgs) -> Result<()> {
    // Rewrites are priced for the device the artifact is for: CUDA C for the H200, the
    // rest (IR, CPU kernels, plans) for the CPU, unless --device says otherwise.
    let default = if a.emit == Emit::Cuda { "h200" } else { "cpu" };
    let device = device_profile(a.device.unwrap_or(default))?;
    let (g, _) = load(a.model, a.bind)?;
    let (out, reports) = tessera::optimize(&g, a.pipeline, &device, a.stop_after)
        .with_context(|| format!("optimizing {}", a.model.display()))?;
    match a.emit {
        Emit::Ir => out!(
            "{}",
            text::print(
                &out,
                &text::PrintOptions {
                    elide_constants: a.elide
                }
            )
        )?,
        Emit::Cuda => {
            let dir = a
                .out
                .ok_or_else(|| anyhow!("--emit cuda writes files: give --out DIR"))?;
            super::cuda::emit(&out, dir)?;
        }
        Emit::Mlir => {
            let dir = a
                .out
                .ok_or_else(|| anyhow!("--emit mlir writes a file: give --out DIR"))?;
            super::mlir::emit(&out, &model_name(a.model), dir)?;
        }
        Emit::Kernels => out!("{}", super::cpu::emit(&out, super::cpu::Artifact::Kernels)?)?,
        Emit::Plan => out!("{}", super::cpu::emit(&out, super::cpu::Artifact::Plan)?)?,
        Emit::Dot => out!("{}", super::cpu::emit(&out, super::cpu::Artifact::Dot)?)?,
    }
    eprint!("{}", pass_table(&reports));
    Ok(())
}

/// A file name for the model at `path`: a sample directory's name, else the file stem.
fn model_name(path: &Path) -> String {
    let stem = if path.is_dir() {
        path.file_name()
    } else {
        path.file_stem()
    };
    stem.map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

/// The device profile named on the command line.
pub fn device_profile(name: &str) -> Result<DeviceProfile> {
    DeviceProfile::named(name).ok_or_else(|| {
        anyhow!(
            "unknown device {name:?}; known: {}",
            DeviceProfile::NAMES.join(", ")
        )
    })
}

/// Formats modeled seconds with a unit that keeps three significant digits.
pub fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.3} us", s * 1e6)
    }
}

/// One line per pass: what it changed, node counts, wall time and e-graph statistics.
pub fn pass_table(reports: &[PassReport]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<3} {:<10} {:<7} {:>13} {:>10}  details",
        "#", "pass", "changed", "nodes", "time"
    );
    for (i, r) in reports.iter().enumerate() {
        let mut details = String::new();
        if let Some(e) = &r.egraph {
            let change = if e.cost_before > 0.0 {
                format!(" ({:+.1}%)", 100.0 * (e.cost_after / e.cost_before - 1.0))
            } else {
                String::new()
            };
            let _ = write!(
                details,
                "{} iterations, {} e-nodes, {} e-classes, {}; modeled cost ({}) {} -> {}{change}",
                e.iterations,
                e.enodes,
                e.eclasses,
                e.stop_reason,
                e.cost_model,
                seconds(e.cost_before),
                seconds(e.cost_after),
            );
        }
        let line = format!(
            "{:<3} {:<10} {:<7} {:>13} {:>10}  {details}",
            i + 1,
            r.pass,
            if r.changed { "yes" } else { "no" },
            format!("{} -> {}", r.nodes_before, r.nodes_after),
            format!("{:.1} ms", r.time.as_secs_f64() * 1e3),
        );
        let _ = writeln!(t, "{}", line.trim_end());
        for n in &r.notes {
            let _ = writeln!(t, "    {n}");
        }
    }
    t
}
