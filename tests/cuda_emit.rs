//! The CUDA C printer on one small graph per kernel kind (`tests/cases/cuda/*.tir`):
//! the emitted source of every kernel and its launches, snapshotted. The shared prelude
//! of helper functions is left out of the snapshots (it is the same in every file).
//!
//! Compiling these sources (and every kernel of the corpus) with NVRTC and ptxas is
//! `tests/cuda_compile.rs`.

use std::fmt::Write;
use std::path::Path;

use tessera::codegen::cuda::{self, CudaKernel};
use tessera::ir::{text, verify};
use tessera::lower::build::build_kernels;
use tessera::lower::fusion::{self, Mode};

fn cases() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/cuda");
    let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tir"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

fn emit(src: &str) -> Vec<CudaKernel> {
    let g = text::parse(src).unwrap();
    verify(&g).unwrap();
    let plan = fusion::plan(&g, Mode::Fused).unwrap();
    let kernels = build_kernels(&g, &plan).unwrap();
    cuda::emit_kernels(&g, &kernels).unwrap()
}

fn describe(ks: &[CudaKernel]) -> String {
    let mut s = String::new();
    for k in ks {
        for step in &k.steps {
            let _ = writeln!(s, "// launch: {}", serde_json::to_string(step).unwrap());
        }
        let prelude = cuda::prelude(k.needs_cuda_headers);
        let body = k.source.replacen(&prelude, "\n// (prelude)\n\n", 1);
        assert_ne!(
            body, k.source,
            "{}: the source starts with the prelude",
            k.name
        );
        s.push_str(&body);
    }
    s
}

#[test]
fn one_kernel_of_each_kind() {
    let cases = cases();
    assert!(cases.len() >= 12, "the CUDA cases are missing");
    for (name, src) in cases {
        let ks = emit(&src);
        insta::assert_snapshot!(name, describe(&ks));
    }
}

#[test]
fn emission_is_deterministic() {
    for (name, src) in cases() {
        let a: Vec<String> = emit(&src).into_iter().map(|k| k.source).collect();
        let b: Vec<String> = emit(&src).into_iter().map(|k| k.source).collect();
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn kernels_differing_only_in_name_share_a_canonical_source() {
    let two = "graph \"two\" {\n  input \"x\" %0: f32[4,64]\n  %1: f32[4,64] = exp(%0) \"e\"\n  %2: f32[4,64] = relu(%1) \"r\"\n  output \"y\" %2\n}\n";
    let one = "graph \"one\" {\n  input \"x\" %0: f32[4,64]\n  %1: f32[4,64] = relu(%0) \"r\"\n  output \"y\" %1\n}\n";
    let eager = |src: &str| {
        let g = text::parse(src).unwrap();
        let plan = fusion::plan(&g, Mode::Eager).unwrap();
        cuda::emit_kernels(&g, &build_kernels(&g, &plan).unwrap()).unwrap()
    };
    let (a, b) = (eager(two), eager(one));
    assert_eq!(
        (a[1].name.as_str(), b[0].name.as_str()),
        ("k1_relu", "k0_relu")
    );
    assert_ne!(a[1].source, b[0].source);
    assert_eq!(a[1].canonical_source(), b[0].canonical_source());
    assert!(!a[1].canonical_source().contains("k1_relu"));
    assert_eq!(a[1].canonical_function("k1_relu"), "kernel");
    assert_ne!(a[0].canonical_source(), a[1].canonical_source());
}
