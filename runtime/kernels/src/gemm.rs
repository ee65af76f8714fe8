//! Single-precision GEMM: `C[m×n] = alpha · A[m×k] · B[k×n]`, C row-major with row stride
//! `ldc`, A and B strided views.
//!
//! The design is MLAS's and BLIS's: B is packed into panels of [`NR`] = 16 columns per
//! slice of [`kc_for`] rows (`[slice][panel][kc][16]`, the last panel zero-padded), so a
//! microkernel streams one contiguous 64-byte row of B per k; A is read in place when its
//! columns are contiguous (else a slice of it is copied to a row-major buffer); a 6×16
//! register tile (12 accumulators of 8 lanes) takes 2 loads of B and 6 broadcasts of A per
//! 12 fused multiply-adds; with AVX-512's 32 registers and 16-wide vectors, a 6×64 tile
//! over four panels takes 4 loads and 6 broadcasts per 24 multiply-adds of 16 lanes (same
//! sums, same order; twice the FMA throughput where the core has two 512-bit FMA units). Constant weights are
//! packed once ([`PackedB::pack`]); other B operands are packed per call, one k-slice at a
//! time, into a thread-local buffer.
//!
//! Loop order per call: k-slices (ascending; the first stores, later ones add to C), then
//! blocks of [`NC`] columns, then strips of 6 rows, then 16-column panels. Each element of
//! C is the sum over its k-slices in ascending order of sums over k in ascending order:
//! the same for any split of C into calls whose column offsets are multiples of [`NR`].

use std::cell::RefCell;

/// Columns per packed panel (two 8-lane vectors).
pub const NR: usize = 16;
/// Rows per register tile.
pub const MR: usize = 6;
/// Rows of C up to which a per-call B with contiguous rows is read in place, not packed.
pub const DIRECT_M: usize = 24;
/// Columns per block: a `kc × NC` block of packed B (≤ 256 KiB) stays in L2 while every
/// row strip of the call reuses it.
pub const NC: usize = 256;

/// Rows of B (and columns of A) per packed slice: all of `k` when it is short (one pass
/// over C), else 256 (a 16 KiB panel plus a 6 KiB strip of A fit in L1).
pub fn kc_for(k: usize) -> usize {
    if k <= 320 { k.max(1) } else { 256 }
}

/// A strided matrix view: element `(r, c)` at `ptr + r·rs + c·cs` (in elements).
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

impl View {
    /// # Safety
    /// `(r, c)` must address an element of the viewed buffer.
    unsafe fn at(&self, r: usize, c: usize) -> f32 {
        // SAFETY: forwarded to the caller.
        unsafe { *self.ptr.offset(r as isize * self.rs + c as isize * self.cs) }
    }
}

/// A 64-byte aligned panel row.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; NR]);

/// B (`k × n`) packed into 16-column panels per k-slice, zero-padded to a multiple of 16
/// columns. The default is an empty buffer for [`PackedB::repack`].
#[derive(Default)]
pub struct PackedB {
    k: usize,
    n: usize,
    kc: usize,
    lines: Vec<Line>,
}

impl std::fmt::Debug for PackedB {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PackedB {{ k: {}, n: {}, kc: {} }}",
            self.k, self.n, self.kc
        )
    }
}

/// Panels covering `n` columns.
fn panels(n: usize) -> usize {
    n.div_ceil(NR)
}

