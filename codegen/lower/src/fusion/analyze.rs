//! Which node sets form a kernel the backend can generate: the planner's legality check.
//!
//! A group gets its loop structure from its roots (see [`super::classify`](mod@super::classify)). Every value
//! downstream of a root inside the group is *tainted*: it exists only for the current
//! point of the kernel's outer loop, so it must be read at its own position (identity), or,
//! for a per-row result of a reduction, broadcast along the reduced axes. Values that do
//! not depend on a root are pure and may be evaluated at any index (recomputed).
//!
//! Rules, checked by [`analyze`]:
//! 1. Roots: none (a pointwise group); or exactly one concat, window, contraction or
//!    attention node (attention alone); or reductions that all read an input of one shape `S` and reduce the
//!    same axes `R`.
//! 2. Window, contraction and attention roots read only values from outside the group.
//! 3. A tainted value is read only by pointwise nodes or reduction roots, directly (no views
//!    but identities), and at its own shape — except a per-row value (placement
//!    [`Placement::Reduced`]), which a full-shape pointwise node may broadcast, through
//!    reshapes, along `R`.
//! 4. Gathers and materialized views are never tainted.
//! 5. In a group with roots, every stored value has the full shape `S` or (reductions) a
//!    per-row placement.
//!
//! A node set that breaks a rule gets the reason as an [`Illegal`]: the planner refuses
//! such merges, and a group of its own plan that breaks one fails the plan
//! ([`crate::LowerError::Plan`]).

use std::collections::{BTreeMap, BTreeSet};

use tessera_ir::{Graph, NodeId, Op, ValueId};

use super::classify::{OpClass, reduced_axes};
use super::view::{ViewStep, view_chain};

/// The loop structure of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupKind {
    /// Elementwise and data-movement work only.
    Pointwise,
    /// One or more reductions over the same axes, with prologue and epilogue.
    Reduction,
    /// Pooling, LRN, direct convolution or a loop contraction, with an epilogue.
    Window,
    /// A GEMM library call with an epilogue.
    Contraction,
    /// Fused attention.
    Attention,
    /// A concatenation, written one input region at a time, with an epilogue.
    Concat,
}

impl GroupKind {
    pub fn name(self) -> &'static str {
        match self {
            GroupKind::Pointwise => "pointwise",
            GroupKind::Reduction => "reduction",
            GroupKind::Window => "window",
            GroupKind::Contraction => "contraction",
            GroupKind::Attention => "attention",
            GroupKind::Concat => "concat",
        }
    }
}

/// Where a tainted value lives relative to the group's space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The value has the group's full shape `S`, read at the current point.
    Full,
    /// One element per outer point (row) of a reduction group: its row-major order is
    /// that of `S` without the reduced axes.
    Reduced,
}

