//! The printer.

use std::fmt::Write;

use super::attrs::attrs_of;
use super::{INLINE_ELEMENTS, quote};
use crate::{Element, Graph, Op, Tensor, ValueId, with_data};

/// How to print.
#[derive(Clone, Debug, Default)]
pub struct PrintOptions {
    /// Show large constants by fingerprint only (for snapshots and logs). The result does
    /// not parse back.
    pub elide_constants: bool,
}

/// Prints `g` in the canonical text form described in the module documentation.
pub fn print(g: &Graph, opts: &PrintOptions) -> String {
    let mut out = String::new();
    // Dense renumbering: inputs first, then node outputs in program order.
    let mut number: Vec<Option<usize>> = vec![None; g.num_values()];
    let mut next = 0;
    for p in g.inputs() {
        if let Some(slot) = number.get_mut(p.value.index()) {
            *slot = Some(next);
            next += 1;
        }
    }
    for (_, n) in g.nodes() {
        for v in &n.outputs {
            if let Some(slot) = number.get_mut(v.index()) {
                *slot = Some(next);
                next += 1;
            }
        }
    }
    // Values that are not defined anywhere (only in invalid graphs) keep their raw id.
    let name = |v: ValueId| match number.get(v.index()).copied().flatten() {
        Some(k) => format!("%{k}"),
        None => format!("%!{}", v.index()),
    };

    let _ = writeln!(out, "graph {} {{", quote(&g.name));
    for p in g.inputs() {
        let ty = if p.value.index() < g.num_values() {
            g.ty(p.value).to_string()
        } else {
            "?".into()
        };
        let _ = writeln!(out, "  input {} {}: {ty}", quote(&p.name), name(p.value));
    }
    let mut data: Vec<&Tensor> = Vec::new();
    for (_, n) in g.nodes() {
        out.push_str("  ");
        for (i, &v) in n.outputs.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let ty = if v.index() < g.num_values() {
                g.ty(v).to_string()
            } else {
                "?".into()
            };
            let _ = write!(out, "{}: {ty}", name(v));
        }
        let _ = write!(out, " = {}", n.op.name());
        if let Op::Constant(t) = &n.op {
            if t.numel() <= INLINE_ELEMENTS {
                out.push(' ');
                write_inline(&mut out, t);
            } else {
                let _ = write!(out, " ${}", data.len());
                data.push(t);
            }
        } else {
            out.push('(');
            for (i, &v) in n.inputs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&name(v));
            }
            out.push(')');
            let attrs = attrs_of(&n.op);
            if !attrs.is_empty() {
                out.push_str(" {");
                for (i, (k, v)) in attrs.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{k}={v}");
                }
                out.push('}');
            }
        }
        if !n.name.is_empty() {
            let _ = write!(out, " {}", quote(&n.name));
        }
        out.push('\n');
    }
    for p in g.outputs() {
        let _ = writeln!(out, "  output {} {}", quote(&p.name), name(p.value));
    }
    out.push_str("}\n");
    for (k, t) in data.iter().enumerate() {
        if opts.elide_constants {
            let _ = writeln!(out, "${k} = elided fnv1a={:016x}", t.fingerprint());
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let _ = write!(out, "${k} = hex\"");
            let bytes = t.to_le_bytes();
            out.reserve(2 * bytes.len() + 2);
            for b in bytes {
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
            out.push_str("\"\n");
        }
    }
    out
}

fn write_inline(out: &mut String, t: &Tensor) {
    fn items<T: Element>(out: &mut String, v: &[T]) {
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}", Scalar(*x));
        }
    }
    out.push('[');
    with_data!(t.data(), v => items(out, v));
    out.push(']');
}

/// Display for one element: integers and bools as themselves, floats in shortest
/// round-trip decimal (f16/bf16 through their exact f32 value).
struct Scalar<T>(T);

impl<T: Element> std::fmt::Display for Scalar<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::DType::*;
        match T::DTYPE {
            F32 | F16 | BF16 => f.write_str(&super::float(self.0.to_f64() as f32)),
            F64 => f.write_str(&super::float(self.0.to_f64())),
            Bool => write!(f, "{}", self.0.to_f64() != 0.0),
            I64 => write!(f, "{}", self.0.to_i64()),
            U64 => write!(f, "{:?}", self.0).map(|_| ()),
            _ => write!(f, "{}", self.0.to_i64()),
        }
    }
}
