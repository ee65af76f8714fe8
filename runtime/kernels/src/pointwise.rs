//! Native pointwise programs: a loop nest of elementwise f32 math, run 8 lanes wide.
//!
//! A [`Program`] is what a kernel-IR nest with one inner loop and only pointwise work
//! becomes (the CPU runtime translates the ones that qualify; Cranelift keeps the rest):
//! an expression DAG ([`Inst`], one register per instruction) over loads whose index is
//! affine in the outer loop variables and either contiguous or constant along the inner
//! loop, and contiguous stores. [`run`] walks the outer points of a range and, per point,
//! the inner columns in blocks of [`BLOCK`]: each instruction runs over the whole block
//! (8-lane AVX2+FMA vectors, or plain Rust), so the interpretive overhead is paid once per
//! 256 elements, and transcendental functions are native (exp and log after Cephes; erf,
//! tanh and sigmoid as rational functions fitted for these kernels, one division each),
//! twice Cranelift's vector width. [`Program::fuse`] turns GELU (erf) and the HardSigmoid
//! clamp into single instructions.
//!
//! Semantics follow the reference interpreter's f32 ops: `max`/`min` propagate NaN,
//! `relu(x) = x < 0 ? 0 : x` (NaN stays NaN), comparisons give masks that `select` reads.
//! Every element runs the same instructions whatever range or block it falls in, so
//! results do not depend on how callers split the outer points.

use std::cell::RefCell;

/// Inner columns per block: registers are `BLOCK` lanes.
pub const BLOCK: usize = 256;

/// Outer loops a program may have.
pub const MAX_OUTER: usize = 8;

/// Elementwise functions of one operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Abs,
    Relu,
    Exp,
    Log,
    Sqrt,
    Reciprocal,
    Erf,
    Tanh,
    Sigmoid,
    Floor,
    Ceil,
    /// Round half to even.
    Round,
    /// `0.5·x · (1 + erf(x · 0.70710677))`, the exact-GELU expansion evaluated in
    /// registers in the same operation order ([`Program::fuse`] forms it).
    GeluErf,
}

/// `1/√2` as f32, the scale of the exact-GELU expansion.
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// Elementwise functions of two operands; comparisons give masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    /// NaN if either operand is NaN.
    Max,
    /// NaN if either operand is NaN.
    Min,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
}

/// An element index `offset + Σ outer[k]·o_k + inner·i` over the outer coordinates `o`
/// and the inner column `i`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Affine {
    pub offset: i64,
    /// One coefficient per outer loop.
    pub outer: Vec<i64>,
    /// 1: contiguous along the inner loop; 0: the same element for every column.
    pub inner: i64,
}

/// One instruction; its result is the register of its position.
#[derive(Clone, Debug, PartialEq)]
pub enum Inst {
    Const(f32),
    /// Parameter `param` (f32) at `at`.
    Load {
        param: usize,
        at: Affine,
    },
    Unary(UnOp, u32),
    Binary(BinOp, u32, u32),
    /// `cond ? a : b`, `cond` a mask (a comparison).
    Select(u32, u32, u32),
    /// `min(max(x · alpha + beta, 0), 1)` (HardSigmoid; HardSwish multiplies it by `x`),
    /// each step rounded as the four instructions it replaces ([`Program::fuse`]).
    HardSigmoid(u32, f32, f32),
}

/// A contiguous store of register `value` to parameter `param` (f32) at `at`.
#[derive(Clone, Debug, PartialEq)]
pub struct Store {
    pub param: usize,
    pub at: Affine,
    pub value: u32,
}

/// A pointwise loop nest.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// Outer loop extents (row-major; points are numbered over them).
    pub outer: Vec<usize>,
    /// Inner loop extent.
    pub inner: usize,
    pub insts: Vec<Inst>,
    pub stores: Vec<Store>,
}

/// Why a program is malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

impl Program {
    /// Rewrites known multi-instruction functions into one instruction evaluated in
    /// registers (same operations in the same order, so the same bits), then drops
    /// instructions no store reaches, renumbering the rest. Each instruction costs a pass
    /// over a block of registers, so the exact GELU's five (`x·c`, erf, `1 + e`, `0.5·x`,
    /// product) as one saves four passes.
    pub fn fuse(&mut self) {
        let n = self.insts.len();
        let konst =
            |i: u32, v: f32| matches!(self.insts.get(i as usize), Some(Inst::Const(c)) if *c == v);
        // `a · b` with `b` the constant: the other operand.
        let times = |i: u32, v: f32| match self.insts.get(i as usize) {
            Some(Inst::Binary(BinOp::Mul, a, b)) if konst(*b, v) => Some(*a),
            Some(Inst::Binary(BinOp::Mul, a, b)) if konst(*a, v) => Some(*b),
            _ => None,
        };
        let plus_one = |i: u32| match self.insts.get(i as usize) {
            Some(Inst::Binary(BinOp::Add, a, b)) if konst(*a, 1.0) => Some(*b),
            Some(Inst::Binary(BinOp::Add, a, b)) if konst(*b, 1.0) => Some(*a),
            _ => None,
        };
        let gelu_of = |half: u32, one_plus: u32| -> Option<u32> {
            let x = times(half, 0.5)?;
            let Some(Inst::Unary(UnOp::Erf, s)) = self.insts.get(plus_one(one_plus)? as usize)
            else {
                return None;
            };
            (times(*s, FRAC_1_SQRT_2)? == x).then_some(x)
        };
        let fused: Vec<Option<u32>> = (0..n)
            .map(|i| match self.insts[i] {
                Inst::Binary(BinOp::Mul, a, b) => gelu_of(a, b).or_else(|| gelu_of(b, a)),
                _ => None,
            })
            .collect();
        // The constant of `a op b` and the other operand: on either side for commutative
        // operations, on the right only for max and min (which return their second
        // operand on equal values, so `max(−0, +0)` differs from `max(+0, −0)`).
        let with_const = |i: u32, op: BinOp, either: bool| -> Option<(u32, f32)> {
            let Some(&Inst::Binary(o, a, b)) = self.insts.get(i as usize) else {
                return None;
            };
            let c = |r: u32| match self.insts.get(r as usize) {
                Some(&Inst::Const(v)) => Some(v),
                _ => None,
            };
            (o == op).then_some(())?;
            c(b).map(|v| (a, v))
                .or_else(|| either.then(|| c(a).map(|v| (b, v))).flatten())
        };
        // min(max(x · alpha + beta, 0), 1).
        let hard_sigmoid = |i: usize| -> Option<(u32, f32, f32)> {
            let (u, one) = with_const(i as u32, BinOp::Min, false)?;
            let (v, zero) = with_const(u, BinOp::Max, false)?;
            let (w, beta) = with_const(v, BinOp::Add, true)?;
            let (x, alpha) = with_const(w, BinOp::Mul, true)?;
            (one == 1.0 && zero == 0.0 && zero.is_sign_positive()).then_some((x, alpha, beta))
        };
        let hard: Vec<Option<(u32, f32, f32)>> = (0..n).map(hard_sigmoid).collect();
        for (i, x) in fused.into_iter().enumerate() {
            if let Some(x) = x {
                self.insts[i] = Inst::Unary(UnOp::GeluErf, x);
            }
        }
        for (i, h) in hard.into_iter().enumerate() {
            if let Some((x, alpha, beta)) = h {
                self.insts[i] = Inst::HardSigmoid(x, alpha, beta);
            }
        }
        // Dead instructions: not reachable from a store.
        let mut live = vec![false; n];
        for s in &self.stores {
            live[s.value as usize] = true;
        }
        for i in (0..n).rev() {
            if !live[i] {
                continue;
            }
            match self.insts[i] {
                Inst::Const(_) | Inst::Load { .. } => {}
                Inst::Unary(_, a) => live[a as usize] = true,
                Inst::Binary(_, a, b) => {
                    live[a as usize] = true;
                    live[b as usize] = true;
                }
                Inst::Select(c, a, b) => {
                    live[c as usize] = true;
                    live[a as usize] = true;
                    live[b as usize] = true;
                }
                Inst::HardSigmoid(x, _, _) => live[x as usize] = true,
            }
        }
        let mut new_id = vec![0u32; n];
        let mut kept = Vec::with_capacity(n);
        for (i, inst) in self.insts.drain(..).enumerate() {
            if !live[i] {
                continue;
            }
            let inst = {
                let m = |r: u32| new_id[r as usize];
                match inst {
                    Inst::Unary(u, a) => Inst::Unary(u, m(a)),
                    Inst::Binary(b, x, y) => Inst::Binary(b, m(x), m(y)),
                    Inst::Select(c, a, b) => Inst::Select(m(c), m(a), m(b)),
                    Inst::HardSigmoid(x, a, b) => Inst::HardSigmoid(m(x), a, b),
                    other => other,
                }
            };
            new_id[i] = kept.len() as u32;
            kept.push(inst);
        }
        self.insts = kept;
        for s in &mut self.stores {
            s.value = new_id[s.value as usize];
        }
    }

