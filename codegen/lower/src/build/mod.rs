//! From fusion groups to kernels: [`build_kernels`].
//!
//! Each group of a [`FusionPlan`] becomes one [`Kernel`]. The builder evaluates every value
//! the group stores at a symbolic index of the kernel's iteration space ("pull"): a
//! pointwise op's element is an expression of its inputs' elements at derived indices,
//! views map indices, values in memory become loads. Roots (reductions, windows,
//! contractions, attention, concatenation) give the loop structure and are computed in
//! phases before the stores that use them.

mod hints;
mod nest;
mod ops;
mod roots;

use std::collections::{BTreeSet, HashMap};

use crate::fusion::{FusionPlan, Group, analyze::GroupKind};
use tessera_ir::{DType, Graph, NodeId, ValueId};

use crate::LowerError;
use crate::fusion::view::row_major;
use crate::kir::{Access, Binding, Body, ExprOp, Index, Kernel, Nest, Param, ParamId, Phase};

/// Builds the kernel of every group of `plan`, in execution order.
pub fn build_kernels(g: &Graph, plan: &FusionPlan) -> Result<Vec<Kernel>, LowerError> {
    (0..plan.groups.len())
        .map(|i| build_kernel(g, plan, i))
        .collect()
}

/// Builds the kernel of group `index` of `plan`.
pub fn build_kernel(g: &Graph, plan: &FusionPlan, index: usize) -> Result<Kernel, LowerError> {
    let group = &plan.groups[index];
    let mut kb = KernelBuilder {
        g,
        plan,
        group,
        inside: group.nodes.iter().copied().collect(),
        params: Vec::new(),
        param_of: HashMap::new(),
    };
    let body = match group.kind() {
        GroupKind::Pointwise => Body::Loops(roots::pointwise(&mut kb)?),
        GroupKind::Reduction => Body::Loops(vec![roots::reduction(&mut kb)?]),
        GroupKind::Window => Body::Loops(vec![roots::window(&mut kb)?]),
        GroupKind::Concat => Body::Loops(roots::concat(&mut kb)?),
        GroupKind::Contraction => roots::contraction(&mut kb)?,
        GroupKind::Attention => roots::attention(&mut kb)?,
    };
    let first = group.shape.roots.first().copied().unwrap_or(group.nodes[0]);
    let name = format!("k{index}_{}", g.node(first).op.name());
    let in_place = match &body {
        Body::Loops(nests) if nests.len() == 1 => in_place_pairs(&kb.params, &nests[0]),
        _ => Vec::new(),
    };
    Ok(Kernel {
        name,
        nodes: group.nodes.clone(),
        params: kb.params,
        body,
        in_place,
    })
}

/// Input/output parameter pairs where every load of the input uses exactly the index of
/// the output's single store, and sizes match.
fn in_place_pairs(params: &[Param], nest: &Nest) -> Vec<(ParamId, ParamId)> {
    let mut stores: HashMap<ParamId, Vec<&crate::kir::Index>> = HashMap::new();
    for ph in &nest.phases {
        if let Phase::Store { stores: s, .. } = ph {
            for st in s {
                stores.entry(st.param).or_default().push(&st.index);
            }
        }
    }
    let mut loads: HashMap<ParamId, Vec<Option<&crate::kir::Index>>> = HashMap::new();
    for e in &nest.exprs {
        match &e.op {
            ExprOp::Load { param, index } => loads.entry(*param).or_default().push(Some(index)),
            ExprOp::LoadIf { param, .. } => loads.entry(*param).or_default().push(None),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut used_out = BTreeSet::new();
    let mut ins: Vec<_> = loads.keys().copied().collect();
    ins.sort();
    for i in ins {
        let pi = &params[i.index()];
        if pi.access != Access::Read {
            continue;
        }
        let mut outs: Vec<_> = stores.keys().copied().collect();
        outs.sort();
        for o in outs {
            let po = &params[o.index()];
            if used_out.contains(&o)
                || po.len != pi.len
                || po.dtype.size_bytes() != pi.dtype.size_bytes()
                || stores[&o].len() != 1
            {
                continue;
            }
            let si = stores[&o][0];
            if loads[&i].iter().all(|l| *l == Some(si)) {
                out.push((i, o));
                used_out.insert(o);
                break;
            }
        }
    }
    out
}

/// Per-kernel state: the group, its parameters.
pub(crate) struct KernelBuilder<'g> {
    pub g: &'g Graph,
    pub plan: &'g FusionPlan,
    pub group: &'g Group,
    inside: BTreeSet<NodeId>,
    pub params: Vec<Param>,
    param_of: HashMap<ValueId, ParamId>,
}

impl<'g> KernelBuilder<'g> {
    pub fn inside(&self, n: NodeId) -> bool {
        self.inside.contains(&n)
    }

    fn param(&mut self, v: ValueId, access: Access) -> ParamId {
        if let Some(&p) = self.param_of.get(&v) {
            let cur = &mut self.params[p.index()].access;
            if *cur != access {
                *cur = Access::ReadWrite;
            }
            return p;
        }
        let ty = self.g.ty(v);
        let id = ParamId::new(self.params.len());
        self.params.push(Param {
            dtype: ty.dtype,
            len: ty.shape.numel(),
            access,
            binding: Binding::Value(v),
        });
        self.param_of.insert(v, id);
        id
    }

    pub fn read_param(&mut self, v: ValueId) -> ParamId {
        self.param(v, Access::Read)
    }

    pub fn write_param(&mut self, v: ValueId) -> ParamId {
        self.param(v, Access::Write)
    }

    pub fn scratch(&mut self, dtype: DType, len: usize) -> ParamId {
        let id = ParamId::new(self.params.len());
        self.params.push(Param {
            dtype,
            len,
            access: Access::ReadWrite,
            binding: Binding::Scratch,
        });
        id
    }

    /// Resolves `v` through virtual views to the value in memory it reads, and the index
    /// into that value (row-major flat) for element `idx` of `v`. `None` if `v` is
    /// computed inside this kernel.
    pub fn memory_index(&self, v: ValueId, idx: &[Index]) -> Option<(ValueId, Index)> {
        let g = self.g;
        let mut cur = v;
        let mut idx = idx.to_vec();
        loop {
            match g.producer(cur) {
                Some(p) if self.inside(p) => return None,
                Some(p) if self.plan.is_virtual(p) => {
                    let node = g.node(p);
                    let slot = node.outputs.iter().position(|&o| o == cur).unwrap_or(0);
                    idx = nest::map_view(g, p, slot, &idx);
                    cur = node.inputs[0];
                }
                _ => {
                    let flat = Index::dot(&idx, &row_major(g.ty(cur).shape.dims()));
                    return Some((cur, flat));
                }
            }
        }
    }

    pub fn error(&self, n: NodeId, message: impl Into<String>) -> LowerError {
        LowerError::Build {
            node: self.g.node_ref(n),
            message: message.into(),
        }
    }
}
