//! Output dtypes and GraphNet's tolerance ladder.
//!
//! Correctness at level `t` (an integer in `T_MIN..=T_MAX`) is `allclose` with
//! `atol = 10^(t·ka)` and `rtol = 10^(t·kr)`, both rounded to 3 significant digits, with
//! `(ka, kr)` chosen by the reference (eager) output's dtype:
//!
//! | dtype    | ka  | kr        |
//! |----------|-----|-----------|
//! | float16  | 1   | 3/5       |
//! | bfloat16 | 1   | 1.796/5   |
//! | float32  | 1   | 5.886/5   |
//! | float64  | 7/5 | 7/5       |
//! | other    | exact equality  ||
//!
//! The exponents are evaluated with the same operation order as GraphNet's Python
//! (`10 ** (t * 3 / 5)` etc.), so the `%.2E` keys this module builds for log import are the
//! strings GraphNet's reader builds.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::BenchError;

/// Strictest tolerance level.
pub const T_MIN: i32 = -10;
/// Loosest tolerance level any interpretation uses (`mismatch_extended` goes up to 5).
pub const T_MAX: i32 = 5;
/// Number of levels in `T_MIN..=T_MAX`.
pub const LEVELS: usize = (T_MAX - T_MIN + 1) as usize;

/// All levels `T_MIN..=T_MAX`, strictest first.
pub fn all_levels() -> RangeInclusive<i32> {
    T_MIN..=T_MAX
}

/// Index of level `t` into a `[_; LEVELS]` array, or `None` when `t` is out of range.
pub fn level_index(t: i32) -> Option<usize> {
    if (T_MIN..=T_MAX).contains(&t) {
        usize::try_from(t - T_MIN).ok()
    } else {
        None
    }
}

/// Element type of a model output, spelled the way torch prints it (without `torch.`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE half precision.
    Float16,
    /// bfloat16.
    BFloat16,
    /// IEEE single precision.
    Float32,
    /// IEEE double precision.
    Float64,
    /// Signed 8-bit integer.
    Int8,
    /// Signed 16-bit integer.
    Int16,
    /// Signed 32-bit integer.
    Int32,
    /// Signed 64-bit integer.
    Int64,
    /// Unsigned 8-bit integer.
    UInt8,
    /// Unsigned 16-bit integer.
    UInt16,
    /// Unsigned 32-bit integer.
    UInt32,
    /// Unsigned 64-bit integer.
    UInt64,
    /// Boolean.
    Bool,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 13] = [
        DType::Float16,
        DType::BFloat16,
        DType::Float32,
        DType::Float64,
        DType::Int8,
        DType::Int16,
        DType::Int32,
        DType::Int64,
        DType::UInt8,
        DType::UInt16,
        DType::UInt32,
        DType::UInt64,
        DType::Bool,
    ];

    /// The torch spelling (`"float32"`, `"int64"`, `"bool"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::Float16 => "float16",
            DType::BFloat16 => "bfloat16",
            DType::Float32 => "float32",
            DType::Float64 => "float64",
            DType::Int8 => "int8",
            DType::Int16 => "int16",
            DType::Int32 => "int32",
            DType::Int64 => "int64",
            DType::UInt8 => "uint8",
            DType::UInt16 => "uint16",
            DType::UInt32 => "uint32",
            DType::UInt64 => "uint64",
            DType::Bool => "bool",
        }
    }

    /// True for the four floating-point dtypes (compared with `allclose`).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::Float16 | DType::BFloat16 | DType::Float32 | DType::Float64
        )
    }

    /// True for signed integer dtypes.
    pub fn is_signed_int(self) -> bool {
        matches!(
            self,
            DType::Int8 | DType::Int16 | DType::Int32 | DType::Int64
        )
    }

    /// True for unsigned integer dtypes.
    pub fn is_unsigned_int(self) -> bool {
        matches!(
            self,
            DType::UInt8 | DType::UInt16 | DType::UInt32 | DType::UInt64
        )
    }

    /// `(ka, kr)` exponent factors for float dtypes; `None` means exact equality.
    pub fn tolerance_exponents(self) -> Option<(f64, f64)> {
        match self {
            DType::Float16 => Some((1.0, 3.0 / 5.0)),
            DType::BFloat16 => Some((1.0, 1.796 / 5.0)),
            DType::Float32 => Some((1.0, 5.886 / 5.0)),
            DType::Float64 => Some((7.0 / 5.0, 7.0 / 5.0)),
            _ => None,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = BenchError;

    /// Parses the torch spelling, with or without a `torch.` prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = s.strip_prefix("torch.").unwrap_or(s);
        DType::ALL
            .into_iter()
            .find(|d| d.name() == bare)
            .ok_or_else(|| BenchError::InvalidArgument(format!("unknown dtype {s:?}")))
    }
}

