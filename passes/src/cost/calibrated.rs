//! A cost model calibrated on one machine: per kernel family,
//! `max(flops / a, bytes / b) + c · tiles + d`, fitted to measured kernel times.
//!
//! [`fit`] minimizes the squared *relative* error (what the search cares about: a 10 µs
//! kernel mispredicted by 10 µs is as wrong as a 1 ms one by 1 ms) over the four
//! non-negative coefficients `1/a`, `1/b`, `c`, `d`. The `max` makes the problem piecewise
//! linear: the fit alternates between assigning each sample to its bound (compute or
//! memory, under the current coefficients) and solving the linear least-squares problem
//! of that assignment exactly, with non-negativity by enumeration of the active set (four
//! unknowns: sixteen subsets), from three starts (all compute-bound, all memory-bound,
//! each sample by its larger term), keeping the best. Deterministic: same samples, same
//! coefficients.
//!
//! [`Calibration`] is the fitted set, per family name (the CPU backend's names:
//! `pointwise`, `reduction`, `window`, `concat`, `contraction`, `attention`, `conv/<algo>`,
//! each with `/serial` for kernels run on the calling thread alone), with the device
//! fingerprint it was measured on and each family's training error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DeviceProfile;

/// What one kernel does, as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Work {
    /// Arithmetic (the FLOP table, [`super::flops`]).
    pub flops: f64,
    /// Bytes read and written.
    pub bytes: f64,
    /// Pieces the kernel is split into (the backend's proxy for per-tile overhead).
    pub tiles: f64,
}

/// The fitted coefficients of one family; seconds = `max(flops/a, bytes/b) + c·tiles + d`,
/// kept as `1/a` and `1/b` (zero where the family never hits that bound), so every
/// coefficient is finite.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coeffs {
    /// `1/a`, seconds per FLOP.
    pub s_per_flop: f64,
    /// `1/b`, seconds per byte.
    pub s_per_byte: f64,
    /// `c`, seconds per tile.
    pub s_per_tile: f64,
    /// `d`, seconds per kernel.
    pub fixed_s: f64,
}

impl Coeffs {
    /// Predicted seconds of `w`.
    pub fn predict(&self, w: &Work) -> f64 {
        (w.flops * self.s_per_flop).max(w.bytes * self.s_per_byte)
            + self.s_per_tile * w.tiles
            + self.fixed_s
    }

    /// `a`, FLOP/s (infinite when no sample was compute-bound).
    pub fn flops_per_s(&self) -> f64 {
        1.0 / self.s_per_flop
    }

    /// `b`, bytes/s (infinite when no sample was memory-bound).
    pub fn bytes_per_s(&self) -> f64 {
        1.0 / self.s_per_byte
    }

    fn from_params(p: [f64; 4]) -> Coeffs {
        Coeffs {
            s_per_flop: p[0],
            s_per_byte: p[1],
            s_per_tile: p[2],
            fixed_s: p[3],
        }
    }
}

/// One family's fit and how well it fits its own samples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FamilyFit {
    pub coeffs: Coeffs,
    pub samples: usize,
    /// Median and 90th percentile of |predicted − measured| / measured on the samples.
    pub median_rel_err: f64,
    pub p90_rel_err: f64,
}

/// The calibrated model of one machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The device fingerprint the samples were measured on (CPU, ISA, threads).
    pub fingerprint: String,
    pub families: BTreeMap<String, FamilyFit>,
}

impl Calibration {
    /// Fits every family that has at least two samples `(family, work, seconds)`.
    pub fn fit(fingerprint: &str, samples: &[(String, Work, f64)]) -> Calibration {
        let mut by: BTreeMap<&str, Vec<(Work, f64)>> = BTreeMap::new();
        for (f, w, t) in samples {
            if *t > 0.0 && t.is_finite() {
                by.entry(f.as_str()).or_default().push((*w, *t));
            }
        }
        let families = by
            .into_iter()
            .filter_map(|(name, s)| {
                let coeffs = fit(&s)?;
                let mut errs: Vec<f64> = s
                    .iter()
                    .map(|(w, t)| (coeffs.predict(w) - t).abs() / t)
                    .collect();
                Some((
                    name.to_string(),
                    FamilyFit {
                        coeffs,
                        samples: s.len(),
                        median_rel_err: quantile(&mut errs, 0.5),
                        p90_rel_err: quantile(&mut errs, 0.9),
                    },
                ))
            })
            .collect();
        Calibration {
            fingerprint: fingerprint.to_string(),
            families,
        }
    }

    /// Predicted seconds of `w` in `family`; `None` for a family it has no fit for.
    pub fn predict(&self, family: &str, w: &Work) -> Option<f64> {
        self.families.get(family).map(|f| f.coeffs.predict(w))
    }