/// Fills panels `first..` of the k-slice `k0..k0 + kcs` of `b` (`? × n`) into `dst`, which
/// holds the slice's panels (`kcs` lines each, from panel 0), writing every lane (zeros
/// past column `n`).
///
/// # Safety
/// Every `(r, c)` with `k0 ≤ r < k0 + kcs`, `c < n` must address an element of `b`'s
/// buffer.
unsafe fn fill_panels(b: View, k0: usize, kcs: usize, n: usize, first: usize, dst: &mut [Line]) {
    for p in first..panels(n) {
        let cols = NR.min(n - p * NR);
        let lines = &mut dst[p * kcs..(p + 1) * kcs];
        if b.cs == 1 {
            // Contiguous rows: sixteen-float copies (vectorized), not strided loads.
            for (kk, line) in lines.iter_mut().enumerate() {
                // SAFETY: row k0 + kk, columns p·16 .. p·16 + cols are inside `b`.
                let src = unsafe {
                    std::slice::from_raw_parts(
                        b.ptr.offset((k0 + kk) as isize * b.rs + (p * NR) as isize),
                        cols,
                    )
                };
                line.0[..cols].copy_from_slice(src);
                line.0[cols..].fill(0.0);
            }
        } else {
            for (kk, line) in lines.iter_mut().enumerate() {
                for (jj, x) in line.0.iter_mut().enumerate() {
                    // SAFETY: as above (only columns below n are read).
                    *x = if jj < cols {
                        unsafe { b.at(k0 + kk, p * NR + jj) }
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

impl PackedB {
    /// Packs `b` (`k × n`).
    ///
    /// # Safety
    /// Every `(r, c)` with `r < k`, `c < n` must address an element of `b`'s buffer.
    pub unsafe fn pack(b: View, k: usize, n: usize) -> PackedB {
        let mut p = PackedB::default();
        // SAFETY: forwarded contract.
        unsafe { p.repack(b, k, n) };
        p
    }

    /// Packs `b` (`k × n`) into this buffer, reusing its allocation (operands packed per
    /// run: a convolution's columns).
    ///
    /// # Safety
    /// As for [`PackedB::pack`].
    pub unsafe fn repack(&mut self, b: View, k: usize, n: usize) {
        let kc = kc_for(k);
        let np = panels(n);
        // Every lane is written below: stale contents need no clearing.
        self.lines.resize(k * np, Line([0.0; NR]));
        self.lines.truncate(k * np);
        let mut k0 = 0;
        while k0 < k {
            let kcs = kc.min(k - k0);
            let slice = &mut self.lines[k0 * np..(k0 + kcs) * np];
            // SAFETY: forwarded contract.
            unsafe { fill_panels(b, k0, kcs, n, 0, slice) };
            k0 += kcs;
        }
        (self.k, self.n, self.kc) = (k, n, kc);
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lines.len() * std::mem::size_of::<Line>()
    }

    /// Panel `p` of the slice starting at row `k0` (which has `kcs` rows).
    fn panel(&self, k0: usize, kcs: usize, p: usize) -> *const f32 {
        let np = panels(self.n);
        self.lines[k0 * np + p * kcs..].as_ptr() as *const f32
    }
}

/// Where B comes from.
#[derive(Clone, Copy, Debug)]
pub enum BSource<'a> {
    /// Packed at compile time; the call computes columns `col0..col0 + n` of it (`col0` a
    /// multiple of [`NR`]).
    Packed { b: &'a PackedB, col0: usize },
    /// A strided view, packed per call.
    View(View),
}

thread_local! {
    /// Packing buffers of per-call operands: (B slice panels, A slice rows).
    static WORK: RefCell<(Vec<Line>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `C = alpha · A · B` for an `m × n × k` problem.
///
/// # Safety
/// `a` must address `m × k` elements, `b` `k × n` (for `Packed`, `col0 + n ≤ b.n()` and
/// `b.k() == k`), and `c` an `m × n` block with row stride `ldc ≥ n`; `c` must not overlap
/// `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    isa: crate::Isa,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: View,
    b: BSource,
    c: *mut f32,
    ldc: usize,
) {
    // SAFETY: forwarded contract.
    unsafe { gemm_into(isa, (m, n, k), alpha, a, b, c, ldc, false) }
}

/// `C += alpha · A · B` (the running output of an attention block).
///
/// # Safety
/// As for [`sgemm`]; `c` must be initialized.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_acc(
    isa: crate::Isa,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: View,
    b: BSource,
    c: *mut f32,
    ldc: usize,
) {
    // SAFETY: forwarded contract.
    unsafe { gemm_into(isa, (m, n, k), alpha, a, b, c, ldc, true) }
}

/// [`sgemm`] (`acc_in` false) or [`sgemm_acc`] (true).
///
/// # Safety
/// As for [`sgemm_acc`].
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_into(
    isa: crate::Isa,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    a: View,
    b: BSource,
    c: *mut f32,
    ldc: usize,
    acc_in: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if acc_in {
            return;
        }
        for r in 0..m {
            // SAFETY: row r of C has n elements.
            unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), n) }.fill(0.0);
        }
        return;
    }
    let isa = isa.or_portable();
    WORK.with(|w| {
        let mut w = w.borrow_mut();
        let (bwork, awork) = &mut *w;
        let kc = kc_for(k);
        let np = panels(n);
        let mut k0 = 0;
        while k0 < k {
            let kcs = kc.min(k - k0);
            // A view with contiguous rows is read in place when few rows of C reuse it
            // (packing would cost as much as the product); only a ragged last panel is
            // copied, so no read passes the end of a row.
            let direct = match b {
                BSource::View(v) => v.cs == 1 && v.rs > 0 && m <= DIRECT_M,
                BSource::Packed { .. } => false,
            };
            if let BSource::View(v) = b {
                // Panels from `first` on are written whole; stale contents need no clearing.
                bwork.resize(np * kcs, Line([0.0; NR]));
                bwork.truncate(np * kcs);
                let first = if direct { n / NR } else { 0 };
                // SAFETY: rows k0..k0 + kcs and columns ..n are inside the view.
                unsafe { fill_panels(v, k0, kcs, n, first, bwork) };
            }
            // A: in place when its columns are contiguous, else this slice copied.
            let (abase, lda) = if a.cs == 1 && a.rs > 0 {
                // SAFETY: column k0 of row 0 is inside A.
                (unsafe { a.ptr.add(k0) }, a.rs as usize)
            } else {
                awork.clear();
                awork.resize(m * kcs, 0.0);
                for r in 0..m {
                    for kk in 0..kcs {
                        // SAFETY: r < m, k0 + kk < k.
                        awork[r * kcs + kk] = unsafe { a.at(r, k0 + kk) };
                    }
                }
                (awork.as_ptr(), kcs)
            };
            // B panels of this slice: packed already, or packed now for this call's columns.
            let bpanel = |p: usize| -> (*const f32, usize) {
                match b {
                    BSource::Packed { b, col0 } => (b.panel(k0, kcs, col0 / NR + p), NR),
                    BSource::View(v) if direct && (p + 1) * NR <= n => (
                        // SAFETY: row k0, column p·16 of the view.
                        unsafe { v.ptr.offset(k0 as isize * v.rs + (p * NR) as isize) },
                        v.rs as usize,
                    ),
                    BSource::View(_) => (bwork[p * kcs..].as_ptr() as *const f32, NR),
                }
            };
            let accumulate = acc_in || k0 > 0;
            let mut n0 = 0;
            while n0 < n {
                let nb = NC.min(n - n0);
                let mut i = 0;
                while i < m {
                    let rows = strip_rows(m - i);
                    let mut j = n0;
                    while j < n0 + nb {
                        // One row of C (decode, classifier heads): four panels at once, so
                        // eight independent accumulators hide the FMA latency.
                        #[cfg(target_arch = "x86_64")]
                        if rows == 1 && isa.avx2() && j + 4 * NR <= n0 + nb {
                            let panels: [(*const f32, usize); 4] =
                                std::array::from_fn(|q| bpanel(j / NR + q));
                            if panels.iter().all(|p| p.1 == panels[0].1) {
                                // SAFETY: four full panels and 64 columns of the row of C.
                                unsafe {
                                    avx2::row4(
                                        abase.wrapping_add(i * lda),
                                        panels.map(|p| p.0),
                                        panels[0].1,
                                        kcs,
                                        c.wrapping_add(i * ldc + j),
                                        accumulate,
                                        alpha,
                                    )
                                };
                                j += 4 * NR;
                                continue;
                            }
                        }
                        // AVX-512: four (else two) panels at once, 16-wide, up to 24
                        // accumulators for six rows, so each broadcast of A feeds four
                        // (two) multiply-adds.
                        #[cfg(target_arch = "x86_64")]
                        if isa == crate::Isa::Avx512 && rows > 1 && j + 2 * NR <= n0 + nb {
                            let t = |cols: usize, b: *const f32, ldb: usize| Tile {
                                a: abase.wrapping_add(i * lda),
                                lda,
                                b,
                                ldb,
                                kc: kcs,
                                c: c.wrapping_add(i * ldc + j),
                                ldc,
                                cols,
                                accumulate,
                                alpha,
                            };
                            if j + 4 * NR <= n0 + nb {
                                let p: [(*const f32, usize); 4] =
                                    std::array::from_fn(|q| bpanel(j / NR + q));
                                if p.iter().all(|x| x.1 == p[0].1) {
                                    // SAFETY: AVX-512F was detected; the tile and its
                                    // four full panels lie inside A, B and C.
                                    unsafe {
                                        wide_kernel(
                                            rows,
                                            &t(4 * NR, p[0].0, p[0].1),
                                            p.map(|x| x.0),
                                        )
                                    };
                                    j += 4 * NR;
                                    continue;
                                }
                            }
                            let p: [(*const f32, usize); 2] =
                                std::array::from_fn(|q| bpanel(j / NR + q));
                            if p[0].1 == p[1].1 {
                                // SAFETY: as above, two full panels.
                                unsafe {
                                    wide_kernel(rows, &t(2 * NR, p[0].0, p[0].1), p.map(|x| x.0))
                                };
                                j += 2 * NR;
                                continue;
                            }
                        }
                        let cols = NR.min(n - j);
                        let (bp, ldb) = bpanel(j / NR);
                        let t = Tile {
                            a: abase.wrapping_add(i * lda),
                            lda,
                            b: bp,
                            ldb,
                            kc: kcs,
                            c: c.wrapping_add(i * ldc + j),
                            ldc,
                            cols,
                            accumulate,
                            alpha,
                        };
                        // SAFETY: the tile lies inside A, the panel and C.
                        unsafe { kernel(isa, rows, &t) };
                        j += NR;
                    }
                    i += rows;
                }
                n0 += nb;
            }
            k0 += kcs;
        }
    });
}

/// Rows of the next strip when `left` rows of C remain: [`MR`], except that 7–9 rows
/// split into two strips of at least 3 (m = 49, a 7×7 plane's positions, runs as eight
/// strips of 6 and two of 4 and 3 rather than ending on a one-row strip, whose tile
/// reuses each panel load for one row only). Tile heights never change results.
fn strip_rows(left: usize) -> usize {
    match left {
        7..=9 => left.div_ceil(2),
        _ => left.min(MR),
    }
}

/// One register tile's operands: `rows × cols` of C from a `rows × kc` strip of A (row
/// stride `lda`) and one `kc × 16` panel.
struct Tile {
    a: *const f32,
    lda: usize,
    b: *const f32,
    /// Elements between consecutive k rows of the panel (16 when packed).
    ldb: usize,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    accumulate: bool,
    alpha: f32,
}

/// Dispatches a tile of `rows ≤ 6` rows to the microkernel of that height.
///
/// # Safety
/// The tile's pointers address its operands.
unsafe fn kernel(isa: crate::Isa, rows: usize, t: &Tile) {
    // SAFETY (all arms): forwarded; the AVX2 kernels run only where detection found AVX2
    // and FMA (`Isa::or_portable`).
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            crate::Isa::Avx2Fma | crate::Isa::Avx512 => match rows {
                6 => avx2::tile::<6>(t),
                5 => avx2::tile::<5>(t),
                4 => avx2::tile::<4>(t),
                3 => avx2::tile::<3>(t),
                2 => avx2::tile::<2>(t),
                _ => avx2::tile::<1>(t),
            },
            _ => match rows {
                6 => portable::<6>(t),
                5 => portable::<5>(t),
                4 => portable::<4>(t),
                3 => portable::<3>(t),
                2 => portable::<2>(t),
                _ => portable::<1>(t),
            },
        }
    }
}

