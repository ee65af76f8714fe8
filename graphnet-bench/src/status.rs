//! Sample statuses, error classes and the two ES(t) error-tolerance interpretations.
//!
//! A native run records one explicit [`Status`] per sample. The scorer maps every failing
//! status to an [`ErrorClass`]; an [`Interpretation`] says from which level `t ≥ 1` a class
//! is tolerated in ES(t) (the sample then counts as speedup 1, "fell back to eager").

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::BenchError;
use crate::tolerance::T_MIN;

/// Outcome of one sample for one compiler/backend.
///
/// `Correct` and `Accuracy` both mean "ran and produced outputs of the right dtype and
/// shape"; per-level correctness bits decide S(t) for them. They differ only at `t = 1`, the
/// level ES(t) freezes at. Samples imported from a GraphNet log never get `Accuracy`:
/// GraphNet labels every sample that ran `correct` and decides accuracy per level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Dtypes and shapes match, no new NaN/Inf, all outputs pass `allclose` at `t = 1`.
    Correct,
    /// Dtypes and shapes match, no new NaN/Inf, some output fails `allclose` at `t = 1`.
    Accuracy,
    /// The compiled output has NaN or ±Inf where the reference has a different value.
    NanInf,
    /// Output count or some output dtype differs from the reference.
    DtypeMismatch,
    /// Some output shape differs from the reference.
    ShapeMismatch,
    /// The compiler rejected or failed to build the model.
    CompileFail,
    /// The compiled model failed while running.
    RuntimeFail,
    /// The eager reference failed; the sample says nothing about the compiler.
    EagerFail,
    /// Outputs compared fine (correct or accuracy) but a timing had IQR/median > 0.2.
    Noisy,
}

impl Status {
    /// Every status, in declaration order.
    pub const ALL: [Status; 9] = [
        Status::Correct,
        Status::Accuracy,
        Status::NanInf,
        Status::DtypeMismatch,
        Status::ShapeMismatch,
        Status::CompileFail,
        Status::RuntimeFail,
        Status::EagerFail,
        Status::Noisy,
    ];

    /// The snake_case name used in JSON, tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Status::Correct => "correct",
            Status::Accuracy => "accuracy",
            Status::NanInf => "nan_inf",
            Status::DtypeMismatch => "dtype_mismatch",
            Status::ShapeMismatch => "shape_mismatch",
            Status::CompileFail => "compile_fail",
            Status::RuntimeFail => "runtime_fail",
            Status::EagerFail => "eager_fail",
            Status::Noisy => "noisy",
        }
    }

    /// True when the sample produced comparable outputs and a speedup
    /// (`correct`, `accuracy`, `noisy`); such records must carry a speedup.
    pub fn has_outputs(self) -> bool {
        matches!(self, Status::Correct | Status::Accuracy | Status::Noisy)
    }

    /// The error class a failing sample with this status belongs to, regardless of level.
    /// `None` for `correct`, `accuracy` and `noisy`, whose class depends on the level and the
    /// noisy policy (see [`mod@crate::score`]).
    pub fn failure_class(self) -> Option<ErrorClass> {
        match self {
            Status::Correct | Status::Accuracy | Status::Noisy => None,
            Status::NanInf => Some(ErrorClass::NanInf),
            Status::DtypeMismatch => Some(ErrorClass::DtypeMismatch),
            Status::ShapeMismatch => Some(ErrorClass::ShapeMismatch),
            Status::CompileFail => Some(ErrorClass::Compile),
            Status::RuntimeFail => Some(ErrorClass::Runtime),
            Status::EagerFail => Some(ErrorClass::Eager),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Status {
    type Err = BenchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| BenchError::InvalidArgument(format!("unknown status {s:?}")))
    }
}

/// Why a sample failed at some level; the unit ES(t) tolerates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// `allclose` failed at this level.
    Accuracy,
    /// New NaN/Inf in the compiled output.
    NanInf,
    /// Output count or dtype mismatch.
    DtypeMismatch,
    /// Output shape mismatch.
    ShapeMismatch,
    /// Compiled model crashed at run time (also: noisy timing under `--noisy fail`).
    Runtime,
    /// Compilation failed.
    Compile,
    /// Eager reference failed.
    Eager,
}

/// How ES(t) tolerates failures at `t ≥ 1` (GraphNet's `--positive-tolerance-interpretation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpretation {
    /// Three levels: accuracy from `t = 1`, every other class from `t = 3`; `t ∈ −10..=4`.
    #[default]
    Default,
    /// Four levels: accuracy 1; NaN/Inf, dtype and shape mismatch 2; runtime 3; compile 4;
    /// eager failures never; `t ∈ −10..=5`.
    MismatchExtended,
}

impl Interpretation {
    /// Both interpretations.
    pub const ALL: [Interpretation; 2] =
        [Interpretation::Default, Interpretation::MismatchExtended];

