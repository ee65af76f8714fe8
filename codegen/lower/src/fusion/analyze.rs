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
pub fn analyze(cx: &Context, nodes: &[NodeId], stored: &[ValueId]) -> Result<GroupShape, String> {
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
        let first = stored.first().ok_or("a group must store something")?;
        (GroupKind::Pointwise, shape_of(*first), Vec::new())
    } else {
        let reductions = roots
            .iter()
            .filter(|r| cx.class[r.index()] == OpClass::Reduction)
            .count();
        if reductions > 0 {
            if reductions < roots.len() {
                return Err("reductions cannot share a kernel with another root".into());
            }
            let r0 = roots[0];
            let space = shape_of(g.node(r0).inputs[0]);
            let axes = reduced_axes(g, r0);
            for &r in &roots[1..] {
                if shape_of(g.node(r).inputs[0]) != space || reduced_axes(g, r) != axes {
                    return Err(format!(
                        "reductions {r0} and {r} do not share input shape and axes"
                    ));
                }
            }
            (GroupKind::Reduction, space, axes)
        } else {
            if roots.len() > 1 {
                return Err(format!("{} roots cannot share a kernel", roots.len()));
            }
            let r = roots[0];
            if cx.class[r.index()] == OpClass::Attention && nodes.len() > 1 {
                return Err("fused attention takes no prologue or epilogue".into());
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
                return Err(format!(
                    "{n} ({}) must read its operands from memory, not from {p} in the same kernel",
                    node.op.name()
                ));
            }
        }
        if class.is_root() {
            if !reads_tainted.is_empty() && class != OpClass::Reduction {
                return Err(format!(
                    "{n} ({}) reads a value computed after a root",
                    node.op.name()
                ));
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
                    return Err(format!("{n} reads {v} at another position than its own"));
                }
            }
            continue;
        }
        if reads_tainted.is_empty() {
            continue;
        }
        // Rules 3 and 4: tainted non-roots are pointwise.
        if class != OpClass::Pointwise {
            return Err(format!(
                "{n} ({}) cannot run on values computed after a root",
                node.op.name()
            ));
        }
        let out = node.outputs[0];
        let out_shape = shape_of(out);
        let pl = if out_shape == space {
            Placement::Full
        } else if kind == GroupKind::Reduction && numel(&out_shape) == reduced_numel {
            Placement::Reduced
        } else {
            return Err(format!(
                "{n} ({}) has shape {out_shape:?}, neither the kernel's {space:?} nor a per-row shape",
                node.op.name()
            ));
        };
        for (v, src, chain, _) in &reads_tainted {
            let y = shape_of(*v);
            match placement.get(src) {
                Some(Placement::Full) => {
                    if pl != Placement::Full || !identity_chain(g, chain) || y != out_shape {
                        return Err(format!("{n} reads {v} at another position than its own"));
                    }
                }
                Some(Placement::Reduced) => {
                    if !chain.iter().all(|&(c, _)| reshape_like(&g.node(c).op)) {
                        return Err(format!("{n} reads per-row {v} through a view"));
                    }
                    match pl {
                        Placement::Full => {
                            if !broadcasts_along(&y, &space, &reduced) {
                                return Err(format!(
                                    "{n} broadcasts per-row {v} of shape {y:?} over {space:?} along other axes than {reduced:?}"
                                ));
                            }
                        }
                        Placement::Reduced => {
                            if numel(&y) != reduced_numel
                                || !same_or_scalar_broadcast(&y, &out_shape)
                            {
                                return Err(format!("{n} reads per-row {v} at another position"));
                            }
                        }
                    }
                }
                None => return Err(format!("{v} has no placement")),
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
                return Err(format!(
                    "stored value {v} of shape {s:?} does not fit the kernel's space {space:?}"
                ));
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
