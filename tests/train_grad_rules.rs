//! Every differentiable op's gradient rule against central finite differences in f64, on
//! random inputs (broadcast shapes, strides, paddings, groups, negative indices and the
//! other cases the rules treat specially). Each case differentiates a weighted sum of the
//! op's outputs with respect to every float input and checks every element.

mod train_support;

use tessera::ir::{
    BinaryOp, ConvAttrs, DType, GeluApprox, Graph, Op, PoolAttrs, PoolKind, ReduceOp, Shape,
    Tensor, TensorType, UnaryOp, ValueId,
};
use train_support::{away_from_zero, check_all_inputs, i64_tensor, uniform, weighted_sum};

/// Builds a graph with the float tensors as inputs and the others as constants, applies
/// `build`, and checks the gradients of a weighted sum of what it returns.
fn case(
    name: &str,
    inputs: Vec<Tensor>,
    build: impl FnOnce(&mut Graph, &[ValueId]) -> Vec<ValueId>,
) {
    let mut g = Graph::new(name);
    let mut vals = Vec::new();
    let mut feed = Vec::new();
    for (i, t) in inputs.into_iter().enumerate() {
        if t.dtype().is_float() {
            vals.push(g.add_input(format!("in{i}"), t.ty()));
            feed.push(t);
        } else {
            vals.push(g.add_constant(t, format!("in{i}")));
        }
    }
    let ys = build(&mut g, &vals);
    weighted_sum(&mut g, &ys, 7);
    check_all_inputs(name, &g, &feed);
}

fn one(op: Op) -> impl FnOnce(&mut Graph, &[ValueId]) -> Vec<ValueId> {
    move |g, v| vec![g.add_node1(op, v, "op").unwrap()]
}

#[test]
fn unary_ops() {
    use UnaryOp::*;
    for (u, x) in [
        (Neg, uniform(&[2, 3], -2.0, 2.0, 1)),
        (Abs, away_from_zero(&[2, 3], 0.1, 2.0, 2)),
        (Relu, away_from_zero(&[2, 3], 0.1, 2.0, 3)),
        (Exp, uniform(&[2, 3], -2.0, 2.0, 4)),
        (Log, uniform(&[2, 3], 0.5, 3.0, 5)),
        (Sqrt, uniform(&[2, 3], 0.5, 3.0, 6)),
        (Reciprocal, away_from_zero(&[2, 3], 0.5, 2.0, 7)),
        (Erf, uniform(&[2, 3], -2.0, 2.0, 8)),
        (Tanh, uniform(&[2, 3], -2.0, 2.0, 9)),
        (Sigmoid, uniform(&[2, 3], -3.0, 3.0, 10)),
        (Softplus, uniform(&[2, 3], -3.0, 3.0, 11)),
        (Sin, uniform(&[2, 3], -3.0, 3.0, 12)),
        (Cos, uniform(&[2, 3], -3.0, 3.0, 13)),
    ] {
        case(u.name(), vec![x], one(Op::Unary(u)));
    }
}

#[test]
fn piecewise_constant_ops_pass_no_gradient() {
    // y = x·floor(x) + sign(x)·x²: only the smooth factors carry gradient.
    case(
        "floor_sign",
        vec![uniform(&[2, 3], 0.1, 0.9, 14)],
        |g, v| {
            let f = g
                .add_node1(Op::Unary(UnaryOp::Floor), &[v[0]], "f")
                .unwrap();
            let s = g.add_node1(Op::Unary(UnaryOp::Sign), &[v[0]], "s").unwrap();
            let a = g
                .add_node1(Op::Binary(BinaryOp::Mul), &[v[0], f], "a")
                .unwrap();
            let x2 = g
                .add_node1(Op::Binary(BinaryOp::Mul), &[v[0], v[0]], "x2")
                .unwrap();
            let b = g
                .add_node1(Op::Binary(BinaryOp::Mul), &[s, x2], "b")
                .unwrap();
            vec![a, b]
        },
    );
}