    /// Checks operand order (each operand an earlier instruction), coefficient counts and
    /// contiguous stores; [`run`] relies on it.
    pub fn check(&self) -> Result<(), Invalid> {
        let bad = |m: String| Err(Invalid(m));
        for (i, inst) in self.insts.iter().enumerate() {
            let ok = |r: u32| (r as usize) < i;
            let operands_ok = match inst {
                Inst::Const(_) => true,
                Inst::Load { at, .. } => {
                    if at.outer.len() != self.outer.len() || !(at.inner == 0 || at.inner == 1) {
                        return bad(format!("load {i}: index does not fit the loops"));
                    }
                    true
                }
                Inst::Unary(_, a) => ok(*a),
                Inst::Binary(_, a, b) => ok(*a) && ok(*b),
                Inst::Select(c, a, b) => ok(*c) && ok(*a) && ok(*b),
                Inst::HardSigmoid(x, _, _) => ok(*x),
            };
            if !operands_ok {
                return bad(format!("instruction {i} reads a later register"));
            }
        }
        if self.outer.len() > MAX_OUTER {
            return bad(format!(
                "{} outer loops, at most {MAX_OUTER}",
                self.outer.len()
            ));
        }
        for s in &self.stores {
            if s.value as usize >= self.insts.len()
                || s.at.inner != 1
                || s.at.outer.len() != self.outer.len()
            {
                return bad(format!(
                    "store to p{} is not contiguous or reads no register",
                    s.param
                ));
            }
        }
        Ok(())
    }
}

thread_local! {
    /// Registers: one block per instruction.
    static REGS: RefCell<Vec<[f32; BLOCK]>> = const { RefCell::new(Vec::new()) };
}

/// Runs outer points `lo..hi` over inner columns `c0..c1` of `prog`.
///
/// # Safety
/// `prog` passed [`Program::check`]; `ptrs` holds one pointer per parameter the program
/// names, each valid (f32) at every index the program computes for these points and
/// columns; stores do not overlap loads of other positions.
pub unsafe fn run(
    isa: crate::Isa,
    prog: &Program,
    ptrs: *const *mut u8,
    lo: usize,
    hi: usize,
    c0: usize,
    c1: usize,
) {
    if lo >= hi || c0 >= c1 {
        return;
    }
    REGS.with(|regs| {
        let mut regs = regs.borrow_mut();
        // Every register is written before it is read (loads, operations; constants just
        // below), so registers are only added, never cleared: a call on a few elements
        // (an epilogue per band of a convolution) costs no more than its elements.
        let n = prog.insts.len();
        if regs.len() < n {
            regs.resize(n, [0.0; BLOCK]);
        }
        let regs = &mut regs[..n];
        // As far as one block of this range's columns reaches (whole vectors).
        let lanes = BLOCK.min((c1 - c0).next_multiple_of(8));
        for (r, inst) in regs.iter_mut().zip(&prog.insts) {
            if let Inst::Const(v) = inst {
                r[..lanes].fill(*v);
            }
        }
        match isa.or_portable() {
            // SAFETY: AVX2 and FMA were detected; the rest is the caller's contract.
            #[cfg(target_arch = "x86_64")]
            crate::Isa::Avx2Fma | crate::Isa::Avx512 => unsafe {
                avx2::points(prog, ptrs, lo, hi, c0, c1, regs)
            },
            // SAFETY: the caller's contract.
            _ => unsafe { points::<Portable>(prog, ptrs, lo, hi, c0, c1, regs) },
        }
    });
}

/// The element offset of `at` at outer coordinates `o`.
fn base(at: &Affine, o: &[usize]) -> isize {
    at.outer
        .iter()
        .zip(o)
        .fold(at.offset, |s, (&c, &x)| s + c * x as i64) as isize
}

/// The outer coordinates of point `u`.
fn coords(outer: &[usize], mut u: usize, o: &mut [usize]) {
    for (x, &d) in o.iter_mut().zip(outer).rev() {
        let d = d.max(1);
        *x = u % d;
        u /= d;
    }
}

