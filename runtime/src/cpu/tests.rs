//! Compiled vs reference on small hand-built graphs, in both modes and with 1 and 2 threads.

use tessera_ir::{
    BinaryOp, ConvAttrs, DType, Graph, Op, PoolAttrs, PoolKind, ReduceOp, Shape, Tensor,
    TensorType, UnaryOp,
};

use super::{CpuOptions, Isa, Mode, compile};
use tessera_reference as reference;

fn rand_tensor(dtype: DType, dims: &[usize], seed: u64) -> Tensor {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    let n: usize = dims.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2000) as f64 / 1000.0 - 1.0
        })
        .collect();
    Tensor::from_vec(Shape::from_dims(dims), v)
        .expect("shape")
        .cast(dtype)
}

pub(crate) fn check(g: &Graph, inputs: &[Tensor], tol: f64) {
    let want = reference::run(g, inputs).expect("reference runs");
    // Both instruction sets of the native kernels: the fallback is tested on every machine.
    let runs = [
        (Mode::Fused, 1, Isa::detect()),
        (Mode::Fused, 2, Isa::detect()),
        (Mode::Fused, 2, Isa::Portable),
        (Mode::Eager, 1, Isa::detect()),
        (Mode::Eager, 2, Isa::Portable),
    ];
    for (mode, threads, isa) in runs {
        let m = compile(g, &CpuOptions { mode, threads, isa })
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let got = m.run(inputs).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(got.len(), want.len(), "output counts differ");
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.ty(), b.ty(), "{mode:?} output {k}");
            let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
            for (i, (p, q)) in x.iter().zip(&y).enumerate() {
                let ok = (p - q).abs() <= tol * (1.0 + q.abs()) || (p.is_nan() && q.is_nan());
                assert!(
                    ok,
                    "{mode:?} threads {threads} {isa:?} output {k}[{i}]: {p} vs {q}"
                );
            }
        }
    }
}

fn ty(d: DType, dims: &[usize]) -> TensorType {
    TensorType::new(d, Shape::from_dims(dims))
}

#[test]
fn pointwise_chain_with_broadcast() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", ty(DType::F32, &[3, 37]));
    let b = g.add_input("b", ty(DType::F32, &[37]));
    let a = g
        .add_node1(Op::Binary(BinaryOp::Add), &[x, b], "add")
        .unwrap();
    let r = g.add_node1(Op::Unary(UnaryOp::Relu), &[a], "relu").unwrap();
    let e = g.add_node1(Op::Unary(UnaryOp::Exp), &[r], "exp").unwrap();
    let t = g.add_node1(Op::Unary(UnaryOp::Tanh), &[a], "tanh").unwrap();
    let s = g
        .add_node1(Op::Binary(BinaryOp::Mul), &[e, t], "mul")
        .unwrap();
    let er = g.add_node1(Op::Unary(UnaryOp::Erf), &[s], "erf").unwrap();
    g.add_output("y", er);
    check(
        &g,
        &[
            rand_tensor(DType::F32, &[3, 37], 1),
            rand_tensor(DType::F32, &[37], 2),
        ],
        1e-5,
    );
}

#[test]
fn softmax_layernorm_reduce() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", ty(DType::F32, &[2, 5, 33]));
    let sc = g.add_input("s", ty(DType::F32, &[33]));
    let sm = g.add_node1(Op::Softmax { axis: 2 }, &[x], "sm").unwrap();
    let ln = g
        .add_node(
            Op::LayerNorm {
                axis: 2,
                epsilon: 1e-5,
                stats: true,
            },
            &[sm, sc, sc],
            "ln",
        )
        .unwrap();
    let r = g
        .add_node1(
            Op::Reduce {
                op: ReduceOp::Mean,
                axes: vec![1],
                keep_dims: false,
            },
            &[ln[0]],
            "r",
        )
        .unwrap();
    g.add_output("y", ln[0]);
    g.add_output("m", ln[1]);
    g.add_output("r", r);
    check(
        &g,
        &[
            rand_tensor(DType::F32, &[2, 5, 33], 3),
            rand_tensor(DType::F32, &[33], 4),
        ],
        1e-5,
    );
}

