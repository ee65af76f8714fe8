//! The e-graph optimizer: equality saturation over the graph, then DAG-aware extraction
//! under a cost model.
//!
//! 1. [`convert::lower`] puts the graph into an e-graph ([`lang`], with the [`analysis`]
//!    giving every e-class its type and, for constants, its value).
//! 2. Three bounded phases of rewriting with egg's `Runner`: the single-pattern rules
//!    (algebra, layout, fusion) until saturation or a limit; the merge rules, once; the
//!    single-pattern rules again, briefly, to clean up after the merges. Iteration, node
//!    and time limits are always set.
//! 3. Extraction ([`extract`]): the sharing-aware greedy extractor, the exact ILP on small
//!    e-graphs, and the input itself; the cheapest acyclic one wins.
//! 4. [`convert::raise`] rebuilds a graph, which is verified and priced again on the IR.
//!    If it is not cheaper than the input (or fewer nodes at equal cost), the input is
//!    kept: the modeled cost never goes up.
//!
//! Runs are deterministic (egg's `deterministic` feature, ordered extraction and
//! placement): the same input prints the same output, byte for byte, unless a time limit
//! is hit.

pub mod analysis;
pub mod convert;
pub mod extract;
pub mod lang;
pub mod rules;

use std::collections::BTreeMap;
use std::time::Duration;

use egg::{BackoffScheduler, Runner, StopReason};
use tessera_ir::{Evaluator, Graph, verify};

use crate::cost::{CostModel, DeviceProfile, Roofline, graph_cost, kernel_count};
use crate::{EGraphStats, Pass, PassContext, PassError, PassReport};
use analysis::{TGraph, TensorAnalysis};
use extract::{ExGraph, IlpOutcome, IlpSettings};

/// Which extractor the pass uses.
#[derive(Clone, Debug, PartialEq)]
pub enum Extraction {
    /// Greedy DAG, plus the ILP when the pruned e-graph has at most
    /// [`IlpSettings::max_classes`] classes.
    Auto,
    /// Greedy DAG only.
    Greedy,
    /// The ILP whatever the e-graph's size (within its time limit), and greedy DAG; the
    /// cheaper wins.
    Ilp,
}

/// Settings of the e-graph pass.
#[derive(Clone, Debug, PartialEq)]
pub struct EGraphConfig {
    /// Iterations of the main rewrite phase.
    pub iter_limit: usize,
    /// E-nodes at which a phase stops (checked between iterations).
    pub node_limit: usize,
    /// Wall time at which a phase stops (a safety net; tests never rely on it).
    pub time_limit: Duration,
    /// Run the horizontal-merge phase.
    pub merge: bool,
    /// Iterations of the clean-up phase after merging.
    pub cleanup_iter_limit: usize,
    pub extraction: Extraction,
    pub ilp: IlpSettings,
    /// Largest constant (elements) folding may produce.
    pub fold_limit: usize,
    /// Elements folding may produce in one run.
    pub fold_budget: usize,
    /// Only these rules (by name) when set; all otherwise.
    pub only_rules: Option<Vec<String>>,
}

impl Default for EGraphConfig {
    fn default() -> Self {
        EGraphConfig {
            iter_limit: 16,
            node_limit: 50_000,
            time_limit: Duration::from_secs(10),
            merge: true,
            cleanup_iter_limit: 4,
            extraction: Extraction::Auto,
            ilp: IlpSettings::default(),
            fold_limit: 1 << 22,
            fold_budget: 1 << 26,
            only_rules: None,
        }
    }
}

/// What one run of the optimizer did.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub stats: EGraphStats,
    /// Deterministic facts for the pass report.
    pub notes: Vec<String>,
    /// Times each rule changed the e-graph, by name.
    pub applied: BTreeMap<String, usize>,
    /// True if the extracted graph replaced the input.
    pub accepted: bool,
}

/// The e-graph optimizer as a pass (`egraph` in the registry).
#[derive(Clone, Debug, Default)]
pub struct EGraphOptimizer {
    pub config: EGraphConfig,
}