/// Dispatches a tile of `2 ≤ rows ≤ 6` rows and `P` full panels to the AVX-512
/// microkernel of that height.
///
/// # Safety
/// AVX-512F is available; the tile's pointers address its operands, `b` its panels.
#[cfg(target_arch = "x86_64")]
unsafe fn wide_kernel<const P: usize>(rows: usize, t: &Tile, b: [*const f32; P]) {
    // SAFETY (all arms): forwarded.
    unsafe {
        match rows {
            6 => avx512::tile::<6, P>(t, b),
            5 => avx512::tile::<5, P>(t, b),
            4 => avx512::tile::<4, P>(t, b),
            3 => avx512::tile::<3, P>(t, b),
            _ => avx512::tile::<2, P>(t, b),
        }
    }
}

/// Stores a finished row of a tile: scale by alpha, add what C holds on later slices.
///
/// # Safety
/// `c` addresses `t.cols` elements.
#[inline(always)]
unsafe fn store_row(t: &Tile, row: &[f32; NR], c: *mut f32) {
    for (j, &v) in row.iter().enumerate().take(t.cols) {
        let v = if t.alpha == 1.0 { v } else { v * t.alpha };
        // SAFETY: j < cols.
        unsafe {
            let p = c.add(j);
            *p = if t.accumulate { *p + v } else { v };
        }
    }
}

