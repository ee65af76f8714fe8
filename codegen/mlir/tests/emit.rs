//! The emitter, file-driven over the kernel cases of `tests/cases/kernels/` (one graph per
//! kernel kind: pointwise, reductions, softmax, layer norm, gathers, concatenation,
//! pooling, GEMM, convolution, depthwise convolution, attention): each module's text is
//! snapshotted (`emit__<case>.snap`), or the error for a kernel the emitter cannot emit.
//! With the `melior` feature every module must pass MLIR's verifier, and the compiled
//! module must match the reference interpreter on random inputs (atol 1e-5, rtol 1e-5).

use std::path::{Path, PathBuf};

#[cfg(feature = "melior")]
use tessera_ir::{DType, Tensor};
use tessera_ir::{Graph, text, verify};
use tessera_lower::fusion::Mode;

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cases/kernels");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("case directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tir"))
        .collect();
    v.sort();
    v
}

fn load(path: &Path) -> (String, Graph) {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("case")
        .to_string();
    let src = std::fs::read_to_string(path).expect("readable");
    let g = text::parse(&src).unwrap_or_else(|e| panic!("{stem}: {e}"));
    verify(&g).unwrap_or_else(|e| panic!("{stem}: {e}"));
    (stem, g)
}

#[test]
fn emitted_modules() {
    let all = cases();
    assert!(all.len() >= 10, "expected the kernel cases");
    for path in all {
        let (stem, g) = load(&path);
        let text = match tessera_mlir::emit(&g, Mode::Fused) {
            Ok(l) => l.code.text,
            Err(e) => format!("error: {e}\n"),
        };
        insta::assert_snapshot!(stem, text);
    }
}

/// Inputs in [-1, 1) (integers in [0, 5)), from a fixed seed.
#[cfg(feature = "melior")]
fn inputs(g: &Graph) -> Vec<Tensor> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    g.inputs()
        .iter()
        .map(|p| {
            let ty = g.ty(p.value);
            let v: Vec<f64> = (0..ty.shape.numel())
                .map(|_| match ty.dtype {
                    DType::I64 | DType::I32 => (next() * 5.0).floor(),
                    _ => next() * 2.0 - 1.0,
                })
                .collect();
            Tensor::from_vec(ty.shape.clone(), v)
                .expect("one value per element")
                .cast(ty.dtype)
        })
        .collect()
}

#[cfg(feature = "melior")]
fn close(a: &Tensor, b: &Tensor) -> bool {
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    a.ty() == b.ty()
        && x.iter()
            .zip(&y)
            .all(|(p, q)| (p - q).abs() <= 1e-5 * (1.0 + q.abs()) || p.is_nan() && q.is_nan())
}

#[cfg(feature = "melior")]
#[test]
fn modules_verify_and_match_the_reference() {
    let mut failures = Vec::new();
    for path in cases() {
        let (stem, g) = load(&path);
        let Ok(l) = tessera_mlir::emit(&g, Mode::Fused) else {
            continue;
        };
        if let Err(e) = tessera_mlir::jit::verify(&l.code) {
            failures.push(format!("{stem}: {e}"));
            continue;
        }
        let args = inputs(&g);
        let want = tessera_reference::run(&g, &args).expect("reference runs");
        match tessera_mlir::jit::compile(&g).and_then(|m| m.run(&args)) {
            Ok(got) => {
                for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                    if !close(a, b) {
                        failures.push(format!("{stem}: output {k} differs"));
                    }
                }
            }
            Err(e) => failures.push(format!("{stem}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
