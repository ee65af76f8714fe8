//! Every CUDA kernel tessera emits for its corpus compiles, on a machine without a GPU:
//! NVRTC to `compute_90` PTX, then ptxas to an `sm_90` cubin, with zero errors. The corpus
//! is the CUDA cases (`tests/cases/cuda`), the seven bundled samples (fused, eager, and
//! fused after the default pipeline) and every ONNX node test the kernel builder supports
//! (fused). Kernels that differ only in name are compiled once.
//!
//! Snapshots record, per model, the kernel and function counts and ptxas's register,
//! spill, shared-memory and stack figures (the target is no spills), so a change in any
//! kernel's resources shows up as a diff.
//!
//! Needs the `cuda` feature and the CUDA 13.0 wheels (`scripts/install-cuda-wheels.sh`,
//! with `.cuda/nvidia/cu13/lib` on `LD_LIBRARY_PATH`; `scripts/test.sh` does both). Without
//! them each test fails with instructions, unless `TESSERA_SKIP_NVRTC=1` says to skip.

#![cfg(feature = "cuda")]
// The test reports how long compilation took, and skips, on stderr.
#![allow(clippy::print_stderr)]

mod cuda_support;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use cuda_support::Toolkit;
use tessera::codegen::cuda::{self, CudaKernel};
use tessera::ir::Graph;
use tessera::lower::build::build_kernels;
use tessera::lower::fusion::{self, Mode};
use tessera::passes::cost::DeviceProfile;
use tessera::runtime::cuda::nvrtc::{self, FunctionStats};

fn hash(s: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// NVRTC to PTX, ptxas to a cubin; the functions' resources or the error.
fn compile_one(
    tk: &Toolkit,
    dir: &std::path::Path,
    name: &str,
    source: &str,
) -> Result<Vec<FunctionStats>, String> {
    let opts = nvrtc::Options {
        target: nvrtc::Target::Ptx("compute_90".into()),
        include_dirs: vec![tk.include.clone()],
        line_info: false,
    };
    let ptx = nvrtc::compile(name, source, &opts).map_err(|e| e.to_string())?;
    let stem = dir.join(format!("{name}_{:016x}", hash(source)));
    let ptx_path = stem.with_extension("ptx");
    std::fs::write(&ptx_path, &ptx.image).map_err(|e| e.to_string())?;
    let out = Command::new(&tk.ptxas)
        .arg("-arch=sm_90")
        .arg("-v")
        .arg("-o")
        .arg(stem.with_extension("cubin"))
        .arg(&ptx_path)
        .output()
        .map_err(|e| format!("running {}: {e}", tk.ptxas.display()))?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!("ptxas failed for {name}:\n{report}"));
    }
    let stats = nvrtc::parse_ptxas_report(&report);
    // A kernel of an empty tensor has no functions at all.
    if stats.is_empty() && source.contains("__global__") {
        return Err(format!("ptxas reported no functions for {name}:\n{report}"));
    }
    Ok(stats)
}

/// Compiles every distinct canonical source (two threads), remembering results across
/// corpora; results by canonical-source hash.
#[derive(Default)]
struct Compiler {
    results: HashMap<u64, Result<Vec<FunctionStats>, String>>,
}

/// What one corpus cost.
struct Cost {
    kernels: usize,
    new_sources: usize,
    seconds: f64,
}

impl Compiler {
    fn compile(&mut self, tk: &Toolkit, label: &str, kernels: &[&CudaKernel]) -> Cost {
        let start = Instant::now();
        let mut unique: BTreeMap<u64, String> = BTreeMap::new();
        for k in kernels {
            let src = k.canonical_source();
            let h = hash(&src);
            if !self.results.contains_key(&h) {
                unique.entry(h).or_insert(src);
            }
        }
        let work: Vec<(u64, &str)> = unique.iter().map(|(&h, s)| (h, s.as_str())).collect();
        let dir: PathBuf = std::env::temp_dir().join(format!(
            "tessera-cuda-compile-{}-{label}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let next = AtomicUsize::new(0);
        let results = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(h, src)) = work.get(i) else { break };
                        let r = compile_one(tk, &dir, "kernel", src);
                        results.lock().unwrap().push((h, r));
                    }
                });
            }
        });
        let _ = std::fs::remove_dir_all(&dir);
        self.results.extend(results.into_inner().unwrap());
        Cost {
            kernels: kernels.len(),
            new_sources: work.len(),
            seconds: start.elapsed().as_secs_f64(),
        }
    }

    /// The functions of kernel `k` (named as in its own source), or its error.
    fn stats(&self, k: &CudaKernel) -> Result<Vec<FunctionStats>, String> {
        let r = &self.results[&hash(&k.canonical_source())];
        r.clone().map(|fs| {
            fs.into_iter()
                .map(|mut f| {
                    f.function = f.function.replacen("kernel", &k.name, 1);
                    f
                })
                .collect()
        })
    }
}

fn emit(g: &Graph, mode: Mode) -> Result<Vec<CudaKernel>, String> {
    let plan = fusion::plan(g, mode).map_err(|e| format!("plan: {e}"))?;
    let kernels = build_kernels(g, &plan).map_err(|e| format!("build: {e}"))?;
    cuda::emit_kernels(g, &kernels).map_err(|e| format!("CUDA printer: {e}"))
}

