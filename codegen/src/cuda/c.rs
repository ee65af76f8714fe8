//! C syntax shared by the printers: types, literals, conversions, index expressions and
//! kernel signatures.

use std::fmt::Write;

use tessera_ir::DType;

use tessera_lower::kir::{Access, Atom, ExprId, Index, Lit, Param, ParamId, Var};

/// Below this magnitude every index, extent and partial sum fits 32-bit signed math with
/// room for grid-stride increments.
pub(crate) const NARROW_LIMIT: i64 = 1 << 30;

/// The C type a value of `d` is stored as.
pub fn storage(d: DType) -> &'static str {
    match d {
        DType::F32 => "float",
        DType::F64 => "double",
        DType::F16 => "__half",
        DType::BF16 => "__nv_bfloat16",
        DType::I8 => "signed char",
        DType::I16 => "short",
        DType::I32 => "int",
        DType::I64 => "long long",
        DType::U8 => "unsigned char",
        DType::U16 => "unsigned short",
        DType::U32 => "unsigned int",
        DType::U64 => "unsigned long long",
        DType::Bool => "bool",
    }
}

/// The C type a value of `d` is computed in: f32 for all narrower floats, 64-bit for
/// integers (unsigned for u64), `bool` for bools.
pub(crate) fn compute(d: DType) -> &'static str {
    match d {
        DType::F32 | DType::F16 | DType::BF16 => "float",
        DType::F64 => "double",
        DType::U64 => "unsigned long long",
        DType::Bool => "bool",
        _ => "long long",
    }
}

/// True if `d` computes in `float`.
pub(crate) fn is_f32_compute(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F16 | DType::BF16)
}

/// `x` (a compute value of `d`) rounded to `d`'s precision: a no-op except for f16/bf16.
pub(crate) fn round(d: DType, x: &str) -> String {
    match d {
        DType::F16 => format!("t_round_f16({x})"),
        DType::BF16 => format!("t_round_bf16({x})"),
        _ => x.to_string(),
    }
}

/// A stored element (an lvalue or value of `storage(d)`) as a compute value.
pub(crate) fn load_conv(d: DType, x: &str) -> String {
    match d {
        DType::F16 => format!("__half2float({x})"),
        DType::BF16 => format!("__bfloat162float({x})"),
        DType::F32 | DType::F64 | DType::Bool | DType::U64 | DType::I64 => x.to_string(),
        _ => format!("(long long)({x})"),
    }
}

/// A compute value of `d` converted for storage as `d`.
pub(crate) fn store_conv(d: DType, x: &str) -> String {
    match d {
        DType::F16 => format!("__float2half_rn({x})"),
        DType::BF16 => format!("__float2bfloat16_rn({x})"),
        DType::F32 | DType::F64 | DType::Bool | DType::U64 | DType::I64 => x.to_string(),
        d => format!("({})({x})", storage(d)),
    }
}

/// The unsigned integer holding the bits of one `d` element.
pub(crate) fn bits_type(d: DType) -> &'static str {
    match d.size_bytes() {
        1 => "unsigned char",
        2 => "unsigned short",
        4 => "unsigned int",
        _ => "unsigned long long",
    }
}

/// The compute value of a `d` element from its bits (an expression of an unsigned type at
/// least as wide, whose low bits hold the element).
pub(crate) fn from_bits(d: DType, bits: &str) -> String {
    match d {
        DType::F32 => format!("__uint_as_float({bits})"),
        DType::F64 => format!("__longlong_as_double((long long)({bits}))"),
        DType::F16 => format!("__half2float(__ushort_as_half((unsigned short)({bits})))"),
        DType::BF16 => format!("__bfloat162float(__ushort_as_bfloat16((unsigned short)({bits})))"),
        DType::Bool => format!("(((unsigned)({bits}) & 0xffu) != 0u)"),
        DType::I8 => format!("(long long)(signed char)({bits})"),
        DType::I16 => format!("(long long)(short)({bits})"),
        DType::I32 => format!("(long long)(int)({bits})"),
        DType::I64 => format!("(long long)({bits})"),
        DType::U8 => format!("(long long)(unsigned char)({bits})"),
        DType::U16 => format!("(long long)(unsigned short)({bits})"),
        DType::U32 => format!("(long long)(unsigned int)({bits})"),
        DType::U64 => format!("(unsigned long long)({bits})"),
    }
}

/// The bits of compute value `x` stored as `d`, as `bits_type(d)`.
pub(crate) fn to_bits(d: DType, x: &str) -> String {
    match d {
        DType::F32 => format!("__float_as_uint({x})"),
        DType::F64 => format!("(unsigned long long)__double_as_longlong({x})"),
        DType::F16 => format!("__half_as_ushort(__float2half_rn({x}))"),
        DType::BF16 => format!("__bfloat16_as_ushort(__float2bfloat16_rn({x}))"),
        DType::Bool => format!("(unsigned char)(({x}) ? 1 : 0)"),
        d => format!("({})({x})", bits_type(d)),
    }
}

