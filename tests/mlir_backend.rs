//! The MLIR backend (feature `mlir`) against the reference interpreter at GraphNet's
//! tolerance level t = −5 (float32: atol 1e-5, rtol 1.30e-6; each float type its own;
//! integers and bools exactly).
//!
//! * Every ONNX node test the reference interpreter passes (`.fixtures/onnx-node`, see
//!   `onnx_conformance.rs`) goes through `tessera::compile_mlir` (default pipeline,
//!   CPU profile): it is emitted, or the emitter names the kernel and construct it cannot
//!   emit; every emitted module must pass MLIR's verifier, lower and run, and match the
//!   interpreter. The outcome of every test is snapshotted (`mlir_node_tests`).
//! * Every bundled sample (`samples/`) is emitted, verified and run on its own inputs.
//! * `compile --emit mlir --out DIR` writes one verified module per model, the same bytes
//!   every time; `run --backend mlir` checks itself against the interpreter. Without the
//!   feature both say how to rebuild.

mod cli_support;
mod node_support;

use cli_support::tessera;

#[cfg(not(feature = "mlir"))]
#[test]
fn without_the_feature_mlir_verbs_say_how_to_rebuild() {
    for args in [
        &[
            "compile",
            "samples/mlp_iris",
            "--emit",
            "mlir",
            "--out",
            "target/mlir-none",
        ][..],
        &["run", "samples/mlp_iris", "--backend", "mlir"][..],
    ] {
        let (ok, _, err) = tessera(args);
        assert!(!ok && err.contains("--features mlir"), "{args:?}: {err}");
    }
}

#[cfg(feature = "mlir")]
mod with_mlir {
    use super::tessera;
    use std::collections::BTreeMap;
    use std::fmt::Write;
    use std::path::Path;

    use tessera::CompileError;
    use tessera::ir::{Graph, Tensor};
    use tessera::mlir::MlirError;
    use tessera::onnx::read_tensor_file;
    use tessera::passes::cost::DeviceProfile;
    use tessera::sample::{Sample, compare};

    use super::node_support::{mismatch, node_test_names, node_tests, short};

    /// What happened to one graph on the MLIR backend.
    enum Outcome {
        Match,
        /// The emitter cannot emit a kernel: the construct it names.
        NotEmitted(String),
        /// Anything else: a module MLIR rejects, a failed lowering or run, a mismatch.
        Fail(String),
    }

    fn run_mlir(g: &Graph, args: &[Tensor], want: &[Tensor]) -> Outcome {
        let cpu = DeviceProfile::cpu_epyc_2core();
        match tessera::compile_mlir(g, "default", &cpu) {
            Err(CompileError::Mlir(MlirError::Unsupported { what, .. })) => {
                Outcome::NotEmitted(what)
            }
            Err(e) => Outcome::Fail(short(&e.to_string())),
            Ok(m) => match m.run(args) {
                Err(e) => Outcome::Fail(format!("run: {}", short(&e.to_string()))),
                Ok(got) => match mismatch(&got, want) {
                    None => Outcome::Match,
                    Some(why) => Outcome::Fail(format!("mismatch: {why}")),
                },
            },
        }
    }

    /// The node test in `dir`, if it imports and the reference interpreter runs it: its
    /// graph, inputs and the interpreter's outputs.
    fn node_case(dir: &Path) -> Option<(Graph, Vec<Tensor>, Vec<Tensor>)> {
        let data = dir.join("test_data_set_0");
        let mut inputs = Vec::new();
        let mut expected = Vec::new();
        for (prefix, out) in [("input", &mut inputs), ("output", &mut expected)] {
            for k in 0.. {
                let p = data.join(format!("{prefix}_{k}.pb"));
                if !p.exists() {
                    break;
                }
                out.push(read_tensor_file(&p).ok()?.1);
            }
        }
        let (graph, args) =
            tessera::load_onnx_with_inputs(&dir.join("model.onnx"), &inputs).ok()?;
        let want = tessera::reference::run(&graph, &args).ok()?;
        // Only tests the interpreter passes (ONNX runner tolerances) count.
        let ok = want.len() == expected.len()
            && want.iter().zip(&expected).all(|(a, e)| {
                let (atol, rtol) = if e.dtype().is_float() {
                    (1e-7, 1e-3)
                } else {
                    (0.0, 0.0)
                };
                compare(a, e, atol, rtol).is_some_and(|c| c.all_close)
            });
        ok.then_some((graph, args, want))
    }

