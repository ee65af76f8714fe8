//! Classify one sample from its reference (eager) and actual (compiled) outputs.
//!
//! [`compare_outputs`] is pure: it takes both output lists as [`OutputView`]s and returns a
//! [`Comparison`] with the sample's status, per-output error statistics and the per-level
//! correctness bits for every `t` in `T_MIN..=T_MAX`. The checks, in order:
//!
//! 1. output count or any dtype differs → `dtype_mismatch` (GraphNet's type check compares
//!    the dtype lists, count included);
//! 2. any shape differs → `shape_mismatch`;
//! 3. a float output of the compiled model holds NaN or ±Inf where the reference holds a
//!    different value → `nan_inf`;
//! 4. otherwise the bits decide: `correct` when every output passes at `t = 1`, else
//!    `accuracy`.
//!
//! Per level, a float output passes when every element satisfies torch's `isclose` with
//! `equal_nan = false`: `a == e`, or `|a − e|` finite and `≤ atol + rtol·|e|`, with the
//! tolerance of the *reference* dtype (see [`mod@crate::tolerance`]). So ±0 are equal, equal
//! infinities pass, NaN never passes (a reference NaN therefore makes the sample fail at every
//! level with `accuracy`, since the compiler did not introduce it). Integer and bool outputs
//! need exact equality at every level. Values are compared in f64, which is exact for every
//! narrower float type (torch compares in the tensor's own dtype; the difference is at most
//! one rounding of the tolerance test).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};
use crate::status::Status;
use crate::tolerance::{DType, T_MAX, T_MIN, Tolerance, all_levels, tolerance};

/// Element values of one output, widened to a common element type per kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Values<'a> {
    /// Float outputs (any float dtype), widened to f64.
    Float(&'a [f64]),
    /// Signed integer outputs, widened to i64.
    Int(&'a [i64]),
    /// Unsigned integer outputs, widened to u64.
    UInt(&'a [u64]),
    /// Boolean outputs.
    Bool(&'a [bool]),
}

impl Values<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Values::Float(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::UInt(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn kind_matches(&self, dtype: DType) -> bool {
        match self {
            Values::Float(_) => dtype.is_float(),
            Values::Int(_) => dtype.is_signed_int(),
            Values::UInt(_) => dtype.is_unsigned_int(),
            Values::Bool(_) => dtype == DType::Bool,
        }
    }
}

/// A borrowed view of one model output: dtype, shape and row-major values.
///
/// Constructed only through [`OutputView::new`], which guarantees that the value kind fits
/// the dtype and that the element count equals the product of the shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputView<'a> {
    dtype: DType,
    shape: &'a [usize],
    values: Values<'a>,
}

impl<'a> OutputView<'a> {
    /// Builds a view; fails when `values` is of the wrong kind for `dtype` (floats need
    /// [`Values::Float`], signed ints [`Values::Int`], unsigned [`Values::UInt`], bool
    /// [`Values::Bool`]) or its length differs from the product of `shape`.
    pub fn new(dtype: DType, shape: &'a [usize], values: Values<'a>) -> Result<Self> {
        if !values.kind_matches(dtype) {
            return Err(BenchError::InvalidArgument(format!(
                "output values of the wrong kind for dtype {dtype}"
            )));
        }
        let expected = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| BenchError::InvalidArgument(format!("shape {shape:?} overflows")))?;
        if values.len() != expected {
            return Err(BenchError::InvalidArgument(format!(
                "shape {shape:?} has {expected} elements but {} values were given",
                values.len()
            )));
        }
        Ok(OutputView {
            dtype,
            shape,
            values,
        })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &'a [usize] {
        self.shape
    }

    /// The values.
    pub fn values(&self) -> Values<'a> {
        self.values
    }
}

/// Per-output comparison details, as stored in result records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputComparison {
    /// Reference dtype; `None` when the reference has fewer outputs.
    pub reference_dtype: Option<DType>,
    /// Compiled dtype; `None` when the compiled model has fewer outputs.
    pub actual_dtype: Option<DType>,
    /// Reference shape.
    pub reference_shape: Option<Vec<usize>>,
    /// Compiled shape.
    pub actual_shape: Option<Vec<usize>>,
    /// Largest `|a − e|` over elements where both are finite (`None` when not compared or
    /// no such element).
    #[serde(default)]
    pub max_abs_err: Option<f64>,
    /// Largest `|a − e| / |e|` over elements where both are finite and `e ≠ 0`.
    #[serde(default)]
    pub max_rel_err: Option<f64>,
    /// Mean of `|a − e|` over elements where both are finite.
    #[serde(default)]
    pub mean_abs_err: Option<f64>,
    /// Elements where the compiled value is NaN/±Inf and differs from the reference value.
    #[serde(default)]
    pub new_non_finite: usize,
    /// Elements where the reference itself is NaN/±Inf.
    #[serde(default)]
    pub reference_non_finite: usize,
    /// Per level `t`: does this output pass? Empty when the outputs could not be compared
    /// (count, dtype or shape mismatch).
    #[serde(default)]
    pub passes: BTreeMap<i32, bool>,
}