#[test]
fn matmul_bias_transpose_epilogue() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", ty(DType::F32, &[2, 45, 32]));
    let w = g.add_input("w", ty(DType::F32, &[32, 40]));
    let b = g.add_input("b", ty(DType::F32, &[40]));
    let m = g.add_node1(Op::MatMul, &[x, w], "mm").unwrap();
    let a = g
        .add_node1(Op::Binary(BinaryOp::Add), &[m, b], "bias")
        .unwrap();
    let r = g
        .add_node1(
            Op::Reshape {
                shape: Shape::from_dims(&[2, 45, 4, 10]),
            },
            &[a],
            "r",
        )
        .unwrap();
    let t = g
        .add_node1(
            Op::Transpose {
                perm: vec![0, 2, 1, 3],
            },
            &[r],
            "t",
        )
        .unwrap();
    let kt = g
        .add_node1(
            Op::Transpose {
                perm: vec![0, 1, 3, 2],
            },
            &[t],
            "kt",
        )
        .unwrap();
    let s = g.add_node1(Op::MatMul, &[t, kt], "scores").unwrap();
    g.add_output("y", s);
    check(
        &g,
        &[
            rand_tensor(DType::F32, &[2, 45, 32], 5),
            rand_tensor(DType::F32, &[32, 40], 6),
            rand_tensor(DType::F32, &[40], 7),
        ],
        1e-5,
    );
}

#[test]
fn conv_bn_relu_pool() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", ty(DType::F32, &[1, 3, 17, 19]));
    let w = g.add_input("w", ty(DType::F32, &[8, 3, 3, 3]));
    let p = g.add_input("p", ty(DType::F32, &[8]));
    let c = g
        .add_node1(
            Op::Conv(ConvAttrs {
                strides: vec![2, 1],
                pads: vec![1, 1, 1, 1],
                dilations: vec![1, 1],
                group: 1,
            }),
            &[x, w, p],
            "conv",
        )
        .unwrap();
    let bn = g
        .add_node1(Op::BatchNorm { epsilon: 1e-5 }, &[c, p, p, p, p], "bn")
        .unwrap();
    let v = g.add_node1(Op::Unary(UnaryOp::Abs), &[p], "abs").unwrap();
    let bn2 = g
        .add_node1(Op::BatchNorm { epsilon: 1e-5 }, &[bn, p, p, p, v], "bn2")
        .unwrap();
    let r = g
        .add_node1(Op::Unary(UnaryOp::Relu), &[bn2], "relu")
        .unwrap();
    let mp = g
        .add_node(
            Op::Pool {
                kind: PoolKind::Max { indices: true },
                attrs: PoolAttrs {
                    kernel: vec![3, 3],
                    strides: vec![2, 2],
                    pads: vec![1, 1, 1, 1],
                    dilations: vec![1, 1],
                    ceil_mode: false,
                },
            },
            &[r],
            "mp",
        )
        .unwrap();
    let dw = g.add_input("dw", ty(DType::F32, &[8, 1, 3, 3]));
    let d = g
        .add_node1(
            Op::Conv(ConvAttrs {
                strides: vec![1, 1],
                pads: vec![1, 1, 1, 1],
                dilations: vec![1, 1],
                group: 8,
            }),
            &[mp[0], dw],
            "dw",
        )
        .unwrap();
    let ap = g
        .add_node1(
            Op::Pool {
                kind: PoolKind::Average {
                    count_include_pad: false,
                },
                attrs: PoolAttrs {
                    kernel: vec![2, 2],
                    strides: vec![1, 1],
                    pads: vec![0, 1, 0, 1],
                    dilations: vec![1, 1],
                    ceil_mode: false,
                },
            },
            &[d],
            "ap",
        )
        .unwrap();
    g.add_output("y", ap);
    g.add_output("i", mp[1]);
    check(
        &g,
        &[
            rand_tensor(DType::F32, &[1, 3, 17, 19], 8),
            rand_tensor(DType::F32, &[8, 3, 3, 3], 9),
            rand_tensor(DType::F32, &[8], 10),
            rand_tensor(DType::F32, &[8, 1, 3, 3], 11),
        ],
        1e-5,
    );
}

