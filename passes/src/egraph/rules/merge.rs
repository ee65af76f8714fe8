//! Horizontal merges: ops that read the same input with different constant weights (the
//! Q, K and V projections of attention, parallel convolutions) become one wider op whose
//! output is split.
//!
//! These are multi-pattern rules: one match covers a whole group of e-classes, and every
//! member is merged with its slice of the wide op. They run in their own phase, once, so a
//! merged op is never merged again (the cascade that grows e-graphs without bound).

use egg::{Applier, Id, PatternAst, Rewrite, SearchMatches, Searcher, Subst, Symbol, Var};
use tessera_ir::{ConvAttrs, Op, Shape};

use super::{Rule, add_op, subst_of, var};
use crate::egraph::analysis::{TGraph, TensorAnalysis, node_op};
use crate::egraph::lang::{Discriminant, Kind, TNode};

/// The merge family.
pub fn merge_rules<'a>() -> Vec<Rule<'a>> {
    vec![
        merge_rule("merge-matmul", "matmul", matmul_key, merge_matmul),
        merge_rule("merge-gemm", "gemm", gemm_key, merge_gemm),
        merge_rule("merge-conv", "conv", conv_key, merge_conv),
    ]
}

/// What members of one group share: the input e-class and a description of everything
/// else that must agree (attributes, weight shape outside the merged axis, bias presence).
type GroupKey = (Id, String);

/// The group key of an e-node, or `None` if it cannot be merged.
type KeyFn = fn(&TGraph<'_>, &TNode) -> Option<GroupKey>;

/// Builds the wide op for members (their e-classes, in order) and returns, per member, the
/// e-class of its slice.
type MergeFn = fn(&mut TGraph<'_>, &[(Id, Op, Vec<Id>)]) -> Option<Vec<Id>>;

fn merge_rule<'a>(name: &str, kind: &str, key: KeyFn, merge: MergeFn) -> Rule<'a> {
    let kind = Kind::named(kind).unwrap_or_else(|| panic!("invariant: {kind} is an op kind"));
    Rewrite::new(
        name,
        GroupSearcher { kind, key },
        GroupApplier { kind, key, merge },
    )
    .unwrap_or_else(|e| panic!("invariant: rule {name} is well formed: {e}"))
}

fn member_var(i: usize) -> Var {
    var(&format!("?m{i}"))
}

/// Finds groups of at least two e-classes holding mergeable e-nodes with equal keys.
struct GroupSearcher {
    kind: Kind,
    key: KeyFn,
}

/// Mergeable (class, key) pairs, one per class, in class order.
fn members(egraph: &TGraph<'_>, kind: Kind, key: KeyFn) -> Vec<(Id, GroupKey)> {
    let mut classes: Vec<Id> = egraph
        .classes_for_op(&Discriminant::Op(kind))
        .into_iter()
        .flatten()
        .collect();
    classes.sort();
    classes
        .into_iter()
        .filter_map(|c| {
            egraph[c]
                .nodes
                .iter()
                .filter(|n| matches!(n, TNode::Op(k, _) if *k == kind))
                .find_map(|n| key(egraph, n))
                .map(|k| (c, k))
        })
        .collect()
}

impl<'a> Searcher<TNode, TensorAnalysis<'a>> for GroupSearcher {
    fn search_eclass_with_limit(
        &self,
        _: &TGraph<'a>,
        _: Id,
        _: usize,
    ) -> Option<SearchMatches<'_, TNode>> {
        // Groups span e-classes: only the whole-graph search below finds them.
        None
    }

    fn search_with_limit(
        &self,
        egraph: &TGraph<'a>,
        limit: usize,
    ) -> Vec<SearchMatches<'_, TNode>> {
        let mut groups: Vec<(GroupKey, Vec<Id>)> = Vec::new();
        for (c, k) in members(egraph, self.kind, self.key) {
            match groups.iter_mut().find(|(g, _)| *g == k) {
                Some((_, v)) => v.push(c),
                None => groups.push((k, vec![c])),
            }
        }
        groups
            .into_iter()
            .filter(|(_, v)| v.len() >= 2)
            .take(limit)
            .map(|(_, v)| {
                let pairs: Vec<(String, Id)> = v
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| (format!("?m{i}"), c))
                    .collect();
                let refs: Vec<(&str, Id)> = pairs.iter().map(|(s, c)| (s.as_str(), *c)).collect();
                SearchMatches {
                    eclass: v[0],
                    substs: vec![subst_of(&refs)],
                    ast: None,
                }
            })
            .collect()
    }

    fn vars(&self) -> Vec<Var> {
        Vec::new()
    }
}

