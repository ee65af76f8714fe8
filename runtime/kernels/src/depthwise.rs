//! Depthwise 2-D convolution in NCHW: each output channel reads one input channel.
//!
//! `out[o][y][x] = Σ_{ky,kx} w[o][ky][kx] · in[o / mult][y·sh − ph + ky·dh][x·sw − pw + kx·dw]`
//! (zero outside the input), for output channels `o` of one image, where `mult` is the
//! depth multiplier (output channels per input channel).
//!
//! Vectorized along output columns: for each output row and tap, one weight times a
//! contiguous run of input values is added to a row of accumulators. With a column stride
//! above 1 the input plane is first split into its `sw` column phases, so every tap still
//! reads contiguously (no gathers). Borders are handled by clipping each tap's column
//! range and skipping rows outside the input; padding is never materialized.
//!
//! Each output element sums its taps in `(ky, kx)` order, whatever rows or channels a call
//! covers.

use std::cell::RefCell;

/// The geometry of a depthwise convolution (one image).
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
    /// Output channels per input channel.
    pub multiplier: usize,
}

thread_local! {
    /// Phase-split input plane and one row of accumulators.
    static WORK: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Output channels `o0..o1`, all rows, of one image.
///
/// # Safety
/// `x` addresses the image's `(o1 − 1) / multiplier + 1` input planes of `h × w`, `w` the
/// filters `[o][kh][kw]` for every `o < o1`, and `out` the image's output planes of
/// `oh × ow` for every `o < o1`.
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
        _ => unsafe { run_generic(g, x, w, out, o0, o1, madd_portable) },
    }
}

/// `acc[i] += wt · src[i]`, separate multiply and add (auto-vectorized).
#[inline(always)]
fn madd_portable(wt: f32, src: &[f32], acc: &mut [f32]) {
    for (a, &v) in acc.iter_mut().zip(src) {
        *a += wt * v;
    }
}

/// `acc[i] += wt · src[i]`: fused, 8 lanes at a time, the tail one by one.
///
/// # Safety
/// AVX2 and FMA are available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn madd_avx2(wt: f32, src: &[f32], acc: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = acc.len().min(src.len());
    let (acc, src) = (&mut acc[..n], &src[..n]);
    let mut i = 0;
    let w8 = _mm256_set1_ps(wt);
    while i + 8 <= n {
        // SAFETY: i + 8 ≤ n for both slices.
        unsafe {
            let a = _mm256_loadu_ps(acc.as_ptr().add(i));
            let v = _mm256_loadu_ps(src.as_ptr().add(i));
            _mm256_storeu_ps(acc.as_mut_ptr().add(i), _mm256_fmadd_ps(w8, v, a));
        }
        i += 8;
    }
    for (a, &v) in acc[i..].iter_mut().zip(&src[i..]) {
        *a = wt.mul_add(v, *a);
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
    // SAFETY: this function's target features make madd_avx2's requirement hold.
    let madd = |wt: f32, src: &[f32], acc: &mut [f32]| unsafe { madd_avx2(wt, src, acc) };
    // SAFETY: forwarded.
    unsafe { run_generic(g, x, w, out, o0, o1, madd) }
}

/// The first and one-past-last output column whose input column `x·s + off` lies in
/// `[0, w)`.
fn columns(ow: usize, w: usize, s: usize, off: isize) -> (usize, usize) {
    let (w, s) = (w as isize, s as isize);
    // x·s + off ≥ 0  ⟺  x ≥ ceil(−off / s)
    let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
    // x·s + off < w  ⟺  x < ceil((w − off) / s)
    let hi = if w - off <= 0 {
        0
    } else {
        (w - off + s - 1) / s
    };
    let lo = (lo.max(0) as usize).min(ow);
    (lo, (hi.max(0) as usize).clamp(lo, ow))
}

