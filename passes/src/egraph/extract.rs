//! Extraction: choosing one e-node per needed e-class so the resulting graph is cheapest.
//!
//! Costs are DAG costs: a shared subterm is paid once. egg's own `Extractor` sums costs
//! over the tree and so pays a shared subterm once per use, which makes deep graphs look
//! cheaper after duplicating work and never values a merged (multi-output) kernel.
//!
//! * [`greedy_dag`]: bottom-up, each e-class keeps the cheapest *set* of e-classes its best
//!   e-node needs (faster-greedy-dag of extraction-gym). A candidate whose set already
//!   contains the class would close a cycle and is skipped; a final check bans any e-node
//!   that still closes one and retries.
//! * [`ilp`]: exact 0-1 program (good_lp; microlp, or CBC with the `cbc` feature) over the
//!   e-classes reachable from the roots, with a time limit; cycles found in a solution are
//!   cut with a constraint and the program re-solved.
//! * [`original`]: the input graph itself (each e-class's earliest original e-node), always
//!   acyclic; the baseline every other extraction must beat.
//!
//! All of them work on an [`ExGraph`], a flat, deterministic copy of the e-graph with a
//! modeled cost per e-node.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use egg::{Id, Language};
use good_lp::{
    Expression, ProblemVariables, Solution, SolutionStatus, Solver, SolverModel, Variable,
    WithInitialSolution, WithTimeLimit, constraint, variable,
};
use tessera_ir::TensorType;

use super::analysis::{TGraph, node_op, well_typed};
use super::lang::TNode;
use crate::cost::CostModel;

/// Cost added per IR node so that, among equally fast choices, fewer nodes win.
pub const NODE_EPSILON: f64 = 1e-12;

/// One e-node of an [`ExGraph`].
#[derive(Clone, Debug)]
pub struct ExNode {
    pub node: TNode,
    /// Indices of the child e-classes (attribute classes included).
    pub children: Vec<usize>,
    /// Modeled seconds, plus [`NODE_EPSILON`] for nodes that become IR nodes;
    /// infinite for e-nodes that cannot be extracted.
    pub cost: f64,
}

/// One e-class of an [`ExGraph`].
#[derive(Clone, Debug)]
pub struct ExClass {
    pub id: Id,
    pub nodes: Vec<ExNode>,
    /// Attribute classes are leaves that are not values.
    pub is_attr: bool,
}

/// A flat copy of the e-graph with costs, in ascending e-class id order.
#[derive(Clone, Debug)]
pub struct ExGraph {
    pub classes: Vec<ExClass>,
    pub index: HashMap<Id, usize>,
    pub roots: Vec<usize>,
}

/// A choice of e-node (index into the class's nodes) for every needed class.
pub type Choice = Vec<Option<usize>>;

impl ExGraph {
    /// Copies `egraph` (which must be clean: rebuilt) with costs from `model`.
    pub fn new(egraph: &TGraph<'_>, roots: &[Id], model: &dyn CostModel) -> ExGraph {
        let mut ids: Vec<Id> = egraph.classes().map(|c| c.id).collect();
        ids.sort();
        let index: HashMap<Id, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        let classes = ids
            .iter()
            .map(|&id| {
                let class = &egraph[id];
                let nodes = class
                    .nodes
                    .iter()
                    .map(|n| ExNode {
                        node: n.clone(),
                        children: n
                            .children()
                            .iter()
                            .map(|c| index[&egraph.find(*c)])
                            .collect(),
                        cost: node_cost(egraph, n, &class.data.types, model),
                    })
                    .collect();
                ExClass {
                    id,
                    nodes,
                    is_attr: class.data.attr.is_some(),
                }
            })
            .collect();
        let roots = roots.iter().map(|r| index[&egraph.find(*r)]).collect();
        ExGraph {
            classes,
            index,
            roots,
        }
    }