    #[test]
    fn node_tests_on_the_mlir_backend() {
        let root = node_tests();
        let names = node_test_names(&root);
        let (mut counted, mut matched, mut not_emitted) = (0, 0, 0);
        let mut failures = Vec::new();
        let mut constructs: BTreeMap<String, usize> = BTreeMap::new();
        let mut lines = String::new();
        for name in &names {
            let Some((g, args, want)) = node_case(&root.join(name)) else {
                continue;
            };
            counted += 1;
            let line = match run_mlir(&g, &args, &want) {
                Outcome::Match => {
                    matched += 1;
                    "match".to_string()
                }
                Outcome::NotEmitted(what) => {
                    not_emitted += 1;
                    *constructs.entry(what.clone()).or_default() += 1;
                    format!("not emitted: {what}")
                }
                Outcome::Fail(why) => {
                    failures.push(format!("{name}: {why}"));
                    format!("FAIL {why}")
                }
            };
            let _ = writeln!(lines, "{name}: {line}");
        }
        let mut report = String::new();
        let _ = writeln!(
            report,
            "reference-passing node tests: {counted}; emitted, verified and matching at t = -5: {matched}; not emitted: {not_emitted}; failing: {}",
            failures.len()
        );
        let _ = writeln!(report, "not emitted, by construct: {constructs:?}");
        let _ = writeln!(report);
        report.push_str(&lines);
        insta::assert_snapshot!("mlir_node_tests", report);
        assert!(
            failures.is_empty(),
            "node tests the MLIR backend emits but gets wrong:\n{}",
            failures.join("\n")
        );
    }

    #[test]
    fn samples_on_the_mlir_backend() {
        let mut report = String::new();
        let mut failures = Vec::new();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("samples/")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("model.onnx").exists())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let sample = Sample::open(&dir.join(&name)).expect("sample opens");
            let g = tessera::load_onnx(&sample.model_path(), Default::default()).expect("imports");
            let args = sample.inputs().expect("sample inputs");
            let want = tessera::reference::run(&g, &args).expect("reference runs");
            let line = match run_mlir(&g, &args, &want) {
                Outcome::Match => "match".to_string(),
                Outcome::NotEmitted(what) => format!("not emitted: {what}"),
                Outcome::Fail(why) => {
                    failures.push(format!("{name}: {why}"));
                    format!("FAIL {why}")
                }
            };
            let _ = writeln!(report, "{name}: {line}");
        }
        insta::assert_snapshot!("mlir_samples", report);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn emit_mlir_writes_one_verified_module_per_model_deterministically() {
        let base = std::env::temp_dir().join(format!("tessera-mlir-{}", std::process::id()));
        let mut texts = Vec::new();
        for run in ["a", "b"] {
            let dir = base.join(run);
            let out = dir.to_string_lossy().into_owned();
            let (ok, _, err) = tessera(&[
                "compile",
                "samples/tiny_bert_cls",
                "--emit",
                "mlir",
                "--out",
                &out,
            ]);
            assert!(ok && err.contains("verified by MLIR"), "{err}");
            let files: Vec<_> = std::fs::read_dir(&dir).expect("out dir").collect();
            assert_eq!(files.len(), 1, "one file per model");
            texts.push(std::fs::read(dir.join("tiny_bert_cls.mlir")).expect("the module"));
        }
        assert_eq!(texts[0], texts[1], "--emit mlir is deterministic");
        let _ = std::fs::remove_dir_all(&base);
        let (ok, out, err) = tessera(&[
            "run",
            "samples/mlp_iris",
            "--backend",
            "mlir",
            "--runs",
            "1",
        ]);
        assert!(ok, "{err}");
        assert_eq!(
            out.matches("within atol 1e-5 / rtol 1.3e-6").count(),
            2,
            "{out}"
        );
    }
}
