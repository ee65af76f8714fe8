//! Rendering a [`ScoreReport`] as a terminal table or as the `--json` object.
//!
//! JSON object keys, in order: `label`, `log` (score-log only), `p`, `b`, `interpretation`,
//! `noisy`, `n`, `status_counts`, `S`, `ES`, `components` (ES(t)'s α β λ η γ),
//! `S_components`, `aggregate`. Level-keyed maps use the level as a string key (`"-10"`)
//! and list levels strictest first.

use std::fmt::Write as _;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::score::{Components, ScoreReport};

/// A map keyed by level, serialised in the given order with string keys.
struct ByLevel<T>(Vec<(i32, T)>);

impl<T: Serialize> Serialize for ByLevel<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (t, v) in &self.0 {
            map.serialize_entry(&t.to_string(), v)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct AggregateJson {
    score: f64,
    log10: f64,
    t_min: i32,
    t_max: i32,
}

#[derive(Serialize)]
struct ReportJson<'a> {
    label: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<&'a str>,
    p: f64,
    b: f64,
    interpretation: &'static str,
    noisy: &'static str,
    n: usize,
    status_counts: StatusCounts,
    #[serde(rename = "S")]
    s: ByLevel<f64>,
    #[serde(rename = "ES")]
    es: ByLevel<f64>,
    components: ByLevel<Components>,
    #[serde(rename = "S_components")]
    s_components: ByLevel<Components>,
    aggregate: AggregateJson,
}

/// Status counts as an ordered `{name: count}` map.
struct StatusCounts(Vec<(&'static str, usize)>);

impl Serialize for StatusCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

fn build<'a>(report: &'a ScoreReport, log: Option<&'a str>) -> ReportJson<'a> {
    let mut counts: Vec<(&'static str, usize)> = report
        .status_counts
        .iter()
        .map(|(s, n)| (s.name(), *n))
        .collect();
    counts.sort_unstable();
    let levels = &report.levels;
    ReportJson {
        label: &report.label,
        log,
        p: report.config.p,
        b: report.config.b,
        interpretation: report.config.interpretation.name(),
        noisy: report.config.noisy.name(),
        n: report.n,
        status_counts: StatusCounts(counts),
        s: ByLevel(levels.iter().map(|l| (l.t, l.s)).collect()),
        es: ByLevel(levels.iter().map(|l| (l.t, l.es)).collect()),
        components: ByLevel(levels.iter().map(|l| (l.t, l.es_components)).collect()),
        s_components: ByLevel(levels.iter().map(|l| (l.t, l.s_components)).collect()),
        aggregate: AggregateJson {
            score: report.aggregate.score,
            log10: report.aggregate.log10,
            t_min: -10,
            t_max: 4,
        },
    }
}

/// The `--json` object for one result set as a `serde_json::Value` (object keys sorted);
/// `log` is the log file's name for `score-log`.
pub fn report_json(report: &ScoreReport, log: Option<&str>) -> serde_json::Value {
    serde_json::to_value(build(report, log)).unwrap_or(serde_json::Value::Null)
}

/// The `--json` object for one result set as a single line, keys in the documented order.
pub fn report_json_line(report: &ScoreReport, log: Option<&str>) -> String {
    serde_json::to_string(&build(report, log)).unwrap_or_default()
}

/// The terminal table for one result set: a header with N, p, b, the interpretation and the
/// noisy policy, the status counts, one row per level (S, ES and ES's components; S's own
/// λ where it differs) and the aggregate.
pub fn report_table(report: &ScoreReport) -> String {
    let c = &report.config;
    let mut out = String::new();
    let _ = writeln!(out, "result set: {} ({} samples)", report.label, report.n);
    let _ = writeln!(
        out,
        "p = {} (GraphNet code default 0; paper 0.1), b = {}, interpretation = {}, noisy = {}",
        c.p, c.b, c.interpretation, c.noisy
    );
    let counts: Vec<String> = report
        .status_counts
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    let _ = writeln!(out, "status: {}", counts.join(", "));
    let _ = writeln!(
        out,
        "{:>4} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>10} {:>10}",
        "t", "S(t)", "ES(t)", "alpha", "beta", "lambda", "eta", "gamma", "S lambda"
    );
    for l in &report.levels {
        let e = &l.es_components;
        let _ = writeln!(
            out,
            "{:>4} {:>10.6} {:>10.6} {:>10.6} {:>10.6} {:>8.4} {:>8.4} {:>10.6} {:>10.4}",
            l.t, l.s, l.es, e.alpha, e.beta, e.lambda, e.eta, e.gamma, l.s_components.lambda
        );
    }
    let _ = writeln!(
        out,
        "ES(t) = alpha^lambda * beta^(lambda*eta*p) * gamma^(1-lambda); \
         for t >= 1 the components are frozen at t = 1"
    );
    let _ = writeln!(
        out,
        "aggregate (GraphNet weights, t = -10..4): {:.6} (log10 {:.6})",
        report.aggregate.score, report.aggregate.log10
    );
    out
}