#[test]
fn attention_matches_reference() {
    let mut g = Graph::new("t");
    let q = g.add_input("q", ty(DType::F32, &[2, 37, 8]));
    let k = g.add_input("k", ty(DType::F32, &[2, 70, 8]));
    let v = g.add_input("v", ty(DType::F32, &[2, 70, 5]));
    let m = g.add_input("m", ty(DType::F32, &[37, 70]));
    let a = g
        .add_node1(Op::Attention { scale: 0.35 }, &[q, k, v, m], "attn")
        .unwrap();
    g.add_output("y", a);
    check(
        &g,
        &[
            rand_tensor(DType::F32, &[2, 37, 8], 12),
            rand_tensor(DType::F32, &[2, 70, 8], 13),
            rand_tensor(DType::F32, &[2, 70, 5], 14),
            rand_tensor(DType::F32, &[37, 70], 15),
        ],
        1e-5,
    );
}

#[test]
fn integer_and_bool_ops() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", ty(DType::I64, &[4, 6]));
    let y = g.add_input("y", ty(DType::I64, &[6]));
    let d = g
        .add_node1(Op::Binary(BinaryOp::Mul), &[x, y], "mul")
        .unwrap();
    let c = g
        .add_node1(Op::Binary(BinaryOp::Greater), &[d, x], "gt")
        .unwrap();
    let n = g.add_node1(Op::Unary(UnaryOp::Not), &[c], "not").unwrap();
    let w = g.add_node1(Op::Where, &[n, d, x], "where").unwrap();
    let s = g
        .add_node1(
            Op::Reduce {
                op: ReduceOp::Sum,
                axes: vec![0],
                keep_dims: true,
            },
            &[w],
            "sum",
        )
        .unwrap();
    let f = g
        .add_node1(Op::Cast { to: DType::F32 }, &[s], "cast")
        .unwrap();
    g.add_output("f", f);
    g.add_output("n", n);
    let xs = Tensor::from_vec(
        Shape::from_dims(&[4, 6]),
        (0..24i64).map(|i| i * 7 - 50).collect(),
    )
    .unwrap();
    let ys = Tensor::from_vec(Shape::from_dims(&[6]), vec![3i64, -2, 0, 5, 1, -9]).unwrap();
    check(&g, &[xs, ys], 0.0);
}

