//! [`check_plan`]: the invariants of a fusion plan, which the lowering driver checks after
//! every plan.

use std::collections::HashMap;

use tessera_ir::{Graph, Op, ValueId};

use super::FusionPlan;
use crate::LowerError;

/// Checks that `p` is a plan of `g`:
///
/// 1. every node a graph output depends on that computes something (not a constant, not
///    a view read through) is in exactly one group, and `group_of` says which;
/// 2. group members are listed in program order;
/// 3. groups are in a topological order: a group reads only values stored by earlier
///    groups (or graph inputs and constants), and each value is stored by one group.
///
/// Returns every violation found.
pub fn check_plan(g: &Graph, p: &FusionPlan) -> Result<(), LowerError> {
    let mut errors = Vec::new();
    if p.group_of.len() != g.num_nodes() || p.class.len() != g.num_nodes() {
        return Err(LowerError::InvalidPlan(vec![format!(
            "the plan covers {} nodes, the graph has {}",
            p.group_of.len(),
            g.num_nodes()
        )]));
    }
    let mut live = vec![false; g.num_nodes()];
    let mut stack: Vec<ValueId> = g.outputs().iter().map(|o| o.value).collect();
    while let Some(v) = stack.pop() {
        if let Some(n) = g.producer(v)
            && !std::mem::replace(&mut live[n.index()], true)
        {
            stack.extend(g.node(n).inputs.iter().copied());
        }
    }
    let mut seen = vec![0usize; g.num_nodes()];
    for (i, grp) in p.groups.iter().enumerate() {
        if grp.nodes.windows(2).any(|w| w[0] >= w[1]) {
            errors.push(format!("k{i}: members are not in program order"));
        }
        for &n in &grp.nodes {
            seen[n.index()] += 1;
            if p.group_of[n.index()] != Some(i) {
                errors.push(format!("k{i}: {n} is a member but group_of says otherwise"));
            }
        }
    }
    for (n, node) in g.nodes() {
        let computes = !(matches!(node.op, Op::Constant(_)) || p.is_virtual(n));
        let expect = usize::from(live[n.index()] && computes);
        if seen[n.index()] != expect {
            errors.push(format!(
                "{} is in {} groups, expected {expect}",
                g.node_ref(n),
                seen[n.index()]
            ));
        }
    }
    let mut stored_by: HashMap<ValueId, usize> = HashMap::new();
    for (i, grp) in p.groups.iter().enumerate() {
        for &v in &grp.outputs {
            if let Some(j) = stored_by.insert(v, i) {
                errors.push(format!("{v} is stored by k{j} and k{i}"));
            }
        }
    }
    for (i, grp) in p.groups.iter().enumerate() {
        for &v in &grp.inputs {
            match stored_by.get(&v) {
                Some(&j) if j >= i => errors.push(format!("k{i} reads {v}, stored by later k{j}")),
                Some(_) => {}
                None if g.producer(v).is_none() || g.constant(v).is_some() => {}
                None => errors.push(format!("k{i} reads {v}, which no group stores")),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(LowerError::InvalidPlan(errors))
    }
}
