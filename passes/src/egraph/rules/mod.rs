//! Rewrite rules, as data: four families, one named rule per line.
//!
//! * [`algebra_rules`]: identities (x+0, x·1, x/1, −−x, identity/dropout, no-op casts,
//!   reshapes and transposes), reshape and transpose chains, scalar factors, constant
//!   folding.
//! * [`layout_rules`]: transposes folded into Gemm operands, reshape–transpose–reshape
//!   chains as one transpose, transposes and reshapes moved out of elementwise ops.
//! * [`fusion_rules`]: patterns to fused ops: GELU (erf and tanh forms), LayerNorm and
//!   RMSNorm chains, Softmax from exp/sum/div, attention, Conv+BatchNorm, MatMul+Add→Gemm.
//! * [`merge_rules`]: horizontal merges (ops sharing an input → one wider op + split). They
//!   are multi-pattern rules and run in their own bounded phase.
//!
//! Every rule is directional and type-checked: a rule builds its right side through
//! [`Rewriter`], which infers each new node's type with `Op::infer` and refuses ill-typed
//! ones, and the result is only merged into the matched e-class if their types agree.
//! Every rule has a named test in `tests/rules.rs` that builds its left side with random
//! shapes and values and checks both sides agree on the reference interpreter.

mod algebra;
mod fusion;
mod layout;
mod merge;

pub use algebra::algebra_rules;
pub use fusion::fusion_rules;
pub use layout::layout_rules;
pub use merge::merge_rules;

use egg::{Applier, Id, Pattern, PatternAst, Rewrite, SearchMatches, Searcher, Subst, Symbol, Var};
use tessera_ir::{DType, Op, Shape, Tensor, TensorType};

use super::analysis::{TGraph, TensorAnalysis, node_op};
use super::lang::{AttrRef, ConstRef, Kind, TNode};

/// A rewrite rule of the optimizer.
pub type Rule<'a> = Rewrite<TNode, TensorAnalysis<'a>>;

/// Every single-pattern rule (algebra, layout, fusion), in a fixed order.
pub fn single_rules<'a>() -> Vec<Rule<'a>> {
    let mut v = algebra_rules();
    v.extend(layout_rules());
    v.extend(fusion_rules());
    v
}

/// Names of every rule, by family.
pub fn rule_names() -> Vec<(&'static str, Vec<String>)> {
    let names = |rs: Vec<Rule<'static>>| rs.iter().map(|r| r.name.to_string()).collect();
    vec![
        ("algebra", names(algebra_rules())),
        ("layout", names(layout_rules())),
        ("fusion", names(fusion_rules())),
        ("merge", names(merge_rules())),
    ]
}

/// The right side of a rule, given the matched e-class and its match.
pub type ApplyFn = for<'r, 'e, 'a> fn(&'r mut Rewriter<'e, 'a>) -> Option<Id>;

/// Searches for classes matching a custom condition: returns substitutions for `class`.
pub type SearchFn = for<'g, 'a> fn(&'g TGraph<'a>, Id) -> Vec<Subst>;

/// Builds the right side of a rule: reads the match and the analysis, adds type-checked
/// nodes.
pub struct Rewriter<'e, 'a> {
    pub egraph: &'e mut TGraph<'a>,
    pub subst: &'e Subst,
    /// The matched e-class.
    pub root: Id,
}

/// A pattern variable. Rule patterns are constants, so a bad name is a programming error
/// caught by the rule-construction test.
pub fn var(name: &str) -> Var {
    name.parse()
        .expect("invariant: rule variables are spelled ?name")
}

impl<'e, 'a> Rewriter<'e, 'a> {
    /// The e-class bound to a pattern variable.
    pub fn v(&self, name: &str) -> Option<Id> {
        self.subst.get(var(name)).map(|&id| self.egraph.find(id))
    }

    /// The type of a value e-class.
    pub fn ty(&self, id: Id) -> Option<TensorType> {
        self.egraph[id].data.ty().cloned()
    }

    /// The constant value of an e-class.
    pub fn konst(&self, id: Id) -> Option<Tensor> {
        self.egraph[id]
            .data
            .konst
            .as_ref()
            .map(|c| c.tensor().clone())
    }

    /// The value of a one-element constant e-class (any rank).
    pub fn scalar(&self, id: Id) -> Option<f64> {
        let t = self.konst(id)?;
        if t.numel() == 1 && t.dtype().is_float() {
            t.to_f64_vec().first().copied()
        } else {
            None
        }
    }

