//! Fused attention on the CPU: per batch element and block of queries, scores against one
//! block of keys at a time (a GEMM), an online softmax (running max and sum, rescaling the
//! partial output), and the output update (a GEMM). No score matrix larger than one
//! `block_q × block_k` tile exists.

use tessera_codegen::kir::{Attention, Index, MatView, Var};

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
    p = p * r + 5.000_000_1e-1;
    let y = p * r * r + r + 1.0;
    let n = fx as i32;
    let pow2 = f32::from_bits(((n + 126) as u32) << 23);
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

/// Runs query block `qb` of batch element `b`.
///
/// # Safety
/// The pointers must be valid for the views of `a` over every batch element.
pub(crate) unsafe fn block<T: Real>(a: &Attention, ops: &Operands<T>, b: usize, qb: usize) {
    let i0 = qb * a.block_q;
    let i1 = (i0 + a.block_q).min(a.s);
    if i0 >= i1 {
        return;
    }
    let bq = i1 - i0;
    let (t, d, e) = (a.t, a.d, a.e);
    // The CPU takes keys in blocks of up to 512: one or two blocks for the sequence
    // lengths of the bundled models (the kernel's block_k is the GPU's tile size).
    let bk = a.t.clamp(1, 512);
    let scale = T::from_f64(a.scale);
    let mut s = vec![T::ZERO; bq * bk];
    let mut acc = vec![T::ZERO; bq * e];
    let mut m = vec![T::NEG_INF; bq];
    let mut l = vec![T::ZERO; bq];
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
            // A NaN score makes the row NaN through exp(NaN - max), as in the reference.
            let mx = row.iter().fold(m[r], |a, &x| if x > a { x } else { a });
            let corr = (m[r] - mx).exp();
            for x in row.iter_mut() {
                *x = (*x - mx).exp();
            }
            // Four partial sums in a fixed order: vectorizable and deterministic.
            let mut part = [T::ZERO; 4];
            let mut quads = row.chunks_exact(4);
            for q in &mut quads {
                for (p, &x) in part.iter_mut().zip(q) {
                    *p = *p + x;
                }
            }
            let mut sum = (part[0] + part[1]) + (part[2] + part[3]);
            for &x in quads.remainder() {
                sum = sum + x;
            }
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
