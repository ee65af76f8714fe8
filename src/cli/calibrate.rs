//! `tessera calibrate`: fit the cost model to this machine, write it, and (with
//! `--held-out`) report its error on the kernels of other models and how often it picks
//! what measurement picks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use tessera::Options;
use tessera::calibrate::{self, KernelSample, agreement, errors};
use tessera::passes::cost::calibrated::Calibration;
use tessera::runtime::measure::Protocol;

use super::common::{load_for, parse_pairs, parse_shapes};
use crate::Bind;

/// Options of the verb.
pub struct CalibrateArgs<'a> {
    pub threads: usize,
    pub out: Option<&'a Path>,
    pub rounds: usize,
    pub limit: f64,
    pub held_out: &'a [PathBuf],
    pub bind: &'a Bind,
    pub json: Option<&'a Path>,
}

/// The .onnx files named by `paths` (directories: the .onnx files in them, sorted).
fn models(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() && !p.join("model.onnx").exists() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "onnx"))
                .collect();
            v.sort();
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn family_table(c: &Calibration) -> String {
    let mut out = String::from(
        "family                      samples   GFLOP/s      GB/s  us/tile  us/kernel  median err  p90 err\n",
    );
    for (name, f) in &c.families {
        let k = f.coeffs;
        out.push_str(&format!(
            "{name:<28}{:>7}{:>10.1}{:>10.2}{:>9.3}{:>11.2}{:>11.1}%{:>8.1}%\n",
            f.samples,
            k.flops_per_s() / 1e9,
            k.bytes_per_s() / 1e9,
            k.s_per_tile * 1e6,
            k.fixed_s * 1e6,
            100.0 * f.median_rel_err,
            100.0 * f.p90_rel_err
        ));
    }
    out
}

fn sample_json(s: &KernelSample) -> serde_json::Value {
    serde_json::json!({
        "graph": s.graph,
        "kernel": s.kernel,
        "way": s.way.name(),
        "family": s.family,
        "flops": s.work.flops,
        "bytes": s.work.bytes,
        "tiles": s.work.tiles,
        "seconds": s.seconds,
        "predicted": s.predicted,
    })
}

pub fn calibrate(a: &CalibrateArgs) -> Result<()> {
    let protocol = Protocol {
        warmup: 1,
        rounds: a.rounds.max(1),
    };
    let run = calibrate::calibrate(
        a.threads,
        protocol,
        Duration::from_secs_f64(a.limit.max(0.0)),
    )
    .context("calibrating")?;
    let out = match a.out {
        Some(p) => p.to_path_buf(),
        None => calibrate::default_path()
            .context("no cache directory (set TESSERA_CACHE_DIR or HOME), give --out")?,
    };
    calibrate::save(&out, &run.calibration)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "calibrated on {} kernel ways of the sweep in {:.1} s ({}){}; wrote {}",
        run.samples.len(),
        run.seconds,
        run.calibration.fingerprint,
        if run.skipped > 0 {
            format!(", {} sweep graphs skipped at the time limit", run.skipped)
        } else {
            String::new()
        },
        out.display()
    );
    outln!("{}", family_table(&run.calibration))?;
    let mut held: Vec<KernelSample> = Vec::new();
    let mut per_model = Vec::new();
    for m in models(a.held_out)? {
        let options = Options {
            threads: a.threads,
            ..Options::default()
        };
        let name = m
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // `--shape` sizes the symbols each model has (a static model takes none).
        let symbols: Vec<String> =
            tessera::SymbolicModel::open(&m, parse_pairs(&a.bind.bind)?, options.clone())
                .with_context(|| format!("importing {}", m.display()))?
                .symbols()
                .into_iter()
                .map(str::to_string)
                .collect();
        let sizes = parse_shapes(&a.bind.shape)?;
        let bind = Bind {
            bind: a.bind.bind.clone(),
            shape: sizes
                .iter()
                .filter(|(k, _)| symbols.contains(k))
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        };
        let loaded = load_for(&m, &bind, &Default::default(), false, options)?;
        let (spec, _) = loaded
            .model
            .specialize(&loaded.signature)
            .with_context(|| format!("compiling {}", m.display()))?;
        let s =
            calibrate::kernel_samples(&name, spec.model().cpu(), protocol, Some(&run.calibration));
        let (e, med, p90) = errors(&s);
        let (_, cmed, cp90) = errors(&calibrate::as_compiled(&s));
        let (same, kernels) = agreement(&s, tessera::SearchOptions::default());
        per_model.push((name, e.len(), [med, p90, cmed, cp90], same, kernels));
        held.extend(s);
    }
    if !per_model.is_empty() {
        outln!(
            "held-out kernels: relative error of predicted against measured time over every \
             way and over the ways they run as compiled; how often the model picks what \
             measurement picks"
        )?;
        outln!(
            "model                       ways  median err  p90 err  compiled median  p90  agreement"
        )?;
        let row = |name: &str, n: usize, e: [f64; 4], same: usize, kernels: usize| {
            format!(
                "{name:<28}{n:>4}{:>11.1}%{:>8.1}%{:>16.1}%{:>6.1}%  {same}/{kernels}",
                100.0 * e[0],
                100.0 * e[1],
                100.0 * e[2],
                100.0 * e[3]
            )
        };
        for (name, n, e, same, kernels) in &per_model {
            outln!("{}", row(name, *n, *e, *same, *kernels))?;
        }
        let (e, med, p90) = errors(&held);
        let (_, cmed, cp90) = errors(&calibrate::as_compiled(&held));
        let (same, kernels) = agreement(&held, tessera::SearchOptions::default());
        outln!(
            "{}",
            row("all", e.len(), [med, p90, cmed, cp90], same, kernels)
        )?;
        let unpredicted = held.iter().filter(|s| s.predicted.is_none()).count();
        if unpredicted > 0 {
            outln!(
                "({unpredicted} held-out kernel ways belong to families the sweep did not cover)"
            )?;
        }
    }
    if let Some(j) = a.json {
        let v = serde_json::json!({
            "fingerprint": run.calibration.fingerprint,
            "seconds": run.seconds,
            "families": serde_json::to_value(&run.calibration.families)?,
            "sweep": run.samples.iter().map(sample_json).collect::<Vec<_>>(),
            "held_out": held.iter().map(sample_json).collect::<Vec<_>>(),
        });
        std::fs::write(j, serde_json::to_string_pretty(&v)?)
            .with_context(|| format!("writing {}", j.display()))?;
    }
    Ok(())
}
