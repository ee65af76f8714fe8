//! The graph: an arena of nodes and values addressed by typed `u32` ids.
//!
//! Nodes are stored in program order, which is always a topological order: a node only
//! reads values defined by graph inputs or by earlier nodes. Values are stored apart from
//! nodes; each records its type and where it is defined. Analyses that want a graph library
//! (petgraph, in `passes`) build a view from this arena; it is never the storage.

use std::fmt;

use crate::{IrError, NodeRef, Op, Tensor, TensorType};

macro_rules! entity {
    ($(#[$m:meta])* $name:ident, $prefix:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u32);

        impl $name {
            /// The id with this index. Ids are only meaningful for the graph that made them.
            pub fn new(index: usize) -> Self {
                $name(u32::try_from(index).expect("invariant: fewer than 2^32 entities"))
            }
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{self}")
            }
        }
    };
}

entity!(
    /// A node of a [`Graph`]; displays as `n7`.
    NodeId,
    "n"
);
entity!(
    /// A value of a [`Graph`]; displays as `%7`.
    ValueId,
    "%"
);

/// An operation applied to input values, defining output values.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
    /// The node's name in the source model (may be empty); used in error messages.
    pub name: String,
}

/// Where a value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueDef {
    /// The `i`-th graph input.
    Input(usize),
    /// Output `slot` of a node.
    Node(NodeId, usize),
}

/// A typed value.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub ty: TensorType,
    pub def: ValueDef,
}

/// A named graph input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub value: ValueId,
}

