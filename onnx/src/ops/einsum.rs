//! `Einsum`, expanded into IR ops: each operand's repeated labels become a diagonal (a
//! select with an identity mask and a sum), its axes are transposed into one global label
//! order and reshaped with 1s for the labels it lacks, the operands are multiplied with
//! broadcasting, and the labels missing from the output are summed away. Half-precision
//! operands are computed in f32 and the result narrowed once.

use tessera_ir::{BinaryOp, DType, Op, ReduceOp, Shape, Tensor, ValueId};

use super::common::{R, Translator, checked_numel, dims_of, reshape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[("Einsum", einsum)];

/// At most this many elements in the broadcast product of all operands.
const EINSUM_EXPANSION_LIMIT: usize = 1 << 26;

/// A label: a letter, or the `j`-th (right-aligned) dimension covered by `...`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Label {
    Letter(char),
    Ellipsis(usize),
}

/// One side of the equation parsed: per term, its letters with `None` for `...`.
fn parse_term(cx: &Ctx, term: &str) -> R<Vec<Option<char>>> {
    let mut out = Vec::new();
    let mut rest = term;
    let mut ellipsis = false;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("...") {
            if ellipsis {
                return Err(cx.err(format!("term {term:?} has more than one \"...\"")));
            }
            ellipsis = true;
            out.push(None);
            rest = &rest[3..];
        } else if c.is_ascii_alphabetic() {
            out.push(Some(c));
            rest = &rest[1..];
        } else {
            return Err(cx.err(format!("term {term:?} has the invalid character {c:?}")));
        }
    }
    Ok(out)
}

