//! Control flow: `If`, `Loop` and `Scan`, translated at import into straight-line IR.
//! Bodies are ONNX graphs that read the enclosing scope; each is inlined where it runs.
//!
//! - `If` with a constant condition (after folding, or once the graph inputs it is
//!   computed from are bound) becomes the branch it takes. With a condition known only at
//!   run time, both branches are inlined and each output is chosen by `Where`: ONNX ops
//!   have no side effects, so computing the other branch costs time, not meaning. That
//!   needs both branches to import and to agree on each output's type; where they do
//!   not, the condition must be bound like a shape input.
//! - `Loop` is unrolled: its trip count and condition must be constants (or bound), and so
//!   must the condition each iteration computes, unless the loop has no condition input,
//!   in which case ONNX ignores it. Scan outputs are stacked on a new first axis.
//! - `Scan` is unrolled over its scan axis, each step reading one slice of every scan
//!   input, in either direction; scan outputs are stacked on their axes. Scan-8's batch
//!   axis is unrolled too, each batch element scanned on its own; its `sequence_lens`
//!   must be the full length.
//!
//! Unrolling is bounded by [`MAX_ITERATIONS`] and [`MAX_UNROLLED_NODES`]. A trip count or
//! condition computed from graph inputs is an `ImportError::NeedsBinding` naming them (the
//! CLI binds their values and specializes); one computed otherwise at run time is an error
//! that says so.

use tessera_ir::{DType, Op, Tensor, ValueId};

use super::common::{R, Translator, axis, dims_of, reshape};
use crate::context::Ctx;
use crate::convert::Prepared;
use crate::proto::GraphProto;

pub(super) const OPS: &[(&str, Translator)] = &[("If", if_), ("Loop", loop_), ("Scan", scan)];

/// The most iterations a `Loop`, or steps a `Scan`, is unrolled to.
pub(crate) const MAX_ITERATIONS: usize = 4096;

/// The most IR nodes unrolling one loop may add (nested loops multiply).
pub(crate) const MAX_UNROLLED_NODES: usize = 100_000;

/// Fails once unrolling has grown the graph by more than [`MAX_UNROLLED_NODES`] since it
/// had `start` nodes.
fn check_growth(cx: &Ctx, start: usize, done: usize) -> R<()> {
    if cx.num_nodes().saturating_sub(start) > MAX_UNROLLED_NODES {
        return Err(cx.err(format!(
            "unrolled {done} iterations into more than {MAX_UNROLLED_NODES} IR nodes; the \
             importer unrolls loops and stops there"
        )));
    }
    Ok(())
}

/// The body in `slot`, prepared there on first use (so a loop that runs no iteration
/// never looks into its body, and one that runs many prepares it once).
fn prepared<'s, 'g>(
    cx: &mut Ctx,
    g: &'g GraphProto,
    slot: &'s mut Option<Prepared<'g>>,
) -> R<&'s Prepared<'g>> {
    let p = match slot.take() {
        Some(p) => p,
        None => cx.prepare(g, true)?,
    };
    Ok(slot.insert(p))
}

/// A required graph attribute.
fn body(cx: &Ctx, name: &str) -> R<GraphProto> {
    cx.attr_graph(name)?
        .ok_or_else(|| cx.err(format!("the {name} subgraph is missing")))
}

/// A one-element boolean tensor's value.
fn truth(cx: &Ctx, t: &Tensor, what: &str) -> R<bool> {
    if t.numel() != 1 {
        return Err(cx.err(format!("{what} has {} elements, expected one", t.numel())));
    }
    Ok(t.to_f64_vec()[0] != 0.0)
}

