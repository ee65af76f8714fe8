//! Direct 2-D convolution in NCHW for convolutions whose groups have few input channels:
//! depthwise (one per group) and grouped (RegNet's groups of 8, say), where im2col + GEMM
//! would multiply tiny matrices.
//!
//! `out[o][y][x] = Σ_{c,ky,kx} w[o][c][ky][kx] · in[g·cg + c][y·sh − ph + ky·dh][x·sw − pw + kx·dw]`
//! (zero outside the input), for output channels `o` of one image, where `g = o / mult` is
//! the group, `cg` its input channels and `mult` its output channels.
//!
//! Per group, its input planes are copied once into a zero-padded layout split by stride
//! phase (for stride `s`, `s × s` phases of every `s`-th row and column), so that every
//! tap is one contiguous multiply-add over the whole output plane, flattened: with the
//! phase's row stride as the output's, a tap at `(ky, kx)` reads the phase at a constant
//! offset for every output. Small planes (7×7, 14×14) thus still run long vector loops,
//! strides need no gathers, and borders need no per-tap clipping.
//!
//! Two other forms cover depthwise convolutions: channel-blocked (eight channels per
//! vector, for narrow planes) and [`Form::Rows`] (bands of output rows from an L1-resident
//! copy of their input rows, see `rows.rs`). [`form`] chooses by geometry and ISA only.
//!
//! Each output element sums its taps in `(c, ky, kx)` order, whatever rows or channels a
//! call covers.

use std::cell::RefCell;

/// Calls `$go!(K, S, D)` with the kernel size, stride and dilation of `$g` as literals
/// where the channel-blocked row tiles cover them (square 3/5/7 kernels at stride 1 or 2
/// without dilation, 3×3 and 5×5 at stride 1 with dilation 2), else evaluates `$else`.
macro_rules! row_tile_geometry {
    ($g:expr, $go:ident, $else:expr) => {
        match ($g.kh == $g.kw && $g.stride.0 == $g.stride.1 && $g.dilation.0 == $g.dilation.1)
            .then_some(($g.kh, $g.stride.0, $g.dilation.0))
        {
            Some((3, 1, 1)) => $go!(3, 1, 1),
            Some((3, 2, 1)) => $go!(3, 2, 1),
            Some((5, 1, 1)) => $go!(5, 1, 1),
            Some((5, 2, 1)) => $go!(5, 2, 1),
            Some((7, 1, 1)) => $go!(7, 1, 1),
            Some((7, 2, 1)) => $go!(7, 2, 1),
            // Dilated (DeepLab / LR-ASPP heads): stride 1, dilation 2.
            Some((3, 1, 2)) => $go!(3, 1, 2),
            Some((5, 1, 2)) => $go!(5, 1, 2),
            _ => $else,
        }
    };
}

mod rows;
#[cfg(target_arch = "x86_64")]
mod wide;

/// A vector of [`Lanes::L`] f32 lanes, one lane per channel of a block, for the
/// channel-blocked row tiles ([`blocked_rows`]): 8 lanes (AVX2) or 16 (AVX-512F). The
/// methods are inlined into callers compiled with the vector's target features.
#[cfg(target_arch = "x86_64")]
trait Lanes: Copy {
    /// Lanes (channels per block).
    const L: usize;
    /// # Safety
    /// The vector's target features are enabled in the caller.
    unsafe fn zero() -> Self;
    /// # Safety
    /// As for [`Lanes::zero`]; `p` addresses `L` floats.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// As for [`Lanes::load`], writable.
    unsafe fn store(p: *mut f32, v: Self);
    /// `a·b + c`, fused. # Safety: as for [`Lanes::zero`].
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
}

