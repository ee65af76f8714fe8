//! The e-graph optimizer over the whole corpus: every ONNX node-test model that imports
//! (generated into `.fixtures/onnx-node` by `scripts/fixtures.sh`) and the seven bundled
//! GraphNet samples.
//!
//! * Lossless conversion: graph → e-graph → graph with no rule run gives back the graph
//!   (dead nodes removed, structurally identical nodes merged, first name kept), printed
//!   byte for byte.
//! * Optimization is sound: the `default` pipeline's output, run on the reference
//!   interpreter, matches the unoptimized graph at GraphNet tolerance t = −5 (node tests)
//!   and onnxruntime's reference outputs at t = −5 (samples). Node and kernel counts and
//!   the modeled cost before and after are snapshotted per model, with the op histogram
//!   of each optimized sample (the fused ops show there).

mod node_support;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::Path;

use prost::Message;
use tessera::ir::{Graph, Op, Tensor, ValueId, text};
use tessera::onnx::proto::ModelProto;
use tessera::onnx::{ImportError, read_tensor_file};
use tessera::passes::cost::{DeviceProfile, Roofline, graph_cost, kernel_count};
use tessera::sample::Sample;

use node_support::{mismatch, node_tests};

const SAMPLES: [&str; 7] = [
    "mlp_iris",
    "resnet18_winputs",
    "shufflenet_v2_x0_5",
    "squeezenet1_1",
    "tiny_bert_cls",
    "tiny_gptj_cls",
    "tiny_vit",
];

/// A node test's graph (inputs that fix a shape bound to the test's values) and the
/// values of its remaining inputs; `None` if it does not import.
fn load_node_test(dir: &Path) -> Option<(Graph, Vec<Tensor>)> {
    let model = dir.join("model.onnx");
    let proto = ModelProto::decode(std::fs::read(&model).ok()?.as_slice()).ok()?;
    let graph = proto.graph.as_ref()?;
    let inits: Vec<&String> = graph
        .initializer
        .iter()
        .filter_map(|t| t.name.as_ref())
        .collect();
    // Test data files are positional over the model inputs that are not initializers.
    let names = graph
        .input
        .iter()
        .filter_map(|vi| vi.name.clone())
        .filter(|n| !inits.contains(&n));
    let data = dir.join("test_data_set_0");
    let mut inputs: HashMap<String, Tensor> = HashMap::new();
    for (k, name) in names.enumerate() {
        let p = data.join(format!("input_{k}.pb"));
        if !p.exists() {
            break;
        }
        inputs.insert(name, read_tensor_file(&p).ok()?.1);
    }
    let mut bind: HashMap<String, Tensor> = HashMap::new();
    loop {
        match tessera::load_onnx(&model, bind.clone()) {
            Ok(g) => {
                let args = g
                    .inputs()
                    .iter()
                    .map(|p| inputs.get(&p.name).cloned())
                    .collect::<Option<Vec<_>>>()?;
                return Some((g, args));
            }
            Err(ImportError::NeedsBinding { graph_inputs, .. })
                if graph_inputs.iter().all(|n| !bind.contains_key(n)) =>
            {
                for n in graph_inputs {
                    let t = inputs.get(&n)?.clone();
                    bind.insert(n, t);
                }
            }
            Err(_) => return None,
        }
    }
}

/// Every node-test model that imports and runs on the reference interpreter, by name.
fn node_test_corpus() -> Vec<(String, Graph, Vec<Tensor>)> {
    let root = node_tests();
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .expect("fixtures dir is readable")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("model.onnx").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 1884, "onnx 1.23.2 has 1884 node tests");
    names
        .into_iter()
        .filter_map(|name| {
            let (g, args) = load_node_test(&root.join(&name))?;
            Some((name, g, args))
        })
        .collect()
}

fn sample(name: &str) -> Sample {
    Sample::open(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("samples")
            .join(name),
    )
    .unwrap()
}

/// What a node computes, with its inputs renamed to the representatives of earlier
/// merges: two nodes with equal keys compute the same values.
fn cse_key(n: &tessera::ir::Node, map: &HashMap<ValueId, ValueId>) -> String {
    let inputs: Vec<ValueId> = n
        .inputs
        .iter()
        .map(|v| map.get(v).copied().unwrap_or(*v))
        .collect();
    match &n.op {
        Op::Constant(t) => format!("constant {} {:016x} {}", t.ty(), t.fingerprint(), t.numel()),
        op => format!("{op:?} {inputs:?}"),
    }
}

