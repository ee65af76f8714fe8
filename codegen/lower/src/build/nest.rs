//! Building one loop nest: expression DAG with hash-consing, index mapping through views,
//! and evaluation of graph values at symbolic indices ("pull": a value at an index is a
//! function of its inputs at derived indices).

use std::collections::HashMap;

use crate::fusion::view::row_major;
use tessera_ir::{DType, Graph, NodeId, Op, ValueId};

use super::KernelBuilder;
use crate::LowerError;
use crate::kir::{Expr, ExprId, ExprOp, Guard, Hints, Index, Lit, Nest, Phase, Reduction, Store};

/// A value the nest computes once per outer point (a root's result), valid only at the
/// canonical position `flat` of the value.
#[derive(Clone, Debug)]
pub(crate) struct RootValue {
    pub flat: Index,
    pub expr: ExprId,
}

pub(crate) struct NestBuilder<'k, 'g> {
    pub kb: &'k mut KernelBuilder<'g>,
    pub outer: Vec<usize>,
    pub inner: Vec<usize>,
    pub exprs: Vec<Expr>,
    memo: HashMap<Expr, ExprId>,
    eval_memo: HashMap<(ValueId, Index), ExprId>,
    pub phases: Vec<Phase>,
    pub roots: HashMap<ValueId, RootValue>,
    /// For a concat root: the part (input) this nest writes.
    pub concat_part: Option<(NodeId, usize)>,
}

pub(crate) fn dims(g: &Graph, v: ValueId) -> Vec<usize> {
    g.ty(v).shape.dims().to_vec()
}

/// `flat` (an index into a row-major tensor of `shape`) as one index per axis.
pub(crate) fn unflatten(flat: &Index, shape: &[usize]) -> Vec<Index> {
    if shape.contains(&0) {
        // No element exists; the index is never evaluated.
        return vec![Index::zero(); shape.len()];
    }
    let strides = row_major(shape);
    shape
        .iter()
        .zip(&strides)
        .enumerate()
        .map(|(k, (&d, &s))| {
            if d == 1 {
                Index::zero()
            } else if k == 0 {
                flat.div(s)
            } else {
                flat.div(s).rem(d as i64)
            }
        })
        .collect()
}

/// Index into an operand of shape `x` broadcast (numpy) to output shape `out`.
pub(crate) fn broadcast_index(x: &[usize], out: &[usize], idx: &[Index]) -> Vec<Index> {
    let lead = out.len() - x.len();
    x.iter()
        .enumerate()
        .map(|(k, &d)| {
            if d == 1 {
                Index::zero()
            } else {
                idx[lead + k].clone()
            }
        })
        .collect()
}

/// The index into a view node's input that its output element `idx` (output `slot`) reads.
pub(crate) fn map_view(g: &Graph, n: NodeId, slot: usize, idx: &[Index]) -> Vec<Index> {
    let node = g.node(n);
    let in_dims = dims(g, node.inputs[0]);
    let out_dims = dims(g, node.outputs[slot]);
    match &node.op {
        Op::Reshape { .. } => {
            let flat = Index::dot(idx, &row_major(&out_dims));
            unflatten(&flat, &in_dims)
        }
        Op::Transpose { perm } => {
            let mut out = vec![Index::zero(); in_dims.len()];
            for (j, &p) in perm.iter().enumerate() {
                out[p] = idx[j].clone();
            }
            out
        }
        Op::Expand { .. } => broadcast_index(&in_dims, &out_dims, idx),
        Op::Slice {
            axes,
            starts,
            steps,
            ..
        } => {
            let mut out = idx.to_vec();
            for ((&a, &s), &st) in axes.iter().zip(starts).zip(steps) {
                out[a] = if out_dims[a] == 0 {
                    Index::zero()
                } else {
                    idx[a].scale(st).add_const(s)
                };
            }
            out
        }
        Op::Split { axis, sizes } => {
            let off: usize = sizes[..slot].iter().sum();
            let mut out = idx.to_vec();
            out[*axis] = idx[*axis].add_const(off as i64);
            out
        }
        _ => idx.to_vec(),
    }
}

impl<'k, 'g> NestBuilder<'k, 'g> {
    pub fn new(kb: &'k mut KernelBuilder<'g>, outer: Vec<usize>, inner: Vec<usize>) -> Self {
        NestBuilder {
            kb,
            outer,
            inner,
            exprs: Vec::new(),
            memo: HashMap::new(),
            eval_memo: HashMap::new(),
            phases: Vec::new(),
            roots: HashMap::new(),
            concat_part: None,
        }
    }

