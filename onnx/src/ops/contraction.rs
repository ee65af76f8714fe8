//! Matrix products: `MatMul` and `Gemm` (`Conv` is with the other window ops), and `Det`,
//! expanded into the Leibniz formula's signed products for matrices up to
//! [`MAX_DET_ORDER`].

use tessera_ir::{BinaryOp, DType, Op, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator, dims_of, reshape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[("MatMul", matmul), ("Gemm", gemm), ("Det", det)];

/// The largest matrices `Det` expands (4! = 24 products of 4 entries).
const MAX_DET_ORDER: usize = 4;

fn matmul(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    Ok(vec![cx.emit1(Op::MatMul, &[a, b])?])
}

fn gemm(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let op = Op::Gemm {
        alpha: cx.attr_float("alpha")?.unwrap_or(1.0),
        beta: cx.attr_float("beta")?.unwrap_or(1.0),
        trans_a: cx.attr_int("transA")?.unwrap_or(0) != 0,
        trans_b: cx.attr_int("transB")?.unwrap_or(0) != 0,
    };
    let inputs = cx.all_inputs();
    Ok(vec![cx.emit1(op, &inputs)?])
}

/// The permutations of `0..n` with their signs (±1).
fn permutations(n: usize) -> Vec<(Vec<usize>, f64)> {
    if n == 0 {
        return vec![(Vec::new(), 1.0)];
    }
    let mut out = Vec::new();
    for (p, sign) in permutations(n - 1) {
        // Insert n − 1 at position k: it passes n − 1 − k elements, one swap each.
        for k in 0..n {
            let mut q = p.clone();
            q.insert(k, n - 1);
            let s = if (n - 1 - k).is_multiple_of(2) {
                sign
            } else {
                -sign
            };
            out.push((q, s));
        }
    }
    out
}

/// `Det(X)` of `[..., M, M]`: `Σ_σ sign(σ) Π_i X[i, σ(i)]`, in f64 (one rounding back to
/// the input's dtype), for `M ≤ MAX_DET_ORDER`.
fn det(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let dt = cx.ty(x).dtype;
    if !dt.is_float() {
        return Err(cx.err(format!("input is {dt}, expected a float dtype")));
    }
    let d = dims_of(cx, x);
    let r = d.len();
    if r < 2 || d[r - 1] != d[r - 2] {
        return Err(cx.err(format!(
            "input has shape {}, expected [..., M, M]",
            cx.ty(x).shape
        )));
    }
    let m = d[r - 1];
    if m > MAX_DET_ORDER {
        return Err(cx.err(format!(
            "determinants of {m}×{m} matrices are not supported (the expansion stops at {MAX_DET_ORDER}×{MAX_DET_ORDER})"
        )));
    }
    let batch = d[..r - 2].to_vec();
    let y = if m == 0 {
        let s = Shape::new(batch).map_err(|e| cx.err(e.to_string()))?;
        cx.check_built("the determinants", s.numel())?;
        cx.constant(Tensor::full(DType::F64, s, 1.0))
    } else {
        let xf = if dt == DType::F64 {
            x
        } else {
            cx.emit1(Op::Cast { to: DType::F64 }, &[x])?
        };
        let mut flat = batch.clone();
        flat.push(m * m);
        let xf = reshape(cx, xf, flat)?;
        let entries = if m == 1 {
            vec![xf]
        } else {
            let axis = batch.len();
            cx.emit(
                Op::Split {
                    axis,
                    sizes: vec![1; m * m],
                },
                &[xf],
            )?
        };
        let mut acc: Option<ValueId> = None;
        for (p, sign) in permutations(m) {
            let mut term = entries[p[0]];
            for (i, &j) in p.iter().enumerate().skip(1) {
                term = cx.emit1(Op::Binary(BinaryOp::Mul), &[term, entries[i * m + j]])?;
            }
            acc = Some(match acc {
                None if sign > 0.0 => term,
                None => cx.emit1(Op::Unary(UnaryOp::Neg), &[term])?,
                Some(a) => {
                    let op = if sign > 0.0 {
                        BinaryOp::Add
                    } else {
                        BinaryOp::Sub
                    };
                    cx.emit1(Op::Binary(op), &[a, term])?
                }
            });
        }
        let acc = acc.ok_or_else(|| cx.err("no permutations (importer bug)"))?;
        reshape(cx, acc, batch)?
    };
    if dt == DType::F64 {
        return Ok(vec![y]);
    }
    Ok(vec![cx.emit1(Op::Cast { to: dt }, &[y])?])
}

#[cfg(test)]
mod tests {
    use super::permutations;

    #[test]
    fn permutation_signs_are_parities() {
        for n in 0..=4 {
            let ps = permutations(n);
            assert_eq!(ps.len(), (1..=n).product::<usize>());
            for (p, sign) in ps {
                let inversions = (0..n)
                    .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
                    .filter(|&(i, j)| p[i] > p[j])
                    .count();
                let want = if inversions % 2 == 0 { 1.0 } else { -1.0 };
                assert_eq!(sign, want, "{p:?}");
            }
        }
    }
}