    /// The DAG cost of `choice`: each class reachable from the roots counted once. `None`
    /// if a needed class has no choice or the choice has a cycle.
    pub fn dag_cost(&self, choice: &Choice) -> Option<f64> {
        let order = self.topo_order(choice).ok()?;
        Some(
            order
                .iter()
                .map(|&c| self.classes[c].nodes[choice[c].expect("in order")].cost)
                .sum(),
        )
    }

    /// Classes reachable from the roots under `choice`, children before parents, or the
    /// (class, node) that closes a cycle, or `Err(None)` if a needed class has no choice.
    pub fn topo_order(&self, choice: &Choice) -> Result<Vec<usize>, Option<(usize, usize)>> {
        // 0 = unvisited, 1 = on the stack, 2 = done.
        let mut state = vec![0u8; self.classes.len()];
        let mut order = Vec::new();
        for &root in &self.roots {
            if state[root] == 2 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            state[root] = 1;
            while let Some(&mut (c, ref mut next)) = stack.last_mut() {
                let n = choice[c].ok_or(None)?;
                let node = &self.classes[c].nodes[n];
                if let Some(&child) = node.children.get(*next) {
                    *next += 1;
                    match state[child] {
                        0 => {
                            state[child] = 1;
                            stack.push((child, 0));
                        }
                        1 => return Err(Some((c, n))),
                        _ => {}
                    }
                } else {
                    state[c] = 2;
                    order.push(c);
                    stack.pop();
                }
            }
        }
        Ok(order)
    }

    /// The choice as e-nodes by e-class id, for [`super::convert::raise`].
    pub fn chosen_nodes(&self, choice: &Choice) -> HashMap<Id, TNode> {
        choice
            .iter()
            .enumerate()
            .filter_map(|(c, n)| {
                n.map(|n| (self.classes[c].id, self.classes[c].nodes[n].node.clone()))
            })
            .collect()
    }

    /// Number of e-nodes.
    pub fn num_nodes(&self) -> usize {
        self.classes.iter().map(|c| c.nodes.len()).sum()
    }
}

/// Modeled cost of one e-node.
fn node_cost(egraph: &TGraph<'_>, n: &TNode, outs: &[TensorType], model: &dyn CostModel) -> f64 {
    match n {
        TNode::Input(_) | TNode::Attr(_) | TNode::Proj(..) => 0.0,
        TNode::Const(_) => NODE_EPSILON,
        TNode::Op(..) => {
            if !well_typed(egraph, n) {
                return f64::INFINITY;
            }
            let Some((op, operands)) = node_op(egraph, n) else {
                return f64::INFINITY;
            };
            let ins: Vec<&TensorType> = operands
                .iter()
                .filter_map(|&c| egraph[c].data.ty())
                .collect();
            if ins.len() != operands.len() || outs.is_empty() {
                return f64::INFINITY;
            }
            model.node_cost(&op, &ins, outs) + NODE_EPSILON
        }
    }
}

/// A set of (class, cost) pairs sorted by class, with its total.
#[derive(Clone, Debug, Default)]
struct CostSet {
    items: Vec<(u32, f64)>,
    total: f64,
}

impl CostSet {
    fn contains(&self, c: usize) -> bool {
        self.items
            .binary_search_by_key(&(c as u32), |x| x.0)
            .is_ok()
    }

    /// `extra` and the items of `sets`, sorted by class; a class in several keeps its
    /// first cost in the order `extra`, `sets[0]`, `sets[1]`, … (what a stable sort of the
    /// concatenation and a dedup give). One or two non-empty sets, the usual case, are
    /// merged in one pass; more are sorted.
    fn union(sets: &[&CostSet], extra: (usize, f64)) -> CostSet {
        let extra = (extra.0 as u32, extra.1);
        let mut nonempty = sets.iter().filter(|s| !s.items.is_empty());
        let mut items = match (nonempty.next(), nonempty.next(), nonempty.next()) {
            (None, _, _) => Vec::new(),
            (Some(a), None, _) => a.items.clone(),
            (Some(a), Some(b), None) => merge_first_wins(&a.items, &b.items),
            _ => {
                let mut items: Vec<(u32, f64)> =
                    Vec::with_capacity(sets.iter().map(|s| s.items.len()).sum::<usize>() + 1);
                items.push(extra);
                for s in sets {
                    items.extend_from_slice(&s.items);
                }
                items.sort_by_key(|x| x.0);
                items.dedup_by_key(|x| x.0);
                let total = items.iter().map(|x| x.1).sum();
                return CostSet { items, total };
            }
        };
        match items.binary_search_by_key(&extra.0, |x| x.0) {
            Ok(i) => items[i] = extra,
            Err(i) => items.insert(i, extra),
        }
        let total = items.iter().map(|x| x.1).sum();
        CostSet { items, total }
    }
}