    pub fn g(&self) -> &'g Graph {
        self.kb.g
    }

    /// Adds an expression (or finds an equal one), after local simplifications.
    pub fn push(&mut self, dtype: DType, op: ExprOp) -> ExprId {
        if let Some(e) = self.simplify(dtype, &op) {
            return e;
        }
        let e = Expr { dtype, op };
        if let Some(&id) = self.memo.get(&e) {
            return id;
        }
        let id = ExprId::new(self.exprs.len());
        self.memo.insert(e.clone(), id);
        self.exprs.push(e);
        id
    }

    fn simplify(&mut self, dtype: DType, op: &ExprOp) -> Option<ExprId> {
        use tessera_ir::BinaryOp as B;
        let lit = |s: &Self, e: ExprId| match s.exprs[e.index()].op {
            ExprOp::Lit(l) => Some(l),
            _ => None,
        };
        match *op {
            ExprOp::Cast(a) if self.exprs[a.index()].dtype == dtype => Some(a),
            ExprOp::Binary(B::Mul, a, b) if dtype.is_float() => {
                if lit(self, b).is_some_and(|l| l.as_f64() == 1.0) {
                    Some(a)
                } else if lit(self, a).is_some_and(|l| l.as_f64() == 1.0) {
                    Some(b)
                } else {
                    None
                }
            }
            ExprOp::Binary(B::Div, a, b) if dtype.is_float() => {
                lit(self, b).is_some_and(|l| l.as_f64() == 1.0).then_some(a)
            }
            ExprOp::Binary(B::Pow, a, b)
                if dtype.is_float() && self.exprs[b.index()].dtype.is_float() =>
            {
                let p = lit(self, b)?.as_f64();
                if p == 1.0 {
                    Some(a)
                } else if p == 2.0 {
                    Some(self.push(dtype, ExprOp::Binary(B::Mul, a, a)))
                } else if p == 3.0 {
                    let sq = self.push(dtype, ExprOp::Binary(B::Mul, a, a));
                    Some(self.push(dtype, ExprOp::Binary(B::Mul, sq, a)))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    pub fn lit_f(&mut self, dtype: DType, v: f64) -> ExprId {
        let v = match dtype {
            DType::F32 => v as f32 as f64,
            _ => v,
        };
        self.push(dtype, ExprOp::Lit(Lit::float(v)))
    }

    pub fn lit_i(&mut self, dtype: DType, v: i64) -> ExprId {
        self.push(dtype, ExprOp::Lit(Lit::I(v)))
    }

    pub fn bin(&mut self, op: tessera_ir::BinaryOp, a: ExprId, b: ExprId) -> ExprId {
        let dt = if op.is_predicate() {
            DType::Bool
        } else {
            self.exprs[a.index()].dtype
        };
        self.push(dt, ExprOp::Binary(op, a, b))
    }

    pub fn un(&mut self, op: tessera_ir::UnaryOp, a: ExprId) -> ExprId {
        let dt = if op.is_predicate() {
            DType::Bool
        } else {
            self.exprs[a.index()].dtype
        };
        self.push(dt, ExprOp::Unary(op, a))
    }

    pub fn cast(&mut self, a: ExprId, to: DType) -> ExprId {
        self.push(to, ExprOp::Cast(a))
    }

    pub fn dtype(&self, e: ExprId) -> DType {
        self.exprs[e.index()].dtype
    }

    /// f16/bf16 values are widened to f32 for accumulation.
    pub fn widen(&mut self, e: ExprId) -> ExprId {
        match self.dtype(e) {
            DType::F16 | DType::BF16 => self.cast(e, DType::F32),
            _ => e,
        }
    }

    /// Appends a reduction phase; returns the `Acc` expression of each accumulator.
    pub fn reduce_phase(&mut self, accs: Vec<Reduction>) -> Vec<ExprId> {
        let phase = self.phases.len() as u16;
        let out = accs
            .iter()
            .enumerate()
            .map(|(slot, r)| {
                self.push(
                    r.dtype,
                    ExprOp::Acc {
                        phase,
                        slot: slot as u16,
                    },
                )
            })
            .collect();
        self.phases.push(Phase::Reduce(accs));
        out
    }

    pub fn store_phase(&mut self, looped: bool, stores: Vec<Store>) {
        if !stores.is_empty() {
            self.phases.push(Phase::Store { looped, stores });
        }
    }

    /// Loads element `flat` of the value `src` that lives in memory (graph input,
    /// constant, or stored by a kernel). One-element constants become literals.
    pub fn load(&mut self, src: ValueId, flat: Index) -> ExprId {
        let g = self.g();
        let dtype = g.ty(src).dtype;
        if let Some(t) = g.constant(src)
            && t.numel() == 1
        {
            let l = if dtype.is_float() {
                Lit::float(t.to_f64_vec()[0])
            } else if dtype == DType::Bool {
                Lit::B(t.to_i64_vec()[0] != 0)
            } else {
                Lit::I(t.to_i64_vec()[0])
            };
            return self.push(dtype, ExprOp::Lit(l));
        }
        let param = self.kb.read_param(src);
        self.push(dtype, ExprOp::Load { param, index: flat })
    }

    /// Guarded load: element `flat` of `src` if all guards hold, else `default`.
    pub fn load_if(
        &mut self,
        src: ValueId,
        flat: Index,
        guards: Vec<Guard>,
        default: Lit,
    ) -> ExprId {
        let dtype = self.g().ty(src).dtype;
        let guards: Vec<Guard> = guards
            .into_iter()
            .filter(|g| {
                let (lo, hi) = g.index.range();
                !(lo >= g.lo && hi < g.hi)
            })
            .collect();
        if guards.is_empty() {
            return self.load(src, flat);
        }
        let param = self.kb.read_param(src);
        self.push(
            dtype,
            ExprOp::LoadIf {
                param,
                index: flat,
                guards,
                default,
            },
        )
    }

    /// See [`KernelBuilder::memory_index`].
    pub fn memory_index(&self, v: ValueId, idx: &[Index]) -> Option<(ValueId, Index)> {
        self.kb.memory_index(v, idx)
    }

    /// The expression for element `idx` of value `v`.
    pub fn eval(&mut self, v: ValueId, idx: &[Index]) -> Result<ExprId, LowerError> {
        let g = self.g();
        let vd = dims(g, v);
        let flat = Index::dot(idx, &row_major(&vd));
        if let Some(&e) = self.eval_memo.get(&(v, flat.clone())) {
            return Ok(e);
        }
        let e = self.eval_uncached(v, idx, &flat)?;
        self.eval_memo.insert((v, flat), e);
        Ok(e)
    }

    fn eval_uncached(
        &mut self,
        v: ValueId,
        idx: &[Index],
        flat: &Index,
    ) -> Result<ExprId, LowerError> {
        let g = self.g();
        if let Some(r) = self.roots.get(&v) {
            if r.flat == *flat {
                return Ok(r.expr);
            }
            let p = g.producer(v).expect("invariant: roots are node outputs");
            return Err(self.kb.error(
                p,
                format!(
                    "value {v} is needed at [{flat}] but this kernel has it at [{}]",
                    r.flat
                ),
            ));
        }
        let Some(p) = g.producer(v) else {
            return Ok(self.load(v, flat.clone()));
        };
        if !self.kb.inside(p) {
            if self.kb.plan.is_virtual(p) {
                let node = g.node(p);
                let slot = node.outputs.iter().position(|&o| o == v).unwrap_or(0);
                let inner = map_view(g, p, slot, idx);
                return self.eval(node.inputs[0], &inner);
            }
            return Ok(self.load(v, flat.clone()));
        }
        let slot = g.node(p).outputs.iter().position(|&o| o == v).unwrap_or(0);
        super::ops::eval_node(self, p, slot, idx)
    }

    /// The finished nest, with hints chosen for it.
    pub fn finish(self) -> Nest {
        self.finish_with(true)
    }

    /// The finished nest for a kernel that runs it on tiles of outer points.
    pub fn finish_tiled(self) -> Nest {
        self.finish_with(false)
    }

    fn finish_with(self, allow_outer: bool) -> Nest {
        let mut nest = Nest {
            outer: self.outer,
            inner: self.inner,
            exprs: self.exprs,
            phases: self.phases,
            hints: Hints {
                vector: crate::kir::VectorAxis::None,
                width: 1,
                unroll: 1,
                parallel: true,
                gpu: crate::kir::GpuMapping::Elementwise { block: 256 },
            },
        };
        nest.hints = super::hints::choose(&nest, &self.kb.params, allow_outer);
        nest
    }
}

/// A store of `value` into element `flat` of the stored value `v`.
pub(crate) fn store_of(nb: &mut NestBuilder, v: ValueId, flat: Index, value: ExprId) -> Store {
    let param = nb.kb.write_param(v);
    Store {
        param,
        index: flat,
        value,
    }
}
