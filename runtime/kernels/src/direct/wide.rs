//! The channel-blocked form with 16-wide AVX-512 vectors: sixteen channels per vector,
//! each padded position one 64-byte line (so every load of the row tiles is aligned).
//!
//! The same algorithm as the 8-channel form in the parent module: a block's planes are
//! transposed into a zero-padded `[row][column][channel]` buffer, row tiles of output
//! positions take every input vector once per kernel row with the `K` weights in
//! registers, and the result is transposed back into the planes. Each lane runs the
//! exact multiply-add chain of the 8-lane form (taps in `(ky, kx)` order from zero), so
//! results are the same bits; on cores with two 512-bit FMA units it does twice the work
//! per instruction.
//!
//! Covered geometries are those of the parent's row tiles ([`supported`]); channels past
//! the last whole block of sixteen are left to the 8-channel form.

use std::arch::x86_64::*;
use std::cell::RefCell;

use super::{Geometry, ROW_TILE, ROW_TILE_SLACK, WIDE_ROW_MIN, WIDE_ROW_TILE};

/// Channels per block (one 16-lane vector).
const CB: usize = 16;

/// One padded position of a block: a 64-byte line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; CB]);

const ZERO: Line = Line([0.0; CB]);

thread_local! {
    /// Padded input `[hp][wp]`, weights `[tap]`, output `[oh·ow]`, a line per position.
    #[allow(clippy::type_complexity)]
    static BLOCK: RefCell<(Vec<Line>, Vec<Line>, Vec<Line>)> =
        const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// Whether the 16-channel tiles cover `g`: depthwise with multiplier 1 on a geometry of
/// the shared row tiles (`row_tile_geometry!`).
pub(super) fn supported(g: &Geometry) -> bool {
    macro_rules! covered {
        ($k:literal, $s:literal, $d:literal) => {
            true
        };
    }
    g.group_channels == 1
        && g.multiplier == 1
        && g.oh > 0
        && g.ow > 0
        && row_tile_geometry!(g, covered, false)
}

/// Output channels from `o0` in whole blocks of sixteen; returns the first channel not
/// computed (`o1` when `o1 − o0` is a multiple of sixteen).
///
/// # Safety
/// AVX2, FMA and AVX-512F are available, [`supported`] holds, and the pointers are as
/// for [`super::run`].
#[target_feature(enable = "avx2,fma,avx512f")]
pub(super) unsafe fn run(
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
) -> usize {
    let blocks = o1.saturating_sub(o0) / CB;
    if blocks == 0 {
        return o0;
    }
    let (s, d) = (g.stride.0, g.dilation.0);
    let hp = (g.oh - 1) * s + (g.kh - 1) * d + 1;
    let wp = (g.ow - 1) * s + (g.kw - 1) * d + 1;
    let (plane, p, taps) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    BLOCK.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (xin, wts, acc) = &mut *cell;
        xin.resize(hp * wp + ROW_TILE_SLACK, ZERO);
        wts.resize(taps, ZERO);
        acc.resize(p, ZERO);
        // Padding stays zero for every block (each writes the same interior positions).
        xin.fill(ZERO);
        for b in 0..blocks {
            let c0 = o0 + b * CB;
            // SAFETY: planes and filters c0..c0 + 16 exist (caller's contract).
            unsafe {
                transpose_in(g, x.add(c0 * plane), hp, wp, xin);
                for (t, wt) in wts.iter_mut().enumerate() {
                    for (l, v) in wt.0.iter_mut().enumerate() {
                        *v = *w.add((c0 + l) * taps + t);
                    }
                }
                tiles(g, wp, xin, wts, acc);
                transpose_out(acc, out.add(c0 * p), p);
            }
        }
    });
    o0 + blocks * CB
}

