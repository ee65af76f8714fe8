//! The training transforms as registry passes. Each reports its figures as metrics named
//! in [`super::metric`].

use std::collections::BTreeMap;

use tessera_ir::Graph;

use super::checkpoint::{Policy, plan};
use super::metric;
use super::schedule::{Schedule, arena, profile, value_bytes};
use super::spec::{Loss, TrainSpec};
use super::split::{partition, peak_cost, reorder};
use super::{autodiff, backward_region};
use crate::{Pass, PassContext, PassError, PassReport};

fn count(n: usize) -> u64 {
    n as u64
}

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
        let saved_bytes: u64 = saved.iter().map(|&v| value_bytes(&t.graph, v)).sum();
        let backward_nodes = t.graph.num_nodes() - t.boundary;
        let peak = profile(&t.graph, &Schedule::program_order(&t.graph)).peak_bytes;
        let mut notes = vec![
            format!(
                "loss {}: {} gradient(s), {} forward node(s), {backward_nodes} backward node(s)",
                self.spec.loss,
                t.grads.len(),
                t.boundary,
            ),
            format!(
                "{} tensor(s) saved for backward, {saved_bytes} bytes",
                saved.len()
            ),
        ];
        let metrics = BTreeMap::from([
            (metric::GRADIENTS, count(t.grads.len())),
            (metric::FORWARD_NODES, count(t.boundary)),
            (metric::BACKWARD_NODES, count(backward_nodes)),
            (metric::SAVED_TENSORS, count(saved.len())),
            (metric::SAVED_BYTES, saved_bytes),
            (metric::PEAK_BYTES, peak),
            (metric::DIAGNOSTICS, count(t.notes.len())),
        ]);
        notes.extend(t.notes);
        *g = t.graph;
        Ok(PassReport {
            changed: true,
            notes,
            metrics,
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
        let metrics = BTreeMap::from([
            (metric::PEAK_BYTES_BEFORE, before),
            (metric::PEAK_BYTES, p.memory.peak_bytes),
            (metric::SAVED_TENSORS, count(p.saved.len())),
            (metric::SAVED_BYTES, p.saved_bytes),
            (metric::RESIDENT_BYTES, p.memory.resident_bytes),
            (metric::OUTPUT_BYTES, p.memory.output_bytes),
            (metric::ARENA_BYTES, count(arena(g, &p.schedule).peak_bytes)),
            (metric::RECOMPUTE_NODES, count(p.recompute_nodes)),
            (metric::RECOMPUTE_FLOPS, p.recompute_flops),
            (metric::FORWARD_FLOPS, p.forward_flops),
            (metric::BACKWARD_FLOPS, p.backward_flops),
        ]);
        let changed = p.recompute_nodes > 0;
        *g = p.schedule.to_graph(g);
        Ok(PassReport {
            changed,
            notes,
            metrics,
            ..PassReport::default()
        })
    }
}

/// Partitions the backward region into B (input gradients) and W (weight gradients) and,
/// when `reorder` is set, reorders it B then W; see [`super::split`]. Without `reorder`
/// it only reports the partition (the costs a pipeline simulation needs) and leaves the
/// graph as it is. The registry instance reorders.
pub struct TwoStage {
    pub reorder: bool,
}

impl Default for TwoStage {
    fn default() -> Self {
        TwoStage { reorder: true }
    }
}

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
        if !self.reorder {
            notes.push("partition only: the graph keeps its order".into());
        }
        let metrics = BTreeMap::from([
            (metric::B_NODES, count(p.b.len())),
            (metric::W_NODES, count(p.w.len())),
            (metric::B_FLOPS, p.b_flops),
            (metric::W_FLOPS, p.w_flops),
            (metric::FORWARD_FLOPS, p.forward_flops),
            (metric::STASH_TENSORS, count(p.stash.len())),
            (metric::STASH_BYTES, p.stash_bytes),
            (metric::SPLIT_OPS, count(p.split_ops.len())),
            (metric::INPUT_GRADS, count(p.input_grads)),
            (metric::PEAK_BYTES_IN_ORDER, before),
            (metric::PEAK_BYTES_W_AFTER_B, after),
        ]);
        let mut changed = false;
        if self.reorder {
            let out = reorder(g, &p);
            changed = out != *g;
            *g = out;
        }
        Ok(PassReport {
            changed,
            notes,
            metrics,
            ..PassReport::default()
        })
    }
}