impl Pass for EGraphOptimizer {
    fn name(&self) -> &'static str {
        "egraph"
    }

    fn description(&self) -> &'static str {
        "equality saturation (algebra, layout, fusion, merge rules), DAG-aware extraction under a roofline cost model"
    }

    fn run(&self, g: &mut Graph, cx: &PassContext) -> Result<PassReport, PassError> {
        let (out, mut outcome) = optimize(g, cx, &self.config)?;
        let changed = outcome.accepted && out != *g;
        let (before, after) = (fused_ops(g), fused_ops(&out));
        let counts: Vec<String> = FUSED_OPS
            .iter()
            .zip(before.iter().zip(&after))
            .filter(|(_, (b, a))| **b + **a > 0)
            .map(|(name, (b, a))| format!("{name} {b} -> {a}"))
            .collect();
        if !counts.is_empty() {
            outcome
                .notes
                .push(format!("fused ops: {}", counts.join(", ")));
        }
        *g = out;
        Ok(PassReport {
            changed,
            egraph: Some(outcome.stats),
            notes: outcome.notes,
            metrics: FUSED_OPS
                .iter()
                .copied()
                .zip(after.iter().map(|&n| n as u64))
                .collect(),
            ..PassReport::default()
        })
    }
}

/// The fused ops the compile report counts (by their text-form names), in this order.
pub const FUSED_OPS: [&str; 6] = [
    "attention",
    "rms_norm",
    "layer_norm",
    "gelu",
    "softmax",
    "gemm",
];

/// How many nodes of each of [`FUSED_OPS`] `g` has.
pub fn fused_ops(g: &Graph) -> [usize; 6] {
    let mut n = [0usize; 6];
    for (_, node) in g.nodes() {
        if let Some(i) = FUSED_OPS.iter().position(|&k| k == node.op.name()) {
            n[i] += 1;
        }
    }
    n
}

/// The pass only accepts graphs that verify (its conversion relies on program order).
fn check_input(g: &Graph) -> Result<(), PassError> {
    verify(g).map_err(|e| fail(format!("the input graph does not verify: {e}")))
}

fn fail(message: impl Into<String>) -> PassError {
    PassError::Failed {
        pass: "egraph",
        message: message.into(),
    }
}

fn rules_for<'a>(all: Vec<rules::Rule<'a>>, only: &Option<Vec<String>>) -> Vec<rules::Rule<'a>> {
    match only {
        None => all,
        Some(names) => all
            .into_iter()
            .filter(|r| names.iter().any(|n| n == r.name.as_str()))
            .collect(),
    }
}

/// One rewrite phase: returns the e-graph, iterations run and the stop reason.
fn phase<'a>(
    egraph: TGraph<'a>,
    rules: &[rules::Rule<'a>],
    iter_limit: usize,
    config: &EGraphConfig,
    applied: &mut BTreeMap<String, usize>,
) -> (TGraph<'a>, usize, Option<StopReason>) {
    if rules.is_empty() || iter_limit == 0 {
        return (egraph, 0, None);
    }
    let runner = Runner::<lang::TNode, TensorAnalysis<'a>, ()>::new(TensorAnalysis::new(
        Vec::new(),
        None,
        0,
        0,
    ))
    .with_egraph(egraph)
    .with_iter_limit(iter_limit)
    .with_node_limit(config.node_limit)
    .with_time_limit(config.time_limit)
    .with_scheduler(BackoffScheduler::default())
    .run(rules);
    for it in &runner.iterations {
        for (name, n) in &it.applied {
            *applied.entry(name.to_string()).or_default() += n;
        }
    }
    let n = runner.iterations.len();
    (runner.egraph, n, runner.stop_reason)
}

fn describe(stop: &Option<StopReason>) -> String {
    match stop {
        None => "skipped".to_string(),
        Some(StopReason::TimeLimit(_)) => "TimeLimit".to_string(),
        Some(s) => format!("{s:?}"),
    }
}