/// The lane operations the programs need: 8 f32 lanes, as AVX2 registers or arrays.
trait Lanes: Copy {
    /// # Safety
    /// `p` addresses 8 floats.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `p` addresses 8 writable floats.
    unsafe fn store(self, p: *mut f32);
    fn splat(v: f32) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    /// `self·a + b`.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// Lane masks (all ones where true).
    fn lt(self, o: Self) -> Self;
    fn le(self, o: Self) -> Self;
    fn eq(self, o: Self) -> Self;
    /// Mask of lanes where either operand is NaN.
    fn unordered(self, o: Self) -> Self;
    /// `mask ? a : b`, per lane.
    fn blend(mask: Self, a: Self, b: Self) -> Self;
    /// `min`/`max` of two non-NaN lanes (any result for NaN lanes; callers fix those).
    fn min_raw(self, o: Self) -> Self;
    fn max_raw(self, o: Self) -> Self;
    fn sqrt(self) -> Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
    fn round_even(self) -> Self;
    fn and(self, o: Self) -> Self;
    fn or(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    /// Integer lane operations on the bits.
    fn to_int_round(self) -> Self;
    /// `2^(n−1)` for lanes holding the integer `n` (as bits), `n` in `[−125, 128]`.
    fn int_pow2_half(self) -> Self;
    fn int_exponent(self) -> Self;
    fn int_to_float(self) -> Self;
    fn bits(v: u32) -> Self;
}

#[derive(Clone, Copy)]
struct Portable([f32; 8]);

impl Portable {
    fn map(self, f: impl Fn(f32) -> f32) -> Portable {
        Portable(self.0.map(f))
    }

    fn zip(self, o: Portable, f: impl Fn(f32, f32) -> f32) -> Portable {
        let mut r = [0f32; 8];
        for (i, x) in r.iter_mut().enumerate() {
            *x = f(self.0[i], o.0[i]);
        }
        Portable(r)
    }

    fn bitwise(self, o: Portable, f: impl Fn(u32, u32) -> u32) -> Portable {
        self.zip(o, |a, b| f32::from_bits(f(a.to_bits(), b.to_bits())))
    }
}

fn mask(b: bool) -> f32 {
    f32::from_bits(if b { u32::MAX } else { 0 })
}

impl Lanes for Portable {
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller's contract.
        Portable(unsafe { std::ptr::read_unaligned(p as *const [f32; 8]) })
    }
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::write_unaligned(p as *mut [f32; 8], self.0) }
    }
    fn splat(v: f32) -> Self {
        Portable([v; 8])
    }
    fn add(self, o: Self) -> Self {
        self.zip(o, |a, b| a + b)
    }
    fn sub(self, o: Self) -> Self {
        self.zip(o, |a, b| a - b)
    }
    fn mul(self, o: Self) -> Self {
        self.zip(o, |a, b| a * b)
    }
    fn div(self, o: Self) -> Self {
        self.zip(o, |a, b| a / b)
    }
    fn mul_add(self, a: Self, b: Self) -> Self {
        self.mul(a).add(b)
    }
    fn lt(self, o: Self) -> Self {
        self.zip(o, |a, b| mask(a < b))
    }
    fn le(self, o: Self) -> Self {
        self.zip(o, |a, b| mask(a <= b))
    }
    fn eq(self, o: Self) -> Self {
        self.zip(o, |a, b| mask(a == b))
    }
    fn unordered(self, o: Self) -> Self {
        self.zip(o, |a, b| mask(a.is_nan() || b.is_nan()))
    }
    fn blend(m: Self, a: Self, b: Self) -> Self {
        let mut r = [0f32; 8];
        for (i, x) in r.iter_mut().enumerate() {
            *x = if m.0[i].to_bits() >> 31 == 1 {
                a.0[i]
            } else {
                b.0[i]
            };
        }
        Portable(r)
    }
    fn min_raw(self, o: Self) -> Self {
        self.zip(o, |a, b| if a < b { a } else { b })
    }
    fn max_raw(self, o: Self) -> Self {
        self.zip(o, |a, b| if a > b { a } else { b })
    }
    fn sqrt(self) -> Self {
        self.map(f32::sqrt)
    }
    fn floor(self) -> Self {
        self.map(f32::floor)
    }
    fn ceil(self) -> Self {
        self.map(f32::ceil)
    }
    fn round_even(self) -> Self {
        self.map(f32::round_ties_even)
    }
    fn and(self, o: Self) -> Self {
        self.bitwise(o, |a, b| a & b)
    }
    fn or(self, o: Self) -> Self {
        self.bitwise(o, |a, b| a | b)
    }
    fn xor(self, o: Self) -> Self {
        self.bitwise(o, |a, b| a ^ b)
    }
    fn to_int_round(self) -> Self {
        self.map(|x| f32::from_bits(x.round_ties_even() as i32 as u32))
    }
    fn int_pow2_half(self) -> Self {
        self.map(|x| f32::from_bits(((x.to_bits() as i32).wrapping_add(126) as u32) << 23))
    }
    fn int_exponent(self) -> Self {
        self.map(|x| f32::from_bits(((x.to_bits() >> 23) as i32 - 126) as u32))
    }
    fn int_to_float(self) -> Self {
        self.map(|x| x.to_bits() as i32 as f32)
    }
    fn bits(v: u32) -> Self {
        Portable([f32::from_bits(v); 8])
    }
}

/// `exp(x)` after Cephes' `expf`: `x = n·ln2 + r`, degree-5 polynomial, scaled by `2ⁿ`;
/// clamped to the f32 range (so +∞ for large, 0 for small inputs), NaN kept.
#[inline(always)]
fn exp<V: Lanes>(x: V) -> V {
    let hi = V::splat(88.722_84);
    let lo = V::splat(-87.336_55);
    let nan = x.unordered(x);
    let big = hi.lt(x);
    let small = x.lt(lo);
    let xc = x.max_raw(lo).min_raw(hi);
    let n = xc.mul(V::splat(std::f32::consts::LOG2_E)).round_even();
    let r = n.mul_add(V::splat(-0.693_359_4), xc);
    let r = n.mul_add(V::splat(2.121_944_4e-4), r);
    let z = r.mul(r);
    let p = V::splat(1.987_569_1e-4)
        .mul_add(r, V::splat(1.398_199_9e-3))
        .mul_add(r, V::splat(8.333_452e-3))
        .mul_add(r, V::splat(4.166_579_6e-2))
        .mul_add(r, V::splat(1.666_666_5e-1))
        .mul_add(r, V::splat(5e-1));
    let y = p.mul_add(z, r).add(V::splat(1.0));
    // 2^(n−1)·2: two steps, so that n = 128 (x near the top of the range) stays finite.
    let scale = n.to_int_round().int_pow2_half();
    let y = y.mul(scale).mul(V::splat(2.0));
    let y = V::blend(big, V::splat(f32::INFINITY), y);
    let y = V::blend(small, V::splat(0.0), y);
    V::blend(nan, x, y)
}

