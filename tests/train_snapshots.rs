//! Snapshots of training graphs (a small MLP, a small transformer layer), their saved
//! sets, checkpoint plans and B/W partitions, and the training passes' reports. Every
//! number here is counted from shapes, so the snapshots are deterministic.

use std::fmt::Write;

use tessera::ir::{DType, Graph, ValueId, text};
use tessera::passes::cost::DeviceProfile;
use tessera::passes::train::checkpoint::{self, Policy};
use tessera::passes::train::metric;
use tessera::passes::train::models::{self, Weights};
use tessera::passes::train::schedule::{Schedule, profile, value_bytes};
use tessera::passes::train::{
    self, Autodiff, Checkpoint, Loss, ParamSelection, TrainGraph, TrainSpec, TwoStage, split,
};
use tessera::passes::{Pass, PassContext, run_pipeline};

fn spec(loss: Loss, params: &[&str], input_grads: &[&str]) -> TrainSpec {
    TrainSpec {
        loss,
        output: None,
        params: ParamSelection::Patterns(params.iter().map(|s| s.to_string()).collect()),
        input_grads: input_grads.iter().map(|s| s.to_string()).collect(),
    }
}

fn elided(g: &Graph) -> String {
    text::print(
        g,
        &text::PrintOptions {
            elide_constants: true,
        },
    )
}

fn label(g: &Graph, v: ValueId) -> String {
    let n = g.producer(v).expect("saved values are node outputs");
    format!("{} {}", g.node(n).name, g.ty(v))
}

fn saved_list(g: &Graph, saved: &[ValueId]) -> String {
    let mut s = String::new();
    for &v in saved {
        let _ = writeln!(s, "  {} ({} bytes)", label(g, v), g.ty(v).size_bytes());
    }
    s
}

#[test]
fn mlp_training_graph() {
    let g = models::mlp_chain(2, 2, 3, DType::F32, Weights::Random(1));
    let t = train::autodiff(&g, &spec(Loss::Mse, &["w*"], &["x"])).unwrap();
    insta::assert_snapshot!("mlp_training_graph", elided(&t.graph));
}

#[test]
fn transformer_layer_training_graph() {
    let g = models::bert_layer(1, 2, 2, 2, 4, DType::F32, Weights::Random(2));
    let t = train::autodiff(&g, &spec(Loss::Sum, &["*.w", "*.b", "ln*"], &["x"])).unwrap();
    insta::assert_snapshot!("transformer_layer_training_graph", elided(&t.graph));
}

fn plans_report(t: &TrainGraph, policies: &[Policy]) -> String {
    let mut s = String::new();
    for &p in policies {
        let plan = checkpoint::plan(&t.graph, t.boundary, p).unwrap();
        let _ = writeln!(
            s,
            "{}: peak {} bytes, saved {} bytes in {} tensors, recompute {} nodes / {} FLOPs (forward {} FLOPs)",
            p.name(),
            plan.memory.peak_bytes,
            plan.saved_bytes,
            plan.saved.len(),
            plan.recompute_nodes,
            plan.recompute_flops,
            plan.forward_flops
        );
        s.push_str(&saved_list(&t.graph, &plan.saved));
    }
    s
}

#[test]
fn checkpoint_plans_on_a_16_layer_chain() {
    let g = models::mlp_chain(16, 4, 4, DType::F32, Weights::Inputs);
    let t = train::autodiff(&g, &spec(Loss::Sum, &["w*"], &[])).unwrap();
    let store = checkpoint::plan(&t.graph, t.boundary, Policy::StoreAll).unwrap();
    let report = plans_report(
        &t,
        &[
            Policy::StoreAll,
            Policy::Sqrt,
            Policy::Budget(store.memory.peak_bytes / 2),
            Policy::MinCut,
        ],
    );
    insta::assert_snapshot!("checkpoint_plans_mlp16", report);
}

#[test]
fn min_cut_plan_on_the_transformer_mlp_block() {
    // T = 4096, d = 1024, d_ff = 4096, fp16 (the research note's T4 case).
    let g = models::transformer_mlp_block(4096, 1024, 4096, DType::F16, Weights::Inputs);
    let t = train::autodiff(&g, &spec(Loss::Sum, &["fc*", "ln.*"], &[])).unwrap();
    let report = plans_report(&t, &[Policy::StoreAll, Policy::MinCut]);
    insta::assert_snapshot!("min_cut_mlp_block", report);
}

#[test]
fn bert_large_layer_saved_set() {
    let g = models::bert_layer(8, 512, 16, 64, 4096, DType::F16, Weights::Inputs);
    let t = train::autodiff(&g, &spec(Loss::Sum, &["*.w", "*.b", "ln*"], &["x"])).unwrap();
    let saved = train::saved_values(&t.graph, t.boundary);
    let bytes: usize = saved.iter().map(|&v| t.graph.ty(v).size_bytes()).sum();
    insta::assert_snapshot!(
        "bert_large_layer_saved_set",
        format!(
            "{} saved tensors, {:.1} MiB\n{}",
            saved.len(),
            bytes as f64 / (1 << 20) as f64,
            saved_list(&t.graph, &saved)
        )
    );
}

