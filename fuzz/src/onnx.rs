//! Structure-aware mutations of ONNX models: edits on the decoded `ModelProto` (dims,
//! element types, attributes, initializer sizes and values, graph edges, op types,
//! opsets), re-encoded, sometimes followed by byte mutations of the encoding.
//!
//! [`Dictionary`] holds what the seeds use (op types, attributes, value names), so an edit
//! can move a real attribute to another node or rewire an edge to a real value.

use std::collections::BTreeSet;

use prost::Message;
use tessera_onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};

use crate::rng::Rng;

/// Integers on the edges of what sizes, axes and indices may be.
pub const INTERESTING_INTS: &[i64] = &[
    0,
    1,
    2,
    3,
    -1,
    -2,
    -7,
    16,
    255,
    256,
    65_535,
    65_536,
    i32::MAX as i64,
    i32::MIN as i64,
    1 << 32,
    1 << 34,
    1 << 40,
    1 << 62,
    i64::MAX,
    i64::MIN,
];

/// Floats that break arithmetic: NaN, infinities, signed zero, huge and tiny values.
pub const INTERESTING_FLOATS: &[f32] = &[
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MAX,
    f32::MIN_POSITIVE,
    1e30,
    -1e30,
];

/// Strings that attribute values and names are tried with.
const INTERESTING_STRINGS: &[&str] = &[
    "",
    "constant",
    "reflect",
    "edge",
    "wrap",
    "NOTSET",
    "SAME_UPPER",
    "SAME_LOWER",
    "VALID",
    "linear",
    "nearest",
    "cubic",
    "half_pixel",
    "asymmetric",
    "tanh",
    "none",
    "mean",
    "sum",
    "ij,jk->ik",
    "...ii->...i",
    "a,b->",
    "->",
    "\u{0}",
    "é",
];

/// Element-type codes: every ONNX code and some that are not.
const DTYPE_CODES: &[i32] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 21, 22, 23, 25, -1, 1000,
];

/// What the seeds use, for edits that draw real pieces from them.
#[derive(Clone, Debug, Default)]
pub struct Dictionary {
    pub op_types: Vec<String>,
    pub attributes: Vec<AttributeProto>,
    pub value_names: Vec<String>,
    /// Whole nodes, to transplant into other graphs.
    pub nodes: Vec<NodeProto>,
}

impl Dictionary {
    /// The dictionary of a set of decoded seed models (each kind of piece deduplicated by
    /// its encoding and capped, so one big model does not dominate).
    pub fn from_models<'a>(models: impl IntoIterator<Item = &'a ModelProto>) -> Self {
        let mut ops = BTreeSet::new();
        let mut names = BTreeSet::new();
        let mut attrs: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut nodes: BTreeSet<Vec<u8>> = BTreeSet::new();
        for m in models {
            let Some(g) = &m.graph else { continue };
            for n in &g.node {
                if let Some(op) = &n.op_type {
                    ops.insert(op.clone());
                }
                names.extend(n.input.iter().chain(&n.output).cloned());
                for a in &n.attribute {
                    if a.g.is_none() && a.graphs.is_empty() && a.encoded_len() < 512 {
                        attrs.insert(a.encode_to_vec());
                    }
                }
                if n.encoded_len() < 1024 && nodes.len() < 4096 {
                    nodes.insert(n.encode_to_vec());
                }
            }
        }
        let decode_all = |set: BTreeSet<Vec<u8>>| set.into_iter().collect::<Vec<_>>();
        Dictionary {
            op_types: ops.into_iter().collect(),
            attributes: decode_all(attrs)
                .iter()
                .filter_map(|b| AttributeProto::decode(b.as_slice()).ok())
                .collect(),
            value_names: names.into_iter().take(4096).collect(),
            nodes: decode_all(nodes)
                .iter()
                .filter_map(|b| NodeProto::decode(b.as_slice()).ok())
                .collect(),
        }
    }
}

fn int(rng: &mut Rng) -> i64 {
    if rng.one_in(3) {
        rng.below(9) as i64 - 2
    } else {
        *rng.pick(INTERESTING_INTS).unwrap_or(&0)
    }
}

fn float(rng: &mut Rng) -> f32 {
    if rng.one_in(4) {
        f32::from_bits(rng.next_u64() as u32)
    } else {
        *rng.pick(INTERESTING_FLOATS).unwrap_or(&0.0)
    }
}

fn string(rng: &mut Rng) -> String {
    (*rng.pick(INTERESTING_STRINGS).unwrap_or(&"")).to_string()
}

