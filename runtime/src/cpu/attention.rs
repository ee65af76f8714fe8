//! Fused attention on the CPU: per batch element and block of queries, scores against one
//! block of keys at a time (a GEMM), an online softmax (running max and sum, rescaling the
//! partial output), and the output update (a GEMM). No score matrix larger than one tile
//! exists. The CPU picks its own tile sizes ([`block_rows`]; keys in blocks of up to 512):
//! few large GEMM calls beat many small ones; the kernel's `block_q`/`block_k` are the
//! GPU's tiles.

use tessera_kernels::Isa;
use tessera_kernels::gemm::{BSource, PackedB, View, sgemm, sgemm_acc};
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

    /// Runs one query block on its scratch tile: portable GEMMs by default.
    ///
    /// # Safety
    /// As for [`block`].
    unsafe fn block_in(_: Isa, a: &Attention, ops: &Operands<Self>, b: usize, t: Tile<Self>) {
        // SAFETY: forwarded contract.
        unsafe { block_portable(a, ops, b, t) }
    }
}

/// One query block's scratch: scores (`bq × bk`), the running output (`bq × e`), the
/// running maxima and sums (`bq` each).
pub(crate) struct Tile<'a, T> {
    i0: usize,
    bq: usize,
    bk: usize,
    s: &'a mut [T],
    acc: &'a mut [T],
    m: &'a mut [T],
    l: &'a mut [T],
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

    unsafe fn block_in(isa: Isa, a: &Attention, ops: &Operands<f32>, b: usize, t: Tile<f32>) {
        // SAFETY: forwarded contract; the packs (when present) are batch element b's.
        unsafe {
            if ops.packs.is_empty() {
                block_portable(a, ops, b, t)
            } else {
                block_native(isa, a, ops, b, t)
            }
        }
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
    /// Per batch element, its keys and values packed for the native SGEMM ([`pack`]);
    /// empty when the portable path runs (f64).
    pub packs: Vec<HeadPack>,
}

/// Keys per block of the online softmax (a multiple of the GEMM panel width, so key
/// blocks start on panel boundaries of the packed `Kᵀ`).
const KEY_BLOCK: usize = 512;

/// One batch element's keys and values packed for [`tessera_kernels::gemm`]: `Kᵀ`
/// (`d × t`) whole, `V` one block of [`KEY_BLOCK`] keys at a time (`nk × e`). Packed once
/// per run and read by every query block of the element (instead of once per query
/// block inside each GEMM call).
#[derive(Default)]
pub(crate) struct HeadPack {
    kt: PackedB,
    v: Vec<PackedB>,
}

/// Packs batch element `b`'s keys and values into `out` (reusing its buffers).
///
/// # Safety
/// The key and value views must be valid for batch element `b`.
pub(crate) unsafe fn pack(a: &Attention, ops: &Operands<f32>, b: usize, out: &mut HeadPack) {
    let kp = ops.k.wrapping_offset(ops.offs[1][b]);
    let kt = View {
        ptr: kp,
        rs: a.k.col_stride as isize,
        cs: a.k.row_stride as isize,
    };
    // SAFETY: Kᵀ's (r, c) is K's (c, r): inside the view for r < d, c < t.
    unsafe { out.kt.repack(kt, a.d, a.t) };
    let blocks = a.t.div_ceil(KEY_BLOCK);
    out.v.resize_with(blocks, PackedB::default);
    for (i, pv) in out.v.iter_mut().enumerate() {
        let j0 = i * KEY_BLOCK;
        let nk = KEY_BLOCK.min(a.t - j0);
        let vv = View {
            ptr: ops
                .v
                .wrapping_offset(ops.offs[2][b] + (j0 as i64 * a.v.row_stride) as isize),
            rs: a.v.row_stride as isize,
            cs: a.v.col_stride as isize,
        };
        // SAFETY: rows j0..j0 + nk < t and columns < e are inside the value view.
        unsafe { pv.repack(vv, nk, a.e) };
    }
}

// SAFETY: the pointers are only read (inputs) or written at disjoint positions (output)
// by tasks the caller waits for.
unsafe impl<T> Send for Operands<T> {}
unsafe impl<T> Sync for Operands<T> {}

/// Query rows per CPU tile: the whole sequence when its score tile has at most 64K
/// elements, else as many rows as fit (at least 32).
pub(crate) fn block_rows(a: &Attention) -> usize {
    let t = a.t.clamp(1, KEY_BLOCK);
    (65_536 / t).max(32).min(a.s.max(1))
}

/// Runs query block `qb` of batch element `b`.
///
/// # Safety
/// The pointers must be valid for the views of `a` over every batch element.
pub(crate) unsafe fn block<T: Real>(
    isa: Isa,
    a: &Attention,
    ops: &Operands<T>,
    b: usize,
    qb: usize,
) {
    let rows = block_rows(a);
    let i0 = qb * rows;
    let i1 = (i0 + rows).min(a.s);
    if i0 >= i1 {
        return;
    }
    let bq = i1 - i0;
    let e = a.e;
    let bk = a.t.clamp(1, KEY_BLOCK);
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
        let tile = Tile {
            i0,
            bq,
            bk,
            s,
            acc,
            m,
            l,
        };
        // SAFETY: forwarded contract.
        unsafe { T::block_in(isa, a, ops, b, tile) }
    })
}

