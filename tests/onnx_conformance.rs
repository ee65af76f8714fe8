//! The ONNX backend node tests (onnx 1.23.2, all 1884), run through import + the
//! reference interpreter and compared with rtol 1e-3 / atol 1e-7, the ONNX runner's
//! defaults. Every test the reference interpreter passes also runs on the compiled CPU
//! backend (`tessera::compile`, one thread) and must pass there too (second column).
//!
//! The tests are generated, not committed: `scripts/fixtures.sh` writes them to
//! `.fixtures/onnx-node/` (the README's test command does it). The outcome of every
//! test is snapshotted, so a test that stops passing (or starts) shows up as a diff; the
//! target set, plain float32/int64/bool tests of the foundation's op list, must pass.

mod node_support;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::Path;

use prost::Message;
use tessera::ir::{DType, Tensor};
use tessera::onnx::proto::{ModelProto, type_proto};
use tessera::onnx::{ImportError, read_tensor_file};

use node_support::{node_test_names, node_tests, short};

/// The ops the foundation issue lists.
const FOUNDATION_OPS: &[&str] = &[
    "Conv",
    "MatMul",
    "Gemm",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Neg",
    "Exp",
    "Log",
    "Erf",
    "Tanh",
    "Sigmoid",
    "Relu",
    "Clip",
    "Gelu",
    "Softmax",
    "LayerNormalization",
    "BatchNormalization",
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Reshape",
    "Transpose",
    "Concat",
    "Split",
    "Slice",
    "Gather",
    "GatherElements",
    "GatherND",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Expand",
    "Where",
    "Cast",
    "Equal",
    "And",
    "IsNaN",
    "Shape",
    "Constant",
    "ConstantOfShape",
    "Identity",
    "Dropout",
    "Sum",
    "LRN",
];

/// Target tests that cannot pass, with the reason. Each is a documented limitation.
const EXPECTED_TARGET_FAILURES: &[(&str, &str)] = &[
    ("test_training_dropout", "training-mode dropout is random"),
    (
        "test_training_dropout_default",
        "training-mode dropout is random",
    ),
    (
        "test_training_dropout_default_mask",
        "training-mode dropout is random",
    ),
    (
        "test_training_dropout_mask",
        "training-mode dropout is random",
    ),
];

struct Case {
    name: String,
    plain: bool,
    /// Uses only foundation ops.
    foundation: bool,
    /// Plain, foundation ops only, and only f32/i64/bool inputs and outputs.
    target: bool,
    outcome: Result<(), String>,
    /// On the compiled CPU backend, for tests the reference interpreter passes.
    cpu: Option<Result<(), String>>,
}

fn elem_types(m: &ModelProto) -> Vec<Option<i32>> {
    let g = m.graph.as_ref();
    let ports = g.into_iter().flat_map(|g| g.input.iter().chain(&g.output));
    ports
        .map(
            |vi| match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(type_proto::Value::TensorType(t)) => t.elem_type,
                _ => None,
            },
        )
        .collect()
}

/// Outcome of one test: on the reference interpreter, and (when that passes) on the
/// compiled CPU backend.
struct Outcome {
    reference: Result<(), String>,
    cpu: Option<Result<(), String>>,
}

fn run_case(dir: &Path) -> Outcome {
    let mut cpu = None;
    let reference = run_case_on(dir, &mut cpu);
    Outcome { reference, cpu }
}

/// Compares `outs` with `expected` at the ONNX runner's tolerances.
fn check_outputs(outs: &[Tensor], expected: &[Tensor]) -> Result<(), String> {
    if outs.len() != expected.len() {
        return Err(format!(
            "mismatch: {} outputs, expected {}",
            outs.len(),
            expected.len()
        ));
    }
    assert_eq!(outs.len(), expected.len(), "output counts differ");
    for (k, (a, e)) in outs.iter().zip(expected).enumerate() {
        if a.ty() != e.ty() {
            return Err(format!(
                "mismatch: output {k} is {}, expected {}",
                a.ty(),
                e.ty()
            ));
        }
        let (atol, rtol) = if e.dtype().is_float() {
            (1e-7, 1e-3)
        } else {
            (0.0, 0.0)
        };
        let c = tessera::sample::compare(a, e, atol, rtol).expect("types checked above");
        if !c.all_close {
            return Err(format!(
                "mismatch: output {k} max abs error {:.3e}",
                c.max_abs
            ));
        }
    }
    Ok(())
}

