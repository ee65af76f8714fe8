//! Differential property test of the optimizer: random small DAGs of elementwise, matmul,
//! reshape and transpose ops (plus the chains the fusion rules look for: GELU, LayerNorm,
//! softmax, scaled matmuls, shared-input projections) are optimized with the `default`
//! pipeline, and the optimized graph must compute the same outputs as the original on the
//! reference interpreter, within GraphNet's float32 tolerance at t = −5.

use proptest::prelude::*;
use tessera::ir::{
    BinaryOp, DType, Graph, Op, ReduceOp, Shape, Tensor, TensorType, UnaryOp, ValueId,
};
use tessera::passes::cost::DeviceProfile;
use tessera::sample::{compare, splitmix64_uniform};

/// One step of a recipe: an op kind and three selectors (operand picks, parameters).
type Step = (u8, u8, u8, u8);

struct Builder {
    g: Graph,
    values: Vec<ValueId>,
    seed: u64,
}

impl Builder {
    fn ty(&self, v: ValueId) -> TensorType {
        self.g.ty(v).clone()
    }

    fn pick(&self, sel: u8) -> ValueId {
        self.values[sel as usize % self.values.len()]
    }

    fn scalar(&mut self, x: f32) -> ValueId {
        self.g.add_constant(Tensor::scalar(x), "")
    }

    fn random_const(&mut self, dims: &[usize]) -> ValueId {
        self.seed += 1;
        let t = splitmix64_uniform(DType::F32, Shape::from_dims(dims), self.seed, -1.0, 1.0);
        self.g.add_constant(t, "")
    }

    /// Adds the node if it type-checks.
    fn op(&mut self, op: Op, inputs: &[ValueId]) -> Option<ValueId> {
        self.g.add_node1(op, inputs, "").ok()
    }

    fn un(&mut self, u: UnaryOp, a: ValueId) -> Option<ValueId> {
        self.op(Op::Unary(u), &[a])
    }

    fn bin(&mut self, b: BinaryOp, x: ValueId, y: ValueId) -> Option<ValueId> {
        self.op(Op::Binary(b), &[x, y])
    }

    fn last_dim(&self, v: ValueId) -> usize {
        self.ty(v).shape.dims().last().copied().unwrap_or(1)
    }

