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
    let g = cx.g;
    let inside: BTreeSet<NodeId> = nodes.iter().copied().collect();
    let internal = |v: ValueId| g.producer(v).filter(|p| inside.contains(p));
    let roots: Vec<NodeId> = nodes
        .iter()
        .copied()
        .filter(|&n| cx.class[n.index()].is_root())
        .collect();
    let shape_of = |v: ValueId| g.ty(v).shape.dims().to_vec();

    // Rule 1: root kinds.
    let (kind, space, reduced) = if roots.is_empty() {
        let first = stored.first().ok_or(Illegal::NothingStored)?;
        (GroupKind::Pointwise, shape_of(*first), Vec::new())
    } else {
        let reductions = roots
            .iter()
            .filter(|r| cx.class[r.index()] == OpClass::Reduction)
            .count();
        if reductions > 0 {
            if reductions < roots.len() {
                return Err(Illegal::MixedRoots);
            }
            let r0 = roots[0];
            let space = shape_of(g.node(r0).inputs[0]);
            let axes = reduced_axes(g, r0);
            for &r in &roots[1..] {
                if shape_of(g.node(r).inputs[0]) != space || reduced_axes(g, r) != axes {
                    return Err(Illegal::ReductionsDiffer {
                        first: r0,
                        other: r,
                    });
                }
            }
            (GroupKind::Reduction, space, axes)
        } else {
            if roots.len() > 1 {
                return Err(Illegal::ManyRoots(roots.len()));
            }
            let r = roots[0];
            if cx.class[r.index()] == OpClass::Attention && nodes.len() > 1 {
                return Err(Illegal::AttentionNotAlone);
            }
            let kind = match cx.class[r.index()] {
                OpClass::Window => GroupKind::Window,
                OpClass::Contraction => GroupKind::Contraction,
                OpClass::Attention => GroupKind::Attention,
                _ => GroupKind::Concat,
            };
            (kind, shape_of(g.node(r).outputs[0]), Vec::new())
        }
    };
    let reduced_numel: usize = space
        .iter()
        .enumerate()
        .filter(|(i, _)| !reduced.contains(i))
        .map(|(_, &d)| d)
        .product();

    // Taint and placements, in program order.
    let mut tainted: BTreeSet<NodeId> = BTreeSet::new();
    let mut placement: BTreeMap<ValueId, Placement> = BTreeMap::new();
    for &n in nodes {
        let node = g.node(n);
        let class = cx.class[n.index()];
        let mut reads_tainted = Vec::new();
        for &v in &node.inputs {
            let (src, chain) = cx.source(v);
            let Some(p) = internal(src) else { continue };
            if tainted.contains(&p) {
                reads_tainted.push((v, src, chain, p));
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
            if !reads_tainted.is_empty() && class != OpClass::Reduction {
                return Err(Illegal::RootAfterRoot {
                    node: n,
                    op: node.op.name(),
                });
            }
            tainted.insert(n);
            for (slot, &o) in node.outputs.iter().enumerate() {
                let pl = match (&node.op, slot) {
                    (Op::Reduce { .. }, _) | (Op::LayerNorm { .. }, 1 | 2) => Placement::Reduced,
                    _ => Placement::Full,
                };
                placement.insert(o, pl);
            }
            // Reduction roots reading tainted values: only full ones, at identity.
            for (v, src, chain, _) in &reads_tainted {
                if placement.get(src) != Some(&Placement::Full) || !identity_chain(g, chain) {
                    return Err(Illegal::ReadElsewhere { node: n, value: *v });
                }
            }
            continue;
        }
        if reads_tainted.is_empty() {
            continue;
        }
        // Rules 3 and 4: tainted non-roots are pointwise.
        if class != OpClass::Pointwise {
            return Err(Illegal::NotPointwise {
                node: n,
                op: node.op.name(),
            });
        }
        let out = node.outputs[0];
        let out_shape = shape_of(out);
        let pl = if out_shape == space {
            Placement::Full
        } else if kind == GroupKind::Reduction && numel(&out_shape) == reduced_numel {
            Placement::Reduced
        } else {
            return Err(Illegal::OffSpace {
                node: n,
                op: node.op.name(),
                shape: out_shape,
                space,
            });
        };
        for (v, src, chain, _) in &reads_tainted {
            let y = shape_of(*v);
            match placement.get(src) {
                Some(Placement::Full) => {
                    if pl != Placement::Full || !identity_chain(g, chain) || y != out_shape {
                        return Err(Illegal::ReadElsewhere { node: n, value: *v });
                    }
                }
                Some(Placement::Reduced) => {
                    if !chain.iter().all(|&(c, _)| reshape_like(&g.node(c).op)) {
                        return Err(Illegal::RowThroughView { node: n, value: *v });
                    }
                    match pl {
                        Placement::Full => {
                            if !broadcasts_along(&y, &space, &reduced) {
                                return Err(Illegal::RowBroadcast {
                                    node: n,
                                    value: *v,
                                    shape: y,
                                    space,
                                    reduced,
                                });
                            }
                        }
                        Placement::Reduced => {
                            if numel(&y) != reduced_numel
                                || !same_or_scalar_broadcast(&y, &out_shape)
                            {
                                return Err(Illegal::RowElsewhere { node: n, value: *v });
                            }
                        }
                    }
                }
                None => return Err(Illegal::Unplaced(*src)),
            }
        }
        tainted.insert(n);
        for &o in &node.outputs {
            placement.insert(o, pl);
        }
    }

    // Rule 5: stored values.
    if kind != GroupKind::Pointwise {
        for &v in stored {
            if placement.contains_key(&v) {
                continue;
            }
            let s = shape_of(v);
            let ok = s == space
                || (kind == GroupKind::Reduction && is_reduced_shape(&s, &space, &reduced));
            if !ok {
                return Err(Illegal::StoredOffSpace {
                    value: v,
                    shape: s,
                    space,
                });
            }
        }
    }
    Ok(GroupShape {
        kind,
        space,
        reduced,
        roots,
        tainted,
        placement,
    })
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