fn run_case_on(dir: &Path, cpu: &mut Option<Result<(), String>>) -> Result<(), String> {
    let data = dir.join("test_data_set_0");
    let mut inputs = Vec::new();
    let mut expected = Vec::new();
    for (prefix, out) in [("input", &mut inputs), ("output", &mut expected)] {
        for k in 0.. {
            let p = data.join(format!("{prefix}_{k}.pb"));
            if !p.exists() {
                break;
            }
            let (_, t) = read_tensor_file(&p).map_err(|e| match e {
                ImportError::TensorFile { message, .. } => {
                    format!("load {prefix}_{k}.pb: {}", short(&message))
                }
                other => format!("load {prefix}_{k}.pb: {}", short(&other.to_string())),
            })?;
            out.push(t);
        }
    }
    // Shapes are static: inputs that fix a shape are bound to the test's values.
    let (graph, args) =
        tessera::load_onnx_with_inputs(&dir.join("model.onnx"), &inputs).map_err(|e| match e {
            ImportError::Unsupported(nodes) => {
                let mut ops: Vec<_> = nodes.iter().map(|n| n.op_type.clone()).collect();
                ops.sort();
                ops.dedup();
                format!("unsupported: {}", ops.join(", "))
            }
            e => format!("import: {}", short(&e.to_string())),
        })?;
    // Every imported model also exercises the text form: print, parse, print.
    let opts = tessera::ir::text::PrintOptions::default();
    let text = tessera::ir::text::print(&graph, &opts);
    let reparsed = tessera::ir::text::parse(&text)
        .map_err(|e| format!("text round trip: {}", short(&e.to_string())))?;
    if tessera::ir::text::print(&reparsed, &opts) != text {
        return Err("text round trip: printing the parsed graph differs".into());
    }
    let outs = tessera::reference::run(&graph, &args)
        .map_err(|e| format!("run: {}", short(&e.to_string())))?;
    check_outputs(&outs, &expected)?;
    // The compiled CPU backend (optimizer pipeline, fused kernels), one thread.
    let options = tessera::Options {
        threads: 1,
        ..tessera::Options::default()
    };
    *cpu = Some(
        tessera::compile(&graph, options)
            .map_err(|e| format!("compile: {}", short(&e.to_string())))
            .and_then(|m| {
                m.run(&args)
                    .map_err(|e| format!("run: {}", short(&e.to_string())))
            })
            .and_then(|outs| check_outputs(&outs, &expected)),
    );
    Ok(())
}

#[test]
fn onnx_backend_node_tests() {
    let root = node_tests();
    let names = node_test_names(&root);
    assert_eq!(names.len(), 1884, "onnx 1.23.2 has 1884 node tests");

    let ok_types =
        [DType::F32, DType::I64, DType::Bool].map(|d| Some(tessera::onnx::onnx_dtype_code(d)));
    let cases: Vec<Case> = names
        .into_iter()
        .map(|name| {
            let dir = root.join(&name);
            let proto = ModelProto::decode(
                std::fs::read(dir.join("model.onnx"))
                    .unwrap_or_default()
                    .as_slice(),
            )
            .ok();
            let ops: Vec<String> = proto
                .as_ref()
                .and_then(|m| m.graph.as_ref())
                .map(|g| g.node.iter().filter_map(|n| n.op_type.clone()).collect())
                .unwrap_or_default();
            let plain = !name.contains("_expanded");
            let foundation =
                !ops.is_empty() && ops.iter().all(|o| FOUNDATION_OPS.contains(&o.as_str()));
            let target = plain
                && foundation
                && proto
                    .as_ref()
                    .is_some_and(|m| elem_types(m).iter().all(|t| ok_types.contains(t)));
            let Outcome {
                reference: outcome,
                cpu,
            } = run_case(&dir);
            Case {
                name,
                plain,
                foundation,
                target,
                outcome,
                cpu,
            }
        })
        .collect();

    let count = |f: &dyn Fn(&Case) -> bool| cases.iter().filter(|c| f(c)).count();
    let passed = |c: &Case| c.outcome.is_ok();
    let mut failure_kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &cases {
        if let Err(e) = &c.outcome {
            *failure_kinds
                .entry(e.split(':').next().unwrap_or(""))
                .or_default() += 1;
        }
    }
    let mut report = String::new();
    let _ = writeln!(
        report,
        "all tests:                       {} of {} pass",
        count(&passed),
        cases.len()
    );
    let _ = writeln!(
        report,
        "plain (non-_expanded) tests:     {} of {} pass",
        count(&|c| c.plain && passed(c)),
        count(&|c| c.plain)
    );
    let _ = writeln!(
        report,
        "plain tests of foundation ops:   {} of {} pass",
        count(&|c| c.plain && c.foundation && passed(c)),
        count(&|c| c.plain && c.foundation)
    );
    let _ = writeln!(
        report,
        "  of which f32/i64/bool (target): {} of {} pass",
        count(&|c| c.target && passed(c)),
        count(&|c| c.target)
    );
    let _ = writeln!(report, "failures by kind: {failure_kinds:?}");
    let _ = writeln!(
        report,
        "compiled CPU backend:            {} of {} reference-passing tests pass",
        count(&|c| c.cpu.as_ref().is_some_and(|r| r.is_ok())),
        count(&passed)
    );
    let _ = writeln!(report);
    for c in &cases {
        let mark = if c.target { " [target]" } else { "" };
        match &c.outcome {
            Ok(()) => {
                let cpu = match &c.cpu {
                    Some(Ok(())) => "pass".to_string(),
                    Some(Err(e)) => format!("FAIL {e}"),
                    None => "not run".to_string(),
                };
                let _ = writeln!(report, "{}{mark}: pass | cpu {cpu}", c.name);
            }
            Err(e) => {
                let _ = writeln!(report, "{}{mark}: FAIL {e}", c.name);
            }
        }
    }
    insta::assert_snapshot!("onnx_node_tests", report);

    let cpu_failures: Vec<String> = cases
        .iter()
        .filter_map(|c| match &c.cpu {
            Some(Err(e)) => Some(format!("{}: {e}", c.name)),
            _ => None,
        })
        .collect();
    assert!(
        cpu_failures.is_empty(),
        "tests the reference interpreter passes fail on the compiled CPU backend:\n{}",
        cpu_failures.join("\n")
    );

    let unexpected: Vec<String> = cases
        .iter()
        .filter(|c| c.target && c.outcome.is_err())
        .filter(|c| !EXPECTED_TARGET_FAILURES.iter().any(|(n, _)| *n == c.name))
        .map(|c| {
            format!(
                "{}: {}",
                c.name,
                c.outcome.as_ref().err().map_or("", |s| s.as_str())
            )
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "target tests failing:\n{}",
        unexpected.join("\n")
    );
}

/// `load_onnx_with_inputs` binds exactly the inputs a shape depends on (Reshape's target
/// shape) and returns the rest; without that input's value, the importer's request stands.
#[test]
fn shape_inputs_are_bound_from_the_given_values() {
    let dir = node_tests().join("test_reshape_extended_dims");
    let data = dir.join("test_data_set_0");
    let inputs: Vec<Tensor> = (0..2)
        .map(|k| {
            read_tensor_file(&data.join(format!("input_{k}.pb")))
                .expect("input")
                .1
        })
        .collect();
    let model = dir.join("model.onnx");
    let (g, rest) = tessera::load_onnx_with_inputs(&model, &inputs).expect("imports");
    assert_eq!(g.inputs().len(), 1, "only the data input remains");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].ty(), inputs[0].ty());
    let err = tessera::load_onnx_with_inputs(&model, &inputs[..1]).expect_err("shape missing");
    assert!(matches!(err, ImportError::NeedsBinding { .. }), "{err}");
}

