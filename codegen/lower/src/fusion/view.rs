//! Views: ops whose output is a re-indexing of one input (reshape, transpose, expand,
//! slice, one part of a split, identity). The fusion planner never stores a view's
//! output unless it must (a graph output, or an operand a library kernel cannot read
//! through strides); consumers read the source through the view's index map instead.
//!
//! [`StridedView`] composes view chains in the numpy sense (dims, strides, offset) when
//! that is possible, which is what a GEMM operand or a convolution input needs.

use tessera_ir::{Graph, NodeId, Op, ValueId};

/// True if `op` is a view: its (every) output re-indexes its single input.
pub fn is_view(op: &Op) -> bool {
    matches!(
        op,
        Op::Identity
            | Op::Dropout { mask: false, .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Expand { .. }
            | Op::Slice { .. }
            | Op::Split { .. }
    )
}

/// True if `op` is a view that keeps the row-major element order (an alias of its input's
/// storage): identity, inference dropout and reshape.
pub fn is_alias(op: &Op) -> bool {
    matches!(
        op,
        Op::Identity | Op::Dropout { mask: false, .. } | Op::Reshape { .. }
    )
}

/// One view node of a chain and the output slot the chain continues through (always 0
/// except for a split).
pub type ViewStep = (NodeId, usize);

/// Follows `v` back through view nodes accepted by `through` to the first value that is
/// not produced by such a node. Returns that source and the view steps crossed, source
/// side first.
pub fn view_chain(
    g: &Graph,
    v: ValueId,
    through: &dyn Fn(NodeId) -> bool,
) -> (ValueId, Vec<ViewStep>) {
    let mut chain = Vec::new();
    let mut cur = v;
    while let Some(n) = g.producer(cur) {
        let node = g.node(n);
        if !is_view(&node.op) || !through(n) {
            break;
        }
        let slot = node.outputs.iter().position(|&o| o == cur).unwrap_or(0);
        chain.push((n, slot));
        cur = node.inputs[0];
    }
    chain.reverse();
    (cur, chain)
}

/// A strided view of a row-major buffer: element `(i0, .., ik)` lives at
/// `offset + Σ i_j · strides[j]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StridedView {
    pub dims: Vec<usize>,
    pub strides: Vec<i64>,
    pub offset: i64,
}

/// Row-major strides of `dims`.
pub fn row_major(dims: &[usize]) -> Vec<i64> {
    let mut s = vec![1i64; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1] as i64;
    }
    s
}

impl StridedView {
    /// The whole buffer of shape `dims`, row-major.
    pub fn contiguous(dims: &[usize]) -> StridedView {
        StridedView {
            dims: dims.to_vec(),
            strides: row_major(dims),
            offset: 0,
        }
    }

    /// True if this is exactly the row-major layout of its dims starting at element 0.
    pub fn is_contiguous(&self) -> bool {
        self.offset == 0 && self.dims_strides_contiguous()
    }

    fn dims_strides_contiguous(&self) -> bool {
        let rm = row_major(&self.dims);
        self.dims
            .iter()
            .zip(self.strides.iter().zip(&rm))
            .all(|(&d, (&s, &r))| d <= 1 || s == r)
    }

    /// This view seen through view op `op` (output `slot` for a split), or `None` when the
    /// result is not a strided view (a reshape that would need a copy).
    pub fn apply(&self, op: &Op, slot: usize, out_dims: &[usize]) -> Option<StridedView> {
        match op {
            Op::Identity | Op::Dropout { .. } => Some(self.clone()),
            Op::Reshape { .. } => self.reshape(out_dims),
            Op::Transpose { perm } => Some(StridedView {
                dims: perm.iter().map(|&p| self.dims[p]).collect(),
                strides: perm.iter().map(|&p| self.strides[p]).collect(),
                offset: self.offset,
            }),
            Op::Expand { shape } => {
                let to = shape.dims();
                let lead = to.len() - self.dims.len();
                let mut strides = vec![0i64; to.len()];
                for i in 0..self.dims.len() {
                    strides[lead + i] = if self.dims[i] == 1 && to[lead + i] != 1 {
                        0
                    } else {
                        self.strides[i]
                    };
                }
                Some(StridedView {
                    dims: to.to_vec(),
                    strides,
                    offset: self.offset,
                })
            }
            Op::Slice {
                axes,
                starts,
                steps,
                ..
            } => {
                let mut v = StridedView {
                    dims: out_dims.to_vec(),
                    strides: self.strides.clone(),
                    offset: self.offset,
                };
                for ((&a, &start), &step) in axes.iter().zip(starts).zip(steps) {
                    if out_dims[a] > 0 {
                        v.offset += self.strides[a] * start;
                    }
                    v.strides[a] = self.strides[a] * step;
                }
                Some(v)
            }
            Op::Split { axis, sizes } => {
                let start: usize = sizes[..slot].iter().sum();
                let mut v = StridedView {
                    dims: out_dims.to_vec(),
                    strides: self.strides.clone(),
                    offset: self.offset,
                };
                if sizes[slot] > 0 {
                    v.offset += self.strides[*axis] * start as i64;
                }
                Some(v)
            }
            _ => None,
        }
    }