/// An `allclose` tolerance pair; both zero means exact equality.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (relative to the reference value).
    pub rtol: f64,
}

impl Tolerance {
    /// Exact equality.
    pub const EXACT: Tolerance = Tolerance {
        atol: 0.0,
        rtol: 0.0,
    };

    /// True when this pair means exact equality.
    pub fn is_exact(self) -> bool {
        self.atol == 0.0 && self.rtol == 0.0
    }
}

/// GraphNet's unrounded `(atol, rtol)` at level `t`, evaluated in Python's operation order.
fn unrounded(dtype: DType, t: i32) -> Tolerance {
    let tf = f64::from(t);
    let ten = 10f64;
    // Python: `10**t` for the atol of the three narrow float types.
    let pow10_t = ten.powf(tf);
    match dtype {
        DType::Float16 => Tolerance {
            atol: pow10_t,
            rtol: ten.powf(f64::from(t * 3) / 5.0),
        },
        DType::BFloat16 => Tolerance {
            atol: pow10_t,
            rtol: ten.powf(tf * 1.796 / 5.0),
        },
        DType::Float32 => Tolerance {
            atol: pow10_t,
            rtol: ten.powf(tf * 5.886 / 5.0),
        },
        DType::Float64 => {
            let v = ten.powf(f64::from(t * 7) / 5.0);
            Tolerance { atol: v, rtol: v }
        }
        _ => Tolerance::EXACT,
    }
}

/// Rounds `x` to 3 significant digits the way Python's `float(f"{x:.3g}")` does.
pub fn round_sig3(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    format!("{x:.2e}").parse::<f64>().unwrap_or(x)
}

/// The tolerance used to compare an output whose reference dtype is `dtype` at level `t`:
/// GraphNet's exponent table, each value rounded to 3 significant digits.
pub fn tolerance(dtype: DType, t: i32) -> Tolerance {
    let raw = unrounded(dtype, t);
    Tolerance {
        atol: round_sig3(raw.atol),
        rtol: round_sig3(raw.rtol),
    }
}

/// Formats `x` like Python's `f"{x:.2E}"` (`1.00E-05`, `2.51E+01`).
pub fn python_e2(x: f64) -> String {
    let s = format!("{x:.2E}");
    match s.split_once('E') {
        Some((mantissa, exp)) => match exp.parse::<i32>() {
            Ok(e) => {
                let sign = if e < 0 { '-' } else { '+' };
                format!("{mantissa}E{sign}{:02}", e.unsigned_abs())
            }
            Err(_) => s,
        },
        None => s,
    }
}

