//! Strided offsets: the one mechanism behind every data-movement kernel.
//!
//! A view of a row-major source tensor is described by the output dims it produces, one
//! source stride per output dim (0 for a broadcast dim, a multiple of the step for a
//! slice, a permuted stride for a transpose) and a base offset. [`offsets`] lists, for
//! each output element in row-major order, the source element it reads.

/// Row-major strides of `dims`, in elements.
pub fn strides(dims: &[usize]) -> Vec<isize> {
    let mut s = vec![1isize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1] as isize;
    }
    s
}

/// The source offset of every output element of the view `(dims, strides, base)`.
pub fn offsets(dims: &[usize], strides: &[isize], base: isize) -> Vec<usize> {
    let n: usize = dims.iter().product();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let rank = dims.len();
    let mut idx = vec![0usize; rank];
    let mut off = base;
    for _ in 0..n {
        out.push(off as usize);
        // Odometer increment, innermost dimension fastest.
        for d in (0..rank).rev() {
            idx[d] += 1;
            off += strides[d];
            if idx[d] < dims[d] {
                break;
            }
            off -= strides[d] * dims[d] as isize;
            idx[d] = 0;
        }
    }
    out
}

/// Strides that read a tensor of shape `src` broadcast (numpy rules) to `out`.
pub fn broadcast_strides(src: &[usize], out: &[usize]) -> Vec<isize> {
    let s = strides(src);
    let lead = out.len() - src.len();
    (0..out.len())
        .map(|i| {
            if i < lead || src[i - lead] == 1 {
                0
            } else {
                s[i - lead]
            }
        })
        .collect()
}

/// Offsets reading `src` broadcast to `out`; `None` when no broadcasting is needed.
pub fn broadcast_offsets(src: &[usize], out: &[usize]) -> Option<Vec<usize>> {
    if src == out {
        None
    } else {
        Some(offsets(out, &broadcast_strides(src, out), 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_view() {
        // [2,3] read as its transpose [3,2].
        let s = strides(&[2, 3]);
        assert_eq!(offsets(&[3, 2], &[s[1], s[0]], 0), vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn broadcast_view() {
        assert_eq!(
            broadcast_offsets(&[3], &[2, 3]),
            Some(vec![0, 1, 2, 0, 1, 2])
        );
        assert_eq!(
            broadcast_offsets(&[2, 1], &[2, 3]),
            Some(vec![0, 0, 0, 1, 1, 1])
        );
        assert_eq!(broadcast_offsets(&[2, 3], &[2, 3]), None);
    }

    #[test]
    fn negative_step_view() {
        // x[4:0:-2] of a length-5 vector reads 4, 2.
        assert_eq!(offsets(&[2], &[-2], 4), vec![4, 2]);
    }
}
