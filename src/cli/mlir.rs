//! The MLIR parts of the CLI (feature `mlir`): `compile --emit mlir --out DIR` and
//! `run --backend mlir`.

use std::path::Path;

use anyhow::Result;
use tessera::ir::{Graph, Tensor};

/// Writes `g` (already optimized) as one module verified by MLIR, `DIR/<name>.mlir`. A
/// module MLIR rejects (an emitter bug) goes to `DIR/<name>.invalid.mlir`, next to the
/// error.
#[cfg(feature = "mlir")]
pub fn emit(g: &Graph, name: &str, dir: &Path) -> Result<()> {
    use anyhow::Context;
    let m = tessera::mlir::emit(g, tessera::lower::fusion::Mode::Fused)?.code;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let verified = tessera::mlir::jit::verify(&m);
    let file = match verified {
        Ok(()) => format!("{name}.mlir"),
        Err(_) => format!("{name}.invalid.mlir"),
    };
    let path = dir.join(file);
    std::fs::write(&path, &m.text).with_context(|| format!("writing {}", path.display()))?;
    verified.with_context(|| format!("the module is in {}", path.display()))?;
    eprintln!(
        "wrote {} ({} kernels, verified by MLIR)",
        path.display(),
        m.kernels
    );
    Ok(())
}

#[cfg(not(feature = "mlir"))]
pub fn emit(_: &Graph, _: &str, _: &Path) -> Result<()> {
    anyhow::bail!(NO_MLIR)
}

/// Compiles `g` with MLIR (default pipeline, CPU profile), runs it, and times it against
/// the compiled CPU backend (medians of `runs` interleaved runs).
#[cfg(feature = "mlir")]
pub fn run(g: &Graph, args: &[Tensor], runs: usize) -> Result<Vec<Tensor>> {
    use std::time::Instant;
    let cpu = tessera::passes::cost::DeviceProfile::cpu_epyc_2core();
    let start = Instant::now();
    let m = tessera::compile_mlir(g, "default", &cpu)?;
    let mlir_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let c = tessera::compile(g, tessera::Options::default())?;
    let cpu_s = start.elapsed().as_secs_f64();
    eprintln!(
        "compiled {} kernels with MLIR in {mlir_s:.3} s (cpu backend: {} kernels, {cpu_s:.3} s)",
        m.module.kernels,
        c.kernels().count()
    );
    let outs = m.run(args)?;
    c.run(args)?;
    let (mut tm, mut tc) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        m.run(args)?;
        tm.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        c.run(args)?;
        tc.push(t.elapsed().as_secs_f64());
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (median(tm), median(tc));
    eprintln!(
        "ran in {:.3} ms, cpu backend {:.3} ms (medians of {} interleaved runs): {:.2}x the cpu backend's time",
        a * 1e3,
        b * 1e3,
        runs.max(1),
        a / b.max(1e-12)
    );
    Ok(outs)
}

#[cfg(not(feature = "mlir"))]
pub fn run(_: &Graph, _: &[Tensor], _: usize) -> Result<Vec<Tensor>> {
    anyhow::bail!(NO_MLIR)
}

#[cfg(not(feature = "mlir"))]
const NO_MLIR: &str = "this tessera was built without the MLIR backend; install LLVM/MLIR 22 (README, \"MLIR backend\") and rebuild with `cargo build --release --features mlir`";