#[cfg(target_arch = "x86_64")]
impl Lanes for std::arch::x86_64::__m256 {
    const L: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: AVX is enabled in the caller (trait contract).
        unsafe { std::arch::x86_64::_mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: trait contract.
        unsafe { std::arch::x86_64::_mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        // SAFETY: trait contract.
        unsafe { std::arch::x86_64::_mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: FMA is enabled in the caller (trait contract).
        unsafe { std::arch::x86_64::_mm256_fmadd_ps(a, b, c) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Lanes for std::arch::x86_64::__m512 {
    const L: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: AVX-512F is enabled in the caller (trait contract).
        unsafe { std::arch::x86_64::_mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: trait contract.
        unsafe { std::arch::x86_64::_mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        // SAFETY: trait contract.
        unsafe { std::arch::x86_64::_mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: trait contract.
        unsafe { std::arch::x86_64::_mm512_fmadd_ps(a, b, c) }
    }
}

/// The geometry of a direct convolution (one image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Input height and width.
    pub h: usize,
    pub w: usize,
    /// Kernel height and width.
    pub kh: usize,
    pub kw: usize,
    /// Output height and width.
    pub oh: usize,
    pub ow: usize,
    /// Strides, dilations and begin pads: (height, width).
    pub stride: (usize, usize),
    pub dilation: (usize, usize),
    pub pad: (usize, usize),
    /// Input channels per group (1 for depthwise).
    pub group_channels: usize,
    /// Output channels per group (the depth multiplier for depthwise).
    pub multiplier: usize,
}

thread_local! {
    /// Phase-split input plane, [`OC`] output planes at the phases' row stride, tap
    /// offsets with one weight or with [`OC`].
    #[allow(clippy::type_complexity)]
    static WORK: RefCell<(Vec<f32>, Vec<f32>, Vec<(usize, f32)>, Vec<(usize, [f32; OC])>)> =
        const { RefCell::new((Vec::new(), Vec::new(), Vec::new(), Vec::new())) };
}

/// Output channels `o0..o1`, all rows, of one image.
///
/// # Safety
/// `x` addresses the image's `((o1 − 1) / multiplier + 1) · group_channels` input planes of
/// `h × w`, `w` the filters `[o][group_channels][kh][kw]` for every `o < o1`, and `out` the
/// image's output planes of `oh × ow` for every `o < o1`.
pub unsafe fn run(
    isa: crate::Isa,
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
) {
    // SAFETY: forwarded.
    unsafe { run_fused(isa, g, x, w, out, o0, o1, &mut |_, _, _, _| {}) }
}

/// [`run`], calling `done(a, b, p0, p1)` as soon as output elements `p0..p1` (of the
/// `oh · ow` of a plane) of channels `a..b` are final, while they are still in cache: an
/// epilogue run from `done` reads what the kernel just wrote. The calls cover every
/// element of `o0..o1` exactly once; how they split it depends on the form.
///
/// # Safety
/// As for [`run`]; `done` may read and write the finished elements it is given.
#[allow(clippy::too_many_arguments)]
pub unsafe fn run_fused(
    isa: crate::Isa,
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
    done: &mut dyn FnMut(usize, usize, usize, usize),
) {
    // SAFETY: forwarded.
    unsafe { run_form(isa, form(isa, g), g, x, w, out, o0, o1, done) }
}

/// How a direct convolution runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// Plane by plane (any grouping).
    Planes,
    /// Eight channels per vector (depthwise with multiplier 1 only).
    Blocked,
    /// Bands of output rows from an L1-resident copy of their input rows, a register
    /// tile of rows × columns (depthwise `K × K`, `K ∈ {3, 5, 7}`, stride 1 or 2; AVX2).
    Rows,
}

/// The form [`run`] takes for a geometry on an ISA. Depends on the geometry and the ISA
/// only, never on the channel range, so any split over threads takes the same path.
pub fn form(isa: crate::Isa, g: &Geometry) -> Form {
    // Measured with the kernels bench: row bands win on 3×3 planes from 16 wide and on
    // every grouped geometry from 16; the channel-blocked row tiles on depthwise 5×5 and
    // 7×7 kernels at any width (7×7 at 56×56: 76 against 55 GFLOP/s; 5×5 stride 2 onto
    // 14×14: 25–35 against 11–17) and on planes narrower than 16.
    let depthwise_large = g.kw > 3 && g.group_channels == 1 && g.multiplier == 1;
    let rows_win = g.ow >= 16 && (g.kw == 3 || g.group_channels > 1);
    if avx2(isa.or_portable()) && rows::supported(g) && rows_win && !depthwise_large {
        Form::Rows
    } else if channel_blocked(g) || depthwise_large && avx2(isa.or_portable()) {
        Form::Blocked
    } else {
        Form::Planes
    }
}

/// Every form that runs `g` on `isa` as itself rather than falling back to
/// [`Form::Planes`] (the latency search measures these): `Planes` always, `Blocked` for
/// depthwise with multiplier 1, `Rows` for the geometries the row bands cover under AVX2.
/// [`form`]'s choice is always among them.
pub fn forms(isa: crate::Isa, g: &Geometry) -> Vec<Form> {
    let mut out = vec![Form::Planes];
    if g.group_channels == 1 && g.multiplier == 1 {
        out.push(Form::Blocked);
    }
    if avx2(isa.or_portable()) && rows::supported(g) {
        out.push(Form::Rows);
    }
    out
}

/// [`run_fused`] in a given form (benchmarks compare them; `run` picks by [`form`]).
/// `Blocked` on a geometry that is not depthwise with multiplier 1 runs `Planes`, and so
/// does `Rows` without AVX2 or outside the geometries it covers.
///
/// # Safety
/// As for [`run_fused`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn run_form(
    isa: crate::Isa,
    form: Form,
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
    done: &mut dyn FnMut(usize, usize, usize, usize),
) {
    if o0 >= o1 {
        return;
    }
    let isa = isa.or_portable();
    let blocked = form == Form::Blocked && g.group_channels == 1 && g.multiplier == 1;
    let rows = form == Form::Rows && rows::supported(g) && avx2(isa);
    match isa {
        // SAFETY: AVX2 and FMA were detected; the rest is forwarded.
        #[cfg(target_arch = "x86_64")]
        crate::Isa::Avx2Fma | crate::Isa::Avx512 if rows => {
            return unsafe { rows::run_avx2(isa, g, x, w, out, o0, o1, done) };
        }
        #[cfg(target_arch = "x86_64")]
        crate::Isa::Avx2Fma | crate::Isa::Avx512 if blocked => unsafe {
            let avx512 = isa == crate::Isa::Avx512;
            // Whole blocks of sixteen channels in 16-wide vectors, the rest in eights.
            let from = if avx512 && wide::supported(g) {
                wide::run(g, x, w, out, o0, o1)
            } else {
                o0
            };
            if from < o1 {
                blocked_avx2(avx512, g, x, w, out, from, o1)
            }
        },
        #[cfg(target_arch = "x86_64")]
        crate::Isa::Avx2Fma | crate::Isa::Avx512 => {
            return unsafe { run_avx2(g, x, w, out, o0, o1, done) };
        }
        // SAFETY: forwarded.
        _ if blocked => unsafe { blocked_generic::<false>(g, x, w, out, o0, o1, blocked_portable) },
        // SAFETY: forwarded.
        _ => {
            return unsafe {
                run_generic(g, x, w, out, o0, o1, taps_portable, taps4_portable, done)
            };
        }
    }
    // The channel-blocked form reports its whole range at the end (callers keep ranges
    // to a cache-sized block of channels).
    done(o0, o1, 0, g.oh * g.ow);
}

/// Whether `isa` (already checked against this machine) runs the AVX2 kernels.
fn avx2(isa: crate::Isa) -> bool {
    isa.avx2()
}

/// Whether a convolution runs channel-blocked (eight channels per vector) rather than
/// plane by plane: depthwise with multiplier 1, strided or on planes narrower than
/// [`BLOCKED_MAX_WIDTH`], where a plane's fixed costs (its padded copy, tap list, short
/// vector runs) outweigh its few multiply-adds. Depends on the geometry only, never on the
/// channel range, so any split over threads takes the same path.
pub fn channel_blocked(g: &Geometry) -> bool {
    g.group_channels == 1 && g.multiplier == 1 && (g.ow < BLOCKED_MAX_WIDTH || g.stride.1 > 1)
}

/// Output width from which stride-1 depthwise planes run plane by plane (measured with
/// the kernels bench: the blocked form wins on 7×7 and 14×14 planes and on strided
/// ones, the plane form on 28×28 and wider at stride 1).
pub const BLOCKED_MAX_WIDTH: usize = 16;

/// Channels per block of the channel-blocked form (one 8-lane vector).
const CB: usize = 8;
/// Channels per block of the channel-blocked form on `isa`, for callers that split
/// channels into tasks: ranges of whole blocks keep every lane busy (sixteen where the
/// AVX-512 form runs `g`, else eight).
pub fn channel_block(isa: crate::Isa, g: &Geometry) -> usize {
    #[cfg(target_arch = "x86_64")]
    if isa.or_portable() == crate::Isa::Avx512 && wide::supported(g) {
        return 16;
    }
    let _ = (isa, g);
    CB
}
/// Output positions per register tile of the channel-blocked form (eight accumulator
/// chains cover the FMA latency).
const PX: usize = 8;

thread_local! {
    /// Channel-blocked scratch: padded input `[hp][wp][8]`, weights `[tap][8]`, output
    /// `[oh·ow][8]`.
    #[allow(clippy::type_complexity)]
    static BLOCKED: RefCell<(Vec<[f32; CB]>, Vec<[f32; CB]>, Vec<[f32; CB]>)> =
        const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// [`blocked_generic`] with the AVX2 core (its row tiles compiled for AVX-512VL's 32
/// registers where `wide`).
///
/// # Safety
/// AVX2 and FMA (and AVX-512F/VL where `wide`) are available; otherwise as for [`run`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn blocked_avx2(
    wide: bool,
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
) {
    // SAFETY: this function's target features make the core's requirement hold.
    let core = |g: &Geometry,
                wp: usize,
                xin: &[[f32; CB]],
                wts: &[[f32; CB]],
                acc: &mut [[f32; CB]]| unsafe {
        if !blocked_rows_avx2(wide, g, wp, xin, wts, acc) {
            blocked_core_avx2(g, wp, xin, wts, acc)
        }
    };
    // SAFETY: forwarded.
    unsafe { blocked_generic::<true>(g, x, w, out, o0, o1, core) }
}

/// The channel-blocked products in portable code: separate multiplies and adds.
fn blocked_portable(
    g: &Geometry,
    wp: usize,
    xin: &[[f32; CB]],
    wts: &[[f32; CB]],
    acc: &mut [[f32; CB]],
) {
    let (sh, sw) = g.stride;
    let (dh, dw) = g.dilation;
    for y in 0..g.oh {
        for xo in 0..g.ow {
            let mut a = [0f32; CB];
            for ky in 0..g.kh {
                let row = (y * sh + ky * dh) * wp + xo * sw;
                for kx in 0..g.kw {
                    let (wv, xv) = (&wts[ky * g.kw + kx], &xin[row + kx * dw]);
                    for l in 0..CB {
                        a[l] += wv[l] * xv[l];
                    }
                }
            }
            acc[y * g.ow + xo] = a;
        }
    }
}

/// The channel-blocked products with AVX2 FMAs: [`PX`] output positions per register
/// tile (consecutive in the flattened output, so a tile may span rows: eight independent
/// accumulator chains whatever the width), each tap's weight vector loaded once for all.
///
/// # Safety
/// AVX2 and FMA are available; `xin` is the padded `hp × wp` block for `g`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn blocked_core_avx2(
    g: &Geometry,
    wp: usize,
    xin: &[[f32; CB]],
    wts: &[[f32; CB]],
    acc: &mut [[f32; CB]],
) {
    use std::arch::x86_64::*;
    let (sh, sw) = g.stride;
    let (dh, dw) = g.dilation;
    let p = g.oh * g.ow;
    let (xp, wpt, ap) = (
        xin.as_ptr() as *const f32,
        wts.as_ptr() as *const f32,
        acc.as_mut_ptr() as *mut f32,
    );
    // Start of each output position's window in the padded block, and each tap's offset
    // from it (in floats), tabulated once: no division in the loops.
    let mut starts = Vec::with_capacity(p);
    for y in 0..g.oh {
        starts.extend((0..g.ow).map(|x| (y * sh * wp + x * sw) * CB));
    }
    let mut offs = Vec::with_capacity(g.kh * g.kw);
    for ky in 0..g.kh {
        offs.extend((0..g.kw).map(|kx| (ky * dh * wp + kx * dw) * CB));
    }
    // SAFETY (all accesses): every tap of every output position lies inside the padded
    // block (its size was derived from the geometry), every output inside `acc`.
    unsafe {
        let mut q0 = 0;
        while q0 < p {
            let n = PX.min(p - q0);
            let mut a = [_mm256_setzero_ps(); PX];
            let mut base = [0usize; PX];
            for (j, b) in base.iter_mut().enumerate() {
                *b = starts[q0 + j.min(n - 1)];
            }
            if n == PX {
                for (t, &off) in offs.iter().enumerate() {
                    let wv = _mm256_loadu_ps(wpt.add(t * CB));
                    let x = xp.add(off);
                    for j in 0..PX {
                        a[j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x.add(base[j])), a[j]);
                    }
                }
            } else {
                for (t, &off) in offs.iter().enumerate() {
                    let wv = _mm256_loadu_ps(wpt.add(t * CB));
                    let x = xp.add(off);
                    for j in 0..n {
                        a[j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x.add(base[j])), a[j]);
                    }
                }
            }
            for (j, v) in a.iter().enumerate().take(n) {
                _mm256_storeu_ps(ap.add((q0 + j) * CB), *v);
            }
            q0 += n;
        }
    }
}

/// Output positions per row tile of [`blocked_rows_avx2`].
const ROW_TILE: usize = 8;
/// Output positions per row tile with AVX-512VL's 32 registers on rows at least this
/// wide: sixteen accumulator chains (each output's taps are one dependent chain of
/// multiply-adds, so eight chains leave the FMA units waiting on latency).
const WIDE_ROW_TILE: usize = 16;
/// Output width from which the wide row tile runs (narrower rows would mostly compute
/// lanes past the row's end).
const WIDE_ROW_MIN: usize = 12;
/// Positions of slack the padded block keeps past its end for row tiles that overhang a
/// row (the most a tile reads past the row's last output: stride 2, a 7-wide kernel).
const ROW_TILE_SLACK: usize = 2 * WIDE_ROW_TILE + 8;

/// The channel-blocked products row by row for square 3/5/7 kernels at stride 1 or 2
/// without dilation, and 3×3 / 5×5 at stride 1 with dilation 2; false (nothing done) for
/// other geometries. Tiles of [`ROW_TILE`]
/// outputs of one row: per kernel row, its `K` weight vectors in registers and each
/// input vector loaded once, feeding every output of the tile that reads it (stride 1:
/// `ROW_TILE + K − 1` loads for `K·ROW_TILE` multiply-adds, against one load each in
/// [`blocked_core_avx2`]). Each output sums its taps in `(ky, kx)` order, as there.
///
/// With `wide`, the tiles are compiled for AVX-512VL: the same 8-lane instructions
/// with 32 registers, so the `K` weights, eight accumulators and the loaded column stay
/// in registers for every `K` (with 16, the 5×5 and 7×7 tiles spill accumulators to the
/// stack on every tap).
///
/// # Safety
/// AVX2 and FMA (and AVX-512F/VL where `wide`) are available; `xin` is the padded `hp ×
/// wp` block for `g` plus [`ROW_TILE_SLACK`] positions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn blocked_rows_avx2(
    wide: bool,
    g: &Geometry,
    wp: usize,
    xin: &[[f32; CB]],
    wts: &[[f32; CB]],
    acc: &mut [[f32; CB]],
) -> bool {
    debug_assert!(
        g.oh == 0
            || xin.len()
                >= ((g.oh - 1) * g.stride.0 + (g.kh - 1) * g.dilation.0 + 1) * wp + ROW_TILE_SLACK
    );
    let xin = xin.as_ptr() as *const f32;
    let wts = wts.as_ptr() as *const f32;
    let acc = acc.as_mut_ptr() as *mut f32;
    macro_rules! go {
        ($k:literal, $s:literal, $d:literal) => {
            // SAFETY: forwarded; AVX-512F/VL are available where `wide`.
            unsafe {
                if wide && g.ow >= WIDE_ROW_MIN {
                    blocked_rows_512::<$k, $s, $d, WIDE_ROW_TILE>(g, wp, xin, wts, acc)
                } else if wide {
                    blocked_rows_512::<$k, $s, $d, ROW_TILE>(g, wp, xin, wts, acc)
                } else {
                    blocked_rows_256::<$k, $s, $d>(g, wp, xin, wts, acc)
                }
            }
        };
    }
    row_tile_geometry!(g, go, return false);
    true
}

