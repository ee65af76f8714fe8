//! The row form of the direct convolution: square `K × K` kernels with `K ∈ {3, 5, 7}`,
//! stride 1 or 2, no dilation, in NCHW with no layout change; depthwise (one input channel
//! per group, any multiplier) or grouped with 2 to 8 input channels per group (RGB stems,
//! RegNet's groups).
//!
//! Per output channel, the plane is computed in bands of output rows, as many whole
//! register tiles of `R` rows as keep the band's input rows within 16 KiB. A band's input
//! rows are copied once into a zero-padded buffer (split into `S` column phases for
//! stride `S`, so every tap reads contiguous columns; rows start on cache lines), which
//! stays in L1. The register tile is `R` output rows × `V` vectors of 8 columns (eight
//! accumulators); per tap `(ky, kx)` one broadcast weight feeds all eight, each loading
//! its own vector from the buffer. Every output sums its taps in `(ky, kx)` order from
//! zero with fused multiply-adds, exactly as the plane form does (same bits per ISA).
//! With AVX-512VL's 32 registers the tile runs input-row stationary instead: the weights
//! stay in registers and each band vector is loaded once per tile, feeding every output
//! row that reads it; the per-output order of taps, and so the bits, are unchanged.
//!
//! With several input channels per group, a band holds the group's input rows and the
//! tile is four output channels × two vectors of one output row: every input vector feeds
//! four channels' accumulators. Outputs sum their taps in `(c, ky, kx)` order, again as
//! the plane form does.
//!
//! Finished output is handed to the caller's `done` callback while it is still in cache
//! (depthwise: per band on large planes, per run of whole channels on small ones;
//! grouped: per band, all channels of the range), so an epilogue (bias, activation,
//! residual) runs on data the kernel just wrote.

#[cfg(target_arch = "x86_64")]
use std::cell::RefCell;

use super::Geometry;

/// Output elements from which `done` is called per band of rows rather than per run of
/// whole channel planes (a band of a 48×48 plane is already a few KiB).
const BAND_DONE_MIN: usize = 2048;

/// The most bytes of padded input rows a band copies (half of a 32 KiB L1).
const BAND_BYTES: usize = 16 * 1024;

/// The most bytes of padded input rows a grouped band copies (all of its channels).
const GROUPED_BAND_BYTES: usize = 24 * 1024;

/// Most input channels per group the grouped row form takes.
const GROUPED_MAX_CHANNELS: usize = 8;

/// Whether the row form covers this geometry.
pub fn supported(g: &Geometry) -> bool {
    (1..=GROUPED_MAX_CHANNELS).contains(&g.group_channels)
        && g.kh == g.kw
        && matches!(g.kh, 3 | 5 | 7)
        && g.stride.0 == g.stride.1
        && matches!(g.stride.0, 1 | 2)
        && g.dilation == (1, 1)
        && g.oh > 0
        && g.ow > 0
}

/// Floats per cache line: band rows start on one.
const LINE: usize = 16;

