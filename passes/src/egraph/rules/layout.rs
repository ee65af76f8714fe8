//! Layout and data movement: transposes into Gemm operands, reshape–transpose–reshape
//! chains as one transpose, transposes and reshapes moved out of elementwise ops (toward
//! the outputs), where they can meet and cancel another transpose.

use egg::{Id, Subst};
use tessera_ir::{Op, UnaryOp};

use super::{Rewriter, Rule, custom_rule, is_identity_perm, rule, subst_of};
use crate::egraph::analysis::{TGraph, node_op};
use crate::egraph::lang::{Kind, TNode};

const UNARY: [&str; 17] = [
    "neg",
    "abs",
    "sign",
    "relu",
    "exp",
    "log",
    "sqrt",
    "reciprocal",
    "erf",
    "tanh",
    "sigmoid",
    "softplus",
    "sin",
    "cos",
    "floor",
    "ceil",
    "round",
];

const BINARY: [&str; 6] = ["add", "sub", "mul", "div", "max", "min"];

/// `reshape([g…, D, T], transpose([0, 2, 1], reshape([G, T, D], x)))` with `x` shaped
/// `[h…, T, D]` and `Πh = G = Πg` is `transpose(swap last two, reshape([g…, T, D], x))`:
/// the keys' transpose as the exporter writes it (`[-1, T, D]`, transpose, back to
/// heads), also when the leading axes regroup (grouped-query attention expands 2 KV heads
/// as `[1, 2, 2, T, D]` and reads them as 4 heads). The result is what attention patterns
/// look for: a transpose of the last two axes.
fn transposed_keys_regrouped(r: &mut Rewriter) -> Option<Id> {
    let (s, p, t, x) = (r.v("?s")?, r.v("?p")?, r.v("?t")?, r.v("?x")?);
    let (Op::Reshape { shape: outer }, Op::Transpose { perm }, Op::Reshape { shape: inner }) =
        (r.attr(s)?, r.attr(p)?, r.attr(t)?)
    else {
        return None;
    };
    let (o, i, xd) = (outer.dims(), inner.dims(), r.ty(x)?.shape.dims().to_vec());
    let rank = o.len();
    if perm != [0, 2, 1] || i.len() != 3 || rank < 3 || xd.len() < 3 {
        return None;
    }
    let (g, tt, d) = (i[0], i[1], i[2]);
    let lead: usize = o[..rank - 2].iter().product();
    let xlead: usize = xd[..xd.len() - 2].iter().product();
    if o[rank - 2..] != [d, tt] || xd[xd.len() - 2..] != [tt, d] || lead != g || xlead != g {
        return None;
    }
    let mut heads = o[..rank - 2].to_vec();
    heads.extend([tt, d]);
    let y = r.op(
        Op::Reshape {
            shape: tessera_ir::Shape::new(heads).ok()?,
        },
        &[x],
    )?;
    let mut swap: Vec<usize> = (0..rank).collect();
    swap.swap(rank - 2, rank - 1);
    r.op(Op::Transpose { perm: swap }, &[y])
}

/// The layout family.
pub fn layout_rules<'a>() -> Vec<Rule<'a>> {
    vec![
        rule(
            "matmul-transpose-b-to-gemm",
            "(matmul ?a (transpose ?p ?b))",
            |r| matmul_transposed(r, false),
        ),
        rule(
            "matmul-transpose-a-to-gemm",
            "(matmul (transpose ?p ?a) ?b)",
            |r| matmul_transposed(r, true),
        ),
        rule(
            "gemm-absorb-transpose-b",
            "(gemm ?g ?a (transpose ?p ?b) ?c)",
            gemm_absorb_b,
        ),
        rule(
            "gemm-absorb-transpose-b-no-bias",
            "(gemm ?g ?a (transpose ?p ?b))",
            gemm_absorb_b,
        ),
        rule(
            "transposed-keys-regrouped",
            "(reshape ?s (transpose ?p (reshape ?t ?x)))",
            transposed_keys_regrouped,
        ),
        rule(
            "reshape-transpose-reshape",
            "(reshape ?s (transpose ?p (reshape ?t ?x)))",
            reshape_transpose_reshape,
        ),
        custom_rule(
            "transpose-out-of-unary",
            &UNARY,
            &["?t", "?p", "?x"],
            unary_of_transpose,
            transpose_out_of_unary,
        ),
        custom_rule(
            "transpose-out-of-binary",
            &BINARY,
            &["?p", "?x", "?y"],
            binary_of_transposes,
            transpose_out_of_binary,
        ),
        custom_rule(
            "reshape-out-of-unary",
            &UNARY,
            &["?t", "?p", "?x"],
            unary_of_reshape,
            reshape_out_of_unary,
        ),
    ]
}

