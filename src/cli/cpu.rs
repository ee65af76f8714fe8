//! The compiled CPU backend from the command line: `compile --emit kernels|plan|dot` and
//! `run --backend eager|cpu`.

use std::fmt::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use tessera::ir::{Graph, Tensor};
use tessera::lower::fusion::Mode;
use tessera::lower::fusion::metric::data_movement;
use tessera::lower::fusion::report::{dot, print_plan};
use tessera::lower::kir::print_kernel;
use tessera::runtime::cpu::{CpuOptions, compile};

/// Which CPU artifact `compile` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Artifact {
    Kernels,
    Plan,
    Dot,
}

/// The artifact for `g` (already optimized), read off the compiled CPU model, so what is
/// printed is what runs: fused kernels in the kernel IR text form, the fusion plan with
/// its data movement and the arena's memory plan, or Graphviz of the fusion plan.
pub fn emit(g: &Graph, what: Artifact) -> Result<String> {
    let m = compile(
        g,
        &CpuOptions {
            mode: Mode::Fused,
            threads: 1,
            ..CpuOptions::default()
        },
    )
    .context("compiling for the CPU")?;
    let p = m.plan();
    Ok(match what {
        Artifact::Dot => dot(g, p),
        Artifact::Kernels => m.kernels().map(print_kernel).collect::<Vec<_>>().join("\n"),
        Artifact::Plan => {
            let mut out = print_plan(g, p);
            let dm = data_movement(g, p).context("planning the eager baseline")?;
            let _ = writeln!(
                out,
                "data movement: eager {} kernels {} bytes, fused {} kernels {} bytes ({:.1}% less)",
                dm.unfused_kernels,
                dm.unfused_bytes,
                dm.fused_kernels,
                dm.fused_bytes,
                100.0 * dm.reduction()
            );
            let names: Vec<String> = m.kernels().map(|k| k.name.clone()).collect();
            let _ = writeln!(
                out,
                "memory plan (the arena the kernels run in, per kernel step):"
            );
            out.push_str(&m.memory().print(g, &|s| names[s].clone()));
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