    fn step(&mut self, (kind, a, b, p): Step) -> Option<ValueId> {
        let x = self.pick(a);
        let y = self.pick(b);
        let rank = self.ty(x).shape.rank();
        match kind % 20 {
            0 => self.un(UnaryOp::Relu, x),
            1 => self.un(UnaryOp::Neg, x),
            2 => self.un(UnaryOp::Tanh, x),
            3 => self.bin(BinaryOp::Add, x, y),
            4 => self.bin(BinaryOp::Mul, x, y),
            5 => self.bin(BinaryOp::Sub, x, y),
            6 => {
                // Identities the algebra rules remove: + 0, * 1, / 1, - 0.
                let (op, c) = [
                    (BinaryOp::Add, 0.0),
                    (BinaryOp::Mul, 1.0),
                    (BinaryOp::Div, 1.0),
                    (BinaryOp::Sub, 0.0),
                ][p as usize % 4];
                let c = self.scalar(c);
                self.bin(op, x, c)
            }
            7 => {
                let c = self.scalar([0.5, 2.0, -0.25][p as usize % 3]);
                self.bin(BinaryOp::Mul, x, c)
            }
            8 => {
                // A permutation of the operand's axes, often reversed twice.
                let mut perm: Vec<usize> = (0..rank).collect();
                perm.rotate_left(p as usize % rank.max(1));
                let t = self.op(Op::Transpose { perm: perm.clone() }, &[x])?;
                if p % 2 == 0 {
                    let mut inv = vec![0; rank];
                    for (i, &q) in perm.iter().enumerate() {
                        inv[q] = i;
                    }
                    self.op(Op::Transpose { perm: inv }, &[t])
                } else {
                    Some(t)
                }
            }
            9 => {
                // Reshape to a flattening or splitting of the same elements, sometimes twice.
                let dims = self.ty(x).shape.dims().to_vec();
                let n: usize = dims.iter().product();
                let target = match p % 3 {
                    0 => vec![n],
                    1 => vec![1, n],
                    _ => {
                        let mut d = dims.clone();
                        d.insert(0, 1);
                        d
                    }
                };
                let r = self.op(
                    Op::Reshape {
                        shape: Shape::from_dims(&target),
                    },
                    &[x],
                )?;
                if p % 2 == 0 {
                    self.op(
                        Op::Reshape {
                            shape: Shape::from_dims(&dims),
                        },
                        &[r],
                    )
                } else {
                    Some(r)
                }
            }
            10 => self.op(Op::MatMul, &[x, y]),
            11 => {
                // Linear layer: matmul by a constant weight, plus a constant bias.
                let k = self.last_dim(x);
                let n = 2 + p as usize % 4;
                let w = self.random_const(&[k, n]);
                let m = self.op(Op::MatMul, &[x, w])?;
                if p % 2 == 0 {
                    let bias = self.random_const(&[n]);
                    self.bin(BinaryOp::Add, m, bias)
                } else {
                    Some(m)
                }
            }
            12 => {
                // Two or three projections of the same input (a horizontal merge).
                let k = self.last_dim(x);
                let mut outs = Vec::new();
                for _ in 0..(2 + p as usize % 2) {
                    let w = self.random_const(&[k, 3]);
                    outs.push(self.op(Op::MatMul, &[x, w])?);
                }
                let s = self.bin(BinaryOp::Add, outs[0], outs[1])?;
                outs.get(2)
                    .copied()
                    .map_or(Some(s), |o| self.bin(BinaryOp::Mul, s, o))
            }
            13 => self.op(Op::Identity, &[x]),
            14 => self.op(Op::Softmax { axis: rank - 1 }, &[x]),
            15 => {
                // erf GELU: x · 0.5 · (1 + erf(x / √2)).
                let r2 = self.scalar(std::f32::consts::SQRT_2);
                let d = self.bin(BinaryOp::Div, x, r2)?;
                let e = self.un(UnaryOp::Erf, d)?;
                let one = self.scalar(1.0);
                let a1 = self.bin(BinaryOp::Add, e, one)?;
                let half = self.scalar(0.5);
                let h = self.bin(BinaryOp::Mul, x, half)?;
                self.bin(BinaryOp::Mul, h, a1)
            }
            16 => {
                // LayerNorm over the last axis, spelled out.
                let axes = vec![rank - 1];
                let mean = |axes: Vec<usize>| Op::Reduce {
                    op: ReduceOp::Mean,
                    axes,
                    keep_dims: true,
                };
                let m = self.op(mean(axes.clone()), &[x])?;
                let d = self.bin(BinaryOp::Sub, x, m)?;
                let two = self.scalar(2.0);
                let sq = self.bin(BinaryOp::Pow, d, two)?;
                let var = self.op(mean(axes), &[sq])?;
                let eps = self.scalar(1e-5);
                let ve = self.bin(BinaryOp::Add, var, eps)?;
                let sd = self.un(UnaryOp::Sqrt, ve)?;
                self.bin(BinaryOp::Div, d, sd)
            }
            17 => {
                // Softmax spelled out: exp(x - max) / sum(exp(x - max)).
                let axes = vec![rank - 1];
                let reduce = |op, axes| Op::Reduce {
                    op,
                    axes,
                    keep_dims: true,
                };
                let mx = self.op(reduce(ReduceOp::Max, axes.clone()), &[x])?;
                let s = self.bin(BinaryOp::Sub, x, mx)?;
                let e = self.un(UnaryOp::Exp, s)?;
                let sum = self.op(reduce(ReduceOp::Sum, axes), &[e])?;
                self.bin(BinaryOp::Div, e, sum)
            }
            18 => {
                // Scaled scores: (x · yᵀ) · scale, then softmax, then · y.
                let t = rank.checked_sub(2)?;
                let mut perm: Vec<usize> = (0..rank).collect();
                perm.swap(t, t + 1);
                let yt = self.op(Op::Transpose { perm }, &[y])?;
                let s = self.op(Op::MatMul, &[x, yt])?;
                let c = self.scalar(0.35);
                let sc = self.bin(BinaryOp::Mul, s, c)?;
                let sm = self.op(Op::Softmax { axis: rank - 1 }, &[sc])?;
                self.op(Op::MatMul, &[sm, y])
            }
            _ => self.un(UnaryOp::Sigmoid, x),
        }
    }
}

