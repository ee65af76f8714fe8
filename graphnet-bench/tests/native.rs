//! Native runs on the bundled samples: statuses, resume, shards, external baselines.

use std::path::{Path, PathBuf};

use tessera_graphnet_bench::Status;
use tessera_graphnet_bench::native::{
    Backend, BaselineFile, BaselineSample, Progress, Protocol, RunConfig, Variant, run_all,
};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gnb-native-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy_sample(name: &str, to: &Path) {
    let from = samples().join(name);
    let dst = to.join(name);
    for sub in ["", "inputs", "outputs"] {
        let (s, d) = (from.join(sub), dst.join(sub));
        if !s.is_dir() {
            continue;
        }
        std::fs::create_dir_all(&d).unwrap();
        for e in std::fs::read_dir(&s).unwrap().flatten() {
            if e.path().is_file() {
                std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
            }
        }
    }
}

fn config(samples: PathBuf, out: PathBuf, baseline: Variant) -> RunConfig {
    RunConfig {
        samples,
        out,
        compiled: Variant::Tessera(Backend::Reference),
        baseline,
        protocol: Protocol {
            warmup: 1,
            trials: 3,
            max_remeasure: 1,
        },
        label: "tessera-reference".into(),
        shard: None,
    }
}

fn statuses(cfg: &RunConfig) -> Vec<(String, Option<Status>)> {
    let mut seen = Vec::new();
    run_all(cfg, &mut |_, _, p| match p {
        Progress::Resumed { name } => seen.push((name, None)),
        Progress::Done { name, result, .. } => seen.push((name, Some(result.status))),
    })
    .unwrap();
    seen
}