#[inline(always)]
unsafe fn run_generic(
    g: &Geometry,
    x: *const f32,
    w: *const f32,
    out: *mut f32,
    o0: usize,
    o1: usize,
    madd: impl Fn(f32, &[f32], &mut [f32]) + Copy,
) {
    let (sh, sw) = g.stride;
    let (dh, dw) = g.dilation;
    let (ph, pw) = g.pad;
    let plane = g.h * g.w;
    // Width of one column phase of the split plane.
    let pwid = g.w.div_ceil(sw);
    WORK.with(|work| {
        let mut work = work.borrow_mut();
        let (split, acc) = &mut *work;
        acc.clear();
        acc.resize(g.ow, 0.0);
        let mut split_of = usize::MAX;
        for o in o0..o1 {
            let ci = o / g.multiplier.max(1);
            // SAFETY: input plane ci exists (caller's contract).
            let xin = unsafe { std::slice::from_raw_parts(x.add(ci * plane), plane) };
            // With a column stride, phase p of row y holds in[y][p + sw·i] at
            // split[(y·sw + p)·pwid + i].
            if sw > 1 && split_of != ci {
                split.clear();
                split.resize(g.h * sw * pwid, 0.0);
                for y in 0..g.h {
                    for (i, &v) in xin[y * g.w..(y + 1) * g.w].iter().enumerate() {
                        split[(y * sw + i % sw) * pwid + i / sw] = v;
                    }
                }
                split_of = ci;
            }
            // SAFETY: filter o has kh·kw taps; output plane o has oh·ow elements.
            let wo = unsafe { std::slice::from_raw_parts(w.add(o * g.kh * g.kw), g.kh * g.kw) };
            let oplane =
                unsafe { std::slice::from_raw_parts_mut(out.add(o * g.oh * g.ow), g.oh * g.ow) };
            for y in 0..g.oh {
                acc.fill(0.0);
                for ky in 0..g.kh {
                    let iy = (y * sh + ky * dh) as isize - ph as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let iy = iy as usize;
                    for kx in 0..g.kw {
                        let wt = wo[ky * g.kw + kx];
                        let off = (kx * dw) as isize - pw as isize;
                        let (lo, hi) = columns(g.ow, g.w, sw, off);
                        if lo == hi {
                            continue;
                        }
                        let (row, start) = if sw == 1 {
                            (&xin[iy * g.w..(iy + 1) * g.w], (lo as isize + off) as usize)
                        } else {
                            let p = off.rem_euclid(sw as isize) as usize;
                            let base = off.div_euclid(sw as isize);
                            let r = (iy * sw + p) * pwid;
                            (&split[r..r + pwid], (lo as isize + base) as usize)
                        };
                        madd(wt, &row[start..start + (hi - lo)], &mut acc[lo..hi]);
                    }
                }
                oplane[y * g.ow..(y + 1) * g.ow].copy_from_slice(acc);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Isa;

    fn reference(g: &Geometry, c: usize, x: &[f32], w: &[f32]) -> Vec<f64> {
        let oc = c * g.multiplier;
        let mut out = vec![0f64; oc * g.oh * g.ow];
        for o in 0..oc {
            let ci = o / g.multiplier;
            for y in 0..g.oh {
                for xo in 0..g.ow {
                    let mut s = 0f64;
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let iy =
                                (y * g.stride.0 + ky * g.dilation.0) as isize - g.pad.0 as isize;
                            let ix =
                                (xo * g.stride.1 + kx * g.dilation.1) as isize - g.pad.1 as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                s += w[(o * g.kh + ky) * g.kw + kx] as f64
                                    * x[(ci * g.h + iy as usize) * g.w + ix as usize] as f64;
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
            // (c, h, w, k, stride, dilation, pads begin, pads end, multiplier)
            (3, 7, 9, 3, 1, 1, 1, 1, 1),
            (2, 8, 8, 3, 2, 1, 1, 1, 1),
            (2, 11, 13, 5, 2, 1, 2, 2, 1),
            (1, 9, 10, 7, 1, 1, 3, 3, 2),
            (2, 6, 17, 3, 3, 2, 0, 2, 1),
            (1, 5, 5, 5, 1, 1, 0, 0, 1),
            (1, 3, 4, 3, 1, 1, 2, 2, 1),
        ];
        for &(c, h, w, k, s, d, p0, p1, mult) in &cases {
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
                multiplier: mult,
            };
            let x: Vec<f32> = (0..c * h * w)
                .map(|i| ((i * 37 % 19) as f32) / 9.0 - 1.0)
                .collect();
            let oc = c * mult;
            let wt: Vec<f32> = (0..oc * k * k)
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
