//! `tessera bench`: the compiled CPU backend against its own eager mode, side by side in
//! one process. Runs alternate between the two (the order flips every round), after
//! warm-up runs; medians are reported, and so is the achieved bandwidth of the
//! compiled model's largest memory-bound kernel against a measured copy bandwidth.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use tessera::ir::Tensor;
use tessera::lower::fusion::analyze::GroupKind;
use tessera::{CompiledModel, Options};

use super::common::{graph_inputs, load_for, parse_pairs};
use crate::{Bind, SearchArgs};

/// Options of the verb.
pub struct BenchArgs<'a> {
    pub model: &'a Path,
    pub threads: usize,
    pub runs: usize,
    pub warmup: usize,
    pub json: bool,
    pub seed: u64,
    /// `NAME=FILE.pb` values of graph inputs (others: the sample's, or random by `seed`).
    pub inputs: &'a [String],
    /// The pass pipeline of the compiled side (the eager side runs none).
    pub pipeline: &'a str,
    /// Print the compiled kernels taking the most time.
    pub profile: usize,
    pub bind: &'a Bind,
    /// The latency search of the compiled side.
    pub search: &'a SearchArgs,
    /// Time `--search off`, `model` and `measure` side by side too.
    pub compare_search: bool,
}

/// The compiled model under each search mode (`model` only with a calibration), timed
/// interleaved run by run (the order rotates), medians in seconds.
fn compare_search(
    a: &BenchArgs,
    g: &tessera::ir::Graph,
    inputs: &[Tensor],
) -> Result<Vec<(String, f64, f64)>> {
    let base = a.search.options()?;
    let calibration = SearchArgs {
        search: crate::SearchMode::Model,
        calibration: a.search.calibration.clone(),
        budget: a.search.budget,
        cache: None,
    }
    .calibration()
    .ok()
    .flatten();
    let mut sides = Vec::new();
    for mode in [
        tessera::Search::Off,
        tessera::Search::Model,
        tessera::Search::Measure,
    ] {
        if mode == tessera::Search::Model && calibration.is_none() {
            continue;
        }
        let start = Instant::now();
        let m = tessera::compile(
            g,
            Options {
                threads: a.threads,
                pipeline: a.pipeline.to_string(),
                search: tessera::SearchOptions {
                    mode,
                    ..base.clone()
                },
                // The pipeline sees the calibration only where the search uses it.
                calibration: if mode == tessera::Search::Off {
                    None
                } else {
                    calibration.clone()
                },
                ..Options::default()
            },
        )
        .with_context(|| format!("compiling with --search {}", mode.name()))?;
        sides.push((mode.name().to_string(), start.elapsed().as_secs_f64(), m));
    }
    for _ in 0..a.warmup {
        for (_, _, m) in &sides {
            time_run(m, inputs)?;
        }
    }
    let mut times = vec![Vec::new(); sides.len()];
    for i in 0..a.runs {
        for j in 0..sides.len() {
            let k = (i + j) % sides.len();
            times[k].push(time_run(&sides[k].2, inputs)?);
        }
    }
    Ok(sides
        .iter()
        .zip(times.iter_mut())
        .map(|((name, compile_s, _), t)| (name.clone(), median(t), *compile_s))
        .collect())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn time_run(m: &CompiledModel, inputs: &[Tensor]) -> Result<f64> {
    let start = Instant::now();
    m.run(inputs)?;
    Ok(start.elapsed().as_secs_f64())
}

/// Copy bandwidth (bytes read + written per second) for copies of `bytes` bytes split
/// over `threads` threads, best of `reps` rounds; each thread repeats its part so that
/// a round moves about 64 MiB.
fn copy_bandwidth(bytes: usize, threads: usize, reps: usize) -> f64 {
    let threads = threads.max(1);
    let n = (bytes / 2 / 4).max(threads);
    let src = vec![1.0f32; n];
    let mut dst = vec![0.0f32; n];
    let inner = ((64usize << 20) / (2 * 4 * n)).clamp(1, 100_000);
    let chunk = n.div_ceil(threads);
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let start = Instant::now();
        std::thread::scope(|s| {
            for (d, c) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                s.spawn(move || {
                    for _ in 0..inner {
                        d.copy_from_slice(std::hint::black_box(c));
                        std::hint::black_box(&mut *d);
                    }
                });
            }
        });
        best = best.min(start.elapsed().as_secs_f64() / inner as f64);
    }
    (2 * n * 4) as f64 / best
}

