//! Helpers shared by the tests that run the ONNX node tests and the samples on a backend and
//! compare with the reference: where the node tests are, GraphNet's tolerance at t = −5,
//! the comparison, one short line of an error.

// Each test file uses its own subset (and `mlir_backend` none without its feature).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tessera::ir::{DType, Tensor};
use tessera::sample::compare;

/// The generated ONNX node tests (`TESSERA_NODE_TESTS`, else `.fixtures/onnx-node`); says
/// how to generate them when they are missing.
pub fn node_tests() -> PathBuf {
    let dir = std::env::var_os("TESSERA_NODE_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".fixtures/onnx-node"));
    assert!(
        dir.join(".complete").exists(),
        "the ONNX node tests are not generated in {}: run scripts/fixtures.sh (the README's test command does)",
        dir.display()
    );
    dir
}

/// The names of the node tests in `root` (directories with a `model.onnx`), sorted.
pub fn node_test_names(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .expect("fixtures dir is readable")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("model.onnx").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The first line of `s`, cut to 110 bytes with an ellipsis.
pub fn short(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.len() > 110 {
        let mut end = 110;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &line[..end])
    } else {
        line.to_string()
    }
}

/// GraphNet's tolerance at t = −5 for a float dtype (its exponent table, rounded to three
/// significant digits): atol 10^t, rtol 10^(t·k) with k = 3/5 (f16), 1.796/5 (bf16),
/// 5.886/5 (f32); both 10^(7t/5) for f64. Other dtypes compare exactly.
pub fn tolerance(d: DType) -> (f64, f64) {
    match d {
        DType::F16 => (1e-5, 1e-3),
        DType::BF16 => (1e-5, 1.6e-2),
        DType::F32 => (1e-5, 1.30e-6),
        DType::F64 => (1e-7, 1e-7),
        _ => (0.0, 0.0),
    }
}

/// The first output not within [`tolerance`], with its errors; `None` when all are.
pub fn mismatch(got: &[Tensor], want: &[Tensor]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("{} outputs, expected {}", got.len(), want.len()));
    }
    for (k, (a, e)) in got.iter().zip(want).enumerate() {
        let (atol, rtol) = tolerance(e.dtype());
        match compare(a, e, atol, rtol) {
            None => return Some(format!("output {k} is {}, expected {}", a.ty(), e.ty())),
            Some(c) if !c.all_close => {
                return Some(format!(
                    "output {k}: max abs {:.3e}, max rel {:.3e} (atol {atol:e}, rtol {rtol:e})",
                    c.max_abs, c.max_rel
                ));
            }
            Some(_) => {}
        }
    }
    None
}