/// Convolutions whose columns the native im2col fills (1-D and 2-D) and one it leaves to
/// the JIT-compiled nest (3-D), over strides, dilations, asymmetric and oversized pads,
/// groups and batches: every one must match the reference.
#[test]
fn conv_geometries() {
    struct Case {
        x: Vec<usize>,
        w: Vec<usize>,
        strides: Vec<usize>,
        pads: Vec<usize>,
        dilations: Vec<usize>,
        group: usize,
    }
    let case = |x: &[usize], w: &[usize], s: &[usize], p: &[usize], d: &[usize], group| Case {
        x: x.to_vec(),
        w: w.to_vec(),
        strides: s.to_vec(),
        pads: p.to_vec(),
        dilations: d.to_vec(),
        group,
    };
    let cases = [
        case(&[1, 2, 9], &[3, 2, 3], &[1], &[1, 1], &[1], 1),
        case(&[2, 4, 11], &[4, 2, 2], &[3], &[0, 2], &[2], 2),
        case(
            &[1, 3, 7, 9],
            &[5, 3, 3, 3],
            &[1, 1],
            &[1, 1, 1, 1],
            &[1, 1],
            1,
        ),
        case(
            &[1, 3, 8, 10],
            &[4, 3, 3, 2],
            &[2, 3],
            &[2, 0, 1, 3],
            &[1, 1],
            1,
        ),
        case(
            &[2, 4, 9, 9],
            &[6, 2, 3, 3],
            &[1, 2],
            &[0, 1, 2, 0],
            &[2, 3],
            2,
        ),
        // Pads wider than the kernel reach: whole rows and columns of zeros.
        case(
            &[1, 1, 4, 5],
            &[2, 1, 2, 2],
            &[3, 2],
            &[4, 4, 3, 5],
            &[1, 1],
            1,
        ),
        // Depthwise, stride 2.
        case(
            &[1, 6, 10, 7],
            &[6, 1, 3, 3],
            &[2, 2],
            &[1, 1, 1, 1],
            &[1, 1],
            6,
        ),
        // Depthwise with a multiplier of 2; RegNet-like groups of 8 input channels.
        case(
            &[1, 3, 6, 6],
            &[6, 1, 3, 3],
            &[1, 1],
            &[1, 1, 1, 1],
            &[1, 1],
            3,
        ),
        case(
            &[2, 16, 7, 7],
            &[16, 8, 3, 3],
            &[1, 1],
            &[1, 1, 1, 1],
            &[1, 1],
            2,
        ),
        case(
            &[1, 2, 4, 5, 6],
            &[3, 2, 2, 3, 2],
            &[1, 2, 1],
            &[1, 0, 1, 0, 1, 1],
            &[1, 1, 2],
            1,
        ),
    ];
    for (i, c) in cases.iter().enumerate() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", ty(DType::F32, &c.x));
        let w = g.add_input("w", ty(DType::F32, &c.w));
        let out = g
            .add_node1(
                Op::Conv(ConvAttrs {
                    strides: c.strides.clone(),
                    pads: c.pads.clone(),
                    dilations: c.dilations.clone(),
                    group: c.group,
                }),
                &[x, w],
                "conv",
            )
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
        g.add_output("y", out);
        check(
            &g,
            &[
                rand_tensor(DType::F32, &c.x, 40 + i as u64),
                rand_tensor(DType::F32, &c.w, 80 + i as u64),
            ],
            1e-5,
        );
    }
}

/// Windows wide enough that their rows split into guarded borders and an unguarded
/// interior (the JIT skips column guards there): pools and depthwise convolutions over
/// strides, dilations, asymmetric pads and ceil mode, against the reference.
#[test]
fn window_interiors() {
    let pools = [
        // (input [n, c, h, w], kernel, strides, pads, dilations, ceil_mode, max?)
        (
            [1, 3, 9, 37],
            [3, 3],
            [2, 2],
            [1, 1, 1, 1],
            [1, 1],
            false,
            true,
        ),
        (
            [2, 2, 6, 41],
            [2, 5],
            [1, 3],
            [0, 2, 1, 1],
            [1, 1],
            true,
            true,
        ),
        (
            [1, 2, 7, 33],
            [3, 3],
            [1, 1],
            [1, 1, 1, 1],
            [2, 2],
            false,
            false,
        ),
        (
            [1, 4, 5, 29],
            [1, 4],
            [1, 2],
            [0, 3, 0, 0],
            [1, 1],
            true,
            false,
        ),
    ];
    for (i, (x, k, s, p, d, ceil, max)) in pools.into_iter().enumerate() {
        let mut g = Graph::new("t");
        let xi = g.add_input("x", ty(DType::F32, &x));
        let kind = if max {
            PoolKind::Max { indices: false }
        } else {
            PoolKind::Average {
                count_include_pad: i % 2 == 0,
            }
        };
        let attrs = PoolAttrs {
            kernel: k.to_vec(),
            strides: s.to_vec(),
            pads: p.to_vec(),
            dilations: d.to_vec(),
            ceil_mode: ceil,
        };
        let y = g
            .add_node(Op::Pool { kind, attrs }, &[xi], "pool")
            .unwrap_or_else(|e| panic!("pool {i}: {e}"));
        g.add_output("y", y[0]);
        check(&g, &[rand_tensor(DType::F32, &x, 200 + i as u64)], 1e-5);
    }
    let depthwise = [
        // (input, kernel, strides, pads, dilations)
        ([1, 3, 8, 40], [3, 3], [1, 1], [1, 1, 1, 1], [1, 1]),
        ([2, 2, 7, 45], [3, 5], [2, 2], [1, 2, 0, 3], [1, 2]),
        ([1, 4, 6, 30], [1, 3], [1, 3], [0, 0, 0, 2], [1, 1]),
    ];
    for (i, (x, k, s, p, d)) in depthwise.into_iter().enumerate() {
        let c = x[1];
        let w = [c, 1, k[0], k[1]];
        let mut g = Graph::new("t");
        let xi = g.add_input("x", ty(DType::F32, &x));
        let wi = g.add_input("w", ty(DType::F32, &w));
        let y = g
            .add_node1(
                Op::Conv(ConvAttrs {
                    strides: s.to_vec(),
                    pads: p.to_vec(),
                    dilations: d.to_vec(),
                    group: c,
                }),
                &[xi, wi],
                "dw",
            )
            .unwrap_or_else(|e| panic!("depthwise {i}: {e}"));
        let r = g.add_node1(Op::Unary(UnaryOp::Relu), &[y], "relu").unwrap();
        g.add_output("y", r);
        check(
            &g,
            &[
                rand_tensor(DType::F32, &x, 300 + i as u64),
                rand_tensor(DType::F32, &w, 400 + i as u64),
            ],
            1e-5,
        );
    }
}