/// Merges the members of a group.
struct GroupApplier {
    kind: Kind,
    key: KeyFn,
    merge: MergeFn,
}

impl<'a> Applier<TNode, TensorAnalysis<'a>> for GroupApplier {
    fn apply_one(
        &self,
        egraph: &mut TGraph<'a>,
        _: Id,
        subst: &Subst,
        _: Option<&PatternAst<TNode>>,
        _: Symbol,
    ) -> Vec<Id> {
        let mut group: Vec<(Id, Op, Vec<Id>)> = Vec::new();
        let mut key: Option<GroupKey> = None;
        for i in 0.. {
            let Some(&c) = subst.get(member_var(i)) else {
                break;
            };
            let c = egraph.find(c);
            let found = egraph[c].nodes.iter().find_map(|n| {
                let k = (self.key)(egraph, n)?;
                if !matches!(n, TNode::Op(kk, _) if *kk == self.kind) {
                    return None;
                }
                let (op, operands) = node_op(egraph, n)?;
                Some((
                    k,
                    op,
                    operands.iter().map(|&x| egraph.find(x)).collect::<Vec<_>>(),
                ))
            });
            let Some((k, op, operands)) = found else {
                return Vec::new();
            };
            if key.get_or_insert_with(|| k.clone()) != &k {
                return Vec::new();
            }
            group.push((c, op, operands));
        }
        if group.len() < 2 {
            return Vec::new();
        }
        let Some(slices) = (self.merge)(egraph, &group) else {
            return Vec::new();
        };
        let mut changed = Vec::new();
        for ((c, _, _), s) in group.iter().zip(slices) {
            if egraph[*c].data.types == egraph[s].data.types && egraph.union(*c, s) {
                changed.push(egraph.find(*c));
            }
        }
        changed
    }
}

fn is_const(egraph: &TGraph<'_>, id: Id) -> bool {
    egraph[id].data.konst.is_some()
}

fn dims(egraph: &TGraph<'_>, id: Id) -> Option<Vec<usize>> {
    egraph[id].data.ty().map(|t| t.shape.dims().to_vec())
}

/// `matmul(x, W)` with a constant matrix `W`: grouped by `x`, `W`'s rows and dtype.
fn matmul_key(egraph: &TGraph<'_>, n: &TNode) -> Option<GroupKey> {
    let (Op::MatMul, [x, w]) = node_op(egraph, n)? else {
        return None;
    };
    let wd = dims(egraph, *w)?;
    if wd.len() != 2 || !is_const(egraph, *w) || dims(egraph, *x)?.is_empty() {
        return None;
    }
    let dtype = egraph[*w].data.ty()?.dtype;
    Some((egraph.find(*x), format!("{} {dtype}", wd[0])))
}

/// Splits `wide` along `axis` into `sizes` and returns the slices.
fn split(egraph: &mut TGraph<'_>, wide: Id, axis: usize, sizes: Vec<usize>) -> Option<Vec<Id>> {
    let n = sizes.len();
    let parts = add_op(egraph, Op::Split { axis, sizes }, &[wide])?;
    (0..n)
        .map(|k| {
            let k = u32::try_from(k).ok()?;
            Some(egraph.add(TNode::Proj(k, [parts])))
        })
        .collect()
}

fn merge_matmul(egraph: &mut TGraph<'_>, group: &[(Id, Op, Vec<Id>)]) -> Option<Vec<Id>> {
    let x = group[0].2[0];
    let ws: Vec<Id> = group.iter().map(|(_, _, ops)| ops[1]).collect();
    let sizes: Vec<usize> = ws
        .iter()
        .map(|&w| dims(egraph, w).map(|d| d[1]))
        .collect::<Option<_>>()?;
    let w = add_op(egraph, Op::Concat { axis: 1 }, &ws)?;
    let y = add_op(egraph, Op::MatMul, &[x, w])?;
    let axis = dims(egraph, y)?.len().checked_sub(1)?;
    split(egraph, y, axis, sizes)
}

