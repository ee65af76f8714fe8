//! `tessera train-plan`: build a model's training graph, plan checkpointing, split the
//! backward pass into B and W, simulate pipeline schedules; print the plan.
//!
//! The graph is built by one run of the training passes (`Autodiff`, `Checkpoint`, and
//! `TwoStage` for `--two-stage` or `--pipeline`) through `run_pipeline`, which verifies it
//! after each pass. The report prints the passes' metrics (`train::metric`) and what the
//! final graph shows: the values live at its peak and the tensors it saves for backward.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::json;
use tessera::ir::{Graph, ValueId, text};
use tessera::passes::cost::DeviceProfile;
use tessera::passes::train::checkpoint::Policy;
use tessera::passes::train::metric;
use tessera::passes::train::pipeline::{self, Kind, StageCosts, Timeline};
use tessera::passes::train::schedule::{Schedule, profile};
use tessera::passes::train::{
    self, Autodiff, Checkpoint, Loss, ParamSelection, TrainSpec, TwoStage, seed_index,
};
use tessera::passes::{Pass, PassReport, run_pipeline};

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

/// The metrics of one pass's report, read back by name.
struct Metrics<'a>(&'a PassReport);

impl Metrics<'_> {
    fn get(&self, name: &str) -> Result<u64> {
        self.0
            .metrics
            .get(name)
            .copied()
            .with_context(|| format!("invariant: pass {} reports metric {name:?}", self.0.pass))
    }
}

/// The B/W partition, as the two-stage pass reported it.
struct Split {
    b_nodes: u64,
    w_nodes: u64,
    b_flops: u64,
    w_flops: u64,
    forward_flops: u64,
    stash_tensors: u64,
    stash_bytes: u64,
    split_ops: u64,
    input_grads: u64,
    peak_in_order: u64,
    peak_w_after_b: u64,
}

/// Everything the report prints: the passes' metrics, and analyses of the final graph.
struct Plan {
    /// The final training graph (checkpointed, and reordered when two-stage).
    graph: Graph,
    /// Index of its seed node: the backward region starts here.
    boundary: usize,
    /// Autodiff's diagnostics about the training spec.
    notes: Vec<String>,
    gradients: u64,
    forward_nodes: u64,
    backward_nodes: u64,
    /// The store-all training graph's peak, before any policy.
    store_all_peak: u64,
    peak: u64,
    saved_tensors: u64,
    saved_bytes: u64,
    recompute_nodes: u64,
    recompute_flops: u64,
    forward_flops: u64,
    backward_flops: u64,
    resident_bytes: u64,
    output_bytes: u64,
    /// Arena bytes the static memory planner lays out for the checkpointed schedule.
    arena_bytes: u64,
    split: Option<Split>,
    timelines: Vec<Timeline>,
}