/// A value name: one the graph or the seeds use, an empty one, or a fresh one.
fn value_name(g: &GraphProto, dict: &Dictionary, rng: &mut Rng) -> String {
    let mut local: Vec<&String> = Vec::new();
    for n in &g.node {
        local.extend(n.input.iter().chain(&n.output));
    }
    local.extend(g.input.iter().filter_map(|v| v.name.as_ref()));
    local.extend(g.initializer.iter().filter_map(|t| t.name.as_ref()));
    match rng.below(8) {
        0 => String::new(),
        1 => format!("fuzz_{}", rng.below(4)),
        2 => rng.pick(&dict.value_names).cloned().unwrap_or_default(),
        _ => rng.pick(&local).map(|s| (*s).clone()).unwrap_or_default(),
    }
}

/// Applies `1..=4` structured edits to `m`.
pub fn mutate_model(m: &mut ModelProto, dict: &Dictionary, rng: &mut Rng) {
    for _ in 0..1 + rng.below(4) {
        edit(m, dict, rng);
    }
}

fn edit(m: &mut ModelProto, dict: &Dictionary, rng: &mut Rng) {
    if rng.one_in(16) {
        edit_opsets(m, rng);
        return;
    }
    let g = m.graph.get_or_insert_with(GraphProto::default);
    match rng.below(10) {
        0 | 1 => edit_value_info(g, rng),
        2 | 3 => edit_attributes(g, dict, rng),
        4 | 5 => {
            if let Some(t) = pick_mut(&mut g.initializer, rng) {
                edit_tensor(t, rng);
            } else {
                edit_value_info(g, rng);
            }
        }
        6 | 7 => edit_edges(g, dict, rng),
        8 => edit_nodes(g, dict, rng),
        _ => edit_graph_lists(g, dict, rng),
    }
}

fn pick_mut<'a, T>(xs: &'a mut [T], rng: &mut Rng) -> Option<&'a mut T> {
    if xs.is_empty() {
        None
    } else {
        let i = rng.below(xs.len());
        xs.get_mut(i)
    }
}

fn edit_opsets(m: &mut ModelProto, rng: &mut Rng) {
    const VERSIONS: &[i64] = &[0, 1, 6, 7, 9, 11, 13, 17, 18, 21, 28, 29, 99, -1, i64::MAX];
    match rng.below(4) {
        0 => m.opset_import.clear(),
        1 => m.opset_import.push(OperatorSetIdProto {
            domain: Some(
                (*rng
                    .pick(&["", "ai.onnx", "ai.onnx.ml", "com.microsoft", "x"])
                    .unwrap_or(&""))
                .to_string(),
            ),
            version: Some(*rng.pick(VERSIONS).unwrap_or(&1)),
        }),
        _ => {
            if let Some(o) = pick_mut(&mut m.opset_import, rng) {
                o.version = Some(*rng.pick(VERSIONS).unwrap_or(&1));
            }
        }
    }
}

/// All value infos of the graph: inputs, outputs, intermediate declarations.
fn value_infos(g: &mut GraphProto) -> Vec<&mut ValueInfoProto> {
    g.input
        .iter_mut()
        .chain(g.output.iter_mut())
        .chain(g.value_info.iter_mut())
        .collect()
}

fn edit_value_info(g: &mut GraphProto, rng: &mut Rng) {
    let mut vis = value_infos(g);
    let Some(vi) = pick_mut(&mut vis, rng) else {
        return;
    };
    if rng.one_in(10) {
        match rng.below(3) {
            0 => vi.r#type = None,
            1 => vi.r#type = Some(TypeProto::default()),
            _ => vi.name = Some(string(rng)),
        }
        return;
    }
    let ty = vi.r#type.get_or_insert_with(TypeProto::default);
    let Some(type_proto::Value::TensorType(t)) = &mut ty.value else {
        ty.value = Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: Some(1),
            shape: Some(Default::default()),
        }));
        return;
    };
    if rng.one_in(4) {
        t.elem_type = Some(*rng.pick(DTYPE_CODES).unwrap_or(&1));
        return;
    }
    let shape = t.shape.get_or_insert_with(Default::default);
    edit_dims(&mut shape.dim, rng);
}

fn edit_dims(dims: &mut Vec<tensor_shape_proto::Dimension>, rng: &mut Rng) {
    use tensor_shape_proto::{Dimension, dimension::Value};
    match rng.below(6) {
        0 => dims.push(Dimension {
            denotation: None,
            value: Some(Value::DimValue(int(rng))),
        }),
        1 => {
            if !dims.is_empty() {
                let i = rng.below(dims.len());
                dims.remove(i);
            }
        }
        2 => {
            if let Some(d) = pick_mut(dims, rng) {
                d.value = match rng.below(3) {
                    0 => None,
                    _ => Some(Value::DimParam(
                        (*rng.pick(&["N", "batch", "seq", "", "N "]).unwrap_or(&"N")).to_string(),
                    )),
                };
            }
        }
        3 => dims.extend((0..17).map(|_| Dimension {
            denotation: None,
            value: Some(Value::DimValue(1)),
        })),
        _ => {
            if let Some(d) = pick_mut(dims, rng) {
                d.value = Some(Value::DimValue(int(rng)));
            }
        }
    }
}

