//! GraphNet-compatible benchmark scoring for tessera.
//!
//! This crate is the scoring core behind the `graphnet-bench` binary. It is independent of
//! the compiler: outputs arrive as [`OutputView`]s and timings as plain millisecond lists.
//!
//! * [`compare_outputs`] classifies a sample from its eager and compiled outputs and computes
//!   correctness at every tolerance level `t ∈ −10..=5` ([`mod@tolerance`]).
//! * [`timing_stats`] summarises trials (median, IQR, ...) and flags noise.
//! * [`SampleResult`] is the per-sample JSON record; [`write_result`] stores it atomically,
//!   [`load_results`] / [`collect_results`] / [`merge_results`] read and combine them.
//! * [`score()`] computes S(t), ES(t), their closed-form components and GraphNet's aggregate.
//! * [`graphnet_log`] imports GraphNet's own benchmark logs, quirks included, and reproduces
//!   GraphNet's numbers.
//! * [`sets`] turns logs and result directories into [`ResultSet`]s (one curve each);
//!   [`report`] renders tables and JSON, [`plot`] the SVG curves; [`Shard`] splits sample
//!   lists across machines.
//!
//! The library never prints or exits; every failure is a [`BenchError`].

pub mod compare;
pub mod error;
pub mod graphnet_log;
pub mod native;
pub mod plot;
pub mod record;
pub mod report;
pub mod score;
pub mod sets;
pub mod shard;
pub mod status;
pub mod timing;
pub mod tolerance;

pub use compare::{
    Comparison, OutputComparison, OutputView, Values, compare_outputs, isclose,
    strictest_passing_level,
};
pub use error::{BenchError, Result};
pub use graphnet_log::{GraphNetLog, LogSample, parse_log, read_log};
pub use plot::{render_svg, write_svg};
pub use record::{
    RunOutcome, SCHEMA_VERSION, SampleResult, collect_results, group_by_label, load_results,
    merge_results, read_result, result_file_name, write_atomic, write_result,
};
pub use report::{report_json, report_json_line, report_table};
pub use score::{
    Aggregate, Components, LevelScore, ScoreConfig, ScoreReport, ScoredSample, aggregate_weights,
    passing_from, score,
};
pub use sets::{ResultSet, read_name_list, sets_from_dirs, sets_from_logs};
pub use shard::Shard;
pub use status::{ErrorClass, Interpretation, NoisyPolicy, Status};
pub use timing::{NOISE_THRESHOLD, TimingStats, quantile_linear, speedup, timing_stats};
pub use tolerance::{DType, T_MAX, T_MIN, Tolerance, tolerance};