/// The first cache-line-aligned float of a buffer with `LINE` floats to spare.
#[cfg(target_arch = "x86_64")]
fn aligned(buf: &mut [f32]) -> *mut f32 {
    let skip = buf.as_ptr().align_offset(4 * LINE).min(LINE);
    buf[skip..].as_mut_ptr()
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// A band's padded, phase-split input rows.
    static BAND: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Output channels `o0..o1` in the row form with AVX2 and FMA (depthwise tiles with
/// their weights in registers where `isa` is [`crate::Isa::Avx512`]); `done(a, b, p0,
/// p1)` after output elements `p0..p1` of channels `a..b` are final.
///
/// # Safety
/// AVX2 and FMA (and AVX-512VL for [`crate::Isa::Avx512`]) are available, [`supported`] holds, and the pointers are as for
/// [`super::run`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn run_avx2(
    isa: crate::Isa,
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
    done: &mut dyn FnMut(usize, usize, usize, usize),
) {
    // Grouped: four channels by two vectors. Depthwise, eight accumulators: two vectors of
    // columns by four rows, or one by eight where the plane is at most one vector wide.
    let wide = isa == crate::Isa::Avx512;
    macro_rules! go {
        ($k:literal, $s:literal) => {
            if g.group_channels > 1 {
                // SAFETY: forwarded.
                unsafe { grouped::<$k, $s>(g, x, w, out, o0, o1, done) }
            } else if g.ow <= 8 {
                // SAFETY: forwarded.
                unsafe { channels::<$k, $s, 8, 1>(wide, g, x, w, out, o0, o1, done) }
            } else {
                // SAFETY: forwarded.
                unsafe { channels::<$k, $s, 4, 2>(wide, g, x, w, out, o0, o1, done) }
            }
        };
    }
    match (g.kh, g.stride.0) {
        (3, 1) => go!(3, 1),
        (3, 2) => go!(3, 2),
        (5, 1) => go!(5, 1),
        (5, 2) => go!(5, 2),
        (7, 1) => go!(7, 1),
        (7, 2) => go!(7, 2),
        _ => unreachable!("rows::supported was checked"),
    }
}

/// Every channel of `o0..o1`, band by band.
///
/// # Safety
/// As for [`run_avx2`], with `K`, `S` the geometry's kernel size and stride.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn channels<const K: usize, const S: usize, const R: usize, const V: usize>(
    wide: bool,
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
    done: &mut dyn FnMut(usize, usize, usize, usize),
) {
    let tiles = g.ow.div_ceil(8 * V);
    // Buffer geometry: rows of `S` phases of `cols` columns; column `c` of phase `q` is
    // padded input column `c·S + q`. A tile at output column `x0` reads columns
    // `x0 + kx / S .. + 8·V` of phase `kx % S`.
    // Whole cache lines per phase row, so the tile's loads at phase column x0 are aligned.
    let cols = (tiles * 8 * V + (K - 1) / S).next_multiple_of(LINE);
    let row_stride = S * cols;
    // Output rows per band: whole register tiles, as many as keep the band's input rows
    // within BAND_BYTES (each input row is then copied about once), at most the plane.
    let fit = ((BAND_BYTES / 4 / row_stride).saturating_sub(K) / S + 1) / R;
    let band_out = R * fit.clamp(1, g.oh.div_ceil(R));
    let band_rows = (band_out - 1) * S + K;
    BAND.with(|cell| {
        let mut buf = cell.borrow_mut();
        buf.clear();
        buf.resize(band_rows * row_stride + LINE, 0.0);
        let at = (aligned(&mut buf), cols, band_out);
        // SAFETY: forwarded (AVX-512VL where `wide`); the buffer has `band_rows ·
        // row_stride` zeroed floats.
        unsafe {
            if wide {
                bands_avx512::<K, S, R, V>(g, x, w, out, o0, o1, done, at)
            } else {
                bands_avx2::<K, S, R, V>(g, x, w, out, o0, o1, done, at)
            }
        }
    });
}

/// [`bands`] with AVX2 and FMA: 16 vector registers, so each tap's weight is broadcast
/// where it is used and each output row loads its own input vectors.
///
/// # Safety
/// As for [`channels`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn bands_avx2<const K: usize, const S: usize, const R: usize, const V: usize>(
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
    done: &mut dyn FnMut(usize, usize, usize, usize),
    at: (*mut f32, usize, usize),
) {
    // SAFETY: forwarded.
    unsafe { bands::<K, S, R, V, false>(g, x, w, out, o0, o1, done, at) }
}

/// [`bands`] with AVX-512VL's 32 registers: the weights stay in registers and each input
/// vector is loaded once per tile, feeding every output row that reads it.
///
/// # Safety
/// As for [`channels`], and AVX-512F and AVX-512VL are available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn bands_avx512<const K: usize, const S: usize, const R: usize, const V: usize>(
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
    done: &mut dyn FnMut(usize, usize, usize, usize),
    at: (*mut f32, usize, usize),
) {
    // SAFETY: forwarded.
    unsafe { bands::<K, S, R, V, true>(g, x, w, out, o0, o1, done, at) }
}