/// Result of [`compare_outputs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// `correct`, `accuracy`, `nan_inf`, `dtype_mismatch` or `shape_mismatch`.
    pub status: Status,
    /// One entry per output position (`max(reference, actual)` entries).
    pub outputs: Vec<OutputComparison>,
    /// Per level `t ∈ T_MIN..=T_MAX`: do all outputs pass? All false unless the status is
    /// `correct` or `accuracy`.
    pub correct_at: BTreeMap<i32, bool>,
}

/// Torch `isclose(a, e, atol, rtol, equal_nan=False)` for one element pair.
pub fn isclose(actual: f64, reference: f64, tol: Tolerance) -> bool {
    if actual == reference {
        return true;
    }
    let diff = (actual - reference).abs();
    diff.is_finite() && diff <= tol.atol + tol.rtol * reference.abs()
}

#[derive(Default)]
struct ErrStats {
    max_abs: Option<f64>,
    max_rel: Option<f64>,
    sum_abs: f64,
    count: usize,
}

impl ErrStats {
    fn add(&mut self, diff: f64, reference: f64) {
        self.max_abs = Some(self.max_abs.map_or(diff, |m| m.max(diff)));
        if reference != 0.0 {
            let rel = diff / reference.abs();
            if rel.is_finite() {
                self.max_rel = Some(self.max_rel.map_or(rel, |m| m.max(rel)));
            }
        }
        self.sum_abs += diff;
        self.count += 1;
    }

    fn mean(&self) -> Option<f64> {
        if self.count == 0 {
            None
        } else {
            // usize → f64 is exact for any realistic element count.
            #[allow(clippy::cast_precision_loss)]
            let n = self.count as f64;
            Some(self.sum_abs / n)
        }
    }
}

fn exact_passes(equal: bool) -> BTreeMap<i32, bool> {
    all_levels().map(|t| (t, equal)).collect()
}

/// Compares one output pair of identical dtype and shape.
fn compare_one(reference: &OutputView<'_>, actual: &OutputView<'_>) -> OutputComparison {
    let mut out = OutputComparison {
        reference_dtype: Some(reference.dtype),
        actual_dtype: Some(actual.dtype),
        reference_shape: Some(reference.shape.to_vec()),
        actual_shape: Some(actual.shape.to_vec()),
        max_abs_err: None,
        max_rel_err: None,
        mean_abs_err: None,
        new_non_finite: 0,
        reference_non_finite: 0,
        passes: BTreeMap::new(),
    };
    let mut stats = ErrStats::default();
    match (reference.values, actual.values) {
        (Values::Float(e), Values::Float(a)) => {
            let tols: Vec<(i32, Tolerance)> = all_levels()
                .map(|t| (t, tolerance(reference.dtype, t)))
                .collect();
            let mut pass = vec![true; tols.len()];
            for (&av, &ev) in a.iter().zip(e) {
                if !ev.is_finite() {
                    out.reference_non_finite += 1;
                }
                if !av.is_finite() && av != ev && !(av.is_nan() && ev.is_nan()) {
                    out.new_non_finite += 1;
                }
                if av.is_finite() && ev.is_finite() {
                    stats.add((av - ev).abs(), ev);
                }
                for (p, (_, tol)) in pass.iter_mut().zip(&tols) {
                    if *p && !isclose(av, ev, *tol) {
                        *p = false;
                    }
                }
            }
            out.passes = tols.iter().map(|(t, _)| *t).zip(pass).collect();
        }
        (Values::Int(e), Values::Int(a)) => {
            for (&av, &ev) in a.iter().zip(e) {
                let diff = (i128::from(av) - i128::from(ev)).unsigned_abs();
                #[allow(clippy::cast_precision_loss)]
                stats.add(diff as f64, ev as f64);
            }
            out.passes = exact_passes(a == e);
        }
        (Values::UInt(e), Values::UInt(a)) => {
            for (&av, &ev) in a.iter().zip(e) {
                let diff = av.abs_diff(ev);
                #[allow(clippy::cast_precision_loss)]
                stats.add(diff as f64, ev as f64);
            }
            out.passes = exact_passes(a == e);
        }
        (Values::Bool(e), Values::Bool(a)) => {
            for (&av, &ev) in a.iter().zip(e) {
                stats.add(if av == ev { 0.0 } else { 1.0 }, if ev { 1.0 } else { 0.0 });
            }
            out.passes = exact_passes(a == e);
        }
        // Unreachable for views of equal dtype (OutputView::new ties kind to dtype); treat
        // defensively as a total failure rather than panicking.
        _ => out.passes = exact_passes(false),
    }
    out.max_abs_err = stats.max_abs;
    out.max_rel_err = stats.max_rel;
    out.mean_abs_err = stats.mean();
    out
}