    /// The roofline profile this calibration implies, for the passes that price rewrites
    /// with a [`DeviceProfile`] (the e-graph): f32 arithmetic at the GEMMs' fitted rate,
    /// bandwidth at the plain pointwise kernels', launch at the pointwise kernels' fixed
    /// cost; what a family did not fit (an unbounded rate) comes from `base`. f16/bf16
    /// run at the f32 rate and f64 at half, as in the built-in CPU profile.
    pub fn device_profile(&self, base: &DeviceProfile) -> DeviceProfile {
        let coeffs = |f: &str| self.families.get(f).map(|x| x.coeffs);
        let finite = |x: f64| (x.is_finite() && x > 0.0).then_some(x);
        let flops = coeffs("contraction")
            .and_then(|c| finite(c.flops_per_s()))
            .unwrap_or(base.f32_flops);
        let bandwidth = coeffs("pointwise")
            .and_then(|c| finite(c.bytes_per_s()))
            .unwrap_or(base.bandwidth);
        let launch = coeffs("pointwise").map_or(base.launch, |c| c.fixed_s);
        DeviceProfile {
            name: "calibrated",
            f32_flops: flops,
            f16_flops: flops,
            f64_flops: flops / 2.0,
            bandwidth,
            launch,
        }
    }
}

/// The `q`-quantile of `v` (linear between ranks); 0 when empty.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Fits [`Coeffs`] to `(work, seconds)` samples ([module docs](self)); `None` with fewer
/// than two usable samples.
pub fn fit(samples: &[(Work, f64)]) -> Option<Coeffs> {
    let s: Vec<&(Work, f64)> = samples
        .iter()
        .filter(|(w, t)| *t > 0.0 && t.is_finite() && w.flops.is_finite() && w.bytes.is_finite())
        .collect();
    if s.len() < 2 {
        return None;
    }
    let err = |p: &[f64; 4]| -> f64 {
        s.iter()
            .map(|(w, t)| {
                let pred = (w.flops * p[0]).max(w.bytes * p[1]) + w.tiles * p[2] + p[3];
                ((pred - t) / t).powi(2)
            })
            .sum()
    };
    let starts: [&dyn Fn(&Work) -> bool; 3] = [&|_| true, &|_| false, &|w| w.flops >= w.bytes];
    let mut best: Option<([f64; 4], f64)> = None;
    for start in starts {
        let mut regime: Vec<bool> = s.iter().map(|(w, _)| start(w)).collect();
        let mut p = [0.0; 4];
        for _ in 0..50 {
            p = solve(&s, &regime);
            let next: Vec<bool> = s
                .iter()
                .map(|(w, _)| w.flops * p[0] >= w.bytes * p[1])
                .collect();
            if next == regime {
                break;
            }
            regime = next;
        }
        let e = err(&p);
        if best.is_none_or(|(_, b)| e < b) {
            best = Some((p, e));
        }
    }
    best.map(|(p, _)| Coeffs::from_params(p))
}

/// The non-negative least-squares solution of `Σ ((x·row_i) / t_i − 1)²` for the rows of
/// one regime assignment (`true`: the flops term counts, else the bytes term).
fn solve(s: &[&(Work, f64)], regime: &[bool]) -> [f64; 4] {
    let rows: Vec<[f64; 4]> = s
        .iter()
        .zip(regime)
        .map(|((w, t), &compute)| {
            let (f, b) = if compute {
                (w.flops, 0.0)
            } else {
                (0.0, w.bytes)
            };
            [f / t, b / t, w.tiles / t, 1.0 / t]
        })
        .collect();
    let mut best = ([0.0; 4], f64::INFINITY);
    for mask in 1u32..16 {
        let cols: Vec<usize> = (0..4).filter(|&j| mask & (1 << j) != 0).collect();
        let Some(x) = least_squares(&rows, &cols) else {
            continue;
        };
        if x.iter().any(|&v| v < 0.0 || !v.is_finite()) {
            continue;
        }
        let mut p = [0.0; 4];
        for (&j, &v) in cols.iter().zip(&x) {
            p[j] = v;
        }
        let e: f64 = rows
            .iter()
            .map(|r| (r.iter().zip(&p).map(|(a, b)| a * b).sum::<f64>() - 1.0).powi(2))
            .sum();
        if e < best.1 {
            best = (p, e);
        }
    }
    best.0
}

