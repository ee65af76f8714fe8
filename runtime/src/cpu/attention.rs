//! Fused attention on the CPU: per batch element and block of queries, scores against one
//! block of keys at a time (a GEMM), an online softmax (running max and sum, rescaling the
//! partial output), and the output update (a GEMM). No score matrix larger than one tile
//! exists. The CPU picks its own tile sizes ([`block_rows`]; keys in blocks of up to 512):
//! few large GEMM calls beat many small ones; the kernel's `block_q`/`block_k` are the
//! GPU's tiles.

use tessera_lower::kir::{Attention, Index, MatView, Var};

/// The float types the attention kernel runs in.
pub(crate) trait Real:
    Copy
    + Send
    + Sync
    + 'static
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INF: Self;
    fn from_f64(v: f64) -> Self;
    fn exp(self) -> Self;

    /// Softmax numerators of one row of scores in place, against the running maximum
    /// `m`: returns the new maximum and the row's sum of `exp(x - max)`.
    fn exp_row(row: &mut [Self], m: Self) -> (Self, Self) {
        exp_row_generic(row, m)
    }
}

/// [`Real::exp_row`] in portable code.
#[inline(always)]
fn exp_row_generic<T: Real>(row: &mut [T], m: T) -> (T, T) {
    // Eight independent running maxima (one dependency chain would cost a compare's
    // latency per element). A NaN score makes the row NaN through exp(NaN - max), as in
    // the reference.
    let mut part = [m; 8];
    let mut octs = row.chunks_exact(8);
    for o in &mut octs {
        for (p, &x) in part.iter_mut().zip(o) {
            *p = if x > *p { x } else { *p };
        }
    }
    let mut mx = part.iter().fold(m, |a, &x| if x > a { x } else { a });
    for &x in octs.remainder() {
        mx = if x > mx { x } else { mx };
    }
    // exp and eight partial sums in one pass, in a fixed order (vectorizable and
    // deterministic).
    let mut sums = [T::ZERO; 8];
    let mut octs = row.chunks_exact_mut(8);
    for o in &mut octs {
        for (p, x) in sums.iter_mut().zip(o.iter_mut()) {
            *x = (*x - mx).exp();
            *p = *p + *x;
        }
    }
    let mut sum =
        ((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7]));
    for x in octs.into_remainder() {
        *x = (*x - mx).exp();
        sum = sum + *x;
    }
    (mx, sum)
}

/// The same code compiled for AVX2 + FMA (8 lanes; the crate's baseline target has only
/// SSE2, where the exp loop does not vectorize well).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_row_avx2(row: &mut [f32], m: f32) -> (f32, f32) {
    exp_row_generic(row, m)
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    const NEG_INF: f32 = f32::NEG_INFINITY;
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn exp(self) -> f32 {
        exp_f32(self)
    }

    fn exp_row(row: &mut [f32], m: f32) -> (f32, f32) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: both features were just detected.
            return unsafe { exp_row_avx2(row, m) };
        }
        exp_row_generic(row, m)
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    const NEG_INF: f64 = f64::NEG_INFINITY;
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn exp(self) -> f64 {
        f64::exp(self)
    }
}

/// `e^x` in f32 by Cephes' range reduction and degree-5 polynomial (the same algorithm the
/// JIT inlines; within 1 ulp of the f64 result), written so that loops over slices
/// vectorize.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    // Branch-free clamp (vectorizes); NaN fails both tests and stays NaN.
    let xc = if x < -87.336_55 { -87.336_55 } else { x };
    let xc = if xc > 88.722_84 { 88.722_84 } else { xc };
    // Round to nearest even with the 1.5·2^23 trick (no SSE4.1 `roundps` on the
    // baseline target, and `rintf` is a call).
    const MAGIC: f32 = 12_582_912.0;
    let fx = (xc * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    let r = xc - fx * 0.693_359_4 - fx * -2.121_944_4e-4;
    let mut p = 1.987_569_2e-4_f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^(fx-1) from the bits of fx + 2^23 + 126 (no saturating float-to-int conversion,
    // which would not vectorize).
    let pow2 = f32::from_bits((fx + 8_388_734.0).to_bits() << 23);
    y * pow2 * 2.0
}

/// Batch offsets of a view, one per batch element (row-major over `batch`).
pub(crate) fn batch_offsets(view: &Index, batch: &[usize]) -> Vec<isize> {
    let n: usize = batch.iter().product();
    (0..n)
        .map(|b| {
            let mut rest = b;
            let mut coords = vec![0i64; batch.len()];
            for j in (0..batch.len()).rev() {
                coords[j] = (rest % batch[j].max(1)) as i64;
                rest /= batch[j].max(1);
            }
            view.eval(&|v| match v {
                Var::Outer(j) => coords.get(j as usize).copied().unwrap_or(0),
                Var::Inner(_) => 0,
            }) as isize
        })
        .collect()
}

/// Pointers and offsets of one attention kernel.
pub(crate) struct Operands<T> {
    pub q: *const T,
    pub k: *const T,
    pub v: *const T,
    pub mask: Option<*const T>,
    pub out: *mut T,
    pub offs: [Vec<isize>; 4],
}

// SAFETY: the pointers are only read (inputs) or written at disjoint positions (output)
// by tasks the caller waits for.
unsafe impl<T> Send for Operands<T> {}
unsafe impl<T> Sync for Operands<T> {}

/// Query rows per CPU tile: the whole sequence when its score tile has at most 64K
/// elements, else as many rows as fit (at least 32).
pub(crate) fn block_rows(a: &Attention) -> usize {
    let t = a.t.clamp(1, 512);
    (65_536 / t).max(32).min(a.s.max(1))
}

/// Runs query block `qb` of batch element `b`.
///
/// # Safety
/// The pointers must be valid for the views of `a` over every batch element.
pub(crate) unsafe fn block<T: Real>(a: &Attention, ops: &Operands<T>, b: usize, qb: usize) {
    let rows = block_rows(a);
    let i0 = qb * rows;
    let i1 = (i0 + rows).min(a.s);
    if i0 >= i1 {
        return;
    }
    let bq = i1 - i0;
    let e = a.e;
    let bk = a.t.clamp(1, 512);
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        let n = bq * bk + bq * e + 2 * bq;
        let words = (n * std::mem::size_of::<T>()).div_ceil(8);
        if buf.len() < words {
            buf.resize(words, 0);
        }
        // SAFETY: the buffer holds at least `n` elements of T (u64 storage is aligned for
        // f32 and f64) and is only used by this call on this thread.
        let all = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut T, n) };
        let (s, rest) = all.split_at_mut(bq * bk);
        let (acc, rest) = rest.split_at_mut(bq * e);
        let (m, l) = rest.split_at_mut(bq);
        acc.fill(T::ZERO);
        m.fill(T::NEG_INF);
        l.fill(T::ZERO);
        // SAFETY: forwarded contract.
        unsafe { block_in(a, ops, b, i0, bq, bk, s, acc, m, l) }
    })
}