fn einsum(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let equation = cx
        .attr_string("equation")?
        .ok_or_else(|| cx.err("attribute \"equation\" is missing"))?;
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let inputs = cx.all_inputs();
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != inputs.len() {
        return Err(cx.err(format!(
            "equation {equation:?} has {} operand terms for {} inputs",
            terms.len(),
            inputs.len()
        )));
    }
    let out_dtype = cx.ty(inputs[0]).dtype;
    if inputs.iter().any(|&v| cx.ty(v).dtype != out_dtype) || out_dtype == DType::Bool {
        return Err(cx.err("operands must share one numeric dtype"));
    }
    let work = if matches!(out_dtype, DType::F16 | DType::BF16) {
        DType::F32
    } else {
        out_dtype
    };
    // Labels per operand, with `...` expanded right-aligned over the ellipsis rank.
    let parsed: Vec<Vec<Option<char>>> =
        terms.iter().map(|t| parse_term(cx, t)).collect::<R<_>>()?;
    let mut ell_ranks = Vec::new();
    for (k, (p, &v)) in parsed.iter().zip(&inputs).enumerate() {
        let rank = cx.ty(v).shape.rank();
        let letters = p.iter().filter(|l| l.is_some()).count();
        let has_ell = p.len() != letters;
        if rank < letters || (!has_ell && rank != letters) {
            return Err(cx.err(format!(
                "term {:?} does not fit operand {k} of rank {rank}",
                terms[k]
            )));
        }
        ell_ranks.push(rank - letters);
    }
    let ell = ell_ranks.iter().copied().max().unwrap_or(0);
    let mut labels: Vec<Vec<Label>> = Vec::new();
    for (p, &e) in parsed.iter().zip(&ell_ranks) {
        let mut ls = Vec::new();
        for l in p {
            match l {
                Some(c) => ls.push(Label::Letter(*c)),
                None => ls.extend((ell - e..ell).map(Label::Ellipsis)),
            }
        }
        labels.push(ls);
    }
    // The output's labels.
    let out: Vec<Label> = match &rhs {
        Some(r) => {
            let mut o = Vec::new();
            for l in parse_term(cx, r)? {
                match l {
                    Some(c) => {
                        if o.contains(&Label::Letter(c)) {
                            return Err(cx.err(format!("output label {c:?} repeats")));
                        }
                        if !labels.iter().flatten().any(|&x| x == Label::Letter(c)) {
                            return Err(cx.err(format!("output label {c:?} is in no operand")));
                        }
                        o.push(Label::Letter(c));
                    }
                    None => o.extend((0..ell).map(Label::Ellipsis)),
                }
            }
            o
        }
        None => {
            let mut letters: Vec<char> = labels
                .iter()
                .flatten()
                .filter_map(|l| match l {
                    Label::Letter(c) => Some(*c),
                    Label::Ellipsis(_) => None,
                })
                .collect();
            letters.sort_unstable();
            let once: Vec<char> = letters
                .iter()
                .copied()
                .filter(|c| letters.iter().filter(|d| *d == c).count() == 1)
                .collect();
            (0..ell)
                .map(Label::Ellipsis)
                .chain(once.into_iter().map(Label::Letter))
                .collect()
        }
    };
    // Global order: the output's labels, then the summed ones in order of appearance.
    let mut order = out.clone();
    for &l in labels.iter().flatten() {
        if !order.contains(&l) {
            order.push(l);
        }
    }
    // Each label's size (1 for broadcast ellipsis dims), checked across operands.
    let mut size = vec![1usize; order.len()];
    for (k, (ls, &v)) in labels.iter().zip(&inputs).enumerate() {
        let d = dims_of(cx, v);
        for (l, &n) in ls.iter().zip(&d) {
            let g = order.iter().position(|o| o == l).unwrap_or(0);
            let broadcast = matches!(l, Label::Ellipsis(_)) && (n == 1 || size[g] == 1);
            if size[g] != n && size[g] != 1 && !broadcast {
                return Err(cx.err(format!(
                    "label {l:?} has size {} and {n} (operand {k})",
                    size[g]
                )));
            }
            size[g] = size[g].max(n);
        }
    }
    let total = checked_numel(&size);
    if total.is_none_or(|t| t > EINSUM_EXPANSION_LIMIT) {
        return Err(cx.err(format!(
            "the product over all labels ({size:?}) exceeds the {EINSUM_EXPANSION_LIMIT} elements Einsum is expanded into"
        )));
    }
    let mut product: Option<ValueId> = None;
    for (ls, &v) in labels.iter().zip(&inputs) {
        let mut v = if work != out_dtype {
            cx.emit1(Op::Cast { to: work }, &[v])?
        } else {
            v
        };
        let mut ls = ls.clone();
        // Diagonals of repeated labels.
        while let Some((p, q)) =
            (0..ls.len()).find_map(|p| (p + 1..ls.len()).find(|&q| ls[q] == ls[p]).map(|q| (p, q)))
        {
            let d = dims_of(cx, v);
            if d[p] != d[q] {
                return Err(cx.err(format!(
                    "repeated label {:?} has sizes {} and {}",
                    ls[p], d[p], d[q]
                )));
            }
            let n = d[p];
            cx.check_built("the diagonal's index grid", n)?;
            let mut rows = vec![1; d.len()];
            rows[p] = n;
            let mut cols = vec![1; d.len()];
            cols[q] = n;
            let grid = |cx: &mut Ctx, dims: Vec<usize>| -> R<ValueId> {
                let s = Shape::new(dims).map_err(|e| cx.err(e.to_string()))?;
                let t = Tensor::from_vec(s, (0..n as i64).collect::<Vec<i64>>())
                    .map_err(|e| cx.err(e.to_string()))?;
                Ok(cx.constant(t))
            };
            let r = grid(cx, rows)?;
            let c = grid(cx, cols)?;
            let on = cx.emit1(Op::Binary(BinaryOp::Equal), &[r, c])?;
            let zero = cx.constant(Tensor::full(work, Shape::scalar(), 0.0));
            let masked = cx.emit1(Op::Where, &[on, v, zero])?;
            v = cx.emit1(
                Op::Reduce {
                    op: ReduceOp::Sum,
                    axes: vec![q],
                    keep_dims: false,
                },
                &[masked],
            )?;
            ls.remove(q);
        }
        // Into the global order, 1 for the labels this operand lacks.
        let mut perm: Vec<usize> = (0..ls.len()).collect();
        perm.sort_by_key(|&i| order.iter().position(|o| *o == ls[i]).unwrap_or(0));
        if perm.iter().enumerate().any(|(i, &p)| i != p) {
            v = cx.emit1(Op::Transpose { perm: perm.clone() }, &[v])?;
        }
        let d = dims_of(cx, v);
        let mut full = vec![1usize; order.len()];
        for (i, &p) in perm.iter().enumerate() {
            if let Some(g) = order.iter().position(|o| *o == ls[p]) {
                full[g] = d[i];
            }
        }
        v = reshape(cx, v, full)?;
        product = Some(match product {
            Some(acc) => cx.emit1(Op::Binary(BinaryOp::Mul), &[acc, v])?,
            None => v,
        });
    }
    let Some(mut y) = product else {
        return Err(cx.err("Einsum needs at least one input"));
    };
    // Ellipsis or broadcast dims that stayed 1 in every operand but are bigger elsewhere
    // are already broadcast by Mul; sum away the labels the output does not keep.
    let summed: Vec<usize> = (out.len()..order.len()).collect();
    if !summed.is_empty() {
        y = cx.emit1(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: summed,
                keep_dims: false,
            },
            &[y],
        )?;
    } else if y == inputs[0] {
        y = cx.emit1(Op::Identity, &[y])?;
    }
    if work != out_dtype {
        y = cx.emit1(Op::Cast { to: out_dtype }, &[y])?;
    }
    Ok(vec![y])
}
