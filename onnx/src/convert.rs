//! The import driver: initializers and inputs, node order, per-node translation, outputs.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

use tessera_ir::{Graph, NodeRef, Tensor, TensorType, ValueId, verify};

use crate::context::{Builder, Ctx, domain_name};
use crate::error::{ImportError, UnsupportedNode};
use crate::ops;
use crate::options::ImportOptions;
use crate::proto::{GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto, type_proto};
use crate::symbols::{Dim, declared};
use crate::tensor::{dtype_from_onnx, tensor_from_proto};

/// The newest opset version the importer knows per operator-set domain: those of onnx
/// 1.23 (whose node tests are the conformance suite). A model importing a newer version
/// of one of these is refused, since an op's meaning may have changed; domains not
/// listed are not checked here, and any node from them is reported as unsupported.
pub const KNOWN_OPSETS: &[(&str, i64)] = &[
    ("ai.onnx", 28),
    ("ai.onnx.ml", 5),
    ("ai.onnx.preview", 1),
    ("ai.onnx.preview.training", 1),
];

/// ONNX value names and the IR values they are bound to so far.
pub(crate) type Env = HashMap<String, ValueId>;

/// Imports `m`: every op supported, initializers and inputs bound, nodes translated in
/// dependency order, outputs checked against their declarations, the graph verified.
pub(crate) fn model(m: &ModelProto, opts: &ImportOptions) -> Result<Graph, ImportError> {
    let g = m.graph.as_ref().ok_or(ImportError::NoGraph)?;
    let opsets = opsets(m)?;
    check_opsets(&opsets)?;
    check_supported(&g.node, &opsets)?;
    let opset = opsets.get("ai.onnx").copied().unwrap_or(1);

    let mut b = Builder::new(g.name.clone().unwrap_or_else(|| "main".into()), opts);
    let mut env = Env::new();
    add_initializers(&mut b, &mut env, &g.initializer, opts)?;
    add_inputs(&mut b, &mut env, &g.input, opts)?;
    for idx in node_order(&g.node, &|name| env.contains_key(name))? {
        translate(&mut b, &mut env, &g.node[idx], opset)?;
    }
    add_outputs(&mut b, &env, &g.output)?;
    for vi in &g.value_info {
        if let Some(&v) = vi.name.as_ref().and_then(|n| env.get(n)) {
            check_declared(&b.g, v, vi)?;
        }
    }
    let graph = b.g.without_dead_nodes();
    verify(&graph)?;
    Ok(graph)
}

/// The opset version the model imports for each domain. A version below 1, and a domain
/// imported twice at different versions (`""` and `"ai.onnx"` are one domain), are
/// errors rather than a silent choice.
fn opsets(m: &ModelProto) -> Result<HashMap<&str, i64>, ImportError> {
    let mut opsets: HashMap<&str, i64> = HashMap::new();
    for o in &m.opset_import {
        let domain = domain_name(o.domain.as_deref());
        let version = o.version.unwrap_or(1);
        let bad = |problem: String| ImportError::BadOpset {
            domain: domain.to_string(),
            problem,
        };
        if version < 1 {
            return Err(bad(format!("at version {version}; versions start at 1")));
        }
        if let Some(first) = opsets.insert(domain, version)
            && first != version
        {
            return Err(bad(format!("twice, at versions {first} and {version}")));
        }
    }
    Ok(opsets)
}

/// Fails on the first domain (in name order) whose imported version is newer than the
/// importer knows.
fn check_opsets(opsets: &HashMap<&str, i64>) -> Result<(), ImportError> {
    let mut domains: Vec<(&str, i64)> = opsets.iter().map(|(&d, &v)| (d, v)).collect();
    domains.sort_unstable();
    for (domain, version) in domains {
        let newest = KNOWN_OPSETS
            .iter()
            .find(|(d, _)| *d == domain)
            .map(|&(_, v)| v);
        if let Some(newest) = newest.filter(|&n| version > n) {
            return Err(ImportError::OpsetTooNew {
                domain: domain.to_string(),
                version,
                newest,
            });
        }
    }
    Ok(())
}