#[test]
fn binary_ops_with_broadcasting() {
    use BinaryOp::*;
    let shapes: [(&[usize], &[usize]); 3] =
        [(&[2, 3], &[2, 3]), (&[2, 3], &[3]), (&[2, 1, 4], &[3, 1])];
    for b in [Add, Sub, Mul, Div, Max, Min] {
        for (k, (sa, sb)) in shapes.iter().enumerate() {
            let seed = 100 + 10 * k as u64;
            let (x, y) = match b {
                // Keep max/min away from ties and div away from zero.
                Max | Min => (uniform(sa, 0.0, 1.0, seed), uniform(sb, 2.0, 3.0, seed + 1)),
                Div => (
                    uniform(sa, -2.0, 2.0, seed),
                    away_from_zero(sb, 0.5, 2.0, seed + 1),
                ),
                _ => (
                    uniform(sa, -2.0, 2.0, seed),
                    uniform(sb, -2.0, 2.0, seed + 1),
                ),
            };
            // max/min with both orders, so each side wins somewhere.
            let (x, y) = if matches!(b, Max | Min) && k == 1 {
                (y, x)
            } else {
                (x, y)
            };
            case(&format!("{}_{k}", b.name()), vec![x, y], one(Op::Binary(b)));
        }
    }
    case(
        "max_mixed",
        vec![
            uniform(&[2, 3], -1.0, 1.0, 150),
            away_from_zero(&[2, 3], 0.1, 1.0, 151),
        ],
        |g, v| {
            // Interleave winners: compare x with x + d where d has random signs.
            let s = g.add_node1(Op::Binary(Add), &[v[0], v[1]], "s").unwrap();
            vec![g.add_node1(Op::Binary(Max), &[v[0], s], "m").unwrap()]
        },
    );
}

#[test]
fn pow_with_float_and_integer_exponents() {
    case(
        "pow_float",
        vec![uniform(&[2, 3], 0.5, 2.0, 20), uniform(&[3], -1.5, 1.5, 21)],
        one(Op::Binary(BinaryOp::Pow)),
    );
    case(
        "pow_int",
        vec![
            uniform(&[2, 3], -2.0, 2.0, 22),
            i64_tensor(&[3], vec![2, 3, 1]),
        ],
        one(Op::Binary(BinaryOp::Pow)),
    );
}

#[test]
fn where_clip_gelu_identity_dropout() {
    let cond = Tensor::from_vec(Shape::from_dims(&[2, 1]), vec![true, false]).unwrap();
    case(
        "where",
        vec![
            cond,
            uniform(&[2, 3], -1.0, 1.0, 30),
            uniform(&[3], -1.0, 1.0, 31),
        ],
        one(Op::Where),
    );
    // Values away from the clip bounds.
    let x = Tensor::from_vec(
        Shape::from_dims(&[2, 3]),
        vec![-1.3f64, -0.2, 0.4, 0.7, 1.6, -0.9],
    )
    .unwrap();
    case(
        "clip",
        vec![x],
        one(Op::Clip {
            min: -0.5,
            max: 0.9,
        }),
    );
    for a in [GeluApprox::None, GeluApprox::Tanh] {
        case(
            &format!("gelu_{a:?}"),
            vec![uniform(&[2, 3], -3.0, 3.0, 32)],
            one(Op::Gelu { approximate: a }),
        );
    }
    case(
        "identity",
        vec![uniform(&[4], -1.0, 1.0, 33)],
        one(Op::Identity),
    );
    case(
        "dropout_mask",
        vec![uniform(&[4], -1.0, 1.0, 34)],
        |g, v| {
            let outs = g
                .add_node(
                    Op::Dropout {
                        ratio: 0.1,
                        mask: true,
                    },
                    v,
                    "dropout",
                )
                .unwrap();
            vec![outs[0]]
        },
    );
}

