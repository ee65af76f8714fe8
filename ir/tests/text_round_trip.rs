//! The text form round-trips and rejects what it must.

use tessera_ir::text::{PrintOptions, parse, print};
use tessera_ir::*;

fn f32s(dims: &[usize]) -> TensorType {
    TensorType::new(DType::F32, Shape::from_dims(dims))
}

/// A graph touching every kind of syntax: multi-output nodes, inline and data-section
/// constants of several dtypes, special floats, names that need escaping.
fn sample() -> Graph {
    let mut g = Graph::new("all \"the\" syntax");
    let x = g.add_input("x\\in", f32s(&[2, 3]));
    let w = g.add_constant(
        Tensor::from_vec(
            Shape::from_dims(&[3, 4]),
            (0..12).map(|i| i as f32 * 0.1).collect(),
        )
        .unwrap(),
        "w",
    );
    let specials = g.add_constant(
        Tensor::from_vec(
            Shape::from_dims(&[4]),
            vec![f32::INFINITY, f32::NEG_INFINITY, -0.0, 1e-30],
        )
        .unwrap(),
        "",
    );
    let y = g.add_node1(Op::MatMul, &[x, w], "mm").unwrap();
    let y = g
        .add_node1(Op::Binary(BinaryOp::Add), &[y, specials], "")
        .unwrap();
    let parts = g
        .add_node(
            Op::Split {
                axis: 1,
                sizes: vec![1, 3],
            },
            &[y],
            "split\n",
        )
        .unwrap();
    let shape = g.add_constant(
        Tensor::from_vec(Shape::from_dims(&[2]), vec![3i64, -1]).unwrap(),
        "",
    );
    let flag = g.add_constant(Tensor::scalar(true), "");
    let half = g.add_constant(
        Tensor::from_vec(
            Shape::from_dims(&[2]),
            vec![half::f16::from_f32(0.1), half::f16::MAX],
        )
        .unwrap(),
        "",
    );
    let _ = (shape, flag, half);
    let c = g
        .add_node1(
            Op::Clip {
                min: -1.5,
                max: f64::INFINITY,
            },
            &[parts[1]],
            "",
        )
        .unwrap();
    let r = g
        .add_node1(
            Op::Reduce {
                op: ReduceOp::Mean,
                axes: vec![1],
                keep_dims: true,
            },
            &[c],
            "",
        )
        .unwrap();
    g.add_output("first", parts[0]);
    g.add_output("mean", r);
    g
}

#[test]
fn print_parse_print_is_identity() {
    let g = sample();
    verify(&g).unwrap();
    let once = print(&g, &PrintOptions::default());
    let back = parse(&once).unwrap();
    verify(&back).unwrap();
    assert_eq!(print(&back, &PrintOptions::default()), once);
    // Constants survive bit for bit.
    assert_eq!(back, g);
}

#[test]
fn cumsum_round_trips() {
    let mut g = Graph::new("cumsum");
    let x = g.add_input("x", f32s(&[2, 3]));
    let y = g
        .add_node1(
            Op::CumSum {
                axis: 1,
                exclusive: true,
                reverse: false,
            },
            &[x],
            "",
        )
        .unwrap();
    g.add_output("y", y);
    let once = print(&g, &PrintOptions::default());
    assert!(
        once.contains("cumsum(%0) {axis=1, exclusive=true, reverse=false}"),
        "{once}"
    );
    let back = parse(&once).unwrap();
    assert_eq!(print(&back, &PrintOptions::default()), once);
}

#[test]
fn printed_form_is_readable() {
    let txt = print(
        &sample(),
        &PrintOptions {
            elide_constants: true,
        },
    );
    insta::assert_snapshot!(txt);
}

#[test]
fn elided_text_does_not_parse_back() {
    let txt = print(
        &sample(),
        &PrintOptions {
            elide_constants: true,
        },
    );
    let e = parse(&txt).unwrap_err().to_string();
    assert!(e.contains("elided"), "{e}");
}

#[test]
fn parse_errors_name_the_place() {
    let cases = [
        (
            "graph \"g\" {\n  output \"y\" %3\n}\n",
            "line 2, column 3: output \"y\" uses undefined %3",
        ),
        (
            "graph \"g\" {\n  input \"x\" %0: f32[2]\n  %1: f32[3] = relu(%0)\n  output \"y\" %1\n}\n",
            "line 3, column 3: %1 is declared f32[3] but relu computes f32[2]",
        ),
        (
            "graph \"g\" {\n  input \"x\" %0: f32[2]\n  %1: f32[2] = frobnicate(%0)\n}\n",
            "line 3, column 3: unknown op `frobnicate`",
        ),
        (
            "graph \"g\" {\n  input \"x\" %0: f32[2]\n  %1: f32[2] = softmax(%0) {axis=0, bogus=1}\n}\n",
            "line 3, column 3: op `softmax` has no attribute `bogus`",
        ),
        (
            "graph \"g\" {\n  input \"x\" %0: f32[2]\n  %1: f32[2] = relu(%1)\n}\n",
            "line 3, column 21: %1 is used before it is defined",
        ),
        (
            "graph \"g\" {\n  input \"x\" %0: f32[1048576,1048576]\n}\n",
            "too large",
        ),
        (
            "graph \"g\" {\n  input \"x\" %0: f32[2]",
            "unexpected end of input",
        ),
        ("graph \"g", "unterminated string"),
    ];
    for (src, want) in cases {
        let got = parse(src).unwrap_err().to_string();
        assert!(
            got.contains(want),
            "parsing {src:?}\n  got:  {got}\n  want: {want}"
        );
    }
}
