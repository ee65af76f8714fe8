//! `tessera compile` and `tessera run --backend reference --optimize`: what they print
//! and write.

mod cli_support;
use cli_support::tessera;
use std::path::{Path, PathBuf};

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn compile_prints_optimized_ir_that_parses_and_a_pass_table() {
    let (ok, out, err) = tessera(&["compile", "samples/tiny_bert_cls", "--emit", "ir"]);
    assert!(ok, "{err}");
    let g = tessera::ir::text::parse(&out).expect("stdout is the text IR");
    tessera::ir::verify(&g).unwrap();
    assert!(
        g.nodes().any(|(_, n)| n.op.name() == "attention"),
        "attention is fused:\n{out}"
    );
    let table: Vec<&str> = err.lines().collect();
    assert!(
        table[0].contains("pass") && table[0].contains("nodes"),
        "{err}"
    );
    let passes: Vec<&str> = table
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| ["dce", "egraph"].contains(p))
        .collect();
    assert_eq!(passes, ["dce", "egraph", "dce"], "{err}");
    assert!(
        err.contains("e-nodes") && err.contains("modeled cost"),
        "{err}"
    );
}

#[test]
fn compile_is_deterministic_byte_for_byte() {
    let a = tessera(&["compile", "samples/tiny_gptj_cls"]);
    let b = tessera(&["compile", "samples/tiny_gptj_cls"]);
    assert!(a.0 && b.0, "{}", a.2);
    assert_eq!(a.1, b.1);
}

#[test]
fn compile_stop_after_runs_a_prefix_of_the_pipeline() {
    let (ok, out, err) = tessera(&["compile", "samples/mlp_iris", "--stop-after", "1"]);
    assert!(ok, "{err}");
    let (_, dumped, _) = tessera(&["dump", "samples/mlp_iris"]);
    // The first pass is dce, which leaves an import unchanged.
    assert_eq!(out, dumped);
    assert!(!err.contains("egraph"), "{err}");
}

#[test]
fn compile_rejects_unknown_devices_and_pipelines() {
    let (ok, _, err) = tessera(&["compile", "samples/mlp_iris", "--device", "tpu9"]);
    assert!(!ok);
    assert!(
        err.contains("unknown device \"tpu9\"") && err.contains("h200"),
        "{err}"
    );
    let (ok, _, err) = tessera(&["compile", "samples/mlp_iris", "--pipeline", "fastest"]);
    assert!(!ok);
    assert!(err.contains("unknown pipeline \"fastest\""), "{err}");
    let (ok, out, err) = tessera(&["compile", "samples/mlp_iris", "--device", "cpu"]);
    assert!(ok, "{err}");
    tessera::ir::text::parse(&out).unwrap();
}

/// `run --backend reference --optimize` (the interpreter on the optimized graph) writes the
/// same files as `run --backend reference`, with values within GraphNet's float32
/// tolerance at t = −5 of each other.
#[test]
fn run_optimize_writes_the_same_outputs() {
    let plain = temp_dir("run-plain");
    let opt = temp_dir("run-opt");
    for (dir, extra) in [(&plain, None), (&opt, Some("--optimize"))] {
        let mut args = vec![
            "run",
            "samples/tiny_bert_cls",
            "--backend",
            "reference",
            "--output-dir",
            dir.to_str().unwrap(),
        ];
        args.extend(extra);
        let (ok, out, err) = tessera(&args);
        assert!(ok, "{err}");
        assert!(out.contains("within atol 1e-5 / rtol 1.3e-6"), "{out}");
        if extra.is_some() {
            assert!(err.contains("egraph"), "the pass table is printed: {err}");
        }
    }
    let mut names: Vec<_> = std::fs::read_dir(&plain)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for n in names {
        let (na, a) = tessera::onnx::read_tensor_file(&plain.join(&n)).unwrap();
        let (nb, b) = tessera::onnx::read_tensor_file(&opt.join(&n)).unwrap();
        assert_eq!(na, nb);
        let c = tessera::sample::compare(&b, &a, 1e-5, 1.3e-6).unwrap();
        assert!(
            c.all_close,
            "{}: max abs {:.3e}",
            Path::new(&n).display(),
            c.max_abs
        );
    }
}
