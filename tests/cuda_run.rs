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
//! Without a GPU (this project's CI) the test checks the other half of the contract:
//! compiling fails with an error that says why, and nothing panics.

#![cfg(feature = "cuda")]
// The test reports what it skipped and how long it took on stderr.
#![allow(clippy::print_stderr)]

mod cuda_support;

use std::time::Instant;

use tessera::ir::{Graph, Tensor};
use tessera::lower::fusion::Mode;
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

/// Compiles, runs twice, compares; the problems found.
fn check(name: &str, g: &Graph, inputs: &[Tensor], opts: &CudaOptions) -> Vec<String> {
    let expected = match tessera::reference::run(g, inputs) {
        Ok(e) => e,
        // Inputs the reference rejects (an index out of range, say) are not a CUDA test.
        Err(e) => {
            eprintln!("skipped {name}: the reference interpreter fails: {e}");
            return Vec::new();
        }
    };
    let mut model = match tessera::compile_cuda(g, "none", opts) {
        Ok(m) => m,
        Err(e) => return vec![format!("{name}: compile: {e}")],
    };
    let mut problems = Vec::new();
    for run in ["first run", "graph replay"] {
        let outs = match model.run(inputs) {
            Ok(o) => o,
            Err(e) => {
                problems.push(format!("{name} ({run}): {e}"));
                break;
            }
        };
        for (k, (a, e)) in outs.iter().zip(&expected).enumerate() {
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
    let info = match probe(0) {
        Ok(info) => info,
        Err(e) => {
            // No usable GPU: compiling must fail the same clear way, without a panic.
            let msg = e.to_string();
            assert!(msg.starts_with("CUDA: "), "{msg}");
            let (g, _) = cuda_support::sample("mlp_iris");
            let err = match tessera::compile_cuda(&g, "default", &CudaOptions::default()) {
                Ok(_) => panic!("probe failed ({msg}) but compile succeeded"),
                Err(err) => err.to_string(),
            };
            assert_eq!(err, msg);
            eprintln!("SKIPPED the GPU runs: {msg}");
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
    let mut runs = 0;
    for name in cuda_support::SAMPLES {
        let (g, inputs) = cuda_support::sample(name);
        for (mode, gemm, label) in [
            (Mode::Fused, GemmBackend::Auto, "fused"),
            (Mode::Fused, GemmBackend::Builtin, "fused, built-in GEMM"),
            (Mode::Eager, GemmBackend::Auto, "eager"),
        ] {
            problems.extend(check(
                &format!("{name} ({label})"),
                &g,
                &inputs,
                &options(mode, gemm),
            ));
            runs += 1;
        }
    }
    for (name, g) in cuda_support::cases() {
        let inputs = random_inputs(&g, 1000, 8.0);
        for mode in [Mode::Fused, Mode::Eager] {
            problems.extend(check(
                &format!("{name} ({mode:?})"),
                &g,
                &inputs,
                &options(mode, GemmBackend::Auto),
            ));
            runs += 1;
        }
    }
    for dir in cuda_support::node_tests() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Ok((g, inputs)) = cuda_support::load_node_test(&dir) else {
            continue;
        };
        if tessera::cuda_kernels(&g, "none", Mode::Fused).is_err() {
            continue;
        }
        problems.extend(check(
            &name,
            &g,
            &inputs,
            &options(Mode::Fused, GemmBackend::Auto),
        ));
        runs += 1;
    }
    eprintln!(
        "{runs} model configurations compiled and run twice in {:.1} s, {} problems",
        start.elapsed().as_secs_f64(),
        problems.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
