//! S(t), ES(t), their closed-form components and GraphNet's aggregate score.
//!
//! For a result set of `N` samples and a level `t`, each sample is either *correct at t*
//! (with speedup `s`) or a failure of some [`ErrorClass`]:
//!
//! * rectified speedup `r(s) = s` if `s ≥ 1`, else `s^(p+1)`;
//! * **S(t)** = geometric mean over all `N` samples of `r(s)` for correct samples and `b` for
//!   failures (an `accuracy` failure at `t` included);
//! * **ES(t)** = S(t) for `t ≤ 0`; for `t ≥ 1` correctness is frozen at `t = 1`: samples
//!   correct at 1 contribute `r(s)`, failures at 1 whose class the interpretation tolerates at
//!   `t` contribute 1, the rest `b`.
//!
//! Closed form (reported per level): with `M` correct samples, `K` of them slower than eager,
//! `α` = geometric mean of the correct speedups, `β` = that of the slow ones, `λ = M/N`,
//! `η = K/M`, `γ = b` for `t ≤ 0` and `γ = b^(U/E)` for `t ≥ 1` (`E = N − M` failures at
//! `t = 1`, `U` of them not tolerated at `t`):
//! `ES(t) = α^λ · β^(λ·η·p) · γ^(1−λ)`. Empty means give `α = β = 1`, `η = 0`, and `γ = 1`
//! when `E = 0`. S(t) has the same form with its own components and `γ = b`.
//!
//! The reported S/ES values are the per-sample geometric means (GraphNet's
//! `calculate_scores`); the components are computed independently from the same outcomes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{BenchError, Result};
use crate::status::{ErrorClass, Interpretation, NoisyPolicy, Status};
use crate::tolerance::{LEVELS, T_MIN, level_index};

/// Scoring parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoreConfig {
    /// Slowdown penalty exponent: correct samples with `s < 1` count as `s^(p+1)`.
    /// GraphNet's code default is 0; its paper uses 0.1.
    pub p: f64,
    /// Constant contributed by failures (GraphNet's `--fpdb`, default 0.1).
    pub b: f64,
    /// Error-tolerance interpretation for ES(t).
    pub interpretation: Interpretation,
    /// How `noisy` samples are scored.
    pub noisy: NoisyPolicy,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            p: 0.0,
            b: 0.1,
            interpretation: Interpretation::Default,
            noisy: NoisyPolicy::Keep,
        }
    }
}

impl ScoreConfig {
    /// Checks that `p` is finite and non-negative and `b` finite and positive.
    pub fn validate(&self) -> Result<()> {
        if !(self.p.is_finite() && self.p >= 0.0) {
            return Err(BenchError::InvalidArgument(format!(
                "p must be a finite number >= 0, got {}",
                self.p
            )));
        }
        if !(self.b.is_finite() && self.b > 0.0) {
            return Err(BenchError::InvalidArgument(format!(
                "b must be a finite number > 0, got {}",
                self.b
            )));
        }
        Ok(())
    }
}

/// One sample reduced to what scoring needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredSample {
    name: String,
    status: Status,
    speedup: Option<f64>,
    correct_at: [bool; LEVELS],
}

impl ScoredSample {
    /// Builds a sample. `correct_at` lists the levels at which all outputs pass (levels
    /// outside `T_MIN..=T_MAX` are ignored; unlisted levels fail; failing statuses ignore
    /// it). Fails when the speedup is given but not finite and positive, or when a
    /// `correct`/`accuracy` sample passes some level without a speedup. A `noisy` sample
    /// without speedup is scored as a run-time failure under either policy.
    pub fn new(
        name: impl Into<String>,
        status: Status,
        speedup: Option<f64>,
        correct_at: &BTreeMap<i32, bool>,
    ) -> Result<Self> {
        let name = name.into();
        let mut bits = [false; LEVELS];
        if status.has_outputs() {
            for (&t, &ok) in correct_at {
                if let Some(i) = level_index(t) {
                    bits[i] = ok;
                }
            }
        }
        if let Some(s) = speedup
            && !(s.is_finite() && s > 0.0)
        {
            return Err(BenchError::InvalidArgument(format!(
                "sample {name:?}: speedup {s} is not a finite positive number"
            )));
        }
        if bits.iter().any(|&b| b) && speedup.is_none() && status != Status::Noisy {
            return Err(BenchError::InvalidArgument(format!(
                "sample {name:?} passes some tolerance level but has no speedup"
            )));
        }
        Ok(ScoredSample {
            name,
            status,
            speedup,
            correct_at: bits,
        })
    }

