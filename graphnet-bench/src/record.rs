//! Per-sample result records: one JSON file per (sample, label), written atomically.
//!
//! A native run builds a [`SampleResult`] from a [`RunOutcome`] with [`SampleResult::new`],
//! which decides the status, and stores it with [`write_result`] (temp file in the same
//! directory, fsync, rename). [`load_results`] reads every `*.json` file of a directory.
//! The schema is versioned by [`SCHEMA_VERSION`]; readers reject other versions.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::compare::{Comparison, OutputComparison};
use crate::error::{BenchError, Result};
use crate::score::ScoredSample;
use crate::status::Status;
use crate::timing::{TimingStats, speedup};

/// Version of the result-record schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The result of running one sample with one compiler/backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleResult {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// Sample name (path of the sample relative to the sample root).
    pub sample: String,
    /// Compiler/backend label; one result set (one curve) per label.
    pub label: String,
    /// Outcome; see [`Status`].
    pub status: Status,
    /// Error message for failures, or a note (for example which timing was noisy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Eager timing, when the eager model ran.
    #[serde(default)]
    pub eager: Option<TimingStats>,
    /// Compiled timing, when the compiled model ran.
    #[serde(default)]
    pub compiled: Option<TimingStats>,
    /// Compilation wall time in seconds, when compilation finished.
    #[serde(default)]
    pub compile_time_s: Option<f64>,
    /// `median(eager) / median(compiled)`; present for `correct`, `accuracy` and (when the
    /// medians allow) `noisy`.
    #[serde(default)]
    pub speedup: Option<f64>,
    /// Per-output comparison details (empty when no outputs were compared).
    #[serde(default)]
    pub outputs: Vec<OutputComparison>,
    /// Per level `t ∈ −10..=5`: do all outputs pass? Enough to recompute S(t)/ES(t).
    #[serde(default)]
    pub correct_at: BTreeMap<i32, bool>,
    /// Free-form run metadata (device, warmup, trials, tessera revision, host, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

/// What happened when a sample was run; the input to [`SampleResult::new`].
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// The eager reference failed.
    EagerFailed {
        /// Error message.
        message: String,
        /// Eager timing, if the failure came after timing.
        eager: Option<TimingStats>,
    },
    /// Compilation failed.
    CompileFailed {
        /// Error message.
        message: String,
        /// Eager timing.
        eager: Option<TimingStats>,
        /// Time spent before the failure, if known.
        compile_time_s: Option<f64>,
    },
    /// The compiled model failed while running.
    RuntimeFailed {
        /// Error message.
        message: String,
        /// Eager timing.
        eager: Option<TimingStats>,
        /// Compilation time.
        compile_time_s: Option<f64>,
    },
    /// Both ran; outputs compared with [`crate::compare_outputs`].
    Completed {
        /// The output comparison.
        comparison: Comparison,
        /// Eager timing.
        eager: TimingStats,
        /// Compiled timing.
        compiled: TimingStats,
        /// Compilation time.
        compile_time_s: f64,
    },
}

impl SampleResult {
    /// Builds the record and decides the status: failures map to `eager_fail`,
    /// `compile_fail`, `runtime_fail`; a completed run takes the comparison's status, except
    /// that `correct`/`accuracy` become `noisy` when either timing has IQR/median > 0.2 or
    /// the speedup is not a finite positive number.
    pub fn new(sample: impl Into<String>, label: impl Into<String>, outcome: RunOutcome) -> Self {
        let mut r = SampleResult {
            schema_version: SCHEMA_VERSION,
            sample: sample.into(),
            label: label.into(),
            status: Status::RuntimeFail,
            message: None,
            eager: None,
            compiled: None,
            compile_time_s: None,
            speedup: None,
            outputs: Vec::new(),
            correct_at: crate::tolerance::all_levels().map(|t| (t, false)).collect(),
            meta: BTreeMap::new(),
        };
        match outcome {
            RunOutcome::EagerFailed { message, eager } => {
                r.status = Status::EagerFail;
                r.message = Some(message);
                r.eager = eager;
            }
            RunOutcome::CompileFailed {
                message,
                eager,
                compile_time_s,
            } => {
                r.status = Status::CompileFail;
                r.message = Some(message);
                r.eager = eager;
                r.compile_time_s = compile_time_s;
            }
            RunOutcome::RuntimeFailed {
                message,
                eager,
                compile_time_s,
            } => {
                r.status = Status::RuntimeFail;
                r.message = Some(message);
                r.eager = eager;
                r.compile_time_s = compile_time_s;
            }
            RunOutcome::Completed {
                comparison,
                eager,
                compiled,
                compile_time_s,
            } => {
                let s = speedup(&eager, &compiled);
                let mut status = comparison.status;
                if matches!(status, Status::Correct | Status::Accuracy) {
                    let mut noisy = Vec::new();
                    if eager.is_noisy() {
                        noisy.push("eager");
                    }
                    if compiled.is_noisy() {
                        noisy.push("compiled");
                    }
                    if s.is_none() {
                        noisy.push("speedup");
                    }
                    if !noisy.is_empty() {
                        r.message = Some(format!(
                            "{} outputs; unreliable timing: {}",
                            status,
                            noisy.join(", ")
                        ));
                        status = Status::Noisy;
                    }
                }
                r.status = status;
                r.speedup = s;
                r.outputs = comparison.outputs;
                r.correct_at = comparison.correct_at;
                r.eager = Some(eager);
                r.compiled = Some(compiled);
                r.compile_time_s = Some(compile_time_s);
            }
        }
        r
    }