    /// True if the e-class is a one-element float constant within `rel` of `value`.
    pub fn is_scalar(&self, id: Id, value: f64, rel: f64) -> bool {
        self.scalar(id)
            .is_some_and(|s| (s - value).abs() <= rel * value.abs().max(f64::MIN_POSITIVE))
    }

    /// True if every element of a constant e-class equals `value`.
    pub fn all_equal(&self, id: Id, value: f64) -> bool {
        self.konst(id)
            .is_some_and(|t| t.numel() > 0 && t.to_f64_vec().iter().all(|&x| x == value))
    }

    /// The op of an attribute e-class.
    pub fn attr(&self, id: Id) -> Option<Op> {
        self.egraph[id].data.attr.clone()
    }

    /// Adds `op` applied to `inputs` if it type-checks; constant results also get their
    /// `Const` e-node.
    pub fn op(&mut self, op: Op, inputs: &[Id]) -> Option<Id> {
        let id = add_op(self.egraph, op, inputs)?;
        Some(id)
    }

    /// Adds a constant.
    pub fn constant(&mut self, t: Tensor) -> Id {
        self.egraph.add(TNode::Const(ConstRef::new(t)))
    }

    /// A one-element constant of `dtype` shaped `[]`.
    pub fn scalar_const(&mut self, dtype: DType, value: f64) -> Id {
        self.constant(Tensor::full(dtype, Shape::scalar(), value))
    }

    /// Output `k` of the tuple e-class `t`.
    pub fn proj(&mut self, t: Id, k: usize) -> Option<Id> {
        let k = u32::try_from(k).ok()?;
        if k as usize >= self.egraph[t].data.types.len() {
            return None;
        }
        Some(self.egraph.add(TNode::Proj(k, [t])))
    }

    /// True if every e-node that reads class `id` belongs to class `user`. A rule that
    /// folds `id` into a new e-node of `user` then removes `id`'s only consumer; were
    /// there another, the extracted graph would compute both `id` and its folded copy.
    pub fn used_only_by(&self, id: Id, user: Id) -> bool {
        let user = self.egraph.find(user);
        self.egraph[id]
            .parents()
            .all(|p| self.egraph.find(p) == user)
    }

    /// The first operand list of an `Op` e-node of `kind` in class `id` satisfying `pred`,
    /// with the op (attributes included).
    pub fn find(
        &self,
        id: Id,
        kind: &str,
        pred: impl Fn(&Op, &[Id]) -> bool,
    ) -> Option<(Op, Vec<Id>)> {
        find_op(self.egraph, id, kind, pred)
    }
}

/// Adds `op(inputs)` to the e-graph if `Op::infer` accepts the operand types.
pub fn add_op(egraph: &mut TGraph<'_>, op: Op, inputs: &[Id]) -> Option<Id> {
    let kind = Kind::of(&op)?;
    let types: Vec<TensorType> = inputs
        .iter()
        .map(|&i| egraph[i].data.ty().cloned())
        .collect::<Option<_>>()?;
    let refs: Vec<&TensorType> = types.iter().collect();
    op.infer(&refs).ok()?;
    let mut children = Vec::with_capacity(inputs.len() + 1);
    if kind.has_attrs() {
        children.push(egraph.add(TNode::Attr(AttrRef::new(op))));
    }
    children.extend_from_slice(inputs);
    let id = egraph.add(TNode::Op(kind, children));
    if let Some(c) = egraph[id].data.konst.clone()
        && !egraph[id]
            .nodes
            .iter()
            .any(|n| matches!(n, TNode::Const(_)))
    {
        let k = egraph.add(TNode::Const(c));
        egraph.union(id, k);
    }
    Some(egraph.find(id))
}

/// The first `Op` e-node of `kind` in class `id` whose op and operands satisfy `pred`.
pub fn find_op(
    egraph: &TGraph<'_>,
    id: Id,
    kind: &str,
    pred: impl Fn(&Op, &[Id]) -> bool,
) -> Option<(Op, Vec<Id>)> {
    let kind = Kind::named(kind)?;
    egraph[id].nodes.iter().find_map(|n| match n {
        TNode::Op(k, _) if *k == kind => {
            let (op, operands) = node_op(egraph, n)?;
            let operands: Vec<Id> = operands.iter().map(|&c| egraph.find(c)).collect();
            pred(&op, &operands).then_some((op, operands))
        }
        _ => None,
    })
}

/// Applies an [`ApplyFn`] and merges its result into the matched class when the types
/// agree.
struct FnApplier {
    f: ApplyFn,
}