fn if_(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let c = cx.input(0)?;
    let (then_g, else_g) = (body(cx, "then_branch")?, body(cx, "else_branch")?);
    let ct = cx.ty(c).clone();
    if ct.dtype != DType::Bool || ct.shape.numel() != 1 {
        return Err(cx.err(format!("the condition is {ct}, expected one bool")));
    }
    if let Some(t) = cx.constant_value(c).cloned() {
        let taken = if truth(cx, &t, "the condition")? {
            &then_g
        } else {
            &else_g
        };
        return cx.inline_scoped(taken, &[]);
    }
    // A branch may be well formed only when it is taken (a reshape to shapes the other
    // branch guards against): a branch that fails to translate, like branches of
    // different types, leaves the choice to a known condition.
    let yes = cx.inline_scoped(&then_g, &[]);
    let no = cx.inline_scoped(&else_g, &[]);
    let agree = match (&yes, &no) {
        (Ok(y), Ok(n)) => {
            y.len() == n.len() && y.iter().zip(n).all(|(&a, &b)| cx.ty(a) == cx.ty(b))
        }
        _ => false,
    };
    if !agree {
        let name = cx.input_name(0);
        let t = cx.required_constant(
            c,
            "the condition",
            &name,
            "chooses between branches of different output types (or one that does not import)",
        )?;
        return if truth(cx, &t, "the condition")? {
            yes
        } else {
            no
        };
    }
    let (yes, no) = (yes?, no?);
    let c0 = reshape(cx, c, vec![])?;
    yes.iter()
        .zip(&no)
        .map(|(&a, &b)| {
            if a == b {
                Ok(a)
            } else {
                cx.emit1(Op::Where, &[c0, a, b])
            }
        })
        .collect()
}

/// Stacks `parts` (one value per iteration, all of one type) on a new axis `at`.
fn stack(cx: &mut Ctx, parts: &[ValueId], at: usize, what: &str) -> R<ValueId> {
    let first = parts
        .first()
        .copied()
        .ok_or_else(|| cx.err(format!("{what}: no iteration ran, so its shape is unknown")))?;
    let d = dims_of(cx, first);
    let mut unit = d.clone();
    unit.insert(at.min(d.len()), 1);
    let mut rows = Vec::with_capacity(parts.len());
    for &p in parts {
        if cx.ty(p) != cx.ty(first) {
            return Err(cx.err(format!(
                "{what} is {} in one iteration and {} in another",
                cx.ty(first),
                cx.ty(p)
            )));
        }
        rows.push(reshape(cx, p, unit.clone())?);
    }
    if rows.len() == 1 {
        return Ok(rows[0]);
    }
    cx.emit1(Op::Concat { axis: at }, &rows)
}

fn loop_(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let g = body(cx, "body")?;
    let trip = match cx.opt_input(0) {
        None => None,
        Some(_) => {
            let t = cx
                .const_input(0)?
                .ok_or_else(|| cx.err("the trip count is missing"))?;
            if t.numel() != 1 || !t.dtype().is_int() {
                return Err(cx.err(format!("the trip count is {}, expected one int64", t.ty())));
            }
            Some(t.to_i64_vec()[0])
        }
    };
    let has_cond = cx.opt_input(1).is_some();
    let mut go = match cx.const_input(1)? {
        None => true,
        Some(t) => truth(cx, &t, "the initial condition")?,
    };
    let mut carried = (2..cx.num_inputs())
        .map(|k| cx.input(k))
        .collect::<R<Vec<_>>>()?;
    let n_state = carried.len();
    let Some(n_scan) = g.output.len().checked_sub(1 + n_state) else {
        return Err(cx.err(format!(
            "the body has {} outputs, expected the condition and {n_state} loop-carried values",
            g.output.len()
        )));
    };
    if cx.num_outputs() > n_state + n_scan {
        return Err(cx.err(format!(
            "{} outputs, but the body gives {n_state} loop-carried values and {n_scan} scan outputs",
            cx.num_outputs()
        )));
    }
    let mut scans: Vec<Vec<ValueId>> = vec![Vec::new(); n_scan];
    let start = cx.num_nodes();
    let mut slot = None;
    let mut i: i64 = 0;
    while go && trip.is_none_or(|m| i < m) {
        if i as usize >= MAX_ITERATIONS {
            return Err(cx.err(format!(
                "more than {MAX_ITERATIONS} iterations: the importer unrolls loops, and no \
                 larger ones"
            )));
        }
        check_growth(cx, start, i as usize)?;
        let iteration = cx.constant(Tensor::scalar(i));
        let cond = cx.constant(Tensor::scalar(true));
        let mut args = vec![iteration, cond];
        args.extend(&carried);
        let p = prepared(cx, &g, &mut slot)?;
        let outs = cx.inline_prepared(p, &args)?;
        if has_cond {
            let t = cx.required_constant(
                outs[0],
                &format!("the condition iteration {i} computes"),
                &cx.input_name(1),
                "decides whether the loop goes on",
            )?;
            go = truth(cx, &t, "the body's condition")?;
        }
        carried = outs[1..1 + n_state].to_vec();
        for (k, s) in scans.iter_mut().enumerate() {
            s.push(outs[1 + n_state + k]);
        }
        i += 1;
    }
    let mut result = carried;
    for (k, parts) in scans.iter().enumerate() {
        if !cx.output_used(n_state + k) {
            // A placeholder nobody reads: the output is unnamed.
            let placeholder = match parts.first() {
                Some(&p) => p,
                None => cx.constant(Tensor::scalar(0.0f32)),
            };
            result.push(placeholder);
            continue;
        }
        result.push(stack(cx, parts, 0, &format!("scan output {k}"))?);
    }
    Ok(result)
}