/// Convolutions with constant weights on small planes run transposed (positions as GEMM
/// rows), 1×1 and through the native im2col: ragged channel blocks, batches, strides and
/// padding, a fused bias and ReLU epilogue, and planes past the cutoff (the ordinary
/// path), all against the reference.
#[test]
fn small_plane_convolutions() {
    // (batch, in channels, out channels, height, width, kernel, stride, pad)
    let cases = [
        (1, 37, 40, 7, 7, 1, 1, 0),
        (2, 20, 70, 8, 8, 1, 1, 0),
        (1, 300, 130, 3, 5, 1, 1, 0),
        (1, 24, 33, 5, 13, 1, 1, 0),
        (1, 16, 40, 7, 7, 3, 1, 1),
        (2, 9, 20, 14, 14, 2, 2, 0),
        (1, 5, 17, 9, 11, 3, 1, 0),
        (1, 8, 24, 12, 12, 3, 1, 1),
    ];
    let mut transposed = 0;
    for (i, &(n, c, m, h, w, k, s, pad)) in cases.iter().enumerate() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", ty(DType::F32, &[n, c, h, w]));
        let wt = g.add_constant(rand_tensor(DType::F32, &[m, c, k, k], 7 + i as u64), "w");
        let b = g.add_constant(rand_tensor(DType::F32, &[m], 9 + i as u64), "b");
        let y = g
            .add_node1(
                Op::Conv(ConvAttrs {
                    strides: vec![s, s],
                    pads: vec![pad; 4],
                    dilations: vec![1, 1],
                    group: 1,
                }),
                &[x, wt, b],
                "conv",
            )
            .unwrap();
        let r = g.add_node1(Op::Unary(UnaryOp::Relu), &[y], "relu").unwrap();
        g.add_output("y", r);
        let (oh, ow) = ((h + 2 * pad - k) / s + 1, (w + 2 * pad - k) / s + 1);
        transposed += usize::from(oh * ow <= super::choice::TRANSPOSED_MAX_POSITIONS);
        check(
            &g,
            &[rand_tensor(DType::F32, &[n, c, h, w], 11 + i as u64)],
            1e-5,
        );
    }
    assert_eq!(transposed, 6, "both paths are covered");
}

/// A convolution with constant weights and bias, then ReLU (fused as the epilogue).
fn conv_graph(
    (n, c, m, h, w): (usize, usize, usize, usize, usize),
    (k, s, pad, group): (usize, usize, usize, usize),
    seed: u64,
) -> Graph {
    let mut g = Graph::new("t");
    let x = g.add_input("x", ty(DType::F32, &[n, c, h, w]));
    let wt = g.add_constant(rand_tensor(DType::F32, &[m, c / group, k, k], seed), "w");
    let b = g.add_constant(rand_tensor(DType::F32, &[m], seed + 1), "b");
    let y = g
        .add_node1(
            Op::Conv(ConvAttrs {
                strides: vec![s, s],
                pads: vec![pad; 4],
                dilations: vec![1, 1],
                group,
            }),
            &[x, wt, b],
            "conv",
        )
        .unwrap();
    let r = g.add_node1(Op::Unary(UnaryOp::Relu), &[y], "relu").unwrap();
    g.add_output("y", r);
    g
}

