//! Bad models give clear errors, never panics, and never huge allocations.

use prost::Message;
use tessera::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};

fn value(name: &str, elem: i32, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

const F32: i32 = 1;

fn model(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
) -> ModelProto {
    ModelProto {
        ir_version: Some(9),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(18),
        }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: nodes,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn import_error(m: &ModelProto) -> String {
    import_bytes_error(&m.encode_to_vec())
}

fn import_bytes_error(bytes: &[u8]) -> String {
    match tessera::load_onnx_bytes(bytes, Default::default()) {
        Ok(_) => panic!("import unexpectedly succeeded"),
        Err(e) => e.to_string(),
    }
}

fn relu_model() -> ModelProto {
    model(
        vec![node("act", "Relu", &["x"], &["y"])],
        vec![value("x", F32, &[2, 3])],
        vec![value("y", F32, &[2, 3])],
    )
}

#[test]
fn a_good_model_imports() {
    let g = tessera::load_onnx_bytes(&relu_model().encode_to_vec(), Default::default()).unwrap();
    assert_eq!(g.num_nodes(), 1);
}

#[test]
fn truncated_file() {
    let bytes = relu_model().encode_to_vec();
    let e = import_bytes_error(&bytes[..bytes.len() / 2]);
    assert!(
        e.starts_with("not a valid ONNX model: failed to decode Protobuf message"),
        "{e}"
    );
}

#[test]
fn truncated_real_model() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/tiny_bert_cls/model.onnx"
    ))
    .unwrap();
    for cut in [1, 100, bytes.len() / 3, bytes.len() - 1] {
        let e = import_bytes_error(&bytes[..cut]);
        assert!(e.starts_with("not a valid ONNX model"), "cut at {cut}: {e}");
    }
}

#[test]
fn garbage_bytes() {
    let garbage: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let e = import_bytes_error(&garbage);
    assert!(
        e.starts_with("not a valid ONNX model: failed to decode Protobuf message"),
        "{e}"
    );
}

#[test]
fn unknown_ops_are_all_listed_in_one_error() {
    let mut custom = node("mine", "Frobnicate", &["y"], &["z"]);
    custom.domain = Some("com.example".into());
    let m = model(
        vec![
            node("first", "Relu", &["x"], &["a"]),
            node("bad1", "NotAnOp", &["a"], &["y"]),
            custom,
        ],
        vec![value("x", F32, &[2])],
        vec![value("z", F32, &[2])],
    );
    assert_eq!(
        import_error(&m),
        "2 unsupported node(s):\n  node \"bad1\": NotAnOp (ai.onnx opset 18)\n  node \"mine\": Frobnicate (com.example opset 0)"
    );
}