/// `gemm(A, B, C?)` with constant `B` and `C`: grouped by `A`, the attributes, `B`'s
/// shared dimension and whether there is a `C` (which must be a row of the output).
fn gemm_key(egraph: &TGraph<'_>, n: &TNode) -> Option<GroupKey> {
    let (op @ Op::Gemm { trans_b, .. }, ops) = node_op(egraph, n)? else {
        return None;
    };
    let (a, b) = (*ops.first()?, *ops.get(1)?);
    let bd = dims(egraph, b)?;
    if !is_const(egraph, b) {
        return None;
    }
    let k = if trans_b { bd[1] } else { bd[0] };
    let n_out = if trans_b { bd[0] } else { bd[1] };
    let bias = match ops.get(2) {
        None => "none",
        Some(&c) => {
            let cd = dims(egraph, c)?;
            if !is_const(egraph, c)
                || cd.iter().product::<usize>() != n_out
                || cd.last() != Some(&n_out)
            {
                return None;
            }
            "row"
        }
    };
    Some((egraph.find(a), format!("{op:?} {k} {bias}")))
}

fn merge_gemm(egraph: &mut TGraph<'_>, group: &[(Id, Op, Vec<Id>)]) -> Option<Vec<Id>> {
    let op = group[0].1.clone();
    let Op::Gemm { trans_b, .. } = op else {
        return None;
    };
    let a = group[0].2[0];
    let bs: Vec<Id> = group.iter().map(|(_, _, ops)| ops[1]).collect();
    let sizes: Vec<usize> = bs
        .iter()
        .map(|&b| dims(egraph, b).map(|d| if trans_b { d[0] } else { d[1] }))
        .collect::<Option<_>>()?;
    let b = add_op(
        egraph,
        Op::Concat {
            axis: usize::from(!trans_b),
        },
        &bs,
    )?;
    let y = if group[0].2.len() == 3 {
        let cs: Vec<Id> = group
            .iter()
            .zip(&sizes)
            .map(|((_, _, ops), &n)| {
                add_op(
                    egraph,
                    Op::Reshape {
                        shape: Shape::new(vec![n]).ok()?,
                    },
                    &[ops[2]],
                )
            })
            .collect::<Option<_>>()?;
        let c = add_op(egraph, Op::Concat { axis: 0 }, &cs)?;
        add_op(egraph, op, &[a, b, c])?
    } else {
        add_op(egraph, op, &[a, b])?
    };
    split(egraph, y, 1, sizes)
}

/// `conv(X, W, B?)` with constant weights, one group: grouped by `X`, the attributes,
/// the kernel shape and whether there is a bias.
fn conv_key(egraph: &TGraph<'_>, n: &TNode) -> Option<GroupKey> {
    let (Op::Conv(attrs @ ConvAttrs { group: 1, .. }), ops) = node_op(egraph, n)? else {
        return None;
    };
    let (x, w) = (*ops.first()?, *ops.get(1)?);
    if !is_const(egraph, w) || ops.get(2).is_some_and(|&b| !is_const(egraph, b)) {
        return None;
    }
    let wd = dims(egraph, w)?;
    Some((
        egraph.find(x),
        format!("{attrs:?} {:?} {}", &wd[1..], ops.len()),
    ))
}

fn merge_conv(egraph: &mut TGraph<'_>, group: &[(Id, Op, Vec<Id>)]) -> Option<Vec<Id>> {
    let op = group[0].1.clone();
    let x = group[0].2[0];
    let ws: Vec<Id> = group.iter().map(|(_, _, ops)| ops[1]).collect();
    let sizes: Vec<usize> = ws
        .iter()
        .map(|&w| dims(egraph, w).map(|d| d[0]))
        .collect::<Option<_>>()?;
    let w = add_op(egraph, Op::Concat { axis: 0 }, &ws)?;
    let y = if group[0].2.len() == 3 {
        let bs: Vec<Id> = group.iter().map(|(_, _, ops)| ops[2]).collect();
        let b = add_op(egraph, Op::Concat { axis: 0 }, &bs)?;
        add_op(egraph, op, &[x, w, b])?
    } else {
        add_op(egraph, op, &[x, w])?
    };
    split(egraph, y, 1, sizes)
}