/// The bands of [`channels`] over a zeroed buffer of `band_rows · S · cols` floats (`at`
/// = buffer, `cols`, output rows per band). `STATIONARY` tiles run input-row stationary
/// with the weights in registers, which needs more than 16 vector registers; both orders
/// sum each output's taps in `(ky, kx)` order, so they give the same bits.
///
/// # Safety
/// As for [`channels`]; inlined into a function with AVX2 and FMA enabled (and
/// AVX-512VL for `STATIONARY`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
// kx indexes the weights by (ky, kx) and the band by column: no single iterator.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn bands<
    const K: usize,
    const S: usize,
    const R: usize,
    const V: usize,
    const STATIONARY: bool,
>(
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
    done: &mut dyn FnMut(usize, usize, usize, usize),
    (bp, cols, band_out): (*mut f32, usize, usize),
) {
    use std::arch::x86_64::*;
    let (plane, p) = (g.h * g.w, g.oh * g.ow);
    let mult = g.multiplier.max(1);
    let tiles = g.ow.div_ceil(8 * V);
    let row_stride = S * cols;
    let band_rows = (band_out - 1) * S + K;
    let per_band = p >= BAND_DONE_MIN;
    let mut first = o0;
    for o in o0..o1 {
        // SAFETY: input plane o / mult, filter o and output plane o exist (caller's
        // contract); every buffer access stays inside `band_rows · row_stride`.
        unsafe {
            let xin = x.add((o / mult) * plane);
            let wo = w.add(o * K * K);
            let wv: [[__m256; K]; K] = std::array::from_fn(|ky| {
                std::array::from_fn(|kx| _mm256_set1_ps(*wo.add(ky * K + kx)))
            });
            let op = out.add(o * p);
            let mut y0 = 0;
            while y0 < g.oh {
                fill_band::<S>(g, xin, y0, band_rows, cols, bp);
                let y1 = (y0 + band_out).min(g.oh);
                for (y0, bp) in (y0..y1)
                    .step_by(R)
                    .map(|y| (y, bp.add((y - y0) * S * row_stride)))
                {
                    for t in 0..tiles {
                        let x0 = t * 8 * V;
                        let mut acc = [[_mm256_setzero_ps(); V]; R];
                        if STATIONARY && K == 3 {
                            // One call per input row with the row index a constant, so
                            // every loop in it unrolls and the nine weights stay in
                            // registers.
                            macro_rules! rows {
                                ($($i:literal)*) => {$(
                                    if $i < (R - 1) * S + K {
                                        band_row::<K, S, R, V, $i>(&mut acc, &wv, bp, row_stride, cols, x0);
                                    }
                                )*};
                            }
                            const {
                                assert!(
                                    K != 3 || (R - 1) * S + K <= 17,
                                    "a tile reads at most 17 rows"
                                )
                            };
                            rows!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
                        } else if STATIONARY {
                            // Too many weights for registers: the same order as a loop.
                            for i in 0..(R - 1) * S + K {
                                for kx in 0..K {
                                    let src =
                                        bp.add(i * row_stride + (kx % S) * cols + x0 + kx / S);
                                    let v: [__m256; V] =
                                        std::array::from_fn(|u| _mm256_loadu_ps(src.add(8 * u)));
                                    for (r, a) in acc.iter_mut().enumerate() {
                                        let Some(ky) = i.checked_sub(r * S).filter(|&ky| ky < K)
                                        else {
                                            continue;
                                        };
                                        for (a, v) in a.iter_mut().zip(&v) {
                                            *a = _mm256_fmadd_ps(wv[ky][kx], *v, *a);
                                        }
                                    }
                                }
                            }
                        } else {
                            for ky in 0..K {
                                for kx in 0..K {
                                    let wt = _mm256_set1_ps(*wo.add(ky * K + kx));
                                    let src =
                                        bp.add(ky * row_stride + (kx % S) * cols + x0 + kx / S);
                                    for (r, a) in acc.iter_mut().enumerate() {
                                        for (u, a) in a.iter_mut().enumerate() {
                                            let v = _mm256_loadu_ps(
                                                src.add(r * S * row_stride + 8 * u),
                                            );
                                            *a = _mm256_fmadd_ps(wt, v, *a);
                                        }
                                    }
                                }
                            }
                        }
                        for (r, a) in acc.iter().enumerate() {
                            let y = y0 + r;
                            if y >= g.oh {
                                break;
                            }
                            for (u, v) in a.iter().enumerate() {
                                let c = x0 + 8 * u;
                                if c + 8 <= g.ow {
                                    _mm256_storeu_ps(op.add(y * g.ow + c), *v);
                                } else if c < g.ow {
                                    let mask = _mm256_cmpgt_epi32(
                                        _mm256_set1_epi32((g.ow - c) as i32),
                                        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                    );
                                    _mm256_maskstore_ps(op.add(y * g.ow + c), mask, *v);
                                }
                            }
                        }
                    }
                }
                if per_band {
                    done(o, o + 1, y0 * g.ow, y1 * g.ow);
                }
                y0 = y1;
            }
        }
        if !per_band && ((o + 1 - first) * p >= BAND_DONE_MIN || o + 1 == o1) {
            done(first, o + 1, 0, p);
            first = o + 1;
        }
    }
}