thread_local! {
    /// Per-thread scratch for attention tiles (large enough tiles would otherwise be mapped
    /// and unmapped on every call).
    static SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The body of [`block`] on scratch slices.
///
/// # Safety
/// As for [`block`].
#[allow(clippy::too_many_arguments)]
unsafe fn block_in<T: Real>(
    a: &Attention,
    ops: &Operands<T>,
    b: usize,
    i0: usize,
    bq: usize,
    bk: usize,
    s: &mut [T],
    acc: &mut [T],
    m: &mut [T],
    l: &mut [T],
) {
    let (t, d, e) = (a.t, a.d, a.e);
    let scale = T::from_f64(a.scale);
    let view = |v: &MatView, base: *const T, off: isize, r: usize, c: usize| -> *const T {
        base.wrapping_offset(
            off + r as isize * v.row_stride as isize + c as isize * v.col_stride as isize,
        )
    };
    let qp = view(&a.q, ops.q, ops.offs[0][b], i0, 0);
    let mut j0 = 0;
    while j0 < t {
        let j1 = (j0 + bk).min(t);
        let nk = j1 - j0;
        let kp = view(&a.k, ops.k, ops.offs[1][b], j0, 0);
        // SAFETY: the views address valid elements (caller's contract); `s` holds bq×nk.
        unsafe {
            gemm::gemm(
                bq,
                nk,
                d,
                s.as_mut_ptr(),
                1,
                nk as isize,
                false,
                qp,
                a.q.col_stride as isize,
                a.q.row_stride as isize,
                kp,
                a.k.row_stride as isize,
                a.k.col_stride as isize,
                T::ZERO,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for r in 0..bq {
            let row = &mut s[r * nk..(r + 1) * nk];
            if let (Some(mp), Some(mv)) = (ops.mask, a.mask.as_ref()) {
                for (c, x) in row.iter_mut().enumerate() {
                    // SAFETY: the mask view is valid for every (query, key) of the batch.
                    *x = *x + unsafe { *view(mv, mp, ops.offs[3][b], i0 + r, j0 + c) };
                }
            }
            let (mx, sum) = T::exp_row(row, m[r]);
            let corr = (m[r] - mx).exp();
            l[r] = l[r] * corr + sum;
            for y in &mut acc[r * e..(r + 1) * e] {
                *y = *y * corr;
            }
            m[r] = mx;
        }
        let vp = view(&a.v, ops.v, ops.offs[2][b], j0, 0);
        // SAFETY: as above; `acc` holds bq×e.
        unsafe {
            gemm::gemm(
                bq,
                e,
                nk,
                acc.as_mut_ptr(),
                1,
                e as isize,
                true,
                s.as_ptr(),
                1,
                nk as isize,
                vp,
                a.v.col_stride as isize,
                a.v.row_stride as isize,
                T::ONE,
                T::ONE,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        j0 = j1;
    }
    for r in 0..bq {
        for c in 0..e {
            let y = acc[r * e + c] / l[r];
            // SAFETY: the output is contiguous [batch, s, e].
            unsafe { *ops.out.add((b * a.s + i0 + r) * e + c) = y };
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0.0f64;
        let mut x = -86.0f32;
        while x < 88.7 {
            let want = (x as f64).exp();
            let got = super::exp_f32(x) as f64;
            let ulp = f32::EPSILON as f64 * want.abs().max(f32::MIN_POSITIVE as f64);
            worst = worst.max((got - want).abs() / ulp);
            x += 0.013;
        }
        assert!(worst <= 2.0, "{worst} ulp");
        assert!(super::exp_f32(f32::NAN).is_nan());
        assert_eq!(super::exp_f32(f32::NEG_INFINITY), 0.0);
    }
}