/// `ln(x)` after Cephes' `logf`: NaN for negative inputs and NaN, −∞ at 0, +∞ at +∞.
#[inline(always)]
fn log<V: Lanes>(x: V) -> V {
    let zero = V::splat(0.0);
    let one = V::splat(1.0);
    // Mantissa in [0.5, 1) and exponent; subnormals scaled up by 2²³ first.
    let small = x.lt(V::splat(1.175_494_4e-38));
    let xs = V::blend(small, x.mul(V::splat(8_388_608.0)), x);
    let mant = xs.and(V::bits(0x007f_ffff)).or(V::bits(0x3f00_0000));
    let e = xs.int_exponent().int_to_float();
    let e = V::blend(small, e.sub(V::splat(23.0)), e);
    let lt = mant.lt(V::splat(std::f32::consts::FRAC_1_SQRT_2));
    let e = V::blend(lt, e.sub(one), e);
    let m = V::blend(lt, mant.add(mant), mant).sub(one);
    let z = m.mul(m);
    let y = V::splat(7.037_683_6e-2)
        .mul_add(m, V::splat(-1.151_461e-1))
        .mul_add(m, V::splat(1.167_699_9e-1))
        .mul_add(m, V::splat(-1.242_014_1e-1))
        .mul_add(m, V::splat(1.424_932_3e-1))
        .mul_add(m, V::splat(-1.666_805_8e-1))
        .mul_add(m, V::splat(2.000_071_5e-1))
        .mul_add(m, V::splat(-2.499_999_4e-1))
        .mul_add(m, V::splat(3.333_333e-1));
    let y = y.mul(m).mul(z);
    let y = e.mul_add(V::splat(-2.121_944_4e-4), y);
    let y = z.mul_add(V::splat(-0.5), y);
    let r = m.add(y);
    let r = e.mul_add(V::splat(0.693_359_4), r);
    let r = V::blend(x.eq(zero), V::splat(f32::NEG_INFINITY), r);
    let neg = x.lt(zero).or(x.unordered(x));
    let r = V::blend(neg, V::splat(f32::NAN), r);
    V::blend(x.eq(V::splat(f32::INFINITY)), x, r)
}

/// `x·P(x²) / Q(x²)` for `x` clamped to `±bound`, the coefficients highest degree first,
/// each polynomial by Horner's rule with fused multiply-adds (the shared body of the
/// rational [`tanh`], [`sigmoid`] and [`erf`]).
#[inline(always)]
fn odd_rational<V: Lanes>(x: V, bound: f32, p: &[f32], q: &[f32]) -> V {
    let xc = x.max_raw(V::splat(-bound)).min_raw(V::splat(bound));
    let s = xc.mul(xc);
    let horner = |c: &[f32]| {
        c[1..]
            .iter()
            .fold(V::splat(c[0]), |a, &k| a.mul_add(s, V::splat(k)))
    };
    horner(p).mul(xc).div(horner(q))
}

/// `tanh(x)` as a rational function: `x·P(x²) / Q(x²)` on `|x| ≤ 9` (both of degree 5 in
/// `x²`, fitted for this kernel by linearized least squares; 1e−10 in f64), where tanh is
/// within 3e−8 of ±1. In f32: within 4 ulp, or 1e−7 absolute, everywhere (3.6e−7 at
/// most), never past ±1; no exp, one division. NaN stays NaN; tanh(−0) = −0.
#[inline(always)]
fn tanh<V: Lanes>(x: V) -> V {
    const P: [f32; 6] = [
        3.547_212_5e-11,
        1.090_404_7e-7,
        4.189_041_6e-5,
        4.410_856e-3,
        1.408_783_5e-1,
        1.0,
    ];
    const Q: [f32; 6] = [
        2.873_684_2e-9,
        2.568_697_7e-6,
        4.979_471_6e-4,
        2.914_808_3e-2,
        4.742_116_6e-1,
        1.0,
    ];
    let y = odd_rational(x, 9.0, &P, &Q);
    V::blend(
        x.unordered(x),
        x,
        y.max_raw(V::splat(-1.0)).min_raw(V::splat(1.0)),
    )
}

/// The logistic function as a rational function: `σ(x) − 1/2 = x·P(x²) / Q(x²)` on
/// `|x| ≤ 18` (P of degree 4, Q of degree 5 in `x²`, fitted for this kernel by
/// linearized least squares; 2.4e−9 in f64), where σ is within 1.5e−8 of 0 or 1. In f32:
/// within 2.5e−7 absolute everywhere, 1.6 ulp above 1/2; about half the work of
/// `1 / (1 + exp(−x))` (no range reduction, one division). NaN stays NaN.
#[inline(always)]
fn sigmoid<V: Lanes>(x: V) -> V {
    const P: [f32; 5] = [
        5.134_616_7e-11,
        1.254_207e-7,
        6.300_61e-5,
        8.627_567e-3,
        0.25,
    ];
    const Q: [f32; 6] = [
        7.557_724_5e-13,
        6.475_15e-9,
        6.641_512e-6,
        1.738_991_8e-3,
        0.117_843_61,
        1.0,
    ];
    let y = odd_rational(x, 18.0, &P, &Q);
    V::blend(x.unordered(x), x, y.add(V::splat(0.5)))
}

/// erf as a rational function: `erf(x) = x·P(x²) / Q(x²)` on `|x| ≤ 4` (P of degree 6,
/// Q of degree 5 in `x²`, fitted for this kernel by linearized least squares; 3.7e−9 in
/// f64), where erf is within 1.6e−8 of ±1. In f32: within 4 ulp, or 1e−7 absolute, of the
/// exact value everywhere (3.8e−7 absolute at most), never past ±1; no exp, one division.
/// NaN stays NaN; erf(−0) = −0.
#[inline(always)]
fn erf<V: Lanes>(x: V) -> V {
    const P: [f32; 7] = [
        -1.451_727_1e-8,
        4.954_011_3e-6,
        3.885_288_6e-4,
        3.830_247_8e-3,
        5.438_954_4e-2,
        1.840_241_1e-1,
        std::f32::consts::FRAC_2_SQRT_PI,
    ];
    const Q: [f32; 6] = [
        6.564_543e-5,
        1.315_455_8e-3,
        1.545_619_1e-2,
        1.136_734_8e-1,
        4.964_208_6e-1,
        1.0,
    ];
    // Never past ±1, so 1 + erf (GELU) keeps its sign.
    let y = odd_rational(x, 4.0, &P, &Q)
        .max_raw(V::splat(-1.0))
        .min_raw(V::splat(1.0));
    V::blend(x.unordered(x), x, y)
}