    /// Sample name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Recorded status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Speedup, when the sample has one.
    pub fn speedup(&self) -> Option<f64> {
        self.speedup
    }

    /// True when all outputs pass at level `t` (false outside `T_MIN..=T_MAX`).
    pub fn passes(&self, t: i32) -> bool {
        level_index(t).is_some_and(|i| self.correct_at[i])
    }

    /// The sample's outcome at level `t` under `noisy`.
    fn outcome(&self, t: i32, noisy: NoisyPolicy) -> Outcome {
        let scored_by_bits = match self.status {
            Status::Correct | Status::Accuracy => true,
            Status::Noisy => noisy == NoisyPolicy::Keep && self.speedup.is_some(),
            _ => false,
        };
        if scored_by_bits {
            match (self.passes(t), self.speedup) {
                (true, Some(s)) => Outcome::Correct(s),
                _ => Outcome::Fail(ErrorClass::Accuracy),
            }
        } else {
            Outcome::Fail(self.status.failure_class().unwrap_or(ErrorClass::Runtime))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Correct(f64),
    Fail(ErrorClass),
}

/// Closed-form components of a score at one level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Components {
    /// Geometric mean of the speedups of correct samples (1 if none).
    pub alpha: f64,
    /// Geometric mean of the speedups `< 1` of correct samples (1 if none).
    pub beta: f64,
    /// Fraction of samples that are correct, `M/N`.
    #[serde(rename = "lambda")]
    pub lambda: f64,
    /// Fraction of correct samples that are slower than eager, `K/M` (0 if `M = 0`).
    pub eta: f64,
    /// Per-failure penalty base: `b`, or `b^(U/E)` for ES at `t ≥ 1`.
    pub gamma: f64,
}

impl Components {
    /// `α^λ · β^(λ·η·p) · γ^(1−λ)`.
    pub fn closed_form(&self, p: f64) -> f64 {
        self.alpha.powf(self.lambda)
            * self.beta.powf(self.lambda * self.eta * p)
            * self.gamma.powf(1.0 - self.lambda)
    }
}

/// Scores at one level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LevelScore {
    /// The level.
    pub t: i32,
    /// S(t).
    pub s: f64,
    /// ES(t).
    pub es: f64,
    /// Components of S(t) (`γ = b`).
    pub s_components: Components,
    /// Components of ES(t); equal to `s_components` for `t ≤ 0`.
    pub es_components: Components,
}

/// GraphNet's aggregate (`graph_net_bench/aggregate_es_scores.py`): a weighted geometric
/// mean of ES(t) over `t ∈ −10..=4`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Aggregate {
    /// `10^log10`.
    pub score: f64,
    /// `Σ_t w_t · log10 ES(t)` with the normalised weights of [`aggregate_weights`].
    pub log10: f64,
}

/// The full score of one result set.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreReport {
    /// Result set name (compiler/backend label, or log file stem).
    pub label: String,
    /// Parameters used.
    pub config: ScoreConfig,
    /// Number of samples `N`.
    pub n: usize,
    /// Samples per recorded status (statuses with zero samples omitted).
    pub status_counts: BTreeMap<Status, usize>,
    /// One entry per level in `config.interpretation.levels()`, strictest first.
    pub levels: Vec<LevelScore>,
    /// GraphNet's aggregate score.
    pub aggregate: Aggregate,
}

impl ScoreReport {
    /// The entry for level `t`, if reported.
    pub fn level(&self, t: i32) -> Option<&LevelScore> {
        self.levels.iter().find(|l| l.t == t)
    }
}