impl Plan {
    /// Reads the reports of the autodiff, checkpoint and (optionally) two-stage passes.
    fn new(graph: Graph, reports: &[PassReport]) -> Result<Plan> {
        let [ad, ck, rest @ ..] = reports else {
            bail!("invariant: the training pipeline runs autodiff and checkpoint");
        };
        let (ad, ck) = (Metrics(ad), Metrics(ck));
        let diagnostics = ad.get(metric::DIAGNOSTICS)? as usize;
        let notes = &ad.0.notes;
        let notes = notes[notes.len().saturating_sub(diagnostics)..].to_vec();
        let split = match rest.first() {
            None => None,
            Some(r) => {
                let m = Metrics(r);
                Some(Split {
                    b_nodes: m.get(metric::B_NODES)?,
                    w_nodes: m.get(metric::W_NODES)?,
                    b_flops: m.get(metric::B_FLOPS)?,
                    w_flops: m.get(metric::W_FLOPS)?,
                    forward_flops: m.get(metric::FORWARD_FLOPS)?,
                    stash_tensors: m.get(metric::STASH_TENSORS)?,
                    stash_bytes: m.get(metric::STASH_BYTES)?,
                    split_ops: m.get(metric::SPLIT_OPS)?,
                    input_grads: m.get(metric::INPUT_GRADS)?,
                    peak_in_order: m.get(metric::PEAK_BYTES_IN_ORDER)?,
                    peak_w_after_b: m.get(metric::PEAK_BYTES_W_AFTER_B)?,
                })
            }
        };
        let boundary = seed_index(&graph).context("invariant: a training graph has a seed")?;
        Ok(Plan {
            graph,
            boundary,
            notes,
            gradients: ad.get(metric::GRADIENTS)?,
            forward_nodes: ad.get(metric::FORWARD_NODES)?,
            backward_nodes: ad.get(metric::BACKWARD_NODES)?,
            store_all_peak: ad.get(metric::PEAK_BYTES)?,
            peak: ck.get(metric::PEAK_BYTES)?,
            saved_tensors: ck.get(metric::SAVED_TENSORS)?,
            saved_bytes: ck.get(metric::SAVED_BYTES)?,
            recompute_nodes: ck.get(metric::RECOMPUTE_NODES)?,
            recompute_flops: ck.get(metric::RECOMPUTE_FLOPS)?,
            forward_flops: ck.get(metric::FORWARD_FLOPS)?,
            backward_flops: ck.get(metric::BACKWARD_FLOPS)?,
            resident_bytes: ck.get(metric::RESIDENT_BYTES)?,
            output_bytes: ck.get(metric::OUTPUT_BYTES)?,
            arena_bytes: ck.get(metric::ARENA_BYTES)?,
            split,
            timelines: Vec::new(),
        })
    }
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
    let mut passes: Vec<Box<dyn Pass>> =
        vec![Box::new(Autodiff { spec }), Box::new(Checkpoint { policy })];
    // A pipeline simulation needs the B/W costs even when the graph keeps its order.
    if a.two_stage || pipe.is_some() {
        passes.push(Box::new(TwoStage {
            reorder: a.two_stage,
        }));
    }
    // The training passes price nothing; the device is only the context's.
    let cx = tessera::pass_context(&DeviceProfile::h200());
    let (graph, reports) = run_pipeline(&g, &passes, &cx, None)
        .with_context(|| format!("building the training graph of {}", a.model.display()))?;
    let mut plan = Plan::new(graph, &reports)?;
    if let (Some((p, m)), Some(split)) = (pipe, &plan.split) {
        let costs = StageCosts {
            f: split.forward_flops,
            b: split.b_flops,
            w: split.w_flops,
            activation_bytes: plan.saved_bytes,
            stash_bytes: split.stash_bytes,
        };
        for kind in Kind::ALL {
            let t = pipeline::simulate(kind, p, m, costs)?;
            t.check().map_err(anyhow::Error::msg)?;
            plan.timelines.push(t);
        }
    }

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
    let mut v = json!({
        "peak_bytes": p.peak,
        "saved_bytes": p.saved_bytes,
        "recompute_flops": p.recompute_flops,
        "forward_flops": p.forward_flops,
        "backward_flops": p.backward_flops,
        "store_all_peak_bytes": p.store_all_peak,
        "arena_bytes": p.arena_bytes,
        "policy": policy.name(),
        "saved_tensors": p.saved_tensors,
        "recomputed_nodes": p.recompute_nodes,
        "resident_bytes": p.resident_bytes,
        "gradients": p.gradients,
    });
    if let Some(sp) = &p.split {
        v["two_stage"] = json!({
            "b_nodes": sp.b_nodes,
            "w_nodes": sp.w_nodes,
            "b_flops": sp.b_flops,
            "w_flops": sp.w_flops,
            "stash_bytes": sp.stash_bytes,
            "stash_tensors": sp.stash_tensors,
            "split_ops": sp.split_ops,
            "peak_bytes_in_order": sp.peak_in_order,
            "peak_bytes_w_after_b": sp.peak_w_after_b,
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

/// Up to `max` values of `g`, largest first, one line each; then how many more.
fn value_lines(s: &mut String, g: &Graph, mut values: Vec<ValueId>, max: usize) {
    values.sort_by_key(|&v| std::cmp::Reverse(g.ty(v).size_bytes()));
    for &v in values.iter().take(max) {
        let _ = writeln!(
            s,
            "  {:<40} {:<20} {}",
            value_label(g, v),
            g.ty(v).to_string(),
            g.ty(v).size_bytes()
        );
    }
    if values.len() > max {
        let _ = writeln!(s, "  ... and {} more", values.len() - max);
    }
}

fn text_report(p: &Plan, policy: Policy, loss: &str) -> String {
    let mut s = String::new();
    let g = &p.graph;
    let params: usize = g.outputs()[1..]
        .iter()
        .map(|o| g.ty(o.value).shape.numel())
        .sum();
    let _ = writeln!(
        s,
        "training graph: loss {loss}, {} gradient(s) ({params} elements), {} forward + {} backward nodes",
        p.gradients, p.forward_nodes, p.backward_nodes
    );
    for n in &p.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    let fwd = p.forward_flops.max(1) as f64;
    let _ = writeln!(
        s,
        "checkpoint {}: peak {} (store-all {}), saved {} tensor(s) = {}",
        policy.name(),
        mib(p.peak),
        mib(p.store_all_peak),
        p.saved_tensors,
        mib(p.saved_bytes)
    );
    let _ = writeln!(
        s,
        "  recompute: {} node(s), {} FLOPs = {:.3} forward passes; forward {} FLOPs, backward {} FLOPs",
        p.recompute_nodes,
        p.recompute_flops,
        p.recompute_flops as f64 / fwd,
        p.forward_flops,
        p.backward_flops
    );
    let _ = writeln!(
        s,
        "  memory planner arena for this schedule: {} (peak of live bytes {})",
        mib(p.arena_bytes),
        mib(p.peak)
    );
    let _ = writeln!(
        s,
        "  resident (parameters, inputs): {}; outputs (loss, gradients): {}",
        mib(p.resident_bytes),
        mib(p.output_bytes)
    );
    // The final graph in program order: the checkpointed schedule, or B then W.
    let order = Schedule::program_order(g);
    let memory = profile(g, &order);
    let at = order.steps.get(memory.peak_step).map(|st| st.node);
    let live: Vec<ValueId> = memory
        .live_at_peak
        .iter()
        .map(|&i| order.instances[i].value)
        .collect();
    let _ = writeln!(
        s,
        "live at the peak (step {}{}), largest first:",
        memory.peak_step,
        at.map_or(String::new(), |n| format!(", {}", g.node_ref(n)))
    );
    value_lines(&mut s, g, live, 6);
    let _ = writeln!(s, "saved tensors (largest first):");
    value_lines(&mut s, g, train::saved_values(g, p.boundary), 12);
    if let Some(sp) = &p.split {
        let _ = writeln!(
            s,
            "two-stage: B {} node(s) {} FLOPs (B/F {:.3}), W {} node(s) {} FLOPs (W/F {:.3}), {} op(s) split",
            sp.b_nodes,
            sp.b_flops,
            sp.b_flops as f64 / fwd,
            sp.w_nodes,
            sp.w_flops,
            sp.w_flops as f64 / fwd,
            sp.split_ops
        );
        let _ = writeln!(
            s,
            "  B->W stash: {} tensor(s) = {}; peak {} in program order, {} with W after B",
            sp.stash_tensors,
            mib(sp.stash_bytes),
            mib(sp.peak_in_order),
            mib(sp.peak_w_after_b)
        );
        if sp.input_grads == 0 {
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
