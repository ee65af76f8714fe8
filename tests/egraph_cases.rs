//! File-driven snapshot tests of the e-graph optimizer.
//!
//! Every `tests/cases/<family>/<case>.tir` of the e-graph families (algebra, layout, fusion,
//! merge, extraction) is a small graph in the text IR. The default
//! pipeline (`dce`, `egraph`, `dce`) runs on it; the snapshot
//! `snapshots/egraph_cases__<family>__<case>.snap` holds the pass table (time excluded)
//! and the optimized IR. Each case is also run on the reference interpreter before and
//! after, on seeded random inputs, and must agree at GraphNet's float32 tolerance t = −5.
//!
//! The bundled tiny BERT and tiny GPT-J samples are snapshotted the same way: their
//! attention, GELU and Q/K/V projections must come out fused and merged, with the
//! modeled cost lower and the outputs still matching onnxruntime's.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use tessera::ir::{Graph, Op, Tensor, text, verify};
use tessera::passes::cost::DeviceProfile;
use tessera::passes::{PassReport, pipeline, run_pipeline};
use tessera::reference::run;
use tessera::sample::{Sample, compare, splitmix64_uniform};

const ATOL: f64 = 1e-5;
const RTOL: f64 = 1.3e-6;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The e-graph case families (other subsystems keep their own cases under `tests/cases`).
const FAMILIES: [&str; 5] = ["algebra", "layout", "fusion", "merge", "extraction"];

/// Every case file of the e-graph families, sorted.
fn case_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let dir = root().join("tests/cases");
    for f in FAMILIES.map(|f| dir.join(f)) {
        let mut cases: Vec<PathBuf> = std::fs::read_dir(&f)
            .expect("family dir is readable")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "tir"))
            .collect();
        cases.sort();
        files.extend(cases);
    }
    files
}

fn micros(s: f64) -> String {
    format!("{:.3} us", s * 1e6)
}

/// The pass table without wall times, and each pass's notes.
fn table(reports: &[PassReport]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<8} {:<7} {:<11} {:<42} cost",
        "pass", "changed", "nodes", "e-graph (iters, e-nodes, e-classes, stop)"
    );
    for r in reports {
        let (eg, cost) = match &r.egraph {
            Some(e) => (
                format!(
                    "{}, {}, {}, {}",
                    e.iterations, e.enodes, e.eclasses, e.stop_reason
                ),
                format!("{} -> {}", micros(e.cost_before), micros(e.cost_after)),
            ),
            None => (String::new(), String::new()),
        };
        let line = format!(
            "{:<8} {:<7} {:<11} {:<42} {cost}",
            r.pass,
            if r.changed { "yes" } else { "no" },
            format!("{} -> {}", r.nodes_before, r.nodes_after),
            eg
        );
        let _ = writeln!(t, "{}", line.trim_end());
    }
    for r in reports {
        for n in &r.notes {
            let _ = writeln!(t, "  {}: {n}", r.pass);
        }
    }
    t
}

fn optimize(g: &Graph) -> (Graph, Vec<PassReport>) {
    let passes = pipeline("default").expect("default pipeline exists");
    run_pipeline(
        g,
        &passes,
        &tessera::pass_context(&DeviceProfile::h200()),
        None,
    )
    .expect("the default pipeline succeeds")
}

/// Seeded inputs in [0.5, 1.5): positive, away from zero (some cases divide by an input).
fn inputs(g: &Graph) -> Vec<Tensor> {
    g.inputs()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ty = g.ty(p.value);
            splitmix64_uniform(ty.dtype, ty.shape.clone(), 77 + i as u64, 0.5, 1.5)
        })
        .collect()
}

fn assert_same_outputs(name: &str, a: &Graph, b: &Graph, args: &[Tensor]) {
    let (x, y) = (
        run(a, args).expect("input runs"),
        run(b, args).expect("output runs"),
    );
    assert_eq!(x.len(), y.len());
    for (k, (p, q)) in x.iter().zip(&y).enumerate() {
        let c = compare(q, p, ATOL, RTOL).expect("same types");
        assert!(
            c.all_close,
            "{name} output {k}: max abs {:.3e}, max rel {:.3e}",
            c.max_abs, c.max_rel
        );
    }
}

#[test]
fn cases() {
    let files = case_files();
    assert!(
        files.len() >= 15,
        "expected the case files, found {}",
        files.len()
    );
    for path in files {
        let family = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|s| s.to_str())
            .expect("family name");
        let case = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("case name");
        let src = std::fs::read_to_string(&path).expect("case is readable");
        let g = text::parse(&src).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        verify(&g).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (out, reports) = optimize(&g);
        assert_same_outputs(case, &g, &out, &inputs(&g));
        let again = optimize(&g).0;
        assert_eq!(
            text::print(&again, &Default::default()),
            text::print(&out, &Default::default()),
            "{family}/{case}: not deterministic"
        );
        let snapshot = format!(
            "{}\n{}",
            table(&reports),
            text::print(&out, &Default::default())
        );
        insta::assert_snapshot!(format!("{family}__{case}"), snapshot);
    }
}

fn op_count(g: &Graph, name: &str) -> usize {
    g.nodes().filter(|(_, n)| n.op.name() == name).count()
}

