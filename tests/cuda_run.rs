//! The CUDA backend against the reference interpreter, on a GPU.
//!
//! Every bundled sample (fused and eager), every CUDA case and every ONNX node test the
//! kernel builder supports is compiled for GPU 0, run twice (the second run replays the
//! captured CUDA graph) with the arena poisoned (0xFF bytes) before each run so that an
//! element no kernel writes fails the comparison, and compared with the reference
//! interpreter at GraphNet's tolerance: t = −5 for f32 (atol 1e-5, rtol 1.30e-6), t = −3
//! for f16 (atol 1e-3, rtol 1.58e-2) and bf16 (atol 1e-3, rtol 8.36e-2), t = −5 for f64
//! (1e-7), exact for integers and bools. Samples also run with tessera's built-in GEMM
//! instead of cuBLAS.
//!
//! The plan of configurations is built first, with or without a GPU, and its size is
//! snapshotted, so a dropped case fails even in CI. Without a GPU (this project's CI) the
//! test then checks the other half of the contract: compiling fails with an error that
//! says why, and nothing panics. On a GPU it asserts that every planned configuration ran.

#![cfg(feature = "cuda")]
// The test reports what it skipped and how long it took on stderr.
#![allow(clippy::print_stderr)]

mod cuda_support;

use std::time::Instant;

use tessera::ir::{Graph, Tensor};
use tessera::lower::fusion::Mode;
use tessera::passes::cost::DeviceProfile;
use tessera::runtime::cuda::{CudaOptions, GemmBackend, probe, standard_include_dirs};
use tessera::sample::{compare, random_inputs};

fn options(mode: Mode, gemm: GemmBackend) -> CudaOptions {
    CudaOptions {
        mode,
        gemm,
        graph: true,
        poison: true,
        include_dirs: standard_include_dirs()
            .into_iter()
            .chain(std::iter::once(cuda_support::toolkit_dir().join("include")))
            .collect(),
        ..CudaOptions::default()
    }
}

/// One configuration to run on the GPU: a graph, its inputs, how to compile it and what
/// the reference interpreter computes (`None` when the reference rejects the inputs: an
/// index out of range, say, which is not a CUDA test).
struct Case {
    name: String,
    graph: Graph,
    inputs: Vec<Tensor>,
    opts: CudaOptions,
    expected: Result<Vec<Tensor>, String>,
}

/// Every configuration the GPU run must cover, in order: each sample fused, fused with the
/// built-in GEMM and eager; each CUDA case fused and eager; each ONNX node test the
/// kernel builder supports, fused. Built without a GPU, so CI pins its size.
fn plan() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut push = |name: String, graph: Graph, inputs: Vec<Tensor>, opts: CudaOptions| {
        let expected = tessera::reference::run(&graph, &inputs).map_err(|e| e.to_string());
        cases.push(Case {
            name,
            graph,
            inputs,
            opts,
            expected,
        });
    };
    for name in cuda_support::SAMPLES {
        let (g, inputs) = cuda_support::sample(name);
        for (mode, gemm, label) in [
            (Mode::Fused, GemmBackend::Auto, "fused"),
            (Mode::Fused, GemmBackend::Builtin, "fused, built-in GEMM"),
            (Mode::Eager, GemmBackend::Auto, "eager"),
        ] {
            push(
                format!("{name} ({label})"),
                g.clone(),
                inputs.clone(),
                options(mode, gemm),
            );
        }
    }
    for (name, g) in cuda_support::cases() {
        let inputs = random_inputs(&g, 1000, 8.0);
        for mode in [Mode::Fused, Mode::Eager] {
            push(
                format!("{name} ({mode:?})"),
                g.clone(),
                inputs.clone(),
                options(mode, GemmBackend::Auto),
            );
        }
    }
    let h200 = DeviceProfile::h200();
    for dir in cuda_support::node_tests() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Ok((g, inputs)) = cuda_support::load_node_test(&dir) else {
            continue;
        };
        if tessera::cuda_kernels(&g, "none", &h200, Mode::Fused).is_err() {
            continue;
        }
        push(name, g, inputs, options(Mode::Fused, GemmBackend::Auto));
    }
    cases
}