#[test]
fn cast_sends_the_gradient_back_in_the_input_dtype() {
    // y = cast(cast(x, f32), f64) · R: the gradient is R rounded through f32.
    let mut g = Graph::new("cast");
    let x = g.add_input("x", TensorType::new(DType::F64, Shape::from_dims(&[3])));
    let a = g
        .add_node1(Op::Cast { to: DType::F32 }, &[x], "down")
        .unwrap();
    let b = g
        .add_node1(Op::Cast { to: DType::F64 }, &[a], "up")
        .unwrap();
    weighted_sum(&mut g, &[b], 3);
    let spec = tessera::passes::train::TrainSpec {
        loss: tessera::passes::train::Loss::Sum,
        output: None,
        params: tessera::passes::train::ParamSelection::Patterns(vec![]),
        input_grads: vec!["x".into()],
    };
    let t = tessera::passes::train::autodiff(&g, &spec).unwrap();
    let out = train_support::run(&t.graph, &[uniform(&[3], -1.0, 1.0, 40)]);
    let r = uniform(&[3], -1.0, 1.0, 3).to_f64_vec();
    let expect: Vec<f64> = r.iter().map(|&v| v as f32 as f64).collect();
    assert_eq!(out[1].to_f64_vec(), expect);
}

#[test]
fn matmul_with_promotion_and_batch_broadcast() {
    let shapes: [(&[usize], &[usize]); 7] = [
        (&[2, 3], &[3, 4]),
        (&[2, 2, 3], &[3, 4]),
        (&[3], &[3, 4]),
        (&[2, 3], &[3]),
        (&[3], &[3]),
        (&[2, 1, 2, 3], &[3, 3, 2]),
        (&[3], &[2, 3, 4]),
    ];
    for (k, (a, b)) in shapes.iter().enumerate() {
        case(
            &format!("matmul_{k}"),
            vec![
                uniform(a, -1.0, 1.0, 50 + k as u64),
                uniform(b, -1.0, 1.0, 60 + k as u64),
            ],
            one(Op::MatMul),
        );
    }
}

#[test]
fn gemm_all_transposes() {
    for (k, &(ta, tb)) in [(false, false), (true, false), (false, true), (true, true)]
        .iter()
        .enumerate()
    {
        let a = if ta { [3, 2] } else { [2, 3] };
        let b = if tb { [4, 3] } else { [3, 4] };
        for (j, c) in [None, Some(vec![4]), Some(vec![2, 1])]
            .into_iter()
            .enumerate()
        {
            let mut ins = vec![
                uniform(&a, -1.0, 1.0, 70 + k as u64),
                uniform(&b, -1.0, 1.0, 80),
            ];
            if let Some(c) = &c {
                ins.push(uniform(c, -1.0, 1.0, 90));
            }
            case(
                &format!("gemm_{k}_{j}"),
                ins,
                one(Op::Gemm {
                    alpha: 0.75,
                    beta: 1.5,
                    trans_a: ta,
                    trans_b: tb,
                }),
            );
        }
    }
}

fn conv(strides: &[usize], pads: &[usize], dilations: &[usize], group: usize) -> Op {
    Op::Conv(ConvAttrs {
        strides: strides.to_vec(),
        pads: pads.to_vec(),
        dilations: dilations.to_vec(),
        group,
    })
}

