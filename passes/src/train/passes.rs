//! The training transforms as registry passes.

use tessera_ir::Graph;

use super::checkpoint::{Policy, plan};
use super::schedule::{Schedule, profile};
use super::spec::{Loss, TrainSpec};
use super::split::{partition, peak_cost, reorder};
use super::{autodiff, backward_region};
use crate::{Pass, PassContext, PassError, PassReport};

/// Forward graph → training graph (loss, gradients); see [`super::autodiff()`]. The
/// registry instance differentiates `Σ` of the first float output with respect to every
/// float constant.
pub struct Autodiff {
    pub spec: TrainSpec,
}

impl Default for Autodiff {
    fn default() -> Self {
        Autodiff {
            spec: TrainSpec::new(Loss::Sum),
        }
    }
}

impl Pass for Autodiff {
    fn name(&self) -> &'static str {
        "autodiff"
    }

    fn description(&self) -> &'static str {
        "reverse-mode autodiff: append a loss and the backward pass computing its gradients"
    }

    fn run(&self, g: &mut Graph, _: &PassContext) -> Result<PassReport, PassError> {
        let t = autodiff(g, &self.spec)?;
        let saved = super::saved_values(&t.graph, t.boundary);
        let saved_bytes: u64 = saved
            .iter()
            .map(|&v| super::schedule::value_bytes(&t.graph, v))
            .sum();
        let mut notes = vec![
            format!(
                "loss {}: {} gradient(s), {} forward node(s), {} backward node(s)",
                self.spec.loss,
                t.grads.len(),
                t.boundary,
                t.graph.num_nodes() - t.boundary
            ),
            format!(
                "{} tensor(s) saved for backward, {saved_bytes} bytes",
                saved.len()
            ),
        ];
        notes.extend(t.notes);
        *g = t.graph;
        Ok(PassReport {
            changed: true,
            notes,
            ..PassReport::default()
        })
    }
}

/// Recomputes forward values in the backward region instead of keeping them, by a
/// [`Policy`]; see [`super::checkpoint`]. The registry instance uses √n segments.
pub struct Checkpoint {
    pub policy: Policy,
}

impl Default for Checkpoint {
    fn default() -> Self {
        Checkpoint {
            policy: Policy::Sqrt,
        }
    }
}

impl Pass for Checkpoint {
    fn name(&self) -> &'static str {
        "checkpoint"
    }

    fn description(&self) -> &'static str {
        "sublinear-memory checkpointing of a training graph (store-all, sqrt, budget, min-cut)"
    }

    fn run(&self, g: &mut Graph, _: &PassContext) -> Result<PassReport, PassError> {
        let boundary = backward_region(g, "checkpoint")?;
        let before = profile(g, &Schedule::program_order(g)).peak_bytes;
        let p = plan(g, boundary, self.policy)?;
        let notes = vec![
            format!(
                "{}: peak {before} -> {} bytes, {} saved tensor(s) ({} bytes)",
                self.policy.name(),
                p.memory.peak_bytes,
                p.saved.len(),
                p.saved_bytes
            ),
            format!(
                "recompute {} node(s), {} FLOPs ({:.3} of a forward pass)",
                p.recompute_nodes,
                p.recompute_flops,
                p.recompute_flops as f64 / p.forward_flops.max(1) as f64
            ),
        ];
        let changed = p.recompute_nodes > 0;
        *g = p.schedule.to_graph(g);
        Ok(PassReport {
            changed,
            notes,
            ..PassReport::default()
        })
    }
}

/// Reorders the backward region into B (input gradients) then W (weight gradients); see
/// [`super::split`].
#[derive(Default)]
pub struct TwoStage;

impl Pass for TwoStage {
    fn name(&self) -> &'static str {
        "two-stage"
    }

    fn description(&self) -> &'static str {
        "two-stage backprop: input-gradient nodes (B) first, weight-gradient nodes (W) after"
    }

    fn run(&self, g: &mut Graph, _: &PassContext) -> Result<PassReport, PassError> {
        let boundary = backward_region(g, "two-stage")?;
        let p = partition(g, boundary);
        let (before, after) = peak_cost(g, &p);
        let mut notes = vec![
            format!(
                "B: {} node(s), {} FLOPs; W: {} node(s), {} FLOPs; {} op(s) split",
                p.b.len(),
                p.b_flops,
                p.w.len(),
                p.w_flops,
                p.split_ops.len()
            ),
            format!(
                "B->W stash: {} tensor(s), {} bytes; peak {before} -> {after} bytes",
                p.stash.len(),
                p.stash_bytes
            ),
        ];
        if p.input_grads == 0 {
            notes.push("no input gradients requested: B is empty, every backward node is W".into());
        }
        let out = reorder(g, &p);
        let changed = out != *g;
        *g = out;
        Ok(PassReport {
            changed,
            notes,
            ..PassReport::default()
        })
    }
}
