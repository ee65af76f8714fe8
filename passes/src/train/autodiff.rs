//! Reverse-mode automatic differentiation over the IR.
//!
//! [`autodiff`] turns a forward graph into a *training graph*: the forward nodes, the
//! loss, then the backward nodes, all ordinary IR. Its layout is a contract the other
//! training passes rely on:
//!
//! * Output 0 is the scalar `loss`; then one output per parameter, `grad:<name>`, then one
//!   per requested input gradient, `input_grad:<name>`, each of the differentiated value's
//!   type.
//! * Program order is forward nodes, loss nodes, the seed (a scalar constant 1 named
//!   [`SEED_NAME`]), then backward nodes. Everything from the seed on is the *backward
//!   region*; a forward value read there is *saved for backward* (see
//!   [`super::saved_values`]). Checkpointing inserts recomputation into the backward
//!   region; the two-stage split reorders it.
//! * Backward nodes are named `grad:<forward node name>` after the node whose rule emitted
//!   them (`grad:n7` for unnamed nodes), loss nodes `loss:<kind>`.
//!
//! The walk: values that need a gradient are those both reachable from a parameter or a
//! requested input through differentiable float ops and contributing to the loss. Nodes
//! are visited in reverse program order; each node's output gradients are complete by
//! then (all its users come later) and are summed eagerly as contributions arrive, so a
//! fan-out value holds one running gradient rather than one per user.

use std::collections::HashMap;

use tessera_ir::{Graph, NodeRef, Op, Shape, Tensor, ValueId};

use super::emit::Emitter;
use super::loss::build_loss;
use super::rules;
use super::spec::{ParamSelection, TrainSpec, glob_match};
use crate::PassError;

/// Name of the seed node, `dloss/dloss = 1`, the first node of the backward region.
pub const SEED_NAME: &str = "grad:seed";

const PASS: &str = "autodiff";

/// Whether a gradient output is for a parameter or a requested input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradKind {
    Param,
    Input,
}

/// One gradient output of a training graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradient {
    /// The parameter's or input's name (constant node name, graph input name or node name).
    pub name: String,
    pub kind: GradKind,
    /// The differentiated value; `None` when it does not affect the loss (its gradient is
    /// zero and pruning removed it).
    pub value: Option<ValueId>,
    /// The gradient value (also graph output `output`).
    pub grad: ValueId,
    pub output: usize,
}

/// A training graph with the facts about it the builder knows.
#[derive(Clone, Debug)]
pub struct TrainGraph {
    pub graph: Graph,
    pub loss: ValueId,
    pub grads: Vec<Gradient>,
    /// Index of the seed node: nodes before it are the forward pass (and loss).
    pub boundary: usize,
    /// Things worth telling the user (parameters that do not affect the loss, ...).
    pub notes: Vec<String>,
}

fn failed(message: impl Into<String>) -> PassError {
    PassError::Failed {
        pass: PASS,
        message: message.into(),
    }
}

/// Builds the training graph of `g` for `spec`. See the module documentation.
pub fn autodiff(g: &Graph, spec: &TrainSpec) -> Result<TrainGraph, PassError> {
    let y = pick_output(g, spec)?;
    // Keep only what the chosen output depends on (other model outputs are not trained).
    let mut keep = g.clone();
    keep.outputs_mut().clear();
    keep.add_output("y", y);
    let (mut t, map) = super::prune(&keep);
    t.outputs_mut().clear();
    let y = map[y.index()].ok_or_else(|| failed("invariant: the output survives pruning"))?;

    let mut notes = Vec::new();
    let params = resolve_params(g, &map, &spec.params, &mut notes)?;
    let inputs = resolve_inputs(&t, &spec.input_grads)?;
    if params.is_empty() && inputs.is_empty() {
        return Err(failed(
            "nothing to differentiate: no parameter or requested input affects the loss",
        ));
    }
    let loss = build_loss(&mut t, spec.loss, y)?;

    let need = needs_gradient(&t, params.iter().chain(&inputs).map(|&(_, v)| v), loss);
    let grad = backward(&mut t, loss, &need)?;
    let mut grads = add_outputs(&mut t, loss, &grad, &params, &inputs, &mut notes)?;

    // Drop anything the outputs do not need, then re-find the ids.
    let (graph, map) = super::prune(&t);
    let remap =
        |v: ValueId| map[v.index()].ok_or_else(|| failed("invariant: outputs survive pruning"));
    let loss = remap(loss)?;
    for gr in &mut grads {
        gr.grad = graph.outputs()[gr.output].value;
        gr.value = gr.value.and_then(|v| map[v.index()]);
    }
    let boundary =
        super::seed_index(&graph).ok_or_else(|| failed("invariant: the seed is live"))?;
    Ok(TrainGraph {
        graph,
        loss,
        grads,
        boundary,
        notes,
    })
}