/// Input row `I` of a register tile (at column `x0` of the band at `bp`): its `K` vectors
/// per column step feed every output row `r` of the tile with `I = r·S + ky`, `ky < K`.
///
/// # Safety
/// As for [`bands`]: the band holds row `I` of the tile and columns `x0 .. x0 + 8·V +
/// (K − 1) / S` of every phase.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::needless_range_loop)] // kx indexes the weights by (ky, kx) and the band
unsafe fn band_row<
    const K: usize,
    const S: usize,
    const R: usize,
    const V: usize,
    const I: usize,
>(
    acc: &mut [[std::arch::x86_64::__m256; V]; R],
    wv: &[[std::arch::x86_64::__m256; K]; K],
    bp: *const f32,
    row_stride: usize,
    cols: usize,
    x0: usize,
) {
    use std::arch::x86_64::*;
    for kx in 0..K {
        // SAFETY: inside the band (caller's contract).
        let v: [__m256; V] = std::array::from_fn(|u| unsafe {
            _mm256_loadu_ps(bp.add(I * row_stride + (kx % S) * cols + x0 + kx / S + 8 * u))
        });
        for (r, a) in acc.iter_mut().enumerate() {
            let Some(ky) = I.checked_sub(r * S).filter(|&ky| ky < K) else {
                continue;
            };
            for (a, v) in a.iter_mut().zip(&v) {
                // SAFETY: the caller runs with FMA (target feature of `bands`).
                *a = unsafe { _mm256_fmadd_ps(wv[ky][kx], *v, *a) };
            }
        }
    }
}

