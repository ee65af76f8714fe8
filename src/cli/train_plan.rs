//! `tessera train-plan`: build a model's training graph, plan checkpointing, split the
//! backward pass into B and W, simulate pipeline schedules; print the plan.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::json;
use tessera::ir::{Graph, ValueId, text};
use tessera::passes::train::checkpoint::{self, CheckpointPlan, Policy};
use tessera::passes::train::pipeline::{self, Kind, StageCosts, Timeline};
use tessera::passes::train::schedule::{Schedule, arena, profile};
use tessera::passes::train::split::{self, Partition};
use tessera::passes::train::{self, Loss, ParamSelection, TrainGraph, TrainSpec};

use super::common::load;
use crate::Bind;

/// Arguments of `train-plan`.
#[derive(clap::Args)]
pub struct Args {
    /// An .onnx file, or a sample directory holding model.onnx.
    model: PathBuf,
    /// The loss: sum, mse (adds a `target` input) or xent (softmax cross-entropy over
    /// axis 1; adds an i64 `labels` input).
    #[arg(long, default_value = "sum")]
    loss: String,
    /// The model output the loss reads (default: the first float output).
    #[arg(long)]
    output: Option<String>,
    /// What to train: `constants` (every float constant of rank >= 1, i.e. the ONNX
    /// initializers after import) or comma-separated patterns (`*` wildcard) matched
    /// against constant and graph-input names, e.g. '*_weight_,*_bias_'.
    #[arg(long, default_value = "constants")]
    params: String,
    /// Comma-separated graph inputs or node names whose gradients are outputs too
    /// (`input_grad:<name>`); they define the B side of the two-stage split.
    #[arg(long, value_delimiter = ',')]
    input_grads: Vec<String>,
    /// Checkpoint policy: none, sqrt, budget=BYTES (K/M/G suffixes) or mincut.
    #[arg(long, default_value = "none")]
    checkpoint: String,
    /// Split the backward pass into B (input gradients) then W (weight gradients).
    #[arg(long)]
    two_stage: bool,
    /// Simulate pipeline schedules for `p` stages and `m` microbatches, each stage
    /// costing this training graph's F/B/W FLOPs: `p=4,m=8`.
    #[arg(long, value_name = "p=P,m=M")]
    pipeline: Option<String>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
    /// KIND=FILE: write `graph` (the training graph, text IR) or `svg` (the pipeline
    /// Gantt chart). Repeatable.
    #[arg(long = "emit", value_name = "KIND=FILE")]
    emit: Vec<String>,
    #[command(flatten)]
    bind: Bind,
}

fn parse_pipeline(s: &str) -> Result<(usize, usize)> {
    let (mut p, mut m) = (None, None);
    for part in s.split(',') {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("--pipeline expects p=P,m=M, got {s:?}"))?;
        let n: usize = v
            .trim()
            .parse()
            .with_context(|| format!("--pipeline: {k} must be a positive integer, got {v:?}"))?;
        match k.trim() {
            "p" => p = Some(n),
            "m" => m = Some(n),
            other => bail!("--pipeline: unknown key {other:?} (expected p and m)"),
        }
    }
    match (p, m) {
        (Some(p), Some(m)) if p > 0 && m > 0 => Ok((p, m)),
        _ => bail!("--pipeline expects positive p and m, e.g. p=4,m=8; got {s:?}"),
    }
}

fn value_label(g: &Graph, v: ValueId) -> String {
    match g.producer(v) {
        Some(n) => {
            let node = g.node(n);
            if node.name.is_empty() {
                format!("{n}")
            } else {
                node.name.clone()
            }
        }
        None => g
            .inputs()
            .iter()
            .find(|p| p.value == v)
            .map_or_else(|| v.to_string(), |p| p.name.clone()),
    }
}

/// Bytes in the largest binary unit that keeps the number at least 1.
fn mib(b: u64) -> String {
    match b {
        0..1024 => format!("{b} B"),
        1024..1_048_576 => format!("{:.1} KiB", b as f64 / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.2} MiB", b as f64 / 1_048_576.0),
        _ => format!("{:.2} GiB", b as f64 / 1_073_741_824.0),
    }
}

struct Plan {
    train: TrainGraph,
    /// Arena bytes the static memory planner lays out for the checkpointed schedule.
    arena_bytes: u64,
    /// The store-all training graph's peak, before any policy.
    store_all_peak: u64,
    ckpt: CheckpointPlan,
    /// The final training graph (checkpointed, and reordered when two-stage).
    graph: Graph,
    split: Option<(Partition, u64, u64)>,
    timelines: Vec<Timeline>,
}