pub fn bench(a: &BenchArgs) -> Result<()> {
    let given = parse_pairs(a.inputs)?;
    let options = Options {
        threads: a.threads,
        pipeline: a.pipeline.to_string(),
        search: a.search.options()?,
        calibration: a.search.calibration()?,
        ..Options::default()
    };
    let loaded = load_for(a.model, a.bind, &given, true, options)?;
    let g = &loaded.graph;
    let inputs = graph_inputs(
        g,
        given,
        loaded.sample_inputs.as_ref(),
        &loaded.signature,
        a.seed,
        false,
    )?;
    // The compiled side, specialized to the inputs' shape signature.
    let (spec, _) = loaded
        .model
        .specialize(&loaded.signature)
        .context("compiling")?;
    let compiled = spec.model();
    let compile_s = spec.compile_time().as_secs_f64();
    let searched = compiled.search();
    if !a.json {
        super::common::print_search(searched);
    } else {
        for w in &searched.warnings {
            eprintln!("warning: {w}");
        }
    }
    let eager = tessera::compile(
        g,
        Options {
            threads: a.threads,
            ..Options::eager()
        },
    )
    .context("compiling the eager baseline")?;
    for _ in 0..a.warmup {
        time_run(&eager, &inputs)?;
        time_run(compiled, &inputs)?;
    }
    let (mut te, mut tc) = (Vec::new(), Vec::new());
    for i in 0..a.runs {
        if i % 2 == 0 {
            te.push(time_run(&eager, &inputs)?);
            tc.push(time_run(compiled, &inputs)?);
        } else {
            tc.push(time_run(compiled, &inputs)?);
            te.push(time_run(&eager, &inputs)?);
        }
    }
    let (eager_s, compiled_s) = (median(&mut te), median(&mut tc));

    // Per-kernel times of the compiled model; the memory-bound kernel moving most bytes.
    let profiles = a.runs.clamp(3, 21);
    let nk = compiled.kernels().count();
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); nk];
    for _ in 0..profiles {
        let (_, t) = compiled.run_profiled(&inputs)?;
        for (k, x) in t.into_iter().enumerate() {
            per[k].push(x);
        }
    }
    let memory_bound = |k: usize| {
        !matches!(
            compiled.plan().groups[k].kind(),
            GroupKind::Contraction | GroupKind::Attention
        )
    };
    let big = (0..nk)
        .filter(|&k| memory_bound(k))
        .max_by_key(|&k| (compiled.kernel_bytes(k), std::cmp::Reverse(k)));
    let kernel = big.map(|k| {
        let t = median(&mut per[k]);
        let bytes = compiled.kernel_bytes(k);
        let name = compiled
            .kernels()
            .nth(k)
            .map(|x| x.name.clone())
            .unwrap_or_default();
        (name, bytes, t)
    });
    if a.profile > 0 {
        let mut order: Vec<(f64, usize)> = (0..nk).map(|k| (median(&mut per[k]), k)).collect();
        order.sort_by(|x, y| y.0.total_cmp(&x.0));
        let total: f64 = order.iter().map(|x| x.0).sum();
        let kernels: Vec<_> = compiled.kernels().collect();
        eprintln!(
            "top kernels (median of {profiles} profiled runs; sum {:.3} ms):",
            total * 1e3
        );
        for &(t, k) in order.iter().take(a.profile) {
            eprintln!(
                "  {:>9.1} us {:>5.1}%  {:<28} {:>10} B  {:>8.2} GB/s  {:?}",
                t * 1e6,
                100.0 * t / total,
                kernels[k].name,
                compiled.kernel_bytes(k),
                compiled.kernel_bytes(k) as f64 / t / 1e9,
                compiled.plan().groups[k].shape.space
            );
        }
    }
    let copy_gbps = copy_bandwidth(64 << 20, a.threads, 5) / 1e9;
    let copy_same = kernel
        .as_ref()
        .map(|(_, b, _)| copy_bandwidth(*b as usize, a.threads, 5) / 1e9);

    let compared = if a.compare_search {
        compare_search(a, g, &inputs)?
    } else {
        Vec::new()
    };
    let speedup = eager_s / compiled_s;
    if a.json {
        let mut j = serde_json::json!({
            "model": a.model.display().to_string(),
            "threads": a.threads,
            "runs": a.runs,
            "pipeline": a.pipeline,
            "eager_ms": eager_s * 1e3,
            "compiled_ms": compiled_s * 1e3,
            "speedup": speedup,
            "compile_s": compile_s,
            "eager_kernels": eager.kernels().count(),
            "compiled_kernels": nk,
            "copy_gbps": copy_gbps,
            "shapes": loaded.signature.sizes(),
            "search": super::common::search_json(searched),
        });
        if !compared.is_empty() {
            j["search_compare"] = compared
                .iter()
                .map(|(name, t, c)| {
                    (
                        name.clone(),
                        serde_json::json!({"ms": t * 1e3, "compile_s": c}),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        if let (Some((name, bytes, t)), Some(same)) = (&kernel, copy_same) {
            j["mem_kernel"] = (*name).clone().into();
            j["mem_kernel_bytes"] = (*bytes).into();
            j["mem_kernel_us"] = (t * 1e6).into();
            j["mem_kernel_gbps"] = (*bytes as f64 / t / 1e9).into();
            j["copy_same_size_gbps"] = same.into();
        }
        outln!("{j}")?;
    } else {
        let at = if loaded.signature.is_static() {
            String::new()
        } else {
            format!(" at {}", loaded.signature)
        };
        outln!(
            "{}{at}: {} nodes, {} threads, median of {} interleaved runs",
            a.model.display(),
            g.num_nodes(),
            a.threads,
            a.runs
        )?;
        outln!(
            "  eager     {:>10.3} ms  ({} kernels)",
            eager_s * 1e3,
            eager.kernels().count()
        )?;
        outln!(
            "  compiled  {:>10.3} ms  ({nk} kernels, compiled in {compile_s:.3} s)",
            compiled_s * 1e3
        )?;
        outln!("  speedup   {speedup:>10.2}x")?;
        if let Some((_, off, _)) = compared.first() {
            for (name, t, c) in &compared {
                outln!(
                    "  search {name:<8} {:>8.3} ms  ({:.2}x of off; compiled in {c:.3} s)",
                    t * 1e3,
                    off / t
                )?;
            }
        }
        if let (Some((name, bytes, t)), Some(same)) = (&kernel, copy_same) {
            outln!(
                "  largest memory-bound kernel {name}: {bytes} bytes in {:.1} us = {:.2} GB/s \
                 (copy: {copy_gbps:.2} GB/s at 64 MiB, {same:.2} GB/s at the same size)",
                t * 1e6,
                *bytes as f64 / t / 1e9
            )?;
        }
    }
    Ok(())
}
