//! Every `Op` variant through every per-op table of the compiler.
//!
//! Adding an op touches a table in each crate (docs/adding-an-op.md lists them). This test
//! builds one small graph per variant (and per unary, binary and reduce function) and
//! puts it through each table: type inference (`Op::infer`, run by graph building), the
//! reference interpreter, the fusion planner's op class, the cost model's FLOPs, the
//! compiled CPU backend (fused and eager, compared with the reference), the CUDA C printer
//! (fused and eager) and autodiff, which either differentiates the op or the op is listed
//! below as not differentiable. [`kind`] is an exhaustive match without a wildcard, so a
//! new variant does not compile until it has an index here, and the test fails until it
//! has an example.

use tessera::ir::{
    BinaryOp, ConvAttrs, DType, GeluApprox, Graph, Op, PoolAttrs, PoolKind, ReduceOp, Shape,
    Tensor, TensorType, UnaryOp, ValueId,
};
use tessera::lower::fusion::Mode;
use tessera::lower::fusion::classify::{OpClass, classify};
use tessera::passes::cost::{DeviceProfile, kernel_work};
use tessera::passes::train::{Loss, ParamSelection, TrainSpec, autodiff};
use tessera::runtime::cpu::{CpuOptions, Isa, compile};
use tessera::sample::{compare, splitmix64_uniform};

/// Number of `Op` variants.
const KINDS: usize = 31;

/// A distinct index per `Op` variant; no wildcard, so a new variant must be added here.
fn kind(op: &Op) -> usize {
    match op {
        Op::Constant(_) => 0,
        Op::Identity => 1,
        Op::Dropout { .. } => 2,
        Op::Unary(_) => 3,
        Op::Binary(_) => 4,
        Op::Where => 5,
        Op::Clip { .. } => 6,
        Op::Gelu { .. } => 7,
        Op::Cast { .. } => 8,
        Op::MatMul => 9,
        Op::Gemm { .. } => 10,
        Op::Conv(_) => 11,
        Op::Pool { .. } => 12,
        Op::Reduce { .. } => 13,
        Op::Softmax { .. } => 14,
        Op::LogSoftmax { .. } => 15,
        Op::LayerNorm { .. } => 16,
        Op::BatchNorm { .. } => 17,
        Op::Lrn { .. } => 18,
        Op::Reshape { .. } => 19,
        Op::Transpose { .. } => 20,
        Op::Expand { .. } => 21,
        Op::Concat { .. } => 22,
        Op::Split { .. } => 23,
        Op::Slice { .. } => 24,
        Op::Gather { .. } => 25,
        Op::GatherElements { .. } => 26,
        Op::GatherNd { .. } => 27,
        Op::RmsNorm { .. } => 28,
        Op::Attention { .. } => 29,
        Op::CumSum { .. } => 30,
    }
}

fn f32t(dims: &[usize]) -> TensorType {
    TensorType::new(DType::F32, Shape::from_dims(dims))
}

fn shape(dims: &[usize]) -> Shape {
    Shape::from_dims(dims)
}

/// An operand of an example: a graph input, or a constant (index operands, which must be
/// in range).
enum Arg {
    In(TensorType),
    Const(Tensor),
}

fn i64s(dims: &[usize], v: Vec<i64>) -> Arg {
    Arg::Const(Tensor::from_vec(shape(dims), v).expect("one value per element"))
}

/// One example: a graph computing `op` on `args`, its outputs all graph outputs.
struct Example {
    name: String,
    op: Op,
    graph: Graph,
}

fn example(name: impl Into<String>, op: Op, args: Vec<Arg>) -> Example {
    let name = name.into();
    let mut g = Graph::new(name.clone());
    let mut vals: Vec<ValueId> = Vec::new();
    for (i, a) in args.into_iter().enumerate() {
        vals.push(match a {
            Arg::In(t) => g.add_input(format!("x{i}"), t),
            Arg::Const(t) => g.add_constant(t, format!("c{i}")),
        });
    }
    let outs = g
        .add_node(op.clone(), &vals, &name)
        .unwrap_or_else(|e| panic!("{name}: type inference: {e}"));
    for (i, o) in outs.into_iter().enumerate() {
        g.add_output(format!("y{i}"), o);
    }
    Example { name, op, graph: g }
}