pub fn run(a: &Args) -> Result<()> {
    let loss: Loss = a.loss.parse().map_err(anyhow::Error::msg)?;
    let policy = Policy::parse(&a.checkpoint).map_err(anyhow::Error::msg)?;
    let params = if a.params == "constants" {
        ParamSelection::FloatConstants
    } else {
        ParamSelection::Patterns(a.params.split(',').map(|s| s.trim().to_string()).collect())
    };
    let pipe = a.pipeline.as_deref().map(parse_pipeline).transpose()?;
    let mut emits = Vec::new();
    for e in &a.emit {
        let (k, f) = e
            .split_once('=')
            .with_context(|| format!("--emit expects KIND=FILE, got {e:?}"))?;
        if !matches!(k, "graph" | "svg") {
            bail!("--emit: unknown kind {k:?} (expected graph or svg)");
        }
        if k == "svg" && pipe.is_none() {
            bail!("--emit svg=... needs --pipeline p=P,m=M");
        }
        emits.push((k.to_string(), PathBuf::from(f)));
    }

    let (g, _) = load(&a.model, &a.bind)?;
    let spec = TrainSpec {
        loss,
        output: a.output.clone(),
        params,
        input_grads: a.input_grads.clone(),
    };
    let train = train::autodiff(&g, &spec)
        .with_context(|| format!("differentiating {}", a.model.display()))?;
    let store_all_peak = profile(&train.graph, &Schedule::program_order(&train.graph)).peak_bytes;
    let ckpt = checkpoint::plan(&train.graph, train.boundary, policy)
        .with_context(|| format!("planning checkpoints ({})", policy.name()))?;
    let mut graph = ckpt.schedule.to_graph(&train.graph);
    let mut split_info = None;
    if a.two_stage || pipe.is_some() {
        let p = split::partition(&graph, train.boundary);
        let (before, after) = split::peak_cost(&graph, &p);
        if a.two_stage {
            graph = split::reorder(&graph, &p);
        }
        split_info = Some((p, before, after));
    }
    let mut timelines = Vec::new();
    if let (Some((p, m)), Some((part, _, _))) = (pipe, &split_info) {
        let costs = StageCosts {
            f: part.forward_flops,
            b: part.b_flops,
            w: part.w_flops,
            activation_bytes: ckpt.saved_bytes,
            stash_bytes: part.stash_bytes,
        };
        for kind in Kind::ALL {
            let t = pipeline::simulate(kind, p, m, costs)?;
            t.check().map_err(anyhow::Error::msg)?;
            timelines.push(t);
        }
    }
    let arena_bytes = arena(&train.graph, &ckpt.schedule).peak_bytes as u64;
    let plan = Plan {
        arena_bytes,
        train,
        store_all_peak,
        ckpt,
        graph,
        split: split_info,
        timelines,
    };
    tessera::ir::verify(&plan.graph).context("the training graph does not verify")?;

    for (kind, path) in &emits {
        let text = match kind.as_str() {
            "graph" => text::print(&plan.graph, &text::PrintOptions::default()),
            _ => pipeline::svg(&plan.timelines),
        };
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        outln!("{}", serde_json::to_string(&json_report(&plan, policy))?)?;
    } else {
        out!("{}", text_report(&plan, policy, &a.loss))?;
    }
    Ok(())
}

fn json_report(p: &Plan, policy: Policy) -> serde_json::Value {
    let c = &p.ckpt;
    let mut v = json!({
        "peak_bytes": c.memory.peak_bytes,
        "saved_bytes": c.saved_bytes,
        "recompute_flops": c.recompute_flops,
        "forward_flops": c.forward_flops,
        "backward_flops": c.backward_flops,
        "store_all_peak_bytes": p.store_all_peak,
        "arena_bytes": p.arena_bytes,
        "policy": policy.name(),
        "saved_tensors": c.saved.len(),
        "recomputed_nodes": c.recompute_nodes,
        "resident_bytes": c.memory.resident_bytes,
        "gradients": p.train.grads.len(),
    });
    if let Some((part, before, after)) = &p.split {
        v["two_stage"] = json!({
            "b_nodes": part.b.len(),
            "w_nodes": part.w.len(),
            "b_flops": part.b_flops,
            "w_flops": part.w_flops,
            "stash_bytes": part.stash_bytes,
            "stash_tensors": part.stash.len(),
            "split_ops": part.split_ops.len(),
            "peak_bytes_in_order": before,
            "peak_bytes_w_after_b": after,
        });
    }
    if !p.timelines.is_empty() {
        v["pipeline"] = p
            .timelines
            .iter()
            .map(|t| {
                let (n, d) = t.bubble_fraction();
                json!({
                    "schedule": t.kind.name(),
                    "stages": t.stages,
                    "microbatches": t.microbatches,
                    "makespan": t.makespan,
                    "bubble": t.bubble(),
                    "bubble_fraction": [n, d],
                    "peak_in_flight": t.peak_in_flight,
                    "peak_bytes": t.peak_bytes,
                })
            })
            .collect();
    }
    v
}