fn scan(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let g = body(cx, "body")?;
    let m = cx
        .attr_int("num_scan_inputs")?
        .ok_or_else(|| cx.err("num_scan_inputs is missing"))?;
    // Scan-8 puts an optional `sequence_lens` first and a batch axis on every input.
    let batched = cx.opset < 9;
    let first = usize::from(batched);
    let inputs: Vec<ValueId> = (first..cx.num_inputs())
        .map(|k| cx.input(k))
        .collect::<R<_>>()?;
    let m = usize::try_from(m)
        .ok()
        .filter(|&m| m >= 1 && m <= inputs.len())
        .ok_or_else(|| {
            cx.err(format!(
                "num_scan_inputs {m} must be between 1 and the {} inputs",
                inputs.len()
            ))
        })?;
    let n_state = inputs.len() - m;
    let Some(n_scan) = g.output.len().checked_sub(n_state) else {
        return Err(cx.err(format!(
            "the body has {} outputs, fewer than the {n_state} states",
            g.output.len()
        )));
    };
    let list = |cx: &Ctx, name: &str, n: usize| -> R<Vec<i64>> {
        let v = cx.attr_ints(name)?.unwrap_or_else(|| vec![0; n]);
        if v.len() != n {
            return Err(cx.err(format!("{name} has {} values, expected {n}", v.len())));
        }
        Ok(v)
    };
    if !batched {
        let plan = Plan {
            in_axes: list(cx, "scan_input_axes", m)?,
            in_dirs: list(cx, "scan_input_directions", m)?,
            out_axes: list(cx, "scan_output_axes", n_scan)?,
            out_dirs: list(cx, "scan_output_directions", n_scan)?,
        };
        return scan_steps(
            cx,
            &g,
            &mut None,
            &inputs[..n_state],
            &inputs[n_state..],
            &plan,
        );
    }
    // Scan-8: every input is [batch, ...]; each batch element is scanned on its own (on
    // axis 0 once the batch axis is taken off) and the results stacked on the batch axis.
    let plan = Plan {
        in_axes: vec![0; m],
        in_dirs: list(cx, "directions", m)?,
        out_axes: vec![0; n_scan],
        out_dirs: vec![0; n_scan],
    };
    let batch = match inputs.first() {
        Some(&v) => dims_of(cx, v).first().copied().unwrap_or(0),
        None => 0,
    };
    for &v in &inputs {
        if dims_of(cx, v).first() != Some(&batch) {
            return Err(cx.err(format!(
                "input {} does not share the batch axis ({batch}) of the first",
                cx.ty(v)
            )));
        }
    }
    if let Some(lens) = cx.const_input(0)? {
        let steps = dims_of(cx, inputs[n_state]).get(1).copied().unwrap_or(0);
        if lens.to_i64_vec().iter().any(|&l| l != steps as i64) {
            return Err(cx.err(format!(
                "sequence_lens {:?} shorter than the {steps} steps are not supported",
                lens.to_i64_vec()
            )));
        }
    }
    if batch > MAX_ITERATIONS {
        return Err(cx.err(format!(
            "batch {batch}: more than the {MAX_ITERATIONS} the importer unrolls"
        )));
    }
    let mut per_batch: Vec<Vec<ValueId>> = vec![Vec::new(); n_state + n_scan];
    let start = cx.num_nodes();
    let mut slot = None;
    for b in 0..batch {
        check_growth(cx, start, b)?;
        let idx = cx.constant(Tensor::scalar(b as i64));
        let row = inputs
            .iter()
            .map(|&v| cx.emit1(Op::Gather { axis: 0 }, &[v, idx]))
            .collect::<R<Vec<_>>>()?;
        let outs = scan_steps(cx, &g, &mut slot, &row[..n_state], &row[n_state..], &plan)?;
        for (k, o) in outs.into_iter().enumerate() {
            per_batch[k].push(o);
        }
    }
    per_batch
        .iter()
        .enumerate()
        .map(|(k, parts)| stack(cx, parts, 0, &format!("output {k}")))
        .collect()
}

