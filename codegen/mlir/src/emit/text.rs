//! The text writer: fresh SSA names, indentation, types, literals and index arithmetic.
//!
//! Names are numbered in emission order, so the same kernels always print the same text.

use std::collections::HashMap;
use std::fmt::Write;

use tessera_ir::DType;
use tessera_lower::kir::{Atom, ExprId, Index, Lit, Var};

use crate::error::EmitError;

/// The MLIR element type of `d` (integers are signless; unsigned dtypes pick unsigned
/// operations where it matters).
pub fn elem(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::I8 | DType::U8 => "i8",
        DType::I16 | DType::U16 => "i16",
        DType::I32 | DType::U32 => "i32",
        DType::I64 | DType::U64 => "i64",
        DType::Bool => "i1",
    }
}

/// `tensor<4x5xf32>`; `tensor<f32>` for no dimensions.
pub fn tensor(dims: &[usize], d: DType) -> String {
    let mut s = String::from("tensor<");
    for x in dims {
        let _ = write!(s, "{x}x");
    }
    s.push_str(elem(d));
    s.push('>');
    s
}

/// A float literal MLIR parses back to exactly `v` rounded to `d` (hexadecimal bits for
/// infinities and NaN, which have no decimal form).
pub fn float_lit(v: f64, d: DType) -> String {
    let finite = v.is_finite();
    let text = match d {
        DType::F64 if finite => format!("{v:?}"),
        DType::F64 => return format!("0x{:016X}", v.to_bits()),
        _ if finite => format!("{:?}", v as f32),
        DType::F32 => return format!("0x{:08X}", (v as f32).to_bits()),
        DType::F16 => return format!("0x{:04X}", half::f16::from_f64(v).to_bits()),
        _ => return format!("0x{:04X}", half::bf16::from_f64(v).to_bits()),
    };
    // MLIR's float literals need a decimal point before any exponent.
    match text.find('e') {
        Some(e) if !text[..e].contains('.') => format!("{}.0{}", &text[..e], &text[e..]),
        _ if !text.contains('.') && !text.contains('e') => format!("{text}.0"),
        _ => text,
    }
}

/// The text of literal `l` as a value of dtype `d`.
pub fn lit(l: Lit, d: DType) -> String {
    if d.is_float() {
        float_lit(l.as_f64(), d)
    } else if d == DType::Bool {
        match l {
            Lit::B(b) => b.to_string(),
            other => (other.as_i64() != 0).to_string(),
        }
    } else {
        // Saturated to the dtype's range (the kernel IR writes "no bound" as i64's
        // extremes), then as a signless integer of its width: u8 255 is i8 -1.
        let v = l.as_i64();
        let (lo, hi): (i64, i64) = match d {
            DType::I8 => (i8::MIN.into(), i8::MAX.into()),
            DType::I16 => (i16::MIN.into(), i16::MAX.into()),
            DType::I32 => (i32::MIN.into(), i32::MAX.into()),
            DType::U8 => (0, u8::MAX.into()),
            DType::U16 => (0, u16::MAX.into()),
            DType::U32 => (0, u32::MAX.into()),
            _ => (i64::MIN, i64::MAX),
        };
        let v = v.clamp(lo, hi);
        match d.size_bytes() {
            1 => (v as i8).to_string(),
            2 => (v as i16).to_string(),
            4 => (v as i32).to_string(),
            _ => v.to_string(),
        }
    }
}

/// One function body being written: lines, indentation, a counter for fresh names and a
/// cache of index constants per region.
pub struct Body {
    pub text: String,
    indent: usize,
    next: usize,
    consts: HashMap<String, String>,
}

impl Body {
    pub fn new(indent: usize) -> Body {
        Body {
            text: String::new(),
            indent,
            next: 0,
            consts: HashMap::new(),
        }
    }