/// The microkernel in plain Rust: the same tile and summation order as the AVX2 kernel,
/// with separate multiplies and adds.
///
/// # Safety
/// The tile's pointers address its operands.
unsafe fn portable<const R: usize>(t: &Tile) {
    let mut acc = [[0f32; NR]; R];
    for kk in 0..t.kc {
        // SAFETY: the panel holds kc lines of 16.
        let b = unsafe { &*(t.b.add(kk * t.ldb) as *const [f32; NR]) };
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row r < R of the strip, column kk < kc.
            let a = unsafe { *t.a.add(r * t.lda + kk) };
            for (x, &y) in acc_r.iter_mut().zip(b) {
                *x += a * y;
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        // SAFETY: row r of the tile in C.
        unsafe { store_row(t, acc_r, t.c.add(r * t.ldc)) };
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{NR, Tile};

    /// The `R×16P` microkernel (`R ≤ 6` rows, `P` full 16-column panels, `P ∈ {2, 4}`):
    /// per k, `P` 16-wide loads of the panels' rows, `R` broadcasts of A, `PR` fused
    /// multiply-adds into `PR ≤ 24` registers, which only AVX-512's 32 vector registers
    /// hold. Each lane sums its k in the same order as [`super::avx2::tile`], so results
    /// do not depend on which kernel ran; on cores with two 512-bit FMA units this is
    /// twice the 8-wide kernels' throughput.
    ///
    /// # Safety
    /// AVX-512F is available; the tile's pointers address its operands, `b[q]` panel `q`
    /// (row stride `t.ldb`, `b[0] == t.b`), and `t.cols` is `16P`.
    #[target_feature(enable = "avx2,fma,avx512f")]
    pub(super) unsafe fn tile<const R: usize, const P: usize>(t: &Tile, b: [*const f32; P]) {
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        let mut p = b;
        for kk in 0..t.kc {
            // SAFETY: every panel holds kc lines of 16 floats; row r < R, column kk < kc.
            unsafe {
                let bv: [__m512; P] = std::array::from_fn(|q| _mm512_loadu_ps(p[q]));
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let a = _mm512_set1_ps(*t.a.add(r * t.lda + kk));
                    for (acc, b) in acc_r.iter_mut().zip(&bv) {
                        *acc = _mm512_fmadd_ps(a, *b, *acc);
                    }
                }
                for x in p.iter_mut() {
                    *x = x.add(t.ldb);
                }
            }
        }
        let alpha = _mm512_set1_ps(t.alpha);
        for (r, acc_r) in acc.iter().enumerate() {
            for (q, &v) in acc_r.iter().enumerate() {
                // SAFETY: row r of the tile in C has 16P columns.
                unsafe {
                    let c = t.c.add(r * t.ldc + NR * q);
                    let mut v = v;
                    if t.alpha != 1.0 {
                        v = _mm512_mul_ps(v, alpha);
                    }
                    if t.accumulate {
                        v = _mm512_add_ps(_mm512_loadu_ps(c), v);
                    }
                    _mm512_storeu_ps(c, v);
                }
            }
        }
        debug_assert_eq!(t.cols, P * NR);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{NR, Tile};

    /// One row of C against four 16-column panels (64 columns): per k, one broadcast of A
    /// and eight fused multiply-adds into independent accumulators. Each column sums its k
    /// in the same order as [`tile`], so results do not depend on which kernel ran.
    ///
    /// # Safety
    /// AVX2 and FMA are available; `a` addresses `kc` elements, each panel `kc` rows of 16
    /// (row stride `ldb`), `c` 64 elements.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row4(
        a: *const f32,
        b: [*const f32; 4],
        ldb: usize,
        kc: usize,
        c: *mut f32,
        accumulate: bool,
        alpha: f32,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        // SAFETY (all accesses): within the operands described above.
        unsafe {
            for kk in 0..kc {
                let x = _mm256_broadcast_ss(&*a.add(kk));
                for (q, acc_q) in acc.iter_mut().enumerate() {
                    let p = b[q].add(kk * ldb);
                    acc_q[0] = _mm256_fmadd_ps(x, _mm256_loadu_ps(p), acc_q[0]);
                    acc_q[1] = _mm256_fmadd_ps(x, _mm256_loadu_ps(p.add(8)), acc_q[1]);
                }
            }
            let al = _mm256_set1_ps(alpha);
            for (q, acc_q) in acc.iter().enumerate() {
                for (h, &v) in acc_q.iter().enumerate() {
                    let dst = c.add(q * NR + 8 * h);
                    let mut v = v;
                    if alpha != 1.0 {
                        v = _mm256_mul_ps(v, al);
                    }
                    if accumulate {
                        v = _mm256_add_ps(_mm256_loadu_ps(dst), v);
                    }
                    _mm256_storeu_ps(dst, v);
                }
            }
        }
    }

    /// The 6×16 microkernel (`R ≤ 6` rows): per k, two loads of the panel row, `R`
    /// broadcasts of A, `2R` fused multiply-adds into registers.
    ///
    /// # Safety
    /// AVX2 and FMA are available; the tile's pointers address its operands.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile<const R: usize>(t: &Tile) {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let mut b = t.b;
        for kk in 0..t.kc {
            // SAFETY: the panel holds kc lines of 16 floats; row r < R, column kk < kc.
            unsafe {
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let a = _mm256_broadcast_ss(&*t.a.add(r * t.lda + kk));
                    acc_r[0] = _mm256_fmadd_ps(a, b0, acc_r[0]);
                    acc_r[1] = _mm256_fmadd_ps(a, b1, acc_r[1]);
                }
                b = b.add(t.ldb);
            }
        }
        let alpha = _mm256_set1_ps(t.alpha);
        for (r, acc_r) in acc.iter().enumerate() {
            // SAFETY: row r of the tile in C; full rows have 16 columns.
            unsafe {
                let c = t.c.add(r * t.ldc);
                let (mut v0, mut v1) = (acc_r[0], acc_r[1]);
                if t.alpha != 1.0 {
                    v0 = _mm256_mul_ps(v0, alpha);
                    v1 = _mm256_mul_ps(v1, alpha);
                }
                if t.cols == NR {
                    if t.accumulate {
                        v0 = _mm256_add_ps(_mm256_loadu_ps(c), v0);
                        v1 = _mm256_add_ps(_mm256_loadu_ps(c.add(8)), v1);
                    }
                    _mm256_storeu_ps(c, v0);
                    _mm256_storeu_ps(c.add(8), v1);
                } else {
                    // Partial tile: through a stack row (masked stores are slow on AMD).
                    let mut row = [0f32; NR];
                    _mm256_storeu_ps(row.as_mut_ptr(), v0);
                    _mm256_storeu_ps(row.as_mut_ptr().add(8), v1);
                    for (j, &v) in row.iter().enumerate().take(t.cols) {
                        let p = c.add(j);
                        *p = if t.accumulate { *p + v } else { v };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Isa;

    fn reference(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f64> {
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                    .sum();
            }
        }
        c
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let x = (i as u32).wrapping_mul(2654435761).wrapping_add(seed);
                ((x >> 8) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Every shape class's edges: m and n remainders, k over one slice, both ISAs, both B
    /// sources, alpha, and splitting C into column tiles gives the same bits.
    #[test]
    fn matches_a_f64_reference_at_every_edge() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (5, 17, 3),
            (6, 16, 8),
            (7, 33, 300),
            (13, 40, 321),
            (2, 70, 700),
            (25, 16, 513),
            (1, 70, 300),
            (1, 130, 513),
            (5, 64, 40),
            (10, 96, 17),
            (9, 48, 20),
            (49, 96, 40),
            (8, 130, 7),
        ] {
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let want = reference(m, n, k, &a, &b);
            let av = View {
                ptr: a.as_ptr(),
                rs: k as isize,
                cs: 1,
            };
            let bv = View {
                ptr: b.as_ptr(),
                rs: n as isize,
                cs: 1,
            };
            // SAFETY: b is k × n.
            let packed = unsafe { PackedB::pack(bv, k, n) };
            let mut native: Option<Vec<f32>> = None;
            for isa in Isa::available() {
                let mut outs = Vec::new();
                for src in [
                    BSource::View(bv),
                    BSource::Packed {
                        b: &packed,
                        col0: 0,
                    },
                ] {
                    let mut c = vec![f32::NAN; m * n];
                    // SAFETY: shapes as declared.
                    unsafe { sgemm(isa, m, n, k, 1.0, av, src, c.as_mut_ptr(), n) };
                    for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                        let tol = 1e-5 * (k as f64).sqrt() * (1.0 + w.abs());
                        assert!(
                            (got as f64 - w).abs() <= tol,
                            "{m}x{n}x{k} {isa:?} {src:?} at {i}: {got} vs {w}"
                        );
                    }
                    outs.push(c);
                }
                assert_eq!(outs[0], outs[1], "packing changes results");
                if isa.avx2() {
                    // The AVX-512 kernels sum in the AVX2 kernels' order.
                    let first = native.get_or_insert_with(|| outs[0].clone());
                    assert_eq!(*first, outs[0], "{m}x{n}x{k}: {isa:?} changes results");
                }
                // Column tiles of 16 from the packed B: the same bits.
                let mut tiled = vec![0f32; m * n];
                for c0 in (0..n).step_by(NR) {
                    let w = NR.min(n - c0);
                    // SAFETY: columns c0..c0+w of C and of the packed B.
                    unsafe {
                        sgemm(
                            isa,
                            m,
                            w,
                            k,
                            1.0,
                            av,
                            BSource::Packed {
                                b: &packed,
                                col0: c0,
                            },
                            tiled.as_mut_ptr().add(c0),
                            n,
                        )
                    };
                }
                assert_eq!(tiled, outs[0], "tiling changes results");
            }
        }
    }

    #[test]
    fn transposed_operands_and_alpha() {
        let (m, n, k) = (9, 21, 37);
        let a = data(m * k, 3); // stored k × m (A transposed)
        let b = data(k * n, 4); // stored n × k (B transposed)
        let mut want = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                want[i * n + j] = 0.5
                    * (0..k)
                        .map(|p| a[p * m + i] as f64 * b[j * k + p] as f64)
                        .sum::<f64>();
            }
        }
        let av = View {
            ptr: a.as_ptr(),
            rs: 1,
            cs: m as isize,
        };
        let bv = View {
            ptr: b.as_ptr(),
            rs: 1,
            cs: k as isize,
        };
        for isa in Isa::available() {
            let mut c = vec![0f32; m * n];
            // SAFETY: shapes as declared.
            unsafe { sgemm(isa, m, n, k, 0.5, av, BSource::View(bv), c.as_mut_ptr(), n) };
            for (&got, &w) in c.iter().zip(&want) {
                assert!(
                    (got as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{got} vs {w}"
                );
            }
        }
    }

    #[test]
    fn accumulating_adds_to_c_at_every_edge() {
        // Shapes past one register tile, one panel and one k-slice, packed and per call.
        for (m, n, k) in [(7, 33, 5), (13, 70, 300), (1, 64, 40), (30, 17, 600)] {
            let a = data(m * k, 5);
            let b = data(k * n, 6);
            let c0 = data(m * n, 7);
            let prod = reference(m, n, k, &a, &b);
            let av = View {
                ptr: a.as_ptr(),
                rs: k as isize,
                cs: 1,
            };
            let bv = View {
                ptr: b.as_ptr(),
                rs: n as isize,
                cs: 1,
            };
            // SAFETY: b is k × n.
            let packed = unsafe { PackedB::pack(bv, k, n) };
            for isa in Isa::available() {
                for src in [
                    BSource::View(bv),
                    BSource::Packed {
                        b: &packed,
                        col0: 0,
                    },
                ] {
                    let mut c = c0.clone();
                    // SAFETY: shapes as declared; c is initialized.
                    unsafe { sgemm_acc(isa, m, n, k, 2.0, av, src, c.as_mut_ptr(), n) };
                    for ((&got, &p), &init) in c.iter().zip(&prod).zip(&c0) {
                        let want = init as f64 + 2.0 * p;
                        assert!(
                            (got as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "{m}×{n}×{k}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn k_zero_writes_zeros() {
        let mut c = vec![1f32; 6];
        let v = View {
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            rs: 0,
            cs: 1,
        };
        // SAFETY: k = 0 reads nothing.
        unsafe {
            sgemm(
                Isa::detect(),
                2,
                3,
                0,
                1.0,
                v,
                BSource::View(v),
                c.as_mut_ptr(),
                3,
            )
        };
        assert_eq!(c, vec![0.0; 6]);
    }
}