/// Two class-sorted item lists merged, sorted; a class in both keeps `a`'s cost.
fn merge_first_wins(a: &[(u32, f64)], b: &[(u32, f64)]) -> Vec<(u32, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len() + 1);
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        if x.0 <= y.0 {
            out.push(x);
            i += 1;
            j += usize::from(x.0 == y.0);
        } else {
            out.push(y);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Greedy DAG-aware extraction; `None` if some root has no acyclic choice.
pub fn greedy_dag(ex: &ExGraph) -> Option<Choice> {
    let mut banned: Vec<(usize, usize)> = Vec::new();
    for _ in 0..16 {
        let choice = greedy_once(ex, &banned)?;
        match ex.topo_order(&choice) {
            Ok(_) => return Some(choice),
            Err(Some(bad)) => banned.push(bad),
            Err(None) => return None,
        }
    }
    None
}

fn greedy_once(ex: &ExGraph, banned: &[(usize, usize)]) -> Option<Choice> {
    let n = ex.classes.len();
    let mut parents: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    let mut queue: VecDeque<(usize, usize)> = VecDeque::new();
    let mut queued: HashMap<(usize, usize), ()> = HashMap::new();
    for (c, class) in ex.classes.iter().enumerate() {
        for (k, node) in class.nodes.iter().enumerate() {
            if !node.cost.is_finite() || banned.contains(&(c, k)) {
                continue;
            }
            for &child in &node.children {
                parents[child].push((c, k));
            }
            if node.children.is_empty() {
                queue.push_back((c, k));
                queued.insert((c, k), ());
            }
        }
    }
    let mut best: Vec<Option<(usize, CostSet)>> = vec![None; n];
    let empty = CostSet::default();
    while let Some((c, k)) = queue.pop_front() {
        queued.remove(&(c, k));
        let node = &ex.classes[c].nodes[k];
        let mut sets: Vec<&CostSet> = Vec::with_capacity(node.children.len());
        let mut ready = true;
        for &child in &node.children {
            if ex.classes[child].is_attr {
                sets.push(&empty);
                continue;
            }
            match &best[child] {
                Some((_, s)) => {
                    if s.contains(c) {
                        ready = false;
                        break;
                    }
                    sets.push(s);
                }
                None => {
                    ready = false;
                    break;
                }
            }
        }
        if !ready {
            continue;
        }
        let set = CostSet::union(&sets, (c, node.cost));
        let better = match &best[c] {
            None => true,
            Some((_, old)) => set.total < old.total * (1.0 - 1e-12) - 1e-18,
        };
        if better {
            best[c] = Some((k, set));
            for &p in &parents[c] {
                if let std::collections::hash_map::Entry::Vacant(e) = queued.entry(p) {
                    e.insert(());
                    queue.push_back(p);
                }
            }
        }
    }
    let choice: Choice = best.iter().map(|b| b.as_ref().map(|(k, _)| *k)).collect();
    if ex.roots.iter().any(|&r| choice[r].is_none()) {
        return None;
    }
    Some(choice)
}

/// Improves `choice` where sharing pays off across e-classes, which greedy extraction
/// cannot see: the slices of one multi-output op (the split of a merged matmul) are each
/// dearer than their unmerged alternative alone, but cheaper together. For every tuple
/// e-class, tries choosing the projection in all e-classes that have one, and keeps the
/// change if the whole DAG gets cheaper. Repeats until nothing improves.
pub fn adopt_tuples(ex: &ExGraph, mut choice: Choice) -> Choice {
    let mut users: Vec<(usize, Vec<(usize, usize)>)> = Vec::new();
    for (c, class) in ex.classes.iter().enumerate() {
        for (k, n) in class.nodes.iter().enumerate() {
            if let (TNode::Proj(..), [t]) = (&n.node, n.children.as_slice()) {
                match users.iter_mut().find(|(tt, _)| tt == t) {
                    Some((_, v)) => v.push((c, k)),
                    None => users.push((*t, vec![(c, k)])),
                }
            }
        }
    }
    users.sort_by_key(|(t, _)| *t);
    let Some(mut cost) = ex.dag_cost(&choice) else {
        return choice;
    };
    for _ in 0..4 {
        let mut improved = false;
        for (t, projs) in &users {
            if choice[*t].is_none() || projs.iter().all(|(c, k)| choice[*c] == Some(*k)) {
                continue;
            }
            let mut candidate = choice.clone();
            for &(c, k) in projs {
                candidate[c] = Some(k);
            }
            if let Some(new) = ex.dag_cost(&candidate)
                && new < cost * (1.0 - 1e-12)
            {
                choice = candidate;
                cost = new;
                improved = true;
            }
        }
        if !improved {
            break;
        }
    }
    choice
}

/// The input graph's own choice: in every e-class, the original e-node that came first in
/// program order (`rank` gives that order for the e-nodes of the input graph).
pub fn original(ex: &ExGraph, rank: &HashMap<TNode, usize>) -> Option<Choice> {
    let choice: Choice = ex
        .classes
        .iter()
        .map(|class| {
            class
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(k, n)| match n.node {
                    // Graph inputs and attributes precede every node.
                    TNode::Input(_) | TNode::Attr(_) => Some((0, k)),
                    _ => rank.get(&n.node).map(|r| (*r + 1, k)),
                })
                .min()
                .map(|(_, k)| k)
        })
        .collect();
    ex.topo_order(&choice).ok().map(|_| choice)
}