/// [`blocked_rows`] compiled for AVX2 and FMA (16 vector registers).
///
/// # Safety
/// As for [`blocked_rows`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn blocked_rows_256<const K: usize, const S: usize, const D: usize>(
    g: &Geometry,
    wp: usize,
    xin: *const f32,
    wts: *const f32,
    acc: *mut f32,
) {
    use std::arch::x86_64::__m256;
    // SAFETY: forwarded.
    unsafe { blocked_rows::<__m256, K, S, D, ROW_TILE>(g, wp, xin, wts, acc) }
}

/// [`blocked_rows`] compiled for AVX-512VL (32 vector registers, same instructions).
///
/// # Safety
/// As for [`blocked_rows`]; AVX-512F and AVX-512VL are available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
unsafe fn blocked_rows_512<const K: usize, const S: usize, const D: usize, const N: usize>(
    g: &Geometry,
    wp: usize,
    xin: *const f32,
    wts: *const f32,
    acc: *mut f32,
) {
    use std::arch::x86_64::__m256;
    // SAFETY: forwarded.
    unsafe { blocked_rows::<__m256, K, S, D, N>(g, wp, xin, wts, acc) }
}

/// The row tiles of [`blocked_rows_avx2`] for kernel size `K`, stride `S`, dilation `D`,
/// `N` outputs per tile, over blocks of `V::L` channels (`xin`, `wts` and `acc` hold `V::L`
/// floats per position or tap).
///
/// Inlined into [`blocked_rows_256`], [`blocked_rows_512`] and the 16-lane form's tiles
/// (`wide.rs`), which give it its target features.
///
/// # Safety
/// As for [`blocked_rows_avx2`] (`xin` the padded block plus [`ROW_TILE_SLACK`]
/// positions, `wts` the `K·K` taps, `acc` the `oh·ow` outputs), and the geometry has
/// these `K`, `S` and `D`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::needless_range_loop)] // kx indexes the weights and the loaded columns
unsafe fn blocked_rows<V: Lanes, const K: usize, const S: usize, const D: usize, const N: usize>(
    g: &Geometry,
    wp: usize,
    xp: *const f32,
    wpt: *const f32,
    ap: *mut f32,
) {
    // SAFETY (all accesses): a tile reads padded columns x0·S .. (x0 + N − 1)·S + (K −
    // 1)·D + 1 of its rows, inside the block or its slack; it stores only its outputs <
    // ow.
    unsafe {
        for y in 0..g.oh {
            let mut x0 = 0;
            while x0 < g.ow {
                let n = N.min(g.ow - x0);
                let mut a = [V::zero(); N];
                for ky in 0..K {
                    let w: [V; K] =
                        std::array::from_fn(|kx| V::load(wpt.add((ky * K + kx) * V::L)));
                    let row = xp.add(((y * S + ky * D) * wp + x0 * S) * V::L);
                    // Input column I of the tile feeds output j with I = j·S + kx·D, in
                    // ascending kx for each j; one call per column with I a constant,
                    // so every test and index below is resolved at compile time.
                    macro_rules! columns {
                        ($($i:literal)*) => {$(
                            if $i < (N - 1) * S + (K - 1) * D + 1 {
                                row_column::<V, K, S, D, N, $i>(&mut a, &w, row);
                            }
                        )*};
                    }
                    const {
                        assert!(
                            (N - 1) * S + (K - 1) * D < 37,
                            "a tile reads at most 37 columns"
                        )
                    };
                    columns!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25
                        26 27 28 29 30 31 32 33 34 35 36);
                }
                let dst = ap.add((y * g.ow + x0) * V::L);
                for (j, v) in a.iter().enumerate().take(n) {
                    V::store(dst.add(j * V::L), *v);
                }
                x0 += n;
            }
        }
    }
}