#[test]
fn two_stage_partition_of_a_small_mlp() {
    let g = models::mlp_chain(3, 2, 3, DType::F32, Weights::Random(4));
    let t = train::autodiff(&g, &spec(Loss::Sum, &["w*"], &["x"])).unwrap();
    let p = split::partition(&t.graph, t.boundary);
    let reordered = split::reorder(&t.graph, &p);
    let (b, w) = split::labels(&t.graph, &p);
    let mut s = format!(
        "B: {} nodes, {} FLOPs [{}]\nW: {} nodes, {} FLOPs [{}]\nsplit ops: {}\nstash ({} bytes):\n",
        p.b.len(),
        p.b_flops,
        b.join(", "),
        p.w.len(),
        p.w_flops,
        w.join(", "),
        p.split_ops.join(", "),
        p.stash_bytes
    );
    s.push_str(&saved_list(&t.graph, &p.stash));
    s.push_str("\nreordered:\n");
    s.push_str(&elided(&reordered));
    insta::assert_snapshot!("two_stage_mlp3", s);
}

#[test]
fn training_passes_compose_in_a_pipeline() {
    let g = models::mlp_chain(9, 2, 3, DType::F32, Weights::Random(5));
    let passes: Vec<Box<dyn Pass>> = vec![
        Box::new(Autodiff {
            spec: spec(Loss::Sum, &["w*"], &["x"]),
        }),
        Box::new(Checkpoint {
            policy: Policy::Sqrt,
        }),
        Box::new(TwoStage::default()),
    ];
    let (out, reports) =
        run_pipeline(&g, &passes, &PassContext::new(DeviceProfile::h200()), None).unwrap();
    let mut s = String::new();
    for r in &reports {
        let _ = writeln!(
            s,
            "{}: changed {}, {} -> {} nodes",
            r.pass, r.changed, r.nodes_before, r.nodes_after
        );
        for n in &r.notes {
            let _ = writeln!(s, "  {n}");
        }
        let metrics: Vec<String> = r.metrics.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(s, "  metrics: {}", metrics.join(", "));
    }
    let _ = writeln!(
        s,
        "outputs: {}",
        out.outputs()
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    insta::assert_snapshot!("training_pipeline_reports", s);
}

#[test]
fn pass_metrics_agree_with_the_final_graph() {
    let g = models::mlp_chain(9, 2, 3, DType::F32, Weights::Random(5));
    let passes: Vec<Box<dyn Pass>> = vec![
        Box::new(Autodiff {
            spec: spec(Loss::Sum, &["w*"], &["x"]),
        }),
        Box::new(Checkpoint {
            policy: Policy::Sqrt,
        }),
        Box::new(TwoStage { reorder: false }),
    ];
    let (out, reports) =
        run_pipeline(&g, &passes, &PassContext::new(DeviceProfile::h200()), None).unwrap();
    let m = |pass: usize, name: &str| reports[pass].metrics[name];
    assert!(!reports[2].changed, "partition only: the order is kept");
    let boundary = train::seed_index(&out).unwrap();
    assert_eq!(m(0, metric::FORWARD_NODES), boundary as u64);
    let saved = train::saved_values(&out, boundary);
    assert_eq!(m(1, metric::SAVED_TENSORS), saved.len() as u64);
    let bytes: u64 = saved.iter().map(|&v| value_bytes(&out, v)).sum();
    assert_eq!(m(1, metric::SAVED_BYTES), bytes);
    let peak = profile(&out, &Schedule::program_order(&out)).peak_bytes;
    assert_eq!(m(1, metric::PEAK_BYTES), peak);
    assert_eq!(m(2, metric::PEAK_BYTES_IN_ORDER), peak);
    assert_eq!(m(0, metric::GRADIENTS), out.outputs().len() as u64 - 1);
    assert_eq!(m(1, metric::FORWARD_FLOPS), m(2, metric::FORWARD_FLOPS));
    let remat = out
        .nodes()
        .filter(|(_, n)| n.name.starts_with("remat:"))
        .count();
    assert_eq!(m(1, metric::RECOMPUTE_NODES), remat as u64);
}

#[test]
fn checkpoint_and_two_stage_refuse_forward_graphs() {
    let g = models::mlp_chain(2, 2, 2, DType::F32, Weights::Random(6));
    let passes: [(&str, Box<dyn Pass>); 2] = [
        ("checkpoint", Box::new(Checkpoint::default())),
        ("two_stage", Box::new(TwoStage::default())),
    ];
    for (name, p) in passes {
        let err =
            run_pipeline(&g, &[p], &PassContext::new(DeviceProfile::h200()), None).unwrap_err();
        insta::assert_snapshot!(format!("not_a_training_graph_{name}"), err.to_string());
    }
}
