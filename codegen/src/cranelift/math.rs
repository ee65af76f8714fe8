//! f32 transcendental functions emitted inline, generic over the lane count (scalar f32
//! or f32x4), so vector and scalar code compute bit-identical results.
//!
//! exp and log follow Cephes' `expf`/`logf` (range reduction, degree-5 and degree-8
//! polynomials); tanh is Cephes' polynomial below 0.625 and `1 - 2/(e^{2x}+1)` above; erf
//! is Norbert Juffa's division-free `erff` (`x + x·P(x²)` for |x| ≤ 0.921875, `1 −
//! e^{−(t + t·Q(t))}` above). Measured against f64 references: exp ≤ 1 ulp, log ≤ 1 ulp,
//! tanh ≤ 1.4 ulp, erf ≤ 2.4 ulp (1.4e-7 absolute); `tests.rs` checks these bounds
//! through the JIT.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::types::{F32, F32X4, I32, I32X4};
use cranelift_codegen::ir::{Endianness, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

/// erf for |x| ≤ 0.921875: `x + x·P(x²)`, P highest coefficient first.
const ERF_SMALL: [f64; 6] = [
    -5.991_049_69e-4,
    4.993_395_88e-3,
    -2.676_673_42e-2,
    1.128_180_25e-1,
    -3.761_248_59e-1,
    1.283_791_51e-1,
];
/// erf above: `1 − exp(−(t + t·Q(t)))`, Q highest coefficient first.
const ERF_BIG: [f64; 7] = [
    1.729_489_30e-5,
    -3.832_086_80e-4,
    3.883_934_35e-3,
    -2.425_456_05e-2,
    1.067_778_47e-1,
    6.348_466_87e-1,
    1.287_175_12e-1,
];

/// Emits f32 math for one lane type.
pub(crate) struct Math<'a, 'b> {
    pub b: &'a mut FunctionBuilder<'b>,
    pub vector: bool,
    pub fma: bool,
}

impl Math<'_, '_> {
    fn fty(&self) -> Type {
        if self.vector { F32X4 } else { F32 }
    }

    fn ity(&self) -> Type {
        if self.vector { I32X4 } else { I32 }
    }

    pub fn c(&mut self, v: f64) -> Value {
        let s = self.b.ins().f32const(v as f32);
        if self.vector {
            self.b.ins().splat(F32X4, s)
        } else {
            s
        }
    }

    fn ci(&mut self, v: i64) -> Value {
        let s = self.b.ins().iconst(I32, v);
        if self.vector {
            self.b.ins().splat(I32X4, s)
        } else {
            s
        }
    }

    fn flags() -> MemFlagsData {
        MemFlagsData::new().with_endianness(Endianness::Little)
    }

    fn bits_to_f(&mut self, i: Value) -> Value {
        let t = self.fty();
        self.b.ins().bitcast(t, Self::flags(), i)
    }

    fn bits_to_i(&mut self, f: Value) -> Value {
        let t = self.ity();
        self.b.ins().bitcast(t, Self::flags(), f)
    }

    /// `a·b + c`.
    pub fn mul_add(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }

    /// Horner evaluation, highest coefficient first.
    fn horner(&mut self, x: Value, coeffs: &[f64]) -> Value {
        let mut p = self.c(coeffs[0]);
        for &k in &coeffs[1..] {
            let kc = self.c(k);
            p = self.mul_add(p, x, kc);
        }
        p
    }

    /// A lane mask for a float comparison.
    pub fn fcmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        self.b.ins().fcmp(cc, a, b)
    }

    /// `mask ? a : b` for a mask from [`Math::fcmp`].
    pub fn select(&mut self, mask: Value, a: Value, b: Value) -> Value {
        if self.vector {
            let m = self.bits_to_f(mask);
            self.b.ins().bitselect(m, a, b)
        } else {
            self.b.ins().select(mask, a, b)
        }
    }

    /// The magnitude of `mag` with the sign of `sign` (bitwise; f32x4 has no copysign).
    fn copysign(&mut self, mag: Value, sign: Value) -> Value {
        if !self.vector {
            return self.b.ins().fcopysign(mag, sign);
        }
        let m = self.bits_to_i(mag);
        let s = self.bits_to_i(sign);
        let abs = self.ci(0x7FFF_FFFF);
        let sb = self.ci(0x8000_0000_u32 as i32 as i64);
        let m = self.b.ins().band(m, abs);
        let s = self.b.ins().band(s, sb);
        let r = self.b.ins().bor(m, s);
        self.bits_to_f(r)
    }

    /// `b < a ? b : a` (x86 `minps`-like; a NaN `a` is kept).
    fn min_keep(&mut self, a: Value, b: Value) -> Value {
        let lt = self.fcmp(FloatCC::LessThan, b, a);
        self.select(lt, b, a)
    }

    /// `b > a ? b : a` (a NaN `a` is kept).
    fn max_keep(&mut self, a: Value, b: Value) -> Value {
        let gt = self.fcmp(FloatCC::GreaterThan, b, a);
        self.select(gt, b, a)
    }

    pub fn exp(&mut self, x: Value) -> Value {
        let lo = self.c(-87.336_547_851_562_5);
        let hi = self.c(88.722_839_355_468_75);
        // Clamp with compare-and-select (NaN stays NaN): IEEE fmax/fmin cost ~8
        // instructions each on x86.
        let xc = self.max_keep(x, lo);
        let xc = self.min_keep(xc, hi);
        let l2e = self.c(std::f64::consts::LOG2_E);
        let t = self.b.ins().fmul(xc, l2e);
        let fx = self.b.ins().nearest(t);
        let c1 = self.c(0.693_359_375);
        let c2 = self.c(-2.121_944_40e-4);
        let a = self.b.ins().fmul(fx, c1);
        let r = self.b.ins().fsub(xc, a);
        let bb = self.b.ins().fmul(fx, c2);
        let r = self.b.ins().fsub(r, bb);
        let p = self.horner(
            r,
            &[
                1.987_569_150_0e-4,
                1.398_199_950_7e-3,
                8.333_451_907_3e-3,
                4.166_579_589_4e-2,
                1.666_666_545_9e-1,
                5.000_000_120_1e-1,
            ],
        );
        let rr = self.b.ins().fmul(r, r);
        let one = self.c(1.0);
        let r1 = self.b.ins().fadd(r, one);
        let y = self.mul_add(p, rr, r1);
        // 2^(fx-1) without a float-to-int conversion: fx + 2^23 + 126 holds fx + 126 in
        // its low mantissa bits (fx is an integer in [-126, 128]); shift them into the
        // exponent field.
        let magic = self.c(8_388_734.0);
        let t = self.b.ins().fadd(fx, magic);
        let bits = self.bits_to_i(t);
        let e = self.b.ins().ishl_imm_u(bits, 23);
        let pow2 = self.bits_to_f(e);
        let y = self.b.ins().fmul(y, pow2);
        let two = self.c(2.0);
        self.b.ins().fmul(y, two)
    }

    pub fn log(&mut self, x: Value) -> Value {
        let min_normal = self.c(1.175_494_35e-38);
        let small = self.fcmp(FloatCC::LessThan, x, min_normal);
        let scale = self.c(8_388_608.0);
        let xs_big = self.b.ins().fmul(x, scale);
        let xs = self.select(small, xs_big, x);
        let bits = self.bits_to_i(xs);
        let sh = self.b.ins().ushr_imm_u(bits, 23);
        let ff = self.ci(0xff);
        let ex = self.b.ins().band(sh, ff);
        let c126 = self.ci(126);
        let ex = self.b.ins().isub(ex, c126);
        let e23 = self.ci(23);
        let zero_i = self.ci(0);
        let small_i = if self.vector {
            small
        } else {
            self.b.ins().uextend(I32, small)
        };
        let adj = if self.vector {
            self.b.ins().bitselect(small_i, e23, zero_i)
        } else {
            let t = self.b.ins().ineg(small_i);
            self.b.ins().band(t, e23)
        };
        let ex = self.b.ins().isub(ex, adj);
        let mant_mask = self.ci(0x807F_FFFF_u32 as i32 as i64);
        let half_bits = self.ci(0x3F00_0000);
        let m = self.b.ins().band(bits, mant_mask);
        let m = self.b.ins().bor(m, half_bits);
        let m = self.bits_to_f(m);
        let sqrthf = self.c(std::f64::consts::FRAC_1_SQRT_2);
        let lt = self.fcmp(FloatCC::LessThan, m, sqrthf);
        let fty = self.fty();
        let e = self.b.ins().fcvt_from_sint(fty, ex);
        let one = self.c(1.0);
        let zero = self.c(0.0);
        let dec = self.select(lt, one, zero);
        let e = self.b.ins().fsub(e, dec);
        let m2 = self.b.ins().fadd(m, m);
        let m = self.select(lt, m2, m);
        let m = self.b.ins().fsub(m, one);
        let z = self.b.ins().fmul(m, m);
        let y = self.horner(
            m,
            &[
                7.037_683_629_2e-2,
                -1.151_461_031_0e-1,
                1.167_699_874_0e-1,
                -1.242_014_084_6e-1,
                1.424_932_278_7e-1,
                -1.666_805_766_5e-1,
                2.000_071_476_5e-1,
                -2.499_999_399_3e-1,
                3.333_333_117_4e-1,
            ],
        );
        let y = self.b.ins().fmul(y, m);
        let y = self.b.ins().fmul(y, z);
        let q1 = self.c(-2.121_944_40e-4);
        let y = self.mul_add(e, q1, y);
        let mhalf = self.c(-0.5);
        let y = self.mul_add(z, mhalf, y);
        let r = self.b.ins().fadd(m, y);
        let q2 = self.c(0.693_359_375);
        let r = self.mul_add(e, q2, r);
        // Special inputs: 0 → -inf, negative or NaN → NaN, +inf → +inf.
        let ninf = self.c(f64::NEG_INFINITY);
        let inf = self.c(f64::INFINITY);
        let nan = self.c(f64::NAN);
        let is0 = self.fcmp(FloatCC::Equal, x, zero);
        let r = self.select(is0, ninf, r);
        let neg = self.fcmp(FloatCC::UnorderedOrLessThan, x, zero);
        let r = self.select(neg, nan, r);
        let isinf = self.fcmp(FloatCC::Equal, x, inf);
        self.select(isinf, inf, r)
    }

    pub fn tanh(&mut self, x: Value) -> Value {
        let a = self.b.ins().fabs(x);
        let z = self.b.ins().fmul(x, x);
        let p = self.horner(
            z,
            &[
                -5.704_988_727_45e-3,
                2.063_908_879_54e-2,
                -5.373_971_555_31e-2,
                1.333_144_220_36e-1,
                -3.333_328_194_22e-1,
            ],
        );
        let pz = self.b.ins().fmul(p, z);
        let small = self.mul_add(pz, x, x);
        let two = self.c(2.0);
        let a2 = self.b.ins().fmul(a, two);
        let e = self.exp(a2);
        let one = self.c(1.0);
        let e1 = self.b.ins().fadd(e, one);
        let q = self.b.ins().fdiv(two, e1);
        let big = self.b.ins().fsub(one, q);
        let big = self.copysign(big, x);
        let lim = self.c(0.625);
        let is_small = self.fcmp(FloatCC::LessThan, a, lim);
        self.select(is_small, small, big)
    }

    pub fn sigmoid(&mut self, x: Value) -> Value {
        let nx = self.b.ins().fneg(x);
        let e = self.exp(nx);
        let one = self.c(1.0);
        let d = self.b.ins().fadd(one, e);
        self.b.ins().fdiv(one, d)
    }

    /// erf after Norbert Juffa's faithfully rounded `erff`: `a + a·P(a²)` for
    /// |a| ≤ 0.921875, `1 − exp(−(t + t·Q(t)))` above (t = |a|); both evaluated and
    /// blended, no division.
    pub fn erf(&mut self, x: Value) -> Value {
        let t = self.b.ins().fabs(x);
        let s = self.b.ins().fmul(x, x);
        let small = self.horner(s, &ERF_SMALL);
        let small = self.mul_add(small, x, x);
        let big = self.horner(t, &ERF_BIG);
        let big = self.mul_add(big, t, t);
        let nbig = self.b.ins().fneg(big);
        let e = self.exp(nbig);
        let one = self.c(1.0);
        let big = self.b.ins().fsub(one, e);
        let big = self.copysign(big, x);
        let lim = self.c(0.921_875);
        // NaN compares false and takes the large branch, where exp keeps it NaN.
        let is_small = self.fcmp(FloatCC::LessThanOrEqual, t, lim);
        self.select(is_small, small, big)
    }
}
