//! The pass interface, the registry and the pipeline runner.

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use tessera_ir::{Evaluator, Graph, IrError, NodeRef, verify};

use crate::cost::DeviceProfile;

/// Statistics of an e-graph run, for passes that use one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EGraphStats {
    pub iterations: usize,
    pub enodes: usize,
    pub eclasses: usize,
    /// egg's `StopReason`, rendered (`Saturated`, `IterationLimit(30)`, ...).
    pub stop_reason: String,
    /// Modeled cost of the input and of the extracted graph.
    pub cost_before: f64,
    pub cost_after: f64,
    /// The cost model that priced them (`roofline/cpu`, `roofline/h200`).
    pub cost_model: String,
}

/// What one pass did: plain data, printed in snapshots and by `tessera compile`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassReport {
    pub pass: &'static str,
    pub changed: bool,
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub egraph: Option<EGraphStats>,
    /// Wall time. Excluded from snapshots: it is not deterministic.
    pub time: Duration,
    /// Free-form facts worth reporting (counts of rewrites applied, ...).
    pub notes: Vec<String>,
    /// Named quantities a caller may read back (`peak_bytes`, `recompute_flops`, ...):
    /// plain data, deterministic, so reports built on them can be snapshotted.
    pub metrics: BTreeMap<&'static str, u64>,
}

/// Everything a pass may use besides the graph.
pub struct PassContext<'a> {
    /// Evaluates ops on constants (the reference interpreter), for constant folding.
    pub evaluator: Option<&'a dyn Evaluator>,
    /// The device every cost-driven pass prices rewrites for: the device the graph is
    /// being compiled for.
    pub device: DeviceProfile,
}

impl<'a> PassContext<'a> {
    /// A context pricing for `device`, with no evaluator (no constant folding).
    pub fn new(device: DeviceProfile) -> PassContext<'a> {
        PassContext {
            evaluator: None,
            device,
        }
    }

    /// The same context, folding constants with `evaluator`.
    pub fn with_evaluator(self, evaluator: &'a dyn Evaluator) -> PassContext<'a> {
        PassContext {
            evaluator: Some(evaluator),
            ..self
        }
    }
}

/// Why a pass or pipeline failed.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("pass {pass}: {message}")]
    Failed { pass: &'static str, message: String },

    /// A pass could not handle one node; names our node id, its source name and op.
    #[error("pass {pass}: {node}: {message}")]
    Node {
        pass: &'static str,
        node: NodeRef,
        message: String,
    },

    #[error("pass {pass} left an invalid graph: {error}")]
    Invalid { pass: &'static str, error: IrError },

    #[error("unknown pass {0:?}")]
    UnknownPass(String),

    #[error("unknown pipeline {0:?}")]
    UnknownPipeline(String),
}

/// A graph-to-graph transformation.
pub trait Pass {
    /// The registry name (`dce`, `egraph-simplify`, ...).
    fn name(&self) -> &'static str;
    /// One line saying what the pass does.
    fn description(&self) -> &'static str;
    /// Transforms `g` in place (or replaces it) and reports what it did. The runner fills
    /// in `pass`, node counts and time; the pass sets `changed` and any stats.
    fn run(&self, g: &mut Graph, cx: &PassContext) -> Result<PassReport, PassError>;
}

/// Every pass, once.
pub fn registry() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(crate::DeadCodeElimination),
        Box::new(crate::EGraphOptimizer::default()),
        Box::new(crate::train::Autodiff::default()),
        Box::new(crate::train::Checkpoint::default()),
        Box::new(crate::train::TwoStage::default()),
    ]
}

/// The named pipelines and their passes.
pub const PIPELINES: [(&str, &[&str]); 3] = [
    ("none", &[]),
    ("default", &["dce", "egraph", "dce"]),
    ("train", &["autodiff", "checkpoint", "two-stage"]),
];

/// The passes of a pipeline, in order: a named pipeline ([`PIPELINES`]), or registry pass
/// names separated by commas (`dce,egraph`, `autodiff,checkpoint`; one name alone is a
/// one-pass pipeline).
pub fn pipeline(name: &str) -> Result<Vec<Box<dyn Pass>>, PassError> {
    let listed: Vec<&str>;
    let names: &[&str] = match PIPELINES.iter().find(|(n, _)| *n == name) {
        Some((_, passes)) => passes,
        None => {
            listed = name.split(',').map(str::trim).collect();
            let known = registry();
            if listed
                .iter()
                .any(|n| n.is_empty() || !known.iter().any(|p| p.name() == *n))
            {
                return Err(PassError::UnknownPipeline(name.to_string()));
            }
            &listed
        }
    };
    // A fresh registry per entry: a pipeline may list a pass more than once.
    names
        .iter()
        .map(|n| {
            registry()
                .into_iter()
                .find(|p| p.name() == *n)
                .ok_or_else(|| PassError::UnknownPass(n.to_string()))
        })
        .collect()
}

/// Runs `passes` in order on a copy of `g`, verifying after each; stops after the first
/// `stop_after` passes when given. Returns the final graph and one report per pass run.
pub fn run_pipeline(
    g: &Graph,
    passes: &[Box<dyn Pass>],
    cx: &PassContext,
    stop_after: Option<usize>,
) -> Result<(Graph, Vec<PassReport>), PassError> {
    let mut g = g.clone();
    let mut reports = Vec::new();
    for p in passes.iter().take(stop_after.unwrap_or(usize::MAX)) {
        let before = g.num_nodes();
        let start = Instant::now();
        let mut r = p.run(&mut g, cx)?;
        r.time = start.elapsed();
        verify(&g).map_err(|error| PassError::Invalid {
            pass: p.name(),
            error,
        })?;
        r.pass = p.name();
        r.nodes_before = before;
        r.nodes_after = g.num_nodes();
        reports.push(r);
    }
    Ok((g, reports))
}