/// Why a node set cannot be one kernel: the rule of [`analyze`] it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Illegal {
    /// A group without stored values (nothing outside it reads what it computes).
    #[error("a group must store something")]
    NothingStored,
    /// Rule 1.
    #[error("reductions cannot share a kernel with another root")]
    MixedRoots,
    /// Rule 1.
    #[error("reductions {first} and {other} do not share input shape and axes")]
    ReductionsDiffer { first: NodeId, other: NodeId },
    /// Rule 1.
    #[error("{0} roots cannot share a kernel")]
    ManyRoots(usize),
    /// Rule 1.
    #[error("fused attention takes no prologue or epilogue")]
    AttentionNotAlone,
    /// Rule 2.
    #[error(
        "{node} ({op}) must read its operands from memory, not from {producer} in the same kernel"
    )]
    OperandInGroup {
        node: NodeId,
        op: &'static str,
        producer: NodeId,
    },
    /// Rule 2.
    #[error("{node} ({op}) reads a value computed after a root")]
    RootAfterRoot { node: NodeId, op: &'static str },
    /// Rule 3: a full-shape value read through a view other than an identity.
    #[error("{node} reads {value} at another position than its own")]
    ReadElsewhere { node: NodeId, value: ValueId },
    /// Rules 3 and 4.
    #[error("{node} ({op}) cannot run on values computed after a root")]
    NotPointwise { node: NodeId, op: &'static str },
    /// Rule 3.
    #[error(
        "{node} ({op}) has shape {shape:?}, neither the kernel's {space:?} nor a per-row shape"
    )]
    OffSpace {
        node: NodeId,
        op: &'static str,
        shape: Vec<usize>,
        space: Vec<usize>,
    },
    /// Rule 3: per-row values are read through reshapes only.
    #[error("{node} reads per-row {value} through a view")]
    RowThroughView { node: NodeId, value: ValueId },
    /// Rule 3.
    #[error(
        "{node} broadcasts per-row {value} of shape {shape:?} over {space:?} along other axes than {reduced:?}"
    )]
    RowBroadcast {
        node: NodeId,
        value: ValueId,
        shape: Vec<usize>,
        space: Vec<usize>,
        reduced: Vec<usize>,
    },
    /// Rule 3.
    #[error("{node} reads per-row {value} at another position")]
    RowElsewhere { node: NodeId, value: ValueId },
    /// A tainted value without a placement: a bug in [`analyze`].
    #[error("{0} has no placement")]
    Unplaced(ValueId),
    /// Rule 5.
    #[error("stored value {value} of shape {shape:?} does not fit the kernel's space {space:?}")]
    StoredOffSpace {
        value: ValueId,
        shape: Vec<usize>,
        space: Vec<usize>,
    },
}

/// The result of a successful [`analyze`].
#[derive(Clone, Debug, PartialEq)]
pub struct GroupShape {
    pub kind: GroupKind,
    /// The iteration space: a root's output shape, the reductions' input shape, or for a
    /// pointwise group the shape of its first stored value.
    pub space: Vec<usize>,
    /// Reduced axes of `space` (reduction groups only).
    pub reduced: Vec<usize>,
    pub roots: Vec<NodeId>,
    pub tainted: BTreeSet<NodeId>,
    /// Placement of every tainted value.
    pub placement: BTreeMap<ValueId, Placement>,
}

/// What [`analyze`] needs to know about the rest of the plan.
pub struct Context<'a> {
    pub g: &'a Graph,
    /// Class of every node.
    pub class: &'a [OpClass],
    /// True for view nodes that are read through (not materialized).
    pub virtual_view: &'a dyn Fn(NodeId) -> bool,
}

impl Context<'_> {
    /// The value `v` is read from after crossing virtual views, and the views crossed.
    pub fn source(&self, v: ValueId) -> (ValueId, Vec<ViewStep>) {
        view_chain(self.g, v, self.virtual_view)
    }
}

fn numel(d: &[usize]) -> usize {
    d.iter().product()
}

/// Checks that `nodes` (sorted, program order) can be one kernel storing `stored`.
pub fn analyze(cx: &Context, nodes: &[NodeId], stored: &[ValueId]) -> Result<GroupShape, Illegal> {
    let roots: Vec<NodeId> = nodes
        .iter()
        .copied()
        .filter(|&n| cx.class[n.index()].is_root())
        .collect();
    let (kind, space, reduced) = root_space(cx, nodes, stored, &roots)?;
    let reduced_numel: usize = space
        .iter()
        .enumerate()
        .filter(|(i, _)| !reduced.contains(i))
        .map(|(_, &d)| d)
        .product();
    let mut walk = Walk {
        cx,
        inside: nodes.iter().copied().collect(),
        kind,
        space,
        reduced,
        reduced_numel,
        tainted: BTreeSet::new(),
        placement: BTreeMap::new(),
    };
    for &n in nodes {
        walk.node(n)?;
    }
    walk.stored(stored)?;
    Ok(GroupShape {
        kind,
        space: walk.space,
        reduced: walk.reduced,
        roots,
        tainted: walk.tainted,
        placement: walk.placement,
    })
}

fn shape_of(g: &Graph, v: ValueId) -> Vec<usize> {
    g.ty(v).shape.dims().to_vec()
}

