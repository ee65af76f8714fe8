//! The crate's single error type.
//!
//! Every fallible library function returns [`Result`]. Messages name the file (and, for
//! GraphNet logs, the 1-based line) that caused the problem, so the CLI can print them as-is.

use std::path::PathBuf;

/// Everything that can go wrong in the scoring core, the log importer and the result store.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Reading or writing a file or directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A GraphNet benchmark log could not be read the way GraphNet's own reader reads it.
    #[error("{}:{line}: {message}", path.display())]
    LogParse {
        /// The log file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with that line (or with the sample that starts there).
        message: String,
    },

    /// A per-sample result file is not valid JSON of the expected shape.
    #[error("{}: invalid result record: {source}", path.display())]
    Json {
        /// The result file.
        path: PathBuf,
        /// The serde error (it carries line and column).
        source: serde_json::Error,
    },

    /// A per-sample result file was written with a schema this build does not read.
    #[error("{}: result schema_version {found}, this build reads {expected}", path.display())]
    SchemaVersion {
        /// The result file.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
        /// The version this build writes and reads.
        expected: u32,
    },

    /// A result record is well-formed JSON but internally inconsistent.
    #[error("{}: {message}", path.display())]
    InvalidRecord {
        /// The result file (or a pseudo-path naming the sample when there is no file).
        path: PathBuf,
        /// What is inconsistent.
        message: String,
    },

    /// Two result files describe the same (sample, label) pair with different content.
    #[error(
        "duplicate result for sample {sample:?} label {label:?} with different content: {} and {}",
        first.display(),
        second.display()
    )]
    DuplicateResult {
        /// Sample name.
        sample: String,
        /// Compiler/backend label.
        label: String,
        /// The first file seen.
        first: PathBuf,
        /// The conflicting file.
        second: PathBuf,
    },

    /// `run` found no sample (a directory with `meta.json`) under the samples root.
    #[error(
        "no sample under {}: a sample is a directory with a meta.json (see samples/README.md)",
        root.display()
    )]
    NoSamplesFound {
        /// The samples root that was searched.
        root: PathBuf,
    },

    /// A result set has no samples, so no geometric mean exists.
    #[error("result set {label:?} has no samples")]
    NoSamples {
        /// The result set's label.
        label: String,
    },

    /// A caller-supplied value (flag, shard spec, output view, timing list) is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Rendering the SVG plot failed.
    #[error("plot: {0}")]
    Plot(String),
}

/// Shorthand for `std::result::Result<T, BenchError>`.
pub type Result<T> = std::result::Result<T, BenchError>;

impl BenchError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BenchError::Io {
            path: path.into(),
            source,
        }
    }
}