impl<'a> Applier<TNode, TensorAnalysis<'a>> for FnApplier {
    fn apply_one(
        &self,
        egraph: &mut TGraph<'a>,
        eclass: Id,
        subst: &Subst,
        _: Option<&PatternAst<TNode>>,
        _: Symbol,
    ) -> Vec<Id> {
        let mut rw = Rewriter {
            egraph,
            subst,
            root: eclass,
        };
        let Some(new) = (self.f)(&mut rw) else {
            return Vec::new();
        };
        let (a, b) = (egraph.find(eclass), egraph.find(new));
        if a == b || egraph[a].data.types != egraph[b].data.types {
            return Vec::new();
        }
        if egraph.union(a, b) {
            vec![egraph.find(a)]
        } else {
            Vec::new()
        }
    }
}

/// A rule from an egg pattern and a right-side function.
pub fn rule<'a>(name: &str, lhs: &str, f: ApplyFn) -> Rule<'a> {
    let pattern: Pattern<TNode> = lhs
        .parse()
        .unwrap_or_else(|e| panic!("invariant: rule {name} has a valid pattern: {e}"));
    Rewrite::new(name, pattern, FnApplier { f })
        .unwrap_or_else(|e| panic!("invariant: rule {name} is well formed: {e}"))
}

/// Searches with a [`SearchFn`] over the classes holding ops of some kinds.
struct FnSearcher {
    kinds: Vec<Kind>,
    f: SearchFn,
    vars: Vec<Var>,
}

impl<'a> Searcher<TNode, TensorAnalysis<'a>> for FnSearcher {
    fn search_eclass_with_limit(
        &self,
        egraph: &TGraph<'a>,
        eclass: Id,
        limit: usize,
    ) -> Option<SearchMatches<'_, TNode>> {
        let mut substs = (self.f)(egraph, eclass);
        substs.truncate(limit);
        if substs.is_empty() {
            None
        } else {
            Some(SearchMatches {
                eclass,
                substs,
                ast: None,
            })
        }
    }

    fn search_with_limit(
        &self,
        egraph: &TGraph<'a>,
        limit: usize,
    ) -> Vec<SearchMatches<'_, TNode>> {
        let mut classes: Vec<Id> = if self.kinds.is_empty() {
            egraph.classes().map(|c| c.id).collect()
        } else {
            self.kinds
                .iter()
                .flat_map(|k| {
                    egraph
                        .classes_for_op(&super::lang::Discriminant::Op(*k))
                        .into_iter()
                        .flatten()
                })
                .collect()
        };
        classes.sort();
        classes.dedup();
        let mut out = Vec::new();
        let mut left = limit;
        for c in classes {
            if left == 0 {
                break;
            }
            if let Some(m) = self.search_eclass_with_limit(egraph, c, left) {
                left -= m.substs.len();
                out.push(m);
            }
        }
        out
    }

    fn vars(&self) -> Vec<Var> {
        self.vars.clone()
    }
}

/// A rule from a custom searcher (over classes holding ops of `kinds`, or all classes if
/// empty) and a right-side function.
pub fn custom_rule<'a>(
    name: &str,
    kinds: &[&str],
    vars: &[&str],
    search: SearchFn,
    f: ApplyFn,
) -> Rule<'a> {
    let kinds = kinds
        .iter()
        .map(|k| {
            Kind::named(k).unwrap_or_else(|| panic!("invariant: rule {name} names op kinds: {k}"))
        })
        .collect();
    let searcher = FnSearcher {
        kinds,
        f: search,
        vars: vars.iter().map(|v| var(v)).collect(),
    };
    Rewrite::new(name, searcher, FnApplier { f })
        .unwrap_or_else(|e| panic!("invariant: rule {name} is well formed: {e}"))
}

/// A substitution from (variable, class) pairs.
pub fn subst_of(pairs: &[(&str, Id)]) -> Subst {
    let mut s = Subst::with_capacity(pairs.len());
    for (v, id) in pairs {
        s.insert(var(v), *id);
    }
    s
}

/// The permutation `perm` if it is the identity.
pub fn is_identity_perm(perm: &[usize]) -> bool {
    perm.iter().enumerate().all(|(i, &p)| i == p)
}

/// True if `perm` swaps the last two axes and keeps the others.
pub fn swaps_last_two(perm: &[usize]) -> bool {
    let r = perm.len();
    r >= 2
        && perm[..r - 2].iter().enumerate().all(|(i, &p)| i == p)
        && perm[r - 2] == r - 1
        && perm[r - 1] == r - 2
}
