//! Kernel-IR nests as native pointwise programs ([`tessera_kernels::pointwise`]).
//!
//! A nest qualifies when it is elementwise f32 work the program format expresses exactly:
//! one inner loop, one phase of looped stores, no reductions, f32 values (bool only as
//! comparison masks feeding selects), loads and stores whose indices are affine in the
//! loop variables with a stride of 0 or 1 along the inner loop (stores: 1). GEMM and
//! convolution epilogues (bias, activation, residual) and plain activation kernels are
//! the common cases; everything else stays on Cranelift, and so do qualifying nests
//! without a transcendental function, which are memory-bound either way. The translation computes what
//! the nest computes, element for element, with the reference interpreter's f32 semantics.

use tessera_ir::{BinaryOp, DType, UnaryOp};
use tessera_kernels::pointwise::{Affine, BinOp, Inst, Program, Store, UnOp};
use tessera_lower::kir::{Atom, ExprOp, Index, Lit, Nest, Param, Phase, Var, VectorAxis};

/// The affine form of `idx` over a nest with `outer` loops and one inner loop.
fn affine(idx: &Index, outer: usize) -> Option<Affine> {
    let mut a = Affine {
        offset: idx.constant_part(),
        outer: vec![0; outer],
        inner: 0,
    };
    for (atom, c) in idx.terms() {
        match atom {
            Atom::Var(Var::Outer(k), _) => *a.outer.get_mut(*k as usize)? += c,
            Atom::Var(Var::Inner(0), _) => a.inner += c,
            _ => return None,
        }
    }
    (a.inner == 0 || a.inner == 1).then_some(a)
}

fn unop(u: UnaryOp) -> Option<UnOp> {
    Some(match u {
        UnaryOp::Neg => UnOp::Neg,
        UnaryOp::Abs => UnOp::Abs,
        UnaryOp::Relu => UnOp::Relu,
        UnaryOp::Exp => UnOp::Exp,
        UnaryOp::Log => UnOp::Log,
        UnaryOp::Sqrt => UnOp::Sqrt,
        UnaryOp::Reciprocal => UnOp::Reciprocal,
        UnaryOp::Erf => UnOp::Erf,
        UnaryOp::Tanh => UnOp::Tanh,
        UnaryOp::Sigmoid => UnOp::Sigmoid,
        UnaryOp::Floor => UnOp::Floor,
        UnaryOp::Ceil => UnOp::Ceil,
        UnaryOp::Round => UnOp::Round,
        _ => return None,
    })
}

fn binop(b: BinaryOp) -> Option<BinOp> {
    Some(match b {
        BinaryOp::Add => BinOp::Add,
        BinaryOp::Sub => BinOp::Sub,
        BinaryOp::Mul => BinOp::Mul,
        BinaryOp::Div => BinOp::Div,
        BinaryOp::Max => BinOp::Max,
        BinaryOp::Min => BinOp::Min,
        BinaryOp::Less => BinOp::Less,
        BinaryOp::LessOrEqual => BinOp::LessOrEqual,
        BinaryOp::Greater => BinOp::Greater,
        BinaryOp::GreaterOrEqual => BinOp::GreaterOrEqual,
        BinaryOp::Equal => BinOp::Equal,
        _ => return None,
    })
}

/// The native program of `nest` (whose kernel has parameters `params`), if it qualifies.
pub(crate) fn program(nest: &Nest, params: &[Param]) -> Option<Program> {
    let [
        Phase::Store {
            looped: true,
            stores,
        },
    ] = nest.phases.as_slice()
    else {
        return None;
    };
    if nest.inner.len() != 1 || nest.hints.vector == VectorAxis::Outer || nest.outer.len() > 8 {
        return None;
    }
    let f32_param = |p: usize| params.get(p).is_some_and(|p| p.dtype == DType::F32);
    let ty = |e: usize| nest.exprs[e].dtype;
    let mut insts = Vec::with_capacity(nest.exprs.len());
    for e in &nest.exprs {
        // Masks are only the results of comparisons; everything else is f32.
        let is_mask = matches!(&e.op, ExprOp::Binary(b, _, _) if b.is_predicate());
        if !(e.dtype == DType::F32 || is_mask && e.dtype == DType::Bool) {
            return None;
        }
        let r = |x: tessera_lower::kir::ExprId| x.0;
        let inst = match &e.op {
            ExprOp::Lit(Lit::F(bits)) => Inst::Const(f64::from_bits(*bits) as f32),
            ExprOp::Load { param, index } if f32_param(param.index()) => Inst::Load {
                param: param.index(),
                at: affine(index, nest.outer.len())?,
            },
            ExprOp::Unary(u, a) if ty(a.index()) == DType::F32 => Inst::Unary(unop(*u)?, r(*a)),
            ExprOp::Binary(BinaryOp::Pow, a, b) => match &nest.exprs[b.index()].op {
                // x² as Hugging Face's RMSNorm and variance terms write it.
                ExprOp::Lit(Lit::F(bits)) if f64::from_bits(*bits) == 2.0 => {
                    Inst::Binary(BinOp::Mul, r(*a), r(*a))
                }
                _ => return None,
            },
            ExprOp::Binary(b, x, y)
                if ty(x.index()) == DType::F32 && ty(y.index()) == DType::F32 =>
            {
                Inst::Binary(binop(*b)?, r(*x), r(*y))
            }
            ExprOp::Select(c, a, b) if ty(c.index()) == DType::Bool => {
                Inst::Select(r(*c), r(*a), r(*b))
            }
            _ => return None,
        };
        insts.push(inst);
    }
    let stores = stores
        .iter()
        .map(|s| {
            let at = affine(&s.index, nest.outer.len())?;
            (f32_param(s.param.index()) && at.inner == 1 && ty(s.value.index()) == DType::F32).then(
                || Store {
                    param: s.param.index(),
                    at,
                    value: s.value.0,
                },
            )
        })
        .collect::<Option<Vec<_>>>()?;
    let mut p = Program {
        outer: nest.outer.clone(),
        inner: nest.inner[0],
        insts,
        stores,
    };
    p.check().ok()?;
    p.fuse();
    // Memory-bound nests (bias adds, ReLU, residuals) run as fast on Cranelift's code
    // (measured: `cargo bench -p tessera-kernels --bench kernels`, pointwise table, vs
    // `tessera bench` of one-op models); transcendental functions run 2-5x faster here.
    let transcendental = p.insts.iter().any(|i| {
        matches!(
            i,
            Inst::Unary(
                UnOp::Exp | UnOp::Log | UnOp::Erf | UnOp::Tanh | UnOp::Sigmoid | UnOp::GeluErf,
                _
            )
        )
    });
    transcendental.then_some(p)
}