#[test]
fn convolutions() {
    // (x, w, bias, op)
    let cases: Vec<(&[usize], &[usize], bool, Op)> = vec![
        (
            &[1, 2, 5, 5],
            &[3, 2, 3, 3],
            true,
            conv(&[1, 1], &[1, 1, 1, 1], &[1, 1], 1),
        ),
        // Stride 2 with a remainder row, asymmetric pads.
        (
            &[2, 2, 6, 5],
            &[2, 2, 3, 2],
            false,
            conv(&[2, 2], &[1, 0, 0, 1], &[1, 1], 1),
        ),
        // Dilation, and pads beyond the kernel's reach (negative back-padding).
        (
            &[1, 1, 7, 7],
            &[2, 1, 2, 2],
            true,
            conv(&[1, 2], &[0, 3, 2, 1], &[2, 3], 1),
        ),
        // Groups.
        (
            &[1, 4, 4, 4],
            &[6, 2, 3, 3],
            true,
            conv(&[2, 1], &[1, 1, 1, 1], &[1, 1], 2),
        ),
        // Depthwise, 1-d.
        (&[2, 3, 7], &[3, 1, 3], false, conv(&[2], &[2, 1], &[1], 3)),
        (
            &[1, 2, 4, 3, 3],
            &[2, 2, 2, 2, 2],
            false,
            conv(&[1, 1, 1], &[0, 1, 0, 1, 0, 0], &[1, 1, 1], 1),
        ),
    ];
    for (k, (x, w, bias, op)) in cases.into_iter().enumerate() {
        let mut ins = vec![
            uniform(x, -1.0, 1.0, 200 + k as u64),
            uniform(w, -1.0, 1.0, 210 + k as u64),
        ];
        if bias {
            ins.push(uniform(&[w[0]], -1.0, 1.0, 220));
        }
        case(&format!("conv_{k}"), ins, one(op));
    }
}

fn pool(
    kind: PoolKind,
    kernel: &[usize],
    strides: &[usize],
    pads: &[usize],
    dilations: &[usize],
    ceil: bool,
) -> Op {
    Op::Pool {
        kind,
        attrs: PoolAttrs {
            kernel: kernel.to_vec(),
            strides: strides.to_vec(),
            pads: pads.to_vec(),
            dilations: dilations.to_vec(),
            ceil_mode: ceil,
        },
    }
}

#[test]
fn pooling() {
    let max = PoolKind::Max { indices: false };
    let avg = |p| PoolKind::Average {
        count_include_pad: p,
    };
    let cases = vec![
        (
            "max_3x3_s2_p1",
            &[1, 2, 7, 7][..],
            pool(max, &[3, 3], &[2, 2], &[1, 1, 1, 1], &[1, 1], false),
        ),
        (
            "max_ceil",
            &[1, 1, 6, 6][..],
            pool(max, &[3, 3], &[2, 2], &[0, 0, 0, 0], &[1, 1], true),
        ),
        (
            "max_dilated",
            &[1, 1, 7, 6][..],
            pool(max, &[2, 2], &[1, 2], &[0, 1, 0, 1], &[2, 1], false),
        ),
        (
            "max_indices",
            &[1, 2, 5, 5][..],
            pool(
                PoolKind::Max { indices: true },
                &[2, 2],
                &[2, 2],
                &[0, 0, 0, 0],
                &[1, 1],
                false,
            ),
        ),
        (
            "avg_incl",
            &[1, 2, 5, 5][..],
            pool(avg(true), &[3, 3], &[2, 2], &[1, 1, 1, 1], &[1, 1], false),
        ),
        (
            "avg_excl",
            &[1, 2, 5, 5][..],
            pool(avg(false), &[3, 3], &[2, 2], &[1, 1, 1, 1], &[1, 1], false),
        ),
        (
            "avg_ceil",
            &[1, 1, 6, 7][..],
            pool(avg(false), &[3, 2], &[2, 2], &[1, 0, 0, 0], &[1, 1], true),
        ),
        (
            "max_1d",
            &[2, 2, 9][..],
            pool(max, &[3], &[2], &[1, 1], &[1], false),
        ),
    ];
    for (k, (name, x, op)) in cases.into_iter().enumerate() {
        // Distinct values, so each window has one maximum.
        case(
            name,
            vec![uniform(x, -1.0, 1.0, 300 + k as u64)],
            move |g, v| vec![g.add_node(op, v, "pool").unwrap()[0]],
        );
    }
}