/// Classifies one sample from its reference (eager) and actual (compiled) outputs; see the
/// module documentation for the exact rules. Never fails: malformed views cannot be built.
pub fn compare_outputs(reference: &[OutputView<'_>], actual: &[OutputView<'_>]) -> Comparison {
    let n = reference.len().max(actual.len());
    let all_false: BTreeMap<i32, bool> = exact_passes(false);
    let meta_only = |i: usize| OutputComparison {
        reference_dtype: reference.get(i).map(|o| o.dtype),
        actual_dtype: actual.get(i).map(|o| o.dtype),
        reference_shape: reference.get(i).map(|o| o.shape.to_vec()),
        actual_shape: actual.get(i).map(|o| o.shape.to_vec()),
        max_abs_err: None,
        max_rel_err: None,
        mean_abs_err: None,
        new_non_finite: 0,
        reference_non_finite: 0,
        passes: BTreeMap::new(),
    };

    let dtype_mismatch = reference.len() != actual.len()
        || reference
            .iter()
            .zip(actual)
            .any(|(e, a)| e.dtype != a.dtype);
    let shape_mismatch = reference
        .iter()
        .zip(actual)
        .any(|(e, a)| e.shape != a.shape);
    if dtype_mismatch || shape_mismatch {
        return Comparison {
            status: if dtype_mismatch {
                Status::DtypeMismatch
            } else {
                Status::ShapeMismatch
            },
            outputs: (0..n).map(meta_only).collect(),
            correct_at: all_false,
        };
    }

    let outputs: Vec<OutputComparison> = reference
        .iter()
        .zip(actual)
        .map(|(e, a)| compare_one(e, a))
        .collect();
    if outputs.iter().any(|o| o.new_non_finite > 0) {
        return Comparison {
            status: Status::NanInf,
            outputs,
            correct_at: all_false,
        };
    }
    let correct_at: BTreeMap<i32, bool> = all_levels()
        .map(|t| {
            let ok = outputs
                .iter()
                .all(|o| o.passes.get(&t).copied().unwrap_or(false));
            (t, ok)
        })
        .collect();
    let status = if correct_at.get(&1).copied().unwrap_or(false) {
        Status::Correct
    } else {
        Status::Accuracy
    };
    Comparison {
        status,
        outputs,
        correct_at,
    }
}