    /// The spelling GraphNet uses (`default`, `mismatch_extended`).
    pub fn name(self) -> &'static str {
        match self {
            Interpretation::Default => "default",
            Interpretation::MismatchExtended => "mismatch_extended",
        }
    }

    /// Highest level reported: 4 for `default`, 5 for `mismatch_extended`
    /// (GraphNet: `range(-10, num_error_levels + 2)`).
    pub fn t_max(self) -> i32 {
        match self {
            Interpretation::Default => 4,
            Interpretation::MismatchExtended => 5,
        }
    }

    /// The levels reported, strictest first.
    pub fn levels(self) -> RangeInclusive<i32> {
        T_MIN..=self.t_max()
    }

    /// Lowest level `t ≥ 1` at which ES(t) tolerates `class`; `None` means never.
    pub fn threshold(self, class: ErrorClass) -> Option<i32> {
        match self {
            Interpretation::Default => match class {
                ErrorClass::Accuracy => Some(1),
                _ => Some(3),
            },
            Interpretation::MismatchExtended => match class {
                ErrorClass::Accuracy => Some(1),
                ErrorClass::NanInf | ErrorClass::DtypeMismatch | ErrorClass::ShapeMismatch => {
                    Some(2)
                }
                ErrorClass::Runtime => Some(3),
                ErrorClass::Compile => Some(4),
                ErrorClass::Eager => None,
            },
        }
    }

    /// True when ES(t) counts a failure of `class` as speedup 1 at level `t`.
    pub fn tolerates(self, class: ErrorClass, t: i32) -> bool {
        t >= 1 && self.threshold(class).is_some_and(|thr| t >= thr)
    }
}

impl fmt::Display for Interpretation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Interpretation {
    type Err = BenchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Interpretation::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .ok_or_else(|| {
                BenchError::InvalidArgument(format!(
                    "unknown interpretation {s:?} (expected default or mismatch_extended)"
                ))
            })
    }
}

/// How the scorer treats `noisy` samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoisyPolicy {
    /// Score noisy samples like `correct`/`accuracy` ones, from their bits and speedup.
    #[default]
    Keep,
    /// Count noisy samples as run-time failures, as GraphNet does (it raises a
    /// `RuntimeError("Environment fluctuation detected")`).
    Fail,
}

impl NoisyPolicy {
    /// `keep` or `fail`.
    pub fn name(self) -> &'static str {
        match self {
            NoisyPolicy::Keep => "keep",
            NoisyPolicy::Fail => "fail",
        }
    }
}

impl fmt::Display for NoisyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NoisyPolicy {
    type Err = BenchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keep" => Ok(NoisyPolicy::Keep),
            "fail" => Ok(NoisyPolicy::Fail),
            _ => Err(BenchError::InvalidArgument(format!(
                "unknown noisy policy {s:?} (expected keep or fail)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_thresholds() {
        let i = Interpretation::Default;
        assert_eq!(i.threshold(ErrorClass::Accuracy), Some(1));
        for c in [
            ErrorClass::NanInf,
            ErrorClass::DtypeMismatch,
            ErrorClass::ShapeMismatch,
            ErrorClass::Runtime,
            ErrorClass::Compile,
            ErrorClass::Eager,
        ] {
            assert_eq!(i.threshold(c), Some(3), "{c:?}");
            assert!(!i.tolerates(c, 2));
            assert!(i.tolerates(c, 3));
        }
        assert!(!i.tolerates(ErrorClass::Accuracy, 0));
        assert!(i.tolerates(ErrorClass::Accuracy, 1));
    }

    #[test]
    fn mismatch_extended_thresholds() {
        let i = Interpretation::MismatchExtended;
        assert_eq!(i.threshold(ErrorClass::Accuracy), Some(1));
        assert_eq!(i.threshold(ErrorClass::NanInf), Some(2));
        assert_eq!(i.threshold(ErrorClass::DtypeMismatch), Some(2));
        assert_eq!(i.threshold(ErrorClass::ShapeMismatch), Some(2));
        assert_eq!(i.threshold(ErrorClass::Runtime), Some(3));
        assert_eq!(i.threshold(ErrorClass::Compile), Some(4));
        assert_eq!(i.threshold(ErrorClass::Eager), None);
        assert!(!i.tolerates(ErrorClass::Eager, 5));
        assert!(!i.tolerates(ErrorClass::Compile, 3));
        assert!(i.tolerates(ErrorClass::Compile, 4));
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(s.name().parse::<Status>().ok(), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap_or_default(),
                format!("\"{}\"", s.name())
            );
        }
        for i in Interpretation::ALL {
            assert_eq!(i.name().parse::<Interpretation>().ok(), Some(i));
        }
        assert!("fast".parse::<Interpretation>().is_err());
        assert_eq!("fail".parse::<NoisyPolicy>().ok(), Some(NoisyPolicy::Fail));
        assert!("maybe".parse::<NoisyPolicy>().is_err());
    }

    #[test]
    fn level_ranges() {
        assert_eq!(Interpretation::Default.levels(), -10..=4);
        assert_eq!(Interpretation::MismatchExtended.levels(), -10..=5);
    }
}