/// ScatterND and ScatterElements (and the old Scatter) with constant indices (an
/// exporter's slice assignment) take the importer's linear path: one gather and select
/// per layer of updates, no update × position comparison. With each scatter node test's
/// indices bound to constants, the reference and the compiled CPU backend still give the
/// expected outputs (the conformance run covers the run-time-indices path); an
/// out-of-range constant index is an error naming the node.
#[test]
fn scatters_with_constant_indices_are_expanded_linearly() {
    let mut seen = 0;
    for entry in std::fs::read_dir(node_tests()).expect("node tests") {
        let dir = entry.expect("entry").path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("test_scatter") {
            continue;
        }
        seen += 1;
        let data = dir.join("test_data_set_0");
        let read = |f: &str| read_tensor_file(&data.join(f)).expect("tensor file");
        let (indices_name, indices) = read("input_1.pb");
        let args = [read("input_0.pb").1, read("input_2.pb").1];
        let expected = [read("output_0.pb").1];
        let bind = HashMap::from([(indices_name, indices.clone())]);
        let g = tessera::load_onnx(&dir.join("model.onnx"), bind).expect("imports");
        assert!(
            g.nodes().all(|(_, n)| !matches!(
                n.op,
                tessera::ir::Op::Reduce { .. }
                    | tessera::ir::Op::Binary(tessera::ir::BinaryOp::Equal)
            )),
            "{name}: constant indices need no comparison"
        );
        let outs = tessera::reference::run(&g, &args).expect("reference runs");
        check_outputs(&outs, &expected).unwrap_or_else(|e| panic!("{name}: reference: {e}"));
        let m = tessera::compile(&g, tessera::Options::default()).expect("compiles");
        check_outputs(&m.run(&args).expect("runs"), &expected)
            .unwrap_or_else(|e| panic!("{name}: cpu: {e}"));

        // Every index out of range by one more than the dimension.
        let bad =
            tessera::ir::Tensor::from_vec(indices.shape().clone(), vec![99i64; indices.numel()])
                .expect("shape fits");
        let bind = HashMap::from([(read("input_1.pb").0, bad)]);
        let e = tessera::load_onnx(&dir.join("model.onnx"), bind).expect_err("out of range");
        let e = e.to_string();
        assert!(
            e.contains("Scatter") && e.contains("is out of range at entry") && e.contains(": 99"),
            "{name}: {e}"
        );
    }
    assert_eq!(
        seen, 16,
        "the scatternd, scatter_elements and scatter node tests"
    );
}
