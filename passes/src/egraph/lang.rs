//! The e-graph language: one e-node kind per [`tessera_ir::Op`] kind.
//!
//! * `Op(kind, children)`: an op application. Ops that carry attributes take an
//!   [`TNode::Attr`] e-class as their first child, so rule patterns can bind the
//!   attributes like any operand: `(transpose ?perm (transpose ?perm2 ?x))`. Ops without
//!   attributes (identity, elementwise unary/binary, where, matmul) have only operands:
//!   `(add ?x ?y)`.
//! * `Attr`: the whole op with its attributes, a leaf. Attribute classes never merge with
//!   anything else.
//! * `Input(k)`: graph input `k`; `Const`: a constant tensor (content-addressed, so equal
//!   constants share one e-class).
//! * `Proj(k, t)`: output `k` of a multi-output op `t` (split, layer norm with stats,
//!   dropout with mask, max pool with indices); the op's own e-class is a tuple.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use egg::{FromOp, Id, Language};
use tessera_ir::{BinaryOp, Op, ReduceOp, Tensor, UnaryOp};

/// An op kind: an index into [`kind_names`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind(u8);

/// Every op name the language knows, in a fixed order (the text form's names).
pub fn kind_names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut v: Vec<&'static str> = vec![
            "identity",
            "dropout",
            "where",
            "clip",
            "gelu",
            "cast",
            "matmul",
            "gemm",
            "conv",
            "max_pool",
            "avg_pool",
            "softmax",
            "log_softmax",
            "cumsum",
            "layer_norm",
            "batch_norm",
            "lrn",
            "reshape",
            "transpose",
            "expand",
            "concat",
            "split",
            "slice",
            "gather",
            "gather_elements",
            "gather_nd",
            "rms_norm",
            "attention",
        ];
        v.extend(UnaryOp::ALL.iter().map(|u| u.name()));
        v.extend(BinaryOp::ALL.iter().map(|b| b.name()));
        v.extend(ReduceOp::ALL.iter().map(|r| r.name()));
        v
    })
}

impl Kind {
    /// The kind with this name.
    pub fn named(name: &str) -> Option<Kind> {
        kind_names()
            .iter()
            .position(|n| *n == name)
            .and_then(|i| u8::try_from(i).ok())
            .map(Kind)
    }

    /// The kind of `op`, or `None` for constants (which are [`TNode::Const`]) and for ops
    /// this language does not know.
    pub fn of(op: &Op) -> Option<Kind> {
        match op {
            Op::Constant(_) => None,
            _ => Kind::named(op.name()),
        }
    }

    pub fn name(self) -> &'static str {
        kind_names()[self.0 as usize]
    }

    /// The op of an attribute-free kind, or `None` if the kind has attributes (then its
    /// first child is an [`TNode::Attr`]).
    pub fn plain_op(self) -> Option<Op> {
        let name = self.name();
        match name {
            "identity" => return Some(Op::Identity),
            "where" => return Some(Op::Where),
            "matmul" => return Some(Op::MatMul),
            _ => {}
        }
        if let Some(u) = UnaryOp::ALL.iter().find(|u| u.name() == name) {
            return Some(Op::Unary(*u));
        }
        BinaryOp::ALL
            .iter()
            .find(|b| b.name() == name)
            .map(|b| Op::Binary(*b))
    }

    /// True if ops of this kind carry attributes (an `Attr` first child).
    pub fn has_attrs(self) -> bool {
        self.plain_op().is_none()
    }
}

/// An op with its attributes, compared by its canonical debug rendering.
#[derive(Clone)]
pub struct AttrRef {
    key: Arc<str>,
    hash: u64,
    op: Arc<Op>,
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl AttrRef {
    pub fn new(op: Op) -> AttrRef {
        let key: Arc<str> = format!("{op:?}").into();
        AttrRef {
            hash: fnv(key.as_bytes()),
            key,
            op: Arc::new(op),
        }
    }

    pub fn op(&self) -> &Op {
        &self.op
    }
}

impl PartialEq for AttrRef {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}
impl Eq for AttrRef {}
impl Hash for AttrRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}
impl PartialOrd for AttrRef {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for AttrRef {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}
impl fmt::Debug for AttrRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// A constant tensor, compared by content (fingerprint, then bytes).
#[derive(Clone)]
pub struct ConstRef {
    fingerprint: u64,
    tensor: Tensor,
}

impl ConstRef {
    pub fn new(tensor: Tensor) -> ConstRef {
        ConstRef {
            fingerprint: tensor.fingerprint(),
            tensor,
        }
    }

    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

impl PartialEq for ConstRef {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
            && (self.tensor.shares_storage_with(&other.tensor) || self.tensor == other.tensor)
    }
}
impl Eq for ConstRef {}
impl Hash for ConstRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.fingerprint);
    }
}
impl PartialOrd for ConstRef {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ConstRef {
    fn cmp(&self, other: &Self) -> Ordering {
        self.fingerprint.cmp(&other.fingerprint)
    }
}
impl fmt::Debug for ConstRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "const:{}:{:016x}", self.tensor.ty(), self.fingerprint)
    }
}