/// Rule 1: the group's kind, iteration space and reduced axes, from its roots.
fn root_space(
    cx: &Context,
    nodes: &[NodeId],
    stored: &[ValueId],
    roots: &[NodeId],
) -> Result<(GroupKind, Vec<usize>, Vec<usize>), Illegal> {
    let g = cx.g;
    let Some(&r0) = roots.first() else {
        let first = stored.first().ok_or(Illegal::NothingStored)?;
        return Ok((GroupKind::Pointwise, shape_of(g, *first), Vec::new()));
    };
    let reductions = roots
        .iter()
        .filter(|r| cx.class[r.index()] == OpClass::Reduction)
        .count();
    if reductions > 0 {
        if reductions < roots.len() {
            return Err(Illegal::MixedRoots);
        }
        let space = shape_of(g, g.node(r0).inputs[0]);
        let axes = reduced_axes(g, r0);
        for &r in &roots[1..] {
            if shape_of(g, g.node(r).inputs[0]) != space || reduced_axes(g, r) != axes {
                return Err(Illegal::ReductionsDiffer {
                    first: r0,
                    other: r,
                });
            }
        }
        return Ok((GroupKind::Reduction, space, axes));
    }
    if roots.len() > 1 {
        return Err(Illegal::ManyRoots(roots.len()));
    }
    if cx.class[r0.index()] == OpClass::Attention && nodes.len() > 1 {
        return Err(Illegal::AttentionNotAlone);
    }
    let kind = match cx.class[r0.index()] {
        OpClass::Window => GroupKind::Window,
        OpClass::Contraction => GroupKind::Contraction,
        OpClass::Attention => GroupKind::Attention,
        _ => GroupKind::Concat,
    };
    Ok((kind, shape_of(g, g.node(r0).outputs[0]), Vec::new()))
}

/// A read of a tainted value: the value read, its source after virtual views, the views
/// crossed.
struct TaintedRead {
    value: ValueId,
    src: ValueId,
    chain: Vec<ViewStep>,
}

/// The walk of a group in program order: taint and placements (rules 2–4), then the
/// stored values (rule 5).
struct Walk<'c, 'a> {
    cx: &'c Context<'a>,
    inside: BTreeSet<NodeId>,
    kind: GroupKind,
    space: Vec<usize>,
    reduced: Vec<usize>,
    /// Elements of `space` without the reduced axes: a per-row value's size.
    reduced_numel: usize,
    tainted: BTreeSet<NodeId>,
    placement: BTreeMap<ValueId, Placement>,
}

impl Walk<'_, '_> {
    /// Node `n`: which tainted values it reads, then the rules for roots or for the
    /// nodes after them.
    fn node(&mut self, n: NodeId) -> Result<(), Illegal> {
        let g = self.cx.g;
        let node = g.node(n);
        let class = self.cx.class[n.index()];
        let mut reads = Vec::new();
        for &v in &node.inputs {
            let (src, chain) = self.cx.source(v);
            let Some(p) = g.producer(src).filter(|p| self.inside.contains(p)) else {
                continue;
            };
            if self.tainted.contains(&p) {
                reads.push(TaintedRead {
                    value: v,
                    src,
                    chain,
                });
            } else if matches!(
                class,
                OpClass::Window | OpClass::Contraction | OpClass::Attention
            ) {
                // Rule 2.
                return Err(Illegal::OperandInGroup {
                    node: n,
                    op: node.op.name(),
                    producer: p,
                });
            }
        }
        if class.is_root() {
            return self.root(n, class, &reads);
        }
        if reads.is_empty() {
            return Ok(());
        }
        self.after_root(n, class, &reads)
    }