/// Grouped convolutions: per band of output rows, each group's input rows once, then
/// passes of four output channels (one at a time for a group's last few).
///
/// # Safety
/// As for [`run_avx2`], with `K`, `S` the geometry's kernel size and stride.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn grouped<const K: usize, const S: usize>(
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
    done: &mut dyn FnMut(usize, usize, usize, usize),
) {
    let cg = g.group_channels;
    let tiles = g.ow.div_ceil(16);
    let cols = (tiles * 16 + (K - 1) / S).next_multiple_of(LINE);
    let row_stride = S * cols;
    let fit = (GROUPED_BAND_BYTES / 4 / (cg * row_stride)).saturating_sub(K) / S + 1;
    let band_out = fit.clamp(1, g.oh);
    let band_rows = (band_out - 1) * S + K;
    let chan_len = band_rows * row_stride;
    BAND.with(|cell| {
        let mut buf = cell.borrow_mut();
        buf.clear();
        buf.resize(cg * chan_len + LINE, 0.0);
        let bp = aligned(&mut buf);
        let (plane, p, mult) = (g.h * g.w, g.oh * g.ow, g.multiplier.max(1));
        let taps = cg * K * K;
        let mut y0 = 0;
        while y0 < g.oh {
            let y1 = (y0 + band_out).min(g.oh);
            let mut o = o0;
            while o < o1 {
                let grp = o / mult;
                let end = o1.min((grp + 1) * mult);
                // SAFETY: the group's input planes exist (caller's contract); each
                // channel's rows go to their own `chan_len` part of the buffer.
                unsafe {
                    for c in 0..cg {
                        let xin = x.add((grp * cg + c) * plane);
                        fill_band::<S>(g, xin, y0, band_rows, cols, bp.add(c * chan_len));
                    }
                }
                while o < end {
                    let n = if end - o >= 4 { 4 } else { 1 };
                    // SAFETY: filters o..o + n and their output planes exist; the
                    // band's rows for y0..y1 are in the buffer.
                    unsafe {
                        let wo = w.add(o * taps);
                        let op = out.add(o * p);
                        let at = (bp as *const f32, chan_len, row_stride, cols);
                        if n == 4 {
                            grouped_pass::<K, S, 4>(g, at, wo, op, y0, y1);
                        } else {
                            grouped_pass::<K, S, 1>(g, at, wo, op, y0, y1);
                        }
                    }
                    o += n;
                }
            }
            done(o0, o1, y0 * g.ow, y1 * g.ow);
            y0 = y1;
        }
    });
}

/// Output rows `y0..y1` of `N` consecutive channels from the band at `at` = (buffer,
/// floats per input channel, floats per band row, columns per phase), in tiles of two
/// vectors of columns × `N` channels.
///
/// # Safety
/// AVX2 and FMA are available; `w` addresses the `N` channels' filters, `out` the first
/// one's output plane, and the band holds rows `y0·S ..` of every input channel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn grouped_pass<const K: usize, const S: usize, const N: usize>(
    g: &Geometry,
    at: (*const f32, usize, usize, usize),
    w: *const f32,
    out: *mut f32,
    y0: usize,
    y1: usize,
) {
    use std::arch::x86_64::*;
    let (bp, chan_len, row_stride, cols) = at;
    let (cg, p) = (g.group_channels, g.oh * g.ow);
    let taps = cg * K * K;
    // SAFETY (all accesses): band reads stay inside the rows `fill_band` wrote for this
    // band (row (y − y0)·S + ky < band_rows, column x0 + kx / S + 16 ≤ cols), filter
    // reads inside N·taps, output writes inside the N planes (masked past ow).
    unsafe {
        for y in y0..y1 {
            let r = (y - y0) * S;
            let mut x0 = 0;
            while x0 < g.ow {
                let mut acc = [[_mm256_setzero_ps(); 2]; N];
                for c in 0..cg {
                    for ky in 0..K {
                        let row = bp.add(c * chan_len + (r + ky) * row_stride);
                        for kx in 0..K {
                            let src = row.add((kx % S) * cols + x0 + kx / S);
                            let (v0, v1) = (_mm256_loadu_ps(src), _mm256_loadu_ps(src.add(8)));
                            let t = (c * K + ky) * K + kx;
                            for (n, a) in acc.iter_mut().enumerate() {
                                let wt = _mm256_broadcast_ss(&*w.add(n * taps + t));
                                a[0] = _mm256_fmadd_ps(wt, v0, a[0]);
                                a[1] = _mm256_fmadd_ps(wt, v1, a[1]);
                            }
                        }
                    }
                }
                for (n, a) in acc.iter().enumerate() {
                    let dst = out.add(n * p + y * g.ow);
                    for (u, v) in a.iter().enumerate() {
                        let c = x0 + 8 * u;
                        if c + 8 <= g.ow {
                            _mm256_storeu_ps(dst.add(c), *v);
                        } else if c < g.ow {
                            let mask = _mm256_cmpgt_epi32(
                                _mm256_set1_epi32((g.ow - c) as i32),
                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                            );
                            _mm256_maskstore_ps(dst.add(c), mask, *v);
                        }
                    }
                }
                x0 += 16;
            }
        }
    }
}

