//! Property: random small graphs of fusible ops (pointwise chains with broadcasting,
//! views, reductions, softmax, layer norm, concat, where, matmul) compile, and the
//! compiled model — fused and eager, one and two threads — matches the reference
//! interpreter.

use proptest::prelude::*;
use tessera::ir::{
    BinaryOp, DType, Graph, Op, ReduceOp, Shape, Tensor, TensorType, UnaryOp, ValueId,
};
use tessera::runtime::cpu::{CpuOptions, Mode, compile};
use tessera::sample::splitmix64_uniform;

const UNARY: [UnaryOp; 6] = [
    UnaryOp::Relu,
    UnaryOp::Tanh,
    UnaryOp::Sigmoid,
    UnaryOp::Neg,
    UnaryOp::Abs,
    UnaryOp::Erf,
];
const BINARY: [BinaryOp; 5] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Max,
    BinaryOp::Min,
];

fn dims(g: &Graph, v: ValueId) -> Vec<usize> {
    g.ty(v).shape.dims().to_vec()
}

/// Builds a graph from a recipe; ops that do not type-check are skipped.
fn build(shape: &[usize], bmask: u8, recipe: &[(u8, u8, u8)], outs: u8) -> Graph {
    let mut g = Graph::new("prop");
    let ty = |d: &[usize]| TensorType::new(DType::F32, Shape::from_dims(d));
    let x = g.add_input("x", ty(shape));
    let yd: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if bmask >> i & 1 == 1 { 1 } else { d })
        .collect();
    let y = g.add_input("y", ty(&yd));
    let mut pool = vec![x, y];
    for (k, &(op, a, b)) in recipe.iter().enumerate() {
        let u = pool[a as usize % pool.len()];
        let w = pool[b as usize % pool.len()];
        let ud = dims(&g, u);
        let rank = ud.len();
        let axis = b as usize % rank.max(1);
        let name = format!("n{k}");
        let r = match op % 11 {
            0 => g.add_node1(Op::Unary(UNARY[b as usize % UNARY.len()]), &[u], name),
            1 => g.add_node1(Op::Binary(BINARY[a as usize % BINARY.len()]), &[u, w], name),
            2 => {
                let perm: Vec<usize> = (0..rank).map(|i| (i + 1 + a as usize) % rank).collect();
                g.add_node1(Op::Transpose { perm }, &[u], name)
            }
            3 => {
                let n: usize = ud.iter().product();
                let to = if rank >= 2 && b % 2 == 0 {
                    let mut t = vec![ud[0] * ud[1]];
                    t.extend_from_slice(&ud[2..]);
                    t
                } else {
                    vec![n]
                };
                g.add_node1(
                    Op::Reshape {
                        shape: Shape::from_dims(&to),
                    },
                    &[u],
                    name,
                )
            }
            4 => {
                let op = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max][a as usize % 3];
                g.add_node1(
                    Op::Reduce {
                        op,
                        axes: vec![axis],
                        keep_dims: true,
                    },
                    &[u],
                    name,
                )
            }
            5 => g.add_node1(Op::Softmax { axis }, &[u], name),
            6 => {
                let last = *ud.last().unwrap_or(&1);
                let s = g.add_constant(
                    splitmix64_uniform(DType::F32, Shape::from_dims(&[last]), b as u64, 0.5, 1.5),
                    format!("scale{k}"),
                );
                // epsilon 1e-2, not 1e-5: a row of equal values (where/broadcast make them)
                // has zero variance, and f32's rounding of its mean, amplified by
                // 1/sqrt(epsilon), would measure conditioning, not code generation.
                g.add_node1(
                    Op::LayerNorm {
                        axis: rank.saturating_sub(1),
                        epsilon: 1e-2,
                        stats: false,
                    },
                    &[u, s],
                    name,
                )
            }
            7 if rank > 0 && ud[axis] >= 2 => g.add_node1(
                Op::Slice {
                    axes: vec![axis],
                    starts: vec![1],
                    ends: vec![ud[axis] as i64],
                    steps: vec![1],
                },
                &[u],
                name,
            ),
            8 if rank > 0 => g.add_node1(Op::Concat { axis }, &[u, u], name),
            9 => {
                let zero = g.add_constant(Tensor::scalar(0.0f32), format!("zero{k}"));
                match g.add_node1(Op::Binary(BinaryOp::Greater), &[u, zero], format!("c{k}")) {
                    Ok(c) => g.add_node1(Op::Where, &[c, u, w], name),
                    Err(e) => Err(e),
                }
            }
            10 if rank > 0 => {
                let kd = 1 + b as usize % 5;
                let wt = g.add_constant(
                    splitmix64_uniform(
                        DType::F32,
                        Shape::from_dims(&[ud[rank - 1], kd]),
                        a as u64,
                        -1.0,
                        1.0,
                    ),
                    format!("w{k}"),
                );
                g.add_node1(Op::MatMul, &[u, wt], name)
            }
            _ => continue,
        };
        if let Ok(v) = r {
            pool.push(v);
        }
    }
    let last = *pool.last().expect("inputs");
    g.add_output("out", last);
    for (i, &v) in pool.iter().enumerate().skip(2) {
        if outs >> (i % 8) & 1 == 1 && v != last {
            g.add_output(format!("o{i}"), v);
        }
    }
    g
}

