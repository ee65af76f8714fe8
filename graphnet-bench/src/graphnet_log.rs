//! Importer for GraphNet's own benchmark logs (`graph_net_bench.torch.test_compiler`).
//!
//! It reads a log the way GraphNet's `analysis_util.py` does (HEAD `1dcbd669`), quirks
//! included, so that scoring the log here gives GraphNet's numbers:
//!
//! * Lines are split with Python's universal newlines (`\n`, `\r\n`, `\r`). A sample starts
//!   at every line containing `[Processing]`; lines before the first one are ignored. The
//!   sample name is the last whitespace-separated token of that line.
//! * Per line, the first of these (regex-search) patterns that matches wins:
//!   `[Processing] …`, `[Config] K: V`, `[Performance][K]: V`, `[Datatype][K]: V`,
//!   `[Correctness][K]: V` (the key is the *longest* bracketed run followed by `": "`),
//!   `[Speedup][K]: V`. Later lines overwrite earlier ones with the same key.
//! * Status (`detect_sample_status`), in order: `eager_fail` unless some line has
//!   `[Datatype][eager]` or `all_close`; `compile_fail` unless `[Datatype][compiled]` or
//!   `all_close`; `shape_mismatch` unless `[Shape]…match:True` or `all_close`;
//!   `type_mismatch` (our `dtype_mismatch`) unless `[DataType]…match:True`; `runtime_fail`
//!   if **any** line contains `Exception:` or `Error:`; else `correct`. Because GraphNet's
//!   writer prints `[Datatype]` lines only when both runs succeeded, compile failures come
//!   out as `eager_fail`, and dtype mismatches (no `all_close` line) as `shape_mismatch`.
//! * A `correct` sample is correct at level `t` when, for every output `i` below the length
//!   of the `[equal]` list, the list under the key built from output `i`'s eager dtype
//!   ([`crate::tolerance::graphnet_log_key`]) has a non-zero entry `i`. A missing key counts
//!   as a failure; no `[equal]` line means zero outputs, i.e. correct everywhere.
//! * The speedup is the `[Speedup][e2e]` value.
//!
//! Where GraphNet's reader would crash (a token that is not a number, a correct sample
//! without speedup, more outputs than eager dtypes) this importer returns
//! [`BenchError::LogParse`] naming the file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{BenchError, Result};
use crate::score::ScoredSample;
use crate::status::Status;
use crate::tolerance::{all_levels, graphnet_log_key};

/// One sample as GraphNet's reader sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSample {
    /// Last token of the `[Processing]` line (the model path).
    pub name: String,
    /// 1-based line number of the `[Processing]` line.
    pub line: usize,
    /// GraphNet's classification (`correct` means "ran"; accuracy is decided per level).
    pub status: Status,
    /// `[Speedup][e2e]`, if present.
    pub speedup: Option<f64>,
    /// Line of the `[Speedup][e2e]` value used.
    pub speedup_line: Option<usize>,
    /// `[Datatype][eager]` dtype strings.
    pub eager_dtypes: Vec<String>,
    /// `[Correctness][KEY]` lists, keyed by `KEY` including its brackets.
    pub correctness: BTreeMap<String, Vec<f64>>,
}

/// A parsed GraphNet log file.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphNetLog {
    /// The file read.
    pub path: PathBuf,
    /// Samples in file order.
    pub samples: Vec<LogSample>,
}

/// Reads and parses a GraphNet log file.
pub fn read_log(path: &Path) -> Result<GraphNetLog> {
    let bytes = std::fs::read(path).map_err(|e| BenchError::io(path, e))?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes
                .iter()
                .take(e.valid_up_to())
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            return Err(BenchError::LogParse {
                path: path.to_path_buf(),
                line,
                message: "not valid UTF-8".into(),
            });
        }
    };
    parse_log(path, text)
}

/// Parses GraphNet log text; `path` is used for the label and error messages only.
pub fn parse_log(path: &Path, text: &str) -> Result<GraphNetLog> {
    let mut samples = Vec::new();
    let mut current: Vec<(usize, &str)> = Vec::new();
    for (i, line) in universal_lines(text).into_iter().enumerate() {
        let lineno = i + 1;
        if line.contains("[Processing]") {
            if !current.is_empty() {
                samples.push(parse_sample(path, &current)?);
            }
            current = vec![(lineno, line)];
        } else if !current.is_empty() {
            current.push((lineno, line));
        }
    }
    if !current.is_empty() {
        samples.push(parse_sample(path, &current)?);
    }
    Ok(GraphNetLog {
        path: path.to_path_buf(),
        samples,
    })
}

