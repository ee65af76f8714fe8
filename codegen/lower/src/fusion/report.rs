//! Human-readable views of a fusion plan: a text table ([`print_plan`]) and Graphviz
//! ([`dot`], one cluster per kernel).

use std::fmt::Write;

use tessera_ir::{Graph, Op, ValueId};

use super::FusionPlan;
use super::classify::OpClass;
use super::metric::kernel_bytes;

fn op_label(g: &Graph, n: tessera_ir::NodeId) -> String {
    let node = g.node(n);
    if node.name.is_empty() {
        format!("{n} {}", node.op.name())
    } else {
        format!("{n} {} {:?}", node.op.name(), node.name)
    }
}

fn values(vs: &[ValueId], g: &Graph) -> String {
    vs.iter()
        .map(|v| format!("{v}:{}", g.ty(*v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One block per kernel: kind, loop space, member nodes, what it reads and stores, bytes.
pub fn print_plan(g: &Graph, plan: &FusionPlan) -> String {
    let mut out = String::new();
    let total: u64 = plan
        .groups
        .iter()
        .map(|grp| kernel_bytes(g, &grp.inputs, &grp.outputs))
        .sum();
    let _ = writeln!(
        out,
        "plan {:?} ({:?}): {} kernels, {} bytes moved, {} merges refused for peak memory",
        g.name,
        plan.mode,
        plan.groups.len(),
        total,
        plan.rejected_for_memory
    );
    for (i, grp) in plan.groups.iter().enumerate() {
        let s = &grp.shape;
        let reduced = if s.reduced.is_empty() {
            String::new()
        } else {
            format!(" reduce {:?}", s.reduced)
        };
        let _ = writeln!(
            out,
            "k{i} {} space {:?}{reduced}: {} bytes",
            s.kind.name(),
            s.space,
            kernel_bytes(g, &grp.inputs, &grp.outputs)
        );
        for &n in &grp.nodes {
            let root = if s.roots.contains(&n) { " (root)" } else { "" };
            let _ = writeln!(out, "    {}{root}", op_label(g, n));
        }
        let _ = writeln!(out, "    reads  {}", values(&grp.inputs, g));
        let _ = writeln!(out, "    stores {}", values(&grp.outputs, g));
    }
    let views: Vec<String> = g
        .nodes()
        .filter(|(n, _)| plan.is_virtual(*n))
        .map(|(n, _)| op_label(g, n))
        .collect();
    if !views.is_empty() {
        let _ = writeln!(out, "views read through: {}", views.join(", "));
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz source: kernels as clusters, views read through as dashed nodes, graph
/// inputs and outputs as ellipses; constants are left out.
pub fn dot(g: &Graph, plan: &FusionPlan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", esc(&g.name));
    let _ = writeln!(out, "  rankdir=TB; node [shape=box, fontsize=10];");
    for (i, p) in g.inputs().iter().enumerate() {
        let _ = writeln!(
            out,
            "  in{i} [shape=ellipse, label=\"{}\\n{}\"];",
            esc(&p.name),
            g.ty(p.value)
        );
    }
    for (i, grp) in plan.groups.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_k{i} {{");
        let _ = writeln!(
            out,
            "    label=\"k{i} {} ({} B)\"; style=rounded; color=blue;",
            grp.kind().name(),
            kernel_bytes(g, &grp.inputs, &grp.outputs)
        );
        for &n in &grp.nodes {
            let _ = writeln!(
                out,
                "    {n} [label=\"{}\"];",
                esc(&format!("{n} {}", g.node(n).op.name()))
            );
        }
        let _ = writeln!(out, "  }}");
    }
    for (n, node) in g.nodes() {
        if plan.is_virtual(n) {
            let _ = writeln!(
                out,
                "  {n} [style=dashed, label=\"{}\"];",
                esc(&format!("{n} {}", node.op.name()))
            );
        }
    }
    let is_const = |v: ValueId| {
        g.producer(v)
            .is_some_and(|p| plan.class[p.index()] == OpClass::Constant)
    };
    for (n, node) in g.nodes() {
        if matches!(node.op, Op::Constant(_)) {
            continue;
        }
        for &v in &node.inputs {
            if is_const(v) {
                continue;
            }
            let from = match g.producer(v) {
                Some(p) => p.to_string(),
                None => match g.inputs().iter().position(|q| q.value == v) {
                    Some(i) => format!("in{i}"),
                    None => continue,
                },
            };
            let _ = writeln!(out, "  {from} -> {n} [label=\"{v}\", fontsize=8];");
        }
    }
    for (i, p) in g.outputs().iter().enumerate() {
        let _ = writeln!(out, "  out{i} [shape=ellipse, label=\"{}\"];", esc(&p.name));
        if let Some(n) = g.producer(p.value) {
            let _ = writeln!(out, "  {n} -> out{i};");
        }
    }
    let _ = writeln!(out, "}}");
    out
}
