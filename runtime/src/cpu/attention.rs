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
    fn is_nan(self) -> bool;
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    const NEG_INF: f32 = f32::NEG_INFINITY;
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn exp(self) -> f32 {
        f32::exp(self)
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
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
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
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
    let bk = a.block_k.max(1);
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
            let mut mx = m[r];
            for &x in row.iter() {
                if x > mx || x.is_nan() {
                    mx = x;
                }
            }
            let corr = (m[r] - mx).exp();
            let mut sum = T::ZERO;
            for x in row.iter_mut() {
                *x = (*x - mx).exp();
                sum = sum + *x;
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