impl GraphNetLog {
    /// The curve name GraphNet gives this log: the file name without its extension.
    pub fn label(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "benchmark".to_string())
    }

    /// Converts every sample to a [`ScoredSample`] with GraphNet's per-level correctness.
    pub fn scored_samples(&self) -> Result<Vec<ScoredSample>> {
        self.samples
            .iter()
            .map(|s| scored_sample(&self.path, s))
            .collect()
    }
}

fn scored_sample(path: &Path, s: &LogSample) -> Result<ScoredSample> {
    let err = |line: usize, message: String| BenchError::LogParse {
        path: path.to_path_buf(),
        line,
        message,
    };
    if s.status != Status::Correct {
        return ScoredSample::new(&s.name, s.status, None, &BTreeMap::new())
            .map_err(|e| err(s.line, e.to_string()));
    }
    let output_count = s.correctness.get("[equal]").map_or(0, Vec::len);
    let mut bits = BTreeMap::new();
    for t in all_levels() {
        let mut ok = true;
        // Python's `all(...)` stops at the first failing output, so a missing dtype only
        // matters when an output before it passed.
        for i in 0..output_count {
            let Some(dtype) = s.eager_dtypes.get(i) else {
                return Err(err(
                    s.line,
                    format!(
                        "sample {:?}: [equal] lists {output_count} outputs but [Datatype][eager] \
                         lists {} dtypes (GraphNet's reader fails here too)",
                        s.name,
                        s.eager_dtypes.len()
                    ),
                ));
            };
            let pass = s
                .correctness
                .get(&graphnet_log_key(dtype, t))
                .and_then(|v| v.get(i))
                .is_some_and(|&x| x != 0.0);
            if !pass {
                ok = false;
                break;
            }
        }
        bits.insert(t, ok);
    }
    ScoredSample::new(&s.name, s.status, s.speedup, &bits).map_err(|e| {
        err(
            s.speedup_line.unwrap_or(s.line),
            format!("{e} (GraphNet's reader fails here too)"),
        )
    })
}

/// Python's `str.isspace` (Unicode whitespace plus the ASCII separators 0x1C–0x1F).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no argument.
fn py_split(s: &str) -> Vec<&str> {
    s.split(py_space).filter(|t| !t.is_empty()).collect()
}

/// Python's `str.strip()` with no argument.
fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

/// Python universal-newline line splitting (`\r\n`, `\r`, `\n`); no trailing empty line.
fn universal_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Python's `int(v) if "." not in v else float(v)` with the `ValueError → float(v)` fallback.
fn py_number(token: &str) -> Option<f64> {
    let cleaned: String = token.chars().filter(|&c| c != '_').collect();
    if !cleaned.contains('.')
        && let Ok(i) = cleaned.parse::<i128>()
    {
        #[allow(clippy::cast_precision_loss)]
        return Some(i as f64);
    }
    cleaned.parse::<f64>().ok()
}

/// Regex `\[Processing\] (.+)` (search).
fn matches_processing(line: &str) -> bool {
    line.match_indices("[Processing] ")
        .any(|(i, m)| line.len() > i + m.len())
}

/// Regex `\[Config\] (\S+): (.+)` (search).
fn matches_config(line: &str) -> bool {
    line.match_indices("[Config] ").any(|(i, m)| {
        let rest = &line[i + m.len()..];
        let run_len = rest.find(py_space).unwrap_or(rest.len());
        let run = &rest[..run_len];
        run.len() >= 2 && run.ends_with(':') && {
            let after = &rest[run_len..];
            after.starts_with(' ') && after.len() > 1
        }
    })
}

/// Regex `PREFIX(\w+)\]: (.+)` (search) where `PREFIX` ends in `[`; returns `(word, value)`.
fn match_bracket_word<'a>(line: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    line.match_indices(prefix).find_map(|(i, m)| {
        let rest = &line[i + m.len()..];
        let word_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if word_len == 0 {
            return None;
        }
        let after = rest[word_len..].strip_prefix("]: ")?;
        (!after.is_empty()).then(|| (&rest[..word_len], after))
    })
}