/// Every algorithm the search may choose for a convolution computes it: depthwise 3×3,
/// 5×5 and 7×7 at strides 1 and 2 on wide and narrow planes, grouped, stems, 1×1 and
/// 3×3 ungrouped, each forced in turn on both thread counts and instruction sets, against
/// the reference. An algorithm that is not a candidate is refused.
#[test]
fn every_conv_candidate_matches_the_reference() {
    // ((batch, in, out, height, width), (kernel, stride, pad, group))
    let cases = [
        ((1, 16, 16, 20, 20), (3, 1, 1, 16)),
        ((2, 24, 24, 17, 19), (3, 2, 1, 24)),
        ((1, 8, 8, 9, 9), (5, 1, 2, 8)),
        ((1, 16, 16, 23, 23), (5, 2, 2, 16)),
        ((1, 8, 8, 30, 30), (7, 1, 3, 8)),
        ((1, 32, 32, 12, 12), (3, 1, 1, 4)),
        ((1, 3, 16, 21, 21), (3, 2, 1, 1)),
        ((1, 12, 20, 7, 7), (1, 1, 0, 1)),
        ((1, 10, 24, 11, 11), (3, 1, 1, 1)),
    ];
    let mut alternatives = 0;
    for (i, &(dims, geo)) in cases.iter().enumerate() {
        let g = conv_graph(dims, geo, 50 + i as u64);
        let (n, c, _, h, w) = dims;
        let input = [rand_tensor(DType::F32, &[n, c, h, w], 70 + i as u64)];
        let want = reference::run(&g, &input).expect("reference runs")[0].to_f64_vec();
        for (threads, isa) in [(1, Isa::detect()), (2, Isa::detect()), (1, Isa::Portable)] {
            let opts = CpuOptions {
                mode: Mode::Fused,
                threads,
                isa,
            };
            let mut m = compile(&g, &opts).expect("compiles");
            let k = m
                .conv_algos()
                .iter()
                .position(Option::is_some)
                .expect("a convolution kernel");
            let cands = m.conv_candidates(k);
            assert_eq!(
                Some(cands[0]),
                m.conv_algos()[k],
                "the default is listed first"
            );
            if threads == 1 && isa == Isa::detect() {
                alternatives += cands.len();
            }
            for a in cands {
                m.set_conv_algo(k, a).expect("a candidate is accepted");
                let got = m.run(&input).expect("runs")[0].to_f64_vec();
                for (j, (p, q)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (p - q).abs() <= 1e-5 * (1.0 + q.abs()),
                        "case {i} {a:?} threads {threads} {isa:?} [{j}]: {p} vs {q}"
                    );
                }
            }
        }
    }
    assert!(
        alternatives >= 2 * cases.len(),
        "{alternatives} alternatives"
    );
    // An algorithm outside the candidates: a depthwise convolution does not run
    // transposed.
    let g = conv_graph((1, 16, 16, 8, 8), (3, 1, 1, 16), 3);
    let mut m = compile(&g, &CpuOptions::default()).expect("compiles");
    let k = m.conv_algos().iter().position(Option::is_some).unwrap();
    let e = m.set_conv_algo(k, super::ConvAlgo::Transposed).unwrap_err();
    assert!(e.to_string().contains("cannot run as transposed"), "{e}");
}

