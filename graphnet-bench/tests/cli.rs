//! End-to-end tests of the `graphnet-bench` binary: score-log, score, merge, shard and
//! error reporting.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use tessera_graphnet_bench::{
    DType, OutputView, RunOutcome, SampleResult, Values, compare_outputs, timing_stats,
    write_result,
};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "gnb-cli-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::remove_dir_all(&p).ok();
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graphnet-bench"))
        .args(args)
        .output()
        .expect("run graphnet-bench")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn golden_log() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/graphnet-scoring/synthetic_60_seed7.log")
        .to_string_lossy()
        .into_owned()
}

fn record(sample: &str, label: &str, actual: f64, eager_ms: f64) -> SampleResult {
    let shape = [1usize];
    let e = [1.0];
    let a = [actual];
    let reference = [OutputView::new(DType::Float32, &shape, Values::Float(&e)).expect("view")];
    let compiled = [OutputView::new(DType::Float32, &shape, Values::Float(&a)).expect("view")];
    SampleResult::new(
        sample,
        label,
        RunOutcome::Completed {
            comparison: compare_outputs(&reference, &compiled),
            eager: timing_stats(&[eager_ms; 5]).expect("timing"),
            compiled: timing_stats(&[1.0; 5]).expect("timing"),
            compile_time_s: 0.25,
        },
    )
}

#[test]
fn score_log_json_prints_parameters_and_levels() {
    let o = bin(&[
        "score-log",
        "--json",
        "--p",
        "0.1",
        "--interpretation",
        "mismatch_extended",
        &golden_log(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1);
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["p"], 0.1);
    assert_eq!(v["b"], 0.1);
    assert_eq!(v["interpretation"], "mismatch_extended");
    assert_eq!(v["ES"].as_object().map(|m| m.len()), Some(16));
    let es3 = v["ES"]["3"].as_f64().unwrap_or(0.0);
    assert!((es3 - 0.735_651_371_049_046_7).abs() < 1e-12);
    assert!(v["components"]["3"]["gamma"].is_number());
    assert!(v["aggregate"]["score"].is_number());
    // Key order as documented.
    let keys: Vec<&str> = [
        "\"label\"",
        "\"log\"",
        "\"p\"",
        "\"b\"",
        "\"interpretation\"",
        "\"S\"",
    ]
    .into_iter()
    .collect();
    let positions: Vec<usize> = keys.iter().filter_map(|k| out.find(k)).collect();
    assert_eq!(positions.len(), keys.len());
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
}

#[test]
fn score_log_table_names_p_and_b() {
    let o = bin(&["score-log", &golden_log()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("p = 0 "), "{out}");
    assert!(out.contains("b = 0.1"), "{out}");
    assert!(out.contains("interpretation = default"), "{out}");
}

#[test]
fn score_log_errors_name_file_and_line() {
    let dir = TempDir::new("badlog");
    let log = dir.0.join("bad.log");
    std::fs::write(
        &log,
        "p [Processing] /m\np [Datatype][eager]: float32\np [Correctness][equal]: yes\n",
    )
    .expect("write");
    let o = bin(&["score-log", &log.to_string_lossy()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("bad.log:3:"), "{err}");
    let o = bin(&["score-log", &dir.0.join("missing.log").to_string_lossy()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("missing.log"));
}

#[test]
fn score_dirs_writes_table_json_and_svg() {
    let a = TempDir::new("a");
    let b = TempDir::new("b");
    write_result(&a.0, &record("m1", "tessera", 1.0, 2.0)).expect("write");
    write_result(&a.0, &record("m2", "tessera", 100.0, 3.0)).expect("write");
    write_result(&b.0, &record("m1", "eager-copy", 1.0, 1.0)).expect("write");
    let svg = a.0.join("plot.svg");
    let o = bin(&[
        "score",
        "--json",
        "--svg",
        &svg.to_string_lossy(),
        &a.0.to_string_lossy(),
        &b.0.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["label"], "eager-copy");
    assert_eq!(lines[1]["label"], "tessera");
    assert_eq!(lines[1]["status_counts"]["accuracy"], 1);
    let s0 = lines[1]["S"]["0"].as_f64().unwrap_or(0.0);
    assert!((s0 - (2.0f64 * 0.1).sqrt()).abs() < 1e-12, "{s0}");
    let text = std::fs::read_to_string(&svg).expect("svg written");
    assert!(roxmltree::Document::parse(&text).is_ok());
}

#[test]
fn score_of_empty_dir_fails() {
    let d = TempDir::new("empty");
    let o = bin(&["score", &d.0.to_string_lossy()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no result files"));
}

#[test]
fn run_of_a_dir_without_samples_fails() {
    let d = TempDir::new("run-empty");
    let out = d.0.join("out");
    let o = bin(&[
        "run",
        "--samples",
        &d.0.to_string_lossy(),
        "--backend",
        "reference",
        "--out",
        &out.to_string_lossy(),
    ]);
    assert!(!o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("no sample under"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("0 sample(s)"), "{}", stderr(&o));
}

#[test]
fn merge_combines_and_rejects_conflicts() {
    let a = TempDir::new("ma");
    let b = TempDir::new("mb");
    let out = TempDir::new("mout");
    write_result(&a.0, &record("m1", "t", 1.0, 2.0)).expect("write");
    write_result(&b.0, &record("m2", "t", 1.0, 2.0)).expect("write");
    write_result(&b.0, &record("m1", "t", 1.0, 2.0)).expect("write");
    let o = bin(&[
        "merge",
        "--out",
        &out.0.to_string_lossy(),
        &a.0.to_string_lossy(),
        &b.0.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("2 records"));
    let c = TempDir::new("mc");
    write_result(&c.0, &record("m1", "t", 1.0, 7.0)).expect("write");
    let o = bin(&[
        "merge",
        "--out",
        &out.0.to_string_lossy(),
        &c.0.to_string_lossy(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("duplicate result"), "{}", stderr(&o));
}

#[test]
fn shard_prints_its_part_of_the_sorted_list() {
    let d = TempDir::new("shard");
    let list = d.0.join("list.txt");
    std::fs::write(&list, "# samples\nc\na\n\nb\nd\n").expect("write");
    let o = bin(&["shard", "--shard", "1/2", &list.to_string_lossy()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "b\nd\n");
    let o = bin(&["shard", "--shard", "2/2", &list.to_string_lossy()]);
    assert!(!o.status.success());
}

#[test]
fn invalid_flags_are_rejected() {
    let o = bin(&["score-log", "--b", "0", &golden_log()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("b must be"), "{}", stderr(&o));
    let o = bin(&["score-log", "--interpretation", "lenient", &golden_log()]);
    assert!(!o.status.success());
}
