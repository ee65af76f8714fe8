//! The import driver: initializers and inputs, node order, per-node translation, outputs.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use tessera_ir::{Evaluator, Graph, NodeRef, Op, Tensor, TensorType, ValueId, verify};

use crate::error::{ImportError, UnsupportedNode};
use crate::ops;
use crate::options::ImportOptions;
use crate::proto::{
    AttributeProto, ModelProto, NodeProto, ValueInfoProto, attribute_proto::AttributeType,
    type_proto,
};
use crate::tensor::{dtype_from_onnx, shape_from_dims, tensor_from_proto};

fn domain_name(d: Option<&str>) -> &str {
    match d {
        None | Some("") | Some("ai.onnx") => "ai.onnx",
        Some(other) => other,
    }
}

pub(crate) fn model(m: &ModelProto, opts: &ImportOptions) -> Result<Graph, ImportError> {
    let g = m.graph.as_ref().ok_or(ImportError::NoGraph)?;
    let mut opsets: HashMap<&str, i64> = HashMap::new();
    for o in &m.opset_import {
        opsets.insert(domain_name(o.domain.as_deref()), o.version.unwrap_or(1));
    }
    let opset = opsets.get("ai.onnx").copied().unwrap_or(1);

    let unsupported: Vec<UnsupportedNode> = g
        .node
        .iter()
        .filter_map(|n| {
            let domain = domain_name(n.domain.as_deref());
            let op = n.op_type.as_deref().unwrap_or("");
            (domain != "ai.onnx" || !ops::SUPPORTED.contains(&op)).then(|| UnsupportedNode {
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

    let mut b = Builder {
        g: Graph::new(g.name.clone().unwrap_or_else(|| "main".into())),
        env: HashMap::new(),
        deps: HashMap::new(),
        evaluator: opts.evaluator,
        fold_limit: opts.fold_limit,
    };
    for init in &g.initializer {
        let name = init.name.clone().unwrap_or_default();
        let t = tensor_from_proto(init, opts.base_dir.as_deref()).map_err(|message| {
            ImportError::Initializer {
                name: name.clone(),
                message,
            }
        })?;
        let v = b.g.add_constant(t, name.clone());
        b.env.insert(name, v);
    }
    for vi in &g.input {
        let name = vi.name.clone().unwrap_or_default();
        if b.env.contains_key(&name) {
            continue; // An initializer with the same name provides the value.
        }
        if let Some(t) = opts.bind.get(&name) {
            let want = value_type(vi).map_err(|message| ImportError::Input {
                name: name.clone(),
                message,
            })?;
            if t.ty() != want {
                return Err(ImportError::Input {
                    name,
                    message: format!("bound value has type {} but the input is {want}", t.ty()),
                });
            }
            let v = b.g.add_constant(t.clone(), name.clone());
            b.env.insert(name, v);
            continue;
        }
        let ty = value_type(vi).map_err(|message| ImportError::Input {
            name: name.clone(),
            message,
        })?;
        let v = b.g.add_input(name.clone(), ty);
        b.deps.insert(v, BTreeSet::from([name.clone()]));
        b.env.insert(name, v);
    }

    for idx in node_order(&g.node, &b.env)? {
        let n = &g.node[idx];
        let inputs: Vec<Option<ValueId>> = n
            .input
            .iter()
            .map(|s| {
                if s.is_empty() {
                    None
                } else {
                    b.env.get(s).copied()
                }
            })
            .collect();
        let node_ref = NodeRef {
            id: Some(tessera_ir::NodeId::new(b.g.num_nodes())),
            name: n.name.clone().unwrap_or_default(),
            op: n.op_type.clone().unwrap_or_default(),
        };
        let mut cx = Ctx {
            b: &mut b,
            node: n,
            node_ref,
            opset,
            inputs,
        };
        let outs = ops::convert(&mut cx)?;
        for (k, name) in n.output.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            match outs.get(k) {
                Some(&v) => {
                    b.env.insert(name.clone(), v);
                }
                None => {
                    return Err(ImportError::Node {
                        node: cx_ref(&b, n),
                        message: format!("output {k} ({name:?}) is not supported"),
                    });
                }
            }
        }
    }

    for vi in &g.output {
        let name = vi.name.clone().unwrap_or_default();
        let v = *b
            .env
            .get(&name)
            .ok_or_else(|| ImportError::MissingOutput(name.clone()))?;
        check_declared(&b.g, v, vi)?;
        b.g.add_output(name, v);
    }
    for vi in &g.value_info {
        if let Some(&v) = vi.name.as_ref().and_then(|n| b.env.get(n)) {
            check_declared(&b.g, v, vi)?;
        }
    }
    let graph = b.g.without_dead_nodes();
    verify(&graph)?;
    Ok(graph)
}

fn cx_ref(b: &Builder, n: &NodeProto) -> NodeRef {
    NodeRef {
        id: Some(tessera_ir::NodeId::new(b.g.num_nodes())),
        name: n.name.clone().unwrap_or_default(),
        op: n.op_type.clone().unwrap_or_default(),
    }
}

/// The static tensor type a `ValueInfoProto` declares.
fn value_type(vi: &ValueInfoProto) -> Result<TensorType, String> {
    let Some(type_proto::Value::TensorType(t)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err("only tensor inputs are supported (not sequences, maps or optionals)".into());
    };
    let dtype = dtype_from_onnx(t.elem_type.unwrap_or(0))?;
    let shape = t
        .shape
        .as_ref()
        .ok_or("the input has no shape; tessera needs static shapes")?;
    let mut dims = Vec::new();
    for (i, d) in shape.dim.iter().enumerate() {
        use crate::proto::tensor_shape_proto::dimension::Value;
        match &d.value {
            Some(Value::DimValue(n)) => dims.push(*n),
            Some(Value::DimParam(p)) => {
                return Err(format!(
                    "dimension {i} is symbolic ({p:?}); tessera needs static shapes"
                ));
            }
            None => {
                return Err(format!(
                    "dimension {i} is unknown; tessera needs static shapes"
                ));
            }
        }
    }
    Ok(TensorType::new(dtype, shape_from_dims(&dims)?))
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
    available: &HashMap<String, ValueId>,
) -> Result<Vec<usize>, ImportError> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if available.contains_key(o) || producer.insert(o, i).is_some() {
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
        for inp in n.input.iter().filter(|s| !s.is_empty()) {
            if available.contains_key(inp) {
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

/// The graph being built, with the name environment and constant-folding machinery.
pub(crate) struct Builder<'a> {
    pub(crate) g: Graph,
    env: HashMap<String, ValueId>,
    /// For each value computed from graph inputs, the names of those inputs.
    deps: HashMap<ValueId, BTreeSet<String>>,
    evaluator: Option<&'a dyn Evaluator>,
    fold_limit: usize,
}

/// What an op translator sees of one ONNX node.
pub(crate) struct Ctx<'a, 'b> {
    b: &'b mut Builder<'a>,
    node: &'b NodeProto,
    node_ref: NodeRef,
    pub(crate) opset: i64,
    inputs: Vec<Option<ValueId>>,
}

impl Ctx<'_, '_> {
    pub(crate) fn op_type(&self) -> &str {
        self.node.op_type.as_deref().unwrap_or("")
    }

    /// An error about this node.
    pub(crate) fn err(&self, message: impl Into<String>) -> ImportError {
        ImportError::Node {
            node: self.node_ref.clone(),
            message: message.into(),
        }
    }

    pub(crate) fn num_outputs(&self) -> usize {
        self.node.output.len()
    }

    /// True if output `k` exists and is named (so something may read it).
    pub(crate) fn output_used(&self, k: usize) -> bool {
        self.node.output.get(k).is_some_and(|s| !s.is_empty())
    }

    /// Input `k`, which must be present.
    pub(crate) fn input(&self, k: usize) -> Result<ValueId, ImportError> {
        self.opt_input(k)
            .ok_or_else(|| self.err(format!("required input {k} is missing")))
    }

    /// Input `k` if given (ONNX marks an omitted optional input with an empty name).
    pub(crate) fn opt_input(&self, k: usize) -> Option<ValueId> {
        self.inputs.get(k).copied().flatten()
    }

    /// All present inputs, in order.
    pub(crate) fn all_inputs(&self) -> Vec<ValueId> {
        self.inputs.iter().flatten().copied().collect()
    }

    pub(crate) fn ty(&self, v: ValueId) -> &TensorType {
        self.b.g.ty(v)
    }

    /// Input `k` as a constant, if given. A non-constant input is an error (naming the
    /// graph inputs to bind when that is where it comes from).
    pub(crate) fn const_input(&self, k: usize) -> Result<Option<Tensor>, ImportError> {
        let Some(v) = self.opt_input(k) else {
            return Ok(None);
        };
        if let Some(t) = self.b.g.constant(v) {
            return Ok(Some(t.clone()));
        }
        let name = self.node.input.get(k).cloned().unwrap_or_default();
        match self.b.deps.get(&v) {
            Some(inputs) if !inputs.is_empty() => Err(ImportError::NeedsBinding {
                node: self.node_ref.clone(),
                input: name,
                graph_inputs: inputs.iter().cloned().collect(),
            }),
            _ => Err(self.err(format!(
                "input {k} ({name:?}) fixes a shape and must be constant, but it is computed at run time"
            ))),
        }
    }

    /// Input `k` as a constant list of integers, if given.
    pub(crate) fn ints_input(&self, k: usize) -> Result<Option<Vec<i64>>, ImportError> {
        Ok(self.const_input(k)?.map(|t| t.to_i64_vec()))
    }

    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }

    fn attr_of(
        &self,
        name: &str,
        ty: AttributeType,
    ) -> Result<Option<&AttributeProto>, ImportError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => {
                // Old exporters leave `type` unset; accept when the field is there.
                let declared = a.r#type.and_then(|t| AttributeType::try_from(t).ok());
                if declared.is_some()
                    && declared != Some(ty)
                    && declared != Some(AttributeType::Undefined)
                {
                    return Err(self.err(format!(
                        "attribute {name:?} has type {}, expected {}",
                        declared.map_or("?", |d| d.as_str_name()),
                        ty.as_str_name()
                    )));
                }
                Ok(Some(a))
            }
        }
    }

    pub(crate) fn attr_int(&self, name: &str) -> Result<Option<i64>, ImportError> {
        Ok(self.attr_of(name, AttributeType::Int)?.and_then(|a| a.i))
    }

    pub(crate) fn attr_float(&self, name: &str) -> Result<Option<f32>, ImportError> {
        Ok(self.attr_of(name, AttributeType::Float)?.and_then(|a| a.f))
    }

    pub(crate) fn attr_ints(&self, name: &str) -> Result<Option<Vec<i64>>, ImportError> {
        Ok(self
            .attr_of(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }

    pub(crate) fn attr_floats(&self, name: &str) -> Result<Option<Vec<f32>>, ImportError> {
        Ok(self
            .attr_of(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }

    pub(crate) fn attr_string(&self, name: &str) -> Result<Option<String>, ImportError> {
        Ok(self
            .attr_of(name, AttributeType::String)?
            .and_then(|a| a.s.as_ref())
            .map(|s| String::from_utf8_lossy(s).into_owned()))
    }

    pub(crate) fn attr_tensor(&self, name: &str) -> Result<Option<Tensor>, ImportError> {
        match self
            .attr_of(name, AttributeType::Tensor)?
            .and_then(|a| a.t.as_ref())
        {
            None => Ok(None),
            Some(t) => tensor_from_proto(t, None)
                .map(Some)
                .map_err(|m| self.err(format!("attribute {name:?}: {m}"))),
        }
    }

    /// Names of attributes the node sets (for rejecting unsupported ones).
    pub(crate) fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    /// Adds a constant.
    pub(crate) fn constant(&mut self, t: Tensor) -> ValueId {
        let name = self.node_ref.name.clone();
        self.b.g.add_constant(t, name)
    }

    /// Adds `op` on `inputs`, or its folded result when every input is a constant, an
    /// evaluator is available and the result is small.
    pub(crate) fn emit(&mut self, op: Op, inputs: &[ValueId]) -> Result<Vec<ValueId>, ImportError> {
        let consts: Option<Vec<&Tensor>> = inputs.iter().map(|&v| self.b.g.constant(v)).collect();
        if let (Some(consts), Some(ev)) = (consts, self.b.evaluator) {
            let types: Vec<&TensorType> = inputs.iter().map(|&v| self.b.g.ty(v)).collect();
            let out = op
                .infer(&types)
                .map_err(|m| self.err(format!("{}: {m}", op.name())))?;
            if out.iter().all(|t| t.shape.numel() <= self.b.fold_limit)
                && !matches!(op, Op::Constant(_))
            {
                let values = ev
                    .eval(&op, &consts)
                    .map_err(|m| self.err(format!("folding {}: {m}", op.name())))?;
                return Ok(values.into_iter().map(|t| self.constant(t)).collect());
            }
        }
        let name = self.node_ref.name.clone();
        let outs = self.b.g.add_node(op, inputs, name).map_err(|e| match e {
            tessera_ir::IrError::Infer { node, message } => ImportError::Node {
                node: NodeRef {
                    op: format!("{} → {}", self.node_ref.op, node.op),
                    ..self.node_ref.clone()
                },
                message,
            },
            other => ImportError::Ir(other),
        })?;
        let deps: BTreeSet<String> = inputs
            .iter()
            .filter_map(|v| self.b.deps.get(v))
            .flatten()
            .cloned()
            .collect();
        if !deps.is_empty() {
            for &o in &outs {
                self.b.deps.insert(o, deps.clone());
            }
        }
        Ok(outs)
    }

    pub(crate) fn emit1(&mut self, op: Op, inputs: &[ValueId]) -> Result<ValueId, ImportError> {
        Ok(self.emit(op, inputs)?[0])
    }
}
