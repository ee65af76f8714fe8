//! The translation context: the graph under construction, with the constant-folding
//! machinery, and [`Ctx`], what an op translator sees of one ONNX node (its inputs, typed
//! attribute accessors, `emit`).

use std::collections::{BTreeSet, HashMap};

use tessera_ir::{Evaluator, Graph, NodeId, NodeRef, Op, Tensor, TensorType, ValueId};

use crate::convert::{Env, Prepared};
use crate::error::ImportError;
use crate::options::ImportOptions;
use crate::proto::{AttributeProto, GraphProto, NodeProto, attribute_proto::AttributeType};
use crate::tensor::tensor_from_proto;

/// An operator-set domain's canonical name: `ai.onnx` for the default domain (`""`).
pub(crate) fn domain_name(d: Option<&str>) -> &str {
    match d {
        None | Some("") | Some("ai.onnx") => "ai.onnx",
        Some(other) => other,
    }
}

/// The graph being built, with the constant-folding machinery.
pub(crate) struct Builder<'a> {
    pub(crate) g: Graph,
    /// For each value computed from graph inputs, the names of those inputs.
    deps: HashMap<ValueId, BTreeSet<String>>,
    evaluator: Option<&'a dyn Evaluator>,
    fold_limit: usize,
    max_constant_elements: usize,
}

impl<'a> Builder<'a> {
    /// An empty graph named `name`, folding as `opts` says.
    pub(crate) fn new(name: String, opts: &ImportOptions<'a>) -> Self {
        Builder {
            g: Graph::new(name),
            deps: HashMap::new(),
            evaluator: opts.evaluator,
            fold_limit: opts.fold_limit,
            max_constant_elements: opts.max_constant_elements,
        }
    }

    /// Adds a graph input, remembering that values computed from it depend on it.
    pub(crate) fn add_input(&mut self, name: String, ty: TensorType) -> ValueId {
        let v = self.g.add_input(name.clone(), ty);
        self.deps.insert(v, BTreeSet::from([name]));
        v
    }

    /// How errors name ONNX node `n`: with the id the next IR node will get.
    pub(crate) fn node_ref(&self, n: &NodeProto) -> NodeRef {
        NodeRef {
            id: Some(NodeId::new(self.g.num_nodes())),
            name: n.name.clone().unwrap_or_default(),
            op: n.op_type.clone().unwrap_or_default(),
        }
    }
}

/// What an op translator sees of one ONNX node.
pub(crate) struct Ctx<'a, 'b> {
    b: &'b mut Builder<'a>,
    /// The values of the enclosing scope by ONNX name, which the node's subgraphs (the
    /// bodies of `If`, `Loop` and `Scan`) may read.
    scope: &'b Env,
    node: &'b NodeProto,
    node_ref: NodeRef,
    pub(crate) opset: i64,
    inputs: Vec<Option<ValueId>>,
}

impl<'a, 'b> Ctx<'a, 'b> {
    /// The context for translating `node` at `opset` in `scope`, whose inputs resolve to
    /// `inputs` (`None` for an omitted optional input).
    pub(crate) fn new(
        b: &'b mut Builder<'a>,
        scope: &'b Env,
        node: &'b NodeProto,
        opset: i64,
        inputs: Vec<Option<ValueId>>,
    ) -> Self {
        let node_ref = b.node_ref(node);
        Ctx {
            b,
            scope,
            node,
            node_ref,
            opset,
            inputs,
        }
    }
}

impl Ctx<'_, '_> {
    /// The node's operator-set domain, `ai.onnx` for the default one.
    pub(crate) fn domain(&self) -> &str {
        domain_name(self.node.domain.as_deref())
    }

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

    /// How many nodes the graph under construction has.
    pub(crate) fn num_nodes(&self) -> usize {
        self.b.g.num_nodes()
    }