/// `matmul(a, transpose(b))` (rank 2) is `gemm(a, b)` with `trans_b`; likewise for `a`.
fn matmul_transposed(r: &mut Rewriter, on_a: bool) -> Option<Id> {
    let (a, b, p) = (r.v("?a")?, r.v("?b")?, r.v("?p")?);
    if r.attr(p)? != (Op::Transpose { perm: vec![1, 0] }) {
        return None;
    }
    let gemm = Op::Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: on_a,
        trans_b: !on_a,
    };
    r.op(gemm, &[a, b])
}

/// `gemm(a, transpose(b), c)` is `gemm(a, b, c)` with `trans_b` flipped.
fn gemm_absorb_b(r: &mut Rewriter) -> Option<Id> {
    let (g, a, b, p) = (r.v("?g")?, r.v("?a")?, r.v("?b")?, r.v("?p")?);
    if r.attr(p)? != (Op::Transpose { perm: vec![1, 0] }) {
        return None;
    }
    let Op::Gemm {
        alpha,
        beta,
        trans_a,
        trans_b,
    } = r.attr(g)?
    else {
        return None;
    };
    let op = Op::Gemm {
        alpha,
        beta,
        trans_a,
        trans_b: !trans_b,
    };
    match r.v("?c") {
        Some(c) => r.op(op, &[a, b, c]),
        None => r.op(op, &[a, b]),
    }
}

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Largest tensor whose reshape–transpose–reshape chain is checked element by element.
const CHAIN_CHECK_LIMIT: usize = 1 << 20;

/// The permutation `q` such that `reshape(s, transpose(p, reshape(t, x)))` equals
/// `transpose(q, x)`, if there is one. A candidate is read off the offsets of unit steps
/// along each output axis, then checked on every element.
fn chain_as_transpose(x: &[usize], t: &[usize], p: &[usize], s: &[usize]) -> Option<Vec<usize>> {
    let n: usize = x.iter().product();
    if s.len() != x.len() || p.len() != t.len() || n > CHAIN_CHECK_LIMIT {
        return None;
    }
    let u: Vec<usize> = p
        .iter()
        .map(|&k| t.get(k).copied())
        .collect::<Option<_>>()?;
    let (ss, us, ts, xs) = (strides(s), strides(&u), strides(t), strides(x));
    // Input offset of the element at output flat index `f`.
    let offset = |f: usize| -> usize {
        let mut tt = vec![0usize; t.len()];
        for (k, (&stride, &dim)) in us.iter().zip(&u).enumerate() {
            tt[p[k]] = (f / stride) % dim;
        }
        tt.iter().zip(&ts).map(|(a, b)| a * b).sum()
    };
    let mut q = vec![usize::MAX; s.len()];
    let mut used = vec![false; x.len()];
    for j in 0..s.len() {
        if s[j] == 1 {
            continue;
        }
        let step = offset(ss[j]);
        let i = (0..x.len()).find(|&i| !used[i] && x[i] == s[j] && xs[i] == step)?;
        used[i] = true;
        q[j] = i;
    }
    for qj in q.iter_mut().filter(|qj| **qj == usize::MAX) {
        let i = (0..x.len()).find(|&i| !used[i] && x[i] == 1)?;
        used[i] = true;
        *qj = i;
    }
    // Check every element: output index o reads x at the index with x_idx[q[j]] = o[j].
    let ok = (0..n).all(|f| {
        let want: usize = (0..s.len()).map(|j| ((f / ss[j]) % s[j]) * xs[q[j]]).sum();
        offset(f) == want
    });
    ok.then_some(q)
}

/// `reshape(s, transpose(p, reshape(t, x)))` is often one transpose of `x` (BERT's
/// key transpose goes through a rank-3 view).
fn reshape_transpose_reshape(r: &mut Rewriter) -> Option<Id> {
    let (s, p, t, x) = (r.v("?s")?, r.v("?p")?, r.v("?t")?, r.v("?x")?);
    let (Op::Reshape { shape: s }, Op::Transpose { perm }, Op::Reshape { shape: t }) =
        (r.attr(s)?, r.attr(p)?, r.attr(t)?)
    else {
        return None;
    };
    let xs = r.ty(x)?.shape;
    let new_perm = chain_as_transpose(xs.dims(), t.dims(), &perm, s.dims())?;
    if is_identity_perm(&new_perm) {
        return Some(x);
    }
    r.op(Op::Transpose { perm: new_perm }, &[x])
}