fn close(a: &Tensor, b: &Tensor) -> bool {
    a.ty() == b.ty()
        && a.to_f64_vec()
            .iter()
            .zip(b.to_f64_vec())
            .all(|(p, q)| (p - q).abs() <= 2e-5 * (1.0 + q.abs()) || p.is_nan() && q.is_nan())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn compiled_matches_reference(
        shape in prop::collection::vec(1usize..6, 1..4),
        bmask in any::<u8>(),
        recipe in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 1..8),
        outs in any::<u8>(),
        seed in any::<u64>(),
    ) {
        let g = build(&shape, bmask, &recipe, outs);
        let inputs: Vec<Tensor> = g
            .inputs()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let ty = g.ty(p.value);
                splitmix64_uniform(ty.dtype, ty.shape.clone(), seed.wrapping_add(i as u64), -2.0, 2.0)
            })
            .collect();
        let want = tessera::reference::run(&g, &inputs).expect("reference runs");
        for mode in [Mode::Fused, Mode::Eager] {
            for threads in [1, 2] {
                let m = compile(&g, &CpuOptions { mode, threads, ..CpuOptions::default() })
                    .map_err(|e| TestCaseError::fail(format!("{mode:?}: {e}")))?;
                let got = m.run(&inputs).map_err(|e| TestCaseError::fail(format!("{mode:?}: {e}")))?;
                assert_eq!(got.len(), want.len(), "output counts differ");
                for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                    prop_assert!(close(a, b), "{:?} threads {} output {}:\n{}", mode, threads, k,
                        tessera::ir::text::print(&g, &Default::default()));
                }
            }
        }
    }
}

/// Max and Min give NaN when either operand is NaN, in the vector body (37 elements: nine
/// four-lane vectors) as in the scalar tail, fused and eager (ONNX's rule, and the
/// reference interpreter's).
#[test]
fn max_and_min_propagate_a_nan_from_either_operand() {
    let n = 37;
    let ty = TensorType::new(DType::F32, Shape::from_dims(&[n]));
    let mut g = Graph::new("nan");
    let x = g.add_input("x", ty.clone());
    let y = g.add_input("y", ty);
    for (i, op) in [BinaryOp::Max, BinaryOp::Min].into_iter().enumerate() {
        let v = g
            .add_node1(Op::Binary(op), &[x, y], "")
            .expect("well typed");
        g.add_output(format!("o{i}"), v);
    }
    let xs: Vec<f32> = (0..n)
        .map(|i| {
            if i % 3 == 0 {
                f32::NAN
            } else {
                i as f32 - 18.0
            }
        })
        .collect();
    let ys: Vec<f32> = (0..n)
        .map(|i| {
            if i % 3 == 1 {
                f32::NAN
            } else {
                18.0 - i as f32
            }
        })
        .collect();
    let t = |v: &[f32]| Tensor::from_vec(Shape::from_dims(&[n]), v.to_vec()).expect("shape");
    let inputs = [t(&xs), t(&ys)];
    for mode in [Mode::Fused, Mode::Eager] {
        let m = compile(
            &g,
            &CpuOptions {
                mode,
                threads: 1,
                ..CpuOptions::default()
            },
        )
        .expect("compiles");
        let got = m.run(&inputs).expect("runs");
        for (k, out) in got.iter().enumerate() {
            for (i, v) in out.to_f64_vec().into_iter().enumerate() {
                let (a, b) = (xs[i], ys[i]);
                if a.is_nan() || b.is_nan() {
                    assert!(v.is_nan(), "{mode:?} output {k} at {i}: {v} from {a}, {b}");
                } else {
                    let want = if k == 0 { a.max(b) } else { a.min(b) };
                    assert_eq!(v, want as f64, "{mode:?} output {k} at {i}");
                }
            }
        }
    }
}