    /// numpy's no-copy reshape: each group of input dims whose product equals a group
    /// of output dims must be contiguous among itself.
    fn reshape(&self, to: &[usize]) -> Option<StridedView> {
        let n: usize = self.dims.iter().product();
        if n == 0 || self.dims_strides_contiguous() {
            return Some(StridedView {
                dims: to.to_vec(),
                strides: row_major(to),
                offset: self.offset,
            });
        }
        let (od, os): (Vec<usize>, Vec<i64>) = self
            .dims
            .iter()
            .zip(&self.strides)
            .filter(|(d, _)| **d != 1)
            .map(|(&d, &s)| (d, s))
            .unzip();
        let mut ns = vec![1i64; to.len()];
        let (mut oi, mut oj, mut ni, mut nj) = (0usize, 1usize, 0usize, 1usize);
        while ni < to.len() && oi < od.len() {
            let (mut np, mut op) = (to[ni], od[oi]);
            while np != op {
                if np < op {
                    np *= *to.get(nj)?;
                    nj += 1;
                } else {
                    op *= *od.get(oj)?;
                    oj += 1;
                }
            }
            for k in oi..oj - 1 {
                if os[k] != od[k + 1] as i64 * os[k + 1] {
                    return None;
                }
            }
            ns[nj - 1] = os[oj - 1];
            for k in (ni + 1..nj).rev() {
                ns[k - 1] = ns[k] * to[k] as i64;
            }
            ni = nj;
            nj += 1;
            oi = oj;
            oj += 1;
        }
        Some(StridedView {
            dims: to.to_vec(),
            strides: ns,
            offset: self.offset,
        })
    }
}

/// The strided view that reading `chain` (as returned by [`view_chain`]) from a contiguous
/// source of shape `src_dims` amounts to, if any.
pub fn chain_view(g: &Graph, src_dims: &[usize], chain: &[ViewStep]) -> Option<StridedView> {
    let mut v = StridedView::contiguous(src_dims);
    for &(n, slot) in chain {
        let node = g.node(n);
        let out = node.outputs[slot];
        v = v.apply(&node.op, slot, g.ty(out).shape.dims())?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(v: &StridedView, to: &[usize]) -> Option<StridedView> {
        v.reshape(to)
    }

    #[test]
    fn reshape_of_transpose() {
        // [2,3,4] transposed to [2,4,3] then reshaped to [8,3] keeps strides; to [2,12] not.
        let v = StridedView::contiguous(&[2, 3, 4])
            .apply(
                &Op::Transpose {
                    perm: vec![0, 2, 1],
                },
                0,
                &[2, 4, 3],
            )
            .unwrap();
        assert_eq!(v.strides, vec![12, 1, 4]);
        let a = rs(&v, &[8, 3]);
        assert!(a.is_none(), "{a:?}");
        let b = rs(&v, &[2, 4, 3, 1]).unwrap();
        assert_eq!(b.strides[..3], [12, 1, 4]);
        let c = rs(&v, &[1, 2, 4, 3]).unwrap();
        assert_eq!(c.strides[1..], [12, 1, 4]);
    }

    #[test]
    fn reshape_splits_and_merges_contiguous_groups() {
        // A [4, 6] view with row stride 10 (a slice of a wider buffer).
        let v = StridedView {
            dims: vec![4, 6],
            strides: vec![10, 1],
            offset: 3,
        };
        let a = rs(&v, &[4, 2, 3]).unwrap();
        assert_eq!((a.strides.clone(), a.offset), (vec![10, 3, 1], 3));
        assert!(rs(&v, &[24]).is_none());
        let b = rs(&v, &[2, 2, 6]).unwrap();
        assert_eq!(b.strides, vec![20, 10, 1]);
    }
}
