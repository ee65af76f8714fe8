//! Peak memory against recomputation for the checkpoint policies on n-layer chains, the
//! budget policy against the revolve optimum, the min-cut policy on a transformer MLP
//! block, the B/W split of a BERT-large layer and the pipeline schedules, side by side in
//! one run (analytic: counted from shapes by the schedule simulator, nothing is timed).
//! Run: `cargo bench -p tessera-passes --bench train_memory`.
#![allow(clippy::print_stdout)]

use tessera_ir::{DType, Graph, Op, UnaryOp, ValueId};
use tessera_passes::train::checkpoint::{self, CheckpointPlan, Policy};
use tessera_passes::train::models::{self, Weights};
use tessera_passes::train::pipeline::{self, Kind, StageCosts};
use tessera_passes::train::schedule::peak_count;
use tessera_passes::train::split;
use tessera_passes::train::{self, Loss, ParamSelection, TrainGraph, TrainSpec, revolve};

fn train_chain(g: &Graph) -> TrainGraph {
    let spec = TrainSpec {
        loss: Loss::Sum,
        output: None,
        params: ParamSelection::Patterns(vec!["w*".into()]),
        input_grads: vec![],
    };
    train::autodiff(g, &spec).expect("chains differentiate")
}

fn plan(t: &TrainGraph, p: Policy) -> CheckpointPlan {
    checkpoint::plan(&t.graph, t.boundary, p).expect("policy plans")
}

/// Batch and width of the chain benchmarks.
const BATCH: usize = 8;
const WIDTH: usize = 8;

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

fn main() {
    chains_table();
    budget_table();
    min_cut_table();
    let bert = bw_split_table();
    pipeline_table(bert);
}

/// Store-all, √n and min-cut on MLP and residual chains of 16 to 1024 layers.
fn chains_table() {
    let (batch, width) = (BATCH, WIDTH);
    println!("## Peak memory vs recompute on n-layer chains (batch {batch}, width {width}, f32)");
    println!();
    println!(
        "Peak = transient bytes live at once (activations, recomputed values, gradient temporaries), in layer units (store-all saved bytes / n). Recompute in forward passes."
    );
    println!();
    println!(
        "| chain | n | store-all peak | sqrt peak | 2√n+3 | sqrt recompute | min-cut peak | min-cut recompute |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for kind in ["mlp", "residual"] {
        for n in [16, 32, 64, 128, 256, 512, 1024] {
            let g = if kind == "mlp" {
                models::mlp_chain(n, batch, width, DType::F32, Weights::Inputs)
            } else {
                models::residual_chain(n, batch, width, DType::F32, Weights::Inputs)
            };
            let t = train_chain(&g);
            let all = plan(&t, Policy::StoreAll);
            let unit = all.saved_bytes as f64 / n as f64;
            let sqrt = plan(&t, Policy::Sqrt);
            let cut = plan(&t, Policy::MinCut);
            let fwd = all.forward_flops as f64;
            println!(
                "| {kind} | {n} | {:.2} | {:.2} | {:.2} | {:.3} | {:.2} | {:.3} |",
                all.memory.peak_bytes as f64 / unit,
                sqrt.memory.peak_bytes as f64 / unit,
                2.0 * (n as f64).sqrt() + 3.0,
                sqrt.recompute_flops as f64 / fwd,
                cut.memory.peak_bytes as f64 / unit,
                cut.recompute_flops as f64 / fwd,
            );
        }
    }
}

/// The budget policy at every budget from √n's peak to store-all's, against revolve.
fn budget_table() {
    let (batch, width) = (BATCH, WIDTH);
    println!();
    println!("## Budget mode vs the optimal (revolve) schedule, tanh MLP chain");
    println!();
    println!(
        "For each byte budget from the sqrt plan's peak to store-all's, in steps of one layer: layers recomputed by the budget plan, the states it holds at most, and the revolve optimum with that many states."
    );
    println!();
    println!("| n | budgets | worst ratio | at budget (units) | plan layers | states | optimum |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for n in [16, 32, 64, 100] {
        let g = models::mlp_chain(n, batch, width, DType::F32, Weights::Inputs);
        let t = train_chain(&g);
        let all = plan(&t, Policy::StoreAll);
        let unit = all.saved_bytes / n as u64;
        let is_state = |v: ValueId| {
            t.graph
                .producer(v)
                .is_some_and(|k| matches!(t.graph.node(k).op, Op::Unary(UnaryOp::Tanh)))
        };
        let mut budget = plan(&t, Policy::Sqrt).memory.peak_bytes;
        let mut worst = (0.0f64, 0u64, 0u64, 0usize, 0u64);
        let mut count = 0;
        while budget <= all.memory.peak_bytes {
            let p = plan(&t, Policy::Budget(budget));
            let layers = p
                .schedule
                .steps
                .iter()
                .filter(|s| s.recompute && is_state(t.graph.node(s.node).outputs[0]))
                .count() as u64;
            let slots = peak_count(&t.graph, &p.schedule, is_state);
            let opt = revolve::optimal_recompute(n, slots).expect("feasible");
            let ratio = if opt == 0 {
                if layers == 0 { 1.0 } else { f64::INFINITY }
            } else {
                layers as f64 / opt as f64
            };
            if ratio > worst.0 {
                worst = (ratio, budget / unit, layers, slots, opt);
            }
            count += 1;
            budget += unit;
        }
        println!(
            "| {n} | {count} | {:.3} | {} | {} | {} | {} |",
            worst.0, worst.1, worst.2, worst.3, worst.4
        );
    }
}