    /// How many inputs the node lists, omitted optional ones included.
    pub(crate) fn num_inputs(&self) -> usize {
        self.inputs.len()
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

    /// The ONNX name of input `k` (empty if omitted).
    pub(crate) fn input_name(&self, k: usize) -> String {
        self.node.input.get(k).cloned().unwrap_or_default()
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
        let name = self.input_name(k);
        self.required_constant(v, &format!("input {k} ({name:?})"), &name, "fixes a shape")
            .map(Some)
    }

    /// `v`'s value, which must be a constant (possibly folded) because it `why` (`"fixes a
    /// shape"`): a value computed from graph inputs is an [`ImportError::NeedsBinding`]
    /// naming them (the caller may specialize on their values; `input` names the ONNX
    /// value), any other an error naming `what`.
    pub(crate) fn required_constant(
        &self,
        v: ValueId,
        what: &str,
        input: &str,
        why: &str,
    ) -> Result<Tensor, ImportError> {
        if let Some(t) = self.b.g.constant(v) {
            return Ok(t.clone());
        }
        match self.b.deps.get(&v) {
            Some(inputs) if !inputs.is_empty() => Err(ImportError::NeedsBinding {
                node: self.node_ref.clone(),
                input: input.to_string(),
                graph_inputs: inputs.iter().cloned().collect(),
            }),
            _ => Err(self.err(format!(
                "{what} {why} and must be constant, but it is computed at run time"
            ))),
        }
    }

    /// Input `k`'s value if it is a constant (possibly folded); `None` if it is absent or
    /// computed at run time.
    pub(crate) fn const_value(&self, k: usize) -> Option<&Tensor> {
        self.opt_input(k).and_then(|v| self.b.g.constant(v))
    }

    /// `v`'s value if it is a constant (possibly folded).
    pub(crate) fn constant_value(&self, v: ValueId) -> Option<&Tensor> {
        self.b.g.constant(v)
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

    pub(crate) fn attr_strings(&self, name: &str) -> Result<Option<Vec<String>>, ImportError> {
        Ok(self.attr_of(name, AttributeType::Strings)?.map(|a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        }))
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

    /// A graph attribute (a subgraph), if the node sets it.
    pub(crate) fn attr_graph(&self, name: &str) -> Result<Option<GraphProto>, ImportError> {
        Ok(self
            .attr_of(name, AttributeType::Graph)?
            .and_then(|a| a.g.clone()))
    }

    /// Translates subgraph `g` (a graph attribute of this node) applied to `args`, one per
    /// subgraph input; returns its outputs. The subgraph sees only its own values.
    pub(crate) fn inline(
        &mut self,
        g: &GraphProto,
        args: &[ValueId],
    ) -> Result<Vec<ValueId>, ImportError> {
        let p = self.prepare(g, false)?;
        self.inline_prepared(&p, args)
    }

    /// Like [`Ctx::inline`], for a body that may also read the enclosing scope's values
    /// (`If`'s branches, `Loop`'s and `Scan`'s bodies).
    pub(crate) fn inline_scoped(
        &mut self,
        g: &GraphProto,
        args: &[ValueId],
    ) -> Result<Vec<ValueId>, ImportError> {
        let p = self.prepare(g, true)?;
        self.inline_prepared(&p, args)
    }

    /// Subgraph `g` made ready to be inlined any number of times (a loop body, once per
    /// iteration): checked, its initializers added once, its node order fixed; `scoped`
    /// if it may read the enclosing scope.
    pub(crate) fn prepare<'g>(
        &mut self,
        g: &'g GraphProto,
        scoped: bool,
    ) -> Result<Prepared<'g>, ImportError> {
        let outer = if scoped { self.scope } else { &Env::new() };
        crate::convert::prepare(self.b, outer, g, self.opset)
    }

    /// Inlines prepared subgraph `p` applied to `args`, one per subgraph input.
    pub(crate) fn inline_prepared(
        &mut self,
        p: &Prepared,
        args: &[ValueId],
    ) -> Result<Vec<ValueId>, ImportError> {
        if p.inputs != args.len() {
            return Err(self.err(format!(
                "subgraph {:?} has {} inputs, expected {}",
                p.name(),
                p.inputs,
                args.len()
            )));
        }
        crate::convert::inline(self.b, p, args)
    }

    /// Names of attributes the node sets (for rejecting unsupported ones).
    pub(crate) fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    /// Fails unless a constant of `numel` elements that the importer is about to build
    /// from sizes the model states (not from data it carries) is within
    /// [`ImportOptions::max_constant_elements`]. Call it before allocating.
    pub(crate) fn check_built(&self, what: &str, numel: usize) -> Result<(), ImportError> {
        let limit = self.b.max_constant_elements;
        if numel > limit {
            return Err(self.err(format!(
                "{what} would be a constant of {numel} elements, more than the import limit of {limit}"
            )));
        }
        Ok(())
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