/// Least squares `rows[:, cols] · x ≈ 1` by the normal equations (Gaussian elimination
/// with partial pivoting; columns are scaled to unit norm first); `None` if singular.
fn least_squares(rows: &[[f64; 4]], cols: &[usize]) -> Option<Vec<f64>> {
    let k = cols.len();
    let scale: Vec<f64> = cols
        .iter()
        .map(|&j| rows.iter().map(|r| r[j] * r[j]).sum::<f64>().sqrt())
        .collect();
    if scale.iter().any(|&s| s == 0.0 || !s.is_finite()) {
        return None;
    }
    let mut a = vec![vec![0.0; k + 1]; k];
    for r in rows {
        let x: Vec<f64> = cols.iter().zip(&scale).map(|(&j, s)| r[j] / s).collect();
        for i in 0..k {
            for j in 0..k {
                a[i][j] += x[i] * x[j];
            }
            a[i][k] += x[i];
        }
    }
    for c in 0..k {
        let piv = (c..k).max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs()))?;
        if a[piv][c].abs() < 1e-12 {
            return None;
        }
        a.swap(c, piv);
        let pivot = a[c].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != c {
                let f = row[c] / pivot[c];
                for (x, p) in row.iter_mut().zip(&pivot).skip(c) {
                    *x -= f * p;
                }
            }
        }
    }
    Some((0..k).map(|i| a[i][k] / a[i][i] / scale[i]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(flops: f64, bytes: f64, tiles: f64) -> Work {
        Work {
            flops,
            bytes,
            tiles,
        }
    }

    #[test]
    fn recovers_the_coefficients_that_generated_the_samples() {
        // 50 GFLOP/s, 10 GB/s, 1 µs per tile, 5 µs per kernel; compute- and memory-bound
        // samples of many sizes.
        let truth = Coeffs {
            s_per_flop: 1.0 / 5e10,
            s_per_byte: 1.0 / 1e10,
            s_per_tile: 1e-6,
            fixed_s: 5e-6,
        };
        let mut samples = Vec::new();
        for i in 0..40 {
            let size = 2f64.powi(12 + i % 12);
            let intensity = if i % 2 == 0 { 0.1 } else { 20.0 };
            let work = w(size * intensity, size, (size / 16384.0).ceil());
            samples.push((work, truth.predict(&work)));
        }
        let got = fit(&samples).expect("fits");
        for (name, a, b) in [
            ("flops", got.flops_per_s(), truth.flops_per_s()),
            ("bytes", got.bytes_per_s(), truth.bytes_per_s()),
            ("tile", got.s_per_tile, truth.s_per_tile),
            ("fixed", got.fixed_s, truth.fixed_s),
        ] {
            assert!((a - b).abs() <= 1e-6 * b, "{name}: {a} vs {b}");
        }
    }

    #[test]
    fn families_fit_apart_and_report_their_error() {
        let mut samples = Vec::new();
        for i in 1..20 {
            let n = i as f64 * 1e5;
            samples.push((
                "pointwise".to_string(),
                w(n, 8.0 * n, 1.0),
                8.0 * n / 2e10 + 3e-6,
            ));
            samples.push((
                "contraction".to_string(),
                w(100.0 * n, n, 4.0),
                100.0 * n / 8e10,
            ));
        }
        samples.push(("lonely".to_string(), w(1.0, 1.0, 1.0), 1e-6));
        let c = Calibration::fit("test cpu", &samples);
        assert_eq!(c.families.len(), 2, "a family needs two samples");
        let pw = &c.families["pointwise"];
        assert_eq!(pw.samples, 19);
        assert!(pw.median_rel_err < 1e-9 && pw.p90_rel_err < 1e-9, "{pw:?}");
        let mm = c.predict("contraction", &w(1e9, 1e7, 4.0)).unwrap();
        assert!((mm - 1e9 / 8e10).abs() < 1e-9, "{mm}");
        assert_eq!(c.predict("lonely", &w(1.0, 1.0, 1.0)), None);
    }

    #[test]
    fn the_implied_profile_takes_fitted_rates_and_falls_back_to_the_base() {
        let mut samples = Vec::new();
        for i in 1..10 {
            let n = i as f64 * 1e6;
            samples.push(("pointwise".to_string(), w(0.0, n, 0.0), n / 2e10 + 4e-6));
            samples.push(("contraction".to_string(), w(n, 0.0, 0.0), n / 9e10));
        }
        let base = DeviceProfile::cpu_epyc_2core();
        let p = Calibration::fit("t", &samples).device_profile(&base);
        assert_eq!(p.name, "calibrated");
        assert!(
            (p.f32_flops - 9e10).abs() < 1e3 && (p.bandwidth - 2e10).abs() < 1e3,
            "{p:?}"
        );
        assert!((p.launch - 4e-6).abs() < 1e-12, "{p:?}");
        let empty = Calibration::fit("t", &[]).device_profile(&base);
        assert_eq!(
            (empty.f32_flops, empty.bandwidth, empty.launch),
            (base.f32_flops, base.bandwidth, base.launch)
        );
    }

    #[test]
    fn noisy_samples_fit_within_their_noise() {
        // ±10% deterministic noise around a memory-bound family.
        let samples: Vec<(Work, f64)> = (0..64)
            .map(|i| {
                let n = 1e4 * (1 + i) as f64;
                let noise = 1.0 + 0.1 * ((i * 7919 % 21) as f64 / 10.0 - 1.0);
                (w(n, 4.0 * n, 1.0), (4.0 * n / 1.5e10 + 2e-6) * noise)
            })
            .collect();
        let c = fit(&samples).unwrap();
        let mut errs: Vec<f64> = samples
            .iter()
            .map(|(w, t)| (c.predict(w) - t).abs() / t)
            .collect();
        assert!(quantile(&mut errs, 0.9) <= 0.12, "{c:?}");
    }

    #[test]
    fn degenerate_input_gives_no_fit() {
        assert_eq!(fit(&[]), None);
        assert_eq!(fit(&[(w(1.0, 1.0, 1.0), 1.0)]), None);
        assert_eq!(
            fit(&[(w(1.0, 1.0, 1.0), 0.0), (w(2.0, 2.0, 1.0), -1.0)]),
            None
        );
    }
}