/// One e-node. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TNode {
    Input(u32),
    Const(ConstRef),
    Attr(AttrRef),
    Op(Kind, Vec<Id>),
    Proj(u32, [Id; 1]),
}

/// What e-matching compares first: the variant and, for ops, the kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Discriminant {
    Input,
    Const,
    Attr,
    Op(Kind),
    Proj(u32),
}

impl Language for TNode {
    type Discriminant = Discriminant;

    fn discriminant(&self) -> Discriminant {
        match self {
            TNode::Input(_) => Discriminant::Input,
            TNode::Const(_) => Discriminant::Const,
            TNode::Attr(_) => Discriminant::Attr,
            TNode::Op(k, _) => Discriminant::Op(*k),
            TNode::Proj(k, _) => Discriminant::Proj(*k),
        }
    }

    fn matches(&self, other: &Self) -> bool {
        match (self, other) {
            (TNode::Input(a), TNode::Input(b)) => a == b,
            (TNode::Const(a), TNode::Const(b)) => a == b,
            (TNode::Attr(a), TNode::Attr(b)) => a == b,
            (TNode::Op(a, x), TNode::Op(b, y)) => a == b && x.len() == y.len(),
            (TNode::Proj(a, _), TNode::Proj(b, _)) => a == b,
            _ => false,
        }
    }

    fn children(&self) -> &[Id] {
        match self {
            TNode::Op(_, c) => c,
            TNode::Proj(_, c) => c,
            _ => &[],
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            TNode::Op(_, c) => c,
            TNode::Proj(_, c) => c,
            _ => &mut [],
        }
    }
}

impl fmt::Display for TNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TNode::Input(k) => write!(f, "input.{k}"),
            TNode::Const(c) => write!(f, "{c:?}"),
            TNode::Attr(a) => write!(f, "{a:?}"),
            TNode::Op(k, _) => f.write_str(k.name()),
            TNode::Proj(k, _) => write!(f, "proj.{k}"),
        }
    }
}

/// Why a pattern operator did not parse.
#[derive(Debug, thiserror::Error)]
#[error("unknown e-graph operator {0:?}")]
pub struct UnknownOp(String);

impl FromOp for TNode {
    type Error = UnknownOp;

    /// Parses the operators rule patterns use: op kinds (`matmul`, `transpose`, ...) and
    /// projections (`proj.1`). Constants, attributes and inputs only come from graphs.
    fn from_op(op: &str, children: Vec<Id>) -> Result<Self, Self::Error> {
        if let Some(k) = op.strip_prefix("proj.") {
            let k: u32 = k.parse().map_err(|_| UnknownOp(op.to_string()))?;
            return match children.as_slice() {
                [c] => Ok(TNode::Proj(k, [*c])),
                _ => Err(UnknownOp(format!("{op} with {} children", children.len()))),
            };
        }
        let kind = Kind::named(op).ok_or_else(|| UnknownOp(op.to_string()))?;
        Ok(TNode::Op(kind, children))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_name_is_unique_and_round_trips() {
        let names = kind_names();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(Kind::named(n).map(|k| k.0 as usize), Some(i), "{n}");
        }
        assert!(names.len() < 256);
    }

    #[test]
    fn plain_kinds_are_exactly_the_attribute_free_ops() {
        for n in kind_names() {
            let k = Kind::named(n).expect("listed");
            if let Some(op) = k.plain_op() {
                assert_eq!(op.name(), *n);
            }
        }
        assert!(!Kind::named("add").expect("add").has_attrs());
        assert!(Kind::named("transpose").expect("transpose").has_attrs());
        assert!(Kind::named("softmax").expect("softmax").has_attrs());
    }

    #[test]
    fn attrs_compare_by_value() {
        let a = AttrRef::new(Op::Transpose { perm: vec![1, 0] });
        let b = AttrRef::new(Op::Transpose { perm: vec![1, 0] });
        let c = AttrRef::new(Op::Transpose { perm: vec![0, 1] });
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
