//! `If`, `Loop` and `Scan` as the importer unrolls them, on hand-built models whose
//! bodies read the enclosing scope, checked against values computed here, through the
//! reference interpreter and the compiled CPU backend: an `If` whose condition is known at
//! run time only (if-converted to `Where`), one with a constant condition (folded), one
//! whose branches differ in shape (specialized on the condition's value), a counted
//! `Loop` with scan outputs, a `while` loop whose body decides when to stop, a loop whose
//! trip count is a graph input, and a reverse `Scan`.

mod onnx_support;

use std::collections::HashMap;

use onnx_support::value;
use prost::Message;
use tessera::ir::{Op, Shape, Tensor};
use tessera::onnx::ImportError;
use tessera::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    attribute_proto::AttributeType,
};

const F32: i32 = 1;
const I64: i32 = 7;
const BOOL: i32 = 9;

fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: Some(format!("{op}_{}", outputs.first().copied().unwrap_or(""))),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn with_attrs(mut n: NodeProto, attrs: Vec<AttributeProto>) -> NodeProto {
    n.attribute = attrs;
    n
}

fn graph_attr(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Graph as i32),
        g: Some(g),
        ..Default::default()
    }
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(i),
        ..Default::default()
    }
}

fn floats(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(F32),
        float_data: v.to_vec(),
        ..Default::default()
    }
}

fn int64s(name: &str, dims: &[i64], v: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(I64),
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

fn bools(name: &str, v: bool) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: vec![],
        data_type: Some(BOOL),
        int32_data: vec![i32::from(v)],
        ..Default::default()
    }
}

