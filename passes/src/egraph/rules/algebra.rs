//! Algebraic identities, chains of data-movement ops, scalar factors, constant folding.

use egg::{Id, Subst};
use tessera_ir::{BinaryOp, Op};

use super::{Rewriter, Rule, custom_rule, is_identity_perm, rule};
use crate::egraph::analysis::TGraph;
use crate::egraph::lang::TNode;

/// The algebra family.
pub fn algebra_rules<'a>() -> Vec<Rule<'a>> {
    vec![
        rule("add-zero", "(add ?x ?c)", |r| right_identity(r, 0.0)),
        rule("sub-zero", "(sub ?x ?c)", |r| right_identity(r, 0.0)),
        rule("mul-one", "(mul ?x ?c)", |r| right_identity(r, 1.0)),
        rule("div-one", "(div ?x ?c)", |r| right_identity(r, 1.0)),
        rule("neg-neg", "(neg (neg ?x))", |r| r.v("?x")),
        rule("identity", "(identity ?x)", |r| r.v("?x")),
        rule("dropout", "(dropout ?a ?x)", |r| r.v("?x")),
        rule("dropout-with-mask", "(proj.0 (dropout ?a ?x))", |r| {
            r.v("?x")
        }),
        rule("cast-noop", "(cast ?a ?x)", same_as_operand),
        rule("expand-noop", "(expand ?a ?x)", same_as_operand),
        rule("reshape-noop", "(reshape ?a ?x)", same_as_operand),
        rule(
            "reshape-reshape",
            "(reshape ?a (reshape ?b ?x))",
            reshape_reshape,
        ),
        rule("transpose-noop", "(transpose ?a ?x)", transpose_noop),
        rule(
            "transpose-transpose",
            "(transpose ?a (transpose ?b ?x))",
            transpose_transpose,
        ),
        rule("scalar-to-right-add", "(add ?c ?x)", scalar_to_right),
        rule("scalar-to-right-mul", "(mul ?c ?x)", scalar_to_right),
        rule("constant-to-right-add", "(add ?c ?x)", constant_to_right),
        rule("constant-to-right-mul", "(mul ?c ?x)", constant_to_right),
        rule("scalar-out-of-reshape", "(reshape ?a (mul ?x ?s))", |r| {
            scalar_out_of(r, "reshape")
        }),
        rule(
            "scalar-out-of-transpose",
            "(transpose ?a (mul ?x ?s))",
            |r| scalar_out_of(r, "transpose"),
        ),
        rule("mul-scalars", "(mul (mul ?x ?a) ?b)", mul_scalars),
        rule(
            "matmul-scalar-lhs",
            "(matmul (mul ?x ?s) ?y)",
            matmul_scalar_lhs,
        ),
        rule(
            "matmul-scalar-rhs",
            "(matmul ?x (mul ?y ?s))",
            matmul_scalar_rhs,
        ),
        custom_rule(
            "constant-fold",
            &[],
            &[],
            unfolded_constant,
            add_constant_node,
        ),
    ]
}

/// `x ∘ c → x` when `c` is a constant of `value`s (the type check rejects broadcasting).
fn right_identity(r: &mut Rewriter, value: f64) -> Option<Id> {
    let (x, c) = (r.v("?x")?, r.v("?c")?);
    r.all_equal(c, value).then_some(x)
}

/// An op whose result has its operand's type is a no-op for casts, expands and
/// reshapes.
fn same_as_operand(r: &mut Rewriter) -> Option<Id> {
    let x = r.v("?x")?;
    (r.ty(x)? == r.ty(r.root)?).then_some(x)
}

fn reshape_reshape(r: &mut Rewriter) -> Option<Id> {
    let (a, x) = (r.v("?a")?, r.v("?x")?);
    let op = r.attr(a)?;
    r.op(op, &[x])
}

fn transpose_noop(r: &mut Rewriter) -> Option<Id> {
    let (a, x) = (r.v("?a")?, r.v("?x")?);
    match r.attr(a)? {
        Op::Transpose { perm } if is_identity_perm(&perm) => Some(x),
        _ => None,
    }
}

/// `transpose(p, transpose(q, x)) = transpose(r, x)` with `r[i] = q[p[i]]`.
fn transpose_transpose(r: &mut Rewriter) -> Option<Id> {
    let (a, b, x) = (r.v("?a")?, r.v("?b")?, r.v("?x")?);
    let (Op::Transpose { perm: p }, Op::Transpose { perm: q }) = (r.attr(a)?, r.attr(b)?) else {
        return None;
    };
    let perm: Vec<usize> = p
        .iter()
        .map(|&i| q.get(i).copied())
        .collect::<Option<_>>()?;
    if is_identity_perm(&perm) {
        return Some(x);
    }
    r.op(Op::Transpose { perm }, &[x])
}