/// GraphNet's aggregate weights for `t = −10..=4` before normalisation
/// ("derived from the NLP ES metrics of NVIDIA A100 relative to H20").
pub const AGGREGATE_RAW_WEIGHTS: [(i32, f64); 15] = [
    (-10, 0.001),
    (-9, 0.001),
    (-8, 0.001),
    (-7, 0.13),
    (-6, 0.40),
    (-5, 0.48),
    (-4, 0.48),
    (-3, 0.48),
    (-2, 0.48),
    (-1, 0.48),
    (0, 0.48),
    (1, 0.48),
    (2, 0.48),
    (3, 0.48),
    (4, 0.48),
];

/// The aggregate weights, normalised to sum to 1 (raw sum 5.333).
pub fn aggregate_weights() -> Vec<(i32, f64)> {
    let sum: f64 = AGGREGATE_RAW_WEIGHTS.iter().map(|(_, w)| w).sum();
    AGGREGATE_RAW_WEIGHTS
        .iter()
        .map(|&(t, w)| (t, w / sum))
        .collect()
}

fn rectify(s: f64, p: f64) -> f64 {
    if s < 1.0 { s.powf(p + 1.0) } else { s }
}

/// `exp(mean(ln x))`, as `scipy.stats.gmean`; 1 for an empty input.
fn gmean(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut sum = 0.0;
    let mut n = 0usize;
    for v in values {
        sum += v.ln();
        n += 1;
    }
    if n == 0 {
        1.0
    } else {
        #[allow(clippy::cast_precision_loss)]
        let nf = n as f64;
        (sum / nf).exp()
    }
}

#[allow(clippy::cast_precision_loss)]
fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Components from the outcomes; `gamma` supplied by the caller.
fn components(outcomes: &[Outcome], gamma: f64) -> Components {
    let correct: Vec<f64> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Correct(s) => Some(*s),
            Outcome::Fail(_) => None,
        })
        .collect();
    let slow: Vec<f64> = correct.iter().copied().filter(|&s| s < 1.0).collect();
    Components {
        alpha: gmean(correct.iter().copied()),
        beta: gmean(slow.iter().copied()),
        lambda: ratio(correct.len(), outcomes.len()),
        eta: ratio(slow.len(), correct.len()),
        gamma,
    }
}

/// Scores one result set. Fails when `samples` is empty or `config` is invalid.
pub fn score(label: &str, samples: &[ScoredSample], config: &ScoreConfig) -> Result<ScoreReport> {
    config.validate()?;
    if samples.is_empty() {
        return Err(BenchError::NoSamples {
            label: label.to_string(),
        });
    }
    let ScoreConfig {
        p,
        b,
        interpretation,
        noisy,
    } = *config;
    let frozen: Vec<Outcome> = samples.iter().map(|s| s.outcome(1, noisy)).collect();
    let mut levels = Vec::new();
    for t in interpretation.levels() {
        let now: Vec<Outcome> = samples.iter().map(|s| s.outcome(t, noisy)).collect();
        let s_value = gmean(now.iter().map(|o| match o {
            Outcome::Correct(s) => rectify(*s, p),
            Outcome::Fail(_) => b,
        }));
        let s_components = components(&now, b);
        let (es_value, es_components) = if t < 1 {
            (s_value, s_components)
        } else {
            let es = gmean(frozen.iter().map(|o| match o {
                Outcome::Correct(s) => rectify(*s, p),
                Outcome::Fail(c) if interpretation.tolerates(*c, t) => 1.0,
                Outcome::Fail(_) => b,
            }));
            let failures: Vec<ErrorClass> = frozen
                .iter()
                .filter_map(|o| match o {
                    Outcome::Fail(c) => Some(*c),
                    Outcome::Correct(_) => None,
                })
                .collect();
            let untolerated = failures
                .iter()
                .filter(|c| !interpretation.tolerates(**c, t))
                .count();
            let gamma = if failures.is_empty() {
                1.0
            } else {
                b.powf(ratio(untolerated, failures.len()))
            };
            (es, components(&frozen, gamma))
        };
        levels.push(LevelScore {
            t,
            s: s_value,
            es: es_value,
            s_components,
            es_components,
        });
    }
    let log10: f64 = aggregate_weights()
        .iter()
        .map(|&(t, w)| {
            let es = levels.iter().find(|l| l.t == t).map_or(b, |l| l.es);
            w * es.log10()
        })
        .sum();
    let mut status_counts = BTreeMap::new();
    for s in samples {
        *status_counts.entry(s.status).or_insert(0) += 1;
    }
    Ok(ScoreReport {
        label: label.to_string(),
        config: *config,
        n: samples.len(),
        status_counts,
        levels,
        aggregate: Aggregate {
            score: 10f64.powf(log10),
            log10,
        },
    })
}

