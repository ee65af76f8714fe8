//! Choosing a nest's hints ([`Hints`]): which loop to vectorize, unrolling, GPU mapping.
//!
//! Vector lanes are f32 (4 per Cranelift vector on x86_64). A loop can be vectorized when
//! everything that varies along it is f32 (or a bool mask from comparing f32 values) and
//! no gathered index varies along it. Among the inner and the outer loop, the one whose
//! varying loads and stores are more often contiguous wins.

use tessera_ir::{DType, UnaryOp};

use crate::kir::{
    ExprId, ExprOp, GpuMapping, Hints, Nest, Param, Phase, ReduceKind, Var, VectorAxis, var_deps,
};

fn var_bit(v: Var) -> u64 {
    match v {
        Var::Outer(k) => 1 << k,
        Var::Inner(k) => 1 << (32 + k as u32),
    }
}

/// `Some(gathers)` if the nest can be vectorized along `v`: the number of varying loads
/// and stores that are not contiguous along it.
fn vectorizable(nest: &Nest, params: &[Param], deps: &[u64], v: Var) -> Option<usize> {
    let bit = var_bit(v);
    let varies = |e: ExprId| deps[e.index()] & bit != 0;
    let f32_or_mask = |e: ExprId| {
        let x = &nest.exprs[e.index()];
        x.dtype == DType::F32
    };
    let mut gathers = 0;
    for (i, e) in nest.exprs.iter().enumerate() {
        if !varies(ExprId::new(i)) {
            continue;
        }
        let ok = match &e.op {
            ExprOp::Lit(_) => true,
            ExprOp::Load { param, index } | ExprOp::LoadIf { param, index, .. } => {
                let p = &params[(*param).index()];
                if index.stride_of(v) != Some(1) {
                    gathers += 1;
                }
                p.dtype == DType::F32 && e.dtype == DType::F32
            }
            ExprOp::InRange(_) => true,
            ExprOp::Unary(u, a) => match u {
                UnaryOp::IsNaN | UnaryOp::IsInf => f32_or_mask(*a),
                UnaryOp::Not => e.dtype == DType::Bool,
                _ => e.dtype == DType::F32,
            },
            ExprOp::Binary(b, x, y) => {
                if b.is_predicate() {
                    let logic = matches!(
                        b,
                        tessera_ir::BinaryOp::And
                            | tessera_ir::BinaryOp::Or
                            | tessera_ir::BinaryOp::Xor
                    );
                    if logic {
                        true
                    } else {
                        f32_or_mask(*x) && f32_or_mask(*y)
                    }
                } else {
                    e.dtype == DType::F32
                        && f32_or_mask(*x)
                        && (f32_or_mask(*y) || *b == tessera_ir::BinaryOp::Pow && !varies(*y))
                }
            }
            ExprOp::Select(c, a, b) => {
                e.dtype == DType::F32
                    && nest.exprs[(*c).index()].dtype == DType::Bool
                    && f32_or_mask(*a)
                    && f32_or_mask(*b)
            }
            ExprOp::Cast(_) | ExprOp::IndexValue(_) | ExprOp::CheckIndex { .. } => false,
            ExprOp::Acc { .. } => e.dtype == DType::F32,
        };
        if !ok {
            return None;
        }
        // Bool values that vary must be consumed only by selects, logic and other masks.
    }
    for ph in &nest.phases {
        match ph {
            Phase::Reduce(rs) => {
                for r in rs {
                    let v_dep = varies(r.value) || r.mask.is_some_and(varies);
                    if matches!(r.kind, ReduceKind::ArgMax { .. }) {
                        if v_dep {
                            return None;
                        }
                    } else if v_dep && r.dtype != DType::F32 {
                        return None;
                    }
                    if !v_dep && r.dtype != DType::F32 {
                        // A scalar accumulator in a vector loop is fine only for f32.
                        if matches!(v, Var::Inner(_)) {
                            return None;
                        }
                    }
                }
            }
            Phase::Store { stores, .. } => {
                for s in stores {
                    let p = &params[s.param.index()];
                    let store_varies = varies(s.value) || s.index.mentions(v);
                    if !store_varies {
                        continue;
                    }
                    if p.dtype != DType::F32 || nest.exprs[s.value.index()].dtype != DType::F32 {
                        return None;
                    }
                    if s.index.stride_of(v) != Some(1) {
                        gathers += 1;
                    }
                }
            }
        }
    }
    // Bool expressions that vary must not reach a store or a non-select consumer except
    // other masks: every consumer check above already requires f32 values around them.
    Some(gathers)
}

/// Varying loads and stores that are not contiguous along the vectorized loop (`None`
/// when nothing is vectorized).
pub(crate) fn gathers(nest: &Nest, params: &[Param]) -> Option<usize> {
    let v = match nest.hints.vector {
        VectorAxis::None => return None,
        VectorAxis::Inner => Var::Inner(nest.inner.len() as u8 - 1),
        VectorAxis::Outer => Var::Outer(nest.outer.len() as u8 - 1),
    };
    vectorizable(nest, params, &var_deps(nest), v)
}

/// Picks the hints of `nest`. Nests the runtime calls on tiles of their outer points
/// (epilogues, im2col) pass `allow_outer = false`: an outer-vectorized nest counts its
/// parallel units differently.
pub(crate) fn choose(nest: &Nest, params: &[Param], allow_outer: bool) -> Hints {
    let deps = var_deps(nest);
    let has_reduce = nest.phases.iter().any(|p| matches!(p, Phase::Reduce(_)));
    let inner_last = nest.inner.last().copied().unwrap_or(0);
    let outer_last = nest.outer.last().copied().unwrap_or(0);
    let inner = (inner_last >= 4)
        .then(|| vectorizable(nest, params, &deps, Var::Inner(nest.inner.len() as u8 - 1)))
        .flatten();
    let outer = (allow_outer && outer_last >= 4)
        .then(|| vectorizable(nest, params, &deps, Var::Outer(nest.outer.len() as u8 - 1)))
        .flatten();
    let vector = match (inner, outer) {
        (Some(gi), Some(go)) => {
            if gi < go || (gi == go && inner_last >= 8) || outer_last < 8 {
                VectorAxis::Inner
            } else {
                VectorAxis::Outer
            }
        }
        (Some(_), None) => VectorAxis::Inner,
        (None, Some(_)) => VectorAxis::Outer,
        (None, None) => VectorAxis::None,
    };
    // Transcendental functions need many registers: four unrolled copies spill.
    let heavy = nest.exprs.iter().any(|e| {
        matches!(
            e.op,
            ExprOp::Unary(
                UnaryOp::Exp | UnaryOp::Log | UnaryOp::Tanh | UnaryOp::Erf | UnaryOp::Sigmoid,
                _
            )
        )
    });
    let unroll = match vector {
        VectorAxis::Inner if inner_last >= 64 && !heavy => 4,
        VectorAxis::Inner if inner_last >= 16 => 2,
        _ => 1,
    };
    let block = (nest.inner_points().next_power_of_two() as u32).clamp(32, 256);
    let gpu = if has_reduce && vector == VectorAxis::Inner {
        GpuMapping::RowPerBlock { block }
    } else if has_reduce {
        GpuMapping::ThreadPerRow { block: 128 }
    } else {
        GpuMapping::Elementwise { block: 256 }
    };
    Hints {
        vector,
        width: if vector == VectorAxis::None { 1 } else { 4 },
        unroll,
        parallel: true,
        gpu,
    }
}