fn float_lit(v: f64, double: bool) -> String {
    if v.is_nan() {
        return if double {
            "__longlong_as_double(0x7ff8000000000000LL)".into()
        } else {
            "__int_as_float(0x7fc00000)".into()
        };
    }
    if v.is_infinite() {
        let s = match (double, v > 0.0) {
            (true, true) => "__longlong_as_double(0x7ff0000000000000LL)",
            (true, false) => "__longlong_as_double((long long)0xfff0000000000000ULL)",
            (false, true) => "__int_as_float(0x7f800000)",
            (false, false) => "__int_as_float((int)0xff800000u)",
        };
        return s.into();
    }
    if double {
        let s = format!("{v:?}");
        if s.contains(['.', 'e', 'E']) {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let f = v as f32;
        let s = format!("{f:?}");
        let s = if s.contains(['.', 'e', 'E']) {
            s
        } else {
            format!("{s}.0")
        };
        format!("{s}f")
    }
}

fn int_lit(v: i64) -> String {
    if v == i64::MIN {
        "(-9223372036854775807LL - 1)".into()
    } else {
        format!("{v}LL")
    }
}

/// A literal as a compute value of `d`.
pub(crate) fn lit(l: Lit, d: DType) -> String {
    match d {
        DType::F64 => float_lit(l.as_f64(), true),
        d if is_f32_compute(d) => {
            let s = float_lit(l.as_f64(), false);
            if d == DType::F32 { s } else { round(d, &s) }
        }
        DType::Bool => match l {
            Lit::B(b) => b.to_string(),
            other => (other.as_f64() != 0.0).to_string(),
        },
        DType::U64 => format!("{}ULL", l.as_i64() as u64),
        _ => int_lit(l.as_i64()),
    }
}

/// A float constant in `double` or `float` syntax.
pub(crate) fn real(v: f64, double: bool) -> String {
    float_lit(v, double)
}

/// Largest magnitude any partial sum of `ix` (and of the indices inside its divisions)
/// can reach.
pub(crate) fn index_bound(ix: &Index) -> i64 {
    let mut total = ix.constant_part().saturating_abs();
    for (a, c) in ix.terms() {
        let m = match a {
            Atom::Var(_, n) | Atom::Value(_, n) => *n,
            Atom::Div(e, _) | Atom::Mod(e, _) => index_bound(e),
        };
        total = total.saturating_add(c.saturating_abs().saturating_mul(m));
    }
    total
}

/// How index expressions are printed.
pub(crate) struct IndexCx<'a> {
    /// 64-bit math.
    pub wide: bool,
    /// The C expression of a loop variable.
    pub var: &'a dyn Fn(Var) -> String,
    /// The C expression of an integer kernel expression (`Atom::Value`), as `long long`.
    pub value: &'a dyn Fn(ExprId) -> String,
}

fn atom(a: &Atom, cx: &IndexCx) -> String {
    match a {
        Atom::Var(v, _) => (cx.var)(*v),
        Atom::Div(e, d) => format!("t_div({}, {d})", index(e, cx)),
        Atom::Mod(e, d) => format!("t_mod({}, {d})", index(e, cx)),
        Atom::Value(x, _) => {
            if cx.wide {
                (cx.value)(*x)
            } else {
                format!("(int){}", (cx.value)(*x))
            }
        }
    }
}

/// `ix` as a C expression of type `cx.ty()`.
pub(crate) fn index(ix: &Index, cx: &IndexCx) -> String {
    let mut s = String::new();
    for (a, c) in ix.terms() {
        let t = atom(a, cx);
        let (neg, mag) = (*c < 0, c.unsigned_abs());
        if s.is_empty() {
            if neg {
                s.push('-');
            }
        } else {
            s.push_str(if neg { " - " } else { " + " });
        }
        if mag == 1 {
            s.push_str(&t);
        } else {
            let _ = write!(s, "{mag} * {t}");
        }
    }
    let k = ix.constant_part();
    let suffix = if cx.wide { "LL" } else { "" };
    if s.is_empty() {
        let _ = write!(s, "{k}{suffix}");
    } else if k > 0 {
        let _ = write!(s, " + {k}{suffix}");
    } else if k < 0 {
        let _ = write!(s, " - {}{suffix}", k.unsigned_abs());
    }
    s
}

/// The parameter list of every function of a kernel: `p0 … pn`, then `status`.
/// Read-only parameters are `const … __restrict__` unless they take part in an in-place
/// pair (then input and output alias).
pub(crate) fn signature(params: &[Param], in_place: &[(ParamId, ParamId)]) -> String {
    let mut s = String::new();
    for (i, p) in params.iter().enumerate() {
        let aliased = in_place
            .iter()
            .any(|&(a, b)| a.index() == i || b.index() == i);
        let ty = storage(p.dtype);
        let decl = match (p.access, aliased) {
            (Access::Read, false) => format!("const {ty}* __restrict__ p{i}"),
            (Access::Read, true) => format!("const {ty}* p{i}"),
            (_, false) => format!("{ty}* __restrict__ p{i}"),
            (_, true) => format!("{ty}* p{i}"),
        };
        let _ = write!(s, "{decl}, ");
    }
    s.push_str("unsigned long long* __restrict__ status");
    s
}

/// Grid size for `work` units of `per_block` each: at least 1, at most `cap` (kernels
/// loop over the rest).
pub(crate) fn grid_for(work: usize, per_block: usize, cap: usize) -> u32 {
    work.div_ceil(per_block.max(1)).clamp(1, cap) as u32
}