/// One line summarizing a model's kernels; errors go to `failures`.
fn summary(name: &str, ks: &[CudaKernel], c: &Compiler, failures: &mut Vec<String>) -> String {
    let mut funcs = Vec::new();
    for k in ks {
        match c.stats(k) {
            Ok(s) => funcs.extend(s),
            Err(e) => failures.push(format!("{name} / {}: {e}", k.name)),
        }
    }
    let max = |f: fn(&FunctionStats) -> u32| funcs.iter().map(f).max().unwrap_or(0);
    let spills: u32 = funcs.iter().map(|f| f.spill_stores + f.spill_loads).sum();
    format!(
        "kernels {}, functions {}, max registers {}, spill bytes {spills}, max smem {}, max stack {}",
        ks.len(),
        funcs.len(),
        max(|f| f.registers),
        max(|f| f.shared_bytes),
        max(|f| f.stack_bytes),
    )
}

fn report(what: &str, c: &Cost) {
    eprintln!(
        "{what}: {} kernels, {} new distinct sources compiled (NVRTC + ptxas) in {:.1} s",
        c.kernels, c.new_sources, c.seconds
    );
}

/// All three corpora in one test so that they share the compiler cache and the two cores.
#[test]
fn every_emitted_kernel_compiles_to_sm90() {
    let Some(tk) = cuda_support::toolkit_or_fail("every_emitted_kernel_compiles_to_sm90") else {
        return;
    };
    let mut c = Compiler::default();
    cases(&tk, &mut c);
    samples(&tk, &mut c);
    node_tests(&tk, &mut c);
}

fn cases(tk: &Toolkit, c: &mut Compiler) {
    let models: Vec<(String, Vec<CudaKernel>)> = cuda_support::cases()
        .into_iter()
        .map(|(n, g)| {
            let ks = emit(&g, Mode::Fused).unwrap_or_else(|e| panic!("{n}: {e}"));
            (n, ks)
        })
        .collect();
    let all: Vec<&CudaKernel> = models.iter().flat_map(|(_, k)| k).collect();
    let cost = c.compile(tk, "cases", &all);
    report("cases", &cost);
    let mut failures = Vec::new();
    let mut snap = String::new();
    for (name, ks) in &models {
        let _ = writeln!(snap, "{name}: {}", summary(name, ks, c, &mut failures));
        for k in ks {
            if let Ok(fs) = c.stats(k) {
                for f in fs {
                    let _ = writeln!(
                        snap,
                        "  {}: {} registers, {} spill bytes, {} smem, {} stack",
                        f.function,
                        f.registers,
                        f.spill_stores + f.spill_loads,
                        f.shared_bytes,
                        f.stack_bytes
                    );
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    insta::assert_snapshot!("cases", snap);
}

fn samples(tk: &Toolkit, c: &mut Compiler) {
    let mut models = Vec::new();
    for name in cuda_support::SAMPLES {
        let (g, _) = cuda_support::sample(name);
        // As imported (fused and eager), and after the default pipeline (the e-graph
        // optimizer: fused attention, merged GEMMs), as `tessera compile` emits them.
        let (opt, _) = tessera::optimize(&g, "default", &DeviceProfile::h200(), None)
            .unwrap_or_else(|e| panic!("{name}: optimize: {e}"));
        for (label, graph, mode) in [
            ("fused", &g, Mode::Fused),
            ("eager", &g, Mode::Eager),
            ("optimized, fused", &opt, Mode::Fused),
        ] {
            let ks = emit(graph, mode).unwrap_or_else(|e| panic!("{name} ({label}): {e}"));
            models.push((format!("{name} ({label})"), ks));
        }
    }
    let all: Vec<&CudaKernel> = models.iter().flat_map(|(_, k)| k).collect();
    let cost = c.compile(tk, "samples", &all);
    report("samples", &cost);
    let mut failures = Vec::new();
    let mut snap = String::new();
    for (name, ks) in &models {
        let _ = writeln!(snap, "{name}: {}", summary(name, ks, c, &mut failures));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    insta::assert_snapshot!("samples", snap);
}

fn node_tests(tk: &Toolkit, c: &mut Compiler) {
    let mut models = Vec::new();
    let mut unsupported: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for dir in cuda_support::node_tests() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let g = match cuda_support::load_node_test(&dir) {
            Ok((g, _)) => g,
            Err(_) => {
                *unsupported.entry("not imported".into()).or_default() += 1;
                continue;
            }
        };
        let plan = match fusion::plan(&g, Mode::Fused) {
            Ok(p) => p,
            Err(_) => {
                *unsupported.entry("no fusion plan".into()).or_default() += 1;
                continue;
            }
        };
        // The kernel builder is not this test's subject: a panic in it (a bug to report)
        // is recorded in the snapshot, not fatal here.
        let built = std::panic::catch_unwind(|| build_kernels(&g, &plan));
        let kernels = match built {
            Ok(Ok(k)) => k,
            Ok(Err(_)) => {
                *unsupported
                    .entry("no kernels (kernel builder)".into())
                    .or_default() += 1;
                continue;
            }
            Err(_) => {
                *unsupported
                    .entry(format!("kernel builder panicked: {name}"))
                    .or_default() += 1;
                continue;
            }
        };
        match cuda::emit_kernels(&g, &kernels) {
            Ok(ks) => models.push((name, ks)),
            Err(e) => failures.push(format!("{name}: CUDA printer: {e}")),
        }
    }
    let all: Vec<&CudaKernel> = models.iter().flat_map(|(_, k)| k).collect();
    let cost = c.compile(tk, "node-tests", &all);
    report("node tests", &cost);
    let mut snap = String::new();
    let _ = writeln!(snap, "compiled models: {}", models.len());
    for (why, n) in &unsupported {
        let _ = writeln!(snap, "skipped, {why}: {n}");
    }
    for (name, ks) in &models {
        let _ = writeln!(snap, "{name}: {}", summary(name, ks, c, &mut failures));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    insta::assert_snapshot!("node_tests", snap);
}
