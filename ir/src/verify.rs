//! The verifier: checks that a graph is well formed.
//!
//! [`verify`] checks these invariants and reports every violation it finds, not just the
//! first:
//!
//! 1. **Ids exist.** Every value a node reads, and every graph output, is a value of this
//!    graph.
//! 2. **Defined before use.** A node reads only graph inputs and outputs of nodes earlier
//!    in program order. Since a node can only read earlier nodes, this also proves the
//!    graph is **acyclic**: program order is a topological order.
//! 3. **Definitions agree.** Each value is defined exactly once: the value records that
//!    it is graph input `i` or output `slot` of node `n`, and that input or node lists it
//!    at that position.
//! 4. **Arity.** Each node has as many inputs as its op accepts and as many outputs as
//!    it produces.
//! 5. **Types agree.** Each node's output types (dtype and shape) equal what
//!    [`crate::Op::infer`] computes from its input types, and a constant node's tensor
//!    has the type of its value.
//! 6. **Outputs exist.** The graph has at least one output, and input names and output
//!    names are non-empty and unique among inputs and among outputs.
//! 7. **Sizes are bounded.** Every value's shape is within [`crate::MAX_ELEMENTS`] and
//!    [`crate::MAX_RANK`] (constructors enforce this; the verifier re-checks).

use std::collections::HashSet;

use crate::{Graph, IrError, Node, NodeId, Shape, TensorType, ValueDef, ValueId, VerifyError};

/// Checks every invariant listed in the module documentation.
pub fn verify(g: &Graph) -> Result<(), IrError> {
    let mut errors = Vec::new();
    check_inputs(g, &mut errors);
    let defined = check_nodes(g, &mut errors);
    check_ports(g, &defined, &mut errors);
    check_sizes(g, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(IrError::Verify(errors))
    }
}

fn exists(g: &Graph, v: ValueId) -> bool {
    v.index() < g.num_values()
}

/// 3. Definitions agree, for graph inputs.
fn check_inputs(g: &Graph, errors: &mut Vec<VerifyError>) {
    for (i, p) in g.inputs().iter().enumerate() {
        if !exists(g, p.value) {
            errors.push(global(format!(
                "graph input {:?} refers to missing value {}",
                p.name, p.value
            )));
        } else if g.value(p.value).def != ValueDef::Input(i) {
            errors.push(global(format!(
                "value {} is graph input {i} ({:?}) but records {:?}",
                p.value,
                p.name,
                g.value(p.value).def
            )));
        }
    }
}

/// 1 to 5, node by node in program order. Returns which values the graph defines.
fn check_nodes(g: &Graph, errors: &mut Vec<VerifyError>) -> Vec<bool> {
    let nvalues = g.num_values();
    // `defined[v]` becomes true once program order reaches v's definition.
    let mut defined = vec![false; nvalues];
    for p in g.inputs() {
        if exists(g, p.value) {
            defined[p.value.index()] = true;
        }
    }
    let mut defined_by_node = vec![false; nvalues];
    for (id, node) in g.nodes() {
        let input_types = check_node_inputs(g, id, node, &defined, errors);
        for (slot, &v) in node.outputs.iter().enumerate() {
            if !exists(g, v) {
                errors.push(at(
                    g,
                    id,
                    format!("output {slot} refers to missing value {v}"),
                ));
                continue;
            }
            if g.value(v).def != ValueDef::Node(id, slot) {
                errors.push(at(
                    g,
                    id,
                    format!("output {slot} is {v}, which records {:?}", g.value(v).def),
                ));
            }
            if std::mem::replace(&mut defined_by_node[v.index()], true) {
                errors.push(at(g, id, format!("{v} is defined more than once")));
            }
            defined[v.index()] = true;
        }
        check_node_types(g, id, node, &input_types, errors);
    }
    defined
}

/// 1 and 2 for one node's inputs. Returns the types of those that are defined.
fn check_node_inputs<'g>(
    g: &'g Graph,
    id: NodeId,
    node: &Node,
    defined: &[bool],
    errors: &mut Vec<VerifyError>,
) -> Vec<&'g TensorType> {
    let mut input_types = Vec::with_capacity(node.inputs.len());
    for (slot, &v) in node.inputs.iter().enumerate() {
        if !exists(g, v) {
            errors.push(at(
                g,
                id,
                format!("input {slot} refers to missing value {v}"),
            ));
        } else if !defined[v.index()] {
            errors.push(at(
                g,
                id,
                format!(
                    "input {slot} reads {v} before it is defined (use before definition or a cycle)"
                ),
            ));
        } else {
            input_types.push(&g.value(v).ty);
        }
    }
    input_types
}

