//! Golden tests: scoring GraphNet's synthetic log must reproduce GraphNet's own numbers.
//!
//! `tests/data/graphnet-scoring/` holds a GraphNet-format log and, per scoring setup, the
//! values GraphNet's `calculate_scores` produced for it (`expected_<interpretation>_p<P>_b<B>.json`).
//! Every value in every expected file is checked to ≤ 1e-12 relative error; a key this test
//! does not know fails the test, so new golden content cannot be skipped silently.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tessera_graphnet_bench::{
    Interpretation, NoisyPolicy, ScoreConfig, ScoreReport, read_log, report_json, report_table,
    score,
};

const REL_TOL: f64 = 1e-12;
const LOG: &str = "synthetic_60_seed7.log";

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/graphnet-scoring")
}

/// `expected_<interp>_p<P>_b<B>.json` → (interpretation, p, b).
fn setup_from_file_name(name: &str) -> (Interpretation, f64, f64) {
    let stem = name
        .strip_prefix("expected_")
        .and_then(|s| s.strip_suffix(".json"))
        .unwrap_or_else(|| panic!("unexpected golden file name {name}"));
    let (rest, b) = stem
        .rsplit_once("_b")
        .unwrap_or_else(|| panic!("no _b in {name}"));
    let (interp, p) = rest
        .rsplit_once("_p")
        .unwrap_or_else(|| panic!("no _p in {name}"));
    let interp: Interpretation = interp.parse().expect("interpretation in file name");
    (
        interp,
        p.parse().expect("p in file name"),
        b.parse().expect("b in file name"),
    )
}

fn golden_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .expect("golden data dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("expected_") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    files
}

fn score_log(interpretation: Interpretation, p: f64, b: f64) -> ScoreReport {
    let log = read_log(&data_dir().join(LOG)).expect("golden log parses");
    let samples = log.scored_samples().expect("golden log scores");
    let config = ScoreConfig {
        p,
        b,
        interpretation,
        noisy: NoisyPolicy::Keep,
    };
    score(&log.label(), &samples, &config).expect("score")
}

fn rel_err(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / a.abs().max(b.abs())
    }
}

fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {v}"))
}

/// Compares two `{t: number}` maps; returns the largest relative error.
fn compare_level_map(expected: &Value, actual: &Value, what: &str) -> f64 {
    let e = expected.as_object().expect("expected level map");
    let a = actual
        .as_object()
        .unwrap_or_else(|| panic!("{what}: missing in our output"));
    let mut ek: Vec<&String> = e.keys().collect();
    let mut ak: Vec<&String> = a.keys().collect();
    ek.sort();
    ak.sort();
    assert_eq!(ek, ak, "{what}: level sets differ");
    e.iter()
        .map(|(t, ev)| {
            let err = rel_err(num(ev, what), num(&a[t], what));
            assert!(err <= REL_TOL, "{what}[{t}]: expected {ev}, got {}", a[t]);
            err
        })
        .fold(0.0, f64::max)
}

fn check_golden(file: &Path) -> f64 {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .expect("file name");
    let (interpretation, p, b) = setup_from_file_name(name);
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(file).expect("read golden")).expect("json");
    let report = score_log(interpretation, p, b);
    let ours = report_json(&report, Some(LOG));
    let mut max_err: f64 = 0.0;
    let mut checked = 0;
    for (key, ev) in expected.as_object().expect("golden object") {
        match key.as_str() {
            "source" => assert!(ev.is_string()),
            "log" => assert_eq!(ev, &ours["log"], "{name}: log"),
            "p" | "b" => {
                let want = if key == "p" { p } else { b };
                assert_eq!(num(ev, key), want, "{name}: {key} vs file name");
                assert_eq!(num(&ours[key], key), want, "{name}: our {key}");
            }
            "interpretation" => assert_eq!(ev, &ours["interpretation"], "{name}"),
            "status_counts" => assert_eq!(ev, &ours["status_counts"], "{name}: status counts"),
            "S" | "ES" => {
                max_err = max_err.max(compare_level_map(ev, &ours[key], &format!("{name} {key}")));
            }
            "components_from_ref" => {
                let e = ev.as_object().expect("components object");
                let a = ours["components"].as_object().expect("our components");
                assert_eq!(e.len(), a.len(), "{name}: component levels");
                for (t, comps) in e {
                    let ours_t = a
                        .get(t)
                        .unwrap_or_else(|| panic!("{name}: no components at t={t}"));
                    for (field, v) in comps.as_object().expect("component fields") {
                        let got = num(&ours_t[field], field);
                        let err = rel_err(num(v, field), got);
                        assert!(
                            err <= REL_TOL,
                            "{name} {field}[{t}]: expected {v}, got {got}"
                        );
                        max_err = max_err.max(err);
                    }
                }
            }
            other => panic!("{name}: golden key {other:?} is not checked by this test"),
        }
        checked += 1;
    }
    assert_eq!(checked, expected.as_object().map_or(0, |o| o.len()));
    max_err
}

#[test]
fn both_golden_files_are_present() {
    let names: Vec<String> = golden_files()
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
        .collect();
    assert_eq!(
        names,
        vec![
            "expected_default_p0_b0.1.json",
            "expected_mismatch_extended_p0.1_b0.1.json"
        ]
    );
}

#[test]
fn default_interpretation_matches_graphnet() {
    let err = check_golden(&data_dir().join("expected_default_p0_b0.1.json"));
    assert!(err <= REL_TOL);
}

#[test]
fn mismatch_extended_matches_graphnet() {
    let err = check_golden(&data_dir().join("expected_mismatch_extended_p0.1_b0.1.json"));
    assert!(err <= REL_TOL);
}

#[test]
fn every_golden_file_matches() {
    for f in golden_files() {
        check_golden(&f);
    }
}

#[test]
fn closed_form_reproduces_the_per_sample_means() {
    for f in golden_files() {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let (interpretation, p, b) = setup_from_file_name(name);
        let report = score_log(interpretation, p, b);
        for l in &report.levels {
            assert!(
                rel_err(l.s, l.s_components.closed_form(p)) <= REL_TOL,
                "S {}",
                l.t
            );
            assert!(
                rel_err(l.es, l.es_components.closed_form(p)) <= REL_TOL,
                "ES {}",
                l.t
            );
        }
    }
}

#[test]
fn graphnet_quirks_show_in_the_status_counts() {
    // The log's 7 compile failures are classified eager_fail, its 2 dtype mismatches
    // shape_mismatch, and 2 samples with "Error:" text after a good comparison runtime_fail.
    let log = read_log(&data_dir().join(LOG)).expect("log");
    let by_name = |n: &str| {
        log.samples
            .iter()
            .find(|s| s.name.ends_with(n))
            .map(|s| s.status.name())
    };
    assert_eq!(by_name("sample_007"), Some("eager_fail"));
    assert_eq!(by_name("sample_009"), Some("shape_mismatch"));
    assert_eq!(by_name("sample_014"), Some("runtime_fail"));
    assert_eq!(by_name("sample_000"), Some("correct"));
}

#[test]
fn table_snapshot_default() {
    let report = score_log(Interpretation::Default, 0.0, 0.1);
    insta::assert_snapshot!(report_table(&report));
}

#[test]
fn table_snapshot_mismatch_extended() {
    let report = score_log(Interpretation::MismatchExtended, 0.1, 0.1);
    insta::assert_snapshot!(report_table(&report));
}
