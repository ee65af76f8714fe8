//! Out-of-place f32 matrix transposes, `dst[j·ld + i] = src[i·ls + j]`: 8×8 blocks
//! through AVX2 shuffles, the edges element by element. Layout changes around kernels
//! (a small convolution computed as `Xᵀ·Wᵀ`, the channel-blocked depthwise form) are
//! these instead of strided scalar loops.

/// Transposes the `rows × cols` matrix at `src` (row stride `ls`) into the `cols × rows`
/// matrix at `dst` (row stride `ld`).
///
/// # Safety
/// `src` addresses `rows` rows of `cols` elements at stride `ls`, `dst` `cols` rows of
/// `rows` at stride `ld`; they do not overlap.
pub unsafe fn transpose(
    isa: crate::Isa,
    (rows, cols): (usize, usize),
    src: *const f32,
    ls: usize,
    dst: *mut f32,
    ld: usize,
) {
    let (r8, c8) = if isa.or_portable().avx2() {
        // SAFETY: AVX2 was detected; the blocks lie inside both matrices.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            blocks_avx2(rows / 8 * 8, cols / 8 * 8, src, ls, dst, ld)
        };
        (rows / 8 * 8, cols / 8 * 8)
    } else {
        (0, 0)
    };
    // SAFETY (both loops): element (i, j) of src and (j, i) of dst exist.
    unsafe {
        // Columns past the last full block, for the rows the blocks covered, then the
        // rows past them for every column.
        for i in 0..r8 {
            for j in c8..cols {
                *dst.add(j * ld + i) = *src.add(i * ls + j);
            }
        }
        for i in r8..rows {
            for j in 0..cols {
                *dst.add(j * ld + i) = *src.add(i * ls + j);
            }
        }
    }
}

/// The full 8×8 blocks of [`transpose`] (`rows`, `cols` multiples of 8).
///
/// # Safety
/// AVX2 is available; otherwise as for [`transpose`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn blocks_avx2(
    rows: usize,
    cols: usize,
    src: *const f32,
    ls: usize,
    dst: *mut f32,
    ld: usize,
) {
    use std::arch::x86_64::*;
    for i in (0..rows).step_by(8) {
        for j in (0..cols).step_by(8) {
            // SAFETY: rows i..i + 8, columns j..j + 8 of src; the transposed block of dst.
            unsafe {
                let r: [__m256; 8] =
                    std::array::from_fn(|q| _mm256_loadu_ps(src.add((i + q) * ls + j)));
                for (q, v) in transpose8(r).iter().enumerate() {
                    _mm256_storeu_ps(dst.add((j + q) * ld + i), *v);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
/// The 8×8 transpose of eight vectors.
#[target_feature(enable = "avx2")]
pub(crate) fn transpose8(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Isa;

    /// Every remainder of a block in both directions, strides wider than the rows, on
    /// every ISA: the naive transpose's elements, and nothing outside the matrix touched.
    #[test]
    fn matches_the_naive_transpose_at_every_edge() {
        for (rows, cols) in [
            (1, 1),
            (8, 8),
            (7, 9),
            (16, 24),
            (13, 21),
            (49, 96),
            (3, 40),
        ] {
            let (ls, ld) = (cols + 3, rows + 5);
            let src: Vec<f32> = (0..rows * ls).map(|i| i as f32).collect();
            for isa in Isa::available() {
                let mut dst = vec![f32::NAN; cols * ld];
                // SAFETY: shapes as declared.
                unsafe { transpose(isa, (rows, cols), src.as_ptr(), ls, dst.as_mut_ptr(), ld) };
                for j in 0..cols {
                    for i in 0..ld {
                        let got = dst[j * ld + i];
                        if i < rows {
                            assert_eq!(got, src[i * ls + j], "{rows}x{cols} {isa:?} ({i}, {j})");
                        } else {
                            assert!(got.is_nan(), "{rows}x{cols} {isa:?}: wrote past a row");
                        }
                    }
                }
            }
        }
    }
}