/// Settings of the exact extractor.
#[derive(Clone, Debug, PartialEq)]
pub struct IlpSettings {
    /// Largest number of (pruned) e-classes the program is built for.
    pub max_classes: usize,
    pub time_limit: Duration,
    /// Re-solves allowed for cutting cycles.
    pub max_rounds: usize,
}

impl Default for IlpSettings {
    fn default() -> Self {
        IlpSettings {
            max_classes: 120,
            time_limit: Duration::from_secs(5),
            max_rounds: 32,
        }
    }
}

/// Why the ILP gave no answer (reported in the pass notes).
#[derive(Clone, Debug, PartialEq)]
pub enum IlpOutcome {
    Solved { classes: usize, rounds: usize },
    TooLarge { classes: usize },
    NotSolved(String),
}

/// Exact DAG-cost extraction. `incumbent` (a valid choice, e.g. from [`greedy_dag`])
/// bounds the search: e-nodes that alone cost more are dropped, and it is the
/// solver's starting point.
pub fn ilp(
    ex: &ExGraph,
    incumbent: &Choice,
    settings: &IlpSettings,
) -> (Option<Choice>, IlpOutcome) {
    #[cfg(feature = "cbc")]
    {
        ilp_with(good_lp::coin_cbc, ex, incumbent, settings)
    }
    #[cfg(not(feature = "cbc"))]
    {
        ilp_with(good_lp::microlp, ex, incumbent, settings)
    }
}

/// True if e-node `node` of class `c` may be chosen under cost `bound`: finite, no dearer
/// alone than the incumbent's whole graph, and not reading its own class.
fn usable(bound: f64, c: usize, node: &ExNode) -> bool {
    node.cost.is_finite() && node.cost <= bound * (1.0 + 1e-9) && !node.children.contains(&c)
}