/// Fails listing every node whose op the importer does not translate.
fn check_supported(nodes: &[NodeProto], opsets: &HashMap<&str, i64>) -> Result<(), ImportError> {
    let unsupported: Vec<UnsupportedNode> = nodes
        .iter()
        .filter_map(|n| {
            let domain = domain_name(n.domain.as_deref());
            let op = n.op_type.as_deref().unwrap_or("");
            (!ops::is_supported(domain, op)).then(|| UnsupportedNode {
                name: n.name.clone().unwrap_or_default(),
                op_type: op.to_string(),
                domain: domain.to_string(),
                opset: opsets.get(domain).copied().unwrap_or(0),
            })
        })
        .collect();
    if !unsupported.is_empty() {
        return Err(ImportError::Unsupported(unsupported));
    }
    Ok(())
}

/// Adds the initializers as constants.
fn add_initializers(
    b: &mut Builder,
    env: &mut Env,
    inits: &[TensorProto],
    opts: &ImportOptions,
) -> Result<(), ImportError> {
    for init in inits {
        let name = init.name.clone().unwrap_or_default();
        let t = tensor_from_proto(init, opts.base_dir.as_deref()).map_err(|message| {
            ImportError::Initializer {
                name: name.clone(),
                message,
            }
        })?;
        let v = b.g.add_constant(t, name.clone());
        env.insert(name, v);
    }
    Ok(())
}

/// Adds the graph inputs no initializer provides: as constants where `opts` binds them,
/// as graph inputs otherwise.
fn add_inputs(
    b: &mut Builder,
    env: &mut Env,
    inputs: &[ValueInfoProto],
    opts: &ImportOptions,
) -> Result<(), ImportError> {
    for vi in inputs {
        let name = vi.name.clone().unwrap_or_default();
        if env.contains_key(&name) {
            continue; // An initializer with the same name provides the value.
        }
        if let Some(t) = opts.bind.get(&name) {
            check_bound(vi, t, opts)?;
            let v = b.g.add_constant(t.clone(), name.clone());
            env.insert(name, v);
            continue;
        }
        let ty = value_type(vi, opts)?;
        let v = b.add_input(name.clone(), ty);
        env.insert(name, v);
    }
    Ok(())
}

/// The inputs of subgraph `g` that no initializer of `g` provides, in order.
pub(crate) fn subgraph_inputs(g: &GraphProto) -> Vec<&ValueInfoProto> {
    g.input
        .iter()
        .filter(|vi| !g.initializer.iter().any(|t| t.name == vi.name))
        .collect()
}

/// Subgraph `g` (an attribute of the node being translated: FlexAttention's `score_mod`, a
/// control-flow body) made ready to be inlined any number of times ([`inline`]): its ops
/// checked (default domain, at `opset`), its initializers added once as constants, the
/// values it reads from `outer` (the scope it is nested in; empty for a function-like
/// subgraph) resolved, and its node order fixed. Its own initializers, inputs and node
/// outputs shadow outer names.
pub(crate) fn prepare<'g>(
    b: &mut Builder,
    outer: &Env,
    g: &'g GraphProto,
    opset: i64,
) -> Result<Prepared<'g>, ImportError> {
    check_supported(&g.node, &HashMap::from([("ai.onnx", opset)]))?;
    // Only the outer names the body reads (at any depth) come in: the scope around it may
    // hold thousands of names.
    let mut free = BTreeSet::new();
    graph_captures(g, &mut free);
    let mut base: Env = free
        .into_iter()
        .filter_map(|k| outer.get(&k).map(|&v| (k, v)))
        .collect();
    for init in &g.initializer {
        let name = init.name.clone().unwrap_or_default();
        let t = tensor_from_proto(init, None).map_err(|message| ImportError::Initializer {
            name: name.clone(),
            message,
        })?;
        let v = b.g.add_constant(t, name.clone());
        base.insert(name, v);
    }
    let inputs = subgraph_inputs(g);
    let input_names: HashSet<&str> = inputs.iter().filter_map(|vi| vi.name.as_deref()).collect();
    let order = node_order(&g.node, &|name| {
        base.contains_key(name) || input_names.contains(name)
    })?;
    Ok(Prepared {
        g,
        inputs: inputs.len(),
        base,
        order,
        opset,
    })
}