/// 4 and 5 for one node, given the types of its defined inputs.
fn check_node_types(
    g: &Graph,
    id: NodeId,
    node: &Node,
    input_types: &[&TensorType],
    errors: &mut Vec<VerifyError>,
) {
    let expected_outputs = node.op.num_outputs();
    if node.outputs.len() != expected_outputs {
        errors.push(at(
            g,
            id,
            format!(
                "has {} outputs, the op produces {expected_outputs}",
                node.outputs.len()
            ),
        ));
        return;
    }
    if input_types.len() != node.inputs.len() {
        return; // Reported by check_node_inputs; types cannot be checked.
    }
    match node.op.infer(input_types) {
        Err(message) => errors.push(at(g, id, message)),
        Ok(types) => {
            for (slot, (&v, want)) in node.outputs.iter().zip(&types).enumerate() {
                if exists(g, v) && &g.value(v).ty != want {
                    errors.push(at(
                        g,
                        id,
                        format!(
                            "output {slot} ({v}) has type {} but the op computes {want}",
                            g.value(v).ty
                        ),
                    ));
                }
            }
        }
    }
}

/// 6. Outputs exist and names are unique.
fn check_ports(g: &Graph, defined: &[bool], errors: &mut Vec<VerifyError>) {
    if g.outputs().is_empty() {
        errors.push(global("graph has no outputs".to_string()));
    }
    for (what, ports) in [("input", g.inputs()), ("output", g.outputs())] {
        let mut seen = HashSet::new();
        for p in ports {
            if p.name.is_empty() {
                errors.push(global(format!("a graph {what} has an empty name")));
            } else if !seen.insert(p.name.as_str()) {
                errors.push(global(format!(
                    "graph {what} name {:?} is used twice",
                    p.name
                )));
            }
        }
    }
    for p in g.outputs() {
        if !exists(g, p.value) {
            errors.push(global(format!(
                "graph output {:?} refers to missing value {}",
                p.name, p.value
            )));
        } else if !defined[p.value.index()] {
            errors.push(global(format!(
                "graph output {:?} ({}) is never defined",
                p.name, p.value
            )));
        }
    }
}

/// 7. Sizes are bounded.
fn check_sizes(g: &Graph, errors: &mut Vec<VerifyError>) {
    for (v, value) in g.values() {
        if let Err(e) = Shape::new(value.ty.shape.dims().to_vec()) {
            errors.push(global(format!("value {v}: {e}")));
        }
    }
}

/// An error at node `id`.
fn at(g: &Graph, id: NodeId, message: String) -> VerifyError {
    VerifyError {
        node: Some(g.node_ref(id)),
        message,
    }
}

/// An error about the graph as a whole.
fn global(message: String) -> VerifyError {
    VerifyError {
        node: None,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BinaryOp, DType, Op, UnaryOp};

    fn f32s(dims: &[usize]) -> TensorType {
        TensorType::new(DType::F32, Shape::from_dims(dims))
    }

    fn messages(g: &Graph) -> Vec<String> {
        match verify(g) {
            Err(IrError::Verify(es)) => es.iter().map(|e| e.to_string()).collect(),
            other => panic!("expected verification errors, got {other:?}"),
        }
    }

    #[test]
    fn a_good_graph_verifies() {
        let mut g = Graph::new("ok");
        let x = g.add_input("x", f32s(&[2, 3]));
        let y = g.add_node1(Op::Unary(UnaryOp::Relu), &[x], "r").unwrap();
        g.add_output("y", y);
        verify(&g).unwrap();
    }

    #[test]
    fn use_before_definition_is_a_cycle() {
        let mut g = Graph::new("cyclic");
        let x = g.add_input("x", f32s(&[2]));
        // n0 reads %2, which n1 defines later; n1 reads n0's output: a cycle.
        let a = g.push_node_unchecked(
            Op::Binary(BinaryOp::Add),
            vec![x, ValueId::new(2)],
            vec![f32s(&[2])],
            "a".into(),
        );
        let b = g.push_node_unchecked(
            Op::Unary(UnaryOp::Neg),
            a.clone(),
            vec![f32s(&[2])],
            "b".into(),
        );
        g.add_output("y", b[0]);
        assert_eq!(
            messages(&g),
            vec![
                r#"node "a" (add, n0): input 1 reads %2 before it is defined (use before definition or a cycle)"#
            ]
        );
    }

    #[test]
    fn type_disagreement_and_arity() {
        let mut g = Graph::new("bad");
        let x = g.add_input("x", f32s(&[2, 3]));
        let y = g.push_node_unchecked(
            Op::Unary(UnaryOp::Exp),
            vec![x],
            vec![f32s(&[3, 2])],
            "e".into(),
        );
        let z = g.push_node_unchecked(Op::MatMul, vec![y[0]], vec![f32s(&[3])], "m".into());
        g.add_output("z", z[0]);
        assert_eq!(
            messages(&g),
            vec![
                r#"node "e" (exp, n0): output 0 (%1) has type f32[3,2] but the op computes f32[2,3]"#,
                r#"node "m" (matmul, n1): expects 2 input(s), got 1"#,
            ]
        );
    }

    #[test]
    fn missing_and_duplicate_outputs() {
        let mut g = Graph::new("outs");
        let x = g.add_input("x", f32s(&[1]));
        g.add_output("y", x);
        g.add_output("y", ValueId::new(9));
        assert_eq!(
            messages(&g),
            vec![
                r#"graph output name "y" is used twice"#,
                r#"graph output "y" refers to missing value %9"#,
            ]
        );
        assert_eq!(messages(&Graph::new("empty")), vec!["graph has no outputs"]);
    }
}