/// Column `I` of a row tile of [`blocked_rows`]: loaded once, multiplied into every
/// output `j < N` with `I = j·S + kx·D`.
///
/// # Safety
/// As for [`blocked_rows`]; `row` addresses the tile's first column in the padded block.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn row_column<
    V: Lanes,
    const K: usize,
    const S: usize,
    const D: usize,
    const N: usize,
    const I: usize,
>(
    a: &mut [V; N],
    w: &[V; K],
    row: *const f32,
) {
    // SAFETY: inside the block or its slack (caller's contract); the vector's features
    // are enabled in the caller, into which this is inlined.
    unsafe {
        let v = V::load(row.add(I * V::L));
        for (kx, w) in w.iter().enumerate() {
            if I >= kx * D && (I - kx * D).is_multiple_of(S) && (I - kx * D) / S < N {
                let j = (I - kx * D) / S;
                a[j] = V::fma(*w, v, a[j]);
            }
        }
    }
}

/// Depthwise (multiplier 1) in blocks of eight channels: the block's planes transposed
/// into one zero-padded `[row][column][channel]` buffer, so every tap of every output
/// pixel is one 8-lane multiply-add with no border test (`core`: [`blocked_portable`] or
/// [`blocked_core_avx2`]); the result transposed back into the planes. Each output sums
/// its taps in `(ky, kx)` order from zero, as [`run_generic`] does, fused exactly when the
/// plane form is (so both forms give the same bits per ISA).
///
/// # Safety
/// As for [`run`].
#[inline(always)]
#[allow(clippy::needless_range_loop)] // lanes index the inner [f32; 8] of each position
unsafe fn blocked_generic<const AVX: bool>(
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
    core: impl Fn(&Geometry, usize, &[[f32; CB]], &[[f32; CB]], &mut [[f32; CB]]),
) {
    if g.oh == 0 || g.ow == 0 || g.kh == 0 || g.kw == 0 || o0 >= o1 {
        return;
    }
    let (sh, sw) = g.stride;
    let (dh, dw) = g.dilation;
    let hp = (g.oh - 1) * sh + (g.kh - 1) * dh + 1;
    let wp = (g.ow - 1) * sw + (g.kw - 1) * dw + 1;
    let (plane, p, taps) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    BLOCKED.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (xin, wts, acc) = &mut *cell;
        // Slack past the last row: a row tile of `blocked_rows_avx2` reads whole tiles.
        xin.resize(hp * wp + ROW_TILE_SLACK, [0.0; CB]);
        wts.resize(taps, [0.0; CB]);
        acc.resize(p, [0.0; CB]);
        // Padded rows and columns outside the input stay zero for every block (each block
        // writes the same interior positions); lanes past a ragged last block's channels
        // hold stale values that reach no output.
        xin.fill([0.0; CB]);
        let mut c0 = o0;
        while c0 < o1 {
            let lanes = CB.min(o1 - c0);
            // SAFETY: planes c0..c0 + lanes exist (caller's contract).
            let xb = unsafe { x.add(c0 * plane) };
            if AVX && lanes == CB {
                // SAFETY: AVX2 is available (AVX is only set by `blocked_avx2`); eight planes.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    transpose_in_avx2(g, xb, hp, wp, xin)
                };
            } else {
                for l in 0..lanes {
                    // SAFETY: plane c0 + l exists (caller's contract).
                    let xp = unsafe { std::slice::from_raw_parts(xb.add(l * plane), plane) };
                    for iy in 0..g.h.min(hp.saturating_sub(g.pad.0)) {
                        let r = iy + g.pad.0;
                        let row = &xp[iy * g.w..(iy + 1) * g.w];
                        for (ix, &v) in row.iter().enumerate().take(wp.saturating_sub(g.pad.1)) {
                            xin[r * wp + ix + g.pad.1][l] = v;
                        }
                    }
                }
            }
            for l in 0..lanes {
                // SAFETY: filter c0 + l exists (caller's contract).
                let wf = unsafe { std::slice::from_raw_parts(w.add((c0 + l) * taps), taps) };
                for (t, &v) in wf.iter().enumerate() {
                    wts[t][l] = v;
                }
            }
            core(g, wp, xin, wts, acc);
            // SAFETY: output planes c0..c0 + lanes exist (caller's contract).
            let ob = unsafe { out.add(c0 * p) };
            if AVX && lanes == CB {
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    transpose_out_avx2(acc, ob, p)
                };
            } else {
                for l in 0..lanes {
                    // SAFETY: output plane c0 + l exists (caller's contract).
                    let op = unsafe { std::slice::from_raw_parts_mut(ob.add(l * p), p) };
                    for (o, v) in op.iter_mut().zip(acc.iter()) {
                        *o = v[l];
                    }
                }
            }
            c0 += lanes;
        }
    });
}