/// For every value of `t`, whether it needs a gradient: reachable from a differentiated
/// value (`from`) through differentiable float ops, and contributing to `loss`.
fn needs_gradient(t: &Graph, from: impl Iterator<Item = ValueId>, loss: ValueId) -> Vec<bool> {
    let n = t.num_values();
    let mut requires = vec![false; n];
    for v in from {
        requires[v.index()] = true;
    }
    for (_, node) in t.nodes() {
        if node.inputs.iter().any(|v| requires[v.index()]) {
            for (slot, &o) in node.outputs.iter().enumerate() {
                if t.ty(o).dtype.is_float() && rules::differentiable(&node.op, slot) {
                    requires[o.index()] = true;
                }
            }
        }
    }
    let mut reaches = vec![false; n];
    reaches[loss.index()] = true;
    let forward: Vec<_> = t.nodes().map(|(id, _)| id).collect();
    for &id in forward.iter().rev() {
        let node = t.node(id);
        if node.outputs.iter().any(|o| reaches[o.index()]) {
            for v in &node.inputs {
                reaches[v.index()] = true;
            }
        }
    }
    (0..n).map(|i| requires[i] && reaches[i]).collect()
}

/// Appends the seed and the backward nodes to `t` (forward nodes and loss so far), visiting
/// forward nodes in reverse; returns the gradient of every value that has one.
fn backward(
    t: &mut Graph,
    loss: ValueId,
    need: &[bool],
) -> Result<HashMap<ValueId, ValueId>, PassError> {
    let forward: Vec<_> = t.nodes().map(|(id, _)| id).collect();
    let ldt = t.ty(loss).dtype;
    let seed = t.add_constant(Tensor::full(ldt, Shape::scalar(), 1.0), SEED_NAME);
    let mut grad: HashMap<ValueId, ValueId> = HashMap::from([(loss, seed)]);
    for &id in forward.iter().rev() {
        let node = t.node(id).clone();
        let gy: Vec<Option<ValueId>> = node.outputs.iter().map(|o| grad.get(o).copied()).collect();
        if gy.iter().all(Option::is_none) {
            continue;
        }
        let needs: Vec<bool> = node
            .inputs
            .iter()
            .map(|&v| need[v.index()] && t.ty(v).dtype.is_float())
            .collect();
        if !needs.iter().any(|&b| b) {
            continue;
        }
        let origin = t.node_ref(id);
        let label = format!("grad:{}", node_label(&origin));
        let mut e = Emitter::new(t, label, origin, PASS);
        let gx = rules::vjp(&mut e, &node.op, &node.inputs, &node.outputs, &gy, &needs)?;
        for (i, (&v, gv)) in node.inputs.iter().zip(gx).enumerate() {
            let Some(gv) = gv else { continue };
            if !needs[i] {
                continue;
            }
            if e.ty(gv) != e.ty(v) {
                return Err(e.error(format!(
                    "gradient of input {i} has type {} but the input is {}",
                    e.ty(gv),
                    e.ty(v)
                )));
            }
            let total = match grad.get(&v) {
                Some(&prev) => e.add(prev, gv)?,
                None => gv,
            };
            grad.insert(v, total);
        }
    }
    Ok(grad)
}

/// Adds the outputs of the training graph: `loss`, then a `grad:<name>` per parameter and
/// an `input_grad:<name>` per requested input (a zero tensor, and a note, for those the
/// loss does not depend on).
fn add_outputs(
    t: &mut Graph,
    loss: ValueId,
    grad: &HashMap<ValueId, ValueId>,
    params: &[(String, ValueId)],
    inputs: &[(String, ValueId)],
    notes: &mut Vec<String>,
) -> Result<Vec<Gradient>, PassError> {
    t.add_output("loss", loss);
    let mut grads = Vec::new();
    let zero_label = "grad:zero".to_string();
    for (kind, list) in [(GradKind::Param, params), (GradKind::Input, inputs)] {
        for (name, v) in list {
            let gv = match grad.get(v) {
                Some(&gv) => gv,
                None => {
                    notes.push(format!(
                        "{name} does not affect the loss: its gradient is zero"
                    ));
                    let origin = NodeRef {
                        id: None,
                        name: name.clone(),
                        op: "zero".into(),
                    };
                    let ty = t.ty(*v).clone();
                    let mut e = Emitter::new(t, zero_label.clone(), origin, PASS);
                    e.full(ty.dtype, ty.shape.dims(), 0.0)?
                }
            };
            let prefix = match kind {
                GradKind::Param => "grad:",
                GradKind::Input => "input_grad:",
            };
            let output = t.outputs().len();
            t.add_output(format!("{prefix}{name}"), gv);
            grads.push(Gradient {
                name: name.clone(),
                kind,
                value: Some(*v),
                grad: gv,
                output,
            });
        }
    }
    Ok(grads)
}