thread_local! {
    /// Per-thread scratch for attention tiles (large enough tiles would otherwise be mapped
    /// and unmapped on every call).
    static SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The body of [`block`] with the `gemm` crate's kernels (f64, and f32 without packs).
///
/// # Safety
/// As for [`block`].
unsafe fn block_portable<T: Real>(a: &Attention, ops: &Operands<T>, b: usize, tile: Tile<T>) {
    let Tile {
        i0,
        bq,
        bk,
        s,
        acc,
        m,
        l,
    } = tile;
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
        // SAFETY: forwarded contract; `s` holds bq × nk scores.
        unsafe { softmax_update(a, ops, b, (i0, j0), nk, s, acc, m, l) };
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
    // SAFETY: forwarded contract.
    unsafe { finish(a, ops, b, i0, bq, acc, l) };
}

/// The online-softmax step for one block of `nk` keys starting at `j0`, rows of queries
/// from `i0`: adds the mask, exponentiates the scores against the new running maxima,
/// rescales the running sums and outputs by `exp(old max − new max)`.
///
/// # Safety
/// The mask view (when present) must be valid for batch element `b`.
#[allow(clippy::too_many_arguments)]
unsafe fn softmax_update<T: Real>(
    a: &Attention,
    ops: &Operands<T>,
    b: usize,
    (i0, j0): (usize, usize),
    nk: usize,
    s: &mut [T],
    acc: &mut [T],
    m: &mut [T],
    l: &mut [T],
) {
    let e = a.e;
    for (r, row) in s.chunks_exact_mut(nk).take(m.len()).enumerate() {
        if let (Some(mp), Some(mv)) = (ops.mask, a.mask.as_ref()) {
            let start = mp.wrapping_offset(
                ops.offs[3][b]
                    + ((i0 + r) as i64 * mv.row_stride) as isize
                    + (j0 as i64 * mv.col_stride) as isize,
            );
            if mv.col_stride == 1 {
                // SAFETY: the mask view is valid for every (query, key) of the batch.
                let mrow = unsafe { std::slice::from_raw_parts(start, nk) };
                for (x, &y) in row.iter_mut().zip(mrow) {
                    *x = *x + y;
                }
            } else {
                for (c, x) in row.iter_mut().enumerate() {
                    // SAFETY: as above.
                    *x =
                        *x + unsafe { *start.wrapping_offset((c as i64 * mv.col_stride) as isize) };
                }
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
}

/// Writes the normalized output rows `i0..i0 + bq` of batch element `b`.
///
/// # Safety
/// The output must be the contiguous `[batch, s, e]` buffer of the kernel.
unsafe fn finish<T: Real>(
    a: &Attention,
    ops: &Operands<T>,
    b: usize,
    i0: usize,
    bq: usize,
    acc: &[T],
    l: &[T],
) {
    let e = a.e;
    for r in 0..bq {
        let inv = T::ONE / l[r];
        // SAFETY: row (b, i0 + r) of the contiguous output has e elements.
        let out = unsafe { std::slice::from_raw_parts_mut(ops.out.add((b * a.s + i0 + r) * e), e) };
        for (o, &y) in out.iter_mut().zip(&acc[r * e..(r + 1) * e]) {
            *o = y * inv;
        }
    }
}

/// The body of [`block`] for f32 with the native SGEMM on the batch element's packed keys
/// and values ([`pack`]).
///
/// # Safety
/// As for [`block`]; `ops.packs[b]` must hold batch element `b`'s packs.
unsafe fn block_native(isa: Isa, a: &Attention, ops: &Operands<f32>, b: usize, tile: Tile<f32>) {
    let Tile {
        i0,
        bq,
        bk,
        s,
        acc,
        m,
        l,
    } = tile;
    let pack = &ops.packs[b];
    let q = View {
        ptr: ops
            .q
            .wrapping_offset(ops.offs[0][b] + (i0 as i64 * a.q.row_stride) as isize),
        rs: a.q.row_stride as isize,
        cs: a.q.col_stride as isize,
    };
    let scale = a.scale as f32;
    let mut j0 = 0;
    for pv in &pack.v {
        let nk = bk.min(a.t - j0);
        let kt = BSource::Packed {
            b: &pack.kt,
            col0: j0,
        };
        // SAFETY: Q rows i0..i0 + bq are inside the query view; `s` holds bq × nk; the
        // packs cover keys j0..j0 + nk (j0 a multiple of KEY_BLOCK, hence of the panel).
        unsafe {
            sgemm(isa, bq, nk, a.d, scale, q, kt, s.as_mut_ptr(), nk);
            softmax_update(a, ops, b, (i0, j0), nk, s, acc, m, l);
            let p = View {
                ptr: s.as_ptr(),
                rs: nk as isize,
                cs: 1,
            };
            let v = BSource::Packed { b: pv, col0: 0 };
            sgemm_acc(isa, bq, a.e, nk, 1.0, p, v, acc.as_mut_ptr(), a.e);
        }
        j0 += nk;
    }
    // SAFETY: forwarded contract.
    unsafe { finish(a, ops, b, i0, bq, acc, l) };
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