/// A subgraph [`prepare`]d for inlining.
pub(crate) struct Prepared<'g> {
    g: &'g GraphProto,
    /// How many [`subgraph_inputs`] it has.
    pub(crate) inputs: usize,
    /// Its initializers' constants and the outer values it reads, by ONNX name.
    base: Env,
    order: Vec<usize>,
    opset: i64,
}

impl Prepared<'_> {
    /// The subgraph's name (empty if it has none).
    pub(crate) fn name(&self) -> &str {
        self.g.name.as_deref().unwrap_or("")
    }
}

/// Translates prepared subgraph `p` into the graph being built, its [`subgraph_inputs`]
/// bound to `args` (as many); returns the values of its outputs.
pub(crate) fn inline(
    b: &mut Builder,
    p: &Prepared,
    args: &[ValueId],
) -> Result<Vec<ValueId>, ImportError> {
    let mut env = p.base.clone();
    for (vi, &v) in subgraph_inputs(p.g).into_iter().zip(args) {
        env.insert(vi.name.clone().unwrap_or_default(), v);
    }
    for &idx in &p.order {
        translate(b, &mut env, &p.g.node[idx], p.opset)?;
    }
    p.g.output
        .iter()
        .map(|vi| {
            let name = vi.name.clone().unwrap_or_default();
            env.get(&name)
                .copied()
                .ok_or(ImportError::MissingOutput(name))
        })
        .collect()
}

/// Translates node `n`, whose inputs are all in `env`, and binds its outputs.
fn translate(b: &mut Builder, env: &mut Env, n: &NodeProto, opset: i64) -> Result<(), ImportError> {
    let inputs: Vec<Option<ValueId>> = n
        .input
        .iter()
        .map(|s| {
            if s.is_empty() {
                None
            } else {
                env.get(s).copied()
            }
        })
        .collect();
    let mut cx = Ctx::new(b, env, n, opset, inputs);
    let outs = ops::convert(&mut cx)?;
    for (k, name) in n.output.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        match outs.get(k) {
            Some(&v) => {
                env.insert(name.clone(), v);
            }
            None => {
                return Err(ImportError::Node {
                    node: b.node_ref(n),
                    message: format!("output {k} ({name:?}) is not supported"),
                });
            }
        }
    }
    Ok(())
}

/// Marks the graph outputs, checking each against its declared type.
fn add_outputs(b: &mut Builder, env: &Env, outputs: &[ValueInfoProto]) -> Result<(), ImportError> {
    for vi in outputs {
        let name = vi.name.clone().unwrap_or_default();
        let v = *env
            .get(&name)
            .ok_or_else(|| ImportError::MissingOutput(name.clone()))?;
        check_declared(&b.g, v, vi)?;
        b.g.add_output(name, v);
    }
    Ok(())
}

/// The static tensor type of graph input `vi`, its symbolic dimensions sized by
/// `opts.shapes`.
fn value_type(vi: &ValueInfoProto, opts: &ImportOptions) -> Result<TensorType, ImportError> {
    let decl = declared(vi)?;
    Ok(TensorType::new(decl.dtype, decl.shape(&opts.shapes)?))
}

/// Checks a value bound to graph input `vi` against its declaration: the element type, the
/// rank, every static dimension, and every symbol `opts.shapes` sizes.
fn check_bound(vi: &ValueInfoProto, t: &Tensor, opts: &ImportOptions) -> Result<(), ImportError> {
    let decl = declared(vi)?;
    let dims = t.shape().dims();
    let fits = decl.dtype == t.dtype()
        && decl.dims.len() == dims.len()
        && decl.dims.iter().zip(dims).all(|(d, &n)| match d {
            Dim::Static(want) => *want == n,
            Dim::Symbol(s) => opts.shapes.get(s).is_none_or(|&want| want == n),
        });
    if fits {
        return Ok(());
    }
    Err(ImportError::Input {
        name: decl.name.clone(),
        message: format!("bound value has type {} but the input is {decl}", t.ty()),
    })
}