fn examples() -> Vec<Example> {
    use Arg::In;
    let x = || In(f32t(&[2, 3, 8]));
    let mut v = vec![
        {
            // A constant alone: its output is the graph output.
            let mut g = Graph::new("constant");
            let c = g.add_constant(Tensor::full(DType::F32, shape(&[2, 3]), 1.5), "c");
            g.add_output("y0", c);
            Example {
                name: "constant".into(),
                op: Op::Constant(Tensor::full(DType::F32, shape(&[2, 3]), 1.5)),
                graph: g,
            }
        },
        example("identity", Op::Identity, vec![x()]),
        example(
            "dropout",
            Op::Dropout {
                ratio: 0.5,
                mask: true,
            },
            vec![x()],
        ),
        example(
            "where",
            Op::Where,
            vec![
                In(TensorType::new(DType::Bool, shape(&[2, 3, 8]))),
                x(),
                x(),
            ],
        ),
        example("clip", Op::Clip { min: 0.7, max: 1.4 }, vec![x()]),
        example(
            "gelu",
            Op::Gelu {
                approximate: GeluApprox::Tanh,
            },
            vec![x()],
        ),
        example("cast", Op::Cast { to: DType::F64 }, vec![x()]),
        example("matmul", Op::MatMul, vec![x(), In(f32t(&[8, 5]))]),
        example(
            "gemm",
            Op::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: true,
            },
            vec![In(f32t(&[4, 8])), In(f32t(&[5, 8])), In(f32t(&[5]))],
        ),
        example(
            "conv",
            Op::Conv(ConvAttrs {
                strides: vec![1, 1],
                pads: vec![1, 1, 1, 1],
                dilations: vec![1, 1],
                group: 1,
            }),
            vec![In(f32t(&[1, 3, 6, 6])), In(f32t(&[4, 3, 3, 3]))],
        ),
        example(
            "max_pool",
            Op::Pool {
                kind: PoolKind::Max { indices: false },
                attrs: PoolAttrs {
                    kernel: vec![2, 2],
                    strides: vec![2, 2],
                    pads: vec![0; 4],
                    dilations: vec![1, 1],
                    ceil_mode: false,
                },
            },
            vec![In(f32t(&[1, 3, 6, 6]))],
        ),
        example("softmax", Op::Softmax { axis: 2 }, vec![x()]),
        example("log_softmax", Op::LogSoftmax { axis: 2 }, vec![x()]),
        example(
            "cumsum",
            Op::CumSum {
                axis: 2,
                exclusive: false,
                reverse: true,
            },
            vec![x()],
        ),
        example(
            "layer_norm",
            Op::LayerNorm {
                axis: 2,
                epsilon: 1e-5,
                stats: false,
            },
            vec![x(), In(f32t(&[8])), In(f32t(&[8]))],
        ),
        example(
            "batch_norm",
            Op::BatchNorm { epsilon: 1e-5 },
            vec![
                In(f32t(&[1, 3, 4, 4])),
                In(f32t(&[3])),
                In(f32t(&[3])),
                In(f32t(&[3])),
                In(f32t(&[3])),
            ],
        ),
        example(
            "lrn",
            Op::Lrn {
                size: 3,
                alpha: 1e-4,
                beta: 0.75,
                bias: 1.0,
            },
            vec![In(f32t(&[1, 5, 4, 4]))],
        ),
        example(
            "reshape",
            Op::Reshape {
                shape: shape(&[6, 8]),
            },
            vec![x()],
        ),
        example(
            "transpose",
            Op::Transpose {
                perm: vec![2, 0, 1],
            },
            vec![x()],
        ),
        example(
            "expand",
            Op::Expand {
                shape: shape(&[4, 3, 8]),
            },
            vec![In(f32t(&[1, 3, 8]))],
        ),
        example("concat", Op::Concat { axis: 1 }, vec![x(), x()]),
        example(
            "split",
            Op::Split {
                axis: 2,
                sizes: vec![3, 5],
            },
            vec![x()],
        ),
        example(
            "slice",
            Op::Slice {
                axes: vec![2],
                starts: vec![1],
                ends: vec![7],
                steps: vec![2],
            },
            vec![x()],
        ),
        example(
            "gather",
            Op::Gather { axis: 1 },
            vec![x(), i64s(&[2], vec![2, 0])],
        ),
        example(
            "gather_elements",
            Op::GatherElements { axis: 1 },
            vec![In(f32t(&[2, 3])), i64s(&[2, 3], vec![2, 1, 0, 0, 1, 2])],
        ),
        example(
            "gather_nd",
            Op::GatherNd { batch_dims: 0 },
            vec![x(), i64s(&[2, 2], vec![1, 2, 0, 1])],
        ),
        example(
            "rms_norm",
            Op::RmsNorm {
                axis: 2,
                epsilon: 1e-6,
            },
            vec![x(), In(f32t(&[8]))],
        ),
        example(
            "attention",
            Op::Attention { scale: 0.35 },
            vec![
                In(f32t(&[2, 5, 8])),
                In(f32t(&[2, 6, 8])),
                In(f32t(&[2, 6, 4])),
                In(f32t(&[2, 5, 6])),
            ],
        ),
    ];
    for u in UnaryOp::ALL {
        let ty = if u == UnaryOp::Not {
            TensorType::new(DType::Bool, shape(&[2, 3, 8]))
        } else {
            f32t(&[2, 3, 8])
        };
        v.push(example(u.name(), Op::Unary(u), vec![In(ty)]));
    }
    for b in BinaryOp::ALL {
        let ty = if matches!(b, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor) {
            TensorType::new(DType::Bool, shape(&[2, 3, 8]))
        } else {
            f32t(&[2, 3, 8])
        };
        v.push(example(
            b.name(),
            Op::Binary(b),
            vec![In(ty.clone()), In(ty)],
        ));
    }
    for r in ReduceOp::ALL {
        v.push(example(
            r.name(),
            Op::Reduce {
                op: r,
                axes: vec![2],
                keep_dims: true,
            },
            vec![x()],
        ));
    }
    v
}