/// Optimizes a bundled sample, checks it against onnxruntime's outputs and returns the
/// snapshot text (pass table and elided IR) and the optimized graph.
fn sample(name: &str) -> (String, Graph, Graph) {
    let s = Sample::open(&root().join("samples").join(name)).expect("sample opens");
    let g = tessera::load_onnx(&s.model_path(), Default::default()).expect("sample imports");
    let (out, reports) = optimize(&g);
    let outs = run(&out, &s.inputs().expect("inputs")).expect("optimized graph runs");
    let expected = s.reference_outputs().expect("outputs");
    assert_eq!(outs.len(), expected.len(), "output counts differ");
    for (k, (a, e)) in outs.iter().zip(&expected).enumerate() {
        let c = compare(a, e, ATOL, RTOL).expect("same types");
        assert!(
            c.all_close,
            "{name} output {k}: max abs {:.3e}, max rel {:.3e} vs onnxruntime",
            c.max_abs, c.max_rel
        );
    }
    let eg = reports
        .iter()
        .find_map(|r| r.egraph.clone())
        .expect("the e-graph pass ran");
    assert!(
        eg.cost_after < eg.cost_before,
        "{name}: modeled cost did not drop"
    );
    let snapshot = format!(
        "{}\n{}",
        table(&reports),
        text::print(
            &out,
            &text::PrintOptions {
                elide_constants: true
            }
        )
    );
    (snapshot, g, out)
}

/// The merged projections: splits of one matmul into as many equal heads as `parts`.
fn merged_projections(g: &Graph) -> usize {
    g.nodes()
        .filter(|(_, n)| {
            matches!(&n.op, Op::Split { sizes, .. } if sizes.len() >= 3)
                && g.producer(n.inputs[0])
                    .is_some_and(|p| matches!(g.node(p).op, Op::MatMul | Op::Gemm { .. }))
        })
        .count()
}

#[test]
fn tiny_bert_attention_gelu_fused_and_qkv_merged() {
    let (snapshot, before, after) = sample("tiny_bert_cls");
    assert_eq!(op_count(&before, "attention"), 0);
    assert_eq!(op_count(&after, "attention"), 5, "one attention per layer");
    assert_eq!(op_count(&after, "gelu"), 5, "one GELU per layer");
    assert_eq!(op_count(&after, "erf"), 0);
    assert_eq!(op_count(&after, "softmax"), 0);
    assert_eq!(
        merged_projections(&after),
        5,
        "Q, K, V merged in every layer"
    );
    assert_eq!(op_count(&after, "layer_norm"), 11);
    insta::assert_snapshot!("sample__tiny_bert_cls", snapshot);
}

#[test]
fn tiny_gptj_attention_gelu_fused_and_qkv_merged() {
    let (snapshot, before, after) = sample("tiny_gptj_cls");
    assert_eq!(op_count(&before, "attention"), 0);
    assert_eq!(op_count(&after, "attention"), 5, "one attention per layer");
    assert_eq!(op_count(&after, "gelu"), 5, "one tanh GELU per layer");
    assert_eq!(op_count(&after, "tanh"), 0);
    assert_eq!(
        merged_projections(&after),
        5,
        "Q, K, V (and fc_in) merged in every layer"
    );
    insta::assert_snapshot!("sample__tiny_gptj_cls", snapshot);
}

#[test]
fn tiny_vit_attention_and_gelu_fused() {
    let (_, _, after) = sample("tiny_vit");
    assert_eq!(op_count(&after, "attention"), 5, "one attention per layer");
    assert_eq!(op_count(&after, "gelu"), 5, "one GELU per layer");
    assert_eq!(
        merged_projections(&after),
        5,
        "Q, K, V merged in every layer"
    );
}

#[test]
fn an_invalid_input_graph_is_an_error_not_a_panic() {
    use tessera::ir::{DType, Shape, TensorType};
    let mut g = Graph::new("bad");
    let x = g.add_input("x", TensorType::new(DType::F32, Shape::from_dims(&[2, 3])));
    // Declared [3, 2] where relu of a [2, 3] input gives [2, 3].
    let y = g.push_node_unchecked(
        Op::Unary(tessera::ir::UnaryOp::Relu),
        vec![x],
        vec![TensorType::new(DType::F32, Shape::from_dims(&[3, 2]))],
        "act".into(),
    );
    g.add_output("y", y[0]);
    let err = tessera::passes::egraph::optimize(
        &g,
        &tessera::pass_context(&DeviceProfile::h200()),
        &Default::default(),
    )
    .expect_err("the input does not verify");
    assert!(
        err.to_string().contains("the input graph does not verify"),
        "{err}"
    );
}

/// `tessera::compile` compiles for the CPU, so the optimizer prices rewrites with the CPU
/// profile unless the options name another device.
#[test]
fn a_cpu_compile_prices_rewrites_for_the_cpu() {
    let s = Sample::open(&root().join("samples").join("tiny_bert_cls")).expect("sample opens");
    let g = tessera::load_onnx(&s.model_path(), Default::default()).expect("sample imports");
    let model_of = |options: tessera::Options| -> String {
        let m = tessera::compile(&g, options).expect("compiles");
        let stats = m
            .reports()
            .iter()
            .find_map(|r| r.egraph.clone())
            .expect("the default pipeline runs the e-graph pass");
        stats.cost_model
    };
    assert_eq!(model_of(tessera::Options::default()), "roofline/cpu");
    let h200 = tessera::Options {
        device: DeviceProfile::h200(),
        ..tessera::Options::default()
    };
    assert_eq!(model_of(h200), "roofline/h200");
}
