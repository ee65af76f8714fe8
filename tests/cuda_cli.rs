//! The CUDA choices of the `tessera` binary: `compile --emit cuda --out DIR` and
//! `run --backend cuda`, which on a machine without a GPU must fail with a clear error
//! (never a panic).

mod cli_support;
use cli_support::tessera;
use std::path::{Path, PathBuf};

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-cuda-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn files_with(dir: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    v.sort();
    v
}

#[test]
fn compile_emit_cuda_writes_sources_and_a_manifest() {
    let dir = temp("emit");
    let d = dir.to_str().unwrap();
    let (ok, _, err) = tessera(&[
        "compile",
        "samples/mlp_iris/model.onnx",
        "--emit",
        "cuda",
        "--out",
        d,
    ]);
    assert!(ok, "{err}");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let kernels = m["kernels"].as_array().unwrap();
    let cu = files_with(&dir, ".cu");
    assert_eq!(kernels.len(), cu.len(), "{err}");
    assert!(!cu.is_empty());
    for k in kernels {
        let file = k["file"].as_str().unwrap();
        let src = std::fs::read_to_string(dir.join(file)).unwrap();
        let name = k["name"].as_str().unwrap();
        assert!(
            src.starts_with(&format!("// tessera kernel {name}\n")),
            "{file}"
        );
        assert!(
            !k["steps"].as_array().unwrap().is_empty(),
            "{name} has no launches"
        );
        for step in k["steps"].as_array().unwrap() {
            let launches: Vec<&serde_json::Value> = match step["kind"].as_str().unwrap() {
                "launch" => vec![step],
                _ => step["builtin"].as_array().unwrap().iter().collect(),
            };
            for l in launches {
                let f = l["function"].as_str().unwrap();
                assert!(src.contains(&format!(" {f}(")), "{file} defines {f}");
            }
        }
        match k["ptx"].as_str() {
            Some(ptx) => {
                let text = std::fs::read_to_string(dir.join(ptx)).unwrap();
                assert!(text.contains(".target sm_90"), "{ptx}");
            }
            None => assert!(err.contains("PTX not written"), "{err}"),
        }
    }
    assert_eq!(m["inputs"][0]["name"], "L_x_");
    assert_eq!(m["ptx_arch"], "compute_90");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compile_emit_cuda_without_out_is_an_error() {
    let (ok, _, err) = tessera(&["compile", "samples/mlp_iris/model.onnx", "--emit", "cuda"]);
    assert!(!ok);
    assert!(err.contains("--out DIR"), "{err}");
}

/// With a GPU the sample runs and matches its reference outputs; without one (this
/// project's CI) the command fails with a message saying why, and does not panic.
#[test]
fn run_backend_cuda_runs_or_says_why_not() {
    let (ok, out, err) = tessera(&["run", "--backend", "cuda", "samples/mlp_iris"]);
    assert!(!err.contains("panicked"), "{err}");
    if ok {
        assert!(err.contains("CUDA device 0"), "{err}");
        assert!(out.contains("within atol 1e-5 / rtol 1.3e-6"), "{out}");
        return;
    }
    #[cfg(feature = "cuda")]
    {
        if tessera::runtime::cuda::driver_present() {
            assert!(err.contains("error: CUDA"), "{err}");
        } else {
            assert!(
                err.contains("error: CUDA: no CUDA driver: libcuda.so cannot be loaded"),
                "{err}"
            );
        }
    }
    #[cfg(not(feature = "cuda"))]
    assert!(err.contains("built without CUDA support"), "{err}");
}