/// Inputs: floats in [0.5, 2) (positive, so log, sqrt and pow are defined), bools random.
fn inputs(g: &Graph) -> Vec<Tensor> {
    g.inputs()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ty = g.ty(p.value);
            splitmix64_uniform(ty.dtype, ty.shape.clone(), 7 + i as u64, 0.5, 2.0)
        })
        .collect()
}

/// The op class each example is expected to get from the fusion planner.
fn expected_class(op: &Op) -> OpClass {
    match op {
        Op::Constant(_) => OpClass::Constant,
        Op::Identity
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Expand { .. }
        | Op::Split { .. }
        | Op::Slice { .. } => OpClass::View,
        Op::Gather { .. } | Op::GatherElements { .. } | Op::GatherNd { .. } => OpClass::Gather,
        Op::Concat { .. } => OpClass::Concat,
        Op::Reduce { .. }
        | Op::Softmax { .. }
        | Op::LogSoftmax { .. }
        | Op::LayerNorm { .. }
        | Op::RmsNorm { .. } => OpClass::Reduction,
        Op::Pool { .. } | Op::Lrn { .. } | Op::CumSum { .. } => OpClass::Window,
        Op::MatMul | Op::Gemm { .. } | Op::Conv(_) => OpClass::Contraction,
        Op::Attention { .. } => OpClass::Attention,
        _ => OpClass::Pointwise,
    }
}