#[test]
fn a_correct_sample_then_resume() {
    let dir = tmp("resume");
    copy_sample("mlp_iris", &dir.join("s"));
    let cfg = config(
        dir.join("s"),
        dir.join("out"),
        Variant::Tessera(Backend::Reference),
    );
    let first = statuses(&cfg);
    assert_eq!(first.len(), 1);
    assert!(
        matches!(first[0].1, Some(Status::Correct) | Some(Status::Noisy)),
        "{first:?}"
    );
    // The record exists now, so a second run keeps it.
    assert_eq!(statuses(&cfg), vec![("mlp_iris".to_string(), None)]);
    let records = tessera_graphnet_bench::load_results(&dir.join("out")).unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0].1;
    assert_eq!(
        r.meta.get("compiled").map(String::as_str),
        Some("tessera-reference")
    );
    assert!(
        r.correct_at[&-5],
        "the reference matches onnxruntime at t = -5"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_reference_outputs_are_an_accuracy_failure() {
    let dir = tmp("accuracy");
    copy_sample("mlp_iris", &dir.join("s"));
    // A reference of the right dtype and shape that nothing matches at any level: at t = 1
    // (where GraphNet decides correct vs accuracy) the tolerances are loose (atol 10,
    // rtol 15), but NaN never compares close.
    let t =
        tessera::ir::Tensor::from_vec(tessera::ir::Shape::from_dims(&[2, 3]), vec![f32::NAN; 6])
            .unwrap();
    std::fs::write(
        dir.join("s/mlp_iris/outputs/0.pb"),
        tessera::onnx::encode_tensor(&t, "linear_1"),
    )
    .unwrap();
    let cfg = config(
        dir.join("s"),
        dir.join("out"),
        Variant::Tessera(Backend::Reference),
    );
    assert_eq!(
        statuses(&cfg),
        vec![("mlp_iris".to_string(), Some(Status::Accuracy))]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_broken_model_is_an_eager_failure() {
    let dir = tmp("broken");
    copy_sample("mlp_iris", &dir.join("s"));
    std::fs::write(dir.join("s/mlp_iris/model.onnx"), b"not a model").unwrap();
    let cfg = config(
        dir.join("s"),
        dir.join("out"),
        Variant::Tessera(Backend::Reference),
    );
    assert_eq!(
        statuses(&cfg),
        vec![("mlp_iris".to_string(), Some(Status::EagerFail))]
    );
    let r = &tessera_graphnet_bench::load_results(&dir.join("out")).unwrap()[0].1;
    assert!(
        r.message
            .as_deref()
            .unwrap_or("")
            .contains("not a valid ONNX model"),
        "{r:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unavailable_backend_is_a_compile_failure() {
    let dir = tmp("compile");
    copy_sample("mlp_iris", &dir.join("s"));
    let mut cfg = config(
        dir.join("s"),
        dir.join("out"),
        Variant::Tessera(Backend::Reference),
    );
    cfg.compiled = Variant::Tessera(Backend::Cuda);
    cfg.label = "tessera-cuda".into();
    let got = statuses(&cfg);
    assert_eq!(got.len(), 1);
    // Without a GPU (or without the cuda feature) the CUDA backend cannot compile.
    assert_eq!(got[0].1, Some(Status::CompileFail), "{got:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn external_baseline_timings() {
    let dir = tmp("baseline");
    copy_sample("mlp_iris", &dir.join("s"));
    copy_sample("tiny_bert_cls", &dir.join("s"));
    let mut file = BaselineFile {
        label: "torch-eager".into(),
        ..Default::default()
    };
    file.samples.insert(
        "mlp_iris".into(),
        BaselineSample {
            trials_ms: vec![10.0, 10.0, 10.0, 10.0, 10.0],
            ..Default::default()
        },
    );
    file.samples.insert(
        "tiny_bert_cls".into(),
        BaselineSample {
            error: Some("torch failed".into()),
            ..Default::default()
        },
    );
    let cfg = config(dir.join("s"), dir.join("out"), Variant::External(file));
    let got = statuses(&cfg);
    assert_eq!(
        got[1],
        ("tiny_bert_cls".to_string(), Some(Status::EagerFail))
    );
    let records = tessera_graphnet_bench::load_results(&dir.join("out")).unwrap();
    let mlp = records
        .iter()
        .find(|(_, r)| r.sample == "mlp_iris")
        .unwrap();
    assert_eq!(mlp.1.eager.as_ref().map(|e| e.median_ms), Some(10.0));
    assert_eq!(
        mlp.1.meta.get("baseline").map(String::as_str),
        Some("torch-eager")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shards_partition_the_samples() {
    let dir = tmp("shards");
    for s in ["mlp_iris", "tiny_bert_cls", "tiny_vit"] {
        copy_sample(s, &dir.join("s"));
    }
    let mut names = Vec::new();
    for i in 0..2 {
        let mut cfg = config(
            dir.join("s"),
            dir.join(format!("out{i}")),
            Variant::Tessera(Backend::Reference),
        );
        cfg.shard = Some(format!("{i}/2").parse().unwrap());
        names.extend(statuses(&cfg).into_iter().map(|(n, _)| n));
    }
    names.sort();
    assert_eq!(names, ["mlp_iris", "tiny_bert_cls", "tiny_vit"]);
    let merged = dir.join("merged");
    let n = tessera_graphnet_bench::merge_results(&merged, &[dir.join("out0"), dir.join("out1")])
        .unwrap();
    assert_eq!(n, 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_external_compiled_variant_is_scored_from_its_output_files() {
    let dir = tmp("external");
    copy_sample("mlp_iris", &dir.join("s"));
    // The "compiled" outputs are the sample's own reference outputs: correct by construction.
    std::fs::create_dir_all(dir.join("ext")).unwrap();
    std::fs::copy(
        samples().join("mlp_iris/outputs/0.pb"),
        dir.join("ext/0.pb"),
    )
    .unwrap();
    let mut file = BaselineFile {
        label: "torch-compile".into(),
        dir: dir.join("ext"),
        ..Default::default()
    };
    file.samples.insert(
        "mlp_iris".into(),
        BaselineSample {
            trials_ms: vec![1.0, 1.0, 1.0],
            outputs: vec!["0.pb".into()],
            compile_s: Some(2.5),
            ..Default::default()
        },
    );
    let mut cfg = config(
        dir.join("s"),
        dir.join("out"),
        Variant::Tessera(Backend::Reference),
    );
    cfg.compiled = Variant::External(file);
    cfg.label = "torch-compile".into();
    let got = statuses(&cfg);
    assert!(
        matches!(got[0].1, Some(Status::Correct) | Some(Status::Noisy)),
        "{got:?}"
    );
    let r = &tessera_graphnet_bench::load_results(&dir.join("out")).unwrap()[0].1;
    assert_eq!(r.compile_time_s, Some(2.5));
    assert!(r.correct_at[&-10], "identical outputs pass at every level");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The bundled example, run natively, scored with its timings replaced by fixed values (so
/// the table only depends on the backend's numerics and the scoring): a snapshot.
#[test]
fn bundled_example_score_table() {
    let dir = tmp("bundled");
    let mut cfg = config(
        samples(),
        dir.join("out"),
        Variant::Tessera(Backend::Reference),
    );
    cfg.protocol = Protocol {
        warmup: 0,
        trials: 1,
        max_remeasure: 0,
    };
    let ran = statuses(&cfg);
    assert_eq!(ran.len(), 7);
    // Fixed timings: sample k gets eager 10 ms and compiled 10/(1 + k/4) ms, so speedups
    // 1, 1.25, ... 2.5; the one with k = 3 is made slower than eager to exercise p.
    for (k, (path, mut r)) in tessera_graphnet_bench::load_results(&dir.join("out"))
        .unwrap()
        .into_iter()
        .enumerate()
    {
        let compiled = if k == 3 {
            12.5
        } else {
            10.0 / (1.0 + k as f64 / 4.0)
        };
        r.eager = Some(tessera_graphnet_bench::timing_stats(&[10.0]).unwrap());
        r.compiled = Some(tessera_graphnet_bench::timing_stats(&[compiled]).unwrap());
        r.speedup = Some(10.0 / compiled);
        r.status = Status::Correct;
        tessera_graphnet_bench::write_atomic(&path, serde_json::to_string(&r).unwrap().as_bytes())
            .unwrap();
    }
    let sets = tessera_graphnet_bench::sets_from_dirs(&[dir.join("out")]).unwrap();
    let config = tessera_graphnet_bench::ScoreConfig {
        p: 0.1,
        ..Default::default()
    };
    let table = tessera_graphnet_bench::report_table(&sets[0].score(&config).unwrap());
    insta::assert_snapshot!(table);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_directory_without_samples_is_an_error() {
    let dir = tmp("empty");
    std::fs::create_dir_all(dir.join("s/not_a_sample")).unwrap();
    let cfg = config(
        dir.join("s"),
        dir.join("out"),
        Variant::Tessera(Backend::Reference),
    );
    let err = run_all(&cfg, &mut |_, _, _| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no sample under {}: a sample is a directory with a meta.json (see samples/README.md)",
            dir.join("s").display()
        )
    );
    // Nothing was written, not even the output directory.
    assert!(!dir.join("out").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