#[test]
fn reductions() {
    use ReduceOp::*;
    for op in [Sum, Mean, Max, Min, Prod] {
        for (k, (axes, keep)) in [(vec![1], true), (vec![0, 2], false), (vec![0, 1, 2], false)]
            .into_iter()
            .enumerate()
        {
            let x = match op {
                Prod => away_from_zero(&[2, 3, 2], 0.5, 1.5, 400),
                _ => uniform(&[2, 3, 2], -1.0, 1.0, 400 + k as u64),
            };
            case(
                &format!("{}_{k}", op.name()),
                vec![x],
                one(Op::Reduce {
                    op,
                    axes,
                    keep_dims: keep,
                }),
            );
        }
    }
}

#[test]
fn softmaxes_and_normalizations() {
    let x = || uniform(&[2, 3, 4], -2.0, 2.0, 500);
    case("softmax", vec![x()], one(Op::Softmax { axis: 1 }));
    case("log_softmax", vec![x()], one(Op::LogSoftmax { axis: 2 }));
    for (k, (exclusive, reverse)) in [(false, false), (true, false), (false, true), (true, true)]
        .into_iter()
        .enumerate()
    {
        case(
            &format!("cumsum_{k}"),
            vec![x()],
            one(Op::CumSum {
                axis: 2,
                exclusive,
                reverse,
            }),
        );
    }
    case(
        "layer_norm",
        vec![
            x(),
            uniform(&[3, 4], 0.5, 1.5, 501),
            uniform(&[4], -1.0, 1.0, 502),
        ],
        one(Op::LayerNorm {
            axis: 1,
            epsilon: 1e-5,
            stats: false,
        }),
    );
    case(
        "layer_norm_no_bias_stats",
        vec![x(), uniform(&[4], 0.5, 1.5, 503)],
        |g, v| {
            let outs = g
                .add_node(
                    Op::LayerNorm {
                        axis: 2,
                        epsilon: 1e-3,
                        stats: true,
                    },
                    v,
                    "ln",
                )
                .unwrap();
            vec![outs[0]]
        },
    );
    case(
        "batch_norm",
        vec![
            uniform(&[2, 3, 2, 2], -2.0, 2.0, 504),
            uniform(&[3], 0.5, 1.5, 505),
            uniform(&[3], -1.0, 1.0, 506),
            uniform(&[3], -0.5, 0.5, 507),
            uniform(&[3], 0.5, 2.0, 508),
        ],
        one(Op::BatchNorm { epsilon: 1e-5 }),
    );
    for size in [3, 4] {
        case(
            &format!("lrn_{size}"),
            vec![uniform(&[1, 5, 2, 2], -1.0, 1.0, 509)],
            one(Op::Lrn {
                size,
                alpha: 0.5,
                beta: 0.75,
                bias: 1.0,
            }),
        );
    }
    case(
        "rms_norm",
        vec![x(), uniform(&[4], 0.5, 1.5, 510)],
        one(Op::RmsNorm {
            axis: 2,
            epsilon: 1e-6,
        }),
    );
}

#[test]
fn fused_attention() {
    let q = uniform(&[2, 3, 4], -1.0, 1.0, 600);
    let k = uniform(&[2, 5, 4], -1.0, 1.0, 601);
    let v = uniform(&[2, 5, 3], -1.0, 1.0, 602);
    case(
        "attention",
        vec![q.clone(), k.clone(), v.clone()],
        one(Op::Attention { scale: 0.5 }),
    );
    case(
        "attention_mask",
        vec![q, k, v, uniform(&[3, 5], -1.0, 0.0, 603)],
        one(Op::Attention { scale: 0.5 }),
    );
}