/// The classes reachable from the roots through usable e-nodes, attribute classes left
/// out (they have one node and no choice).
fn reachable_classes(ex: &ExGraph, bound: f64) -> Vec<usize> {
    let mut reach = vec![false; ex.classes.len()];
    let mut stack: Vec<usize> = ex.roots.clone();
    while let Some(c) = stack.pop() {
        if std::mem::replace(&mut reach[c], true) {
            continue;
        }
        for node in ex.classes[c].nodes.iter().filter(|n| usable(bound, c, n)) {
            stack.extend(node.children.iter().copied().filter(|&k| !reach[k]));
        }
    }
    (0..ex.classes.len())
        .filter(|&c| reach[c] && !ex.classes[c].is_attr)
        .collect()
}

/// One solve of the extraction ILP over `classes`, with the cycle `cuts` found so far: a
/// binary per usable e-node, minimising total cost, each root's class chosen, at most one
/// node per class, a chosen node's children chosen, each cut's nodes not all chosen.
fn solve_once<S>(
    solver: &S,
    ex: &ExGraph,
    classes: &[usize],
    bound: f64,
    incumbent: &Choice,
    cuts: &[Vec<(usize, usize)>],
    settings: &IlpSettings,
) -> Result<Choice, IlpOutcome>
where
    S: Solver + Clone,
    S::Model: WithTimeLimit + WithInitialSolution,
{
    let mut vars = ProblemVariables::new();
    let mut x: HashMap<(usize, usize), Variable> = HashMap::new();
    for &c in classes {
        for (k, node) in ex.classes[c].nodes.iter().enumerate() {
            if usable(bound, c, node) {
                x.insert((c, k), vars.add(variable().binary()));
            }
        }
    }
    let in_class = |c: usize| -> Expression {
        x.iter()
            .filter(|((cc, _), _)| *cc == c)
            .map(|(_, v)| *v)
            .sum()
    };
    let mut keys: Vec<(usize, usize)> = x.keys().copied().collect();
    keys.sort();
    // Seconds are tiny numbers: the objective is in microseconds.
    let objective: Expression = keys
        .iter()
        .map(|key| ex.classes[key.0].nodes[key.1].cost * 1e6 * x[key])
        .sum();
    let initial: Vec<(Variable, f64)> = keys
        .iter()
        .map(|key| (x[key], f64::from(incumbent[key.0] == Some(key.1))))
        .collect();
    let mut model = vars
        .minimise(objective)
        .using(solver.clone())
        .with_time_limit(settings.time_limit.as_secs_f64())
        .with_initial_solution(initial);
    let sums: HashMap<usize, Expression> = classes.iter().map(|&c| (c, in_class(c))).collect();
    for &r in &ex.roots {
        if let Some(s) = sums.get(&r) {
            model.add_constraint(constraint!(s.clone() >= 1));
        }
    }
    for &c in classes {
        model.add_constraint(constraint!(sums[&c].clone() <= 1));
    }
    for key in &keys {
        for &child in &ex.classes[key.0].nodes[key.1].children {
            if ex.classes[child].is_attr {
                continue;
            }
            model.add_constraint(constraint!(sums[&child].clone() >= x[key]));
        }
    }
    for cut in cuts {
        let e: Expression = cut.iter().filter_map(|k| x.get(k)).copied().sum();
        model.add_constraint(constraint!(e <= (cut.len() as f64) - 1.0));
    }
    let solution = model
        .solve()
        .map_err(|e| IlpOutcome::NotSolved(e.to_string()))?;
    if !matches!(solution.status(), SolutionStatus::Optimal) {
        return Err(IlpOutcome::NotSolved(format!(
            "stopped early: {:?}",
            solution.status()
        )));
    }
    let mut choice: Choice = vec![None; ex.classes.len()];
    for key in &keys {
        if solution.value(x[key]) > 0.5 {
            choice[key.0] = Some(key.1);
        }
    }
    for (c, class) in ex.classes.iter().enumerate() {
        if class.is_attr {
            choice[c] = Some(0);
        }
    }
    Ok(choice)
}

