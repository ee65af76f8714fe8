//! The reference kernels of the optimizer's fused ops agree with their definitions
//! written out in primitive ops.

use tessera::ir::*;
use tessera::reference::run;
use tessera::sample::{compare, splitmix64_uniform};

fn f32s(dims: &[usize]) -> TensorType {
    TensorType::new(DType::F32, Shape::from_dims(dims))
}

fn random(dims: &[usize], seed: u64) -> Tensor {
    splitmix64_uniform(DType::F32, Shape::from_dims(dims), seed, -1.0, 1.0)
}

fn assert_same(a: &Graph, b: &Graph, inputs: &[Tensor]) {
    let (x, y) = (run(a, inputs).unwrap(), run(b, inputs).unwrap());
    for (p, q) in x.iter().zip(&y) {
        let c = compare(p, q, 1e-6, 1e-6).unwrap();
        assert!(c.all_close, "max abs {:.3e}", c.max_abs);
    }
}

#[test]
fn attention_is_softmax_of_scaled_scores_times_v() {
    let (b, h, s, t, d, e) = (2, 3, 5, 7, 4, 6);
    let scale = 0.5f32;
    let build = |fused: bool| {
        let mut g = Graph::new("attn");
        let q = g.add_input("q", f32s(&[b, h, s, d]));
        let k = g.add_input("k", f32s(&[b, h, t, d]));
        let v = g.add_input("v", f32s(&[b, h, t, e]));
        let m = g.add_input("mask", f32s(&[b, 1, 1, t]));
        let y = if fused {
            g.add_node1(Op::Attention { scale }, &[q, k, v, m], "")
                .unwrap()
        } else {
            let kt = g
                .add_node1(
                    Op::Transpose {
                        perm: vec![0, 1, 3, 2],
                    },
                    &[k],
                    "",
                )
                .unwrap();
            let sc = g.add_node1(Op::MatMul, &[q, kt], "").unwrap();
            let c = g.add_constant(Tensor::scalar(scale), "");
            let sc = g
                .add_node1(Op::Binary(BinaryOp::Mul), &[sc, c], "")
                .unwrap();
            let sc = g
                .add_node1(Op::Binary(BinaryOp::Add), &[sc, m], "")
                .unwrap();
            let p = g.add_node1(Op::Softmax { axis: 3 }, &[sc], "").unwrap();
            g.add_node1(Op::MatMul, &[p, v], "").unwrap()
        };
        g.add_output("y", y);
        g
    };
    let inputs = [
        random(&[b, h, s, d], 1),
        random(&[b, h, t, d], 2),
        random(&[b, h, t, e], 3),
        random(&[b, 1, 1, t], 4),
    ];
    assert_same(&build(true), &build(false), &inputs);
}

#[test]
fn rms_norm_is_x_over_root_mean_square() {
    let build = |fused: bool| {
        let mut g = Graph::new("rms");
        let x = g.add_input("x", f32s(&[3, 4, 8]));
        let w = g.add_input("w", f32s(&[8]));
        let y = if fused {
            g.add_node1(
                Op::RmsNorm {
                    axis: 2,
                    epsilon: 1e-6,
                },
                &[x, w],
                "",
            )
            .unwrap()
        } else {
            let sq = g.add_node1(Op::Binary(BinaryOp::Mul), &[x, x], "").unwrap();
            let ms = g
                .add_node1(
                    Op::Reduce {
                        op: ReduceOp::Mean,
                        axes: vec![2],
                        keep_dims: true,
                    },
                    &[sq],
                    "",
                )
                .unwrap();
            let eps = g.add_constant(Tensor::scalar(1e-6f32), "");
            let ms = g
                .add_node1(Op::Binary(BinaryOp::Add), &[ms, eps], "")
                .unwrap();
            let r = g.add_node1(Op::Unary(UnaryOp::Sqrt), &[ms], "").unwrap();
            let n = g.add_node1(Op::Binary(BinaryOp::Div), &[x, r], "").unwrap();
            g.add_node1(Op::Binary(BinaryOp::Mul), &[n, w], "").unwrap()
        };
        g.add_output("y", y);
        g
    };
    assert_same(
        &build(true),
        &build(false),
        &[random(&[3, 4, 8], 5), random(&[8], 6)],
    );
}