/// The strictest level at which all outputs pass, if any (`T_MIN..=T_MAX`).
pub fn strictest_passing_level(correct_at: &BTreeMap<i32, bool>) -> Option<i32> {
    (T_MIN..=T_MAX).find(|t| correct_at.get(t).copied().unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(dtype: DType, shape: &'static [usize], v: &'static [f64]) -> OutputView<'static> {
        OutputView::new(dtype, shape, Values::Float(v)).expect("valid test view")
    }

    fn bits(c: &Comparison) -> Vec<bool> {
        c.correct_at.values().copied().collect()
    }

    #[test]
    fn identical_outputs_are_correct_everywhere() {
        let e = [f(DType::Float32, &[2], &[1.0, -2.0])];
        let c = compare_outputs(&e, &e);
        assert_eq!(c.status, Status::Correct);
        assert!(bits(&c).iter().all(|&b| b));
        assert_eq!(c.outputs[0].max_abs_err, Some(0.0));
        assert_eq!(strictest_passing_level(&c.correct_at), Some(T_MIN));
    }

    #[test]
    fn signed_zeros_are_equal() {
        let e = [f(DType::Float32, &[2], &[0.0, -0.0])];
        let a = [f(DType::Float32, &[2], &[-0.0, 0.0])];
        let c = compare_outputs(&e, &a);
        assert_eq!(c.status, Status::Correct);
        assert!(bits(&c).iter().all(|&b| b));
        let ei = [OutputView::new(DType::Int64, &[1], Values::Int(&[0])).expect("view")];
        assert_eq!(compare_outputs(&ei, &ei).status, Status::Correct);
    }

    #[test]
    fn float32_tolerance_edge_at_t_minus_5() {
        // t = -5: atol 1e-5, rtol 1.3e-6. Reference 1.0 allows |d| <= 1.13e-5.
        let e = [f(DType::Float32, &[1], &[1.0])];
        let inside = [f(DType::Float32, &[1], &[1.0 + 1.12e-5])];
        let outside = [f(DType::Float32, &[1], &[1.0 + 1.14e-5])];
        let ci = compare_outputs(&e, &inside);
        let co = compare_outputs(&e, &outside);
        assert_eq!(ci.correct_at.get(&-5), Some(&true));
        assert_eq!(ci.correct_at.get(&-6), Some(&false));
        assert_eq!(co.correct_at.get(&-5), Some(&false));
        assert_eq!(co.correct_at.get(&-4), Some(&true));
        assert_eq!(co.status, Status::Correct);
    }

    #[test]
    fn tolerance_uses_the_reference_value_for_rtol() {
        // rtol·|e| is asymmetric: |a - e| <= atol + rtol·|e| with e the reference.
        // t = 0: atol = rtol = 1. e = 0, a = 1.5 fails; e = 1.5, a = 0 passes (1.5 <= 2.5).
        let e0 = [f(DType::Float32, &[1], &[0.0])];
        let a0 = [f(DType::Float32, &[1], &[1.5])];
        assert_eq!(compare_outputs(&e0, &a0).correct_at.get(&0), Some(&false));
        assert_eq!(compare_outputs(&a0, &e0).correct_at.get(&0), Some(&true));
    }

    #[test]
    fn accuracy_when_failing_at_t1() {
        // float32 t = 1: atol 10, rtol 15 → e = 1 allows |d| <= 25.
        let e = [f(DType::Float32, &[1], &[1.0])];
        let a = [f(DType::Float32, &[1], &[27.0])];
        let c = compare_outputs(&e, &a);
        assert_eq!(c.status, Status::Accuracy);
        assert_eq!(c.correct_at.get(&1), Some(&false));
        assert_eq!(c.correct_at.get(&2), Some(&true));
        assert_eq!(c.outputs[0].max_abs_err, Some(26.0));
        assert_eq!(c.outputs[0].max_rel_err, Some(26.0));
    }

    #[test]
    fn new_nan_is_nan_inf() {
        let e = [f(DType::Float32, &[2], &[1.0, 2.0])];
        let a = [f(DType::Float32, &[2], &[1.0, f64::NAN])];
        let c = compare_outputs(&e, &a);
        assert_eq!(c.status, Status::NanInf);
        assert!(bits(&c).iter().all(|&b| !b));
        assert_eq!(c.outputs[0].new_non_finite, 1);
        // The finite pair still contributes to the error statistics.
        assert_eq!(c.outputs[0].max_abs_err, Some(0.0));
    }

    #[test]
    fn new_inf_is_nan_inf() {
        let e = [f(DType::Float16, &[1], &[65504.0])];
        let a = [f(DType::Float16, &[1], &[f64::INFINITY])];
        assert_eq!(compare_outputs(&e, &a).status, Status::NanInf);
        let a = [f(DType::Float16, &[1], &[f64::NEG_INFINITY])];
        assert_eq!(compare_outputs(&e, &a).status, Status::NanInf);
    }

    #[test]
    fn matching_infinities_pass() {
        let e = [f(DType::Float32, &[2], &[f64::INFINITY, f64::NEG_INFINITY])];
        let c = compare_outputs(&e, &e);
        assert_eq!(c.status, Status::Correct);
        assert!(bits(&c).iter().all(|&b| b));
        assert_eq!(c.outputs[0].reference_non_finite, 2);
        assert_eq!(c.outputs[0].max_abs_err, None);
    }

    #[test]
    fn opposite_infinity_is_nan_inf() {
        let e = [f(DType::Float32, &[1], &[f64::INFINITY])];
        let a = [f(DType::Float32, &[1], &[f64::NEG_INFINITY])];
        assert_eq!(compare_outputs(&e, &a).status, Status::NanInf);
    }

    #[test]
    fn finite_where_reference_is_infinite_is_accuracy() {
        let e = [f(DType::Float32, &[1], &[f64::INFINITY])];
        let a = [f(DType::Float32, &[1], &[1e30])];
        let c = compare_outputs(&e, &a);
        assert_eq!(c.status, Status::Accuracy);
        assert!(bits(&c).iter().all(|&b| !b));
    }

    #[test]
    fn nan_in_both_never_passes_but_is_not_nan_inf() {
        let e = [f(DType::Float64, &[1], &[f64::NAN])];
        let c = compare_outputs(&e, &e);
        assert_eq!(c.status, Status::Accuracy);
        assert!(bits(&c).iter().all(|&b| !b));
        assert_eq!(c.outputs[0].new_non_finite, 0);
        assert_eq!(c.outputs[0].reference_non_finite, 1);
    }

    #[test]
    fn overflowing_difference_does_not_pass() {
        // |a - e| overflows to inf; torch requires a finite difference.
        let e = [f(DType::Float64, &[1], &[-1.7e308])];
        let a = [f(DType::Float64, &[1], &[1.7e308])];
        let c = compare_outputs(&e, &a);
        assert!(bits(&c).iter().all(|&b| !b));
        assert_eq!(c.status, Status::Accuracy);
    }

    #[test]
    fn int_outputs_need_exact_equality() {
        let e = [OutputView::new(DType::Int64, &[3], Values::Int(&[1, 2, 3])).expect("view")];
        let a = [OutputView::new(DType::Int64, &[3], Values::Int(&[1, 2, 4])).expect("view")];
        let c = compare_outputs(&e, &a);
        assert_eq!(c.status, Status::Accuracy);
        assert!(
            bits(&c).iter().all(|&b| !b),
            "no level tolerates an int diff"
        );
        assert_eq!(c.outputs[0].max_abs_err, Some(1.0));
        let extreme_e =
            [OutputView::new(DType::Int64, &[1], Values::Int(&[i64::MIN])).expect("view")];
        let extreme_a =
            [OutputView::new(DType::Int64, &[1], Values::Int(&[i64::MAX])).expect("view")];
        let c = compare_outputs(&extreme_e, &extreme_a);
        assert_eq!(c.status, Status::Accuracy);
        assert!(c.outputs[0].max_abs_err.is_some_and(|d| d > 1.8e19));
    }

    #[test]
    fn uint_and_bool_outputs() {
        let e = [OutputView::new(DType::UInt8, &[2], Values::UInt(&[0, 255])).expect("view")];
        assert_eq!(compare_outputs(&e, &e).status, Status::Correct);
        let a = [OutputView::new(DType::UInt8, &[2], Values::UInt(&[1, 255])).expect("view")];
        assert_eq!(compare_outputs(&e, &a).status, Status::Accuracy);
        let e = [OutputView::new(DType::Bool, &[2], Values::Bool(&[true, false])).expect("view")];
        let a = [OutputView::new(DType::Bool, &[2], Values::Bool(&[true, true])).expect("view")];
        assert_eq!(compare_outputs(&e, &e).status, Status::Correct);
        let c = compare_outputs(&e, &a);
        assert_eq!(c.status, Status::Accuracy);
        assert_eq!(c.outputs[0].max_abs_err, Some(1.0));
    }

    #[test]
    fn dtype_mismatch() {
        let e = [f(DType::Float32, &[1], &[1.0])];
        let a = [f(DType::Float16, &[1], &[1.0])];
        let c = compare_outputs(&e, &a);
        assert_eq!(c.status, Status::DtypeMismatch);
        assert!(bits(&c).iter().all(|&b| !b));
        assert_eq!(c.outputs[0].actual_dtype, Some(DType::Float16));
        assert!(c.outputs[0].passes.is_empty());
    }

    #[test]
    fn dtype_mismatch_wins_over_shape_mismatch() {
        let e = [f(DType::Float32, &[1], &[1.0])];
        let a = [f(DType::Float64, &[1, 1], &[1.0])];
        assert_eq!(compare_outputs(&e, &a).status, Status::DtypeMismatch);
    }

    #[test]
    fn output_count_mismatch_is_dtype_mismatch() {
        let e = [
            f(DType::Float32, &[1], &[1.0]),
            f(DType::Float32, &[1], &[2.0]),
        ];
        let a = [f(DType::Float32, &[1], &[1.0])];
        let c = compare_outputs(&e, &a);
        assert_eq!(c.status, Status::DtypeMismatch);
        assert_eq!(c.outputs.len(), 2);
        assert_eq!(c.outputs[1].actual_dtype, None);
    }

    #[test]
    fn shape_mismatch() {
        let e = [f(DType::Float32, &[2, 1], &[1.0, 2.0])];
        let a = [f(DType::Float32, &[1, 2], &[1.0, 2.0])];
        let c = compare_outputs(&e, &a);
        assert_eq!(c.status, Status::ShapeMismatch);
        assert_eq!(c.outputs[0].reference_shape, Some(vec![2, 1]));
        assert_eq!(c.outputs[0].actual_shape, Some(vec![1, 2]));
    }

    #[test]
    fn all_outputs_must_pass() {
        let e = [
            f(DType::Float32, &[1], &[1.0]),
            f(DType::Float64, &[1], &[1.0]),
        ];
        // Output 1 (float64) off by 1e-9: passes at t = -6 (1e-8.4 ≈ 3.98e-9 each), fails at -7.
        let a = [
            f(DType::Float32, &[1], &[1.0]),
            f(DType::Float64, &[1], &[1.0 + 1e-9]),
        ];
        let c = compare_outputs(&e, &a);
        assert_eq!(c.correct_at.get(&-6), Some(&true));
        assert_eq!(c.correct_at.get(&-7), Some(&false));
        assert_eq!(c.outputs[0].passes.get(&-7), Some(&true));
    }

    #[test]
    fn empty_outputs_compare_equal() {
        let e = [f(DType::Float32, &[0], &[])];
        assert_eq!(compare_outputs(&e, &e).status, Status::Correct);
        assert_eq!(compare_outputs(&[], &[]).status, Status::Correct);
    }

    #[test]
    fn views_validate_kind_and_length() {
        assert!(OutputView::new(DType::Float32, &[2], Values::Float(&[1.0])).is_err());
        assert!(OutputView::new(DType::Int32, &[1], Values::Float(&[1.0])).is_err());
        assert!(OutputView::new(DType::UInt8, &[1], Values::Int(&[1])).is_err());
        assert!(OutputView::new(DType::Bool, &[1], Values::UInt(&[1])).is_err());
        assert!(OutputView::new(DType::Float32, &[usize::MAX, 2], Values::Float(&[])).is_err());
        let v = OutputView::new(DType::Int8, &[], Values::Int(&[7])).expect("scalar view");
        assert_eq!(v.shape(), &[] as &[usize]);
        assert_eq!(v.dtype(), DType::Int8);
        assert_eq!(v.values().len(), 1);
    }

    #[test]
    fn bfloat16_uses_its_own_row() {
        // t = -5: bf16 rtol 1.6e-2 vs fp16 1e-3. e = 1, d = 5e-3 passes bf16, fails fp16.
        let eb = [f(DType::BFloat16, &[1], &[1.0])];
        let ab = [f(DType::BFloat16, &[1], &[1.005])];
        assert_eq!(compare_outputs(&eb, &ab).correct_at.get(&-5), Some(&true));
        let eh = [f(DType::Float16, &[1], &[1.0])];
        let ah = [f(DType::Float16, &[1], &[1.005])];
        assert_eq!(compare_outputs(&eh, &ah).correct_at.get(&-5), Some(&false));
    }
}