#[test]
fn data_movement() {
    let x = || uniform(&[2, 3, 4], -1.0, 1.0, 700);
    case(
        "reshape",
        vec![x()],
        one(Op::Reshape {
            shape: Shape::from_dims(&[6, 4]),
        }),
    );
    case(
        "transpose",
        vec![x()],
        one(Op::Transpose {
            perm: vec![2, 0, 1],
        }),
    );
    case(
        "expand",
        vec![uniform(&[3, 1], -1.0, 1.0, 701)],
        one(Op::Expand {
            shape: Shape::from_dims(&[2, 3, 4]),
        }),
    );
    case(
        "concat",
        vec![
            x(),
            uniform(&[2, 1, 4], -1.0, 1.0, 702),
            uniform(&[2, 2, 4], -1.0, 1.0, 703),
        ],
        one(Op::Concat { axis: 1 }),
    );
    case("split", vec![x()], |g, v| {
        let outs = g
            .add_node(
                Op::Split {
                    axis: 2,
                    sizes: vec![1, 2, 1],
                },
                v,
                "split",
            )
            .unwrap();
        // The middle part is unused: its gradient is zero.
        vec![outs[0], outs[2]]
    });
    let slice = |axes: Vec<usize>, starts: Vec<i64>, ends: Vec<i64>, steps: Vec<i64>| Op::Slice {
        axes,
        starts,
        ends,
        steps,
    };
    case(
        "slice_step2",
        vec![uniform(&[3, 7], -1.0, 1.0, 704)],
        one(slice(vec![1], vec![1], vec![6], vec![2])),
    );
    case(
        "slice_negative",
        vec![uniform(&[3, 7], -1.0, 1.0, 705)],
        one(slice(vec![1, 0], vec![6, 2], vec![0, -1], vec![-3, -1])),
    );
    case(
        "slice_empty_tail",
        vec![uniform(&[3, 5], -1.0, 1.0, 706)],
        one(slice(vec![0], vec![1], vec![2], vec![1])),
    );
}

#[test]
fn gathers_scatter_back_with_repeats_and_negative_indices() {
    case(
        "gather_axis0",
        vec![
            uniform(&[5, 3], -1.0, 1.0, 800),
            i64_tensor(&[2, 2], vec![0, 4, -1, 2]),
        ],
        one(Op::Gather { axis: 0 }),
    );
    let idx32 = Tensor::from_vec(Shape::from_dims(&[3]), vec![2i32, 0, 2]).unwrap();
    case(
        "gather_axis1_i32",
        vec![uniform(&[2, 3, 2], -1.0, 1.0, 801), idx32],
        one(Op::Gather { axis: 1 }),
    );
    case(
        "gather_elements",
        vec![
            uniform(&[3, 4], -1.0, 1.0, 802),
            i64_tensor(&[2, 4], vec![0, 2, -1, 1, 1, 1, 0, 2]),
        ],
        one(Op::GatherElements { axis: 0 }),
    );
    case(
        "gather_elements_small",
        vec![
            uniform(&[3, 4], -1.0, 1.0, 803),
            i64_tensor(&[2, 2], vec![3, 0, -2, 3]),
        ],
        one(Op::GatherElements { axis: 1 }),
    );
    case(
        "gather_nd",
        vec![
            uniform(&[3, 2, 2], -1.0, 1.0, 804),
            i64_tensor(&[4, 2], vec![0, 1, 2, 0, -1, 1, 0, 1]),
        ],
        one(Op::GatherNd { batch_dims: 0 }),
    );
    case(
        "gather_nd_batch",
        vec![
            uniform(&[2, 3, 2], -1.0, 1.0, 805),
            i64_tensor(&[2, 2, 1], vec![1, 1, 2, -3]),
        ],
        one(Op::GatherNd { batch_dims: 1 }),
    );
}

#[test]
fn fan_out_accumulates() {
    // x feeds three consumers, one twice.
    case("fan_out", vec![uniform(&[2, 3], -1.0, 1.0, 900)], |g, v| {
        let a = g
            .add_node1(Op::Binary(BinaryOp::Mul), &[v[0], v[0]], "sq")
            .unwrap();
        let b = g.add_node1(Op::Unary(UnaryOp::Tanh), &[v[0]], "t").unwrap();
        let c = g
            .add_node1(Op::Binary(BinaryOp::Add), &[a, b], "c")
            .unwrap();
        vec![c, v[0]]
    });
}