/// Correctness bits for a sample that passes exactly at the levels `t ≥ t_first`
/// (`T_MIN..=T_MAX`); a convenience for building [`ScoredSample`]s.
pub fn passing_from(t_first: i32) -> BTreeMap<i32, bool> {
    (T_MIN..=crate::tolerance::T_MAX)
        .map(|t| (t, t >= t_first))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(status: Status, speedup: Option<f64>, first_pass: i32) -> ScoredSample {
        ScoredSample::new("s", status, speedup, &passing_from(first_pass)).expect("valid sample")
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-300)
    }

    #[test]
    fn all_correct_fast() {
        let samples = vec![sample(Status::Correct, Some(2.0), T_MIN); 3];
        let r = score("x", &samples, &ScoreConfig::default()).expect("score");
        for l in &r.levels {
            assert!(close(l.s, 2.0) && close(l.es, 2.0));
            assert_eq!(l.es_components.lambda, 1.0);
        }
        assert!(close(r.aggregate.score, 2.0));
    }

    #[test]
    fn slowdown_penalty() {
        let samples = vec![sample(Status::Correct, Some(0.5), T_MIN)];
        let cfg = ScoreConfig {
            p: 1.0,
            ..ScoreConfig::default()
        };
        let r = score("x", &samples, &cfg).expect("score");
        assert!(close(r.levels[0].s, 0.25));
        let c = r.levels[0].s_components;
        assert_eq!((c.alpha, c.beta, c.lambda, c.eta), (0.5, 0.5, 1.0, 1.0));
        assert!(close(c.closed_form(1.0), 0.25));
    }

    #[test]
    fn failures_count_b_and_are_tolerated_later() {
        let samples = vec![
            sample(Status::Correct, Some(4.0), T_MIN),
            sample(Status::RuntimeFail, None, T_MIN),
        ];
        let r = score("x", &samples, &ScoreConfig::default()).expect("score");
        let at = |t: i32| r.level(t).copied().expect("level");
        assert!(close(at(0).s, (4.0f64 * 0.1).sqrt()));
        assert!(close(at(2).es, (4.0f64 * 0.1).sqrt()));
        assert!(
            close(at(3).es, 2.0),
            "runtime tolerated at t = 3 by default"
        );
        assert_eq!(at(3).es_components.gamma, 1.0);
        assert_eq!(at(2).es_components.gamma, 0.1);
    }

    #[test]
    fn accuracy_failures_freeze_at_t1() {
        // Passes only from t = 2: fails at t = 1, so ES tolerates it as accuracy (speedup 1)
        // while S(2) uses the real correctness.
        let samples = vec![sample(Status::Accuracy, Some(4.0), 2)];
        let r = score("x", &samples, &ScoreConfig::default()).expect("score");
        let at = |t: i32| r.level(t).copied().expect("level");
        assert!(close(at(1).s, 0.1));
        assert!(close(at(1).es, 1.0));
        assert!(close(at(2).s, 4.0));
        assert!(close(at(2).es, 1.0));
    }

    #[test]
    fn eager_fail_never_tolerated_when_extended() {
        let samples = vec![sample(Status::EagerFail, None, T_MIN)];
        let cfg = ScoreConfig {
            interpretation: Interpretation::MismatchExtended,
            ..ScoreConfig::default()
        };
        let r = score("x", &samples, &cfg).expect("score");
        assert!(r.levels.iter().all(|l| close(l.es, 0.1)));
        assert_eq!(r.levels.len(), 16);
        let r = score("x", &samples, &ScoreConfig::default()).expect("score");
        assert!(close(r.level(3).map_or(0.0, |l| l.es), 1.0));
    }

    #[test]
    fn noisy_policy() {
        let samples = vec![sample(Status::Noisy, Some(3.0), T_MIN)];
        let keep = score("x", &samples, &ScoreConfig::default()).expect("score");
        assert!(close(keep.levels[0].s, 3.0));
        let cfg = ScoreConfig {
            noisy: NoisyPolicy::Fail,
            interpretation: Interpretation::MismatchExtended,
            ..ScoreConfig::default()
        };
        let fail = score("x", &samples, &cfg).expect("score");
        let es = |t: i32| fail.level(t).map_or(0.0, |l| l.es);
        assert!(close(fail.levels[0].s, 0.1));
        assert!(
            close(es(2), 0.1) && close(es(3), 1.0),
            "noisy counts as runtime"
        );
    }

    #[test]
    fn closed_form_matches_per_sample_mean() {
        let samples = vec![
            sample(Status::Correct, Some(1.7), -8),
            sample(Status::Correct, Some(0.4), -3),
            sample(Status::Accuracy, Some(0.9), 2),
            sample(Status::ShapeMismatch, None, T_MIN),
            sample(Status::CompileFail, None, T_MIN),
            sample(Status::EagerFail, None, T_MIN),
            sample(Status::NanInf, None, T_MIN),
        ];
        for interpretation in Interpretation::ALL {
            let cfg = ScoreConfig {
                p: 0.3,
                b: 0.2,
                interpretation,
                noisy: NoisyPolicy::Keep,
            };
            let r = score("x", &samples, &cfg).expect("score");
            for l in &r.levels {
                assert!(close(l.s, l.s_components.closed_form(0.3)), "S at {}", l.t);
                assert!(
                    close(l.es, l.es_components.closed_form(0.3)),
                    "ES at {}",
                    l.t
                );
            }
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(score("x", &[], &ScoreConfig::default()).is_err());
        let s = vec![sample(Status::Correct, Some(1.0), T_MIN)];
        for (p, b) in [
            (-1.0, 0.1),
            (f64::NAN, 0.1),
            (0.0, 0.0),
            (0.0, f64::INFINITY),
        ] {
            let cfg = ScoreConfig {
                p,
                b,
                ..ScoreConfig::default()
            };
            assert!(score("x", &s, &cfg).is_err(), "p={p} b={b}");
        }
        assert!(ScoredSample::new("s", Status::Correct, None, &passing_from(0)).is_err());
        assert!(ScoredSample::new("s", Status::Correct, Some(0.0), &passing_from(0)).is_err());
        assert!(ScoredSample::new("s", Status::Correct, Some(f64::NAN), &BTreeMap::new()).is_err());
        // A failing status ignores bits, so it needs no speedup.
        assert!(ScoredSample::new("s", Status::RuntimeFail, None, &passing_from(0)).is_ok());
    }

    #[test]
    fn aggregate_weights_sum_to_one() {
        let w = aggregate_weights();
        assert_eq!(w.len(), 15);
        assert!(close(w.iter().map(|(_, w)| w).sum::<f64>(), 1.0));
        assert!(close(w[5].1, 0.48 / 5.333));
    }

    #[test]
    fn aggregate_is_weighted_geometric_mean_of_es() {
        let samples = vec![
            sample(Status::Correct, Some(2.0), -4),
            sample(Status::RuntimeFail, None, T_MIN),
        ];
        let r = score("x", &samples, &ScoreConfig::default()).expect("score");
        let expected: f64 = aggregate_weights()
            .iter()
            .map(|&(t, w)| w * r.level(t).map_or(f64::NAN, |l| l.es).log10())
            .sum();
        assert!(close(r.aggregate.log10, expected));
        assert!(close(r.aggregate.score, 10f64.powf(expected)));
    }
}