/// `g` without dead nodes and with structurally identical nodes merged into the first
/// one (equal constants included): what a lossless e-graph round trip gives back.
fn expected_round_trip(g: &Graph) -> Graph {
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    let mut seen: HashMap<String, Vec<ValueId>> = HashMap::new();
    let mut consts: HashMap<String, Vec<(Tensor, Vec<ValueId>)>> = HashMap::new();
    for (_, n) in g.nodes() {
        let key = cse_key(n, &map);
        let first = if let Op::Constant(t) = &n.op {
            let bucket = consts.entry(key).or_default();
            match bucket.iter().find(|(u, _)| u == t) {
                Some((_, outs)) => Some(outs.clone()),
                None => {
                    bucket.push((t.clone(), n.outputs.clone()));
                    None
                }
            }
        } else {
            match seen.get(&key) {
                Some(outs) => Some(outs.clone()),
                None => {
                    seen.insert(key, n.outputs.clone());
                    None
                }
            }
        };
        if let Some(outs) = first {
            for (a, b) in n.outputs.iter().zip(outs) {
                map.insert(*a, b);
            }
        }
    }
    let mut h = g.clone();
    for (old, new) in &map {
        h.replace_all_uses(*old, *new);
    }
    h.without_dead_nodes()
}

#[test]
fn conversion_round_trip_is_lossless_on_every_corpus_model() {
    let opts = text::PrintOptions::default();
    let mut checked = 0;
    let mut merged = 0;
    let mut failures = Vec::new();
    let mut check = |name: &str, g: &Graph| {
        let want = text::print(&expected_round_trip(g), &opts);
        match tessera::passes::egraph::round_trip(g) {
            Ok(back) => {
                let got = text::print(&back, &opts);
                if got != want {
                    failures.push(format!(
                        "{name}: round trip differs:\n{got}\nexpected:\n{want}"
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
        checked += 1;
        if want != text::print(&g.without_dead_nodes(), &opts) {
            merged += 1;
        }
    };
    for (name, g, _) in node_test_corpus() {
        check(&name, &g);
    }
    for name in SAMPLES {
        let g = tessera::load_onnx(&sample(name).model_path(), Default::default()).unwrap();
        check(name, &g);
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} models:\n{}",
        failures.len(),
        failures.join("\n")
    );
    insta::assert_snapshot!(format!(
        "{checked} models round-trip losslessly; in {merged} of them identical nodes merge"
    ));
}

struct Summary {
    nodes: (usize, usize),
    kernels: (usize, usize),
    cost: (f64, f64),
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = if self.cost.0 > 0.0 {
            100.0 * (self.cost.1 / self.cost.0 - 1.0)
        } else {
            0.0
        };
        write!(
            f,
            "nodes {} -> {}, kernels {} -> {}, modeled cost {:+.1}%",
            self.nodes.0, self.nodes.1, self.kernels.0, self.kernels.1, pct
        )
    }
}

/// Optimizes `g` with the default pipeline; the counts before and after.
fn optimize(g: &Graph) -> (Graph, Summary) {
    let (out, _) = tessera::optimize(g, "default", &DeviceProfile::h200(), None)
        .unwrap_or_else(|e| panic!("{}: {e}", g.name));
    let model = Roofline::new(DeviceProfile::h200());
    let s = Summary {
        nodes: (g.num_nodes(), out.num_nodes()),
        kernels: (kernel_count(g), kernel_count(&out)),
        cost: (graph_cost(&model, g), graph_cost(&model, &out)),
    };
    assert!(
        s.cost.1 <= s.cost.0,
        "{}: modeled cost went up: {s}",
        g.name
    );
    (out, s)
}

#[test]
fn optimized_node_test_models_match_the_reference() {
    let mut report = String::new();
    let mut failures = Vec::new();
    let (mut total, mut changed) = (0, 0);
    for (name, g, args) in node_test_corpus() {
        // Only models the interpreter runs are part of the differential check.
        let Ok(want) = tessera::reference::run(&g, &args) else {
            continue;
        };
        total += 1;
        let (out, s) = optimize(&g);
        if s.nodes.0 != s.nodes.1 || s.cost.0 != s.cost.1 {
            changed += 1;
            let _ = writeln!(report, "{name}: {s}");
        }
        match tessera::reference::run(&out, &args) {
            Ok(got) => {
                if let Some(m) = mismatch(&got, &want) {
                    failures.push(format!("{name}: {m}"));
                }
            }
            Err(e) => failures.push(format!("{name}: optimized graph does not run: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} models:\n{}",
        failures.len(),
        failures.join("\n")
    );
    insta::assert_snapshot!(format!(
        "{total} node-test models run; the optimizer changes {changed} (models not listed are unchanged)\n{report}"
    ));
}

#[test]
fn optimized_samples_match_onnxruntime_at_t_minus_5() {
    let mut report = String::new();
    for name in SAMPLES {
        let s = sample(name);
        let g = tessera::load_onnx(&s.model_path(), Default::default()).unwrap();
        let (out, summary) = optimize(&g);
        let got = tessera::reference::run(&out, &s.inputs().unwrap()).unwrap();
        if let Some(m) = mismatch(&got, &s.reference_outputs().unwrap()) {
            panic!("{name}: optimized graph vs onnxruntime: {m}");
        }
        let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, n) in out.nodes() {
            if !matches!(n.op, Op::Constant(_)) {
                *ops.entry(n.op.name()).or_default() += 1;
            }
        }
        let _ = writeln!(report, "{name}: {summary}\n  {ops:?}");
    }
    insta::assert_snapshot!(report);
}