#[inline(always)]
fn unary<V: Lanes>(op: UnOp, x: V) -> V {
    match op {
        UnOp::Neg => x.xor(V::bits(0x8000_0000)),
        UnOp::Abs => x.and(V::bits(0x7fff_ffff)),
        UnOp::Relu => V::blend(x.lt(V::splat(0.0)), V::splat(0.0), x),
        UnOp::Exp => exp(x),
        UnOp::Log => log(x),
        UnOp::Sqrt => x.sqrt(),
        UnOp::Reciprocal => V::splat(1.0).div(x),
        UnOp::Erf => erf(x),
        UnOp::Tanh => tanh(x),
        UnOp::Sigmoid => sigmoid(x),
        UnOp::Floor => x.floor(),
        UnOp::Ceil => x.ceil(),
        UnOp::Round => x.round_even(),
        UnOp::GeluErf => {
            let e = erf(x.mul(V::splat(FRAC_1_SQRT_2)));
            V::splat(0.5).mul(x).mul(V::splat(1.0).add(e))
        }
    }
}

#[inline(always)]
fn binary<V: Lanes>(op: BinOp, a: V, b: V) -> V {
    match op {
        BinOp::Add => a.add(b),
        BinOp::Sub => a.sub(b),
        BinOp::Mul => a.mul(b),
        BinOp::Div => a.div(b),
        BinOp::Max => V::blend(a.unordered(b), a.add(b), a.max_raw(b)),
        BinOp::Min => V::blend(a.unordered(b), a.add(b), a.min_raw(b)),
        BinOp::Less => a.lt(b),
        BinOp::LessOrEqual => a.le(b),
        BinOp::Greater => b.lt(a),
        BinOp::GreaterOrEqual => b.le(a),
        BinOp::Equal => a.eq(b),
    }
}

/// Copies `n` floats from `src` to `dst`, 8 at a time where it can.
///
/// # Safety
/// Both address `n` floats.
#[inline(always)]
unsafe fn copy<V: Lanes>(src: *const f32, dst: *mut f32, n: usize) {
    let mut k = 0;
    // SAFETY: k + 8 ≤ n in the vector loop, k < n in the tail.
    unsafe {
        while k + 8 <= n {
            V::load(src.add(k)).store(dst.add(k));
            k += 8;
        }
        while k < n {
            *dst.add(k) = *src.add(k);
            k += 1;
        }
    }
}