/// Store-all and min-cut on a transformer MLP block.
fn min_cut_table() {
    println!();
    println!("## Min-cut on a transformer MLP block (T=4096, d=1024, d_ff=4096, fp16)");
    println!();
    println!("| policy | saved activations (MiB) | peak (MiB) | recomputed ops |");
    println!("|---|---:|---:|---|");
    let g = models::transformer_mlp_block(4096, 1024, 4096, DType::F16, Weights::Inputs);
    let spec = TrainSpec {
        loss: Loss::Sum,
        output: None,
        params: ParamSelection::Patterns(vec!["fc*".into(), "ln.*".into()]),
        input_grads: vec![],
    };
    let t = train::autodiff(&g, &spec).expect("block differentiates");
    for policy in [Policy::StoreAll, Policy::MinCut] {
        let p = plan(&t, policy);
        let mut ops: Vec<&str> = p
            .schedule
            .steps
            .iter()
            .filter(|s| s.recompute)
            .map(|s| t.graph.node(s.node).op.name())
            .collect();
        ops.dedup();
        println!(
            "| {} | {:.0} | {:.0} | {} |",
            policy.name(),
            mib(p.saved_bytes),
            mib(p.memory.peak_bytes),
            if ops.is_empty() {
                "none".to_string()
            } else {
                ops.join(", ")
            }
        );
    }
}

/// The B/W partition of a BERT-large layer; returns its per-stage pipeline costs.
fn bw_split_table() -> StageCosts {
    println!();
    println!("## B/W split of a BERT-large layer (batch 8, seq 512, 16×64 heads, FFN 4096, fp16)");
    println!();
    let g = models::bert_layer(8, 512, 16, 64, 4096, DType::F16, Weights::Inputs);
    let spec = TrainSpec {
        loss: Loss::Sum,
        output: None,
        params: ParamSelection::Patterns(vec!["*.w".into(), "*.b".into(), "ln*".into()]),
        input_grads: vec!["x".into()],
    };
    let t = train::autodiff(&g, &spec).expect("layer differentiates");
    let part = split::partition(&t.graph, t.boundary);
    let (before, after) = split::peak_cost(&t.graph, &part);
    let f = part.forward_flops as f64;
    println!(
        "| F (GFLOP) | B (GFLOP) | W (GFLOP) | B/F | W/F | B→W stash (MiB) | peak in order (MiB) | peak, W after B (MiB) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {:.1} | {:.1} | {:.1} | {:.3} | {:.3} | {:.0} | {:.0} | {:.0} |",
        f / 1e9,
        part.b_flops as f64 / 1e9,
        part.w_flops as f64 / 1e9,
        part.b_flops as f64 / f,
        part.w_flops as f64 / f,
        mib(part.stash_bytes),
        mib(before),
        mib(after)
    );
    StageCosts {
        f: part.forward_flops,
        b: part.b_flops,
        w: part.w_flops,
        activation_bytes: 0,
        stash_bytes: 0,
    }
}

/// Every schedule at three (p, m), with unit costs and with the BERT-large layer's.
fn pipeline_table(bert: StageCosts) {
    println!();
    println!("## Pipeline schedules (T_F = T_B = T_W = 1, and the BERT-large layer's FLOPs)");
    println!();
    println!(
        "| costs | p | m | schedule | bubble | closed form | speedup vs 1F1B | peak in flight |"
    );
    println!("|---|---:|---:|---|---:|---|---:|---:|");
    let unit = StageCosts {
        f: 1,
        b: 1,
        w: 1,
        activation_bytes: 0,
        stash_bytes: 0,
    };
    for (name, c) in [("unit", unit), ("BERT-large layer", bert)] {
        for (p, m) in [(4, 8), (4, 16), (8, 24)] {
            let base = pipeline::simulate(Kind::OneFOneB, p, m, c).expect("simulates");
            for kind in Kind::ALL {
                let tl = pipeline::simulate(kind, p, m, c).expect("simulates");
                let closed = match kind {
                    Kind::OneFOneB => format!("(p−1)/m = {:.4}", (p - 1) as f64 / m as f64),
                    Kind::ZbH1 => format!(
                        "(p−1)(F+B−W)/(mΣT) = {:.4}",
                        (p - 1) as f64 * (c.f + c.b - c.w) as f64
                            / (m as f64 * (c.f + c.b + c.w) as f64)
                    ),
                    _ => String::new(),
                };
                println!(
                    "| {name} | {p} | {m} | {} | {:.4} | {closed} | {:.3} | {} |",
                    kind.name(),
                    tl.bubble(),
                    tl.throughput() / base.throughput(),
                    tl.peak_in_flight.iter().max().copied().unwrap_or(0)
                );
            }
        }
    }
}