fn body(
    name: &str,
    nodes: Vec<NodeProto>,
    inputs: Vec<tessera::onnx::proto::ValueInfoProto>,
    outputs: &[&str],
) -> GraphProto {
    GraphProto {
        name: Some(name.into()),
        node: nodes,
        input: inputs,
        output: outputs
            .iter()
            .map(|o| tessera::onnx::proto::ValueInfoProto {
                name: Some(o.to_string()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn model(g: GraphProto, opset: i64) -> Vec<u8> {
    ModelProto {
        ir_version: Some(9),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        graph: Some(g),
        ..Default::default()
    }
    .encode_to_vec()
}

fn f32s(dims: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(Shape::new(dims.to_vec()).expect("shape"), v.to_vec()).expect("tensor")
}

/// Runs `g` on `args` with the reference interpreter and the compiled CPU backend and
/// checks both against `want` (one f32 output).
fn check_runs(g: &tessera::ir::Graph, args: &[Tensor], want: &[f32]) {
    let refs = tessera::reference::run(g, args).expect("reference runs");
    assert_eq!(refs[0].to_f64_vec(), to64(want), "reference");
    let options = tessera::Options {
        threads: 1,
        ..tessera::Options::default()
    };
    let compiled = tessera::compile(g, options).expect("compiles");
    let outs = compiled.run(args).expect("compiled runs");
    let got = outs[0].to_f64_vec();
    for (a, b) in got.iter().zip(to64(want)) {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "compiled {got:?}, want {want:?}"
        );
    }
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

fn count(g: &tessera::ir::Graph, f: impl Fn(&Op) -> bool) -> usize {
    g.nodes().filter(|(_, n)| f(&n.op)).count()
}

/// `y = If(c) { x + a } else { x * k }`, the branches reading `a` and `k` from outside.
fn if_model(cond_from_input: bool, else_shape_differs: bool) -> Vec<u8> {
    let then_g = body(
        "then",
        vec![node("Add", &["x", "a"], &["t"])],
        vec![],
        &["t"],
    );
    let else_g = if else_shape_differs {
        body(
            "else",
            vec![node("ReduceSum", &["x"], &["e"])],
            vec![],
            &["e"],
        )
    } else {
        body(
            "else",
            vec![node("Mul", &["x", "k"], &["e"])],
            vec![],
            &["e"],
        )
    };
    let mut nodes = Vec::new();
    let mut inits = vec![
        floats("a", &[3], &[10.0, 20.0, 30.0]),
        floats("k", &[], &[2.0]),
    ];
    let mut inputs = vec![value("x", F32, &[3])];
    if cond_from_input {
        inputs.push(value("c", BOOL, &[]));
    } else {
        inits.push(bools("c", false));
    }
    nodes.push(with_attrs(
        node("If", &["c"], &["y"]),
        vec![
            graph_attr("then_branch", then_g),
            graph_attr("else_branch", else_g),
        ],
    ));
    let out_dims: &[usize] = if else_shape_differs { &[] } else { &[3] };
    let g = GraphProto {
        name: Some("if".into()),
        node: nodes,
        initializer: inits,
        input: inputs,
        output: vec![value("y", F32, out_dims)],
        ..Default::default()
    };
    let mut g = g;
    if else_shape_differs {
        // The output's shape depends on the branch: leave it undeclared.
        g.output[0].r#type = None;
    }
    model(g, 18)
}

#[test]
fn if_with_a_run_time_condition_selects_with_where() {
    let g = tessera::load_onnx_bytes(&if_model(true, false), HashMap::new()).expect("imports");
    assert_eq!(count(&g, |op| matches!(op, Op::Where)), 1, "if-converted");
    let x = f32s(&[3], &[1.0, 2.0, 3.0]);
    check_runs(&g, &[x.clone(), Tensor::scalar(true)], &[11.0, 22.0, 33.0]);
    check_runs(&g, &[x, Tensor::scalar(false)], &[2.0, 4.0, 6.0]);
}

#[test]
fn if_with_a_constant_condition_is_the_branch_it_takes() {
    let g = tessera::load_onnx_bytes(&if_model(false, false), HashMap::new()).expect("imports");
    assert_eq!(count(&g, |op| matches!(op, Op::Where)), 0, "folded");
    check_runs(&g, &[f32s(&[3], &[1.0, 2.0, 3.0])], &[2.0, 4.0, 6.0]);
}

#[test]
fn if_branches_of_different_shapes_specialize_on_the_condition() {
    let bytes = if_model(true, true);
    let e = tessera::load_onnx_bytes(&bytes, HashMap::new()).expect_err("needs the condition");
    assert!(
        matches!(&e, ImportError::NeedsBinding { graph_inputs, .. } if graph_inputs == &["c"]),
        "{e}"
    );
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("control_flow_if");
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("model.onnx");
    std::fs::write(&path, &bytes).expect("write");
    let x = f32s(&[3], &[1.0, 2.0, 3.0]);
    let (g, args) =
        tessera::load_onnx_with_inputs(&path, &[x.clone(), Tensor::scalar(false)]).expect("binds");
    check_runs(&g, &args, &[6.0]);
    let (g, args) =
        tessera::load_onnx_with_inputs(&path, &[x, Tensor::scalar(true)]).expect("binds");
    check_runs(&g, &args, &[11.0, 22.0, 33.0]);
}

/// `for i in 0..m: s = s + x * i; scan i-th s` with `m` an initializer or a graph input.
fn counted_loop(trip_from_input: bool) -> Vec<u8> {
    let b = body(
        "step",
        vec![
            with_attrs(node("Cast", &["i"], &["fi"]), vec![int_attr("to", 1)]),
            node("Mul", &["x", "fi"], &["xi"]),
            node("Add", &["s", "xi"], &["s2"]),
            node("Identity", &["cond"], &["cond2"]),
            node("Identity", &["s2"], &["snap"]),
        ],
        vec![
            value("i", I64, &[]),
            value("cond", BOOL, &[]),
            value("s", F32, &[2]),
        ],
        &["cond2", "s2", "snap"],
    );
    let mut inits = vec![floats("s0", &[2], &[0.0, 100.0])];
    let mut inputs = vec![value("x", F32, &[2])];
    if trip_from_input {
        inputs.push(value("m", I64, &[]));
    } else {
        inits.push(int64s("m", &[], &[4]));
    }
    let g = GraphProto {
        name: Some("loop".into()),
        node: vec![with_attrs(
            node("Loop", &["m", "", "s0"], &["s", "scan"]),
            vec![graph_attr("body", b)],
        )],
        initializer: inits,
        input: inputs,
        output: vec![value("s", F32, &[2]), value("scan", F32, &[4, 2])],
        ..Default::default()
    };
    model(g, 16)
}

/// What `counted_loop` computes for `x` and `m` iterations: the final state, then every
/// iteration's.
fn counted_loop_want(x: [f32; 2], m: usize) -> (Vec<f32>, Vec<f32>) {
    let mut s = [0.0f32, 100.0];
    let mut scan = Vec::new();
    for i in 0..m {
        for k in 0..2 {
            s[k] += x[k] * i as f32;
        }
        scan.extend(s);
    }
    (s.to_vec(), scan)
}

#[test]
fn counted_loop_with_scan_outputs_unrolls() {
    let g = tessera::load_onnx_bytes(&counted_loop(false), HashMap::new()).expect("imports");
    let x = [1.5f32, -2.0];
    let (s, scan) = counted_loop_want(x, 4);
    check_runs(&g, &[f32s(&[2], &x)], &s);
    let outs = tessera::reference::run(&g, &[f32s(&[2], &x)]).expect("runs");
    assert_eq!(outs[1].shape().dims(), &[4, 2]);
    assert_eq!(outs[1].to_f64_vec(), to64(&scan));
}

#[test]
fn a_trip_count_from_a_graph_input_is_specialized_on_its_value() {
    let bytes = counted_loop(true);
    let e = tessera::load_onnx_bytes(&bytes, HashMap::new()).expect_err("needs m");
    assert!(
        matches!(&e, ImportError::NeedsBinding { graph_inputs, .. } if graph_inputs == &["m"]),
        "{e}"
    );
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("control_flow_loop");
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("model.onnx");
    std::fs::write(&path, &bytes).expect("write");
    let x = [0.5f32, 3.0];
    let (g, args) = tessera::load_onnx_with_inputs(&path, &[f32s(&[2], &x), Tensor::scalar(4i64)])
        .expect("binds");
    check_runs(&g, &args, &counted_loop_want(x, 4).0);
}

/// `k = 1; while k < 20: k = k * 3; y = y + x` — three iterations, decided by the body.
#[test]
fn while_loop_stops_where_the_body_says() {
    let b = body(
        "step",
        vec![
            node("Mul", &["k", "three"], &["k2"]),
            node("Less", &["k2", "twenty"], &["go"]),
            node("Add", &["y", "x"], &["y2"]),
        ],
        vec![
            value("i", I64, &[]),
            value("cond", BOOL, &[]),
            value("k", I64, &[]),
            value("y", F32, &[2]),
        ],
        &["go", "k2", "y2"],
    );
    let g = GraphProto {
        name: Some("while".into()),
        node: vec![with_attrs(
            node("Loop", &["", "yes", "k0", "y0"], &["k", "y"]),
            vec![graph_attr("body", b)],
        )],
        initializer: vec![
            bools("yes", true),
            int64s("k0", &[], &[1]),
            int64s("three", &[], &[3]),
            int64s("twenty", &[], &[20]),
            floats("y0", &[2], &[0.0, 0.0]),
        ],
        input: vec![value("x", F32, &[2])],
        output: vec![value("k", I64, &[]), value("y", F32, &[2])],
        ..Default::default()
    };
    let g = tessera::load_onnx_bytes(&model(g, 16), HashMap::new()).expect("imports");
    let outs = tessera::reference::run(&g, &[f32s(&[2], &[1.0, -1.0])]).expect("runs");
    // 1 → 3 → 9 → 27: the third iteration's condition (27 < 20) is false.
    assert_eq!(outs[0].to_i64_vec(), [27]);
    assert_eq!(outs[1].to_f64_vec(), [3.0, -3.0]);
}

/// A cumulative sum over rows, scanned from the last row and written back in reverse.
#[test]
fn reverse_scan_accumulates_from_the_end() {
    let b = body(
        "step",
        vec![
            node("Add", &["s", "row"], &["s2"]),
            node("Identity", &["s2"], &["out"]),
        ],
        vec![value("s", F32, &[2]), value("row", F32, &[2])],
        &["s2", "out"],
    );
    let g = GraphProto {
        name: Some("scan".into()),
        node: vec![with_attrs(
            node("Scan", &["s0", "x"], &["s", "ys"]),
            vec![
                graph_attr("body", b),
                int_attr("num_scan_inputs", 1),
                ints_attr("scan_input_directions", &[1]),
                ints_attr("scan_output_directions", &[1]),
            ],
        )],
        initializer: vec![floats("s0", &[2], &[0.0, 0.0])],
        input: vec![value("x", F32, &[3, 2])],
        output: vec![value("s", F32, &[2]), value("ys", F32, &[3, 2])],
        ..Default::default()
    };
    let g = tessera::load_onnx_bytes(&model(g, 16), HashMap::new()).expect("imports");
    let x = f32s(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    check_runs(&g, std::slice::from_ref(&x), &[9.0, 12.0]);
    let outs = tessera::reference::run(&g, &[x]).expect("runs");
    // Rows visited 2, 1, 0 give partial sums [5,6], [8,10], [9,12]; written reversed.
    assert_eq!(outs[1].to_f64_vec(), [9.0, 12.0, 8.0, 10.0, 5.0, 6.0]);
}

#[test]
fn a_loop_condition_known_only_at_run_time_is_a_clear_error() {
    // `while y.sum() < 10` on a graph input: the condition depends on data. Without the
    // value the import asks for it; the message names the loop.
    let b = body(
        "step",
        vec![
            node("Add", &["y", "one"], &["y2"]),
            node("ReduceSum", &["y2"], &["t"]),
            node("Less", &["t", "ten"], &["go"]),
        ],
        vec![
            value("i", I64, &[]),
            value("cond", BOOL, &[]),
            value("y", F32, &[2]),
        ],
        &["go", "y2"],
    );
    let g = GraphProto {
        name: Some("data_while".into()),
        node: vec![with_attrs(
            node("Loop", &["", "yes", "x"], &["y"]),
            vec![graph_attr("body", b)],
        )],
        initializer: vec![
            bools("yes", true),
            floats("one", &[], &[1.0]),
            floats("ten", &[], &[10.0]),
        ],
        input: vec![value("x", F32, &[2])],
        output: vec![value("y", F32, &[2])],
        ..Default::default()
    };
    let e = tessera::load_onnx_bytes(&model(g, 16), HashMap::new()).expect_err("data-dependent");
    let ImportError::NeedsBinding {
        node, graph_inputs, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(node.op, "Loop");
    assert_eq!(graph_inputs, &["x"]);
}

/// Loops nested 4096 × 4096 deep would unroll into 16 M nodes: the import stops at its
/// node budget with an error instead.
#[test]
fn nested_loops_stop_at_the_unrolling_budget() {
    let inner = body(
        "inner",
        vec![
            node("Add", &["v", "x"], &["v2"]),
            node("Identity", &["c"], &["c2"]),
        ],
        vec![
            value("j", I64, &[]),
            value("c", BOOL, &[]),
            value("v", F32, &[2]),
        ],
        &["c2", "v2"],
    );
    let outer = body(
        "outer",
        vec![
            with_attrs(
                node("Loop", &["m", "", "u"], &["u2"]),
                vec![graph_attr("body", inner)],
            ),
            node("Identity", &["c"], &["c2"]),
        ],
        vec![
            value("i", I64, &[]),
            value("c", BOOL, &[]),
            value("u", F32, &[2]),
        ],
        &["c2", "u2"],
    );
    let g = GraphProto {
        name: Some("nested".into()),
        node: vec![with_attrs(
            node("Loop", &["m", "", "x"], &["y"]),
            vec![graph_attr("body", outer)],
        )],
        initializer: vec![int64s("m", &[], &[4096])],
        input: vec![value("x", F32, &[2])],
        output: vec![value("y", F32, &[2])],
        ..Default::default()
    };
    let e = tessera::load_onnx_bytes(&model(g, 16), HashMap::new()).expect_err("too big");
    assert!(e.to_string().contains("more than 100000 IR nodes"), "{e}");
}

/// A branch may return an outer value unchanged, with no node of its own.
#[test]
fn a_branch_can_pass_an_outer_value_through() {
    let then_g = body("then", vec![], vec![], &["x"]);
    let else_g = body("else", vec![node("Neg", &["x"], &["e"])], vec![], &["e"]);
    let g = GraphProto {
        name: Some("pass".into()),
        node: vec![
            node("Relu", &["x0"], &["x"]),
            with_attrs(
                node("If", &["c"], &["y"]),
                vec![
                    graph_attr("then_branch", then_g),
                    graph_attr("else_branch", else_g),
                ],
            ),
        ],
        input: vec![value("x0", F32, &[2]), value("c", BOOL, &[])],
        output: vec![value("y", F32, &[2])],
        ..Default::default()
    };
    let g = tessera::load_onnx_bytes(&model(g, 18), HashMap::new()).expect("imports");
    let x = f32s(&[2], &[1.5, -2.0]);
    check_runs(&g, &[x.clone(), Tensor::scalar(true)], &[1.5, 0.0]);
    check_runs(&g, &[x, Tensor::scalar(false)], &[-1.5, 0.0]);
}

/// A branch that only imports when it is taken (a reshape the condition guards against)
/// makes the import ask for the condition instead of failing.
#[test]
fn a_branch_that_does_not_import_waits_for_the_condition() {
    let then_g = body("then", vec![node("Relu", &["x"], &["t"])], vec![], &["t"]);
    let else_g = body(
        "else",
        vec![node("Reshape", &["x", "two"], &["e"])],
        vec![],
        &["e"],
    );
    let g = GraphProto {
        name: Some("guarded".into()),
        node: vec![with_attrs(
            node("If", &["c"], &["y"]),
            vec![
                graph_attr("then_branch", then_g),
                graph_attr("else_branch", else_g),
            ],
        )],
        initializer: vec![int64s("two", &[1], &[2])],
        input: vec![value("x", F32, &[3]), value("c", BOOL, &[])],
        output: vec![value("y", F32, &[3])],
        ..Default::default()
    };
    let bytes = model(g, 18);
    let e = tessera::load_onnx_bytes(&bytes, HashMap::new()).expect_err("needs the condition");
    assert!(
        matches!(&e, ImportError::NeedsBinding { graph_inputs, .. } if graph_inputs == &["c"]),
        "{e}"
    );
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("control_flow_guarded");
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("model.onnx");
    std::fs::write(&path, &bytes).expect("write");
    let x = f32s(&[3], &[1.0, -2.0, 3.0]);
    let (g, args) =
        tessera::load_onnx_with_inputs(&path, &[x.clone(), Tensor::scalar(true)]).expect("binds");
    check_runs(&g, &args, &[1.0, 0.0, 3.0]);
    let e = tessera::load_onnx_with_inputs(&path, &[x, Tensor::scalar(false)])
        .expect_err("the taken branch does not import");
    assert!(e.to_string().contains("Reshape"), "{e}");
}
