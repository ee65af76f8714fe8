//! Models with symbolic input dimensions: specialization from input shapes and `--shape`,
//! the per-signature compile cache, and the errors for inputs that disagree on a symbol
//! and for a symbol nothing sizes.
//!
//! The vision model is `.fixtures/models/cnn_dyn_batch` (scripts/gen_test_models.py: a
//! CNN with a `batch` dim_param and a Shape→Gather→Concat→Reshape flatten, with
//! onnxruntime outputs at batch 1 and 3); the two-input model is built here.

mod cli_support;
use cli_support::tessera;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prost::Message;
use tessera::ir::{Op, Shape, Tensor};
use tessera::onnx::proto::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
    ValueInfoProto, tensor_shape_proto, type_proto,
};
use tessera::sample::{compare, splitmix64_uniform};
use tessera::{Cache, Options, SymbolicModel};

fn cnn_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".fixtures/models/cnn_dyn_batch");
    assert!(
        dir.join("model.onnx").exists(),
        "{} is not generated: run scripts/fixtures.sh (the README's test command does)",
        dir.display()
    );
    dir
}

fn tensor(path: &Path) -> Tensor {
    tessera::onnx::read_tensor_file(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .1
}

/// Input 0 and output 0 of data set `n` of the CNN.
fn cnn_data_set(n: usize) -> (Tensor, Tensor) {
    let d = cnn_dir().join(format!("test_data_set_{n}"));
    (
        tensor(&d.join("input_0.pb")),
        tensor(&d.join("output_0.pb")),
    )
}

/// A dimension: a size, or a symbol (`""`: unknown, no name).
enum D {
    N(i64),
    S(&'static str),
}

fn value(name: &str, dims: &[D]) -> ValueInfoProto {
    typed_value(name, 1, dims)
}

/// A declared value of ONNX element type `elem` (1: f32, 7: i64).
fn typed_value(name: &str, elem: i32, dims: &[D]) -> ValueInfoProto {
    use tensor_shape_proto::dimension::Value;
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| tensor_shape_proto::Dimension {
                            value: match d {
                                D::N(n) => Some(Value::DimValue(*n)),
                                D::S("") => None,
                                D::S(s) => Some(Value::DimParam(s.to_string())),
                            },
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

fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        name: Some(format!("{op}_0")),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

/// `relu(a + b)` with `a`, `b` declared `[a0, 16]` and `[b0, 16]`.
fn add_model(a0: D, b0: D) -> Vec<u8> {
    ModelProto {
        ir_version: Some(9),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(18),
        }],
        graph: Some(GraphProto {
            name: Some("add".into()),
            node: vec![node("Add", &["a", "b"], "s"), node("Relu", &["s"], "y")],
            input: vec![value("a", &[a0, D::N(16)]), value("b", &[b0, D::N(16)])],
            output: vec![value("y", &[D::S("N"), D::N(16)])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn random(dims: &[usize], seed: u64) -> Tensor {
    splitmix64_uniform(
        tessera::ir::DType::F32,
        Shape::new(dims.to_vec()).unwrap(),
        seed,
        -1.0,
        1.0,
    )
}

fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    let c = compare(got, want, 1e-5, 1.3e-6)
        .unwrap_or_else(|| panic!("{what}: {} vs {}", got.ty(), want.ty()));
    assert!(
        c.all_close,
        "{what}: max abs {:.3e}, max rel {:.3e}",
        c.max_abs, c.max_rel
    );
}

#[test]
fn the_symbolic_batch_cnn_matches_onnxruntime_and_the_reference_at_batch_1_and_3() {
    let model = SymbolicModel::open(
        &cnn_dir().join("model.onnx"),
        HashMap::new(),
        Options::default(),
    )
    .unwrap();
    assert_eq!(model.symbols(), ["batch"]);
    for (n, batch) in [(0, 1), (1, 3)] {
        let (input, want) = cnn_data_set(n);
        let run = model.run(std::slice::from_ref(&input)).unwrap();
        assert_eq!(run.cache, Cache::Compiled);
        let spec = &run.specialization;
        assert_eq!(spec.signature().to_string(), format!("batch={batch}"));
        assert_eq!(run.outputs[0].shape().dims(), &[batch, 10]);
        // The shape subgraph folded at import: no Shape/Gather/Concat survives, and the
        // flatten is a plain reshape.
        let g = spec.graph();
        assert!(
            g.nodes()
                .all(|(_, n)| !matches!(n.op, Op::Gather { .. } | Op::Concat { .. })),
            "{}",
            tessera::ir::text::print(g, &Default::default())
        );
        assert_close(&run.outputs[0], &want, "compiled vs onnxruntime");
        let reference = tessera::reference::run(g, std::slice::from_ref(&input)).unwrap();
        assert_close(&reference[0], &want, "reference vs onnxruntime");
        assert_close(&run.outputs[0], &reference[0], "compiled vs reference");
    }
}

#[test]
fn a_signature_compiles_once_and_a_new_one_compiles_again() {
    let model = SymbolicModel::open(
        &cnn_dir().join("model.onnx"),
        HashMap::new(),
        Options::default(),
    )
    .unwrap();
    let (one, _) = cnn_data_set(0);
    let (three, _) = cnn_data_set(1);
    let first = model.run(std::slice::from_ref(&one)).unwrap();
    assert_eq!(first.cache, Cache::Compiled);
    let again = model.run(std::slice::from_ref(&one)).unwrap();
    assert_eq!(again.cache, Cache::Hit);
    assert!(
        std::sync::Arc::ptr_eq(&first.specialization, &again.specialization),
        "a cache hit reuses the compiled model"
    );
    assert_eq!(again.outputs, first.outputs);
    assert_eq!(model.compilations(), 1);
    let other = model.run(std::slice::from_ref(&three)).unwrap();
    assert_eq!(other.cache, Cache::Compiled);
    assert_eq!(model.compilations(), 2);
    assert_eq!(
        model.run(std::slice::from_ref(&one)).unwrap().cache,
        Cache::Hit
    );
    // An explicit signature lands in the same cache.
    let sig = model
        .signature(&HashMap::from([("batch".to_string(), 3)]), &[])
        .unwrap();
    assert_eq!(model.specialize(&sig).unwrap().1, Cache::Hit);
    assert_eq!(model.compilations(), 2);
}

#[test]
fn inputs_that_disagree_on_a_symbol_name_both_inputs_the_axis_and_both_values() {
    let model = SymbolicModel::from_bytes(
        &add_model(D::S("N"), D::S("N")),
        None,
        HashMap::new(),
        Options::default(),
    )
    .unwrap();
    let e = model
        .run(&[random(&[2, 16], 1), random(&[3, 16], 2)])
        .err()
        .expect("the inputs disagree on N");
    assert_eq!(
        tessera::error_line(&e),
        "importing: symbol \"N\" is 2 in graph input \"a\" (axis 0) but 3 in graph input \"b\" (axis 0)"
    );
    // Agreeing inputs run, and compute relu(a + b).
    let (a, b) = (random(&[2, 16], 1), random(&[2, 16], 2));
    let run = model.run(&[a.clone(), b.clone()]).unwrap();
    let want: Vec<f64> = a
        .to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(x, y)| (x + y).max(0.0))
        .collect();
    let got = run.outputs[0].to_f64_vec();
    assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-6));
}

#[test]
fn an_unbound_symbol_is_named_with_its_input_and_an_unnamed_dim_gets_a_fresh_symbol() {
    let model = SymbolicModel::from_bytes(
        &add_model(D::S(""), D::N(4)),
        None,
        HashMap::new(),
        Options::default(),
    )
    .unwrap();
    assert_eq!(model.symbols(), ["a.0"]);
    let e = model.signature(&HashMap::new(), &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "graph input \"a\": dimension 0 is the symbol \"a.0\", which has no value; \
         bind it (`--shape a.0=<size>`) or pass an input of that shape"
    );
    let sig = model
        .signature(&HashMap::from([("a.0".to_string(), 4)]), &[])
        .unwrap();
    let (spec, _) = model.specialize(&sig).unwrap();
    assert_eq!(
        spec.graph().ty(spec.graph().inputs()[0].value).to_string(),
        "f32[4,16]"
    );
}

// --- The command line -------------------------------------------------------------------

/// A scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-symbolic-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_tensor(dir: &Path, name: &str, t: &Tensor) -> String {
    let p = dir.join(format!("{name}.pb"));
    std::fs::write(&p, tessera::onnx::encode_tensor(t, name)).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn the_cli_sizes_symbols_from_shape_flags_and_input_files() {
    let model = cnn_dir().join("model.onnx");
    let model = model.to_str().unwrap();
    let (ok, out, err) = tessera(&["run", model, "--shape", "batch=2"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("logits: f32[2,10]"), "{out}");
    assert!(
        err.contains("specialized for batch=2: new shape signature, compiled"),
        "{err}"
    );
    assert!(out.contains("within atol 1e-5"), "{out}");

    let input = cnn_dir().join("test_data_set_1/input_0.pb");
    let dir = scratch("cli");
    let (ok, _, err) = tessera(&[
        "run",
        model,
        "--input",
        &format!("input={}", input.display()),
        "--output-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (_, want) = cnn_data_set(1);
    assert_close(&tensor(&dir.join("logits.pb")), &want, "CLI vs onnxruntime");

    // --shape and the input's shape must agree.
    let (ok, _, err) = tessera(&[
        "run",
        model,
        "--shape",
        "batch=2",
        "--input",
        &format!("input={}", input.display()),
    ]);
    assert!(!ok);
    assert!(
        err.contains(
            "symbol \"batch\" is 2 by the given shape binding but 3 in graph input \"input\" (axis 0)"
        ),
        "{err}"
    );
    let (ok, out, err) = tessera(&[
        "bench", model, "--shape", "batch=3", "--runs", "1", "--warmup", "0", "--json",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("\"shapes\":{\"batch\":3}"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_cli_reports_unbound_unknown_and_contradicting_symbols() {
    let dir = scratch("errors");
    let model = dir.join("add.onnx");
    std::fs::write(&model, add_model(D::S("N"), D::S("N"))).unwrap();
    let model = model.to_str().unwrap();
    let (ok, _, err) = tessera(&["run", model]);
    assert!(!ok);
    assert!(
        err.contains(
            "dimension 0 is the symbol \"N\", which has no value; bind it (`--shape N=<size>`)"
        ),
        "{err}"
    );
    let (ok, _, err) = tessera(&["inspect", model, "--shape", "M=2"]);
    assert!(!ok);
    assert!(
        err.contains("the model has no symbol \"M\" (its symbols: N)"),
        "{err}"
    );
    let a = write_tensor(&dir, "a", &random(&[2, 16], 1));
    let b = write_tensor(&dir, "b", &random(&[5, 16], 2));
    let (ok, _, err) = tessera(&[
        "run",
        model,
        "--input",
        &format!("a={a}"),
        "--input",
        &format!("b={b}"),
    ]);
    assert!(!ok);
    assert!(
        err.contains(
            "symbol \"N\" is 2 in graph input \"a\" (axis 0) but 5 in graph input \"b\" (axis 0)"
        ),
        "{err}"
    );
    let (ok, out, err) = tessera(&["dump", model, "--shape", "N=7"]);
    assert!(ok, "{err}");
    assert!(out.contains("f32[7,16]"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// --- Inputs whose value fixes a shape ---------------------------------------------------

/// `reshape(data, shape)` with `data` f32[N,6] and `shape` an i64[2] graph input.
fn reshape_model() -> Vec<u8> {
    ModelProto {
        ir_version: Some(9),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(18),
        }],
        graph: Some(GraphProto {
            name: Some("reshape".into()),
            node: vec![node("Reshape", &["data", "shape"], "y")],
            input: vec![
                value("data", &[D::S("N"), D::N(6)]),
                typed_value("shape", 7, &[D::N(2)]),
            ],
            output: vec![value("y", &[D::S("rows"), D::S("cols")])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn ints(v: &[i64]) -> Tensor {
    Tensor::from_vec(Shape::new(vec![v.len()]).unwrap(), v.to_vec()).unwrap()
}

/// The first run learns that `shape` fixes a shape, binds it and keys the cache on its
/// value (with the size of `N`).
#[test]
fn an_input_that_fixes_a_shape_is_specialized_on_its_value() {
    let model =
        SymbolicModel::from_bytes(&reshape_model(), None, HashMap::new(), Options::default())
            .unwrap();
    let data = random(&[2, 6], 3);
    let first = model.run(&[data.clone(), ints(&[3, 4])]).unwrap();
    assert_eq!(first.cache, Cache::Compiled);
    let spec = &first.specialization;
    assert_eq!(spec.signature().to_string(), "N=2,shape=[3,4]");
    assert_eq!(spec.graph().inputs().len(), 1, "shape is a constant");
    assert_eq!(first.outputs[0].shape().dims(), &[3, 4]);
    assert_eq!(first.outputs[0].to_f64_vec(), data.to_f64_vec());
    let again = model.run(&[data.clone(), ints(&[3, 4])]).unwrap();
    assert_eq!(again.cache, Cache::Hit);
    // Another value is another signature, and so is another size.
    let run = model.run(&[data.clone(), ints(&[6, 2])]).unwrap();
    assert_eq!(run.cache, Cache::Compiled);
    assert_eq!(run.outputs[0].shape().dims(), &[6, 2]);
    let run = model.run(&[random(&[4, 6], 4), ints(&[-1, 3])]).unwrap();
    assert_eq!(run.cache, Cache::Compiled);
    assert_eq!(run.outputs[0].shape().dims(), &[8, 3]);
    assert_eq!(model.compilations(), 3);

    // Through the CLI, with --input alone (no --bind, no --shape).
    let dir = scratch("reshape");
    let path = dir.join("reshape.onnx");
    std::fs::write(&path, reshape_model()).unwrap();
    let d = write_tensor(&dir, "data", &data);
    let sh = write_tensor(&dir, "shape", &ints(&[4, 3]));
    let (ok, out, err) = tessera(&[
        "run",
        path.to_str().unwrap(),
        "--input",
        &format!("data={d}"),
        "--input",
        &format!("shape={sh}"),
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("shapes: N=2,shape=[4,3]"), "{err}");
    assert!(out.starts_with("y: f32[4,3]"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}