/// The padded block index of each flat input position in turn (None: outside the
/// `hp × wp` block), walked one position at a time without divisions.
fn padded_positions(g: &Geometry, hp: usize, wp: usize) -> impl FnMut() -> Option<usize> + '_ {
    let (mut iy, mut ix) = (0usize, 0usize);
    move || {
        let (r, c) = (iy + g.pad.0, ix + g.pad.1);
        ix += 1;
        if ix == g.w {
            (iy, ix) = (iy + 1, 0);
        }
        (r < hp && c < wp).then_some(r * wp + c)
    }
}

/// Eight planes at `xb` (`h × w` each, consecutive) into the interior of the padded
/// block: eight flat positions at a time by 8×8 transposes, the plane's tail one
/// position at a time.
///
/// # Safety
/// AVX2 is available; `xb` addresses eight planes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::needless_range_loop)] // lanes index the inner [f32; 8] of each position
unsafe fn transpose_in_avx2(
    g: &Geometry,
    xb: *const f32,
    hp: usize,
    wp: usize,
    xin: &mut [[f32; CB]],
) {
    use std::arch::x86_64::*;
    let plane = g.h * g.w;
    let mut next = padded_positions(g, hp, wp);
    let mut f = 0;
    // SAFETY (all accesses): f + 8 ≤ plane for the vector loads; destinations checked.
    unsafe {
        while f + CB <= plane {
            let rows: [__m256; 8] = std::array::from_fn(|l| _mm256_loadu_ps(xb.add(l * plane + f)));
            let cols = crate::transpose::transpose8(rows);
            for v in &cols {
                if let Some(d) = next() {
                    _mm256_storeu_ps(xin[d].as_mut_ptr(), *v);
                }
            }
            f += CB;
        }
        while f < plane {
            if let Some(d) = next() {
                for l in 0..CB {
                    xin[d][l] = *xb.add(l * plane + f);
                }
            }
            f += 1;
        }
    }
}

/// The block's outputs `acc` (`p` positions × 8 channels) into eight output planes at
/// `ob`, by 8×8 transposes.
///
/// # Safety
/// AVX2 is available; `ob` addresses eight planes of `p`; `acc` holds `p` positions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::needless_range_loop)] // lanes index the inner [f32; 8] of each position
unsafe fn transpose_out_avx2(acc: &[[f32; CB]], ob: *mut f32, p: usize) {
    use std::arch::x86_64::*;
    let mut f = 0;
    // SAFETY (all accesses): f + 8 ≤ p for the vector accesses.
    unsafe {
        while f + CB <= p {
            let rows: [__m256; 8] = std::array::from_fn(|j| _mm256_loadu_ps(acc[f + j].as_ptr()));
            let cols = crate::transpose::transpose8(rows);
            for (l, v) in cols.iter().enumerate() {
                _mm256_storeu_ps(ob.add(l * p + f), *v);
            }
            f += CB;
        }
        while f < p {
            for l in 0..CB {
                *ob.add(l * p + f) = acc[f][l];
            }
            f += 1;
        }
    }
}

/// `out[i] = Σ_t w_t · src[off_t + i]` for `i < out.len()`, taps in order, separate
/// multiplies and adds, 8 outputs at a time in registers (auto-vectorized).
#[inline(always)]
fn taps_portable(src: &[f32], taps: &[(usize, f32)], out: &mut [f32]) {
    let n = out.len();
    let mut i = 0;
    while i + 8 <= n {
        let mut acc = [0f32; 8];
        for &(off, wt) in taps {
            let s = &src[off + i..off + i + 8];
            for (a, &v) in acc.iter_mut().zip(s) {
                *a += wt * v;
            }
        }
        out[i..i + 8].copy_from_slice(&acc);
        i += 8;
    }
    for (j, o) in out.iter_mut().enumerate().skip(i) {
        *o = taps.iter().fold(0.0, |a, &(off, wt)| a + wt * src[off + j]);
    }
}

/// [`taps_portable`] with fused multiply-adds: 32 outputs in four registers across all
/// taps, then 8, then one at a time (`mul_add`, the same rounding as the vector lanes).
///
/// # Safety
/// AVX2 and FMA are available; `off_t + out.len() ≤ src.len()` for every tap.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn taps_avx2(src: &[f32], taps: &[(usize, f32)], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = out.len();
    let (s, o) = (src.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    // SAFETY (all accesses): i + width ≤ n and off + n ≤ src.len() (caller's contract).
    unsafe {
        while i + 32 <= n {
            let mut a = [_mm256_setzero_ps(); 4];
            for &(off, wt) in taps {
                let w = _mm256_set1_ps(wt);
                let p = s.add(off + i);
                a[0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(p), a[0]);
                a[1] = _mm256_fmadd_ps(w, _mm256_loadu_ps(p.add(8)), a[1]);
                a[2] = _mm256_fmadd_ps(w, _mm256_loadu_ps(p.add(16)), a[2]);
                a[3] = _mm256_fmadd_ps(w, _mm256_loadu_ps(p.add(24)), a[3]);
            }
            for (v, x) in a.iter().enumerate() {
                _mm256_storeu_ps(o.add(i + 8 * v), *x);
            }
            i += 32;
        }
        while i + 8 <= n {
            let mut a = _mm256_setzero_ps();
            for &(off, wt) in taps {
                a = _mm256_fmadd_ps(_mm256_set1_ps(wt), _mm256_loadu_ps(s.add(off + i)), a);
            }
            _mm256_storeu_ps(o.add(i), a);
            i += 8;
        }
        while i < n {
            *o.add(i) = taps
                .iter()
                .fold(0.0f32, |a, &(off, wt)| wt.mul_add(*s.add(off + i), a));
            i += 1;
        }
    }
}

/// Output channels per pass of [`run_generic`] when a group has several: each loaded
/// input vector feeds this many channels' accumulators.
const OC: usize = 4;

/// [`taps_portable`] for [`OC`] output channels over the same input (`out` holds `OC`
/// runs of `run` outputs, one per channel), one channel after another.
fn taps4_portable(src: &[f32], taps: &[(usize, [f32; OC])], out: &mut [f32], run: usize) {
    let mut one = Vec::with_capacity(taps.len());
    for (k, o) in out.chunks_exact_mut(run).take(OC).enumerate() {
        one.clear();
        one.extend(taps.iter().map(|&(off, w)| (off, w[k])));
        taps_portable(src, &one, o);
    }
}