    /// A root: tainted itself; reductions may read full values at their own position.
    fn root(&mut self, n: NodeId, class: OpClass, reads: &[TaintedRead]) -> Result<(), Illegal> {
        let g = self.cx.g;
        let node = g.node(n);
        if !reads.is_empty() && class != OpClass::Reduction {
            return Err(Illegal::RootAfterRoot {
                node: n,
                op: node.op.name(),
            });
        }
        self.tainted.insert(n);
        for (slot, &o) in node.outputs.iter().enumerate() {
            let pl = match (&node.op, slot) {
                (Op::Reduce { .. }, _) | (Op::LayerNorm { .. }, 1 | 2) => Placement::Reduced,
                _ => Placement::Full,
            };
            self.placement.insert(o, pl);
        }
        // Reduction roots reading tainted values: only full ones, at identity.
        for r in reads {
            if self.placement.get(&r.src) != Some(&Placement::Full) || !identity_chain(g, &r.chain)
            {
                return Err(Illegal::ReadElsewhere {
                    node: n,
                    value: r.value,
                });
            }
        }
        Ok(())
    }

    /// Rules 3 and 4: a non-root reading tainted values is pointwise, of the full or a
    /// per-row shape, and reads each at its own position or broadcasts a per-row one.
    fn after_root(
        &mut self,
        n: NodeId,
        class: OpClass,
        reads: &[TaintedRead],
    ) -> Result<(), Illegal> {
        let g = self.cx.g;
        let node = g.node(n);
        if class != OpClass::Pointwise {
            return Err(Illegal::NotPointwise {
                node: n,
                op: node.op.name(),
            });
        }
        let out_shape = shape_of(g, node.outputs[0]);
        let pl = if out_shape == self.space {
            Placement::Full
        } else if self.kind == GroupKind::Reduction && numel(&out_shape) == self.reduced_numel {
            Placement::Reduced
        } else {
            return Err(Illegal::OffSpace {
                node: n,
                op: node.op.name(),
                shape: out_shape,
                space: self.space.clone(),
            });
        };
        for r in reads {
            self.read(n, pl, &out_shape, r)?;
        }
        self.tainted.insert(n);
        for &o in &node.outputs {
            self.placement.insert(o, pl);
        }
        Ok(())
    }

    /// Rule 3 for one tainted read of node `n`, whose output (of `out_shape`) has
    /// placement `pl`.
    fn read(
        &self,
        n: NodeId,
        pl: Placement,
        out_shape: &[usize],
        r: &TaintedRead,
    ) -> Result<(), Illegal> {
        let g = self.cx.g;
        let (node, value) = (n, r.value);
        let y = shape_of(g, value);
        match self.placement.get(&r.src) {
            Some(Placement::Full) => {
                if pl != Placement::Full || !identity_chain(g, &r.chain) || y != out_shape {
                    return Err(Illegal::ReadElsewhere { node, value });
                }
            }
            Some(Placement::Reduced) => {
                if !r.chain.iter().all(|&(c, _)| reshape_like(&g.node(c).op)) {
                    return Err(Illegal::RowThroughView { node, value });
                }
                match pl {
                    Placement::Full => {
                        if !broadcasts_along(&y, &self.space, &self.reduced) {
                            return Err(Illegal::RowBroadcast {
                                node,
                                value,
                                shape: y,
                                space: self.space.clone(),
                                reduced: self.reduced.clone(),
                            });
                        }
                    }
                    Placement::Reduced => {
                        if numel(&y) != self.reduced_numel
                            || !same_or_scalar_broadcast(&y, out_shape)
                        {
                            return Err(Illegal::RowElsewhere { node, value });
                        }
                    }
                }
            }
            None => return Err(Illegal::Unplaced(r.src)),
        }
        Ok(())
    }

