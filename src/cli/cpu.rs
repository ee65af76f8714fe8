//! The compiled CPU backend from the command line: `compile --emit kernels|plan|dot` and
//! `run --backend eager|cpu`.

use std::fmt::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use tessera::codegen::build::build_kernels;
use tessera::codegen::kir::print_kernel;
use tessera::ir::{Graph, Tensor};
use tessera::passes::fusion::metric::data_movement;
use tessera::passes::fusion::report::{dot, print_plan};
use tessera::passes::fusion::{Mode, plan};
use tessera::passes::memory::{plan_memory_fused, print_memory};
use tessera::runtime::cpu::{CpuOptions, compile};

/// Which CPU artifact `compile` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Artifact {
    Kernels,
    Plan,
    Dot,
}

/// The artifact for `g` (already optimized): fused kernels in the kernel IR text form,
/// the fusion and memory plans, or Graphviz of the fusion plan.
pub fn emit(g: &Graph, what: Artifact) -> Result<String> {
    let p = plan(g, Mode::Fused).context("planning fusion")?;
    Ok(match what {
        Artifact::Dot => dot(g, &p),
        Artifact::Kernels => {
            let kernels = build_kernels(g, &p).context("building kernels")?;
            kernels
                .iter()
                .map(print_kernel)
                .collect::<Vec<_>>()
                .join("\n")
        }
        Artifact::Plan => {
            let mut out = print_plan(g, &p);
            let dm = data_movement(g, &p).context("planning the eager baseline")?;
            let _ = writeln!(
                out,
                "data movement: eager {} kernels {} bytes, fused {} kernels {} bytes ({:.1}% less)",
                dm.unfused_kernels,
                dm.unfused_bytes,
                dm.fused_kernels,
                dm.fused_bytes,
                100.0 * dm.reduction()
            );
            let _ = writeln!(out, "memory plan (stored values, per kernel step):");
            out.push_str(&print_memory(g, &plan_memory_fused(g, &p)));
            let m = compile(
                g,
                &CpuOptions {
                    mode: Mode::Fused,
                    threads: 1,
                },
            )?;
            let a = m.memory();
            let _ = writeln!(
                out,
                "compiled arena (with scratch buffers): peak {} bytes, liveness lower bound {} bytes, {} in place",
                a.peak_bytes, a.lower_bound_bytes, a.in_place
            );
            out
        }
    })
}

/// Compiles `g` for the CPU (`eager`: no passes, one kernel per node) and runs it once.
pub fn run(g: &Graph, args: &[Tensor], eager: bool) -> Result<Vec<Tensor>> {
    let opts = if eager {
        tessera::Options::eager()
    } else {
        tessera::Options::default()
    };
    let start = Instant::now();
    let m = tessera::compile(g, opts)?;
    eprintln!(
        "compiled {} kernels in {:.3} s ({} threads)",
        m.kernels().count(),
        start.elapsed().as_secs_f64(),
        m.threads()
    );
    Ok(m.run(args)?)
}