/// A computation graph with static shapes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub name: String,
    nodes: Vec<Node>,
    values: Vec<Value>,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Graph::default()
        }
    }

    /// Adds a graph input of the given type.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> ValueId {
        let v = ValueId::new(self.values.len());
        self.values.push(Value {
            ty,
            def: ValueDef::Input(self.inputs.len()),
        });
        self.inputs.push(Port {
            name: name.into(),
            value: v,
        });
        v
    }

    /// Appends a node after checking its inputs exist and inferring its output types.
    pub fn add_node(
        &mut self,
        op: Op,
        inputs: &[ValueId],
        name: impl Into<String>,
    ) -> Result<Vec<ValueId>, IrError> {
        let name = name.into();
        for &v in inputs {
            if v.index() >= self.values.len() {
                return Err(IrError::UnknownValue(v));
            }
        }
        let types: Vec<&TensorType> = inputs.iter().map(|&v| &self.values[v.index()].ty).collect();
        let out = op.infer(&types).map_err(|message| IrError::Infer {
            node: NodeRef {
                id: Some(NodeId::new(self.nodes.len())),
                name: name.clone(),
                op: op.name().to_string(),
            },
            message,
        })?;
        Ok(self.push_node_unchecked(op, inputs.to_vec(), out, name))
    }

    /// [`Graph::add_node`] for single-output ops.
    pub fn add_node1(
        &mut self,
        op: Op,
        inputs: &[ValueId],
        name: impl Into<String>,
    ) -> Result<ValueId, IrError> {
        let outs = self.add_node(op, inputs, name)?;
        Ok(outs[0])
    }

    /// Adds a constant node and returns its value.
    pub fn add_constant(&mut self, t: Tensor, name: impl Into<String>) -> ValueId {
        let ty = t.ty();
        self.push_node_unchecked(Op::Constant(t), vec![], vec![ty], name.into())[0]
    }

    /// Appends a node with the given output types without checking anything. Used by the
    /// text parser (which checks declared types itself) and by tests that build invalid
    /// graphs on purpose; run [`crate::verify`] afterwards.
    pub fn push_node_unchecked(
        &mut self,
        op: Op,
        inputs: Vec<ValueId>,
        output_types: Vec<TensorType>,
        name: String,
    ) -> Vec<ValueId> {
        let id = NodeId::new(self.nodes.len());
        let outputs: Vec<ValueId> = output_types
            .into_iter()
            .enumerate()
            .map(|(slot, ty)| {
                let v = ValueId::new(self.values.len());
                self.values.push(Value {
                    ty,
                    def: ValueDef::Node(id, slot),
                });
                v
            })
            .collect();
        self.nodes.push(Node {
            op,
            inputs,
            outputs: outputs.clone(),
            name,
        });
        outputs
    }

    /// Marks a value as a graph output.
    pub fn add_output(&mut self, name: impl Into<String>, value: ValueId) {
        self.outputs.push(Port {
            name: name.into(),
            value,
        });
    }

    pub fn nodes(&self) -> impl ExactSizeIterator<Item = (NodeId, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (NodeId::new(i), n))
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id.index()]
    }

    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    pub fn num_values(&self) -> usize {
        self.values.len()
    }

    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.index()]
    }

    /// Type of a value.
    pub fn ty(&self, id: ValueId) -> &TensorType {
        &self.values[id.index()].ty
    }

    pub fn values(&self) -> impl ExactSizeIterator<Item = (ValueId, &Value)> {
        self.values
            .iter()
            .enumerate()
            .map(|(i, v)| (ValueId::new(i), v))
    }

    pub fn inputs(&self) -> &[Port] {
        &self.inputs
    }

    /// Checks that `inputs` match the graph inputs in count, dtype and shape: what every
    /// backend checks before it runs the graph.
    pub fn check_inputs(&self, inputs: &[Tensor]) -> Result<(), IrError> {
        if inputs.len() != self.inputs().len() {
            return Err(IrError::InputCount {
                graph: self.name.clone(),
                expected: self.inputs().len(),
                got: inputs.len(),
            });
        }
        for (p, t) in self.inputs().iter().zip(inputs) {
            let want = self.ty(p.value);
            if &t.ty() != want {
                return Err(IrError::InputType {
                    name: p.name.clone(),
                    expected: want.to_string(),
                    got: t.ty().to_string(),
                });
            }
        }
        Ok(())
    }

    pub fn outputs(&self) -> &[Port] {
        &self.outputs
    }

    pub fn outputs_mut(&mut self) -> &mut Vec<Port> {
        &mut self.outputs
    }

    /// The node that defines `v`, if it is not a graph input.
    pub fn producer(&self, v: ValueId) -> Option<NodeId> {
        match self.values[v.index()].def {
            ValueDef::Node(n, _) => Some(n),
            ValueDef::Input(_) => None,
        }
    }

    /// The tensor of `v` if a constant node defines it.
    pub fn constant(&self, v: ValueId) -> Option<&Tensor> {
        match &self.nodes[self.producer(v)?.index()].op {
            Op::Constant(t) => Some(t),
            _ => None,
        }
    }

    /// For every value, the `(node, input slot)` pairs that read it, in program order.
    pub fn users(&self) -> Vec<Vec<(NodeId, usize)>> {
        let mut users = vec![Vec::new(); self.values.len()];
        for (id, n) in self.nodes() {
            for (slot, &v) in n.inputs.iter().enumerate() {
                if let Some(u) = users.get_mut(v.index()) {
                    u.push((id, slot));
                }
            }
        }
        users
    }

    /// Rewrites every read of `old` (node inputs and graph outputs) to read `new`.
    /// The caller keeps program order valid: `new` must be defined before those reads.
    pub fn replace_all_uses(&mut self, old: ValueId, new: ValueId) {
        for n in &mut self.nodes {
            for v in &mut n.inputs {
                if *v == old {
                    *v = new;
                }
            }
        }
        for p in &mut self.outputs {
            if p.value == old {
                p.value = new;
            }
        }
    }

    /// A copy without the nodes that no graph output depends on, with ids renumbered
    /// densely in program order. Graph inputs are always kept.
    pub fn without_dead_nodes(&self) -> Graph {
        let mut live = vec![false; self.nodes.len()];
        let mut stack: Vec<ValueId> = self.outputs.iter().map(|p| p.value).collect();
        while let Some(v) = stack.pop() {
            if let Some(n) = self.producer(v)
                && !live[n.index()]
            {
                live[n.index()] = true;
                stack.extend(&self.nodes[n.index()].inputs);
            }
        }
        let mut g = Graph::new(self.name.clone());
        let mut map: Vec<Option<ValueId>> = vec![None; self.values.len()];
        for p in &self.inputs {
            map[p.value.index()] = Some(g.add_input(p.name.clone(), self.ty(p.value).clone()));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if !live[i] {
                continue;
            }
            let inputs = n
                .inputs
                .iter()
                .map(|v| map[v.index()].expect("invariant: live node inputs are mapped"))
                .collect();
            let types = n.outputs.iter().map(|&v| self.ty(v).clone()).collect();
            let outs = g.push_node_unchecked(n.op.clone(), inputs, types, n.name.clone());
            for (old, new) in n.outputs.iter().zip(outs) {
                map[old.index()] = Some(new);
            }
        }
        for p in &self.outputs {
            let v = map[p.value.index()].expect("invariant: outputs are live");
            g.add_output(p.name.clone(), v);
        }
        g
    }

    /// Describes a node for error messages: our id, its source name and op.
    pub fn node_ref(&self, id: NodeId) -> NodeRef {
        let n = &self.nodes[id.index()];
        NodeRef {
            id: Some(id),
            name: n.name.clone(),
            op: n.op.name().to_string(),
        }
    }
}