/// Commutative ops with a one-element constant on the left: move it to the right, so
/// patterns only need the constant-on-the-right form.
fn scalar_to_right(r: &mut Rewriter) -> Option<Id> {
    let (c, x) = (r.v("?c")?, r.v("?x")?);
    if r.scalar(c).is_none() || r.konst(x).is_some() {
        return None;
    }
    scalar_to_right_unchecked(r, c, x)
}

/// `c ∘ x → x ∘ c` for the `add` or `mul` the match found.
fn scalar_to_right_unchecked(r: &mut Rewriter, c: Id, x: Id) -> Option<Id> {
    let op = r
        .find(r.root, "add", |_, ops| ops == [c, x])
        .map(|_| BinaryOp::Add);
    let op = op.or_else(|| {
        r.find(r.root, "mul", |_, ops| ops == [c, x])
            .map(|_| BinaryOp::Mul)
    })?;
    r.op(Op::Binary(op), &[x, c])
}

/// `c ∘ x → x ∘ c` for a constant tensor `c` of any size and a non-constant `x` (`add`,
/// `mul`): broadcasting is symmetric, so the type is the same, and patterns then see
/// weights and biases on the right (`mul(γ, norm(x))` as Hugging Face writes RMSNorm).
fn constant_to_right(r: &mut Rewriter) -> Option<Id> {
    let (c, x) = (r.v("?c")?, r.v("?x")?);
    if r.konst(c).is_none() || r.konst(x).is_some() || r.scalar(c).is_some() {
        return None;
    }
    scalar_to_right_unchecked(r, c, x)
}

/// `view(x · s) = view(x) · s` for a one-element constant `s` (`view` a reshape or a
/// transpose): moves a scale outwards, towards the op that can absorb it (an attention's
/// scale, a matmul's scalar).
fn scalar_out_of(r: &mut Rewriter, view: &str) -> Option<Id> {
    let (a, x, s) = (r.v("?a")?, r.v("?x")?, r.v("?s")?);
    if r.scalar(s).is_none() || r.ty(s)?.shape.rank() != 0 {
        return None;
    }
    let op = r.attr(a)?;
    let kind_ok = matches!(
        (view, &op),
        ("reshape", Op::Reshape { .. }) | ("transpose", Op::Transpose { .. })
    );
    if !kind_ok {
        return None;
    }
    let moved = r.op(op, &[x])?;
    r.op(Op::Binary(BinaryOp::Mul), &[moved, s])
}

/// `(x · a) · b = x · (a·b)` for one-element constants (folded).
fn mul_scalars(r: &mut Rewriter) -> Option<Id> {
    let (x, a, b) = (r.v("?x")?, r.v("?a")?, r.v("?b")?);
    r.scalar(a)?;
    r.scalar(b)?;
    let ab = r.op(Op::Binary(BinaryOp::Mul), &[a, b])?;
    r.konst(ab)?;
    r.op(Op::Binary(BinaryOp::Mul), &[x, ab])
}

/// `(x · s) @ y = (x @ y) · s` for a one-element constant `s` that does not broadcast.
fn matmul_scalar_lhs(r: &mut Rewriter) -> Option<Id> {
    let (x, s, y) = (r.v("?x")?, r.v("?s")?, r.v("?y")?);
    scalar_out_of_matmul(r, x, y, s)
}

fn matmul_scalar_rhs(r: &mut Rewriter) -> Option<Id> {
    let (x, y, s) = (r.v("?x")?, r.v("?y")?, r.v("?s")?);
    scalar_out_of_matmul(r, x, y, s)
}

fn scalar_out_of_matmul(r: &mut Rewriter, x: Id, y: Id, s: Id) -> Option<Id> {
    r.scalar(s)?;
    let st = r.ty(s)?;
    let mm = r.op(Op::MatMul, &[x, y])?;
    // The factor must not add dimensions to the product.
    if st.shape.rank() > r.ty(mm)?.shape.rank() {
        return None;
    }
    r.op(Op::Binary(BinaryOp::Mul), &[mm, s])
}

/// Classes whose value is known (all operands constant) but that hold no `Const` e-node.
fn unfolded_constant(egraph: &TGraph<'_>, class: Id) -> Vec<Subst> {
    let c = &egraph[class];
    if c.data.konst.is_some() && !c.nodes.iter().any(|n| matches!(n, TNode::Const(_))) {
        vec![Subst::with_capacity(0)]
    } else {
        Vec::new()
    }
}

fn add_constant_node(r: &mut Rewriter) -> Option<Id> {
    let t = r.konst(r.root)?;
    Some(r.constant(t))
}