/// What the plan holds: counts per kind and the cases the reference interpreter rejects.
/// Snapshotted, so dropping a case (a node test that stops compiling, a sample that
/// stops loading) fails CI even without a GPU.
fn summary(cases: &[Case]) -> String {
    let samples = cases
        .iter()
        .filter(|c| cuda_support::SAMPLES.iter().any(|s| c.name.starts_with(s)))
        .count();
    let cuda_cases = cases
        .iter()
        .filter(|c| c.name.ends_with("(Fused)") || c.name.ends_with("(Eager)"))
        .count();
    let mut s = format!(
        "{} configurations: {samples} sample runs, {cuda_cases} CUDA case runs, {} node tests\n",
        cases.len(),
        cases.len() - samples - cuda_cases
    );
    for c in cases {
        if let Err(e) = &c.expected {
            s.push_str(&format!("reference rejects {}: {e}\n", c.name));
        }
    }
    s
}

/// Compiles, runs twice, compares; the problems found.
fn check(c: &Case, expected: &[Tensor]) -> Vec<String> {
    let name = &c.name;
    let none = DeviceProfile::h200();
    let mut model = match tessera::compile_cuda(&c.graph, "none", &none, &c.opts) {
        Ok(m) => m,
        Err(e) => return vec![format!("{name}: compile: {e}")],
    };
    let mut problems = Vec::new();
    for run in ["first run", "graph replay"] {
        let outs = match model.run(&c.inputs) {
            Ok(o) => o,
            Err(e) => {
                problems.push(format!("{name} ({run}): {e}"));
                break;
            }
        };
        if outs.len() != expected.len() {
            problems.push(format!(
                "{name} ({run}): {} outputs, the reference has {}",
                outs.len(),
                expected.len()
            ));
            continue;
        }
        for (k, (a, e)) in outs.iter().zip(expected).enumerate() {
            let (atol, rtol) = cuda_support::tolerance(e.dtype());
            match compare(a, e, atol, rtol) {
                Some(c) if c.all_close => {}
                Some(c) => problems.push(format!(
                    "{name} ({run}) output {k}: max abs {:.3e}, max rel {:.3e} outside atol {atol:e} / rtol {rtol:e}",
                    c.max_abs, c.max_rel
                )),
                None => problems.push(format!("{name} ({run}) output {k}: {} vs {}", a.ty(), e.ty())),
            }
        }
    }
    problems
}

#[test]
fn cuda_runs_match_the_reference_interpreter() {
    let cases = plan();
    insta::assert_snapshot!("plan", summary(&cases));
    // scripts/gpu-prepare.sh packs exactly the node tests the plan runs.
    if let Some(path) = std::env::var_os("TESSERA_CUDA_PLAN_OUT") {
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        std::fs::write(&path, names.join("\n") + "\n").expect("the plan file is writable");
    }
    let info = match probe(0) {
        Ok(info) => info,
        Err(e) => {
            // No usable GPU: compiling must fail the same clear way, without a panic.
            let msg = e.to_string();
            assert!(msg.starts_with("CUDA: "), "{msg}");
            let (g, _) = cuda_support::sample("mlp_iris");
            let h200 = DeviceProfile::h200();
            let err = match tessera::compile_cuda(&g, "default", &h200, &CudaOptions::default()) {
                Ok(_) => panic!("probe failed ({msg}) but compile succeeded"),
                Err(err) => err.to_string(),
            };
            assert_eq!(err, msg);
            eprintln!(
                "SKIPPED the GPU runs of {} planned configurations: {msg}",
                cases.len()
            );
            return;
        }
    };
    eprintln!(
        "GPU: {} (sm_{}{}), cuBLAS {}",
        info.name,
        info.capability.0,
        info.capability.1,
        if tessera::runtime::cuda::cublas_present() {
            "present"
        } else {
            "missing"
        }
    );
    let start = Instant::now();
    let mut problems = Vec::new();
    let (mut ran, mut rejected) = (0, 0);
    for c in &cases {
        match &c.expected {
            Ok(expected) => {
                problems.extend(check(c, expected));
                ran += 1;
            }
            Err(_) => rejected += 1,
        }
    }
    eprintln!(
        "{ran} model configurations compiled and run twice on the GPU in {:.1} s, {} problems",
        start.elapsed().as_secs_f64(),
        problems.len()
    );
    assert_eq!(
        ran + rejected,
        cases.len(),
        "every planned configuration runs or is a known reference rejection"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