/// Rewrites `g` to saturation (within limits) and extracts the cheapest equivalent graph.
/// Returns `g` itself (and `accepted: false`) when no cheaper graph is found or the op set
/// is not supported.
pub fn optimize(
    g: &Graph,
    cx: &PassContext,
    config: &EGraphConfig,
) -> Result<(Graph, Outcome), PassError> {
    check_input(g)?;
    let evaluator = cx.evaluator;
    let model = Roofline::new(cx.device.clone());
    let cost_before = graph_cost(&model, g);
    let mut outcome = Outcome {
        stats: EGraphStats {
            cost_before,
            cost_after: cost_before,
            cost_model: model.name(),
            ..EGraphStats::default()
        },
        notes: Vec::new(),
        applied: BTreeMap::new(),
        accepted: false,
    };
    let inputs = g.inputs().iter().map(|p| g.ty(p.value).clone()).collect();
    let analysis = TensorAnalysis::new(inputs, evaluator, config.fold_limit, config.fold_budget);
    let lowered = match convert::lower(g, analysis) {
        Ok(l) => l,
        Err(e) => {
            outcome.notes.push(format!("kept the input: {e}"));
            outcome.stats.stop_reason = "unsupported".into();
            return Ok((g.clone(), outcome));
        }
    };
    let single = rules_for(rules::single_rules(), &config.only_rules);
    let merges = if config.merge {
        rules_for(rules::merge_rules(), &config.only_rules)
    } else {
        Vec::new()
    };
    let mut applied = BTreeMap::new();
    let (egraph, n1, stop1) = phase(
        lowered.egraph,
        &single,
        config.iter_limit,
        config,
        &mut applied,
    );
    let (egraph, n2, stop2) = phase(egraph, &merges, 1, config, &mut applied);
    let cleanup = if n2 > 0 { config.cleanup_iter_limit } else { 0 };
    let (egraph, n3, stop3) = phase(egraph, &single, cleanup, config, &mut applied);
    applied.retain(|_, n| *n > 0);

    outcome.stats.iterations = n1 + n2 + n3;
    outcome.stats.enodes = egraph.total_number_of_nodes();
    outcome.stats.eclasses = egraph.number_of_classes();
    outcome.stats.stop_reason = describe(&stop1);
    outcome.notes.push(format!(
        "phases: rewrite {} after {n1}, merge {} after {n2}, cleanup {} after {n3}",
        describe(&stop1),
        describe(&stop2),
        describe(&stop3)
    ));
    if !applied.is_empty() {
        let list: Vec<String> = applied.iter().map(|(k, v)| format!("{k} x{v}")).collect();
        outcome.notes.push(format!("rules: {}", list.join(", ")));
    }
    outcome.applied = applied;

    let (extracted, how) = extract_best(&egraph, &lowered.roots, &lowered.origins, &model, config)?;
    outcome.notes.push(format!("extractor: {how}"));
    let out = convert::raise(&egraph, &extracted, &lowered.roots, g, &lowered.origins)
        .map_err(|e| fail(e.to_string()))?;
    if let Err(e) = verify(&out) {
        outcome.notes.push(format!(
            "kept the input: the extracted graph does not verify: {e}"
        ));
        return Ok((g.clone(), outcome));
    }
    let cost_after = graph_cost(&model, &out);
    let cheaper = cost_after < cost_before * (1.0 - 1e-9);
    let smaller = cost_after <= cost_before * (1.0 + 1e-9) && out.num_nodes() < g.num_nodes();
    if cheaper || smaller {
        outcome.accepted = true;
        outcome.stats.cost_after = cost_after;
        outcome.notes.push(format!(
            "kernels: {} -> {}",
            kernel_count(g),
            kernel_count(&out)
        ));
        Ok((out, outcome))
    } else {
        outcome.notes.push(format!(
            "kept the input: extracted cost {cost_after:.4e} s is not below {cost_before:.4e} s"
        ));
        Ok((g.clone(), outcome))
    }
}

/// The cheapest acyclic extraction among greedy DAG, ILP (per config) and the input's
/// own choice, with a description of how it was found.
fn extract_best(
    egraph: &TGraph<'_>,
    roots: &[egg::Id],
    origins: &[convert::Origin],
    model: &dyn CostModel,
    config: &EGraphConfig,
) -> Result<(std::collections::HashMap<egg::Id, lang::TNode>, String), PassError> {
    let ex = ExGraph::new(egraph, roots, model);
    let rank = convert::origin_rank(egraph, origins);
    let original = extract::original(&ex, &rank)
        .ok_or_else(|| fail("the input graph is not extractable from its own e-graph"))?;
    let mut candidates: Vec<(&str, extract::Choice)> = Vec::new();
    let greedy = extract::greedy_dag(&ex).map(|c| extract::adopt_tuples(&ex, c));
    let mut ilp_note = String::new();
    if config.extraction != Extraction::Greedy {
        let incumbent = greedy.clone().unwrap_or_else(|| original.clone());
        let settings = match config.extraction {
            Extraction::Ilp => IlpSettings {
                max_classes: usize::MAX,
                ..config.ilp.clone()
            },
            _ => config.ilp.clone(),
        };
        let (sol, how) = extract::ilp(&ex, &incumbent, &settings);
        ilp_note = match &how {
            IlpOutcome::Solved { classes, rounds } => {
                format!("ilp solved ({classes} classes, {rounds} rounds)")
            }
            IlpOutcome::TooLarge { classes } => format!("ilp skipped ({classes} classes)"),
            IlpOutcome::NotSolved(why) => format!("ilp gave no answer ({why})"),
        };
        if let Some(s) = sol {
            candidates.push(("ilp", s));
        }
    }
    if let Some(gr) = greedy {
        candidates.push(("greedy-dag", gr));
    }
    candidates.push(("input", original));
    let mut best: Option<(f64, &str, &extract::Choice)> = None;
    for (name, c) in &candidates {
        if let Some(cost) = ex.dag_cost(c)
            && best.is_none_or(|(b, _, _)| cost < b * (1.0 - 1e-12))
        {
            best = Some((cost, name, c));
        }
    }
    let (_, name, choice) = best.ok_or_else(|| fail("no acyclic extraction"))?;
    let how = if ilp_note.is_empty() {
        name.to_string()
    } else {
        format!("{name}; {ilp_note}")
    };
    Ok((ex.chosen_nodes(choice), how))
}