    /// Reduces the record to what scoring needs; fails (naming `path`) when it is
    /// inconsistent, e.g. a `correct` record without a finite positive speedup.
    pub fn to_scored(&self, path: &Path) -> Result<ScoredSample> {
        let speedup = if self.status.has_outputs() {
            self.speedup
        } else {
            None
        };
        if matches!(self.status, Status::Correct | Status::Accuracy) && speedup.is_none() {
            return Err(BenchError::InvalidRecord {
                path: path.to_path_buf(),
                message: format!("status {} needs a speedup", self.status),
            });
        }
        ScoredSample::new(&self.sample, self.status, speedup, &self.correct_at).map_err(|e| {
            BenchError::InvalidRecord {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })
    }
}

/// File name for a (sample, label) record: both names with every character outside
/// `[A-Za-z0-9._-]` replaced by `_`, joined by `__`, plus a 64-bit FNV-1a hash of the exact
/// names so that different names never share a file.
pub fn result_file_name(sample: &str, label: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sample.bytes().chain([0u8]).chain(label.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let mut stem = format!("{}__{}", clean(sample), clean(label));
    stem = stem.trim_start_matches('.').to_string();
    if stem.len() > 180 {
        let mut cut = 180;
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        stem.truncate(cut);
    }
    format!("{stem}.{hash:016x}.json")
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically: a temporary file in the same directory is written,
/// synced and renamed over `path`, so readers see the old or the new content, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            BenchError::InvalidArgument(format!("{} has no file name", path.display()))
        })?;
    let tmp = dir.join(format!(
        ".{file_name}.tmp.{}.{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(|e| BenchError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| BenchError::io(&tmp, e))?;
        f.sync_all().map_err(|e| BenchError::io(&tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| BenchError::io(path, e))
    })();
    if result.is_err() {
        fs::remove_file(&tmp).ok();
    } else if let Ok(d) = fs::File::open(&dir) {
        // Persist the rename itself; not all platforms allow syncing a directory.
        d.sync_all().ok();
    }
    result
}

/// Serialises `result` (pretty JSON plus a final newline) into `dir` under
/// [`result_file_name`], atomically; creates `dir` if needed. Returns the file's path.
pub fn write_result(dir: &Path, result: &SampleResult) -> Result<PathBuf> {
    fs::create_dir_all(dir).map_err(|e| BenchError::io(dir, e))?;
    let path = dir.join(result_file_name(&result.sample, &result.label));
    let mut json = serde_json::to_vec_pretty(result).map_err(|e| BenchError::Json {
        path: path.clone(),
        source: e,
    })?;
    json.push(b'\n');
    write_atomic(&path, &json)?;
    Ok(path)
}

/// Reads one result file, checking its schema version.
pub fn read_result(path: &Path) -> Result<SampleResult> {
    let bytes = fs::read(path).map_err(|e| BenchError::io(path, e))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| BenchError::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
    let found = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| BenchError::InvalidRecord {
            path: path.to_path_buf(),
            message: "missing or non-integer schema_version".into(),
        })?;
    if found != u64::from(SCHEMA_VERSION) {
        return Err(BenchError::SchemaVersion {
            path: path.to_path_buf(),
            found: u32::try_from(found).unwrap_or(u32::MAX),
            expected: SCHEMA_VERSION,
        });
    }
    serde_json::from_value(value).map_err(|e| BenchError::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Reads every `*.json` file directly inside `dir` (not recursively; hidden files, such as
/// in-flight temporary files, are skipped), sorted by file name.
pub fn load_results(dir: &Path) -> Result<Vec<(PathBuf, SampleResult)>> {
    let entries = fs::read_dir(dir).map_err(|e| BenchError::io(dir, e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| BenchError::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let is_file = entry
            .file_type()
            .map_err(|e| BenchError::io(&path, e))?
            .is_file();
        if is_file {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| read_result(&p).map(|r| (p, r)))
        .collect()
}

/// Records from several directories, deduplicated by (sample, label): identical duplicates
/// are kept once, differing ones are an error naming both files. Sorted by (label, sample).
pub fn collect_results(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, SampleResult)>> {
    let mut by_key: BTreeMap<(String, String), (PathBuf, SampleResult)> = BTreeMap::new();
    for dir in dirs {
        for (path, r) in load_results(dir)? {
            let key = (r.label.clone(), r.sample.clone());
            match by_key.get(&key) {
                Some((first, existing)) => {
                    if existing != &r {
                        return Err(BenchError::DuplicateResult {
                            sample: r.sample,
                            label: r.label,
                            first: first.clone(),
                            second: path,
                        });
                    }
                }
                None => {
                    by_key.insert(key, (path, r));
                }
            }
        }
    }
    Ok(by_key.into_values().collect())
}

/// Merges result directories into `out`: every distinct record of `inputs` (and of `out`
/// itself, if it exists) is written to `out` under its canonical file name. Fails, before
/// writing anything, on a duplicate (sample, label) with different content. Returns the
/// number of records in `out`.
pub fn merge_results(out: &Path, inputs: &[PathBuf]) -> Result<usize> {
    let mut dirs = Vec::with_capacity(inputs.len() + 1);
    if out.is_dir() {
        dirs.push(out.to_path_buf());
    }
    dirs.extend(inputs.iter().cloned());
    let records = collect_results(&dirs)?;
    fs::create_dir_all(out).map_err(|e| BenchError::io(out, e))?;
    for (_, r) in &records {
        write_result(out, r)?;
    }
    Ok(records.len())
}

/// Groups records into result sets by label (sorted by label, samples sorted by name).
pub fn group_by_label(
    records: Vec<(PathBuf, SampleResult)>,
) -> BTreeMap<String, Vec<(PathBuf, SampleResult)>> {
    let mut sets: BTreeMap<String, Vec<(PathBuf, SampleResult)>> = BTreeMap::new();
    for (p, r) in records {
        sets.entry(r.label.clone()).or_default().push((p, r));
    }
    for v in sets.values_mut() {
        v.sort_by(|a, b| a.1.sample.cmp(&b.1.sample));
    }
    sets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{OutputView, Values, compare_outputs};
    use crate::tolerance::DType;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "gnb-record-{tag}-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::remove_dir_all(&d).ok();
        d
    }

    fn timing(v: &[f64]) -> TimingStats {
        crate::timing::timing_stats(v).expect("timing")
    }

    fn completed(a: f64, eager: &[f64], compiled: &[f64]) -> RunOutcome {
        let shape = [1usize];
        let ev = [1.0];
        let av = [a];
        let e = [OutputView::new(DType::Float32, &shape, Values::Float(&ev)).expect("view")];
        let x = [OutputView::new(DType::Float32, &shape, Values::Float(&av)).expect("view")];
        RunOutcome::Completed {
            comparison: compare_outputs(&e, &x),
            eager: timing(eager),
            compiled: timing(compiled),
            compile_time_s: 0.5,
        }
    }

    #[test]
    fn statuses_from_outcomes() {
        let r = SampleResult::new("s", "l", completed(1.0, &[2.0, 2.0, 2.0], &[1.0, 1.0, 1.0]));
        assert_eq!(r.status, Status::Correct);
        assert_eq!(r.speedup, Some(2.0));
        let r = SampleResult::new("s", "l", completed(100.0, &[2.0], &[1.0]));
        assert_eq!(r.status, Status::Accuracy);
        let r = SampleResult::new("s", "l", completed(1.0, &[1.0, 2.0, 3.0], &[1.0]));
        assert_eq!(r.status, Status::Noisy);
        assert!(r.message.as_deref().is_some_and(|m| m.contains("eager")));
        let r = SampleResult::new("s", "l", completed(f64::NAN, &[1.0, 2.0, 3.0], &[1.0]));
        assert_eq!(r.status, Status::NanInf, "nan_inf wins over noisy");
        let r = SampleResult::new("s", "l", completed(1.0, &[1.0], &[0.0]));
        assert_eq!(
            r.status,
            Status::Noisy,
            "zero compiled time gives no speedup"
        );
        let r = SampleResult::new(
            "s",
            "l",
            RunOutcome::EagerFailed {
                message: "x".into(),
                eager: None,
            },
        );
        assert_eq!(r.status, Status::EagerFail);
        let r = SampleResult::new(
            "s",
            "l",
            RunOutcome::CompileFailed {
                message: "x".into(),
                eager: None,
                compile_time_s: None,
            },
        );
        assert_eq!(r.status, Status::CompileFail);
        let r = SampleResult::new(
            "s",
            "l",
            RunOutcome::RuntimeFailed {
                message: "x".into(),
                eager: None,
                compile_time_s: Some(1.0),
            },
        );
        assert_eq!(r.status, Status::RuntimeFail);
        assert_eq!(r.correct_at.len(), 16);
    }

    #[test]
    fn write_read_round_trip_and_merge() {
        let a = tmpdir("a");
        let b = tmpdir("b");
        let out = tmpdir("out");
        let r1 = SampleResult::new("m/1", "tessera", completed(1.0, &[2.0], &[1.0]));
        let r2 = SampleResult::new("m/2", "tessera", completed(1.0, &[3.0], &[1.0]));
        let p1 = write_result(&a, &r1).expect("write");
        write_result(&b, &r2).expect("write");
        write_result(&b, &r1).expect("identical duplicate is fine");
        assert_eq!(read_result(&p1).expect("read"), r1);
        assert_eq!(
            merge_results(&out, &[a.clone(), b.clone()]).expect("merge"),
            2
        );
        let merged = load_results(&out).expect("load");
        assert_eq!(merged.len(), 2);
        let mut r1b = r1.clone();
        r1b.speedup = Some(9.0);
        write_result(&b, &r1b).expect("write");
        let e = merge_results(&out, &[a.clone(), b.clone()]).expect_err("conflict");
        assert!(matches!(e, BenchError::DuplicateResult { .. }), "{e}");
        for d in [a, b, out] {
            fs::remove_dir_all(d).ok();
        }
    }

    #[test]
    fn schema_version_is_checked() {
        let d = tmpdir("schema");
        fs::create_dir_all(&d).expect("dir");
        let p = d.join("x.json");
        fs::write(&p, r#"{"schema_version": 2, "sample": "s"}"#).expect("write");
        assert!(matches!(
            read_result(&p),
            Err(BenchError::SchemaVersion { found: 2, .. })
        ));
        fs::write(&p, r#"{"sample": "s"}"#).expect("write");
        assert!(matches!(
            read_result(&p),
            Err(BenchError::InvalidRecord { .. })
        ));
        fs::write(&p, "{").expect("write");
        assert!(matches!(read_result(&p), Err(BenchError::Json { .. })));
        fs::write(&p, r#"{"schema_version": 1, "sample": "s"}"#).expect("write");
        assert!(matches!(read_result(&p), Err(BenchError::Json { .. })));
        fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn load_skips_hidden_and_non_json() {
        let d = tmpdir("skip");
        fs::create_dir_all(&d).expect("dir");
        fs::write(d.join(".x.json.tmp.1.2"), "garbage").expect("write");
        fs::write(d.join("notes.txt"), "garbage").expect("write");
        assert!(load_results(&d).expect("load").is_empty());
        fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn file_names_are_safe_and_distinct() {
        let a = result_file_name("timm/resnet18", "tessera");
        let b = result_file_name("timm_resnet18", "tessera");
        assert_ne!(a, b);
        assert!(a.starts_with("timm_resnet18__tessera."), "{a}");
        assert!(!result_file_name("../x", "y").starts_with('.'));
        assert!(result_file_name(&"é".repeat(300), "l").len() < 220);
    }

    #[test]
    fn inconsistent_records_are_rejected_for_scoring() {
        let mut r = SampleResult::new("s", "l", completed(1.0, &[2.0], &[1.0]));
        r.speedup = None;
        assert!(r.to_scored(Path::new("x.json")).is_err());
        r.status = Status::Noisy;
        assert!(
            r.to_scored(Path::new("x.json")).is_ok(),
            "noisy may lack a speedup"
        );
        r.status = Status::Correct;
        r.speedup = Some(-1.0);
        assert!(r.to_scored(Path::new("x.json")).is_err());
        r.status = Status::RuntimeFail;
        assert!(r.to_scored(Path::new("x.json")).is_ok());
    }
}
