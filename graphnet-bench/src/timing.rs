//! Timing statistics over trials, the noise rule and the per-sample speedup.
//!
//! Statistics follow numpy's defaults, which GraphNet uses: `median` = `np.median`,
//! quartiles = `np.percentile(x, 25 | 75)` with linear interpolation between closest ranks
//! (numpy's default `method="linear"`, also torch.quantile's default: position
//! `q·(n−1)` in the sorted trials), `IQR = Q3 − Q1`, `std` = `np.std` (population, ddof 0).
//! A timing is *noisy* when `IQR / median > 0.2` (GraphNet's
//! `GRAPH_NET_FLUCTUATION_DETECT_THRESHOLD`). Speedup = `median(eager) / median(compiled)`.

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// GraphNet's fluctuation threshold on `IQR / median`.
pub const NOISE_THRESHOLD: f64 = 0.2;

/// Summary of one variant's (eager or compiled) timed trials, all in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimingStats {
    /// Median trial time.
    pub median_ms: f64,
    /// Interquartile range `Q3 − Q1`.
    pub iqr_ms: f64,
    /// First quartile (linear interpolation).
    pub q1_ms: f64,
    /// Third quartile (linear interpolation).
    pub q3_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Population standard deviation (ddof 0).
    pub std_ms: f64,
    /// Fastest trial.
    pub min_ms: f64,
    /// Slowest trial.
    pub max_ms: f64,
    /// Every trial, in the order measured.
    pub trials_ms: Vec<f64>,
}

impl TimingStats {
    /// True when `IQR / median > NOISE_THRESHOLD` (a zero median with a non-zero IQR is
    /// noisy; all-zero trials are not).
    pub fn is_noisy(&self) -> bool {
        if self.median_ms > 0.0 {
            self.iqr_ms / self.median_ms > NOISE_THRESHOLD
        } else {
            self.iqr_ms > 0.0
        }
    }
}

/// Quantile `q ∈ [0, 1]` of an ascending, non-empty slice by linear interpolation
/// (numpy `method="linear"`). Returns NaN for an empty slice.
pub fn quantile_linear(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    #[allow(clippy::cast_precision_loss)]
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let lo = pos.floor();
    let frac = pos - lo;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = (lo as usize).min(last);
    let a = sorted[i];
    match sorted.get(i + 1) {
        Some(&b) if frac > 0.0 => a + (b - a) * frac,
        _ => a,
    }
}

/// Computes [`TimingStats`] for `trials_ms`; fails when the list is empty or holds a
/// negative or non-finite time.
pub fn timing_stats(trials_ms: &[f64]) -> Result<TimingStats> {
    if trials_ms.is_empty() {
        return Err(BenchError::InvalidArgument(
            "timing needs at least one trial".into(),
        ));
    }
    if let Some(bad) = trials_ms.iter().find(|t| !t.is_finite() || **t < 0.0) {
        return Err(BenchError::InvalidArgument(format!(
            "trial time {bad} ms is not a finite non-negative number"
        )));
    }
    let mut sorted = trials_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    #[allow(clippy::cast_precision_loss)]
    let n = sorted.len() as f64;
    let mean = sorted.iter().sum::<f64>() / n;
    let var = sorted.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let q1 = quantile_linear(&sorted, 0.25);
    let q3 = quantile_linear(&sorted, 0.75);
    Ok(TimingStats {
        median_ms: quantile_linear(&sorted, 0.5),
        iqr_ms: q3 - q1,
        q1_ms: q1,
        q3_ms: q3,
        mean_ms: mean,
        std_ms: var.sqrt(),
        min_ms: sorted[0],
        max_ms: sorted[sorted.len() - 1],
        trials_ms: trials_ms.to_vec(),
    })
}

/// `median(eager) / median(compiled)`; `None` unless the result is finite and positive.
pub fn speedup(eager: &TimingStats, compiled: &TimingStats) -> Option<f64> {
    let s = eager.median_ms / compiled.median_ms;
    (s.is_finite() && s > 0.0).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(v: &[f64]) -> TimingStats {
        timing_stats(v).expect("valid trials")
    }

    #[test]
    fn numpy_linear_quantiles() {
        // np.percentile([1,2,3,4,5], [25,50,75]) == [2, 3, 4]
        let s = stats(&[5.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!((s.q1_ms, s.median_ms, s.q3_ms), (2.0, 3.0, 4.0));
        assert_eq!(s.iqr_ms, 2.0);
        // np.percentile([1,2,3,4], [25,50,75]) == [1.75, 2.5, 3.25]
        let s = stats(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!((s.q1_ms, s.median_ms, s.q3_ms), (1.75, 2.5, 3.25));
        // np.percentile([10, 20], 25) == 12.5
        let s = stats(&[20.0, 10.0]);
        assert_eq!((s.q1_ms, s.median_ms, s.q3_ms), (12.5, 15.0, 17.5));
    }

    #[test]
    fn mean_std_min_max() {
        // np.std([2,4,4,4,5,5,7,9]) == 2.0
        let s = stats(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(s.mean_ms, 5.0);
        assert_eq!(s.std_ms, 2.0);
        assert_eq!((s.min_ms, s.max_ms), (2.0, 9.0));
        assert_eq!(s.trials_ms.len(), 8);
    }

    #[test]
    fn single_trial() {
        let s = stats(&[3.5]);
        assert_eq!((s.median_ms, s.iqr_ms, s.std_ms), (3.5, 0.0, 0.0));
        assert!(!s.is_noisy());
    }

    #[test]
    fn noise_threshold_edge() {
        // median 10, IQR exactly 2 → ratio 0.2, not noisy; IQR 2.5 → noisy.
        let quiet = stats(&[9.0, 9.0, 10.0, 11.0, 11.0]);
        assert_eq!((quiet.median_ms, quiet.iqr_ms), (10.0, 2.0));
        assert!(!quiet.is_noisy());
        let loud = stats(&[8.0, 8.75, 10.0, 11.25, 12.0]);
        assert_eq!(loud.iqr_ms, 2.5);
        assert!(loud.is_noisy());
    }

    #[test]
    fn zero_median() {
        assert!(!stats(&[0.0, 0.0, 0.0]).is_noisy());
        assert!(stats(&[0.0, 0.0, 0.0, 1.0]).is_noisy());
    }

    #[test]
    fn rejects_bad_trials() {
        assert!(timing_stats(&[]).is_err());
        assert!(timing_stats(&[1.0, f64::NAN]).is_err());
        assert!(timing_stats(&[1.0, f64::INFINITY]).is_err());
        assert!(timing_stats(&[-1.0]).is_err());
    }

    #[test]
    fn speedup_is_ratio_of_medians() {
        let e = stats(&[10.0, 12.0, 11.0]);
        let c = stats(&[5.0, 5.5, 100.0]);
        assert_eq!(speedup(&e, &c), Some(2.0));
        let zero = stats(&[0.0]);
        assert_eq!(speedup(&e, &zero), None);
        assert_eq!(speedup(&zero, &e), None);
    }

    #[test]
    fn quantile_of_empty_is_nan() {
        assert!(quantile_linear(&[], 0.5).is_nan());
    }
}
