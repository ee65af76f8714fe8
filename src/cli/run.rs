//! `tessera run`: execute a model, write and check its outputs.
//!
//! The default backend is the compiled CPU backend: the verb reports compile time, run
//! time and the speedup over the eager baseline, and compares the outputs with the
//! reference interpreter (and with a sample's stored outputs).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use tessera::Cache;
use tessera::ir::Tensor;
use tessera::sample::compare;

use super::common::{Loaded, graph_inputs, load_for, parse_pairs};
use crate::{Bind, SearchArgs};

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

/// Options of `tessera run`.
pub struct RunArgs<'a> {
    pub model: &'a Path,
    /// `cpu` (compiled), `eager`, `reference`, `cuda` or `mlir`.
    pub backend: &'a str,
    pub inputs: &'a [String],
    pub seed: u64,
    pub output_dir: Option<&'a Path>,
    /// Run the reference interpreter or the eager backend on the optimized graph.
    pub optimize: bool,
    /// Compare with the reference interpreter (backends other than `reference`).
    pub check: bool,
    /// The latency search of the compiled side (`cpu`).
    pub search: &'a SearchArgs,
    /// Timed runs of the compiled model and of its eager baseline (`cpu`).
    pub runs: usize,
    pub bind: &'a Bind,
}

/// Median of `xs` (not empty).
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The compiled CPU backend: compile (default pipeline, CPU profile) at the model's shape
/// signature, run, and time it against its eager baseline, interleaved.
fn compiled(l: &Loaded, args: &[Tensor], runs: usize) -> Result<Vec<Tensor>> {
    let g = &l.graph;
    let (spec, cache) = l.model.specialize(&l.signature)?;
    let m = spec.model();
    let compile_s = spec.compile_time().as_secs_f64();
    super::common::print_search(m.search());
    if !l.signature.is_static() {
        eprintln!(
            "specialized for {}: {}",
            l.signature,
            match cache {
                Cache::Compiled => "new shape signature, compiled",
                Cache::Hit => "compiled before, cached",
            }
        );
    }
    let start = Instant::now();
    let eager = tessera::compile(g, tessera::Options::eager())?;
    let eager_s = start.elapsed().as_secs_f64();
    eprintln!(
        "compiled {} nodes into {} kernels in {compile_s:.3} s ({} threads; eager: {} kernels, {eager_s:.3} s)",
        g.num_nodes(),
        m.kernels().count(),
        m.threads(),
        eager.kernels().count(),
    );
    let outs = m.run(args)?;
    eager.run(args)?;
    let (mut tc, mut te) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        m.run(args)?;
        tc.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        eager.run(args)?;
        te.push(t.elapsed().as_secs_f64());
    }
    let (c, e) = (median(tc), median(te));
    eprintln!(
        "ran in {:.3} ms, eager {:.3} ms (medians of {} interleaved runs): {:.2}x over eager",
        c * 1e3,
        e * 1e3,
        runs.max(1),
        e / c.max(1e-12)
    );
    Ok(outs)
}

/// One comparison line: max differences and GraphNet's float32 tolerance at t = -5.
fn comparison(what: &str, got: &Tensor, want: &Tensor) -> String {
    match compare(got, want, 1e-5, 1.3e-6) {
        Some(c) => format!(
            "  vs {what}: max abs {:.3e}, max rel {:.3e}, {}",
            c.max_abs,
            c.max_rel,
            if c.all_close {
                "within atol 1e-5 / rtol 1.3e-6"
            } else {
                "OUTSIDE atol 1e-5 / rtol 1.3e-6"
            }
        ),
        None => format!("  vs {what}: type differs ({})", want.ty()),
    }
}

pub fn run(a: &RunArgs) -> Result<()> {
    let given = parse_pairs(a.inputs)?;
    let options = tessera::Options {
        search: a.search.options()?,
        calibration: a.search.calibration()?,
        ..tessera::Options::default()
    };
    let loaded = load_for(a.model, a.bind, &given, true, options)?;
    let (g, sample) = (&loaded.graph, loaded.sample.as_ref());
    let from_sample = loaded.sample_inputs.is_some();
    let args = graph_inputs(
        g,
        given,
        loaded.sample_inputs.as_ref(),
        &loaded.signature,
        a.seed,
        true,
    )?;
    let run_g = if a.optimize && matches!(a.backend, "reference" | "eager") {
        let cpu = tessera::passes::cost::DeviceProfile::cpu_epyc_2core();
        let (out, reports) = tessera::optimize(g, "default", &cpu, None)
            .with_context(|| format!("optimizing {}", a.model.display()))?;
        eprint!("{}", super::compile::pass_table(&reports));
        out
    } else {
        g.clone()
    };
    let start = Instant::now();
    let outs = match a.backend {
        "cpu" => compiled(&loaded, &args, a.runs)?,
        "cuda" => super::cuda::run(g, &args)?,
        "mlir" => super::mlir::run(g, &args, a.runs)?,
        "eager" => super::cpu::run(&run_g, &args, true)?,
        _ => {
            let outs = tessera::reference::run(&run_g, &args)?;
            eprintln!(
                "ran {} nodes on the reference interpreter in {:.3} s",
                run_g.num_nodes(),
                start.elapsed().as_secs_f64()
            );
            outs
        }
    };
    if outs.len() != g.outputs().len() {
        bail!(
            "the {} backend returned {} outputs for {} graph outputs",
            a.backend,
            outs.len(),
            g.outputs().len()
        );
    }
    let reference = if a.check && a.backend != "reference" {
        let start = Instant::now();
        let r = tessera::reference::run(g, &args).context("running the reference interpreter")?;
        eprintln!(
            "reference interpreter: {:.3} s",
            start.elapsed().as_secs_f64()
        );
        Some(r)
    } else {
        None
    };
    let expected = match sample {
        Some(s) if from_sample => Some(s.reference_outputs()?),
        _ => None,
    };
    if let Some(dir) = a.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for (k, (p, t)) in g.outputs().iter().zip(&outs).enumerate() {
        outln!("{}: {}", p.name, summary(t))?;
        if let Some(r) = reference.as_ref().and_then(|r| r.get(k)) {
            outln!("{}", comparison("reference interpreter", t, r))?;
        }
        if let Some(e) = expected.as_ref().and_then(|e| e.get(k)) {
            outln!("{}", comparison("sample outputs", t, e))?;
        }
        if let Some(dir) = a.output_dir {
            let path = dir.join(format!("{}.pb", file_safe(&p.name)));
            std::fs::write(&path, tessera::onnx::encode_tensor(t, &p.name))
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}
