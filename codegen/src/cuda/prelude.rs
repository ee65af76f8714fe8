//! The helper functions every kernel source starts with.
//!
//! They give the scalar operations the semantics of the reference interpreter: NaN-
//! propagating max/min, NaN-preserving relu and sign, saturating float-to-integer casts,
//! wrapping integer arithmetic, checked integer division and gather indices. Rare f32
//! functions (sin, cos, pow, softplus) compute in f64 and round once, like the Cranelift
//! backend.

/// Status bit: a gathered index was out of range.
pub const STATUS_INDEX_OUT_OF_RANGE: u64 = 1;
/// Status bit: an integer division by zero.
pub const STATUS_DIVISION_BY_ZERO: u64 = 2;

const COMMON: &str = r#"
/* Helpers a kernel does not use are not an error. */
#pragma nv_diag_suppress 177
#define T_INLINE static __device__ __forceinline__

/* Status bits: 1 = gathered index out of range, 2 = integer division by zero. */
T_INLINE void t_flag(unsigned long long* status, unsigned long long bit) { atomicOr(status, bit); }

/* Division and modulo of non-negative indices by positive constants. */
T_INLINE int t_div(int x, int d) { return (int)((unsigned)x / (unsigned)d); }
T_INLINE int t_mod(int x, int d) { return (int)((unsigned)x % (unsigned)d); }
T_INLINE long long t_div(long long x, long long d) { return (long long)((unsigned long long)x / (unsigned long long)d); }
T_INLINE long long t_mod(long long x, long long d) { return (long long)((unsigned long long)x % (unsigned long long)d); }

/* Max and min where NaN wins. */
T_INLINE float t_max(float a, float b) { return isnan(a) ? a : (isnan(b) ? b : fmaxf(a, b)); }
T_INLINE float t_min(float a, float b) { return isnan(a) ? a : (isnan(b) ? b : fminf(a, b)); }
T_INLINE double t_max(double a, double b) { return isnan(a) ? a : (isnan(b) ? b : fmax(a, b)); }
T_INLINE double t_min(double a, double b) { return isnan(a) ? a : (isnan(b) ? b : fmin(a, b)); }
T_INLINE long long t_max(long long a, long long b) { return a > b ? a : b; }
T_INLINE long long t_min(long long a, long long b) { return a < b ? a : b; }
T_INLINE unsigned long long t_max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
T_INLINE unsigned long long t_min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
T_INLINE int t_max(int a, int b) { return a > b ? a : b; }
T_INLINE int t_min(int a, int b) { return a < b ? a : b; }

/* Float functions with the reference's edge cases. */
T_INLINE float t_sign(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x); }
T_INLINE double t_sign(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : x); }
T_INLINE float t_relu(float x) { return (x > 0.0f || isnan(x)) ? x : 0.0f; }
T_INLINE double t_relu(double x) { return (x > 0.0 || isnan(x)) ? x : 0.0; }
T_INLINE float t_sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  const float e = expf(x);
  return e / (1.0f + e);
}
T_INLINE double t_sigmoid(double x) {
  if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
  const double e = exp(x);
  return e / (1.0 + e);
}
T_INLINE double t_softplus(double x) { return x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
T_INLINE float t_softplus(float x) { return (float)t_softplus((double)x); }
T_INLINE float t_sin(float x) { return (float)sin((double)x); }
T_INLINE float t_cos(float x) { return (float)cos((double)x); }
T_INLINE float t_pow(float x, float y) { return (float)pow((double)x, (double)y); }

/* Integers: wrapping arithmetic, checked division, saturating conversions. */
T_INLINE long long t_wadd(long long a, long long b) { return (long long)((unsigned long long)a + (unsigned long long)b); }
T_INLINE long long t_wsub(long long a, long long b) { return (long long)((unsigned long long)a - (unsigned long long)b); }
T_INLINE long long t_wmul(long long a, long long b) { return (long long)((unsigned long long)a * (unsigned long long)b); }
T_INLINE long long t_wneg(long long a) { return (long long)(0ULL - (unsigned long long)a); }
T_INLINE long long t_wabs(long long a) { return a < 0 ? t_wneg(a) : a; }
T_INLINE long long t_isign(long long a) { return (long long)(a > 0) - (long long)(a < 0); }
T_INLINE long long t_idiv(long long a, long long b, unsigned long long* status) {
  if (b == 0) { t_flag(status, 2ULL); return 0; }
  if (b == -1) return t_wneg(a);
  return a / b;
}
T_INLINE unsigned long long t_idiv(unsigned long long a, unsigned long long b, unsigned long long* status) {
  if (b == 0) { t_flag(status, 2ULL); return 0; }
  return a / b;
}
/* double -> i64 saturating (NaN -> 0), then clamped to [lo, hi]. */
T_INLINE long long t_f2i(double x, long long lo, long long hi) {
  long long i;
  if (isnan(x)) i = 0;
  else if (x >= 9223372036854775807.0) i = 9223372036854775807LL;
  else if (x <= -9223372036854775808.0) i = (-9223372036854775807LL - 1);
  else i = (long long)x;
  return i < lo ? lo : (i > hi ? hi : i);
}
T_INLINE unsigned long long t_f2u(double x) {
  if (isnan(x) || x <= 0.0) return 0ULL;
  if (x >= 18446744073709551615.0) return 18446744073709551615ULL;
  return (unsigned long long)x;
}
T_INLINE long long t_ipow(long long x, long long y) { return t_f2i(pow((double)x, (double)y), (-9223372036854775807LL - 1), 9223372036854775807LL); }
/* A gather index: negative counts from the end; out of range flags and reads 0. */
T_INLINE long long t_check_index(long long v, long long dim, unsigned long long* status) {
  const long long w = v < 0 ? v + dim : v;
  if ((unsigned long long)w >= (unsigned long long)dim) { t_flag(status, 1ULL); return 0; }
  return w;
}
"#;

const HALF: &str = r#"
T_INLINE float t_round_f16(float x) { return __half2float(__float2half_rn(x)); }
T_INLINE float t_round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }
"#;

/// The includes and helpers every kernel source starts with (after its header comment);
/// `half` adds the f16/bf16 headers and rounding helpers.
pub fn prelude(half: bool) -> String {
    let mut s = String::new();
    if half {
        s.push_str("#include <cuda_fp16.h>\n#include <cuda_bf16.h>\n");
    }
    s.push_str(COMMON);
    if half {
        s.push_str(HALF);
    }
    s.push('\n');
    s
}