    /// A fresh SSA name `%<prefix><n>`.
    pub fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("%{prefix}{}", self.next - 1)
    }

    /// Writes one line at the current indentation.
    pub fn line(&mut self, s: &str) {
        for _ in 0..self.indent {
            self.text.push_str("  ");
        }
        self.text.push_str(s);
        self.text.push('\n');
    }

    /// `%n = <rhs>` with a fresh name; returns the name.
    pub fn op(&mut self, prefix: &str, rhs: &str) -> String {
        let n = self.fresh(prefix);
        self.line(&format!("{n} = {rhs}"));
        n
    }

    /// Opens a region: deeper indentation and a constant cache of its own. Returns what
    /// [`Body::close`] restores.
    pub fn open(&mut self) -> HashMap<String, String> {
        self.indent += 1;
        std::mem::take(&mut self.consts)
    }

    pub fn close(&mut self, saved: HashMap<String, String>) {
        self.indent -= 1;
        self.consts = saved;
    }

    /// An `arith.constant` of `text : ty`, once per region.
    pub fn constant(&mut self, text: &str, ty: &str) -> String {
        let key = format!("{text} : {ty}");
        if let Some(n) = self.consts.get(&key) {
            return n.clone();
        }
        // A bool literal carries its type (`true`), so it takes none.
        let rhs = if ty == "i1" {
            format!("arith.constant {text}")
        } else {
            format!("arith.constant {key}")
        };
        let n = self.op("c", &rhs);
        self.consts.insert(key, n.clone());
        n
    }

    pub fn index_const(&mut self, c: i64) -> String {
        self.constant(&c.to_string(), "index")
    }

    /// Index `ix` as an SSA value of type `index`: loop variables from `var`, gathered
    /// values (i64 expressions) from `value`. Division and remainder are unsigned: the
    /// kernel IR builds them over non-negative operands only.
    pub fn index(
        &mut self,
        ix: &Index,
        var: &dyn Fn(Var) -> Option<String>,
        value: &dyn Fn(ExprId) -> Option<String>,
    ) -> Result<String, EmitError> {
        let mut acc: Option<String> = None;
        for (atom, coef) in ix.terms() {
            let a = match atom {
                Atom::Var(v, _) => var(*v).ok_or_else(|| {
                    EmitError::Construct(format!("loop variable {v} outside its loop"))
                })?,
                Atom::Div(e, d) => {
                    let x = self.index(e, var, value)?;
                    let c = self.index_const(*d);
                    self.op("x", &format!("arith.divui {x}, {c} : index"))
                }
                Atom::Mod(e, d) => {
                    let x = self.index(e, var, value)?;
                    let c = self.index_const(*d);
                    self.op("x", &format!("arith.remui {x}, {c} : index"))
                }
                Atom::Value(e, _) => {
                    let x = value(*e).ok_or_else(|| {
                        EmitError::Construct(format!("index value {e} outside its body"))
                    })?;
                    self.op("x", &format!("arith.index_cast {x} : i64 to index"))
                }
            };
            let term = if *coef == 1 {
                a
            } else {
                let c = self.index_const(*coef);
                self.op("x", &format!("arith.muli {a}, {c} : index"))
            };
            acc = Some(match acc {
                None => term,
                Some(s) => self.op("x", &format!("arith.addi {s}, {term} : index")),
            });
        }
        let k = ix.constant_part();
        Ok(match acc {
            None => self.index_const(k),
            Some(s) if k == 0 => s,
            Some(s) => {
                let c = self.index_const(k);
                self.op("x", &format!("arith.addi {s}, {c} : index"))
            }
        })
    }
}

/// `affine_map<(d0, d1) -> (d0)>`: the identity on the first `keep` of `dims` loops.
pub fn prefix_map(dims: usize, keep: usize) -> String {
    let ds: Vec<String> = (0..dims).map(|i| format!("d{i}")).collect();
    format!(
        "affine_map<({}) -> ({})>",
        ds.join(", "),
        ds[..keep].join(", ")
    )
}

/// `"parallel", "parallel", "reduction"`.
pub fn iterators(parallel: usize, reduction: usize) -> String {
    let mut v = vec!["\"parallel\""; parallel];
    v.extend(std::iter::repeat_n("\"reduction\"", reduction));
    v.join(", ")
}