fn unary_kind(n: &TNode) -> Option<(UnaryOp, Id)> {
    match n {
        TNode::Op(k, c) if c.len() == 1 => match k.plain_op()? {
            Op::Unary(u) => Some((u, c[0])),
            _ => None,
        },
        _ => None,
    }
}

fn unary_over(egraph: &TGraph<'_>, class: Id, inner: &str) -> Vec<Subst> {
    let Some(inner_kind) = Kind::named(inner) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for n in &egraph[class].nodes {
        let Some((_, t)) = unary_kind(n) else {
            continue;
        };
        for m in &egraph[t].nodes {
            if let TNode::Op(k, c) = m
                && *k == inner_kind
                && c.len() == 2
            {
                out.push(subst_of(&[
                    ("?t", egraph.find(t)),
                    ("?p", c[0]),
                    ("?x", c[1]),
                ]));
            }
        }
    }
    out
}

fn unary_of_transpose(egraph: &TGraph<'_>, class: Id) -> Vec<Subst> {
    unary_over(egraph, class, "transpose")
}

fn unary_of_reshape(egraph: &TGraph<'_>, class: Id) -> Vec<Subst> {
    unary_over(egraph, class, "reshape")
}

/// `u(transpose(p, x)) = transpose(p, u(x))` for elementwise `u`; the same for reshapes.
fn out_of_unary(r: &mut Rewriter) -> Option<Id> {
    let (t, p, x) = (r.v("?t")?, r.v("?p")?, r.v("?x")?);
    let root = r.root;
    let u = r.egraph[root]
        .nodes
        .iter()
        .find_map(|n| unary_kind(n).filter(|(_, c)| r.egraph.find(*c) == t))?
        .0;
    let moved = r.attr(p)?;
    let inner = r.op(Op::Unary(u), &[x])?;
    r.op(moved, &[inner])
}

fn transpose_out_of_unary(r: &mut Rewriter) -> Option<Id> {
    out_of_unary(r)
}

fn reshape_out_of_unary(r: &mut Rewriter) -> Option<Id> {
    out_of_unary(r)
}

/// The (attribute class, operand) of every transpose e-node in `class`.
fn transposes_in(egraph: &TGraph<'_>, class: Id) -> Vec<(Id, Id)> {
    egraph[class]
        .nodes
        .iter()
        .filter_map(|n| match n {
            TNode::Op(k, c) if k.name() == "transpose" && c.len() == 2 => {
                Some((egraph.find(c[0]), egraph.find(c[1])))
            }
            _ => None,
        })
        .collect()
}

/// Binary elementwise ops whose operands are both transposed the same way, with equal
/// shapes (no broadcasting).
fn binary_of_transposes(egraph: &TGraph<'_>, class: Id) -> Vec<Subst> {
    let mut out = Vec::new();
    for n in &egraph[class].nodes {
        let Some((Op::Binary(_), [a, b])) = node_op(egraph, n) else {
            continue;
        };
        for (pa, x) in transposes_in(egraph, *a) {
            for (pb, y) in transposes_in(egraph, *b) {
                if pa == pb && egraph[x].data.types == egraph[y].data.types {
                    out.push(subst_of(&[("?p", pa), ("?x", x), ("?y", y)]));
                }
            }
        }
    }
    out
}

/// `b(transpose(p, x), transpose(p, y)) = transpose(p, b(x, y))`.
fn transpose_out_of_binary(r: &mut Rewriter) -> Option<Id> {
    let (p, x, y) = (r.v("?p")?, r.v("?x")?, r.v("?y")?);
    let root = r.root;
    let op = r.egraph[root]
        .nodes
        .iter()
        .find_map(|n| match node_op(r.egraph, n) {
            Some((op @ Op::Binary(_), [a, b])) => {
                let ta = transposes_in(r.egraph, *a);
                let tb = transposes_in(r.egraph, *b);
                (ta.contains(&(p, x)) && tb.contains(&(p, y))).then_some(op)
            }
            _ => None,
        })?;
    let perm = r.attr(p)?;
    let inner = r.op(op, &[x, y])?;
    r.op(perm, &[inner])
}