/// Copies the input rows of the band starting at output row `y0` into the buffer: row `j`
/// is padded input row `y0·S + j`, zero outside the input, its columns split by phase.
/// Only the positions of input columns are written (the same for every row), so the
/// padding columns keep the zeros the buffer was created with.
///
/// # Safety
/// AVX2 is available; `xin` addresses the `h × w` input plane and `bp` a zeroed-at-creation
/// buffer of `band_rows · S · cols` floats, `cols` enough for every padded column a tile
/// reads.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fill_band<const S: usize>(
    g: &Geometry,
    xin: *const f32,
    y0: usize,
    band_rows: usize,
    cols: usize,
    bp: *mut f32,
) {
    use std::arch::x86_64::*;
    let row_stride = S * cols;
    // Per phase: its first buffer column and how many input columns land in it (input
    // column `i` lands at padded column `i + pad`; those past `cols` are never read).
    let lanes = |q: usize| {
        // The first input column of phase q: the smallest i with (i + pad) % S == q.
        let i0 = (q + S - g.pad.1 % S) % S;
        let c0 = (i0 + g.pad.1) / S;
        let n = if i0 < g.w { (g.w - i0).div_ceil(S) } else { 0 };
        (i0, c0, n.min(cols.saturating_sub(c0)))
    };
    let phases: [(usize, usize, usize); S] = std::array::from_fn(lanes);
    // SAFETY (all accesses): input reads stay inside row `iy` of the plane (column
    // `i0 + S·k < w`), buffer writes inside each phase row (`c0 + k < cols`).
    unsafe {
        for j in 0..band_rows {
            let dst = bp.add(j * row_stride);
            let iy = (y0 * S + j).checked_sub(g.pad.0).filter(|&iy| iy < g.h);
            let src = iy.map(|iy| xin.add(iy * g.w));
            // Stride 2: both phases in one pass, two vectors of the row deinterleaved
            // into evens ([a0 a2 b0 b2 | a4 a6 b4 b6] permuted to [a0 a2 a4 a6 b0 b2 b4
            // b6]) and odds; each phase's tail below, from `start`.
            let mut start = [0usize; S];
            if let (2, Some(src)) = (S, src) {
                let (qe, qo) = if phases[0].0 == 0 { (0, 1) } else { (1, 0) };
                let ((_, ce, ne), (_, co, no)) = (phases[qe], phases[qo]);
                let (de, dodd) = (dst.add(qe * cols + ce), dst.add(qo * cols + co));
                let mut k = 0;
                while k + 8 <= ne.min(no) && 2 * k + 16 <= g.w {
                    let a = _mm256_loadu_ps(src.add(2 * k));
                    let b = _mm256_loadu_ps(src.add(2 * k + 8));
                    let ev = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
                    let od = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
                    let ev = _mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(ev));
                    let od = _mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(od));
                    _mm256_storeu_ps(de.add(k), _mm256_castpd_ps(ev));
                    _mm256_storeu_ps(dodd.add(k), _mm256_castpd_ps(od));
                    k += 8;
                }
                start = [k; S];
            }
            for (q, &(i0, c0, n)) in phases.iter().enumerate() {
                let d = dst.add(q * cols + c0);
                let Some(src) = src else {
                    let mut k = 0;
                    while k + 8 <= n {
                        _mm256_storeu_ps(d.add(k), _mm256_setzero_ps());
                        k += 8;
                    }
                    for k in k..n {
                        *d.add(k) = 0.0;
                    }
                    continue;
                };
                let src = src.add(i0);
                let mut k = start[q];
                if S == 1 {
                    while k + 8 <= n {
                        _mm256_storeu_ps(d.add(k), _mm256_loadu_ps(src.add(k)));
                        k += 8;
                    }
                }
                for k in k..n {
                    *d.add(k) = *src.add(S * k);
                }
            }
        }
    }
}
