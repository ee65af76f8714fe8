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
//! Each output element sums its taps in `(c, ky, kx)` order, whatever rows or channels a
//! call covers.

use std::cell::RefCell;

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
    /// Phase-split input plane, the output plane at the phases' row stride, tap offsets.
    #[allow(clippy::type_complexity)]
    static WORK: RefCell<(Vec<f32>, Vec<f32>, Vec<(usize, f32)>)> =
        const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
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
    match isa.or_portable() {
        // SAFETY: AVX2 and FMA were detected; the rest is forwarded.
        #[cfg(target_arch = "x86_64")]
        crate::Isa::Avx2Fma => unsafe { run_avx2(g, x, w, out, o0, o1) },
        // SAFETY: forwarded.
        _ => unsafe { run_generic(g, x, w, out, o0, o1, taps_portable) },
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
) {
    // SAFETY: this function's target features make taps_avx2's requirement hold; run_generic
    // passes runs inside the split plane.
    let taps = |src: &[f32], t: &[(usize, f32)], acc: &mut [f32]| unsafe { taps_avx2(src, t, acc) };
    // SAFETY: forwarded.
    unsafe { run_generic(g, x, w, out, o0, o1, taps) }
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
                for (c, d) in dst.iter_mut().enumerate().skip(c0) {
                    let ix = c * sw + pc - g.pad.1;
                    if ix >= g.w {
                        break;
                    }
                    *d = row[ix];
                }
            }
        }
    }
}

/// Each output channel: copy its input plane into the padded phases (zeros outside the
/// input), then per tap one multiply-add over a flat run of `oh` phase rows (computing
/// `cols − ow` unused columns per row, which keeps every run long and contiguous), then
/// copy the valid columns out.
#[inline(always)]
unsafe fn run_generic(
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
    taps_fn: impl Fn(&[f32], &[(usize, f32)], &mut [f32]) + Copy,
) {
    if g.oh == 0 || g.ow == 0 || g.kh == 0 || g.kw == 0 {
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
        let (split, acc, taps) = &mut *work;
        let cg = g.group_channels.max(1);
        // One block of phases per input channel of the group; the last tap's run ends at
        // most one phase row (plus the rounding) past its block.
        let block = sh * sw * phase_len;
        split.clear();
        split.resize(cg * block + ph.cols + 8, 0.0);
        acc.clear();
        acc.resize(run, 0.0);
        let mut split_of = usize::MAX;
        let taps_per_channel = g.kh * g.kw;
        for o in o0..o1 {
            let grp = o / g.multiplier.max(1);
            if split_of != grp {
                for c in 0..cg {
                    let ci = grp * cg + c;
                    // SAFETY: input plane ci exists (caller's contract).
                    let xin = unsafe { std::slice::from_raw_parts(x.add(ci * plane), plane) };
                    split_plane(g, &ph, xin, &mut split[c * block..(c + 1) * block]);
                }
                split_of = grp;
            }
            // SAFETY: filter o has cg·kh·kw taps; output plane o has oh·ow elements.
            let wo = unsafe {
                std::slice::from_raw_parts(w.add(o * cg * taps_per_channel), cg * taps_per_channel)
            };
            let oplane =
                unsafe { std::slice::from_raw_parts_mut(out.add(o * g.oh * g.ow), g.oh * g.ow) };
            taps.clear();
            for c in 0..cg {
                for ky in 0..g.kh {
                    let ty = ky * dh;
                    for kx in 0..g.kw {
                        let tx = kx * dw;
                        let phase = (ty % sh) * sw + tx % sw;
                        let start = c * block + phase * phase_len + (ty / sh) * ph.cols + tx / sw;
                        taps.push((start, wo[(c * g.kh + ky) * g.kw + kx]));
                    }
                }
            }
            taps_fn(split, taps, acc);
            for y in 0..g.oh {
                oplane[y * g.ow..(y + 1) * g.ow]
                    .copy_from_slice(&acc[y * ph.cols..y * ph.cols + g.ow]);
            }
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
            // Grouped: RegNet-like groups of several channels, strided, with multipliers.
            (3, 7, 7, 3, 1, 1, 1, 1, 4, 4),
            (2, 9, 8, 3, 2, 1, 1, 1, 3, 2),
            (2, 6, 6, 1, 1, 1, 0, 0, 2, 3),
        ];
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
            let want = reference(&g, c, &x, &wt);
            for isa in [Isa::Portable, Isa::detect()] {
                let mut out = vec![f32::NAN; oc * g.oh * g.ow];
                // SAFETY: buffers as declared.
                unsafe { run(isa, &g, x.as_ptr(), wt.as_ptr(), out.as_mut_ptr(), 0, oc) };
                for (i, (&a, &b)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        (a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{g:?} {isa:?} at {i}: {a} vs {b}"
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
    }
}