/// Result of [`apply_rules`].
#[derive(Clone, Debug)]
pub struct RuleApplication {
    /// The graph with the rules' right sides chosen wherever they apply.
    pub graph: Graph,
    /// Times each rule changed the e-graph.
    pub applied: BTreeMap<String, usize>,
}

/// Applies only the named rules (for `iterations` iterations; merge rules in their own
/// phase) and extracts the graph that prefers rewritten e-nodes over the input's: used to
/// test a rule's two sides against each other.
pub fn apply_rules(
    g: &Graph,
    evaluator: Option<&dyn Evaluator>,
    names: &[&str],
    iterations: usize,
) -> Result<RuleApplication, PassError> {
    let config = EGraphConfig {
        only_rules: Some(names.iter().map(|s| s.to_string()).collect()),
        ..EGraphConfig::default()
    };
    check_input(g)?;
    let inputs = g.inputs().iter().map(|p| g.ty(p.value).clone()).collect();
    let analysis = TensorAnalysis::new(inputs, evaluator, config.fold_limit, config.fold_budget);
    let lowered = convert::lower(g, analysis).map_err(|e| fail(e.to_string()))?;
    let single = rules_for(rules::single_rules(), &config.only_rules);
    let merges = rules_for(rules::merge_rules(), &config.only_rules);
    let mut applied = BTreeMap::new();
    let (egraph, _, _) = phase(lowered.egraph, &single, iterations, &config, &mut applied);
    let (egraph, _, _) = phase(egraph, &merges, 1, &config, &mut applied);
    applied.retain(|_, n| *n > 0);
    // Rule tests check the rewrite, not the price: any fixed profile does.
    let model = Roofline::new(DeviceProfile::h200());
    let mut ex = ExGraph::new(&egraph, &lowered.roots, &model);
    let rank = convert::origin_rank(&egraph, &lowered.origins);
    for class in &mut ex.classes {
        for n in &mut class.nodes {
            if matches!(n.node, lang::TNode::Op(..)) && rank.contains_key(&n.node) {
                n.cost += 1.0;
            }
        }
    }
    let choice = extract::greedy_dag(&ex).ok_or_else(|| fail("no acyclic extraction"))?;
    let graph = convert::raise(
        &egraph,
        &ex.chosen_nodes(&choice),
        &lowered.roots,
        g,
        &lowered.origins,
    )
    .map_err(|e| fail(e.to_string()))?;
    verify(&graph).map_err(|error| PassError::Invalid {
        pass: "egraph",
        error,
    })?;
    Ok(RuleApplication { graph, applied })
}

/// `g` through the e-graph and back with no rule and no folding: the input's own
/// extraction. Equals `g` without dead nodes and with structurally identical nodes merged.
pub fn round_trip(g: &Graph) -> Result<Graph, PassError> {
    check_input(g)?;
    let inputs = g.inputs().iter().map(|p| g.ty(p.value).clone()).collect();
    let lowered = convert::lower(g, TensorAnalysis::new(inputs, None, 0, 0))
        .map_err(|e| fail(e.to_string()))?;
    let model = Roofline::new(DeviceProfile::h200());
    let ex = ExGraph::new(&lowered.egraph, &lowered.roots, &model);
    let rank = convert::origin_rank(&lowered.egraph, &lowered.origins);
    let choice = extract::original(&ex, &rank)
        .ok_or_else(|| fail("the input graph is not extractable from its own e-graph"))?;
    convert::raise(
        &lowered.egraph,
        &ex.chosen_nodes(&choice),
        &lowered.roots,
        g,
        &lowered.origins,
    )
    .map_err(|e| fail(e.to_string()))
}