/// How a `Scan` walks its inputs and writes its outputs (axes and directions, 0 forward).
struct Plan {
    in_axes: Vec<i64>,
    in_dirs: Vec<i64>,
    out_axes: Vec<i64>,
    out_dirs: Vec<i64>,
}

/// Unrolls `g` (prepared in `slot` on first use) over the scan axis of `scanned` from
/// states `init`; returns the final states, then the scan outputs stacked.
fn scan_steps<'g>(
    cx: &mut Ctx,
    g: &'g GraphProto,
    slot: &mut Option<Prepared<'g>>,
    init: &[ValueId],
    scanned: &[ValueId],
    plan: &Plan,
) -> R<Vec<ValueId>> {
    let n_state = init.len();
    let n_scan = plan.out_axes.len();
    let mut steps = None;
    let mut axes = Vec::with_capacity(scanned.len());
    for (j, &x) in scanned.iter().enumerate() {
        let d = dims_of(cx, x);
        let a = axis(cx, plan.in_axes[j], d.len())?;
        match steps {
            None => steps = Some(d[a]),
            Some(t) if t != d[a] => {
                return Err(cx.err(format!(
                    "scan input {j} has {} steps on axis {a}, the first has {t}",
                    d[a]
                )));
            }
            Some(_) => {}
        }
        axes.push(a);
    }
    let steps = steps.unwrap_or(0);
    if steps > MAX_ITERATIONS {
        return Err(cx.err(format!(
            "{steps} steps, more than the {MAX_ITERATIONS} the importer unrolls"
        )));
    }
    let mut state = init.to_vec();
    let mut scans: Vec<Vec<ValueId>> = vec![Vec::new(); n_scan];
    let start = cx.num_nodes();
    for t in 0..steps {
        check_growth(cx, start, t)?;
        let mut args = state.clone();
        for (j, &x) in scanned.iter().enumerate() {
            let at = if plan.in_dirs[j] == 0 {
                t
            } else {
                steps - 1 - t
            };
            let idx = cx.constant(Tensor::scalar(at as i64));
            args.push(cx.emit1(Op::Gather { axis: axes[j] }, &[x, idx])?);
        }
        let p = prepared(cx, g, slot)?;
        let outs = cx.inline_prepared(p, &args)?;
        state = outs[..n_state].to_vec();
        for (k, s) in scans.iter_mut().enumerate() {
            s.push(outs[n_state + k]);
        }
    }
    let mut result = state;
    for (k, mut parts) in scans.into_iter().enumerate() {
        if plan.out_dirs[k] != 0 {
            parts.reverse();
        }
        let rank = parts.first().map_or(0, |&p| dims_of(cx, p).len()) + 1;
        let a = axis(cx, plan.out_axes[k], rank)?;
        result.push(stack(cx, &parts, a, &format!("scan output {k}"))?);
    }
    Ok(result)
}