#[test]
fn shape_mismatch_names_the_node() {
    let m = model(
        vec![node("plus", "Add", &["a", "b"], &["c"])],
        vec![value("a", F32, &[2, 3]), value("b", F32, &[4])],
        vec![value("c", F32, &[2, 3])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"plus\" (Add → add, n0): shapes [2,3] and [4] do not broadcast"
    );
}

#[test]
fn declared_output_shape_must_agree() {
    let m = model(
        vec![node("act", "Relu", &["x"], &["y"])],
        vec![value("x", F32, &[2, 3])],
        vec![value("y", F32, &[3, 2])],
    );
    assert_eq!(
        import_error(&m),
        "graph input \"y\": declared shape [3,2] but the graph computes f32[2,3]: the model's shapes are inconsistent"
    );
}

#[test]
fn missing_initializer() {
    let m = model(
        vec![node("mm", "MatMul", &["x", "weight"], &["y"])],
        vec![value("x", F32, &[2, 3])],
        vec![value("y", F32, &[2, 4])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"mm\" (MatMul) reads \"weight\", which no node, initializer or graph input defines"
    );
}

#[test]
fn cycle() {
    let m = model(
        vec![
            node("a", "Add", &["x", "d"], &["c"]),
            node("b", "Relu", &["c"], &["d"]),
            node("tail", "Relu", &["d"], &["y"]),
        ],
        vec![value("x", F32, &[2])],
        vec![value("y", F32, &[2])],
    );
    assert_eq!(
        import_error(&m),
        "the graph has a cycle through node(s) \"a\" (Add), \"b\" (Relu), \"tail\" (Relu)"
    );
}

#[test]
fn absurd_input_shape() {
    let m = model(
        vec![node("act", "Relu", &["x"], &["y"])],
        vec![value("x", F32, &[1 << 20, 1 << 20])],
        vec![value("y", F32, &[1 << 20, 1 << 20])],
    );
    assert_eq!(
        import_error(&m),
        "graph input \"x\": shape [1048576, 1048576] is too large: 1099511627776 elements exceed the limit of 2^34"
    );
}

#[test]
fn absurd_initializer_is_rejected_before_allocating() {
    let mut m = relu_model();
    let g = m.graph.as_mut().unwrap();
    g.initializer.push(TensorProto {
        name: Some("huge".into()),
        dims: vec![1 << 20, 1 << 20],
        data_type: Some(F32),
        ..Default::default()
    });
    assert_eq!(
        import_error(&m),
        "initializer \"huge\": shape [1048576, 1048576] is too large: 1099511627776 elements exceed the limit of 2^34"
    );
}

#[test]
fn reshape_to_an_absurd_shape() {
    let mut m = model(
        vec![
            node("shape", "Constant", &[], &["s"]),
            node("grow", "Expand", &["x", "s"], &["y"]),
        ],
        vec![value("x", F32, &[1])],
        vec![value("y", F32, &[1 << 21, 1 << 21])],
    );
    m.graph.as_mut().unwrap().node[0]
        .attribute
        .push(AttributeProto {
            name: Some("value".into()),
            r#type: Some(4),
            t: Some(TensorProto {
                dims: vec![2],
                data_type: Some(7),
                int64_data: vec![1 << 21, 1 << 21],
                ..Default::default()
            }),
            ..Default::default()
        });
    assert_eq!(
        import_error(&m),
        "ONNX node \"grow\" (Expand, n1): shape [2097152, 2097152] is too large: 4398046511104 elements exceed the limit of 2^34"
    );
}

#[test]
fn wrong_dtype() {
    let m = model(
        vec![node("e", "Exp", &["x"], &["y"])],
        vec![value("x", 7, &[2])],
        vec![value("y", 7, &[2])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"e\" (Exp → exp, n0): operand has dtype i64, expected a float dtype"
    );
}

#[test]
fn raw_data_of_the_wrong_length() {
    let mut m = relu_model();
    m.graph.as_mut().unwrap().initializer.push(TensorProto {
        name: Some("w".into()),
        dims: vec![4],
        data_type: Some(F32),
        raw_data: Some(vec![0; 15]),
        ..Default::default()
    });
    assert_eq!(
        import_error(&m),
        "initializer \"w\": raw_data has 15 bytes, shape [4] of f32 needs 16"
    );
}

#[test]
fn shape_operand_from_a_graph_input_needs_binding() {
    let m = model(
        vec![node("r", "Reshape", &["x", "s"], &["y"])],
        vec![value("x", F32, &[2, 3]), value("s", 7, &[2])],
        vec![value("y", F32, &[3, 2])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"r\" (Reshape, n0): input \"s\" fixes a shape and must be constant, but it depends on graph input(s) [\"s\"]; bind them to values"
    );
}

#[test]
fn external_data_outside_the_model_folder_is_refused() {
    let mut m = relu_model();
    m.graph.as_mut().unwrap().initializer.push(TensorProto {
        name: Some("w".into()),
        dims: vec![4],
        data_type: Some(F32),
        data_location: Some(1),
        external_data: vec![tessera::onnx::proto::StringStringEntryProto {
            key: Some("location".into()),
            value: Some("../../etc/passwd".into()),
        }],
        ..Default::default()
    });
    assert_eq!(
        import_error(&m),
        "initializer \"w\": external data location \"../../etc/passwd\" must be a relative path inside the model's folder"
    );
}

#[test]
fn external_data_loads_from_the_model_folder() {
    let dir = std::env::temp_dir().join(format!("tessera-external-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let weights: Vec<u8> = [1.5f32, -2.0, 3.25, 0.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let mut blob = vec![0u8; 8];
    blob.extend(&weights);
    std::fs::write(dir.join("weights.bin"), &blob).unwrap();
    let entry = |k: &str, v: &str| tessera::onnx::proto::StringStringEntryProto {
        key: Some(k.into()),
        value: Some(v.into()),
    };
    let mut m = model(
        vec![node("plus", "Add", &["x", "w"], &["y"])],
        vec![value("x", F32, &[4])],
        vec![value("y", F32, &[4])],
    );
    m.graph.as_mut().unwrap().initializer.push(TensorProto {
        name: Some("w".into()),
        dims: vec![4],
        data_type: Some(F32),
        data_location: Some(1),
        external_data: vec![
            entry("location", "weights.bin"),
            entry("offset", "8"),
            entry("length", "16"),
        ],
        ..Default::default()
    });
    let path = dir.join("model.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    let g = tessera::load_onnx(&path, Default::default()).unwrap();
    let x =
        tessera::ir::Tensor::from_vec(tessera::ir::Shape::from_dims(&[4]), vec![1f32; 4]).unwrap();
    let y = tessera::reference::run(&g, &[x]).unwrap();
    assert_eq!(y[0].as_slice::<f32>().unwrap(), &[2.5, -1.0, 4.25, 1.0]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An int64 initializer.
fn ints(name: &str, dims: &[i64], v: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(7),
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

fn string_attr(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(3),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

/// `op(x f32[2,3], extra initializers…)` with attributes, for translator error messages.
fn one_node(
    op: &str,
    inputs: &[&str],
    attrs: Vec<AttributeProto>,
    inits: Vec<TensorProto>,
) -> ModelProto {
    let mut n = node("n", op, inputs, &["y"]);
    n.attribute = attrs;
    let mut m = model(
        vec![n],
        vec![value("x", F32, &[2, 3])],
        vec![value("y", F32, &[2, 3])],
    );
    m.graph.as_mut().unwrap().initializer = inits;
    m
}

#[test]
fn pad_errors_name_the_node() {
    let pads = |v: &[i64]| vec![ints("pads", &[4], v)];
    let m = one_node(
        "Pad",
        &["x", "pads"],
        vec![string_attr("mode", "symmetric")],
        pads(&[0, 1, 0, 1]),
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"n\" (Pad, n1): unknown pad mode \"symmetric\""
    );
    let m = one_node("Pad", &["x", "pads"], vec![], pads(&[0, -3, 0, -1]));
    assert_eq!(
        import_error(&m),
        "ONNX node \"n\" (Pad, n1): pads -3 and -1 crop more than axis 1's 3 elements"
    );
    let m = one_node(
        "Pad",
        &["x", "pads"],
        vec![],
        vec![ints("pads", &[2], &[1, 1])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"n\" (Pad, n1): 2 pads for 2 axes, expected 4"
    );
    let m = one_node(
        "Pad",
        &["x", "pads"],
        vec![string_attr("mode", "reflect")],
        pads(&[0, -3, 0, 1]),
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"n\" (Pad, n1): axis 1 is empty: there is nothing to pad it with"
    );
}

#[test]
fn resize_errors_name_the_node() {
    let scales = |v: &[f32]| TensorProto {
        name: Some("scales".into()),
        dims: vec![v.len() as i64],
        data_type: Some(F32),
        float_data: v.to_vec(),
        ..Default::default()
    };
    let int_attr = |name: &str, i: i64| AttributeProto {
        name: Some(name.into()),
        r#type: Some(2),
        i: Some(i),
        ..Default::default()
    };
    let resize = |attrs, inits| one_node("Resize", &["x", "", "scales"], attrs, inits);
    let m = resize(
        vec![string_attr("mode", "bicubic")],
        vec![scales(&[1.0, 2.0])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"n\" (Resize, n1): unknown mode \"bicubic\""
    );
    let m = resize(
        vec![string_attr("mode", "linear"), int_attr("antialias", 1)],
        vec![scales(&[1.0, 0.01])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"n\" (Resize, n1): resampling axis 1 at scale 0.009999999776482582 reads 202 input elements per output; at most 64 are supported"
    );
    let m = resize(vec![], vec![scales(&[1.0, 1e30])]);
    assert!(
        import_error(&m).contains("is too large"),
        "{}",
        import_error(&m)
    );
    let m = resize(vec![], vec![scales(&[1.0, -2.0])]);
    assert_eq!(
        import_error(&m),
        "ONNX node \"n\" (Resize, n1): scale -2 must be finite and positive"
    );
    let m = one_node(
        "Resize",
        &["x", "", "scales", "sizes"],
        vec![],
        vec![scales(&[1.0, 2.0]), ints("sizes", &[2], &[2, 6])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"n\" (Resize, n2): both scales and sizes are given"
    );
}

#[test]
fn expanded_activations_check_their_operands() {
    // Ops expanded at import into IR ops name themselves in errors, not the IR op.
    let m = model(
        vec![node("a", "LeakyRelu", &["x"], &["y"])],
        vec![value("x", 7, &[2])],
        vec![value("y", 7, &[2])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"a\" (LeakyRelu, n0): input is i64, expected a float dtype"
    );
    // PRelu's slope broadcasts to the input, never the input to the slope.
    let m = model(
        vec![node("p", "PRelu", &["x", "s"], &["y"])],
        vec![value("x", F32, &[2, 3]), value("s", F32, &[2, 1, 3])],
        vec![value("y", F32, &[2, 3])],
    );
    assert!(
        import_error(&m).contains("slope [2,1,3] does not broadcast to the input [2,3]"),
        "{}",
        import_error(&m)
    );
    let mut celu = node("c", "Celu", &["x"], &["y"]);
    celu.attribute.push(AttributeProto {
        name: Some("alpha".into()),
        f: Some(0.0),
        r#type: Some(1),
        ..Default::default()
    });
    let m = model(
        vec![celu],
        vec![value("x", F32, &[2])],
        vec![value("y", F32, &[2])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"c\" (Celu, n0): alpha must not be 0"
    );
}

#[test]
fn mod_checks_its_operands_and_attribute() {
    let mut m = model(
        vec![node("m", "Mod", &["a", "b"], &["y"])],
        vec![value("a", 7, &[2]), value("b", 6, &[2])],
        vec![value("y", 7, &[2])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"m\" (Mod, n0): operands are i64 and i32, expected one dtype"
    );
    let g = m.graph.as_mut().unwrap();
    g.input[1] = value("b", 7, &[2]);
    g.node[0].attribute.push(AttributeProto {
        name: Some("fmod".into()),
        i: Some(2),
        r#type: Some(2),
        ..Default::default()
    });
    assert_eq!(
        import_error(&m),
        "ONNX node \"m\" (Mod, n0): attribute \"fmod\" must be 0 or 1, got 2"
    );
}

#[test]
fn arg_extremum_needs_an_axis_with_elements() {
    let m = model(
        vec![node("a", "ArgMax", &["x"], &["y"])],
        vec![value("x", F32, &[0, 3])],
        vec![value("y", 7, &[1, 3])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"a\" (ArgMax, n0): axis 0 has size 0, so there is no index to return"
    );
    let m = model(
        vec![node("r", "ReduceL1", &["x"], &["y"])],
        vec![value("x", 9, &[2])],
        vec![value("y", 9, &[1])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"r\" (ReduceL1, n0): input is bool, expected a numeric dtype"
    );
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(2),
        ..Default::default()
    }
}

#[test]
fn layout_and_mask_ops_check_their_shapes() {
    let m = model(
        vec![node("t", "Trilu", &["x"], &["y"])],
        vec![value("x", F32, &[4])],
        vec![value("y", F32, &[4])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"t\" (Trilu, n0): input has rank 1, expected 2 or more"
    );
    let mut d2s = node("d", "DepthToSpace", &["x"], &["y"]);
    d2s.attribute.push(int_attr("blocksize", 2));
    let m = model(
        vec![d2s],
        vec![value("x", F32, &[1, 6, 2, 2])],
        vec![value("y", F32, &[1, 1, 4, 4])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"d\" (DepthToSpace, n0): channels 6 are not a multiple of blocksize² 4"
    );
    let mut lp = node("l", "LpNormalization", &["x"], &["y"]);
    lp.attribute.push(int_attr("p", 3));
    let m = model(
        vec![lp],
        vec![value("x", F32, &[2, 2])],
        vec![value("y", F32, &[2, 2])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"l\" (LpNormalization, n0): p = 3; only 1 and 2 are defined"
    );
}

#[test]
fn an_opset_newer_than_known_is_refused_per_domain() {
    let mut m = relu_model();
    m.opset_import[0].version = Some(99);
    assert_eq!(
        import_error(&m),
        "the model imports opset 99 of domain \"ai.onnx\", but the newest tessera knows is 28"
    );
    // Every known domain is checked, whether or not a node uses it.
    let mut m = relu_model();
    m.opset_import.push(OperatorSetIdProto {
        domain: Some("ai.onnx.ml".into()),
        version: Some(6),
    });
    assert_eq!(
        import_error(&m),
        "the model imports opset 6 of domain \"ai.onnx.ml\", but the newest tessera knows is 5"
    );
    // The newest known versions themselves import.
    let mut m = relu_model();
    m.opset_import[0].version = Some(tessera::onnx::KNOWN_OPSETS[0].1);
    tessera::load_onnx_bytes(&m.encode_to_vec(), Default::default()).expect("opset 28 imports");
    // A domain tessera does not know is not version-checked; its nodes are listed.
    let mut m = relu_model();
    m.opset_import.push(OperatorSetIdProto {
        domain: Some("com.example".into()),
        version: Some(1000),
    });
    let mut custom = node("mine", "Frobnicate", &["y"], &["z"]);
    custom.domain = Some("com.example".into());
    let g = m.graph.as_mut().unwrap();
    g.node.push(custom);
    g.output = vec![value("z", F32, &[2, 3])];
    assert_eq!(
        import_error(&m),
        "1 unsupported node(s):\n  node \"mine\": Frobnicate (com.example opset 1000)"
    );
}

#[test]
fn losses_check_input_and_target_shapes() {
    let m = model(
        vec![node("l", "NegativeLogLikelihoodLoss", &["x", "t"], &["y"])],
        vec![value("x", F32, &[3, 5]), value("t", 7, &[4])],
        vec![value("y", F32, &[])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"l\" (NegativeLogLikelihoodLoss, n0): input [3,5] and target [4] are not [N, C, d…] and [N, d…]"
    );
    let m = model(
        vec![node("s", "SoftmaxCrossEntropyLoss", &["x", "t"], &["y"])],
        vec![value("x", F32, &[3, 5]), value("t", F32, &[3])],
        vec![value("y", F32, &[])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"s\" (SoftmaxCrossEntropyLoss, n0): target is f32, expected i32 or i64"
    );
}

#[test]
fn scatter_elements_checks_its_operand_shapes() {
    let m = model(
        vec![node("s", "ScatterElements", &["x", "i", "u"], &["y"])],
        vec![
            value("x", F32, &[2, 3]),
            value("i", 7, &[2, 2]),
            value("u", F32, &[2, 3]),
        ],
        vec![value("y", F32, &[2, 3])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"s\" (ScatterElements, n0): data f32[2,3], indices i64[2,2] and updates f32[2,3] must have one rank, and updates the shape of indices"
    );
}

#[test]
fn quantization_parameters_must_fit_the_input() {
    let m = model(
        vec![node("q", "QuantizeLinear", &["x", "s"], &["y"])],
        vec![value("x", F32, &[2, 3]), value("s", F32, &[4])],
        vec![value("y", 2, &[2, 3])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"q\" (QuantizeLinear, n0): y_scale has shape [4]; expected one value, or [3] along axis 1"
    );
    let mut lp = node("p", "LpPool", &["x"], &["y"]);
    lp.attribute.push(AttributeProto {
        name: Some("kernel_shape".into()),
        ints: vec![2],
        r#type: Some(7),
        ..Default::default()
    });
    lp.attribute.push(int_attr("p", 0));
    let m = model(
        vec![lp],
        vec![value("x", F32, &[1, 1, 4])],
        vec![value("y", F32, &[1, 1, 3])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"p\" (LpPool, n0): p = 0 must be at least 1"
    );
}

#[test]
fn conv_transpose_checks_groups_and_pads() {
    let mut ct = node("c", "ConvTranspose", &["x", "w"], &["y"]);
    ct.attribute.push(int_attr("group", 2));
    let m = model(
        vec![ct],
        vec![
            value("x", F32, &[1, 3, 4, 4]),
            value("w", F32, &[3, 1, 3, 3]),
        ],
        vec![value("y", F32, &[1, 2, 6, 6])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"c\" (ConvTranspose, n0): group 2 must be positive and divide the 3 input channels, which W's first axis (3) must equal"
    );
    let mut ct = node("c", "ConvTranspose", &["x", "w"], &["y"]);
    ct.attribute.push(AttributeProto {
        name: Some("pads".into()),
        ints: vec![5, 5, 5, 5],
        r#type: Some(7),
        ..Default::default()
    });
    let m = model(
        vec![ct],
        vec![
            value("x", F32, &[1, 1, 2, 2]),
            value("w", F32, &[1, 1, 2, 2]),
        ],
        vec![value("y", F32, &[1, 1, 1, 1])],
    );
    assert!(
        import_error(&m).contains("leave no output along spatial axis 0"),
        "{}",
        import_error(&m)
    );
}

#[test]
fn cumprod_needs_numbers_and_a_constant_axis() {
    let m = model(
        vec![node("c", "CumProd", &["x", "a"], &["y"])],
        vec![value("x", 9, &[3]), value("a", 7, &[])],
        vec![value("y", 9, &[3])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"c\" (CumProd, n0): input is bool, expected a numeric dtype"
    );
    let m = model(
        vec![node("c", "CumProd", &["x", "a"], &["y"])],
        vec![value("x", F32, &[3]), value("a", 7, &[])],
        vec![value("y", F32, &[3])],
    );
    assert!(
        import_error(&m).contains("input \"a\" fixes a shape and must be constant"),
        "{}",
        import_error(&m)
    );
}

#[test]
fn top_k_needs_k_within_the_axis() {
    let mut m = model(
        vec![node("t", "TopK", &["x", "k"], &["v", "i"])],
        vec![value("x", F32, &[2, 3])],
        vec![value("v", F32, &[2, 4]), value("i", 7, &[2, 4])],
    );
    m.graph.as_mut().unwrap().initializer.push(TensorProto {
        name: Some("k".into()),
        dims: vec![1],
        data_type: Some(7),
        int64_data: vec![4],
        ..Default::default()
    });
    assert_eq!(
        import_error(&m),
        "ONNX node \"t\" (TopK, n1): k = 4 must be between 0 and the axis size 3"
    );
}

fn einsum_model(eq: &str, inputs: Vec<ValueInfoProto>, out: ValueInfoProto) -> ModelProto {
    let names: Vec<String> = inputs.iter().map(|v| v.name.clone().unwrap()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut e = node("e", "Einsum", &names, &["y"]);
    e.attribute.push(string_attr("equation", eq));
    model(vec![e], inputs, vec![out])
}

#[test]
fn einsum_traces_multiplies_and_rejects_bad_equations() {
    use tessera::ir::{Shape, Tensor};
    let run = |m: &ModelProto, args: &[Tensor]| -> Vec<f64> {
        let g = tessera::load_onnx_bytes(&m.encode_to_vec(), Default::default()).expect("imports");
        tessera::reference::run(&g, args).expect("runs")[0].to_f64_vec()
    };
    let t = |dims: Vec<usize>, v: Vec<f32>| Tensor::from_vec(Shape::new(dims).unwrap(), v).unwrap();
    // A trace: a repeated label, nothing kept.
    let m = einsum_model("ii", vec![value("x", F32, &[2, 2])], value("y", F32, &[]));
    assert_eq!(
        run(&m, &[t(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0])]),
        vec![5.0]
    );
    // Implicit output: the letters that appear once, sorted, so `ij,jk` is a matmul.
    let m = einsum_model(
        "ij,jk",
        vec![value("a", F32, &[1, 2]), value("b", F32, &[2, 2])],
        value("y", F32, &[1, 2]),
    );
    let a = t(vec![1, 2], vec![1.0, 2.0]);
    let b = t(vec![2, 2], vec![3.0, 4.0, 5.0, 6.0]);
    assert_eq!(run(&m, &[a, b]), vec![13.0, 16.0]);
    // Errors name the node.
    let m = einsum_model(
        "ijk->i",
        vec![value("x", F32, &[2, 2])],
        value("y", F32, &[2]),
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"e\" (Einsum, n0): term \"ijk\" does not fit operand 0 of rank 2"
    );
    let m = einsum_model(
        "ij->q",
        vec![value("x", F32, &[2, 2])],
        value("y", F32, &[2]),
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"e\" (Einsum, n0): output label 'q' is in no operand"
    );
}

#[test]
fn bit_shift_needs_a_direction_and_integers() {
    let m = model(
        vec![node("b", "BitShift", &["x", "s"], &["y"])],
        vec![value("x", 2, &[3]), value("s", 2, &[3])],
        vec![value("y", 2, &[3])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"b\" (BitShift, n0): direction must be \"LEFT\" or \"RIGHT\", got None"
    );
    let mut n = node("b", "BitShift", &["x", "s"], &["y"]);
    n.attribute.push(string_attr("direction", "LEFT"));
    let m = model(
        vec![n],
        vec![value("x", F32, &[3]), value("s", F32, &[3])],
        vec![value("y", F32, &[3])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"b\" (BitShift, n0): operands are f32 and f32, expected one integer dtype"
    );
}

/// `Attention(Q, K, V)` at opset 23 with the given input shapes and attributes.
fn attention_model(q: &[i64], k: &[i64], v: &[i64], attrs: Vec<AttributeProto>) -> ModelProto {
    let mut n = node("att", "Attention", &["q", "k", "v"], &["y"]);
    n.attribute = attrs;
    let mut m = model(
        vec![n],
        vec![value("q", F32, q), value("k", F32, k), value("v", F32, v)],
        vec![value("y", F32, q)],
    );
    m.opset_import[0].version = Some(23);
    m
}

#[test]
fn attention_refuses_bad_ranks_and_head_counts() {
    let m = attention_model(&[2, 8], &[2, 8], &[2, 8], vec![]);
    assert_eq!(
        import_error(&m),
        "ONNX node \"att\" (Attention, n0): Q has rank 2; expected 3 ([batch, seq, hidden]) or 4 ([batch, heads, seq, head_size])"
    );
    let m = attention_model(&[1, 2, 8], &[1, 2, 8, 1], &[1, 2, 8], vec![]);
    assert_eq!(
        import_error(&m),
        "ONNX node \"att\" (Attention, n0): K has rank 4, but Q has rank 3"
    );
    let m = attention_model(&[1, 2, 8], &[1, 2, 8], &[1, 2, 8], vec![]);
    assert_eq!(
        import_error(&m),
        "ONNX node \"att\" (Attention, n0): Q is 3-D, so q_num_heads and kv_num_heads must be given"
    );
    let m = attention_model(&[1, 3, 2, 4], &[1, 2, 2, 4], &[1, 2, 2, 4], vec![]);
    assert_eq!(
        import_error(&m),
        "ONNX node \"att\" (Attention, n0): q_num_heads 3 is not a multiple of kv_num_heads 2"
    );
    let mode = AttributeProto {
        name: Some("qk_matmul_output_mode".into()),
        r#type: Some(2),
        i: Some(4),
        ..Default::default()
    };
    let m = attention_model(&[1, 1, 2, 4], &[1, 1, 2, 4], &[1, 1, 2, 4], vec![mode]);
    assert_eq!(
        import_error(&m),
        "ONNX node \"att\" (Attention, n0): qk_matmul_output_mode = 4; only 0, 1, 2 and 3 are defined"
    );
}

#[test]
fn causal_conv_with_state_checks_the_depthwise_weight() {
    let mut m = model(
        vec![node("cc", "CausalConvWithState", &["x", "w"], &["y", "s"])],
        vec![value("x", F32, &[1, 4, 8]), value("w", F32, &[4, 2, 3])],
        vec![value("y", F32, &[1, 4, 8]), value("s", F32, &[1, 4, 2])],
    );
    m.opset_import[0].version = Some(27);
    assert_eq!(
        import_error(&m),
        "ONNX node \"cc\" (CausalConvWithState, n0): weight [4,2,3] must be [channels = 4, 1, k] with k ≥ 1"
    );
}

#[test]
fn flex_attention_checks_its_modifier_subgraphs() {
    let mut n = node("fa", "FlexAttention", &["q", "k", "v"], &["y"]);
    n.domain = Some("ai.onnx.preview".into());
    // A score_mod with two inputs: FlexAttention passes it only the scores.
    n.attribute.push(AttributeProto {
        name: Some("score_mod".into()),
        r#type: Some(5),
        g: Some(GraphProto {
            name: Some("two_inputs".into()),
            node: vec![node("add", "Add", &["s", "t"], &["o"])],
            input: vec![
                value("s", F32, &[1, 1, 2, 2]),
                value("t", F32, &[1, 1, 2, 2]),
            ],
            output: vec![value("o", F32, &[1, 1, 2, 2])],
            ..Default::default()
        }),
        ..Default::default()
    });
    let shape = [1, 1, 2, 4];
    let mut m = model(
        vec![n],
        vec![
            value("q", F32, &shape),
            value("k", F32, &shape),
            value("v", F32, &shape),
        ],
        vec![value("y", F32, &shape)],
    );
    m.opset_import.push(OperatorSetIdProto {
        domain: Some("ai.onnx.preview".into()),
        version: Some(1),
    });
    assert_eq!(
        import_error(&m),
        "ONNX node \"fa\" (FlexAttention, n0): subgraph \"two_inputs\" has 2 inputs, expected 1"
    );
}

#[test]
fn linear_attention_needs_the_inputs_of_its_update_rule() {
    let mut n = node("la", "LinearAttention", &["q", "k", "v"], &["y", "s"]);
    n.attribute = vec![
        AttributeProto {
            name: Some("q_num_heads".into()),
            r#type: Some(2),
            i: Some(2),
            ..Default::default()
        },
        AttributeProto {
            name: Some("kv_num_heads".into()),
            r#type: Some(2),
            i: Some(2),
            ..Default::default()
        },
    ];
    let mut m = model(
        vec![n],
        vec![
            value("q", F32, &[1, 3, 8]),
            value("k", F32, &[1, 3, 8]),
            value("v", F32, &[1, 3, 8]),
        ],
        vec![value("y", F32, &[1, 3, 8]), value("s", F32, &[1, 2, 4, 4])],
    );
    m.opset_import[0].version = Some(27);
    assert_eq!(
        import_error(&m),
        "ONNX node \"la\" (LinearAttention, n0): update_rule \"gated_delta\" needs decay and needs beta"
    );
}

#[test]
fn recurrent_layers_check_their_operands() {
    let lstm = |w: &[i64], x: &[i64], attrs: Vec<AttributeProto>| {
        let mut n = node("l", "LSTM", &["x", "w", "r"], &["", "h"]);
        n.attribute = attrs;
        n.attribute.push(int_attr("hidden_size", 3));
        model(
            vec![n],
            vec![
                value("x", F32, x),
                value("w", F32, w),
                value("r", F32, &[1, 12, 3]),
            ],
            vec![value("h", F32, &[1, 2, 3])],
        )
    };
    assert_eq!(
        import_error(&lstm(&[1, 8, 4], &[5, 2, 4], vec![])),
        "ONNX node \"l\" (LSTM, n0): W has shape [1,8,4], expected [1, 12, 4]"
    );
    assert_eq!(
        import_error(&lstm(&[1, 12, 4], &[5000, 2, 4], vec![])),
        "ONNX node \"l\" (LSTM, n0): sequence length 5000 is more than the 4096 steps the importer unrolls"
    );
    assert_eq!(
        import_error(&lstm(
            &[1, 12, 4],
            &[5, 2, 4],
            vec![string_attr("direction", "sideways")]
        )),
        "ONNX node \"l\" (LSTM, n0): direction \"sideways\" must be forward, reverse or bidirectional"
    );
    let acts = AttributeProto {
        name: Some("activations".into()),
        r#type: Some(8),
        strings: vec![b"Sigmoid".to_vec(), b"Tanh".to_vec(), b"Cube".to_vec()],
        ..Default::default()
    };
    assert_eq!(
        import_error(&lstm(&[1, 12, 4], &[5, 2, 4], vec![acts])),
        "ONNX node \"l\" (LSTM, n0): unknown activation function \"Cube\""
    );
}

#[test]
fn quantized_contractions_check_their_operands() {
    let m = model(
        vec![node("q", "MatMulInteger", &["a", "b"], &["y"])],
        vec![value("a", F32, &[2, 3]), value("b", 2, &[3, 2])],
        vec![value("y", 6, &[2, 2])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"q\" (MatMulInteger, n0): A is f32, expected int8 or uint8"
    );
    let m = model(
        vec![node("q", "MatMulInteger", &["a", "b", "za"], &["y"])],
        vec![
            value("a", 2, &[2, 3]),
            value("b", 2, &[3, 2]),
            value("za", 2, &[3]),
        ],
        vec![value("y", 6, &[2, 2])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"q\" (MatMulInteger, n0): A's zero point has shape [3]; expected one value, or [2] along axis 0"
    );
}

#[test]
fn data_dependent_indexing_checks_its_operands() {
    let mut rev = node("r", "ReverseSequence", &["x", "lens"], &["y"]);
    rev.attribute = vec![int_attr("batch_axis", 0), int_attr("time_axis", 1)];
    let m = model(
        vec![rev],
        vec![value("x", F32, &[2, 4]), value("lens", 7, &[3])],
        vec![value("y", F32, &[2, 4])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"r\" (ReverseSequence, n0): sequence_lens has shape [3], expected [2] (the batch axis)"
    );
    let mut m = one_node("Compress", &["x", "c"], vec![int_attr("axis", 1)], vec![]);
    m.graph.as_mut().unwrap().initializer = vec![TensorProto {
        name: Some("c".into()),
        dims: vec![4],
        data_type: Some(9),
        int32_data: vec![0, 0, 0, 1],
        ..Default::default()
    }];
    assert_eq!(
        import_error(&m),
        "ONNX node \"n\" (Compress, n1): condition selects index 3, but axis 1 has 3 elements"
    );
}

#[test]
fn det_is_limited_to_small_matrices() {
    let m = model(
        vec![node("d", "Det", &["x"], &["y"])],
        vec![value("x", F32, &[5, 5])],
        vec![value("y", F32, &[])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"d\" (Det, n0): determinants of 5×5 matrices are not supported (the expansion stops at 4×4)"
    );
    let m = model(
        vec![node("d", "Det", &["x"], &["y"])],
        vec![value("x", F32, &[2, 3])],
        vec![value("y", F32, &[])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"d\" (Det, n0): input has shape [2,3], expected [..., M, M]"
    );
}

#[test]
fn bitwise_ops_need_one_integer_dtype() {
    let m = model(
        vec![node("b", "BitwiseAnd", &["x", "z"], &["y"])],
        vec![value("x", 6, &[2]), value("z", 7, &[2])],
        vec![value("y", 6, &[2])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"b\" (BitwiseAnd, n0): operands are i32 and i64, expected one integer dtype"
    );
    let m = model(
        vec![node("b", "BitwiseNot", &["x"], &["y"])],
        vec![value("x", F32, &[2])],
        vec![value("y", F32, &[2])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"b\" (BitwiseNot, n0): operands are f32, expected one integer dtype"
    );
}

#[test]
fn unique_needs_its_input_at_import() {
    let m = model(
        vec![
            node("r", "Relu", &["x"], &["a"]),
            node("u", "Unique", &["a"], &["y"]),
        ],
        vec![value("x", F32, &[4])],
        vec![value("y", F32, &[4])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"u\" (Unique, n1): input \"a\" fixes a shape and must be constant, but it depends on graph input(s) [\"x\"]; bind them to values"
    );
}

#[test]
fn grid_sample_checks_its_operands() {
    let m = model(
        vec![node("g", "GridSample", &["x", "grid"], &["y"])],
        vec![
            value("x", F32, &[1, 2, 4, 4]),
            value("grid", F32, &[1, 3, 3, 3]),
        ],
        vec![value("y", F32, &[1, 2, 3, 3])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"g\" (GridSample, n0): X [1,2,4,4] and grid [1,3,3,3] must be [N, C, S₁..S_d] and [N, O₁..O_d, d]"
    );
}

#[test]
fn dft_checks_its_axis() {
    let mut n = node("f", "DFT", &["x"], &["y"]);
    n.attribute.push(int_attr("axis", 2));
    let mut m = model(
        vec![n],
        vec![value("x", F32, &[1, 8, 2])],
        vec![value("y", F32, &[1, 8, 2])],
    );
    m.opset_import[0].version = Some(19);
    assert_eq!(
        import_error(&m),
        "ONNX node \"f\" (DFT, n0): axis must not be the last (real/imaginary) axis"
    );
}

#[test]
fn scatter_like_ops_check_their_shapes() {
    let m = model(
        vec![node("t", "TensorScatter", &["p", "u"], &["y"])],
        vec![value("p", F32, &[2, 4, 3]), value("u", F32, &[2, 5, 3])],
        vec![value("y", F32, &[2, 4, 3])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"t\" (TensorScatter, n0): update [2,5,3] does not fit past_cache [2,4,3] along axis 1"
    );
    let mut m = one_node("Col2Im", &["x", "img", "blk"], vec![], vec![]);
    m.graph.as_mut().unwrap().initializer =
        vec![ints("img", &[2], &[4, 4]), ints("blk", &[2], &[2, 2])];
    assert_eq!(
        import_error(&m),
        "ONNX node \"n\" (Col2Im, n2): input has shape [2,3], expected [N, C·4, 9] for these blocks"
    );
}

#[test]
fn bitcast_needs_one_width() {
    let mut b = node("b", "BitCast", &["x"], &["y"]);
    b.attribute.push(int_attr("to", 7));
    let mut m = model(
        vec![b],
        vec![value("x", F32, &[2])],
        vec![value("y", 7, &[2])],
    );
    m.opset_import[0].version = Some(26);
    assert_eq!(
        import_error(&m),
        "ONNX node \"b\" (BitCast, n0): f32 and i64 have different widths (4 and 8 bytes)"
    );
}

#[test]
fn stft_frames_must_fit_the_signal() {
    let mut m = model(
        vec![node("s", "STFT", &["x", "step", "", "len"], &["y"])],
        vec![value("x", F32, &[1, 8, 1])],
        vec![value("y", F32, &[1, 1, 9, 2])],
    );
    m.opset_import[0].version = Some(17);
    m.graph.as_mut().unwrap().initializer = vec![ints("step", &[], &[2]), ints("len", &[], &[16])];
    assert_eq!(
        import_error(&m),
        "ONNX node \"s\" (STFT, n2): frame_length 16 is longer than the signal's 8"
    );
}

#[test]
fn max_unpool_checks_its_operands() {
    let mut n = node("u", "MaxUnpool", &["x", "i"], &["y"]);
    n.attribute.push(AttributeProto {
        name: Some("kernel_shape".into()),
        r#type: Some(7),
        ints: vec![2, 2],
        ..Default::default()
    });
    let m = model(
        vec![n],
        vec![value("x", F32, &[1, 1, 2, 2]), value("i", 7, &[1, 1, 2, 3])],
        vec![value("y", F32, &[1, 1, 3, 3])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"u\" (MaxUnpool, n0): X [1,1,2,2] and I [1,1,2,3] must be one shape [N, C, spatial...]"
    );
}

#[test]
fn deform_conv_checks_the_offset_shape() {
    let m = model(
        vec![node("d", "DeformConv", &["x", "w", "o"], &["y"])],
        vec![
            value("x", F32, &[1, 1, 3, 3]),
            value("w", F32, &[1, 1, 2, 2]),
            value("o", F32, &[1, 6, 2, 2]),
        ],
        vec![value("y", F32, &[1, 1, 2, 2])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"d\" (DeformConv, n0): offset has shape [1,6,2,2], expected [1, 8, OH, OW]"
    );
}

#[test]
fn roi_align_needs_a_fixed_sampling_ratio() {
    let m = model(
        vec![node("r", "RoiAlign", &["x", "rois", "b"], &["y"])],
        vec![
            value("x", F32, &[1, 1, 4, 4]),
            value("rois", F32, &[2, 4]),
            value("b", 7, &[2]),
        ],
        vec![value("y", F32, &[2, 1, 1, 1])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"r\" (RoiAlign, n0): sampling_ratio 0 (a sample count per region from its size) is not supported"
    );
}

#[test]
fn tfidf_needs_integer_tokens() {
    let m = model(
        vec![node("t", "TfIdfVectorizer", &["x"], &["y"])],
        vec![value("x", F32, &[4])],
        vec![value("y", F32, &[2])],
    );
    assert_eq!(
        import_error(&m),
        "ONNX node \"t\" (TfIdfVectorizer, n0): input is f32, expected int32 or int64 tokens (string pools are not supported)"
    );
}

#[test]
fn training_ops_check_their_input_groups() {
    let mut n = node("a", "Adam", &["r", "t", "x", "g", "v"], &["x2"]);
    n.domain = Some("ai.onnx.preview.training".into());
    let mut m = model(
        vec![n],
        vec![
            value("r", F32, &[]),
            value("t", 7, &[]),
            value("x", F32, &[2]),
            value("g", F32, &[2]),
            value("v", F32, &[2]),
        ],
        vec![value("x2", F32, &[2])],
    );
    m.opset_import.push(OperatorSetIdProto {
        domain: Some("ai.onnx.preview.training".into()),
        version: Some(1),
    });
    assert_eq!(
        import_error(&m),
        "ONNX node \"a\" (Adam, n0): 5 inputs, expected R, T and groups of 4 (X, G and the state) per tensor"
    );
}