/// `name` of a node for labels, or its id when it has none.
pub(crate) fn node_label(r: &NodeRef) -> String {
    if r.name.is_empty() {
        r.id.map_or_else(|| "?".into(), |id| id.to_string())
    } else {
        r.name.clone()
    }
}

fn pick_output(g: &Graph, spec: &TrainSpec) -> Result<ValueId, PassError> {
    match &spec.output {
        Some(name) => {
            let p = g
                .outputs()
                .iter()
                .find(|p| &p.name == name)
                .ok_or_else(|| {
                    failed(format!(
                        "the graph has no output {name:?}; outputs are {:?}",
                        g.outputs().iter().map(|p| &p.name).collect::<Vec<_>>()
                    ))
                })?;
            if !g.ty(p.value).dtype.is_float() {
                return Err(failed(format!(
                    "output {name:?} is {}, but a loss needs a float output",
                    g.ty(p.value)
                )));
            }
            Ok(p.value)
        }
        None => g
            .outputs()
            .iter()
            .find(|p| g.ty(p.value).dtype.is_float())
            .map(|p| p.value)
            .ok_or_else(|| failed("the graph has no float output to put a loss on")),
    }
}

/// Parameters as `(name, value in t)`. Patterns are matched against the original graph
/// (so a pattern that names something is never an error just because pruning dropped it).
fn resolve_params(
    orig: &Graph,
    map: &[Option<ValueId>],
    sel: &ParamSelection,
    notes: &mut Vec<String>,
) -> Result<Vec<(String, ValueId)>, PassError> {
    let candidates: Vec<(String, ValueId)> = orig
        .nodes()
        .filter_map(|(_, n)| match &n.op {
            Op::Constant(c) if c.dtype().is_float() => Some((n.name.clone(), n.outputs[0])),
            _ => None,
        })
        .chain(
            orig.inputs()
                .iter()
                .filter(|p| orig.ty(p.value).dtype.is_float())
                .map(|p| (p.name.clone(), p.value)),
        )
        .collect();
    let chosen: Vec<(String, ValueId)> = match sel {
        ParamSelection::FloatConstants => candidates
            .into_iter()
            .filter(|(_, v)| orig.constant(*v).is_some_and(|c| c.shape().rank() >= 1))
            .collect(),
        ParamSelection::Patterns(pats) => {
            for p in pats {
                if !candidates.iter().any(|(name, _)| glob_match(p, name)) {
                    return Err(failed(format!(
                        "parameter pattern {p:?} matches no float constant or graph input"
                    )));
                }
            }
            candidates
                .into_iter()
                .filter(|(name, _)| pats.iter().any(|p| glob_match(p, name)))
                .collect()
        }
    };
    let mut out: Vec<(String, ValueId)> = Vec::new();
    let mut taken: HashMap<String, usize> = HashMap::new();
    for (name, v) in chosen {
        let Some(nv) = map[v.index()] else {
            if matches!(sel, ParamSelection::Patterns(_)) {
                notes.push(format!(
                    "{name} does not affect the chosen output and is not trained"
                ));
            }
            continue;
        };
        if out.iter().any(|(_, w)| *w == nv) {
            continue;
        }
        // Distinct output names even if the model reuses a node name.
        let k = taken.entry(name.clone()).or_insert(0);
        *k += 1;
        let unique = if *k == 1 {
            name
        } else {
            format!("{name}#{}", *k)
        };
        out.push((unique, nv));
    }
    Ok(out)
}

fn resolve_inputs(t: &Graph, names: &[String]) -> Result<Vec<(String, ValueId)>, PassError> {
    names
        .iter()
        .map(|name| {
            let v = t
                .inputs()
                .iter()
                .find(|p| &p.name == name)
                .map(|p| p.value)
                .or_else(|| {
                    t.nodes()
                        .find(|(_, n)| &n.name == name)
                        .map(|(_, n)| n.outputs[0])
                })
                .ok_or_else(|| {
                    failed(format!(
                        "input gradient requested for {name:?}, which is neither a graph input nor a node the loss depends on"
                    ))
                })?;
            if !t.ty(v).dtype.is_float() {
                return Err(failed(format!(
                    "input gradient requested for {name:?}, which is {} (only float values have gradients)",
                    t.ty(v)
                )));
            }
            Ok((name.clone(), v))
        })
        .collect()
}