/// Regex `\[Correctness\](\[.+\]): (.+)` (search, greedy key); returns `(key, value)`.
fn match_correctness(line: &str) -> Option<(&str, &str)> {
    const HEAD: &str = "[Correctness]";
    line.match_indices("[Correctness][").find_map(|(i, _)| {
        let rest = &line[i + HEAD.len()..];
        let j = rest
            .match_indices("]: ")
            .map(|(j, _)| j)
            .filter(|&j| j >= 2 && rest.len() > j + 3)
            .last()?;
        Some((&rest[..=j], &rest[j + 3..]))
    })
}

fn parse_sample(path: &Path, lines: &[(usize, &str)]) -> Result<LogSample> {
    let first_line = lines.first().map_or(0, |(n, _)| *n);
    let mut name: Option<String> = None;
    let mut datatypes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut correctness = BTreeMap::new();
    let mut speedup: Option<(f64, usize)> = None;
    let err = |line: usize, message: String| BenchError::LogParse {
        path: path.to_path_buf(),
        line,
        message,
    };

    for &(lineno, line) in lines {
        if matches_processing(line) {
            name = py_split(line).last().map(|s| (*s).to_string());
            continue;
        }
        if matches_config(line) || match_bracket_word(line, "[Performance][").is_some() {
            continue;
        }
        if let Some((key, value)) = match_bracket_word(line, "[Datatype][") {
            let dtypes = py_split(value).into_iter().map(str::to_string).collect();
            datatypes.insert(key.to_string(), dtypes);
            continue;
        }
        if let Some((key, value)) = match_correctness(line) {
            let values = py_split(value)
                .into_iter()
                .map(|tok| {
                    py_number(tok).ok_or_else(|| {
                        err(
                            lineno,
                            format!(
                                "{key}: {tok:?} is not a number (GraphNet's reader fails here too)"
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<f64>>>()?;
            correctness.insert(py_strip(key).to_string(), values);
            continue;
        }
        if let Some((key, value)) = match_bracket_word(line, "[Speedup][") {
            let v = py_number(py_strip(value)).ok_or_else(|| {
                err(
                    lineno,
                    format!("[Speedup][{key}]: {value:?} is not a number (GraphNet's reader fails here too)"),
                )
            })?;
            if key == "e2e" {
                speedup = Some((v, lineno));
            }
        }
    }

    Ok(LogSample {
        name: name.unwrap_or_else(|| format!("<unnamed sample at line {first_line}>")),
        line: first_line,
        status: detect_status(lines.iter().map(|(_, l)| *l)),
        speedup: speedup.map(|(v, _)| v),
        speedup_line: speedup.map(|(_, l)| l),
        eager_dtypes: datatypes.remove("eager").unwrap_or_default(),
        correctness,
    })
}

/// GraphNet's `detect_sample_status`, verbatim in logic.
fn detect_status<'a>(lines: impl Iterator<Item = &'a str> + Clone) -> Status {
    let (mut eager, mut compiled, mut shape, mut dtype) = (false, false, false, false);
    for line in lines.clone() {
        if line.contains("[Datatype][eager]") {
            eager = true;
        } else if line.contains("[Datatype][compiled]") {
            compiled = true;
        } else if line.contains("[Shape]") && line.contains("match:True") {
            shape = true;
        } else if line.contains("[DataType]") && line.contains("match:True") {
            dtype = true;
        } else if line.contains("all_close") {
            shape = true;
            eager = true;
            compiled = true;
        }
    }
    let runtime = lines
        .into_iter()
        .any(|l| l.contains("Exception:") || l.contains("Error:"));
    if !eager {
        Status::EagerFail
    } else if !compiled {
        Status::CompileFail
    } else if !shape {
        Status::ShapeMismatch
    } else if !dtype {
        Status::DtypeMismatch
    } else if runtime {
        Status::RuntimeFail
    } else {
        Status::Correct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "graph-net-test-compiler-log";

    fn parse(text: &str) -> Result<GraphNetLog> {
        parse_log(Path::new("t.log"), text)
    }

    fn one(text: &str) -> LogSample {
        let log = parse(text).expect("parses");
        assert_eq!(log.samples.len(), 1);
        log.samples.into_iter().next().expect("one sample")
    }

    fn ok_sample(extra: &str) -> String {
        format!(
            "{P} [Processing] /x/m\n\
             {P} [Datatype][eager]: float32\n\
             {P} [Datatype][compiled]: float32\n\
             {P} [DataType] eager:['float32'] compiled:['float32'] match:True\n\
             {P} [Correctness][equal]: 0\n\
             {P} [Correctness][all_close_atol_1.00E+01_rtol_1.50E+01]: 1\n\
             {extra}\
             {P} [Speedup][e2e]: 1.50000\n"
        )
    }

    #[test]
    fn correct_sample() {
        let s = one(&ok_sample(""));
        assert_eq!(s.name, "/x/m");
        assert_eq!(s.status, Status::Correct);
        assert_eq!(s.speedup, Some(1.5));
        assert_eq!(s.eager_dtypes, vec!["float32"]);
        let scored = parse(&ok_sample(""))
            .and_then(|l| l.scored_samples())
            .expect("scores");
        assert!(scored[0].passes(1));
        assert!(!scored[0].passes(0), "missing key counts as a failure");
    }

    #[test]
    fn stray_error_text_is_runtime_fail() {
        let s = one(&ok_sample(&format!("{P} UserWarning Error: handled\n")));
        assert_eq!(s.status, Status::RuntimeFail);
        let s = one(&ok_sample("ValueError: x\n"));
        assert_eq!(s.status, Status::RuntimeFail);
        let s = one(&ok_sample("KeyException: x\n"));
        assert_eq!(s.status, Status::RuntimeFail);
    }

    #[test]
    fn compile_failure_reads_as_eager_fail() {
        let text = format!(
            "{P} [Processing] /x/m\n\
             Compiled model execution failed: RuntimeError: boom\n\
             {P} [Result] status: failed\n"
        );
        assert_eq!(one(&text).status, Status::EagerFail);
    }

    #[test]
    fn dtype_mismatch_reads_as_shape_mismatch() {
        let text = format!(
            "{P} [Processing] /x/m\n\
             {P} [Datatype][eager]: float16\n\
             {P} [Datatype][compiled]: float32\n\
             {P} [DataType] eager:['float16'] compiled:['float32'] match:False\n\
             {P} [Speedup][e2e]: 0.64273\n"
        );
        assert_eq!(one(&text).status, Status::ShapeMismatch);
    }

    #[test]
    fn type_mismatch_and_compile_fail_when_lines_say_so() {
        let text = format!(
            "{P} [Processing] /x/m\n\
             {P} [Datatype][eager]: float16\n\
             {P} [Datatype][compiled]: float32\n\
             {P} [Shape] eager:[1] compiled:[1] match:True\n"
        );
        assert_eq!(one(&text).status, Status::DtypeMismatch);
        let text = format!("{P} [Processing] /x/m\n{P} [Datatype][eager]: float16\n");
        assert_eq!(one(&text).status, Status::CompileFail);
    }

    #[test]
    fn lines_before_first_sample_are_ignored_and_crlf_works() {
        let text = format!("noise Error: x\r\n{}", ok_sample("").replace('\n', "\r\n"));
        let s = one(&text);
        assert_eq!(s.status, Status::Correct);
        assert_eq!(s.line, 2);
        let text = ok_sample("").replace('\n', "\r");
        assert_eq!(one(&text).status, Status::Correct);
    }

    #[test]
    fn correctness_key_is_greedy() {
        assert_eq!(
            match_correctness("x [Correctness][a]: [b]: 1 0"),
            Some(("[a]: [b]", "1 0"))
        );
        assert_eq!(
            match_correctness("[Correctness][equal]: 0 1"),
            Some(("[equal]", "0 1"))
        );
        assert_eq!(match_correctness("[Correctness][]: 1"), None);
        assert_eq!(match_correctness("[Correctness][equal]: "), None);
    }

    #[test]
    fn bracket_word_and_config_patterns() {
        assert_eq!(
            match_bracket_word("p [Speedup][e2e]: 1.5", "[Speedup]["),
            Some(("e2e", "1.5"))
        );
        assert_eq!(
            match_bracket_word("[Speedup][e-2]: 1.5", "[Speedup]["),
            None
        );
        assert_eq!(match_bracket_word("[Speedup][e2e]:1.5", "[Speedup]["), None);
        assert!(matches_config("p [Config] device: cuda"));
        assert!(!matches_config("p [Config] device cuda"));
        assert!(!matches_config("p [Config] : cuda"));
        // A config line is consumed before the speedup pattern is tried.
        let s = one(&ok_sample("[Config] x: [Speedup][e2e]: 9.0\n"));
        assert_eq!(s.speedup, Some(1.5));
    }

    #[test]
    fn number_tokens_follow_python() {
        assert_eq!(py_number("1"), Some(1.0));
        assert_eq!(py_number("0"), Some(0.0));
        assert_eq!(py_number("1_0"), Some(10.0));
        assert_eq!(py_number("1e-05"), Some(1e-5));
        assert!(py_number("nan").is_some_and(f64::is_nan));
        assert_eq!(py_number("inf"), Some(f64::INFINITY));
        assert_eq!(py_number("x"), None);
    }

    #[test]
    fn bad_tokens_are_errors_with_line_numbers() {
        let text = ok_sample("").replace("[equal]: 0", "[equal]: zero");
        let e = parse(&text).expect_err("must fail");
        let msg = e.to_string();
        assert!(msg.starts_with("t.log:5:"), "{msg}");
        let text = ok_sample("").replace("1.50000", "fast");
        let msg = parse(&text).expect_err("must fail").to_string();
        assert!(msg.starts_with("t.log:7:"), "{msg}");
    }

    #[test]
    fn correct_without_speedup_is_an_error_at_scoring() {
        let text = ok_sample("").replace(&format!("{P} [Speedup][e2e]: 1.50000\n"), "");
        let log = parse(&text).expect("parses");
        let msg = log.scored_samples().expect_err("must fail").to_string();
        assert!(msg.starts_with("t.log:1:"), "{msg}");
    }

    #[test]
    fn zero_speedup_is_an_error_at_its_line() {
        let text = ok_sample("").replace("1.50000", "0.0");
        let log = parse(&text).expect("parses");
        let msg = log.scored_samples().expect_err("must fail").to_string();
        assert!(msg.starts_with("t.log:7:"), "{msg}");
    }

    #[test]
    fn more_outputs_than_dtypes() {
        let text = ok_sample("").replace("[equal]: 0", "[equal]: 0 0");
        let text = text.replace("rtol_1.50E+01]: 1", "rtol_1.50E+01]: 1 1");
        let log = parse(&text).expect("parses");
        assert!(log.scored_samples().is_err());
        // If output 0 already fails, GraphNet never looks at output 1's dtype.
        let text = ok_sample("")
            .replace("[equal]: 0", "[equal]: 0 0")
            .replace("rtol_1.50E+01]: 1", "rtol_1.50E+01]: 0 1");
        let scored = parse(&text)
            .and_then(|l| l.scored_samples())
            .expect("scores");
        assert!(!scored[0].passes(1));
    }

    #[test]
    fn no_equal_line_means_correct_everywhere() {
        let text = format!(
            "{P} [Processing] /x/m\n\
             {P} [Datatype][eager]: float32\n\
             {P} [Datatype][compiled]: float32\n\
             {P} [DataType] eager:['float32'] compiled:['float32'] match:True\n\
             {P} [Correctness][all_close_atol_1.00E+01_rtol_1.50E+01]: 0\n\
             {P} [Speedup][e2e]: 2.0\n"
        );
        let scored = parse(&text)
            .and_then(|l| l.scored_samples())
            .expect("scores");
        assert!(scored[0].passes(-10));
    }

    #[test]
    fn int_outputs_use_the_equal_line() {
        let text = ok_sample("")
            .replace("eager]: float32", "eager]: int64")
            .replace("[equal]: 0", "[equal]: 1");
        let scored = parse(&text)
            .and_then(|l| l.scored_samples())
            .expect("scores");
        assert!(scored[0].passes(-10) && scored[0].passes(5));
    }

    #[test]
    fn empty_log_has_no_samples_and_label_is_stem() {
        let log = parse("just text\n").expect("parses");
        assert!(log.samples.is_empty());
        assert_eq!(log.label(), "t");
    }

    #[test]
    fn non_utf8_is_reported_with_line() {
        let dir = std::env::temp_dir().join(format!("gnb-utf8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("bad.log");
        std::fs::write(&path, b"ok\nok\n\xff\n").expect("write");
        let msg = read_log(&path).expect_err("must fail").to_string();
        assert!(msg.ends_with("bad.log:3: not valid UTF-8"), "{msg}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