/// [`ilp`] with a given good_lp solver: solves, and while the solution has cycles, cuts
/// them and solves again (at most `settings.max_rounds` times).
pub fn ilp_with<S>(
    solver: S,
    ex: &ExGraph,
    incumbent: &Choice,
    settings: &IlpSettings,
) -> (Option<Choice>, IlpOutcome)
where
    S: Solver + Clone,
    S::Model: WithTimeLimit + WithInitialSolution,
{
    let Some(bound) = ex.dag_cost(incumbent) else {
        return (None, IlpOutcome::NotSolved("no valid incumbent".into()));
    };
    let classes = reachable_classes(ex, bound);
    if classes.len() > settings.max_classes {
        return (
            None,
            IlpOutcome::TooLarge {
                classes: classes.len(),
            },
        );
    }
    let mut cuts: Vec<Vec<(usize, usize)>> = Vec::new();
    for round in 1..=settings.max_rounds {
        let choice = match solve_once(&solver, ex, &classes, bound, incumbent, &cuts, settings) {
            Ok(c) => c,
            Err(outcome) => return (None, outcome),
        };
        match ex.topo_order(&choice) {
            Ok(_) => {
                return (
                    Some(choice),
                    IlpOutcome::Solved {
                        classes: classes.len(),
                        rounds: round,
                    },
                );
            }
            Err(Some(_)) => cuts.extend(cycles_of(ex, &choice)),
            Err(None) => {
                return (
                    None,
                    IlpOutcome::NotSolved("solution misses a class".into()),
                );
            }
        }
    }
    (
        None,
        IlpOutcome::NotSolved(format!(
            "cycles remain after {} rounds",
            settings.max_rounds
        )),
    )
}