/// The executor, generic over the lane type. Per outer point each instruction gets the
/// address of its block: a contiguous load in a full block reads the parameter in place,
/// a partial block copies into the (padded) register first, a broadcast load fills its
/// register once per point; computed values land in their registers.
///
/// # Safety
/// As [`run`]; `regs` has one block per instruction, constants filled.
#[inline(always)]
unsafe fn points<V: Lanes>(
    prog: &Program,
    ptrs: *const *mut u8,
    lo: usize,
    hi: usize,
    c0: usize,
    c1: usize,
    regs: &mut [[f32; BLOCK]],
) {
    let mut o = [0usize; MAX_OUTER];
    let o = &mut o[..prog.outer.len()];
    let n = prog.insts.len();
    let param = |p: usize| -> *mut f32 {
        // SAFETY: one pointer per parameter (caller's contract).
        unsafe { *ptrs.add(p) as *mut f32 }
    };
    // Per instruction: the load's row base at this point, and the current block's source.
    let mut bases: Vec<*const f32> = vec![std::ptr::null(); n];
    let mut srcs: Vec<*const f32> = regs.iter().map(|r| r.as_ptr()).collect();
    let regp: Vec<*mut f32> = regs.iter_mut().map(|r| r.as_mut_ptr()).collect();
    let store_bases: Vec<*mut f32> = vec![std::ptr::null_mut(); prog.stores.len()];
    let mut store_bases = store_bases;
    // A load a store writes out directly lives in its register, never in place: another
    // store of the same block may overwrite the memory it would point into.
    let stored: Vec<bool> = (0..n)
        .map(|i| prog.stores.iter().any(|s| s.value as usize == i))
        .collect();
    for u in lo..hi {
        coords(&prog.outer, u, o);
        for (i, inst) in prog.insts.iter().enumerate() {
            if let Inst::Load { param: p, at } = inst {
                // SAFETY: the program's indices are valid (caller's contract).
                let b = unsafe { param(*p).offset(base(at, o)) };
                bases[i] = b;
                if at.inner == 0 {
                    // SAFETY: a register holds BLOCK floats.
                    // Only as far as this range's columns reach (whole vectors).
                    let n = BLOCK.min((c1 - c0).next_multiple_of(8));
                    unsafe { std::slice::from_raw_parts_mut(regp[i], n).fill(*b) };
                }
            }
        }
        for (k, s) in prog.stores.iter().enumerate() {
            // SAFETY: as above.
            store_bases[k] = unsafe { param(s.param).offset(base(&s.at, o)) };
        }
        let mut j0 = c0;
        while j0 < c1 {
            let len = BLOCK.min(c1 - j0);
            let full = len == BLOCK;
            let vecs = len.div_ceil(8);
            for (i, inst) in prog.insts.iter().enumerate() {
                let d = regp[i];
                // SAFETY (all arms): registers hold BLOCK floats; sources are full blocks
                // of a parameter or registers; k·8 + 8 ≤ BLOCK.
                unsafe {
                    match inst {
                        Inst::Const(_) => {}
                        Inst::Load { at, .. } => {
                            if at.inner == 1 {
                                let b = bases[i].add(j0);
                                if full && !stored[i] {
                                    srcs[i] = b;
                                } else {
                                    copy::<V>(b, d, len);
                                    srcs[i] = d;
                                }
                            }
                        }
                        Inst::Unary(op, a) => {
                            let a = srcs[*a as usize];
                            // Four vectors at a time: their polynomial chains interleave.
                            let mut k = 0;
                            while k + 4 <= vecs {
                                // No closures here: they would lose the target features.
                                let x0 = V::load(a.add(8 * k));
                                let x1 = V::load(a.add(8 * k + 8));
                                let x2 = V::load(a.add(8 * k + 16));
                                let x3 = V::load(a.add(8 * k + 24));
                                let (y0, y1) = (unary(*op, x0), unary(*op, x1));
                                let (y2, y3) = (unary(*op, x2), unary(*op, x3));
                                y0.store(d.add(8 * k));
                                y1.store(d.add(8 * k + 8));
                                y2.store(d.add(8 * k + 16));
                                y3.store(d.add(8 * k + 24));
                                k += 4;
                            }
                            while k < vecs {
                                unary(*op, V::load(a.add(8 * k))).store(d.add(8 * k));
                                k += 1;
                            }
                        }
                        Inst::Binary(op, a, b) => {
                            let (a, b) = (srcs[*a as usize], srcs[*b as usize]);
                            for k in 0..vecs {
                                let x = V::load(a.add(8 * k));
                                let y = V::load(b.add(8 * k));
                                binary(*op, x, y).store(d.add(8 * k));
                            }
                        }
                        Inst::Select(c, a, b) => {
                            let (c, a, b) =
                                (srcs[*c as usize], srcs[*a as usize], srcs[*b as usize]);
                            for k in 0..vecs {
                                let m = V::load(c.add(8 * k));
                                let x = V::load(a.add(8 * k));
                                let y = V::load(b.add(8 * k));
                                V::blend(m, x, y).store(d.add(8 * k));
                            }
                        }
                        Inst::HardSigmoid(x, alpha, beta) => {
                            let x = srcs[*x as usize];
                            let (alpha, beta) = (V::splat(*alpha), V::splat(*beta));
                            let (zero, one) = (V::splat(0.0), V::splat(1.0));
                            for k in 0..vecs {
                                let v = binary(BinOp::Mul, V::load(x.add(8 * k)), alpha);
                                let v = binary(BinOp::Add, v, beta);
                                let v = binary(BinOp::Max, v, zero);
                                binary(BinOp::Min, v, one).store(d.add(8 * k));
                            }
                        }
                    }
                }
            }
            for (k, s) in prog.stores.iter().enumerate() {
                // SAFETY: a contiguous run of `len` elements of the parameter.
                unsafe { copy::<V>(srcs[s.value as usize], store_bases[k].add(j0), len) };
            }
            j0 += len;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK, Lanes, Program};

    impl Lanes for __m256 {
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: the caller's contract.
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: the caller's contract.
            unsafe { _mm256_storeu_ps(p, self) }
        }
        // SAFETY (every method below): the lane type is only used inside `points`, which
        // runs under AVX2 and FMA (`run_avx2`'s target features, detected at run time).
        #[inline(always)]
        fn splat(v: f32) -> Self {
            unsafe { _mm256_set1_ps(v) }
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            unsafe { _mm256_add_ps(self, o) }
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            unsafe { _mm256_sub_ps(self, o) }
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            unsafe { _mm256_mul_ps(self, o) }
        }
        #[inline(always)]
        fn div(self, o: Self) -> Self {
            unsafe { _mm256_div_ps(self, o) }
        }
        #[inline(always)]
        fn mul_add(self, a: Self, b: Self) -> Self {
            unsafe { _mm256_fmadd_ps(self, a, b) }
        }
        #[inline(always)]
        fn lt(self, o: Self) -> Self {
            unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(self, o) }
        }
        #[inline(always)]
        fn le(self, o: Self) -> Self {
            unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(self, o) }
        }
        #[inline(always)]
        fn eq(self, o: Self) -> Self {
            unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(self, o) }
        }
        #[inline(always)]
        fn unordered(self, o: Self) -> Self {
            unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(self, o) }
        }
        #[inline(always)]
        fn blend(m: Self, a: Self, b: Self) -> Self {
            unsafe { _mm256_blendv_ps(b, a, m) }
        }
        #[inline(always)]
        fn min_raw(self, o: Self) -> Self {
            unsafe { _mm256_min_ps(self, o) }
        }
        #[inline(always)]
        fn max_raw(self, o: Self) -> Self {
            unsafe { _mm256_max_ps(self, o) }
        }
        #[inline(always)]
        fn sqrt(self) -> Self {
            unsafe { _mm256_sqrt_ps(self) }
        }
        #[inline(always)]
        fn floor(self) -> Self {
            unsafe { _mm256_floor_ps(self) }
        }
        #[inline(always)]
        fn ceil(self) -> Self {
            unsafe { _mm256_ceil_ps(self) }
        }
        #[inline(always)]
        fn round_even(self) -> Self {
            unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self) }
        }
        #[inline(always)]
        fn and(self, o: Self) -> Self {
            unsafe { _mm256_and_ps(self, o) }
        }
        #[inline(always)]
        fn or(self, o: Self) -> Self {
            unsafe { _mm256_or_ps(self, o) }
        }
        #[inline(always)]
        fn xor(self, o: Self) -> Self {
            unsafe { _mm256_xor_ps(self, o) }
        }
        #[inline(always)]
        fn to_int_round(self) -> Self {
            unsafe { _mm256_castsi256_ps(_mm256_cvtps_epi32(self)) }
        }
        #[inline(always)]
        fn int_pow2_half(self) -> Self {
            unsafe {
                let i = _mm256_add_epi32(_mm256_castps_si256(self), _mm256_set1_epi32(126));
                _mm256_castsi256_ps(_mm256_slli_epi32::<23>(i))
            }
        }
        #[inline(always)]
        fn int_exponent(self) -> Self {
            unsafe {
                let i = _mm256_srli_epi32::<23>(_mm256_castps_si256(self));
                _mm256_castsi256_ps(_mm256_sub_epi32(i, _mm256_set1_epi32(126)))
            }
        }
        #[inline(always)]
        fn int_to_float(self) -> Self {
            unsafe { _mm256_cvtepi32_ps(_mm256_castps_si256(self)) }
        }
        #[inline(always)]
        fn bits(v: u32) -> Self {
            unsafe { _mm256_castsi256_ps(_mm256_set1_epi32(v as i32)) }
        }
    }

    /// [`super::points`] with 8-lane AVX2 registers.
    ///
    /// # Safety
    /// AVX2 and FMA are available; the rest as [`super::run`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn points(
        prog: &Program,
        ptrs: *const *mut u8,
        lo: usize,
        hi: usize,
        c0: usize,
        c1: usize,
        regs: &mut [[f32; BLOCK]],
    ) {
        // SAFETY: forwarded.
        unsafe { super::points::<__m256>(prog, ptrs, lo, hi, c0, c1, regs) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Isa;

    fn f64_of(op: UnOp, x: f64) -> f64 {
        match op {
            UnOp::Neg => -x,
            UnOp::Abs => x.abs(),
            UnOp::Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            UnOp::Exp => x.exp(),
            UnOp::Log => x.ln(),
            UnOp::Sqrt => x.sqrt(),
            UnOp::Reciprocal => 1.0 / x,
            UnOp::Erf => erf64(x),
            UnOp::Tanh => x.tanh(),
            UnOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnOp::Floor => x.floor(),
            UnOp::Ceil => x.ceil(),
            UnOp::Round => x.round_ties_even(),
            UnOp::GeluErf => 0.5 * x * (1.0 + erf64(x * std::f64::consts::FRAC_1_SQRT_2)),
        }
    }

    /// erf in f64 (Abramowitz–Stegun 7.1.26 is too coarse; this is a series / continued
    /// fraction with 1e-15 accuracy).
    fn erf64(x: f64) -> f64 {
        if x.is_nan() {
            return x;
        }
        let a = x.abs();
        let r = if a < 2.5 {
            // Maclaurin series.
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // Continued fraction for erfc.
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = (k as f64 / 2.0) / (a + f);
            }
            1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * (a + f))
        };
        r.copysign(x)
    }

    fn one_op(op: UnOp, xs: &[f32], isa: Isa) -> Vec<f32> {
        let prog = Program {
            outer: vec![1],
            inner: xs.len(),
            insts: vec![
                Inst::Load {
                    param: 0,
                    at: Affine {
                        offset: 0,
                        outer: vec![0],
                        inner: 1,
                    },
                },
                Inst::Unary(op, 0),
            ],
            stores: vec![Store {
                param: 1,
                at: Affine {
                    offset: 0,
                    outer: vec![0],
                    inner: 1,
                },
                value: 1,
            }],
        };
        prog.check().expect("well formed");
        let mut out = vec![0f32; xs.len()];
        let ptrs = [xs.as_ptr() as *mut u8, out.as_mut_ptr() as *mut u8];
        // SAFETY: both buffers hold xs.len() floats.
        unsafe { run(isa, &prog, ptrs.as_ptr(), 0, 1, 0, xs.len()) };
        out
    }

    /// Each function against f64 over a sweep plus special values, on both ISAs.
    #[test]
    fn functions_are_accurate_with_ieee_special_values() {
        let mut xs: Vec<f32> = (0..4001).map(|i| (i as f32 - 2000.0) / 200.0).collect();
        xs.extend([
            0.0,
            -0.0,
            1e-30,
            1e-40,
            -1e-40,
            88.0,
            88.7,
            89.0,
            -87.0,
            -88.0,
            -104.0,
            100.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1e30,
            -1e30,
            0.921875,
            3.9,
            -5.5,
        ]);
        let ops = [
            UnOp::Neg,
            UnOp::Abs,
            UnOp::Relu,
            UnOp::Exp,
            UnOp::Log,
            UnOp::Sqrt,
            UnOp::Reciprocal,
            UnOp::Erf,
            UnOp::Tanh,
            UnOp::Sigmoid,
            UnOp::Floor,
            UnOp::Ceil,
            UnOp::Round,
            UnOp::GeluErf,
        ];
        for isa in Isa::available() {
            for op in ops {
                let got = one_op(op, &xs, isa);
                for (&x, &y) in xs.iter().zip(&got) {
                    let want = f64_of(op, x as f64) as f32;
                    let ok = if want.is_nan() {
                        y.is_nan()
                    } else if want.is_infinite() {
                        y == want
                    } else {
                        let w = want as f64;
                        // 4 ulp relative, or 1e-7 absolute (exp near underflow, erf near 0);
                        // the rational sigmoid is held to 2.5e-7 absolute, and GELU, whose
                        // 1 + erf(x/√2) cancels for negative x, to 1e-6 (erf's few ulp
                        // below 1 times |x|/2, largest near x = −5).
                        let abs = match op {
                            UnOp::Sigmoid => 2.5e-7,
                            UnOp::GeluErf => 1e-6,
                            _ => 1e-7,
                        };
                        (y as f64 - w).abs() <= (4.0 * f32::EPSILON as f64 * w.abs()).max(abs)
                    };
                    assert!(ok, "{op:?} {isa:?} at {x:e}: {y:e} vs {want:e}");
                }
            }
        }
    }

    /// A program with broadcast and contiguous loads, constants, a comparison and a
    /// select: split over outer points and column ranges gives the same bits, and matches
    /// a scalar evaluation.
    #[test]
    fn programs_match_scalar_code_for_any_split() {
        let (rows, cols) = (5usize, 70usize);
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| (i as f32 * 0.37).sin() * 3.0)
            .collect();
        let b: Vec<f32> = (0..cols).map(|j| j as f32 * 0.01 - 0.3).collect();
        let r: Vec<f32> = (0..rows).map(|i| i as f32 * 0.5).collect();
        let row = |stride: i64| Affine {
            offset: 0,
            outer: vec![stride],
            inner: 1,
        };
        // y = select(x + b < r, gelu-ish(x), max(x, r)) with b per column, r per row.
        let prog = Program {
            outer: vec![rows],
            inner: cols,
            insts: vec![
                Inst::Load {
                    param: 0,
                    at: row(cols as i64),
                },
                Inst::Load {
                    param: 1,
                    at: row(0),
                },
                Inst::Load {
                    param: 2,
                    at: Affine {
                        offset: 0,
                        outer: vec![1],
                        inner: 0,
                    },
                },
                Inst::Binary(BinOp::Add, 0, 1),
                Inst::Binary(BinOp::Less, 3, 2),
                Inst::Const(0.707_106_77),
                Inst::Binary(BinOp::Mul, 0, 5),
                Inst::Unary(UnOp::Erf, 6),
                Inst::Binary(BinOp::Mul, 0, 7),
                Inst::Binary(BinOp::Max, 0, 2),
                Inst::Select(4, 8, 9),
            ],
            stores: vec![Store {
                param: 3,
                at: row(cols as i64),
                value: 10,
            }],
        };
        prog.check().expect("well formed");
        let want: Vec<f64> = (0..rows * cols)
            .map(|i| {
                let (ri, ci) = (i / cols, i % cols);
                let xv = x[i] as f64;
                if xv + (b[ci] as f64) < r[ri] as f64 {
                    xv * erf64(xv * 0.707_106_77)
                } else {
                    xv.max(r[ri] as f64)
                }
            })
            .collect();
        for isa in Isa::available() {
            let mut whole = vec![f32::NAN; rows * cols];
            let ptrs = [
                x.as_ptr() as *mut u8,
                b.as_ptr() as *mut u8,
                r.as_ptr() as *mut u8,
                whole.as_mut_ptr() as *mut u8,
            ];
            // SAFETY: buffers as the program reads and writes them.
            unsafe { run(isa, &prog, ptrs.as_ptr(), 0, rows, 0, cols) };
            for (i, (&g, &w)) in whole.iter().zip(&want).enumerate() {
                assert!(
                    (g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{isa:?} at {i}: {g} vs {w}"
                );
            }
            let mut split = vec![f32::NAN; rows * cols];
            let ptrs = [
                x.as_ptr() as *mut u8,
                b.as_ptr() as *mut u8,
                r.as_ptr() as *mut u8,
                split.as_mut_ptr() as *mut u8,
            ];
            for u in 0..rows {
                for (c0, c1) in [(0, 13), (13, 64), (64, cols)] {
                    // SAFETY: as above, one row and column range at a time.
                    unsafe { run(isa, &prog, ptrs.as_ptr(), u, u + 1, c0, c1) };
                }
            }
            assert_eq!(split, whole, "{isa:?}: splitting changes results");
        }
    }

    /// The exact-GELU expansion (as the kernel builder writes it, operands in either
    /// order) becomes one instruction with the same bits; dead instructions go, a
    /// near-miss (another scale) stays.
    #[test]
    fn fuse_forms_gelu_with_the_same_bits_and_drops_dead_code() {
        let (rows, cols) = (3usize, 77usize);
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| (i as f32 * 0.61).sin() * 4.0)
            .collect();
        let at = Affine {
            offset: 0,
            outer: vec![cols as i64],
            inner: 1,
        };
        let gelu = |scale: f32, swap: bool| Program {
            outer: vec![rows],
            inner: cols,
            insts: vec![
                Inst::Load {
                    param: 0,
                    at: at.clone(),
                },
                Inst::Const(0.5),
                Inst::Const(1.0),
                Inst::Const(scale),
                Inst::Binary(BinOp::Mul, 0, 3),
                Inst::Unary(UnOp::Erf, 4),
                if swap {
                    Inst::Binary(BinOp::Add, 5, 2)
                } else {
                    Inst::Binary(BinOp::Add, 2, 5)
                },
                Inst::Const(9.0),
                Inst::Binary(BinOp::Mul, 1, 0),
                if swap {
                    Inst::Binary(BinOp::Mul, 6, 8)
                } else {
                    Inst::Binary(BinOp::Mul, 8, 6)
                },
            ],
            stores: vec![Store {
                param: 1,
                at: at.clone(),
                value: 9,
            }],
        };
        let eval = |p: &Program, isa: Isa| {
            let mut out = vec![f32::NAN; rows * cols];
            let ptrs = [x.as_ptr() as *mut u8, out.as_mut_ptr() as *mut u8];
            // SAFETY: buffers as the program reads and writes them.
            unsafe { run(isa, p, ptrs.as_ptr(), 0, rows, 0, cols) };
            out
        };
        for swap in [false, true] {
            let plain = gelu(FRAC_1_SQRT_2, swap);
            let mut fused = plain.clone();
            fused.fuse();
            fused.check().expect("still well formed");
            assert_eq!(fused.insts.len(), 2, "{:?}", fused.insts);
            assert!(matches!(fused.insts[1], Inst::Unary(UnOp::GeluErf, 0)));
            for isa in Isa::available() {
                assert_eq!(eval(&plain, isa), eval(&fused, isa), "{isa:?} swap {swap}");
            }
        }
        let mut near = gelu(0.7, false);
        near.fuse();
        assert_eq!(
            near.insts.len(),
            9,
            "only the dead constant goes: {:?}",
            near.insts
        );
    }

    /// HardSwish as exporters write it, `x · min(max(x · (1/6) + 1/2, 0), 1)`, with the
    /// constants on either side of the multiply and add: fusing the clamp into one
    /// instruction keeps every bit (NaN, ±∞, −0, the corners at ±3 included), and a clamp
    /// with its bounds on the left (whose signed zeros differ) is left alone.
    #[test]
    fn fuse_forms_hard_sigmoid_with_the_same_bits() {
        let mut x: Vec<f32> = (0..301).map(|i| (i as f32 - 150.0) / 25.0).collect();
        x.extend([
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            -3.0,
            3.0,
            1e-40,
        ]);
        let at = Affine {
            offset: 0,
            outer: vec![x.len() as i64],
            inner: 1,
        };
        let prog = |swap: bool, bounds_left: bool| {
            let bin = |op, a, b| {
                if swap {
                    Inst::Binary(op, b, a)
                } else {
                    Inst::Binary(op, a, b)
                }
            };
            let clamp = |op, a, b| {
                if bounds_left {
                    Inst::Binary(op, b, a)
                } else {
                    Inst::Binary(op, a, b)
                }
            };
            Program {
                outer: vec![1],
                inner: x.len(),
                insts: vec![
                    Inst::Load {
                        param: 0,
                        at: at.clone(),
                    },
                    Inst::Const(1.0 / 6.0),
                    bin(BinOp::Mul, 0, 1),
                    Inst::Const(0.5),
                    bin(BinOp::Add, 2, 3),
                    Inst::Const(0.0),
                    clamp(BinOp::Max, 4, 5),
                    Inst::Const(1.0),
                    clamp(BinOp::Min, 6, 7),
                    Inst::Binary(BinOp::Mul, 0, 8),
                ],
                stores: vec![Store {
                    param: 1,
                    at: at.clone(),
                    value: 9,
                }],
            }
        };
        for isa in Isa::available() {
            for (swap, bounds_left) in [(false, false), (true, false), (false, true)] {
                let plain = prog(swap, bounds_left);
                let mut fused = plain.clone();
                fused.fuse();
                fused.check().expect("well formed");
                let hs = fused
                    .insts
                    .iter()
                    .filter(|i| matches!(i, Inst::HardSigmoid(..)))
                    .count();
                assert_eq!(
                    hs,
                    usize::from(!bounds_left),
                    "swap {swap} left {bounds_left}"
                );
                let run_it = |p: &Program| {
                    let mut out = vec![0f32; x.len()];
                    let ptrs = [x.as_ptr() as *mut u8, out.as_mut_ptr() as *mut u8];
                    // SAFETY: both buffers hold x.len() floats.
                    unsafe { run(isa, p, ptrs.as_ptr(), 0, 1, 0, x.len()) };
                    out
                };
                let (a, b) = (run_it(&plain), run_it(&fused));
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a), bits(&b), "{isa:?} swap {swap}");
                // And it is HardSwish: 0 below −3, x above 3.
                assert_eq!(a[0], 0.0);
                assert_eq!(a[300], 6.0);
            }
        }
    }
}