/// Checks a declared value type against the inferred one, where the declaration is static.
fn check_declared(g: &Graph, v: ValueId, vi: &ValueInfoProto) -> Result<(), ImportError> {
    let Some(type_proto::Value::TensorType(t)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Ok(());
    };
    let actual = g.ty(v);
    let name = vi.name.clone().unwrap_or_default();
    let mismatch = |what: String| ImportError::Input {
        name: name.clone(),
        message: format!(
            "declared {what} but the graph computes {actual}: the model's shapes are inconsistent"
        ),
    };
    if let Some(code) = t.elem_type
        && code != 0
        && dtype_from_onnx(code).ok() != Some(actual.dtype)
    {
        return Err(mismatch(format!("element type code {code}")));
    }
    if let Some(shape) = &t.shape {
        use crate::proto::tensor_shape_proto::dimension::Value;
        let dims = actual.shape.dims();
        let bad = shape.dim.len() != dims.len()
            || shape
                .dim
                .iter()
                .zip(dims)
                .any(|(d, &a)| matches!(d.value, Some(Value::DimValue(n)) if n != a as i64));
        if bad {
            let shown: Vec<String> = shape
                .dim
                .iter()
                .map(|d| match &d.value {
                    Some(Value::DimValue(n)) => n.to_string(),
                    Some(Value::DimParam(p)) => p.clone(),
                    None => "?".into(),
                })
                .collect();
            return Err(mismatch(format!("shape [{}]", shown.join(","))));
        }
    }
    Ok(())
}

/// A topological order of the nodes, as close to file order as possible.
fn node_order(
    nodes: &[NodeProto],
    available: &dyn Fn(&str) -> bool,
) -> Result<Vec<usize>, ImportError> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if available(o) || producer.insert(o, i).is_some() {
                return Err(ImportError::Node {
                    node: NodeRef {
                        id: None,
                        name: n.name.clone().unwrap_or_default(),
                        op: n.op_type.clone().unwrap_or_default(),
                    },
                    message: format!("output {o:?} is defined more than once"),
                });
            }
        }
    }
    let mut pending = vec![0usize; nodes.len()];
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        let captured = captured(n);
        for inp in n.input.iter().filter(|s| !s.is_empty()).chain(&captured) {
            if available(inp) {
                continue;
            }
            match producer.get(inp.as_str()) {
                Some(&p) => {
                    pending[i] += 1;
                    consumers[p].push(i);
                }
                None => {
                    return Err(ImportError::MissingValue {
                        node: n.name.clone().unwrap_or_default(),
                        op_type: n.op_type.clone().unwrap_or_default(),
                        value: inp.clone(),
                    });
                }
            }
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..nodes.len())
        .filter(|&i| pending[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &c in &consumers[i] {
            pending[c] -= 1;
            if pending[c] == 0 {
                ready.push(Reverse(c));
            }
        }
    }
    if order.len() < nodes.len() {
        let stuck = (0..nodes.len())
            .filter(|&i| pending[i] > 0)
            .map(|i| {
                let n = &nodes[i];
                format!(
                    "{:?} ({})",
                    n.name.clone().unwrap_or_default(),
                    n.op_type.clone().unwrap_or_default()
                )
            })
            .collect();
        return Err(ImportError::Cycle(stuck));
    }
    Ok(order)
}

/// The names node `n`'s subgraph attributes read from the scope around `n`: inputs of
/// their nodes (at any depth) and outputs that the subgraphs do not define themselves.
fn captured(n: &NodeProto) -> Vec<String> {
    let mut out = BTreeSet::new();
    for a in &n.attribute {
        for g in a.g.iter().chain(&a.graphs) {
            graph_captures(g, &mut out);
        }
    }
    out.into_iter().collect()
}

fn graph_captures(g: &GraphProto, out: &mut BTreeSet<String>) {
    let defined: HashSet<&str> = g
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .chain(g.input.iter().filter_map(|v| v.name.as_deref()))
        .chain(g.node.iter().flat_map(|n| &n.output).map(String::as_str))
        .collect();
    for n in &g.node {
        for name in n
            .input
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .chain(captured(n))
        {
            if !defined.contains(name.as_str()) {
                out.insert(name);
            }
        }
    }
    // A body may also return an outer value as it is (a branch that passes `x` through).
    for name in g.output.iter().filter_map(|v| v.name.as_deref()) {
        if !name.is_empty() && !defined.contains(name) {
            out.insert(name.to_string());
        }
    }
}