fn edit_attributes(g: &mut GraphProto, dict: &Dictionary, rng: &mut Rng) {
    let Some(n) = pick_mut(&mut g.node, rng) else {
        return;
    };
    if n.attribute.is_empty() || rng.one_in(5) {
        if let Some(a) = rng.pick(&dict.attributes) {
            n.attribute.push(a.clone());
        }
        return;
    }
    let i = rng.below(n.attribute.len());
    if rng.one_in(8) {
        n.attribute.remove(i);
        return;
    }
    if rng.one_in(8) {
        let dup = n.attribute[i].clone();
        n.attribute.push(dup);
        return;
    }
    let a = &mut n.attribute[i];
    match rng.below(9) {
        0 => a.r#type = Some(rng.below(16) as i32),
        1 => a.i = Some(int(rng)),
        2 => a.f = Some(float(rng)),
        3 => a.s = Some(string(rng).into_bytes()),
        4 => match rng.below(4) {
            0 => a.ints.clear(),
            1 => a.ints.push(int(rng)),
            _ => {
                if let Some(x) = pick_mut(&mut a.ints, rng) {
                    *x = int(rng);
                } else {
                    a.ints = (0..1 + rng.below(5)).map(|_| int(rng)).collect();
                }
            }
        },
        5 => match rng.below(3) {
            0 => a.floats.clear(),
            1 => a.floats.push(float(rng)),
            _ => {
                if let Some(x) = pick_mut(&mut a.floats, rng) {
                    *x = float(rng);
                }
            }
        },
        6 => match &mut a.t {
            Some(t) => edit_tensor(t, rng),
            None => a.t = Some(small_tensor(rng)),
        },
        7 => {
            // Retype the attribute to its neighbour's kind of payload.
            a.r#type = Some(*rng.pick(&[1, 2, 3, 4, 6, 7]).unwrap_or(&2));
        }
        _ => a.name = Some(string(rng)),
    }
}

/// A small initializer-like tensor of a random type, in raw or typed form.
fn small_tensor(rng: &mut Rng) -> TensorProto {
    let n = rng.below(5);
    let mut t = TensorProto {
        dims: vec![n as i64],
        data_type: Some(*rng.pick(&[1, 7, 6, 9, 10, 11]).unwrap_or(&1)),
        ..Default::default()
    };
    match t.data_type {
        Some(1) => t.float_data = (0..n).map(|_| float(rng)).collect(),
        Some(7) => t.int64_data = (0..n).map(|_| int(rng)).collect(),
        _ => t.raw_data = Some((0..n * 8).map(|_| rng.next_u64() as u8).collect()),
    }
    t
}

/// Edits a tensor: its dims (so the data no longer fits), type, data and storage.
fn edit_tensor(t: &mut TensorProto, rng: &mut Rng) {
    match rng.below(10) {
        0 => {
            if let Some(d) = pick_mut(&mut t.dims, rng) {
                *d = int(rng);
            } else {
                t.dims.push(int(rng));
            }
        }
        1 => {
            if rng.one_in(2) {
                t.dims.push(int(rng));
            } else {
                t.dims.pop();
            }
        }
        2 => t.data_type = Some(*rng.pick(DTYPE_CODES).unwrap_or(&1)),
        3 => {
            // Claim a huge tensor whose data is not there.
            t.dims = vec![1 << (20 + rng.below(44)), 1 + rng.below(4) as i64];
        }
        4 => {
            if let Some(raw) = &mut t.raw_data {
                let keep = rng.below(raw.len() + 1);
                raw.truncate(keep);
            } else {
                t.int64_data.pop();
                t.float_data.pop();
                t.int32_data.pop();
            }
        }
        5 => {
            // Move the data between storage forms.
            if let Some(raw) = t.raw_data.take() {
                t.int64_data = raw
                    .chunks(8)
                    .map(|c| c.iter().rev().fold(0i64, |acc, &b| acc << 8 | i64::from(b)))
                    .collect();
            } else {
                t.raw_data = Some(Vec::new());
            }
        }
        6 => {
            t.data_location = Some(1);
            t.external_data = vec![StringStringEntryProto {
                key: Some("location".into()),
                value: Some(
                    (*rng
                        .pick(&["w.bin", "../w.bin", "/etc/hostname", ""])
                        .unwrap_or(&""))
                    .to_string(),
                ),
            }];
        }
        _ => edit_tensor_values(t, rng),
    }
}

