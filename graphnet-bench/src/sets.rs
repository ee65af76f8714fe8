//! Result sets: the unit that gets one score table, one JSON object and one pair of curves.
//!
//! A GraphNet log is one set named by its file stem; result directories are pooled and split
//! into one set per record label.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{BenchError, Result};
use crate::graphnet_log::read_log;
use crate::record::{collect_results, group_by_label};
use crate::score::{ScoreConfig, ScoreReport, ScoredSample, score};

/// Samples to be scored together.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    /// Curve name: the record label, or the log file's stem.
    pub label: String,
    /// For sets read from a GraphNet log: the log's file name.
    pub log: Option<String>,
    /// The samples.
    pub samples: Vec<ScoredSample>,
}

impl ResultSet {
    /// Scores the set with `config`.
    pub fn score(&self, config: &ScoreConfig) -> Result<ScoreReport> {
        score(&self.label, &self.samples, config)
    }
}

/// One set per GraphNet log file, in argument order; two logs with the same stem are an
/// error because their curves could not be told apart.
pub fn sets_from_logs(paths: &[PathBuf]) -> Result<Vec<ResultSet>> {
    let mut seen = BTreeSet::new();
    paths
        .iter()
        .map(|p| {
            let log = read_log(p)?;
            let label = log.label();
            if !seen.insert(label.clone()) {
                return Err(BenchError::InvalidArgument(format!(
                    "two logs share the curve name {label:?} ({})",
                    p.display()
                )));
            }
            Ok(ResultSet {
                label,
                log: p.file_name().map(|n| n.to_string_lossy().into_owned()),
                samples: log.scored_samples()?,
            })
        })
        .collect()
}

/// One set per label over all records of `dirs` (deduplicated as by
/// [`collect_results`]), sorted by label.
pub fn sets_from_dirs(dirs: &[PathBuf]) -> Result<Vec<ResultSet>> {
    let records = collect_results(dirs)?;
    group_by_label(records)
        .into_iter()
        .map(|(label, recs)| {
            let samples = recs
                .iter()
                .map(|(path, r)| r.to_scored(path))
                .collect::<Result<Vec<_>>>()?;
            Ok(ResultSet {
                label,
                log: None,
                samples,
            })
        })
        .collect()
}

/// Reads a newline-separated sample list (blank lines and `#` comments skipped).
pub fn read_name_list(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}