fn text_report(p: &Plan, policy: Policy, loss: &str) -> String {
    let mut s = String::new();
    let t = &p.train;
    let c = &p.ckpt;
    let g = &t.graph;
    let params: usize = t.grads.iter().map(|gr| g.ty(gr.grad).shape.numel()).sum();
    let _ = writeln!(
        s,
        "training graph: loss {loss}, {} gradient(s) ({params} elements), {} forward + {} backward nodes",
        t.grads.len(),
        t.boundary,
        g.num_nodes() - t.boundary
    );
    for n in &t.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    let fwd = c.forward_flops.max(1) as f64;
    let _ = writeln!(
        s,
        "checkpoint {}: peak {} (store-all {}), saved {} tensor(s) = {}",
        policy.name(),
        mib(c.memory.peak_bytes),
        mib(p.store_all_peak),
        c.saved.len(),
        mib(c.saved_bytes)
    );
    let _ = writeln!(
        s,
        "  recompute: {} node(s), {} FLOPs = {:.3} forward passes; forward {} FLOPs, backward {} FLOPs",
        c.recompute_nodes,
        c.recompute_flops,
        c.recompute_flops as f64 / fwd,
        c.forward_flops,
        c.backward_flops
    );
    let _ = writeln!(
        s,
        "  memory planner arena for this schedule: {} (peak of live bytes {})",
        mib(p.arena_bytes),
        mib(c.memory.peak_bytes)
    );
    let _ = writeln!(
        s,
        "  resident (parameters, inputs): {}; outputs (loss, gradients): {}",
        mib(c.memory.resident_bytes),
        mib(c.memory.output_bytes)
    );
    let sched = &c.schedule;
    let at = sched.steps.get(c.memory.peak_step).map(|st| st.node);
    let mut live: Vec<ValueId> = c
        .memory
        .live_at_peak
        .iter()
        .map(|&i| sched.instances[i].value)
        .collect();
    live.sort_by_key(|&v| std::cmp::Reverse(g.ty(v).size_bytes()));
    let _ = writeln!(
        s,
        "live at the peak (step {}{}), largest first:",
        c.memory.peak_step,
        at.map_or(String::new(), |n| format!(", {}", g.node_ref(n)))
    );
    for &v in live.iter().take(6) {
        let _ = writeln!(
            s,
            "  {:<40} {:<20} {}",
            value_label(g, v),
            g.ty(v).to_string(),
            g.ty(v).size_bytes()
        );
    }
    if live.len() > 6 {
        let _ = writeln!(s, "  ... and {} more", live.len() - 6);
    }
    let mut saved: Vec<ValueId> = c.saved.clone();
    saved.sort_by_key(|&v| std::cmp::Reverse(g.ty(v).size_bytes()));
    let _ = writeln!(s, "saved tensors (largest first):");
    for &v in saved.iter().take(12) {
        let _ = writeln!(
            s,
            "  {:<40} {:<20} {}",
            value_label(g, v),
            g.ty(v).to_string(),
            g.ty(v).size_bytes()
        );
    }
    if saved.len() > 12 {
        let _ = writeln!(s, "  ... and {} more", saved.len() - 12);
    }
    if let Some((part, before, after)) = &p.split {
        let _ = writeln!(
            s,
            "two-stage: B {} node(s) {} FLOPs (B/F {:.3}), W {} node(s) {} FLOPs (W/F {:.3}), {} op(s) split",
            part.b.len(),
            part.b_flops,
            part.b_flops as f64 / fwd,
            part.w.len(),
            part.w_flops,
            part.w_flops as f64 / fwd,
            part.split_ops.len()
        );
        let _ = writeln!(
            s,
            "  B->W stash: {} tensor(s) = {}; peak {} in program order, {} with W after B",
            part.stash.len(),
            mib(part.stash_bytes),
            mib(*before),
            mib(*after)
        );
        if part.input_grads == 0 {
            let _ = writeln!(
                s,
                "  note: no input gradients requested (--input-grads): B is empty, every backward node is W"
            );
        }
    }
    if let Some(first) = p.timelines.first() {
        let c = first.costs;
        let _ = writeln!(
            s,
            "pipeline p={}, m={} (per stage and microbatch: F {} B {} W {} FLOPs; time unit = 1 FLOP):",
            first.stages, first.microbatches, c.f, c.b, c.w
        );
        let _ = writeln!(
            s,
            "  {:<18} {:>16} {:>8} {:>11} {:>10} {:>14}",
            "schedule", "makespan", "bubble", "throughput", "in flight", "peak bytes"
        );
        let base = first.throughput();
        for t in &p.timelines {
            let _ = writeln!(
                s,
                "  {:<18} {:>16} {:>8.4} {:>10.3}x {:>10} {:>14}",
                t.kind.name(),
                t.makespan,
                t.bubble(),
                t.throughput() / base,
                t.peak_in_flight.iter().max().copied().unwrap_or(0),
                t.peak_bytes.iter().max().copied().unwrap_or(0)
            );
        }
    }
    s
}