/// Cycles of `choice` reachable from the roots, as (class, node) pairs: one per back edge
/// of a depth-first search, so a re-solve can cut several at once.
fn cycles_of(ex: &ExGraph, choice: &Choice) -> Vec<Vec<(usize, usize)>> {
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; ex.classes.len()];
    let mut out = Vec::new();
    for &root in &ex.roots {
        if state[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        state[root] = 1;
        while let Some(&mut (c, ref mut next)) = stack.last_mut() {
            let children = choice[c].map_or(&[][..], |k| &ex.classes[c].nodes[k].children[..]);
            if let Some(&child) = children.get(*next) {
                *next += 1;
                match state[child] {
                    0 => {
                        state[child] = 1;
                        stack.push((child, 0));
                    }
                    1 => {
                        let start = stack.iter().position(|&(s, _)| s == child).unwrap_or(0);
                        out.push(
                            stack[start..]
                                .iter()
                                .filter_map(|&(s, _)| choice[s].map(|k| (s, k)))
                                .collect(),
                        );
                    }
                    _ => {}
                }
            } else {
                state[c] = 2;
                stack.pop();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egraph::lang::Kind;

    fn leaf(k: u32, cost: f64) -> ExNode {
        ExNode {
            node: TNode::Input(k),
            children: Vec::new(),
            cost,
        }
    }

    fn op(children: Vec<usize>, cost: f64) -> ExNode {
        ExNode {
            node: TNode::Op(
                Kind::named("add").expect("add is a kind"),
                children.iter().map(|&c| Id::from(c)).collect(),
            ),
            children,
            cost,
        }
    }

    fn graph(classes: Vec<Vec<ExNode>>, root: usize) -> ExGraph {
        let classes: Vec<ExClass> = classes
            .into_iter()
            .enumerate()
            .map(|(i, nodes)| ExClass {
                id: Id::from(i),
                nodes,
                is_attr: false,
            })
            .collect();
        let index = classes.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
        ExGraph {
            classes,
            index,
            roots: vec![root],
        }
    }

    /// [`CostSet::union`] against its definition (a stable sort of `extra` and the sets
    /// concatenated, then a dedup), bit for bit, on pseudo-random sets with shared
    /// classes of differing costs, empty sets and a set given twice.
    #[test]
    fn cost_set_union_is_the_stable_sort_of_the_concatenation() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % m
        };
        for _ in 0..2000 {
            let sets: Vec<CostSet> = (0..next(5))
                .map(|_| {
                    let mut items: Vec<(u32, f64)> = (0..next(12))
                        .map(|_| (next(40) as u32, next(1000) as f64 * 0.37))
                        .collect();
                    items.sort_by_key(|x| x.0);
                    items.dedup_by_key(|x| x.0);
                    let total = items.iter().map(|x| x.1).sum();
                    CostSet { items, total }
                })
                .collect();
            let mut refs: Vec<&CostSet> = sets.iter().collect();
            if let Some(&first) = refs.first()
                && next(4) == 0
            {
                refs.push(first);
            }
            let extra = (next(40) as usize, 0.5);
            let mut want = vec![(extra.0 as u32, extra.1)];
            for s in &refs {
                want.extend_from_slice(&s.items);
            }
            want.sort_by_key(|x| x.0);
            want.dedup_by_key(|x| x.0);
            let total: f64 = want.iter().map(|x| x.1).sum();
            let got = CostSet::union(&refs, extra);
            assert_eq!(got.items, want);
            assert_eq!(got.total.to_bits(), total.to_bits());
        }
    }

    /// Root r(A, B); A and B each either pay 2 alone or share S (cost 3). Greedy takes the
    /// two cheap private nodes (total 4); the optimum shares S (total 3).
    fn shared_subterm() -> ExGraph {
        graph(
            vec![
                vec![leaf(0, 3.0)],                   // 0: S
                vec![leaf(1, 2.0), op(vec![0], 0.0)], // 1: A
                vec![leaf(2, 2.0), op(vec![0], 0.0)], // 2: B
                vec![op(vec![1, 2], 1.0)],            // 3: root
            ],
            3,
        )
    }

    #[test]
    fn greedy_pays_a_shared_subterm_once_but_cannot_see_sharing_across_classes() {
        let ex = shared_subterm();
        let greedy = greedy_dag(&ex).expect("extractable");
        assert_eq!(ex.dag_cost(&greedy), Some(5.0));
        let (exact, how) = ilp(&ex, &greedy, &IlpSettings::default());
        let exact = exact.expect("solved");
        assert!(matches!(how, IlpOutcome::Solved { .. }), "{how:?}");
        assert_eq!(ex.dag_cost(&exact), Some(4.0));
    }

    /// A and B are each other's free alternative: choosing both free nodes is a cycle; the
    /// optimum takes one leaf and reaches it from the other class.
    #[test]
    fn cycles_are_never_extracted() {
        let ex = graph(
            vec![
                vec![leaf(0, 5.0), op(vec![1], 0.0)], // 0: A = a | f(B)
                vec![leaf(1, 5.0), op(vec![0], 0.0)], // 1: B = b | g(A)
                vec![op(vec![0, 1], 1.0)],            // 2: root
            ],
            2,
        );
        // Greedy keeps both private leaves (ties go to the first found): acyclic, not optimal.
        let greedy = greedy_dag(&ex).expect("extractable");
        assert_eq!(ex.dag_cost(&greedy), Some(11.0));
        let (exact, how) = ilp(&ex, &greedy, &IlpSettings::default());
        assert_eq!(ex.dag_cost(&exact.expect("solved")), Some(6.0));
        assert!(
            matches!(how, IlpOutcome::Solved { rounds, .. } if rounds >= 2),
            "the first solution is the cycle and gets cut: {how:?}"
        );
    }

    #[test]
    fn the_ilp_refuses_large_problems() {
        let ex = shared_subterm();
        let greedy = greedy_dag(&ex).expect("extractable");
        let small = IlpSettings {
            max_classes: 2,
            ..IlpSettings::default()
        };
        assert!(matches!(
            ilp(&ex, &greedy, &small),
            (None, IlpOutcome::TooLarge { classes: 4 })
        ));
    }
}