/// Dispatches to the shared row tiles ([`super::blocked_rows`]) with 16-lane vectors for
/// `g`'s kernel size, stride, dilation and width (16-position tiles on stride-1 rows from
/// [`WIDE_ROW_MIN`] wide; stride 2 measured no better with them).
///
/// # Safety
/// As for [`run`]; `xin` is the padded block plus [`super::ROW_TILE_SLACK`] positions.
#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn tiles(g: &Geometry, wp: usize, xin: &[Line], wts: &[Line], acc: &mut [Line]) {
    debug_assert!(
        xin.len()
            >= ((g.oh - 1) * g.stride.0 + (g.kh - 1) * g.dilation.0 + 1) * wp + ROW_TILE_SLACK
    );
    let (xp, wp_, ap) = (
        xin.as_ptr() as *const f32,
        wts.as_ptr() as *const f32,
        acc.as_mut_ptr() as *mut f32,
    );
    macro_rules! go {
        ($k:literal, $s:literal, $d:literal) => {
            // SAFETY: forwarded; AVX-512F is enabled here.
            unsafe {
                if g.ow >= WIDE_ROW_MIN && $s == 1 {
                    super::blocked_rows::<__m512, $k, $s, $d, WIDE_ROW_TILE>(g, wp, xp, wp_, ap)
                } else {
                    super::blocked_rows::<__m512, $k, $s, $d, ROW_TILE>(g, wp, xp, wp_, ap)
                }
            }
        };
    }
    row_tile_geometry!(g, go, unreachable!("wide::supported was checked"))
}

/// Sixteen planes at `xb` into the interior of the padded block: eight flat positions at
/// a time by two 8×8 transposes (channels 0–7 and 8–15), the plane's tail one position
/// at a time.
///
/// # Safety
/// AVX2 is available; `xb` addresses sixteen planes of `h × w`.
#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn transpose_in(g: &Geometry, xb: *const f32, hp: usize, wp: usize, xin: &mut [Line]) {
    let plane = g.h * g.w;
    let mut next = super::padded_positions(g, hp, wp);
    let mut f = 0;
    // SAFETY (all accesses): f + 8 ≤ plane for the vector loads; destinations checked.
    unsafe {
        while f + 8 <= plane {
            let lo = crate::transpose::transpose8(std::array::from_fn(|l| {
                _mm256_loadu_ps(xb.add(l * plane + f))
            }));
            let hi = crate::transpose::transpose8(std::array::from_fn(|l| {
                _mm256_loadu_ps(xb.add((8 + l) * plane + f))
            }));
            for (lo, hi) in lo.iter().zip(&hi) {
                if let Some(d) = next() {
                    let dst = xin[d].0.as_mut_ptr();
                    _mm256_store_ps(dst, *lo);
                    _mm256_store_ps(dst.add(8), *hi);
                }
            }
            f += 8;
        }
        while f < plane {
            if let Some(d) = next() {
                for l in 0..CB {
                    xin[d].0[l] = *xb.add(l * plane + f);
                }
            }
            f += 1;
        }
    }
}

/// The block's outputs (`p` positions × 16 channels) into sixteen planes at `ob`.
///
/// # Safety
/// AVX2 is available; `ob` addresses sixteen planes of `p`; `acc` holds `p` positions.
#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn transpose_out(acc: &[Line], ob: *mut f32, p: usize) {
    let mut f = 0;
    // SAFETY (all accesses): f + 8 ≤ p for the vector accesses.
    unsafe {
        while f + 8 <= p {
            for h in 0..2 {
                let cols = crate::transpose::transpose8(std::array::from_fn(|j| {
                    _mm256_load_ps(acc[f + j].0.as_ptr().add(8 * h))
                }));
                for (l, v) in cols.iter().enumerate() {
                    _mm256_storeu_ps(ob.add((8 * h + l) * p + f), *v);
                }
            }
            f += 8;
        }
        while f < p {
            for l in 0..CB {
                *ob.add(l * p + f) = acc[f].0[l];
            }
            f += 1;
        }
    }
}