/// Ops that move data only, so the cost model gives them no FLOPs (or no kernel). A cast
/// converts each element and may count one operation per element either way.
fn moves_only(op: &Op) -> bool {
    matches!(
        op,
        Op::Constant(_)
            | Op::Identity
            | Op::Dropout { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Expand { .. }
            | Op::Concat { .. }
            | Op::Split { .. }
            | Op::Slice { .. }
            | Op::Gather { .. }
            | Op::GatherElements { .. }
            | Op::GatherNd { .. }
    )
}

/// Examples with no gradient: a constant has no inputs, piecewise-constant functions
/// have zero derivatives, and predicates, casts to a non-float... have no float output
/// the loss could read. Every other op must differentiate.
fn not_differentiable(e: &Example) -> bool {
    match &e.op {
        Op::Constant(_) => true,
        Op::Unary(u) => matches!(
            u,
            UnaryOp::Sign
                | UnaryOp::Floor
                | UnaryOp::Ceil
                | UnaryOp::Round
                | UnaryOp::Not
                | UnaryOp::IsNaN
                | UnaryOp::IsInf
        ),
        Op::Binary(b) => b.is_predicate(),
        _ => false,
    }
}

#[test]
fn every_op_goes_through_every_table() {
    let all = examples();
    let mut covered = [false; KINDS];
    let mut problems = Vec::new();
    let h200 = DeviceProfile::h200();
    for e in &all {
        covered[kind(&e.op)] = true;
        let g = &e.graph;
        let name = &e.name;
        let args = inputs(g);
        // Reference interpreter.
        let want = match tessera::reference::run(g, &args) {
            Ok(w) => w,
            Err(err) => {
                problems.push(format!("{name}: reference: {err}"));
                continue;
            }
        };
        // Fusion class and cost, for the node computing the op.
        if let Some((n, node)) = g.nodes().last() {
            let class = classify(g, n);
            if class != expected_class(&e.op) {
                problems.push(format!(
                    "{name}: op class {class:?}, expected {:?}",
                    expected_class(&e.op)
                ));
            }
            let ins: Vec<&TensorType> = node.inputs.iter().map(|&v| g.ty(v)).collect();
            let outs: Vec<TensorType> = node.outputs.iter().map(|&v| g.ty(v).clone()).collect();
            let flops = kernel_work(&node.op, &ins, &outs).map_or(0.0, |w| w.flops);
            let is_cast = matches!(e.op, Op::Cast { .. });
            if !is_cast && (flops > 0.0) == moves_only(&e.op) {
                problems.push(format!("{name}: the cost model counts {flops} FLOPs"));
            }
        }
        // Compiled CPU backend, fused and eager, against the reference.
        for (mode, isa) in [
            (Mode::Fused, Isa::detect()),
            (Mode::Fused, Isa::Portable),
            (Mode::Eager, Isa::detect()),
        ] {
            let opts = CpuOptions {
                mode,
                threads: 1,
                isa,
            };
            let got = compile(g, &opts)
                .map_err(|err| err.to_string())
                .and_then(|m| m.run(&args).map_err(|err| err.to_string()));
            match got {
                Err(err) => problems.push(format!("{name} ({mode:?}): CPU backend: {err}")),
                Ok(got) => {
                    assert_eq!(got.len(), want.len(), "{name}: output counts differ");
                    for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                        let close = compare(a, b, 1e-5, 1.3e-6).is_some_and(|c| c.all_close);
                        if !close {
                            problems.push(format!("{name} ({mode:?}) output {k} differs"));
                        }
                    }
                }
            }
            // CUDA C printer.
            if let Err(err) = tessera::cuda_kernels(g, "none", &h200, mode) {
                problems.push(format!("{name} ({mode:?}): CUDA printer: {err}"));
            }
        }
        // Autodiff with respect to every input.
        let spec = TrainSpec {
            params: ParamSelection::Patterns(vec!["x*".into()]),
            ..TrainSpec::new(Loss::Sum)
        };
        let grads = autodiff(g, &spec).map(|t| t.grads.len());
        match (not_differentiable(e), grads) {
            (false, Ok(n)) if n > 0 => {}
            (false, other) => problems.push(format!("{name}: autodiff: {other:?}")),
            (true, Ok(n)) if n > 0 => problems.push(format!(
                "{name}: listed as not differentiable but autodiff gives {n} gradient(s)"
            )),
            (true, _) => {}
        }
    }
    let missing: Vec<usize> = (0..KINDS).filter(|&k| !covered[k]).collect();
    assert!(
        missing.is_empty(),
        "op kinds without an example: {missing:?}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