/// [`taps_avx2`] for [`OC`] output channels: two vectors of outputs for all four
/// channels (eight accumulators, no spills) per pass over the taps, so each input load
/// serves four multiply-adds; every output sums its taps in the same order as
/// [`taps_avx2`] (same bits).
///
/// # Safety
/// AVX2 and FMA are available; `off_t + run ≤ src.len()` for every tap; `out` holds
/// `OC · run` outputs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn taps4_avx2(src: &[f32], taps: &[(usize, [f32; OC])], out: &mut [f32], run: usize) {
    use std::arch::x86_64::*;
    debug_assert!(out.len() >= OC * run);
    let (s, o) = (src.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    // SAFETY (all accesses): i + width ≤ run, off + run ≤ src.len() (caller's contract),
    // and channel k's outputs lie at k·run.. in `out`.
    unsafe {
        while i + 16 <= run {
            let mut a = [[_mm256_setzero_ps(); 2]; OC];
            for (off, w) in taps {
                let p = s.add(off + i);
                let x = [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))];
                for k in 0..OC {
                    let wk = _mm256_set1_ps(w[k]);
                    for v in 0..2 {
                        a[k][v] = _mm256_fmadd_ps(wk, x[v], a[k][v]);
                    }
                }
            }
            for (k, ak) in a.iter().enumerate() {
                for (v, x) in ak.iter().enumerate() {
                    _mm256_storeu_ps(o.add(k * run + i + 8 * v), *x);
                }
            }
            i += 16;
        }
        while i + 8 <= run {
            let mut a = [_mm256_setzero_ps(); OC];
            for (off, w) in taps {
                let x = _mm256_loadu_ps(s.add(off + i));
                for k in 0..OC {
                    a[k] = _mm256_fmadd_ps(_mm256_set1_ps(w[k]), x, a[k]);
                }
            }
            for (k, x) in a.iter().enumerate() {
                _mm256_storeu_ps(o.add(k * run + i), *x);
            }
            i += 8;
        }
        while i < run {
            for k in 0..OC {
                *o.add(k * run + i) = taps
                    .iter()
                    .fold(0.0f32, |a, &(off, w)| w[k].mul_add(*s.add(off + i), a));
            }
            i += 1;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
    done: &mut dyn FnMut(usize, usize, usize, usize),
) {
    // SAFETY: this function's target features make taps_avx2's requirement hold; run_generic
    // passes runs inside the split plane.
    let taps = |src: &[f32], t: &[(usize, f32)], acc: &mut [f32]| unsafe { taps_avx2(src, t, acc) };
    // SAFETY: as above; run_generic passes `OC · run` outputs.
    let taps4 = |src: &[f32], t: &[(usize, [f32; OC])], acc: &mut [f32], run: usize| unsafe {
        taps4_avx2(src, t, acc, run)
    };
    // SAFETY: forwarded.
    unsafe { run_generic(g, x, w, out, o0, o1, taps, taps4, done) }
}

/// The padded, phase-split layout of one input plane: phase `(py, px)` holds padded rows
/// `py, py + sh, ...` and columns `px, px + sw, ...`, each phase `ph × pw` elements with
/// `pw` its row stride, so tap `(ky, kx)` of every output reads phase
/// `(ky·dh mod sh, kx·dw mod sw)` at row `y + ky·dh / sh`, column `x + kx·dw / sw`.
struct Phases {
    rows: usize,
    cols: usize,
}

impl Phases {
    fn of(g: &Geometry) -> Phases {
        let (sh, sw) = g.stride;
        // Enough padded rows and columns for every tap of every output, plus the extra
        // columns a flat run over a whole row of the phase computes.
        let hp = (g.oh - 1) * sh + (g.kh - 1) * g.dilation.0 + 1;
        let wp = (g.ow - 1) * sw + (g.kw - 1) * g.dilation.1 + 1;
        Phases {
            rows: hp.div_ceil(sh) + 1,
            cols: wp.div_ceil(sw),
        }
    }
}

/// Copies `xin` into the padded phases of `split` (zeros elsewhere).
fn split_plane(g: &Geometry, ph: &Phases, xin: &[f32], split: &mut [f32]) {
    let (sh, sw) = g.stride;
    let phase_len = ph.rows * ph.cols;
    split.fill(0.0);
    for pr in 0..sh {
        for pc in 0..sw {
            let base = (pr * sw + pc) * phase_len;
            for r in 0..ph.rows {
                // Padded row r·sh + pr is input row r·sh + pr − pad.
                let Some(iy) = (r * sh + pr).checked_sub(g.pad.0).filter(|&iy| iy < g.h) else {
                    continue;
                };
                let row = &xin[iy * g.w..(iy + 1) * g.w];
                let dst = &mut split[base + r * ph.cols..base + (r + 1) * ph.cols];
                // Padded column c·sw + pc is input column c·sw + pc − pad.
                let c0 = g.pad.1.saturating_sub(pc).div_ceil(sw);
                if sw == 1 {
                    // Stride 1 has one phase column: the row lands at column `pad`, whole
                    // or cut at the phase's width.
                    let len = g.w.min(dst.len().saturating_sub(c0));
                    dst[c0..c0 + len].copy_from_slice(&row[..len]);
                    continue;
                }
                // Phase columns c0.. read input columns c0·sw + pc − pad, every sw-th.
                let Some(first) = (c0 * sw + pc).checked_sub(g.pad.1).filter(|&i| i < g.w) else {
                    continue;
                };
                if sw == 2 {
                    // Fixed-size pairs: the compiler turns this into vector shuffles.
                    let (pairs, rest) = row[first..].as_chunks::<2>();
                    let d = &mut dst[c0..];
                    let n = pairs.len().min(d.len());
                    for (d, p) in d[..n].iter_mut().zip(pairs) {
                        *d = p[0];
                    }
                    if let (Some(d), Some(&v)) = (d.get_mut(n), rest.first()) {
                        *d = v;
                    }
                    continue;
                }
                for (d, &v) in dst[c0..].iter_mut().zip(row[first..].iter().step_by(sw)) {
                    *d = v;
                }
            }
        }
    }
}

