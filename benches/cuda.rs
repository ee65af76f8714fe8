//! The CUDA backend on the bundled GraphNet samples, on GPU 0: per sample, the device time
//! of one run (CUDA events around a CUDA-graph replay, inputs resident) of tessera
//! compiled (cuBLAS GEMMs where they fit), tessera compiled with its built-in GEMM, and
//! tessera CUDA eager (one kernel or library call per op), measured side by side in one
//! process, with the ratios; and, per compiled model, the memory-bound kernel that moves
//! the most bytes with its achieved bandwidth against the H200's measured 4.3 TB/s copy
//! rate. Outputs are checked against the reference interpreter (GraphNet t = −5) before
//! timing. Not a timed test; `scripts/gpu-check.sh` runs it:
//!
//! ```sh
//! cargo bench --features cuda --bench cuda -- [--out DIR] [--warmup 10] [--iters 50]
//!     [--samples-dir DIR] [SAMPLE...]
//! ```
//!
//! `--samples-dir` (repeatable) adds every sample directory under DIR (the corpus models
//! `scripts/gpu-prepare.sh` converts); SAMPLE names pick bundled samples (default: all).
//! `TESSERA_REPO` points at the tree when the prepared binary runs in another copy.
//!
//! Writes `DIR/tessera-cuda.json` (default `target/gpu-check`) and prints a table.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;
use tessera::lower::fusion::Mode;
use tessera::passes::cost::DeviceProfile;
use tessera::runtime::cuda::{CudaModel, CudaOptions, GemmBackend, probe, standard_include_dirs};
use tessera::sample::{Sample, compare};

const SAMPLES: [&str; 7] = [
    "mlp_iris",
    "resnet18_winputs",
    "shufflenet_v2_x0_5",
    "squeezenet1_1",
    "tiny_bert_cls",
    "tiny_gptj_cls",
    "tiny_vit",
];

/// The H200's measured device-to-device copy rate, bytes per second.
const COPY_RATE: f64 = 4.3e12;

struct Args {
    out: PathBuf,
    warmup: usize,
    iters: usize,
    samples: Vec<String>,
    dirs: Vec<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: PathBuf::from("target/gpu-check"),
        warmup: 10,
        iters: 50,
        samples: Vec::new(),
        dirs: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = |what: &str| it.next().ok_or(format!("{what} needs a value"));
        match x.as_str() {
            "--out" => a.out = PathBuf::from(val("--out")?),
            "--warmup" => {
                a.warmup = val("--warmup")?
                    .parse()
                    .map_err(|e| format!("--warmup: {e}"))?
            }
            "--iters" => {
                a.iters = val("--iters")?
                    .parse()
                    .map_err(|e| format!("--iters: {e}"))?
            }
            "--samples-dir" => a.dirs.push(PathBuf::from(val("--samples-dir")?)),
            "--bench" => {}
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s => a.samples.push(s.to_string()),
        }
    }
    if a.samples.is_empty() {
        a.samples = SAMPLES.iter().map(|s| s.to_string()).collect();
    }
    Ok(a)
}