/// Overwrites one element with an interesting value (integers in both storage forms;
/// shape operands such as Reshape's target or Slice's bounds live here).
fn edit_tensor_values(t: &mut TensorProto, rng: &mut Rng) {
    let v = int(rng);
    if let Some(x) = pick_mut(&mut t.int64_data, rng) {
        *x = v;
    } else if let Some(x) = pick_mut(&mut t.int32_data, rng) {
        *x = v as i32;
    } else if let Some(x) = pick_mut(&mut t.float_data, rng) {
        *x = float(rng);
    } else if let Some(raw) = &mut t.raw_data {
        let width = match t.data_type {
            Some(7) | Some(11) | Some(13) => 8,
            Some(1) | Some(6) | Some(12) => 4,
            Some(10) | Some(16) | Some(4) | Some(5) => 2,
            _ => 1,
        };
        let k = raw.len() / width;
        if k > 0 {
            let at = rng.below(k) * width;
            let bytes = if t.data_type == Some(1) {
                float(rng).to_le_bytes().to_vec()
            } else {
                v.to_le_bytes()[..width].to_vec()
            };
            raw[at..at + width].copy_from_slice(&bytes);
        }
    }
}

fn edit_edges(g: &mut GraphProto, dict: &Dictionary, rng: &mut Rng) {
    let name = value_name(g, dict, rng);
    let Some(n) = pick_mut(&mut g.node, rng) else {
        return;
    };
    match rng.below(7) {
        0 => n.input.push(name),
        1 => {
            n.input.pop();
        }
        2 => n.output.push(name),
        3 => {
            if let Some(o) = pick_mut(&mut n.output, rng) {
                *o = name;
            }
        }
        4 => {
            // A node reading its own output: the smallest cycle.
            if let Some(o) = n.output.first().cloned() {
                n.input.push(o);
            }
        }
        _ => {
            if let Some(i) = pick_mut(&mut n.input, rng) {
                *i = name;
            } else {
                n.input.push(name);
            }
        }
    }
}

fn edit_nodes(g: &mut GraphProto, dict: &Dictionary, rng: &mut Rng) {
    match rng.below(7) {
        0 => {
            if !g.node.is_empty() {
                let i = rng.below(g.node.len());
                g.node.remove(i);
            }
        }
        1 => {
            if let Some(n) = rng.pick(&g.node).cloned() {
                g.node.push(n);
            }
        }
        2 => {
            let len = g.node.len();
            if len > 1 {
                g.node.swap(rng.below(len), rng.below(len));
            }
        }
        3 => {
            // Transplant a node from another seed, wired to this graph's values.
            if let Some(mut n) = rng.pick(&dict.nodes).cloned() {
                for i in &mut n.input {
                    *i = value_name(g, dict, rng);
                }
                let at = rng.below(g.node.len() + 1);
                g.node.insert(at, n);
            }
        }
        4 => {
            if let Some(n) = pick_mut(&mut g.node, rng) {
                n.domain = Some(
                    (*rng
                        .pick(&["", "ai.onnx", "com.microsoft", "ai.onnx.ml"])
                        .unwrap_or(&""))
                    .to_string(),
                );
            }
        }
        _ => {
            let op = rng.pick(&dict.op_types).cloned();
            if let (Some(n), Some(op)) = (pick_mut(&mut g.node, rng), op) {
                n.op_type = Some(op);
            }
        }
    }
}

fn edit_graph_lists(g: &mut GraphProto, dict: &Dictionary, rng: &mut Rng) {
    match rng.below(7) {
        0 => {
            if !g.input.is_empty() {
                let i = rng.below(g.input.len());
                g.input.remove(i);
            }
        }
        1 => {
            if let Some(vi) = rng.pick(&g.input).cloned() {
                g.input.push(vi);
            }
        }
        2 => {
            if !g.output.is_empty() {
                let i = rng.below(g.output.len());
                g.output.remove(i);
            }
        }
        3 => {
            let name = value_name(g, dict, rng);
            if let Some(o) = pick_mut(&mut g.output, rng) {
                o.name = Some(name);
            }
        }
        4 => {
            if !g.initializer.is_empty() {
                let i = rng.below(g.initializer.len());
                g.initializer.remove(i);
            }
        }
        5 => {
            if let Some(t) = rng.pick(&g.initializer).cloned() {
                g.initializer.push(t);
            }
        }
        _ => {
            let name = value_name(g, dict, rng);
            if let Some(t) = pick_mut(&mut g.initializer, rng) {
                t.name = Some(name);
            }
        }
    }
}