/// Each output channel: copy its input plane into the padded phases (zeros outside the
/// input), then per tap one multiply-add over a flat run of `oh` phase rows (computing
/// `cols − ow` unused columns per row, which keeps every run long and contiguous), then
/// copy the valid columns out. Where [`OC`] channels of one group remain, they run
/// together (`taps4_fn`), each input load feeding all of them.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn run_generic(
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
    taps_fn: impl Fn(&[f32], &[(usize, f32)], &mut [f32]) + Copy,
    taps4_fn: impl Fn(&[f32], &[(usize, [f32; OC])], &mut [f32], usize) + Copy,
    done: &mut dyn FnMut(usize, usize, usize, usize),
) {
    if g.oh == 0 || g.ow == 0 || g.kh == 0 || g.kw == 0 {
        done(o0, o1, 0, g.oh * g.ow);
        return;
    }
    let (sh, sw) = g.stride;
    let (dh, dw) = g.dilation;
    let plane = g.h * g.w;
    let ph = Phases::of(g);
    let phase_len = ph.rows * ph.cols;
    // Rounded up to whole vectors: the extra outputs are computed and dropped.
    let run = (g.oh * ph.cols).next_multiple_of(8);
    WORK.with(|work| {
        let mut work = work.borrow_mut();
        let (split, acc, taps, taps4) = &mut *work;
        let cg = g.group_channels.max(1);
        let mult = g.multiplier.max(1);
        // One block of phases per input channel of the group; the last tap's run ends at
        // most one phase row (plus the rounding) past its block.
        let block = sh * sw * phase_len;
        // split_plane writes every element of its blocks, and the taps overwrite the
        // accumulators: only the tail past the blocks needs zeros (a long run's dropped
        // outputs read it), so nothing is cleared twice.
        split.truncate(cg * block + ph.cols + 8);
        split.resize(cg * block + ph.cols + 8, 0.0);
        split[cg * block..].fill(0.0);
        acc.truncate(OC * run);
        acc.resize(OC * run, 0.0);
        let mut split_of = usize::MAX;
        let taps_per_channel = g.kh * g.kw;
        // Each tap's start in the split planes, in (c, ky, kx) order.
        let starts: Vec<usize> = (0..cg)
            .flat_map(|c| {
                (0..g.kh).flat_map(move |ky| {
                    (0..g.kw).map(move |kx| {
                        let (ty, tx) = (ky * dh, kx * dw);
                        let phase = (ty % sh) * sw + tx % sw;
                        c * block + phase * phase_len + (ty / sh) * ph.cols + tx / sw
                    })
                })
            })
            .collect();
        let mut o = o0;
        while o < o1 {
            let grp = o / mult;
            if split_of != grp {
                for c in 0..cg {
                    let ci = grp * cg + c;
                    // SAFETY: input plane ci exists (caller's contract).
                    let xin = unsafe { std::slice::from_raw_parts(x.add(ci * plane), plane) };
                    split_plane(g, &ph, xin, &mut split[c * block..(c + 1) * block]);
                }
                split_of = grp;
            }
            // Channels of this group left in the range: OC at once where there are as many.
            let n = if ((grp + 1) * mult).min(o1) - o >= OC {
                OC
            } else {
                1
            };
            // SAFETY: filters o..o + n have cg·kh·kw taps each (caller's contract).
            let wo = unsafe {
                std::slice::from_raw_parts(
                    w.add(o * cg * taps_per_channel),
                    n * cg * taps_per_channel,
                )
            };
            let per = cg * taps_per_channel;
            if n == OC {
                taps4.clear();
                taps4.extend(
                    starts
                        .iter()
                        .enumerate()
                        .map(|(t, &st)| (st, std::array::from_fn(|k| wo[k * per + t]))),
                );
                taps4_fn(split, taps4, acc, run);
            } else {
                taps.clear();
                taps.extend(starts.iter().zip(wo).map(|(&st, &wt)| (st, wt)));
                taps_fn(split, taps, &mut acc[..run]);
            }
            for k in 0..n {
                // SAFETY: output plane o + k has oh·ow elements (caller's contract).
                let oplane = unsafe {
                    std::slice::from_raw_parts_mut(out.add((o + k) * g.oh * g.ow), g.oh * g.ow)
                };
                let ak = &acc[k * run..(k + 1) * run];
                for y in 0..g.oh {
                    oplane[y * g.ow..(y + 1) * g.ow]
                        .copy_from_slice(&ak[y * ph.cols..y * ph.cols + g.ow]);
                }
            }
            done(o, o + n, 0, g.oh * g.ow);
            o += n;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Isa;

    /// `groups` groups of `g.group_channels` input channels.
    fn reference(g: &Geometry, groups: usize, x: &[f32], w: &[f32]) -> Vec<f64> {
        let (cg, oc) = (g.group_channels, groups * g.multiplier);
        let mut out = vec![0f64; oc * g.oh * g.ow];
        for o in 0..oc {
            let grp = o / g.multiplier;
            for y in 0..g.oh {
                for xo in 0..g.ow {
                    let mut s = 0f64;
                    for c in 0..cg {
                        let ci = grp * cg + c;
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (y * g.stride.0 + ky * g.dilation.0) as isize
                                    - g.pad.0 as isize;
                                let ix = (xo * g.stride.1 + kx * g.dilation.1) as isize
                                    - g.pad.1 as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w
                                {
                                    s += w[((o * cg + c) * g.kh + ky) * g.kw + kx] as f64
                                        * x[(ci * g.h + iy as usize) * g.w + ix as usize] as f64;
                                }
                            }
                        }
                    }
                    out[(o * g.oh + y) * g.ow + xo] = s;
                }
            }
        }
        out
    }

    /// Channels `o0..o1` of all `oc` in `form`, into a NaN-filled output, checking that
    /// `done` reports each element of the range exactly once and nothing outside it.
    fn run_checked(
        isa: Isa,
        form: Form,
        g: &Geometry,
        (x, w): (&[f32], &[f32]),
        oc: usize,
        (o0, o1): (usize, usize),
    ) -> Vec<f32> {
        let p = g.oh * g.ow;
        let (mut out, mut seen) = (vec![f32::NAN; oc * p], vec![0u8; oc * p]);
        // SAFETY: the buffers hold the groups' inputs, oc filters and oc output planes.
        unsafe {
            run_form(
                isa,
                form,
                g,
                x.as_ptr(),
                w.as_ptr(),
                out.as_mut_ptr(),
                o0,
                o1,
                &mut |a, b, p0, p1| {
                    assert!(o0 <= a && a < b && b <= o1 && p0 < p1 && p1 <= p, "{g:?}");
                    for o in a..b {
                        seen[o * p + p0..o * p + p1]
                            .iter_mut()
                            .for_each(|n| *n += 1);
                    }
                },
            )
        };
        let want = |i: usize| u8::from((o0 * p..o1 * p).contains(&i));
        assert!(
            seen.iter().enumerate().all(|(i, &n)| n == want(i)),
            "{g:?} {isa:?} {form:?}: done covers each element of the range once"
        );
        out
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{what} at {i}: {a} vs {b}"
            );
        }
    }

    fn out_dim(i: usize, k: usize, s: usize, d: usize, p0: usize, p1: usize) -> usize {
        (i + p0 + p1 - d * (k - 1) - 1) / s + 1
    }

    /// Borders, strides 1–3, dilation, asymmetric padding, multipliers, odd sizes, both
    /// ISAs, and channel ranges (a split over threads) giving the same bits.
    #[test]
    fn matches_a_f64_reference_at_every_border() {
        let cases = [
            // (groups, h, w, k, stride, dilation, pads begin, pads end, multiplier, cg)
            (3, 7, 9, 3, 1, 1, 1, 1, 1, 1),
            (2, 8, 8, 3, 2, 1, 1, 1, 1, 1),
            (2, 11, 13, 5, 2, 1, 2, 2, 1, 1),
            (1, 9, 10, 7, 1, 1, 3, 3, 2, 1),
            (2, 6, 17, 3, 3, 2, 0, 2, 1, 1),
            (1, 5, 5, 5, 1, 1, 0, 0, 1, 1),
            (1, 3, 4, 3, 1, 1, 2, 2, 1, 1),
            // Channel-blocked: a ragged last block of lanes, strides and dilation.
            (11, 6, 7, 3, 1, 1, 1, 1, 1, 1),
            (17, 9, 9, 5, 2, 1, 2, 2, 1, 1),
            (9, 10, 12, 3, 1, 2, 2, 2, 1, 1),
            // Row tiles of the blocked form: a tile and a tail, a tail alone, stride 2.
            (13, 5, 15, 3, 1, 1, 1, 1, 1, 1),
            (8, 6, 3, 5, 1, 1, 2, 2, 1, 1),
            (9, 21, 19, 7, 2, 1, 3, 3, 1, 1),
            (8, 11, 14, 5, 2, 1, 2, 1, 1, 1),
            // Dilated row tiles (LR-ASPP's 5×5, dilation 2): a 16-wide tile over 14
            // outputs, an 8-wide tile, and a tile plus a tail of a ragged block (3×3).
            (16, 14, 14, 5, 1, 2, 4, 4, 1, 1),
            (8, 7, 7, 5, 1, 2, 4, 4, 1, 1),
            (9, 10, 30, 3, 1, 2, 2, 2, 1, 1),
            // Plane by plane: depthwise planes at least BLOCKED_MAX_WIDTH wide.
            (3, 5, 40, 3, 1, 1, 1, 1, 1, 1),
            (2, 4, 20, 3, 1, 2, 2, 2, 1, 1),
            // Grouped: RegNet-like groups of several channels, strided, with multipliers.
            (3, 7, 7, 3, 1, 1, 1, 1, 4, 4),
            (2, 9, 8, 3, 2, 1, 1, 1, 3, 2),
            (2, 6, 6, 1, 1, 1, 0, 0, 2, 3),
            // Four output channels at a time: an RGB stem (one group), a multiplier of
            // four plus a tail, and groups of eight with long runs (the 16-wide loop).
            (1, 17, 15, 3, 2, 1, 1, 1, 16, 3),
            (2, 7, 9, 3, 1, 1, 1, 1, 5, 2),
            (2, 12, 14, 3, 1, 1, 1, 1, 8, 8),
        ];
        let mut forms = [0usize; 2];
        for &(c, h, w, k, s, d, p0, p1, mult, cg) in &cases {
            let g = Geometry {
                h,
                w,
                kh: k,
                kw: k,
                oh: out_dim(h, k, s, d, p0, p1),
                ow: out_dim(w, k, s, d, p0, p1),
                stride: (s, s),
                dilation: (d, d),
                pad: (p0, p0),
                group_channels: cg,
                multiplier: mult,
            };
            let x: Vec<f32> = (0..c * cg * h * w)
                .map(|i| ((i * 37 % 19) as f32) / 9.0 - 1.0)
                .collect();
            let oc = c * mult;
            let wt: Vec<f32> = (0..oc * cg * k * k)
                .map(|i| ((i * 11 % 7) as f32) / 3.0 - 1.0)
                .collect();
            forms[usize::from(channel_blocked(&g))] += 1;
            let want = reference(&g, c, &x, &wt);
            for isa in Isa::available() {
                let form = form(isa, &g);
                let out = run_checked(isa, form, &g, (&x, &wt), oc, (0, oc));
                assert_close(&out, &want, &format!("{g:?} {isa:?}"));
                if cg == 1 && mult == 1 {
                    let other = [Form::Planes, Form::Blocked][usize::from(form == Form::Planes)];
                    let alt = run_checked(isa, other, &g, (&x, &wt), oc, (0, oc));
                    assert_eq!(
                        alt, out,
                        "{g:?} {isa:?}: the blocked and plane forms differ"
                    );
                }
                let mut split = vec![f32::NAN; out.len()];
                for o in 0..oc {
                    // SAFETY: as above, one channel at a time.
                    unsafe {
                        run(
                            isa,
                            &g,
                            x.as_ptr(),
                            wt.as_ptr(),
                            split.as_mut_ptr(),
                            o,
                            o + 1,
                        )
                    };
                }
                assert_eq!(split, out, "{g:?}: a channel split changes results");
            }
        }
        assert!(
            forms.iter().all(|&n| n >= 4),
            "both forms are covered: {forms:?}"
        );
    }

    /// The row form on every kernel size and stride it covers, at widths that leave
    /// every remainder of a tile (masked stores), planes shorter than the kernel, begin
    /// pads from 0 to k − 1, multipliers: the f64 reference, the plane form's bits, and a
    /// `done` that sees every element once, already final.
    #[test]
    #[allow(clippy::print_stderr)] // says loudly that it could not run
    fn row_form_matches_the_reference_and_reports_every_element_once() {
        if !avx2(Isa::detect()) {
            eprintln!("row form not tested: this machine has no AVX2+FMA");
            return;
        }
        let mut ran = 0;
        for k in [3, 5, 7] {
            for s in [1, 2] {
                // (groups, h, w, begin pad, multiplier, input channels per group): the
                // last three are grouped (an RGB stem, a tail of one channel after four,
                // RegNet-like groups of eight).
                for (c, h, w, p, mult, cg) in [
                    (3, 9, 17, k / 2, 1, 1),
                    (2, 12, 33, k / 2, 1, 1),
                    (1, k, 44, 0, 1, 1),
                    (2, 3, 23, k - 1, 2, 1),
                    (5, 16, 16, 1, 1, 1),
                    (1, 40, 70, k / 2, 3, 1),
                    (1, 30, 37, k / 2, 16, 3),
                    (2, 11, 19, k - 1, 5, 2),
                    (2, 9, 18, k / 2, 8, 8),
                ] {
                    let (oh, ow) = (out_dim(h, k, s, 1, p, p), out_dim(w, k, s, 1, p, p));
                    let g = Geometry {
                        h,
                        w,
                        kh: k,
                        kw: k,
                        oh,
                        ow,
                        stride: (s, s),
                        dilation: (1, 1),
                        pad: (p, p),
                        group_channels: cg,
                        multiplier: mult,
                    };
                    assert!(rows::supported(&g), "{g:?}");
                    let x: Vec<f32> = (0..c * cg * h * w)
                        .map(|i| ((i * 37 % 19) as f32) / 9.0 - 1.0)
                        .collect();
                    let oc = c * mult;
                    let wt: Vec<f32> = (0..oc * cg * k * k)
                        .map(|i| ((i * 11 % 7) as f32) / 3.0 - 0.9)
                        .collect();
                    let want = reference(&g, c, &x, &wt);
                    let p_out = oh * ow;
                    // AVX2 and, where detected, the AVX-512VL variant.
                    for isa in Isa::available().into_iter().filter(|i| i.avx2()) {
                        let out = run_checked(isa, Form::Rows, &g, (&x, &wt), oc, (0, oc));
                        assert_close(&out, &want, &format!("{g:?} {isa:?}"));
                        let planes = run_checked(isa, Form::Planes, &g, (&x, &wt), oc, (0, oc));
                        assert_eq!(
                            planes, out,
                            "{g:?}: the row form sums as the plane form does"
                        );
                        // A split over threads: the last channel alone.
                        let last = run_checked(isa, Form::Rows, &g, (&x, &wt), oc, (oc - 1, oc));
                        let (before, mine) = last.split_at((oc - 1) * p_out);
                        assert!(
                            before.iter().all(|v| v.is_nan()),
                            "{g:?}: wrote outside o0..o1"
                        );
                        assert_eq!(mine, &out[(oc - 1) * p_out..], "{g:?}: channel split");
                    }
                    ran += 1;
                }
            }
        }
        assert_eq!(ran, 54);
    }
}