/// The correctness key GraphNet's log reader looks up for an output whose eager dtype string
/// is `dtype` at level `t`: `[all_close_atol_{atol:.2E}_rtol_{rtol:.2E}]` built from the
/// unrounded tolerances, or `[equal]` for dtypes without a tolerance row.
pub fn graphnet_log_key(dtype: &str, t: i32) -> String {
    match dtype.parse::<DType>() {
        Ok(d) if d.is_float() => {
            let tol = unrounded(d, t);
            format!(
                "[all_close_atol_{}_rtol_{}]",
                python_e2(tol.atol),
                python_e2(tol.rtol)
            )
        }
        _ => "[equal]".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_e2_matches_python_formatting() {
        assert_eq!(python_e2(1e-10), "1.00E-10");
        assert_eq!(python_e2(1e5), "1.00E+05");
        assert_eq!(python_e2(25.118864315095795), "2.51E+01");
        assert_eq!(python_e2(1.0), "1.00E+00");
        assert_eq!(python_e2(0.0), "0.00E+00");
    }

    #[test]
    fn keys_match_the_golden_log() {
        // Lines 11..14 and 55..58 of the golden log (t = -10 and t = 1).
        assert_eq!(
            graphnet_log_key("float16", -10),
            "[all_close_atol_1.00E-10_rtol_1.00E-06]"
        );
        assert_eq!(
            graphnet_log_key("bfloat16", -10),
            "[all_close_atol_1.00E-10_rtol_2.56E-04]"
        );
        assert_eq!(
            graphnet_log_key("float32", -10),
            "[all_close_atol_1.00E-10_rtol_1.69E-12]"
        );
        assert_eq!(
            graphnet_log_key("float64", -10),
            "[all_close_atol_1.00E-14_rtol_1.00E-14]"
        );
        assert_eq!(
            graphnet_log_key("float32", 1),
            "[all_close_atol_1.00E+01_rtol_1.50E+01]"
        );
        assert_eq!(
            graphnet_log_key("float64", 5),
            "[all_close_atol_1.00E+07_rtol_1.00E+07]"
        );
        assert_eq!(graphnet_log_key("int64", -3), "[equal]");
        assert_eq!(graphnet_log_key("bool", 0), "[equal]");
    }

    #[test]
    fn rounded_tolerances_follow_the_table() {
        let t = tolerance(DType::Float32, -5);
        assert_eq!((t.atol, t.rtol), (1e-5, 1.3e-6));
        let t = tolerance(DType::Float16, -5);
        assert_eq!((t.atol, t.rtol), (1e-5, 1e-3));
        let t = tolerance(DType::BFloat16, -5);
        assert_eq!((t.atol, t.rtol), (1e-5, 1.6e-2));
        let t = tolerance(DType::Float64, -5);
        assert_eq!((t.atol, t.rtol), (1e-7, 1e-7));
        let t = tolerance(DType::Float32, 1);
        assert_eq!((t.atol, t.rtol), (10.0, 15.0));
        for d in DType::ALL {
            let t0 = tolerance(d, 0);
            if d.is_float() {
                assert_eq!((t0.atol, t0.rtol), (1.0, 1.0));
            } else {
                assert!(t0.is_exact());
            }
        }
    }

    #[test]
    fn tolerances_grow_with_t() {
        for d in [
            DType::Float16,
            DType::BFloat16,
            DType::Float32,
            DType::Float64,
        ] {
            for t in T_MIN..T_MAX {
                let a = tolerance(d, t);
                let b = tolerance(d, t + 1);
                assert!(a.atol < b.atol && a.rtol < b.rtol, "{d} at {t}");
            }
        }
    }

    #[test]
    fn dtype_names_round_trip() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>().ok(), Some(d));
            let json = serde_json::to_string(&d).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", d.name()));
        }
        assert_eq!("torch.float32".parse::<DType>().ok(), Some(DType::Float32));
        assert!("complex64".parse::<DType>().is_err());
    }

    #[test]
    fn level_index_bounds() {
        assert_eq!(level_index(T_MIN), Some(0));
        assert_eq!(level_index(T_MAX), Some(LEVELS - 1));
        assert_eq!(level_index(T_MIN - 1), None);
        assert_eq!(level_index(T_MAX + 1), None);
    }
}
