//! One named test per rewrite rule of the e-graph optimizer: build the rule's left side
//! with random shapes and values, apply only that rule (`egraph::apply_rules`, which
//! extracts the rewritten form wherever the rule fired), and check that the rule fired and
//! that both sides agree on the reference interpreter at GraphNet's float32 tolerance
//! t = −5. Three seeds each.

use std::collections::BTreeSet;

use tessera::ir::{
    BinaryOp, ConvAttrs, DType, Graph, Op, ReduceOp, Shape, Tensor, UnaryOp, ValueId, verify,
};
use tessera::passes::egraph::{apply_rules, rules::rule_names};
use tessera::reference::{Reference, run};
use tessera::sample::{compare, splitmix64_uniform};

const ATOL: f64 = 1e-5;
const RTOL: f64 = 1.3e-6;

/// SplitMix64, for shapes and choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A dimension in `lo..=hi`.
    fn dim(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// Builds a left side: graph inputs with random values, constants, ops.
struct B {
    g: Graph,
    inputs: Vec<Tensor>,
    rng: Rng,
    seed: u64,
}

impl B {
    fn new(seed: u64) -> B {
        B {
            g: Graph::new("lhs"),
            inputs: Vec::new(),
            rng: Rng(seed.wrapping_mul(7919).wrapping_add(17)),
            seed,
        }
    }

    fn values(&mut self, dims: &[usize], lo: f64, hi: f64) -> Tensor {
        self.seed = self.seed.wrapping_add(1000);
        splitmix64_uniform(DType::F32, Shape::from_dims(dims), self.seed, lo, hi)
    }

    /// A graph input with values in [-1, 1).
    fn input(&mut self, dims: &[usize]) -> ValueId {
        self.input_in(dims, -1.0, 1.0)
    }

    fn input_in(&mut self, dims: &[usize], lo: f64, hi: f64) -> ValueId {
        let t = self.values(dims, lo, hi);
        let name = format!("x{}", self.inputs.len());
        self.inputs.push(t.clone());
        self.g.add_input(name, t.ty())
    }

    /// A constant with random values in [lo, hi).
    fn weight(&mut self, dims: &[usize], lo: f64, hi: f64) -> ValueId {
        let t = self.values(dims, lo, hi);
        self.g.add_constant(t, "")
    }

    fn full(&mut self, dims: &[usize], v: f64) -> ValueId {
        self.g
            .add_constant(Tensor::full(DType::F32, Shape::from_dims(dims), v), "")
    }

    fn scalar(&mut self, v: f32) -> ValueId {
        self.g.add_constant(Tensor::scalar(v), "")
    }

    fn op(&mut self, op: Op, ins: &[ValueId]) -> ValueId {
        self.g.add_node1(op, ins, "").expect("lhs is well typed")
    }

    fn un(&mut self, u: UnaryOp, x: ValueId) -> ValueId {
        self.op(Op::Unary(u), &[x])
    }

    fn bin(&mut self, b: BinaryOp, x: ValueId, y: ValueId) -> ValueId {
        self.op(Op::Binary(b), &[x, y])
    }

    fn dim(&mut self, lo: usize, hi: usize) -> usize {
        self.rng.dim(lo, hi)
    }

    fn dims_of(&self, v: ValueId) -> Vec<usize> {
        self.g.ty(v).shape.dims().to_vec()
    }
}

fn reshape(dims: &[usize]) -> Op {
    Op::Reshape {
        shape: Shape::from_dims(dims),
    }
}

fn transpose(perm: &[usize]) -> Op {
    Op::Transpose {
        perm: perm.to_vec(),
    }
}

fn reduce(op: ReduceOp, axes: &[usize]) -> Op {
    Op::Reduce {
        op,
        axes: axes.to_vec(),
        keep_dims: true,
    }
}

/// Builds the left side for three seeds, applies `rule` alone, checks it fired and that
/// both sides agree.
fn check(rule: &str, build: impl Fn(&mut B) -> Vec<ValueId>) {
    for seed in 1..=3u64 {
        let mut b = B::new(seed);
        let outs = build(&mut b);
        for (i, v) in outs.iter().enumerate() {
            b.g.add_output(format!("y{i}"), *v);
        }
        verify(&b.g).expect("lhs verifies");
        let app = apply_rules(&b.g, Some(&Reference), &[rule], 2)
            .unwrap_or_else(|e| panic!("{rule} (seed {seed}): {e}"));
        assert!(
            app.applied.get(rule).copied().unwrap_or(0) > 0,
            "{rule} (seed {seed}) did not fire on\n{}",
            tessera::ir::text::print(&b.g, &Default::default())
        );
        assert_ne!(app.graph, b.g, "{rule} (seed {seed}) changed nothing");
        let lhs = run(&b.g, &b.inputs).expect("lhs runs");
        let rhs = run(&app.graph, &b.inputs).expect("rhs runs");
        for (k, (x, y)) in lhs.iter().zip(&rhs).enumerate() {
            let c = compare(y, x, ATOL, RTOL).expect("same types");
            assert!(
                c.all_close,
                "{rule} (seed {seed}) output {k}: max abs {:.3e}, max rel {:.3e}\nlhs:\n{}\nrhs:\n{}",
                c.max_abs,
                c.max_rel,
                tessera::ir::text::print(&b.g, &Default::default()),
                tessera::ir::text::print(&app.graph, &Default::default())
            );
        }
    }
}

/// Every rule of every family, as the tests below name them.
const TESTED: &[&str] = &[
    "add-zero",
    "sub-zero",
    "mul-one",
    "div-one",
    "neg-neg",
    "identity",
    "dropout",
    "dropout-with-mask",
    "cast-noop",
    "expand-noop",
    "reshape-noop",
    "reshape-reshape",
    "transpose-noop",
    "transpose-transpose",
    "scalar-to-right-add",
    "scalar-to-right-mul",
    "constant-to-right-add",
    "constant-to-right-mul",
    "scalar-out-of-reshape",
    "scalar-out-of-transpose",
    "mul-scalars",
    "matmul-scalar-lhs",
    "matmul-scalar-rhs",
    "constant-fold",
    "matmul-transpose-b-to-gemm",
    "matmul-transpose-a-to-gemm",
    "gemm-absorb-transpose-b",
    "gemm-absorb-transpose-b-no-bias",
    "transposed-keys-regrouped",
    "reshape-transpose-reshape",
    "transpose-out-of-unary",
    "transpose-out-of-binary",
    "reshape-out-of-unary",
    "gelu-erf",
    "gelu-erf-half-first",
    "gelu-erf-half-last",
    "gelu-tanh",
    "gelu-tanh-half-first",
    "layer-norm",
    "layer-norm-no-bias",
    "layer-norm-plain",
    "rms-norm",
    "rms-norm-rsqrt",
    "softmax-exp-sum-div",
    "softmax-shift",
    "attention",
    "attention-mask",
    "attention-div",
    "attention-div-mask",
    "attention-unscaled",
    "attention-unscaled-mask",
    "attention-nan-guard",
    "attention-absorb-scale",
    "attention-absorb-scale-mask",
    "conv-mul-constant",
    "conv-mul-constant-no-bias",
    "conv-add-constant",
    "conv-add-constant-no-bias",
    "conv-batch-norm",
    "conv-batch-norm-no-bias",
    "matmul-add-to-gemm",
    "merge-matmul",
    "merge-gemm",
    "merge-conv",
];

#[test]
fn every_rule_has_a_test_and_names_are_unique() {
    let mut all = Vec::new();
    for (_, names) in rule_names() {
        all.extend(names);
    }
    let unique: BTreeSet<&str> = all.iter().map(|s| s.as_str()).collect();
    assert_eq!(unique.len(), all.len(), "duplicate rule names: {all:?}");
    let tested: BTreeSet<&str> = TESTED.iter().copied().collect();
    assert_eq!(unique, tested, "rules without a test (or tests of no rule)");
}

// ---- algebra ----------------------------------------------------------------------------

fn matrix(b: &mut B) -> ValueId {
    let (m, n) = (b.dim(1, 5), b.dim(1, 6));
    b.input(&[m, n])
}

#[test]
fn add_zero() {
    check("add-zero", |b| {
        let x = matrix(b);
        let n = b.dims_of(x)[1];
        let z = b.full(&[n], 0.0);
        vec![b.bin(BinaryOp::Add, x, z)]
    });
}

#[test]
fn sub_zero() {
    check("sub-zero", |b| {
        let x = matrix(b);
        let z = b.full(&[1], 0.0);
        vec![b.bin(BinaryOp::Sub, x, z)]
    });
}

#[test]
fn mul_one() {
    check("mul-one", |b| {
        let x = matrix(b);
        let d = b.dims_of(x);
        let o = b.full(&d, 1.0);
        vec![b.bin(BinaryOp::Mul, x, o)]
    });
}

#[test]
fn div_one() {
    check("div-one", |b| {
        let x = matrix(b);
        let o = b.full(&[], 1.0);
        vec![b.bin(BinaryOp::Div, x, o)]
    });
}

#[test]
fn neg_neg() {
    check("neg-neg", |b| {
        let x = matrix(b);
        let y = b.un(UnaryOp::Neg, x);
        let z = b.un(UnaryOp::Neg, y);
        vec![b.un(UnaryOp::Exp, z)]
    });
}

#[test]
fn identity() {
    check("identity", |b| {
        let x = matrix(b);
        let y = b.op(Op::Identity, &[x]);
        vec![b.un(UnaryOp::Relu, y)]
    });
}

#[test]
fn dropout() {
    check("dropout", |b| {
        let x = matrix(b);
        let y = b.op(
            Op::Dropout {
                ratio: 0.25,
                mask: false,
            },
            &[x],
        );
        vec![b.un(UnaryOp::Tanh, y)]
    });
}

#[test]
fn dropout_with_mask() {
    check("dropout-with-mask", |b| {
        let x = matrix(b);
        let outs =
            b.g.add_node(
                Op::Dropout {
                    ratio: 0.5,
                    mask: true,
                },
                &[x],
                "",
            )
            .expect("typed");
        vec![b.un(UnaryOp::Abs, outs[0])]
    });
}

#[test]
fn cast_noop() {
    check("cast-noop", |b| {
        let x = matrix(b);
        let y = b.op(Op::Cast { to: DType::F32 }, &[x]);
        vec![b.un(UnaryOp::Sin, y)]
    });
}

#[test]
fn expand_noop() {
    check("expand-noop", |b| {
        let x = matrix(b);
        let d = b.dims_of(x);
        let y = b.op(
            Op::Expand {
                shape: Shape::from_dims(&d),
            },
            &[x],
        );
        vec![b.un(UnaryOp::Cos, y)]
    });
}

#[test]
fn reshape_noop() {
    check("reshape-noop", |b| {
        let x = matrix(b);
        let d = b.dims_of(x);
        let y = b.op(reshape(&d), &[x]);
        vec![b.un(UnaryOp::Relu, y)]
    });
}

#[test]
fn reshape_reshape() {
    check("reshape-reshape", |b| {
        let (p, q, r) = (b.dim(1, 4), b.dim(1, 4), b.dim(1, 4));
        let x = b.input(&[p, q, r]);
        let y = b.op(reshape(&[p * q, r]), &[x]);
        let z = b.op(reshape(&[p, q * r]), &[y]);
        vec![b.un(UnaryOp::Exp, z)]
    });
}

#[test]
fn transpose_noop() {
    check("transpose-noop", |b| {
        let x = matrix(b);
        let y = b.op(transpose(&[0, 1]), &[x]);
        vec![b.un(UnaryOp::Relu, y)]
    });
}

#[test]
fn transpose_transpose() {
    check("transpose-transpose", |b| {
        let d = [b.dim(1, 4), b.dim(1, 4), b.dim(1, 4)];
        let x = b.input(&d);
        let perms: [[usize; 3]; 6] = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        let (p, q) = (b.rng.pick(&perms), b.rng.pick(&perms[1..]));
        let y = b.op(transpose(&q), &[x]);
        let z = b.op(transpose(&p), &[y]);
        vec![b.un(UnaryOp::Exp, z)]
    });
}

#[test]
fn scalar_to_right_add() {
    check("scalar-to-right-add", |b| {
        let x = matrix(b);
        let c = b.scalar(0.75);
        vec![b.bin(BinaryOp::Add, c, x)]
    });
}

#[test]
fn scalar_to_right_mul() {
    check("scalar-to-right-mul", |b| {
        let x = matrix(b);
        let c = b.scalar(-1.5);
        vec![b.bin(BinaryOp::Mul, c, x)]
    });
}

#[test]
fn constant_to_right_add() {
    check("constant-to-right-add", |b| {
        let x = matrix(b);
        let n = b.dims_of(x)[1];
        let c = b.weight(&[n], -1.0, 1.0);
        vec![b.bin(BinaryOp::Add, c, x)]
    });
}

#[test]
fn constant_to_right_mul() {
    check("constant-to-right-mul", |b| {
        // RMSNorm's weight as Hugging Face writes it: on the left.
        let x = matrix(b);
        let n = b.dims_of(x)[1];
        let g = b.weight(&[n], 0.5, 1.5);
        vec![b.bin(BinaryOp::Mul, g, x)]
    });
}

#[test]
fn scalar_out_of_reshape() {
    check("scalar-out-of-reshape", |b| {
        let (m, n) = (b.dim(1, 4), b.dim(1, 4));
        let x = b.input(&[m, n * 2]);
        let s = b.scalar(0.125);
        let y = b.bin(BinaryOp::Mul, x, s);
        vec![b.op(reshape(&[m, n, 2]), &[y])]
    });
}

#[test]
fn scalar_out_of_transpose() {
    check("scalar-out-of-transpose", |b| {
        let x = activations(b);
        let s = b.scalar(0.125);
        let y = b.bin(BinaryOp::Mul, x, s);
        vec![b.op(transpose(&[1, 0, 2]), &[y])]
    });
}

#[test]
fn mul_scalars() {
    check("mul-scalars", |b| {
        let x = matrix(b);
        let (s, t) = (b.scalar(0.5), b.scalar(3.0));
        let y = b.bin(BinaryOp::Mul, x, s);
        vec![b.bin(BinaryOp::Mul, y, t)]
    });
}

fn matmul_operands(b: &mut B) -> (ValueId, ValueId) {
    let (bt, m, k, n) = (b.dim(1, 3), b.dim(1, 5), b.dim(1, 5), b.dim(1, 5));
    (b.input(&[bt, m, k]), b.input(&[bt, k, n]))
}

#[test]
fn matmul_scalar_lhs() {
    check("matmul-scalar-lhs", |b| {
        let (x, y) = matmul_operands(b);
        let s = b.scalar(0.35);
        let xs = b.bin(BinaryOp::Mul, x, s);
        vec![b.op(Op::MatMul, &[xs, y])]
    });
}

#[test]
fn matmul_scalar_rhs() {
    check("matmul-scalar-rhs", |b| {
        let (x, y) = matmul_operands(b);
        let s = b.scalar(-2.0);
        let ys = b.bin(BinaryOp::Mul, y, s);
        vec![b.op(Op::MatMul, &[x, ys])]
    });
}

#[test]
fn constant_fold() {
    check("constant-fold", |b| {
        let x = matrix(b);
        let n = b.dims_of(x)[1];
        let (c, d) = (b.weight(&[n], -1.0, 1.0), b.weight(&[n], -1.0, 1.0));
        let e = b.bin(BinaryOp::Mul, c, d);
        let f = b.un(UnaryOp::Exp, e);
        vec![b.bin(BinaryOp::Add, x, f)]
    });
}

// ---- layout -----------------------------------------------------------------------------

#[test]
fn matmul_transpose_b_to_gemm() {
    check("matmul-transpose-b-to-gemm", |b| {
        let (m, k, n) = (b.dim(1, 5), b.dim(1, 5), b.dim(1, 5));
        let (a, w) = (b.input(&[m, k]), b.input(&[n, k]));
        let wt = b.op(transpose(&[1, 0]), &[w]);
        vec![b.op(Op::MatMul, &[a, wt])]
    });
}

#[test]
fn matmul_transpose_a_to_gemm() {
    check("matmul-transpose-a-to-gemm", |b| {
        let (m, k, n) = (b.dim(1, 5), b.dim(1, 5), b.dim(1, 5));
        let (a, w) = (b.input(&[k, m]), b.input(&[k, n]));
        let at = b.op(transpose(&[1, 0]), &[a]);
        vec![b.op(Op::MatMul, &[at, w])]
    });
}

fn gemm(trans_b: bool) -> Op {
    Op::Gemm {
        alpha: 0.5,
        beta: 2.0,
        trans_a: false,
        trans_b,
    }
}

#[test]
fn gemm_absorb_transpose_b() {
    check("gemm-absorb-transpose-b", |b| {
        let (m, k, n) = (b.dim(1, 5), b.dim(1, 5), b.dim(1, 5));
        let trans = b.rng.pick(&[false, true]);
        let (a, w, c) = (b.input(&[m, k]), b.input(&[n, k]), b.input(&[n]));
        let w = if trans {
            w
        } else {
            b.op(transpose(&[1, 0]), &[w])
        };
        let wt = b.op(transpose(&[1, 0]), &[w]);
        vec![b.op(gemm(!trans), &[a, wt, c])]
    });
}

#[test]
fn gemm_absorb_transpose_b_no_bias() {
    check("gemm-absorb-transpose-b-no-bias", |b| {
        let (m, k, n) = (b.dim(1, 5), b.dim(1, 5), b.dim(1, 5));
        let (a, w) = (b.input(&[m, k]), b.input(&[k, n]));
        let wt = b.op(transpose(&[1, 0]), &[w]);
        vec![b.op(gemm(true), &[a, wt])]
    });
}

#[test]
fn transposed_keys_regrouped() {
    check("transposed-keys-regrouped", |b| {
        // Grouped-query keys: 2 KV heads expanded to 4 as [1, 2, 2, t, d], read as
        // [4, t, d], transposed, regrouped as [1, 4, d, t] (Qwen2's export).
        let (kv, g, t, d) = (b.dim(1, 2), b.dim(1, 3), b.dim(1, 5), b.dim(1, 4));
        let k = b.input(&[1, kv, 1, t, d]);
        let e = b.op(
            Op::Expand {
                shape: Shape::from_dims(&[1, kv, g, t, d]),
            },
            &[k],
        );
        let y = b.op(reshape(&[kv * g, t, d]), &[e]);
        let z = b.op(transpose(&[0, 2, 1]), &[y]);
        let w = b.op(reshape(&[1, kv * g, d, t]), &[z]);
        vec![b.un(UnaryOp::Exp, w)]
    });
}

#[test]
fn reshape_transpose_reshape() {
    check("reshape-transpose-reshape", |b| {
        // BERT's K transpose: [b, h, s, d] -> [b*h, s, d] -> [b*h, d, s] -> [b, h, d, s].
        let (bt, h, s, d) = (b.dim(1, 2), b.dim(1, 4), b.dim(1, 5), b.dim(1, 5));
        let x = b.input(&[bt, h, s, d]);
        let y = b.op(reshape(&[bt * h, s, d]), &[x]);
        let z = b.op(transpose(&[0, 2, 1]), &[y]);
        let w = b.op(reshape(&[bt, h, d, s]), &[z]);
        vec![b.un(UnaryOp::Exp, w)]
    });
}

#[test]
fn transpose_out_of_unary() {
    check("transpose-out-of-unary", |b| {
        let x = matrix(b);
        let u = b
            .rng
            .pick(&[UnaryOp::Relu, UnaryOp::Exp, UnaryOp::Tanh, UnaryOp::Neg]);
        let t = b.op(transpose(&[1, 0]), &[x]);
        vec![b.un(u, t)]
    });
}

#[test]
fn transpose_out_of_binary() {
    check("transpose-out-of-binary", |b| {
        let d = [b.dim(1, 4), b.dim(1, 4), b.dim(1, 4)];
        let (x, y) = (b.input(&d), b.input(&d));
        let op = b
            .rng
            .pick(&[BinaryOp::Add, BinaryOp::Mul, BinaryOp::Sub, BinaryOp::Max]);
        let tx = b.op(transpose(&[2, 0, 1]), &[x]);
        let ty = b.op(transpose(&[2, 0, 1]), &[y]);
        vec![b.bin(op, tx, ty)]
    });
}

#[test]
fn reshape_out_of_unary() {
    check("reshape-out-of-unary", |b| {
        let (p, q) = (b.dim(1, 4), b.dim(1, 4));
        let x = b.input(&[p, q]);
        let r = b.op(reshape(&[p * q]), &[x]);
        vec![b.un(UnaryOp::Sigmoid, r)]
    });
}

// ---- fusion -----------------------------------------------------------------------------

fn activations(b: &mut B) -> ValueId {
    let d = [b.dim(1, 3), b.dim(1, 6), b.dim(2, 8)];
    b.input_in(&d, -3.0, 3.0)
}

/// `x/√2` as a division by √2.
fn erf_gelu_parts(b: &mut B, x: ValueId) -> (ValueId, ValueId, ValueId) {
    let r2 = b.scalar(std::f32::consts::SQRT_2);
    let e = b.bin(BinaryOp::Div, x, r2);
    let erf = b.un(UnaryOp::Erf, e);
    let one = b.scalar(1.0);
    let sum = b.bin(BinaryOp::Add, erf, one);
    (sum, b.scalar(0.5), x)
}

#[test]
fn gelu_erf() {
    check("gelu-erf", |b| {
        let x = activations(b);
        let (sum, half, x) = erf_gelu_parts(b, x);
        let h = b.bin(BinaryOp::Mul, sum, half);
        vec![b.bin(BinaryOp::Mul, x, h)]
    });
}

#[test]
fn gelu_erf_half_first() {
    check("gelu-erf-half-first", |b| {
        let x = activations(b);
        // x/√2 as a multiplication by 1/√2 this time.
        let k = b.scalar(std::f32::consts::FRAC_1_SQRT_2);
        let e = b.bin(BinaryOp::Mul, x, k);
        let erf = b.un(UnaryOp::Erf, e);
        let one = b.scalar(1.0);
        let sum = b.bin(BinaryOp::Add, erf, one);
        let half = b.scalar(0.5);
        let xh = b.bin(BinaryOp::Mul, x, half);
        vec![b.bin(BinaryOp::Mul, xh, sum)]
    });
}

#[test]
fn gelu_erf_half_last() {
    check("gelu-erf-half-last", |b| {
        let x = activations(b);
        let (sum, half, x) = erf_gelu_parts(b, x);
        let xs = b.bin(BinaryOp::Mul, x, sum);
        vec![b.bin(BinaryOp::Mul, xs, half)]
    });
}

/// `√(2/π)·(x + 0.044715·x³)`, the cube as `pow` or as products.
fn tanh_gelu_arg(b: &mut B, x: ValueId) -> ValueId {
    let cube = if b.rng.pick(&[true, false]) {
        let three = b.scalar(3.0);
        b.bin(BinaryOp::Pow, x, three)
    } else {
        let sq = b.bin(BinaryOp::Mul, x, x);
        b.bin(BinaryOp::Mul, x, sq)
    };
    let c = b.scalar(0.044715);
    let t = b.bin(BinaryOp::Mul, cube, c);
    let inner = b.bin(BinaryOp::Add, x, t);
    let k = b.scalar(0.797_884_6);
    b.bin(BinaryOp::Mul, inner, k)
}

#[test]
fn gelu_tanh() {
    check("gelu-tanh", |b| {
        let x = activations(b);
        let e = tanh_gelu_arg(b, x);
        let th = b.un(UnaryOp::Tanh, e);
        let one = b.scalar(1.0);
        let sum = b.bin(BinaryOp::Add, th, one);
        let half = b.scalar(0.5);
        let h = b.bin(BinaryOp::Mul, sum, half);
        vec![b.bin(BinaryOp::Mul, x, h)]
    });
}

#[test]
fn gelu_tanh_half_first() {
    check("gelu-tanh-half-first", |b| {
        let x = activations(b);
        let half = b.scalar(0.5);
        let xh = b.bin(BinaryOp::Mul, x, half);
        let e = tanh_gelu_arg(b, x);
        let th = b.un(UnaryOp::Tanh, e);
        let one = b.scalar(1.0);
        let sum = b.bin(BinaryOp::Add, th, one);
        vec![b.bin(BinaryOp::Mul, xh, sum)]
    });
}

/// The normalized part of LayerNorm over the last `k` axes: `(x−μ)/√(var+ε)`, with the
/// square as `pow` or a product; returns (normalized, normalized shape).
fn layer_norm_chain(b: &mut B) -> (ValueId, Vec<usize>) {
    let x = activations(b);
    let d = b.dims_of(x);
    let k = b.dim(1, 2);
    let axes: Vec<usize> = (d.len() - k..d.len()).collect();
    let mean = b.op(reduce(ReduceOp::Mean, &axes), &[x]);
    let c = b.bin(BinaryOp::Sub, x, mean);
    let sq = if b.rng.pick(&[true, false]) {
        let two = b.scalar(2.0);
        b.bin(BinaryOp::Pow, c, two)
    } else {
        b.bin(BinaryOp::Mul, c, c)
    };
    let var = b.op(reduce(ReduceOp::Mean, &axes), &[sq]);
    let eps = b.scalar(1e-5);
    let ve = b.bin(BinaryOp::Add, var, eps);
    let sd = b.un(UnaryOp::Sqrt, ve);
    (b.bin(BinaryOp::Div, c, sd), d[d.len() - k..].to_vec())
}

#[test]
fn layer_norm() {
    check("layer-norm", |b| {
        let (y, norm) = layer_norm_chain(b);
        let (g, beta) = (b.weight(&norm, 0.5, 1.5), b.weight(&norm, -0.5, 0.5));
        let s = b.bin(BinaryOp::Mul, y, g);
        vec![b.bin(BinaryOp::Add, s, beta)]
    });
}

#[test]
fn layer_norm_no_bias() {
    check("layer-norm-no-bias", |b| {
        let (y, norm) = layer_norm_chain(b);
        let g = b.weight(&norm, 0.5, 1.5);
        vec![b.bin(BinaryOp::Mul, y, g)]
    });
}

#[test]
fn layer_norm_plain() {
    check("layer-norm-plain", |b| vec![layer_norm_chain(b).0]);
}

/// `mean(x²)` over the last axis, plus ε, square-rooted.
fn rms(b: &mut B, x: ValueId) -> ValueId {
    let r = b.dims_of(x).len();
    let sq = b.bin(BinaryOp::Mul, x, x);
    let ms = b.op(reduce(ReduceOp::Mean, &[r - 1]), &[sq]);
    let eps = b.scalar(1e-6);
    let me = b.bin(BinaryOp::Add, ms, eps);
    b.un(UnaryOp::Sqrt, me)
}

#[test]
fn rms_norm() {
    check("rms-norm", |b| {
        let x = activations(b);
        let n = *b.dims_of(x).last().expect("rank 3");
        let r = rms(b, x);
        let y = b.bin(BinaryOp::Div, x, r);
        let g = b.weight(&[n], 0.5, 1.5);
        vec![b.bin(BinaryOp::Mul, y, g)]
    });
}

#[test]
fn rms_norm_rsqrt() {
    check("rms-norm-rsqrt", |b| {
        let x = activations(b);
        let n = *b.dims_of(x).last().expect("rank 3");
        let r = rms(b, x);
        let inv = b.un(UnaryOp::Reciprocal, r);
        let y = b.bin(BinaryOp::Mul, x, inv);
        let g = b.weight(&[n], 0.5, 1.5);
        vec![b.bin(BinaryOp::Mul, y, g)]
    });
}

#[test]
fn softmax_exp_sum_div() {
    check("softmax-exp-sum-div", |b| {
        let x = activations(b);
        let axis = b.dim(0, 2);
        let e = b.un(UnaryOp::Exp, x);
        let s = b.op(reduce(ReduceOp::Sum, &[axis]), &[e]);
        vec![b.bin(BinaryOp::Div, e, s)]
    });
}

#[test]
fn softmax_shift() {
    check("softmax-shift", |b| {
        let x = activations(b);
        let axis = b.dim(0, 2);
        let m = b.op(reduce(ReduceOp::Max, &[axis]), &[x]);
        let d = b.bin(BinaryOp::Sub, x, m);
        vec![b.op(Op::Softmax { axis }, &[d])]
    });
}

/// Q [b,h,s,d], Kᵀ as a transpose of K [b,h,t,d], V [b,h,t,e] and Q·Kᵀ.
fn scores(b: &mut B) -> (ValueId, ValueId, [usize; 4]) {
    let (bt, h, s, t, d, e) = (
        b.dim(1, 2),
        b.dim(1, 3),
        b.dim(1, 6),
        b.dim(1, 6),
        b.dim(1, 5),
        b.dim(1, 5),
    );
    let q = b.input(&[bt, h, s, d]);
    let k = b.input(&[bt, h, t, d]);
    let v = b.input(&[bt, h, t, e]);
    let kt = b.op(transpose(&[0, 1, 3, 2]), &[k]);
    (b.op(Op::MatMul, &[q, kt]), v, [bt, h, s, t])
}

fn finish_attention(b: &mut B, logits: ValueId, v: ValueId) -> ValueId {
    let p = b.op(Op::Softmax { axis: 3 }, &[logits]);
    b.op(Op::MatMul, &[p, v])
}

fn mask(b: &mut B, st: [usize; 4]) -> ValueId {
    b.input_in(&[st[0], 1, 1, st[3]], -4.0, 0.0)
}

#[test]
fn attention() {
    check("attention", |b| {
        let (qk, v, _) = scores(b);
        let s = b.scalar(0.354);
        let l = b.bin(BinaryOp::Mul, qk, s);
        vec![finish_attention(b, l, v)]
    });
}

#[test]
fn attention_mask() {
    check("attention-mask", |b| {
        let (qk, v, st) = scores(b);
        let s = b.scalar(0.5);
        let l = b.bin(BinaryOp::Mul, qk, s);
        let m = mask(b, st);
        let l = b.bin(BinaryOp::Add, l, m);
        vec![finish_attention(b, l, v)]
    });
}

#[test]
fn attention_div() {
    check("attention-div", |b| {
        let (qk, v, _) = scores(b);
        // A runtime divisor (GPT-J passes it as a graph input).
        let s = b.input_in(&[], 2.0, 3.0);
        let l = b.bin(BinaryOp::Div, qk, s);
        vec![finish_attention(b, l, v)]
    });
}

#[test]
fn attention_div_mask() {
    check("attention-div-mask", |b| {
        let (qk, v, st) = scores(b);
        let s = b.scalar(2.828);
        let l = b.bin(BinaryOp::Div, qk, s);
        let m = mask(b, st);
        let l = b.bin(BinaryOp::Add, l, m);
        vec![finish_attention(b, l, v)]
    });
}

#[test]
fn attention_unscaled() {
    check("attention-unscaled", |b| {
        let (qk, v, _) = scores(b);
        vec![finish_attention(b, qk, v)]
    });
}

#[test]
fn attention_unscaled_mask() {
    check("attention-unscaled-mask", |b| {
        let (qk, v, st) = scores(b);
        let m = b.input_in(&[st[2], st[3]], -4.0, 0.0);
        let l = b.bin(BinaryOp::Add, qk, m);
        vec![finish_attention(b, l, v)]
    });
}

/// A convolution with constant weights (and a bias when asked), then BatchNorm with
/// constant statistics.
#[test]
fn attention_nan_guard() {
    check("attention-nan-guard", |b| {
        // PyTorch's SDPA with a boolean mask: scores, additive mask, softmax, and
        // where(is_nan(p), 0, p) before the product with V.
        let (qk, v, st) = scores(b);
        let s = b.scalar(0.5);
        let l = b.bin(BinaryOp::Mul, qk, s);
        let m = mask(b, st);
        let l = b.bin(BinaryOp::Add, l, m);
        let p = b.op(Op::Softmax { axis: 3 }, &[l]);
        let n = b.un(UnaryOp::IsNaN, p);
        let z = b.scalar(0.0);
        let guarded = b.op(Op::Where, &[n, z, p]);
        vec![b.op(Op::MatMul, &[guarded, v])]
    });
}

fn attention_inputs(b: &mut B) -> (ValueId, ValueId, ValueId, [usize; 4]) {
    let (bt, h, s, t, d, e) = (
        b.dim(1, 2),
        b.dim(1, 3),
        b.dim(1, 6),
        b.dim(1, 6),
        b.dim(1, 5),
        b.dim(1, 5),
    );
    let q = b.input(&[bt, h, s, d]);
    let k = b.input(&[bt, h, t, d]);
    let v = b.input(&[bt, h, t, e]);
    (q, k, v, [bt, h, s, t])
}

#[test]
fn attention_absorb_scale() {
    check("attention-absorb-scale", |b| {
        let (q, k, v, _) = attention_inputs(b);
        let s = b.scalar(0.125);
        let qs = b.bin(BinaryOp::Mul, q, s);
        vec![b.op(Op::Attention { scale: 1.0 }, &[qs, k, v])]
    });
}

#[test]
fn attention_absorb_scale_mask() {
    check("attention-absorb-scale-mask", |b| {
        let (q, k, v, st) = attention_inputs(b);
        let s = b.scalar(0.125);
        let qs = b.bin(BinaryOp::Mul, q, s);
        let m = mask(b, st);
        vec![b.op(Op::Attention { scale: 0.5 }, &[qs, k, v, m])]
    });
}

/// A convolution with constant weights (and bias), then `f(conv, per-channel constant)`.
fn conv_then(b: &mut B, bias: bool, op: BinaryOp) -> ValueId {
    let (n, c, m, hw, k) = (
        b.dim(1, 2),
        b.dim(1, 3),
        b.dim(1, 4),
        b.dim(3, 6),
        b.dim(1, 3),
    );
    let x = b.input(&[n, c, hw, hw]);
    let w = b.weight(&[m, c, k, k], -1.0, 1.0);
    let mut ins = vec![x, w];
    if bias {
        ins.push(b.weight(&[m], -1.0, 1.0));
    }
    let conv = b.op(
        Op::Conv(ConvAttrs {
            strides: vec![1, 1],
            pads: vec![1, 1, 1, 1],
            dilations: vec![1, 1],
            group: 1,
        }),
        &ins,
    );
    // Per channel as [m, 1, 1] or [1, m, 1, 1], or one scalar for every channel.
    let f = match b.rng.pick(&[0, 1, 2]) {
        0 => b.weight(&[m, 1, 1], 0.5, 1.5),
        1 => b.weight(&[1, m, 1, 1], 0.5, 1.5),
        _ => b.weight(&[1], 0.5, 1.5),
    };
    b.bin(op, conv, f)
}

#[test]
fn conv_mul_constant() {
    check("conv-mul-constant", |b| {
        vec![conv_then(b, true, BinaryOp::Mul)]
    });
}

#[test]
fn conv_mul_constant_no_bias() {
    check("conv-mul-constant-no-bias", |b| {
        vec![conv_then(b, false, BinaryOp::Mul)]
    });
}

#[test]
fn conv_add_constant() {
    check("conv-add-constant", |b| {
        vec![conv_then(b, true, BinaryOp::Add)]
    });
}

#[test]
fn conv_add_constant_no_bias() {
    check("conv-add-constant-no-bias", |b| {
        vec![conv_then(b, false, BinaryOp::Add)]
    });
}

/// HardSwish after a convolution (`y · relu6(y + 3) / 6`, the Add reading the
/// convolution as the Mul does): folding the `+ 3` into the convolution would leave the
/// Mul reading the original, so the convolution would run twice. The folding rules fire
/// only where the root is the convolution's sole consumer.
#[test]
fn conv_folds_skip_a_shared_convolution() {
    for rule in ["conv-add-constant", "conv-mul-constant"] {
        for seed in 1..=3u64 {
            let mut b = B::new(seed);
            let op = if rule == "conv-add-constant" {
                BinaryOp::Add
            } else {
                BinaryOp::Mul
            };
            let folded = conv_then(&mut b, true, op);
            let conv = b.g.producer(folded).expect("folded has a producer");
            let conv_out = b.g.node(conv).inputs[0];
            let y = b.bin(BinaryOp::Mul, conv_out, folded);
            b.g.add_output("y", y);
            verify(&b.g).expect("lhs verifies");
            let app = apply_rules(&b.g, Some(&Reference), &[rule], 2).expect("rules run");
            assert_eq!(
                app.applied.get(rule).copied().unwrap_or(0),
                0,
                "{rule} (seed {seed}) folded into a shared convolution:\n{}",
                tessera::ir::text::print(&app.graph, &Default::default())
            );
            let convs = |g: &Graph| {
                g.nodes()
                    .filter(|(_, n)| matches!(n.op, Op::Conv(_)))
                    .count()
            };
            assert_eq!(convs(&app.graph), 1, "{rule} (seed {seed})");
        }
    }
}

fn conv_bn(b: &mut B, bias: bool) -> ValueId {
    let (n, c, m, hw, k) = (
        b.dim(1, 2),
        b.dim(1, 3),
        b.dim(1, 4),
        b.dim(3, 6),
        b.dim(1, 3),
    );
    let x = b.input(&[n, c, hw, hw]);
    let w = b.weight(&[m, c, k, k], -1.0, 1.0);
    let mut ins = vec![x, w];
    if bias {
        ins.push(b.weight(&[m], -1.0, 1.0));
    }
    let conv = b.op(
        Op::Conv(ConvAttrs {
            strides: vec![1, 1],
            pads: vec![1, 0, 1, 0],
            dilations: vec![1, 1],
            group: 1,
        }),
        &ins,
    );
    let g = b.weight(&[m], 0.5, 1.5);
    let beta = b.weight(&[m], -0.5, 0.5);
    let mean = b.weight(&[m], -0.5, 0.5);
    let var = b.weight(&[m], 0.5, 2.0);
    b.op(Op::BatchNorm { epsilon: 1e-5 }, &[conv, g, beta, mean, var])
}

#[test]
fn conv_batch_norm() {
    check("conv-batch-norm", |b| vec![conv_bn(b, true)]);
}

#[test]
fn conv_batch_norm_no_bias() {
    check("conv-batch-norm-no-bias", |b| vec![conv_bn(b, false)]);
}

#[test]
fn matmul_add_to_gemm() {
    check("matmul-add-to-gemm", |b| {
        let (m, k, n) = (b.dim(1, 5), b.dim(1, 5), b.dim(1, 5));
        // Rank 2, or with leading batch dims flattened through reshapes.
        let lead: Vec<usize> = if b.rng.pick(&[true, false]) {
            vec![m]
        } else {
            vec![b.dim(1, 3), m]
        };
        let mut ad = lead.clone();
        ad.push(k);
        let a = b.input(&ad);
        let w = b.weight(&[k, n], -1.0, 1.0);
        let c = b.weight(&[n], -1.0, 1.0);
        let mm = b.op(Op::MatMul, &[a, w]);
        vec![b.bin(BinaryOp::Add, mm, c)]
    });
}

// ---- merge ------------------------------------------------------------------------------

#[test]
fn merge_matmul() {
    check("merge-matmul", |b| {
        let (s, k) = (b.dim(1, 5), b.dim(1, 5));
        let x = b.input(&[1, s, k]);
        let heads = b.dim(2, 4);
        (0..heads)
            .map(|_| {
                let n = b.dim(1, 5);
                let w = b.weight(&[k, n], -1.0, 1.0);
                b.op(Op::MatMul, &[x, w])
            })
            .collect()
    });
}

#[test]
fn merge_gemm() {
    check("merge-gemm", |b| {
        let (m, k) = (b.dim(1, 5), b.dim(1, 5));
        let a = b.input(&[m, k]);
        let trans_b = b.rng.pick(&[false, true]);
        (0..3)
            .map(|_| {
                let n = b.dim(1, 5);
                let w = if trans_b {
                    b.weight(&[n, k], -1.0, 1.0)
                } else {
                    b.weight(&[k, n], -1.0, 1.0)
                };
                let c = b.weight(&[n], -1.0, 1.0);
                b.op(gemm(trans_b), &[a, w, c])
            })
            .collect()
    });
}

#[test]
fn merge_conv() {
    check("merge-conv", |b| {
        let (c, hw) = (b.dim(1, 3), b.dim(3, 5));
        let x = b.input(&[1, c, hw, hw]);
        let attrs = ConvAttrs {
            strides: vec![1, 1],
            pads: vec![1, 1, 1, 1],
            dilations: vec![1, 1],
            group: 1,
        };
        (0..2)
            .map(|_| {
                let m = b.dim(1, 4);
                let w = b.weight(&[m, c, 3, 3], -1.0, 1.0);
                let bias = b.weight(&[m], -1.0, 1.0);
                b.op(Op::Conv(attrs.clone()), &[x, w, bias])
            })
            .collect()
    });
}