    /// Rule 5: in a group with roots, stored values that are not tainted have the full
    /// shape or (reductions) a per-row one.
    fn stored(&self, stored: &[ValueId]) -> Result<(), Illegal> {
        if self.kind == GroupKind::Pointwise {
            return Ok(());
        }
        for &v in stored {
            if self.placement.contains_key(&v) {
                continue;
            }
            let s = shape_of(self.cx.g, v);
            let ok = s == self.space
                || (self.kind == GroupKind::Reduction
                    && is_reduced_shape(&s, &self.space, &self.reduced));
            if !ok {
                return Err(Illegal::StoredOffSpace {
                    value: v,
                    shape: s,
                    space: self.space.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Views that keep both shape and element order.
fn identity_chain(g: &Graph, chain: &[ViewStep]) -> bool {
    chain.iter().all(|&(c, slot)| {
        let node = g.node(c);
        match &node.op {
            Op::Identity | Op::Dropout { .. } => true,
            Op::Reshape { shape } => g.ty(node.inputs[0]).shape == *shape && slot == 0,
            _ => false,
        }
    })
}

fn reshape_like(op: &Op) -> bool {
    matches!(op, Op::Identity | Op::Dropout { .. } | Op::Reshape { .. })
}

/// `y` right-aligned against `space` is 1 on the reduced axes and equal elsewhere.
pub fn broadcasts_along(y: &[usize], space: &[usize], reduced: &[usize]) -> bool {
    if y.len() > space.len() {
        return false;
    }
    let lead = space.len() - y.len();
    (0..space.len()).all(|i| {
        let yi = if i < lead { 1 } else { y[i - lead] };
        let want = if reduced.contains(&i) { 1 } else { space[i] };
        yi == want || (space[i] == 1 && yi == 1)
    })
}

/// `s` is `space` with the reduced axes removed or set to 1.
pub fn is_reduced_shape(s: &[usize], space: &[usize], reduced: &[usize]) -> bool {
    let keep: Vec<usize> = space
        .iter()
        .enumerate()
        .map(|(i, &d)| if reduced.contains(&i) { 1 } else { d })
        .collect();
    let squeezed: Vec<usize> = space
        .iter()
        .enumerate()
        .filter(|(i, _)| !reduced.contains(i))
        .map(|(_, &d)| d)
        .collect();
    s == keep.as_slice() || s == squeezed.as_slice()
}

fn same_or_scalar_broadcast(y: &[usize], out: &[usize]) -> bool {
    y == out || numel(y) == numel(out)
}

#[cfg(test)]
mod tests {
    use tessera_ir::{NodeId, ValueId, text};

    use super::{Context, Illegal, analyze};
    use crate::fusion::classify::{OpClass, classify};

    /// [`analyze`] of the node set `nodes` of `src` storing `stored`; no view is virtual.
    fn check(src: &str, nodes: &[usize], stored: &[usize]) -> Result<super::GroupKind, Illegal> {
        let g = text::parse(src).expect("parses");
        let class: Vec<OpClass> = g.nodes().map(|(n, _)| classify(&g, n)).collect();
        let cx = Context {
            g: &g,
            class: &class,
            virtual_view: &|_| false,
        };
        let nodes: Vec<NodeId> = nodes.iter().map(|&n| NodeId::new(n)).collect();
        let stored: Vec<ValueId> = stored.iter().map(|&v| ValueId::new(v)).collect();
        analyze(&cx, &nodes, &stored).map(|s| s.kind)
    }

    const MATMUL: &str = r#"graph "t" {
  input "x" %0: f32[4,8]
  input "w" %1: f32[8,8]
  %2: f32[4,8] = add(%0, %0) "pre"
  %3: f32[4,8] = matmul(%2, %1) "mm"
  %4: f32[4,1] = reduce_sum(%3) {axes=[1], keep_dims=true} "sum"
  output "y" %4
}"#;

    #[test]
    fn illegal_groups_say_which_rule_they_break() {
        assert_eq!(check(MATMUL, &[1], &[3]), Ok(super::GroupKind::Contraction));
        let e = check(MATMUL, &[0, 1], &[3]).expect_err("a prologue into a matmul");
        assert_eq!(
            e,
            Illegal::OperandInGroup {
                node: NodeId::new(1),
                op: "matmul",
                producer: NodeId::new(0),
            }
        );
        assert_eq!(
            e.to_string(),
            "n1 (matmul) must read its operands from memory, not from n0 in the same kernel"
        );
        assert_eq!(check(MATMUL, &[1, 2], &[4]), Err(Illegal::MixedRoots));
        assert_eq!(check(MATMUL, &[0], &[]), Err(Illegal::NothingStored));
    }
}
