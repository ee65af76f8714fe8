//! The inline f32 math against f64 references, through the JIT, scalar and vectorized;
//! what the JIT reports for nests it cannot compile.

use tessera_ir::{DType, UnaryOp, ValueId};

use super::Jit;
use crate::{CodegenError, KernelError};
use tessera_lower::kir::{
    Access, Binding, Expr, ExprId, ExprOp, GpuMapping, Hints, Index, Nest, Param, ParamId, Phase,
    Store, Var, VectorAxis,
};

fn nest(op: UnaryOp, n: usize, vector: bool) -> (Nest, Vec<Param>) {
    let i = Index::var(Var::Inner(0), n);
    let params = vec![
        Param {
            dtype: DType::F32,
            len: n,
            access: Access::Read,
            binding: Binding::Value(ValueId::new(0)),
        },
        Param {
            dtype: DType::F32,
            len: n,
            access: Access::Write,
            binding: Binding::Value(ValueId::new(1)),
        },
    ];
    let nest = Nest {
        outer: Vec::new(),
        inner: vec![n],
        exprs: vec![
            Expr {
                dtype: DType::F32,
                op: ExprOp::Load {
                    param: ParamId(0),
                    index: i.clone(),
                },
            },
            Expr {
                dtype: DType::F32,
                op: ExprOp::Unary(op, ExprId(0)),
            },
        ],
        phases: vec![Phase::Store {
            looped: true,
            stores: vec![Store {
                param: ParamId(1),
                index: i,
                value: ExprId(1),
            }],
        }],
        hints: Hints {
            vector: if vector {
                VectorAxis::Inner
            } else {
                VectorAxis::None
            },
            width: if vector { 4 } else { 1 },
            unroll: if vector { 2 } else { 1 },
            parallel: false,
            gpu: GpuMapping::Elementwise { block: 256 },
        },
    };
    (nest, params)
}

fn run(op: UnaryOp, xs: &[f32], vector: bool) -> Vec<f32> {
    let (n, p) = nest(op, xs.len(), vector);
    let mut jit = Jit::new().expect("host is supported");
    let name = crate::KernelRef {
        name: "math".into(),
        nodes: Vec::new(),
    };
    let k = jit.add_nest(&name, &n, &p).expect("compiles");
    let code = jit.finish().expect("links");
    let mut out = vec![0f32; xs.len()];
    let ptrs = [xs.as_ptr() as *mut u8, out.as_mut_ptr() as *mut u8];
    let mut status = 0u64;
    // SAFETY: both buffers hold `xs.len()` f32 values; the range is the whole nest.
    unsafe { (code.get(k))(ptrs.as_ptr(), &mut status, 0, 1, 0, xs.len() as u64) };
    out
}

fn ulps(got: f32, want: f64) -> f64 {
    if got.is_nan() && want.is_nan() {
        return 0.0;
    }
    let ulp = (f32::EPSILON as f64) * want.abs().max(f32::MIN_POSITIVE as f64);
    (got as f64 - want).abs() / ulp
}

fn check(op: UnaryOp, lo: f32, hi: f32, f: fn(f64) -> f64, max_ulp: f64) {
    let n = 40_003;
    let xs: Vec<f32> = (0..n)
        .map(|k| lo + (hi - lo) * k as f32 / (n - 1) as f32)
        .collect();
    let v = run(op, &xs, true);
    let s = run(op, &xs, false);
    assert_eq!(v, s, "{op:?}: vector and scalar code differ");
    let worst = xs
        .iter()
        .zip(&v)
        .map(|(&x, &y)| ulps(y, f(x as f64)))
        .fold(0.0, f64::max);
    assert!(worst <= max_ulp, "{op:?} on [{lo}, {hi}]: {worst:.2} ulp");
}

#[test]
fn exp_log_tanh_sigmoid_erf_are_accurate() {
    check(UnaryOp::Exp, -86.0, 88.0, f64::exp, 1.5);
    check(UnaryOp::Log, 1e-30, 1e30, f64::ln, 1.5);
    check(UnaryOp::Log, 0.25, 4.0, f64::ln, 1.5);
    check(UnaryOp::Tanh, -12.0, 12.0, f64::tanh, 2.0);
    check(UnaryOp::Tanh, -0.01, 0.01, f64::tanh, 2.0);
    check(
        UnaryOp::Sigmoid,
        -80.0,
        30.0,
        |x| 1.0 / (1.0 + (-x).exp()),
        3.0,
    );
    check(UnaryOp::Erf, -5.0, 5.0, libm::erf, 3.0);
    check(UnaryOp::Erf, -1e-3, 1e-3, libm::erf, 3.0);
}

#[test]
fn special_values() {
    let xs = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0];
    let e = run(UnaryOp::Exp, &xs, false);
    assert!(e[0].is_nan() && e[1] == f32::INFINITY && e[2] == 0.0 && e[3] == 1.0);
    let l = run(UnaryOp::Log, &xs, false);
    assert!(l[0].is_nan() && l[1] == f32::INFINITY && l[2].is_nan() && l[3] == f32::NEG_INFINITY);
    let t = run(UnaryOp::Tanh, &xs, false);
    assert!(t[0].is_nan() && t[1] == 1.0 && t[2] == -1.0 && t[3] == 0.0);
    let r = run(UnaryOp::Erf, &xs, false);
    assert!(r[0].is_nan() && r[1] == 1.0 && r[2] == -1.0 && r[3] == 0.0);
}

/// The error `add_nest` returns for `n`.
fn compile_error(n: &Nest, p: &[Param]) -> (String, KernelError) {
    let mut jit = Jit::new().expect("host is supported");
    let name = crate::KernelRef {
        name: "k0_bad".into(),
        nodes: Vec::new(),
    };
    match jit.add_nest(&name, n, p) {
        Err(CodegenError::Kernel {
            backend: "cranelift",
            kernel,
            error,
        }) => (kernel.name, error),
        Err(e) => panic!("not a kernel error: {e}"),
        Ok(_) => panic!("compiled"),
    }
}

#[test]
fn unsupported_op_and_unvectorizable_cast_are_typed_errors_naming_the_kernel() {
    // `not` of an f32 (the verifier rejects it too): no lowering, scalar or vector.
    for vector in [false, true] {
        let (n, p) = nest(UnaryOp::Not, 8, vector);
        let (kernel, error) = compile_error(&n, &p);
        assert_eq!(kernel, "k0_bad");
        assert_eq!(
            error,
            KernelError::Unsupported {
                op: "not",
                dtype: DType::F32
            }
        );
    }
    // A cast in a loop the hints vectorize: lane by lane only.
    let (mut n, p) = nest(UnaryOp::Neg, 8, true);
    n.exprs[1].op = ExprOp::Cast(ExprId(0));
    let (_, error) = compile_error(&n, &p);
    assert_eq!(
        error,
        KernelError::NotVectorizable {
            expr: ExprId(1),
            what: "cast"
        }
    );
    assert_eq!(error.to_string(), "e1: cast cannot be vectorized");
}