/// Builds the graph of a recipe: inputs `x: f32[2,3,4]` and `y: f32[2,3,4]`, each step
/// that type-checks appended, the last value and one earlier value as outputs.
fn build(recipe: &[Step], out_sel: u8) -> Graph {
    let mut b = Builder {
        g: Graph::new("prop"),
        values: Vec::new(),
        seed: 1000,
    };
    for name in ["x", "y"] {
        let v = b.g.add_input(
            name,
            TensorType::new(DType::F32, Shape::from_dims(&[2, 3, 4])),
        );
        b.values.push(v);
    }
    for &s in recipe {
        if let Some(v) = b.step(s) {
            b.values.push(v);
        }
    }
    let last = *b.values.last().expect("invariant: two inputs");
    let other = b.pick(out_sel);
    b.g.add_output("out", last);
    if other != last {
        b.g.add_output("aux", other);
    }
    b.g
}

fn inputs(g: &Graph, seed: u64) -> Vec<Tensor> {
    g.inputs()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ty = g.ty(p.value);
            splitmix64_uniform(ty.dtype, ty.shape.clone(), seed + i as u64, -1.0, 1.0)
        })
        .collect()
}

fn check(recipe: &[Step], out_sel: u8, seed: u64) -> Result<(), TestCaseError> {
    let g = build(recipe, out_sel);
    let (opt, _) = tessera::optimize(&g, "default", &DeviceProfile::h200(), None)
        .map_err(|e| TestCaseError::fail(format!("optimize: {e}")))?;
    let args = inputs(&g, seed);
    let want = tessera::reference::run(&g, &args).expect("the original runs");
    let got = tessera::reference::run(&opt, &args)
        .map_err(|e| TestCaseError::fail(format!("optimized graph does not run: {e}")))?;
    prop_assert_eq!(got.len(), want.len());
    assert_eq!(got.len(), want.len(), "output counts differ");
    for (k, (a, e)) in got.iter().zip(&want).enumerate() {
        let c = compare(a, e, 1e-5, 1.3e-6)
            .ok_or_else(|| TestCaseError::fail(format!("output {k}: {} vs {}", a.ty(), e.ty())))?;
        prop_assert!(
            c.all_close,
            "output {}: max abs {:.3e}, max rel {:.3e}\noriginal:\n{}\noptimized:\n{}",
            k,
            c.max_abs,
            c.max_rel,
            tessera::ir::text::print(&g, &Default::default()),
            tessera::ir::text::print(&opt, &Default::default())
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn optimized_random_dags_compute_the_same(
        recipe in prop::collection::vec(any::<Step>(), 1..10),
        out_sel in any::<u8>(),
        seed in 0u64..1000,
    ) {
        check(&recipe, out_sel, seed)?;
    }
}

/// The ops (constants aside) of the optimized graph of a one-step recipe.
fn optimized_ops(step: Step) -> Vec<&'static str> {
    let g = build(&[step], 0);
    let (opt, _) = tessera::optimize(&g, "default", &DeviceProfile::h200(), None).unwrap();
    opt.nodes()
        .map(|(_, n)| n.op.name())
        .filter(|n| *n != "constant")
        .collect()
}

/// Every step kind on its own, so each is covered whatever the random cases draw, and the
/// chains the rules target come out rewritten.
#[test]
fn each_step_alone_and_its_rewrite() {
    for kind in 0..20u8 {
        for p in 0..4u8 {
            check(&[(kind, 0, 1, p)], 0, 7).unwrap_or_else(|e| panic!("step {kind}/{p}: {e}"));
        }
    }
    let none: &[&str] = &[];
    for p in 0..4 {
        assert_eq!(
            optimized_ops((6, 0, 1, p)),
            none,
            "x + 0, x * 1, x / 1, x - 0"
        );
    }
    assert_eq!(
        optimized_ops((8, 0, 1, 0)),
        none,
        "transpose, inverse transpose"
    );
    assert_eq!(optimized_ops((9, 0, 1, 0)), none, "reshape, reshape back");
    assert_eq!(optimized_ops((15, 0, 1, 0)), ["gelu"]);
    assert_eq!(optimized_ops((16, 0, 1, 0)), ["layer_norm"]);
    assert_eq!(optimized_ops((17, 0, 1, 0)), ["softmax"]);
    assert_eq!(optimized_ops((18, 0, 1, 0)), ["attention"]);
    assert!(
        optimized_ops((11, 0, 1, 0)).contains(&"gemm"),
        "matmul + bias"
    );
}