/// A measured search decides every convolution, stores every alternative in the cache,
/// and a second search of the same model reads them all back and decides the same; the
/// searched model still matches the reference.
#[test]
fn search_is_decided_by_the_cache_the_second_time() {
    use super::{Search, SearchOptions};
    let dir = std::env::temp_dir().join(format!("tessera-search-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cache = dir.join("measurements.json");
    let g = conv_graph((1, 24, 24, 28, 28), (3, 1, 1, 24), 5);
    let input = [rand_tensor(DType::F32, &[1, 24, 28, 28], 6)];
    let want = reference::run(&g, &input).expect("reference runs")[0].to_f64_vec();
    let opts = SearchOptions {
        mode: Search::Measure,
        cache: Some(cache.clone()),
        protocol: crate::measure::Protocol {
            warmup: 1,
            rounds: 3,
        },
        ..SearchOptions::default()
    };
    let cpu = CpuOptions {
        threads: 1,
        ..CpuOptions::default()
    };
    let mut first = compile(&g, &cpu).expect("compiles");
    let r1 = first.search(&opts).expect("searches");
    assert!(r1.warnings.is_empty(), "{:?}", r1.warnings);
    assert_eq!(r1.decisions.len(), 1, "{}", r1.table());
    assert_eq!(r1.cached, 0);
    assert!(r1.measured >= 2, "{}", r1.table());
    assert!(cache.exists(), "the cache is written");
    let mut second = compile(&g, &cpu).expect("compiles");
    let r2 = second.search(&opts).expect("searches");
    assert_eq!((r2.measured, r2.cached), (0, r1.measured), "{}", r2.table());
    assert_eq!(r1.decisions[0].choice, r2.decisions[0].choice);
    assert_eq!(first.conv_algos(), second.conv_algos());
    let got = second.run(&input).expect("runs")[0].to_f64_vec();
    for (p, q) in got.iter().zip(&want) {
        assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "{p} vs {q}");
    }
    // Off decides nothing and changes nothing.
    let mut off = compile(&g, &cpu).expect("compiles");
    let before = off.conv_algos();
    let r = off
        .search(&SearchOptions {
            mode: Search::Off,
            ..opts
        })
        .expect("searches");
    assert!(r.decisions.is_empty() && off.conv_algos() == before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A kernel that runs serial (the search's other alternative at two threads) computes the
/// same bits as on the pool: convolutions of every algorithm, a GEMM and pointwise nests.
#[test]
fn serial_kernels_compute_the_same_bits() {
    let mut g = conv_graph((2, 32, 32, 24, 24), (3, 1, 1, 32), 21);
    let y = g.outputs()[0].value;
    let w = g.add_constant(rand_tensor(DType::F32, &[24, 40], 22), "w2");
    let mm = g.add_node1(Op::MatMul, &[y, w], "mm").unwrap();
    let t = g
        .add_node1(Op::Unary(UnaryOp::Tanh), &[mm], "tanh")
        .unwrap();
    g.add_output("z", t);
    let input = [rand_tensor(DType::F32, &[2, 32, 24, 24], 23)];
    let opts = CpuOptions {
        threads: 2,
        ..CpuOptions::default()
    };
    let mut m = compile(&g, &opts).expect("compiles");
    let bits = |m: &super::CpuModel| -> Vec<Vec<u8>> {
        m.run(&input)
            .expect("runs")
            .iter()
            .map(|t| t.to_le_bytes())
            .collect()
    };
    let want = bits(&m);
    let n = m.kernels().count();
    assert!(n >= 2, "{n} kernels");
    let k = m.conv_algos().iter().position(Option::is_some).unwrap();
    for a in m.conv_candidates(k) {
        m.set_conv_algo(k, a).unwrap();
        let on_pool = bits(&m);
        for i in 0..n {
            m.set_serial(i, true);
        }
        assert_eq!(bits(&m), on_pool, "{a:?}: serial kernels round the same");
        for i in 0..n {
            m.set_serial(i, false);
        }
    }
    // Two threads (heuristic algorithms) against one: the same too.
    m.set_conv_algo(k, m.conv_candidates(k)[0]).unwrap();
    assert_eq!(bits(&m), want);
    let one = compile(
        &g,
        &CpuOptions {
            threads: 1,
            ..CpuOptions::default()
        },
    )
    .expect("compiles");
    assert_eq!(bits(&one), want);
}