/// Every sample to measure, `(name, directory)`: the named bundled samples, then every
/// sample under each `--samples-dir`.
fn sample_dirs(a: &Args) -> Vec<(String, PathBuf)> {
    let repo = std::env::var_os("TESSERA_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let mut out: Vec<(String, PathBuf)> = a
        .samples
        .iter()
        .map(|n| (n.clone(), repo.join("samples").join(n)))
        .collect();
    for d in &a.dirs {
        let mut found: Vec<PathBuf> = std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("meta.json").exists())
            .collect();
        found.sort();
        for p in found {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((name, p));
        }
    }
    out
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

fn quartiles(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let q = |f: f64| {
        s.get(((s.len() - 1) as f64 * f) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (q(0.25), q(0.75))
}

/// One configuration of one sample: compile, check, time.
fn measure(
    name: &str,
    label: &str,
    sample: &Sample,
    opts: &CudaOptions,
    pipeline: &str,
    a: &Args,
) -> Result<(CudaModel, serde_json::Value, f64), String> {
    let g =
        tessera::load_onnx(&sample.model_path(), Default::default()).map_err(|e| e.to_string())?;
    let inputs = sample.inputs().map_err(|e| e.to_string())?;
    let start = std::time::Instant::now();
    let mut m = tessera::compile_cuda(&g, pipeline, &DeviceProfile::h200(), opts)
        .map_err(|e| format!("{name} ({label}): {e}"))?;
    let compile_s = start.elapsed().as_secs_f64();
    let outs = m
        .run(&inputs)
        .map_err(|e| format!("{name} ({label}): {e}"))?;
    let expected = sample.reference_outputs().map_err(|e| e.to_string())?;
    let mut worst = (0f64, 0f64, true);
    if outs.len() != expected.len() {
        return Err(format!(
            "{name} ({label}): {} outputs, the reference has {}",
            outs.len(),
            expected.len()
        ));
    }
    for (x, e) in outs.iter().zip(&expected) {
        let c =
            compare(x, e, 1e-5, 1.3e-6).ok_or(format!("{name} ({label}): output types differ"))?;
        worst = (
            worst.0.max(c.max_abs),
            worst.1.max(c.max_rel),
            worst.2 && c.all_close,
        );
    }
    let timing = m
        .time(&inputs, a.warmup, a.iters)
        .map_err(|e| format!("{name} ({label}): {e}"))?;
    let t = &timing.device_ms;
    let med = median(t);
    let (q1, q3) = quartiles(t);
    let s = m.stats().clone();
    let j = json!({
        "label": label,
        "kernels": s.kernels,
        "library_gemms": s.library_gemms,
        "builtin_gemms": s.builtin_gemms,
        "nvrtc_compiles": s.nvrtc_compiles,
        "nvrtc_seconds": s.nvrtc_seconds,
        "compile_seconds": compile_s,
        "arena_bytes": s.arena_bytes,
        "trials_ms": t,
        "median_ms": med,
        "iqr_ms": [q1, q3],
        "wall_trials_ms": timing.wall_ms,
        "wall_median_ms": median(&timing.wall_ms),
        "max_abs": worst.0,
        "max_rel": worst.1,
        "within_t_minus_5": worst.2,
    });
    Ok((m, j, med))
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let info = match probe(0) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "GPU 0: {} (sm_{}{}, {} SMs), cuBLAS {}",
        info.name,
        info.capability.0,
        info.capability.1,
        info.multiprocessors,
        if tessera::runtime::cuda::cublas_present() {
            "present"
        } else {
            "missing"
        }
    );
    let include: Vec<PathBuf> = std::env::var_os("CUDA_INCLUDE_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain(standard_include_dirs())
        .collect();
    let opts = |mode, gemm| CudaOptions {
        mode,
        gemm,
        include_dirs: include.clone(),
        ..CudaOptions::default()
    };
    let mut results = Vec::new();
    let mut failed = false;
    println!(
        "{:<20} {:>10} {:>10} {:>10} {:>9} {:>9}  biggest memory-bound kernel",
        "sample", "eager ms", "builtin ms", "compiled", "eager/c", "builtin/c"
    );
    for (name, dir) in &sample_dirs(&a) {
        let sample = match Sample::open(dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {name}: {e}");
                failed = true;
                continue;
            }
        };
        let configs = [
            ("compiled", opts(Mode::Fused, GemmBackend::Auto), "default"),
            (
                "compiled, built-in GEMM",
                opts(Mode::Fused, GemmBackend::Builtin),
                "default",
            ),
            ("eager", opts(Mode::Eager, GemmBackend::Auto), "none"),
        ];
        let mut rows = Vec::new();
        let mut meds = Vec::new();
        let mut compiled: Option<CudaModel> = None;
        for (label, o, pipeline) in &configs {
            match measure(name, label, &sample, o, pipeline, &a) {
                Ok((m, j, med)) => {
                    if !j["within_t_minus_5"].as_bool().unwrap_or(false) {
                        eprintln!(
                            "error: {name} ({label}) outputs are outside GraphNet t = -5: {j}"
                        );
                        failed = true;
                    }
                    if compiled.is_none() {
                        compiled = Some(m);
                    }
                    rows.push(j);
                    meds.push(med);
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    failed = true;
                    rows.push(json!({"label": label, "error": e}));
                    meds.push(f64::NAN);
                }
            }
        }
        let mut hot = json!(null);
        let mut hot_text = String::new();
        if let Some(m) = compiled.as_mut()
            && let Ok(inputs) = sample.inputs()
        {
            match m.profile(&inputs, 20) {
                Ok(steps) => {
                    if let Some(s) = steps
                        .iter()
                        .filter(|s| s.memory_bound && s.ms > 0.0)
                        .max_by_key(|s| s.bytes)
                    {
                        let bw = s.bytes as f64 / (s.ms * 1e-3);
                        hot_text = format!(
                            "{} {:.1} MB in {:.3} ms = {:.2} TB/s ({:.0}% of 4.3)",
                            s.kernel,
                            s.bytes as f64 / 1e6,
                            s.ms,
                            bw / 1e12,
                            100.0 * bw / COPY_RATE
                        );
                        hot = json!({"kernel": s.kernel, "function": s.function, "bytes": s.bytes, "ms": s.ms, "bytes_per_s": bw, "fraction_of_copy_rate": bw / COPY_RATE});
                    }
                    let steps_json: Vec<_> = steps
                        .iter()
                        .map(|s| json!({"kernel": s.kernel, "function": s.function, "ms": s.ms, "bytes": s.bytes, "memory_bound": s.memory_bound}))
                        .collect();
                    rows.push(json!({"label": "compiled, per-step profile", "steps": steps_json}));
                }
                Err(e) => {
                    eprintln!("error: {name} profile: {e}");
                    failed = true;
                }
            }
        }
        let (c, b, e) = (meds[0], meds[1], meds[2]);
        println!(
            "{name:<20} {e:>10.4} {b:>10.4} {c:>10.4} {:>9.2} {:>9.2}  {hot_text}",
            e / c,
            b / c
        );
        results.push(json!({"sample": name, "configs": rows, "biggest_memory_bound_kernel": hot}));
    }
    let doc = json!({
        "device": {"name": info.name, "capability": [info.capability.0, info.capability.1], "multiprocessors": info.multiprocessors, "memory_bytes": info.memory_bytes},
        "warmup": a.warmup,
        "iters": a.iters,
        "timing": "median_ms: device time per run, CUDA events around a CUDA-graph replay, inputs resident on the GPU; wall_median_ms: host wall-clock of the same, launch to completion",
        "copy_rate_bytes_per_s": COPY_RATE,
        "samples": results,
    });
    if let Err(e) = std::fs::create_dir_all(&a.out).and_then(|_| {
        std::fs::write(
            a.out.join("tessera-cuda.json"),
            serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n",
        )
    }) {
        eprintln!("error: writing {}: {e}", a.out.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {}", a.out.join("tessera-cuda.json").display());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
