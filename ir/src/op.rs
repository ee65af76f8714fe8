//! The closed set of operations and their typed attributes.
//!
//! Attributes are normalized when a graph is built (the ONNX importer resolves defaults,
//! negative axes and operands that ONNX passes as tensors but that fix a shape, such as
//! `Reshape`'s target or `Slice`'s bounds). So every op here has static, explicit
//! attributes, and `Squeeze`, `Unsqueeze` and `Flatten` are all [`Op::Reshape`].

use crate::{DType, Shape, Tensor};

/// Elementwise functions of one operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Abs,
    Sign,
    Relu,
    Exp,
    Log,
    Sqrt,
    Reciprocal,
    Erf,
    Tanh,
    Sigmoid,
    Softplus,
    Sin,
    Cos,
    Floor,
    Ceil,
    Round,
    /// Logical not; bool → bool.
    Not,
    /// float → bool.
    IsNaN,
    /// float → bool (either infinity).
    IsInf,
}

impl UnaryOp {
    pub const ALL: [UnaryOp; 20] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Relu,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Reciprocal,
        UnaryOp::Erf,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Softplus,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
        UnaryOp::Not,
        UnaryOp::IsNaN,
        UnaryOp::IsInf,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Relu => "relu",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Reciprocal => "reciprocal",
            UnaryOp::Erf => "erf",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Round => "round",
            UnaryOp::Not => "not",
            UnaryOp::IsNaN => "is_nan",
            UnaryOp::IsInf => "is_inf",
        }
    }

    /// Which operand dtypes the function accepts.
    pub fn domain(self) -> Domain {
        match self {
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Relu => Domain::Numeric,
            UnaryOp::Not => Domain::Bool,
            _ => Domain::Float,
        }
    }

    /// True if the result is bool whatever the operand (`is_nan`, `is_inf`).
    pub fn is_predicate(self) -> bool {
        matches!(self, UnaryOp::IsNaN | UnaryOp::IsInf)
    }
}

/// Elementwise functions of two operands, with numpy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// `a^b`; the exponent may have another numeric dtype than the base.
    Pow,
    Max,
    Min,
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    And,
    Or,
    Xor,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 15] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Equal,
        BinaryOp::Less,
        BinaryOp::LessOrEqual,
        BinaryOp::Greater,
        BinaryOp::GreaterOrEqual,
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Xor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
            BinaryOp::Equal => "equal",
            BinaryOp::Less => "less",
            BinaryOp::LessOrEqual => "less_equal",
            BinaryOp::Greater => "greater",
            BinaryOp::GreaterOrEqual => "greater_equal",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Xor => "xor",
        }
    }

    /// Which operand dtypes the function accepts.
    pub fn domain(self) -> Domain {
        match self {
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => Domain::Bool,
            BinaryOp::Equal => Domain::Any,
            _ => Domain::Numeric,
        }
    }

    /// True for comparisons and logic: the result is bool.
    pub fn is_predicate(self) -> bool {
        matches!(
            self,
            BinaryOp::Equal
                | BinaryOp::Less
                | BinaryOp::LessOrEqual
                | BinaryOp::Greater
                | BinaryOp::GreaterOrEqual
                | BinaryOp::And
                | BinaryOp::Or
                | BinaryOp::Xor
        )
    }
}

/// A set of accepted operand dtypes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Floating-point only.
    Float,
    /// Floats and integers, not bool.
    Numeric,
    /// Bool only.
    Bool,
    /// Every dtype.
    Any,
}

impl Domain {
    pub fn contains(self, d: DType) -> bool {
        match self {
            Domain::Float => d.is_float(),
            Domain::Numeric => d != DType::Bool,
            Domain::Bool => d == DType::Bool,
            Domain::Any => true,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Domain::Float => "a float dtype",
            Domain::Numeric => "a numeric (non-bool) dtype",
            Domain::Bool => "bool",
            Domain::Any => "any dtype",
        }
    }
}

/// Reductions over a set of axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
}

impl ReduceOp {
    pub const ALL: [ReduceOp; 5] = [
        ReduceOp::Sum,
        ReduceOp::Mean,
        ReduceOp::Max,
        ReduceOp::Min,
        ReduceOp::Prod,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::Mean => "reduce_mean",
            ReduceOp::Max => "reduce_max",
            ReduceOp::Min => "reduce_min",
            ReduceOp::Prod => "reduce_prod",
        }
    }
}

/// Which GELU formula.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GeluApprox {
    /// `x/2 · (1 + erf(x/√2))`.
    None,
    /// `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`.
    Tanh,
}

/// Convolution attributes. The kernel's spatial size comes from the weight's shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvAttrs {
    /// One per spatial axis.
    pub strides: Vec<usize>,
    /// Begin pads for every spatial axis, then end pads (ONNX order).
    pub pads: Vec<usize>,
    /// One per spatial axis.
    pub dilations: Vec<usize>,
    pub group: usize,
}

/// Max or average pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// With `indices`, a second output holds each maximum's row-major offset in the
    /// whole input tensor (i64).
    Max { indices: bool },
    /// With `count_include_pad`, padded positions count in the divisor.
    Average { count_include_pad: bool },
}

/// Pooling attributes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolAttrs {
    /// Window size, one per spatial axis.
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    /// Begin pads for every spatial axis, then end pads.
    pub pads: Vec<usize>,
    pub dilations: Vec<usize>,
    pub ceil_mode: bool,
}

/// One operation of the graph. The set is closed: adding an op means adding a variant
/// here, its type rule in `infer`, its text syntax in `text`, and its reference kernel.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A constant tensor (initializers, `Constant` nodes, folded subgraphs). Its storage is
    /// shared, never copied, when graphs are cloned.
    Constant(Tensor),
    Identity,
    /// Inference-mode dropout: an identity. With `mask`, a second output holds an all-true
    /// bool mask.
    Dropout {
        ratio: f32,
        mask: bool,
    },
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// `cond ? x : y` with three-way broadcasting. Inputs: cond (bool), x, y.
    Where,
    /// Clamp into `[min, max]`.
    Clip {
        min: f64,
        max: f64,
    },
    Gelu {
        approximate: GeluApprox,
    },
    Cast {
        to: DType,
    },
    /// numpy `matmul`: batch dims broadcast; rank-1 operands are promoted and the added
    /// dimension removed again.
    MatMul,
    /// `alpha · op(A) · op(B) + beta · C`; inputs A, B and optionally C (broadcast to
    /// `[M, N]`).
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    /// N-d convolution; inputs X `[N, C, ...]`, W `[M, C/group, k...]`, optional B `[M]`.
    Conv(ConvAttrs),
    /// Max or average pooling over the spatial axes of `[N, C, ...]`.
    Pool {
        kind: PoolKind,
        attrs: PoolAttrs,
    },
    /// Reduction over `axes` (sorted, unique). An empty list reduces nothing.
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
        keep_dims: bool,
    },
    Softmax {
        axis: usize,
    },
    /// Running sum along `axis`: element `i` sums elements `0..=i` (`0..i` when
    /// `exclusive`; counted from the end when `reverse`). Numeric dtypes.
    CumSum {
        axis: usize,
        exclusive: bool,
        reverse: bool,
    },
    LogSoftmax {
        axis: usize,
    },
    /// Normalizes over axes `axis..rank`; inputs X, scale and optional bias. With `stats`,
    /// two more outputs: the mean and the inverse standard deviation (f32).
    LayerNorm {
        axis: usize,
        epsilon: f32,
        stats: bool,
    },
    /// Inference batch normalization; inputs X, scale, bias, mean, var (all `[C]` but X).
    BatchNorm {
        epsilon: f32,
    },
    /// Local response normalization across channels.
    Lrn {
        size: usize,
        alpha: f32,
        beta: f32,
        bias: f32,
    },
    /// Same elements, new shape (row-major order kept).
    Reshape {
        shape: Shape,
    },
    Transpose {
        perm: Vec<usize>,
    },
    /// Broadcast to exactly `shape`.
    Expand {
        shape: Shape,
    },
    Concat {
        axis: usize,
    },
    /// One output per entry of `sizes`.
    Split {
        axis: usize,
        sizes: Vec<usize>,
    },
    /// Strided slice on `axes`. Bounds are normalized for the input shape: for a positive
    /// step `0 <= start <= end <= dim`; for a negative step `-1 <= end <= start < dim`.
    Slice {
        axes: Vec<usize>,
        starts: Vec<i64>,
        ends: Vec<i64>,
        steps: Vec<i64>,
    },
    /// `numpy.take` along `axis`; inputs data and i32/i64 indices (negative counts from
    /// the end).
    Gather {
        axis: usize,
    },
    GatherElements {
        axis: usize,
    },
    GatherNd {
        batch_dims: usize,
    },
    /// Root-mean-square normalization over axes `axis..rank`: `x / sqrt(mean(x²) + ε) · scale`.
    /// Inputs X and scale (broadcast over the normalized axes). Produced by the optimizer.
    RmsNorm {
        axis: usize,
        epsilon: f32,
    },
    /// Scaled dot-product attention: `softmax(Q·Kᵀ·scale + mask) · V` over the last two
    /// axes. Inputs Q `[..., S, D]`, K `[..., T, D]`, V `[..., T, E]` (batch dims equal)
    /// and optionally an additive mask broadcast to `[..., S, T]`; output `[..., S, E]`.
    /// Produced by the optimizer; backends run it as one kernel.
    Attention {
        scale: f32,
    },
}

impl Op {
    /// The op's name in the text form.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Constant(_) => "constant",
            Op::Identity => "identity",
            Op::Dropout { .. } => "dropout",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Where => "where",
            Op::Clip { .. } => "clip",
            Op::Gelu { .. } => "gelu",
            Op::Cast { .. } => "cast",
            Op::MatMul => "matmul",
            Op::Gemm { .. } => "gemm",
            Op::Conv(_) => "conv",
            Op::Pool {
                kind: PoolKind::Max { .. },
                ..
            } => "max_pool",
            Op::Pool {
                kind: PoolKind::Average { .. },
                ..
            } => "avg_pool",
            Op::Reduce { op, .. } => op.name(),
            Op::Softmax { .. } => "softmax",
            Op::CumSum { .. } => "cumsum",
            Op::LogSoftmax { .. } => "log_softmax",
            Op::LayerNorm { .. } => "layer_norm",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Lrn { .. } => "lrn",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Expand { .. } => "expand",
            Op::Concat { .. } => "concat",
            Op::Split { .. } => "split",
            Op::Slice { .. } => "slice",
            Op::Gather { .. } => "gather",
            Op::GatherElements { .. } => "gather_elements",
            Op::GatherNd { .. } => "gather_nd",
            Op::RmsNorm { .. } => "rms_norm",
            Op::Attention { .. } => "attention",
        }
    }

    /// The accepted number of inputs, `min..=max`.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Constant(_) => (0, 0),
            Op::Identity
            | Op::Dropout { .. }
            | Op::Unary(_)
            | Op::Clip { .. }
            | Op::Gelu { .. }
            | Op::Cast { .. }
            | Op::Pool { .. }
            | Op::Reduce { .. }
            | Op::Softmax { .. }
            | Op::LogSoftmax { .. }
            | Op::CumSum { .. }
            | Op::Lrn { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Expand { .. }
            | Op::Split { .. }
            | Op::Slice { .. } => (1, 1),
            Op::Binary(_)
            | Op::MatMul
            | Op::Gather { .. }
            | Op::GatherElements { .. }
            | Op::GatherNd { .. }
            | Op::RmsNorm { .. } => (2, 2),
            Op::Where => (3, 3),
            Op::Gemm { .. } | Op::Conv(_) | Op::LayerNorm { .. } => (2, 3),
            Op::BatchNorm { .. } => (5, 5),
            Op::Attention { .. } => (3, 4),
            Op::Concat { .. } => (1, usize::MAX),
        }
    }

    /// How many values the op produces.
    pub fn num_outputs(&self) -> usize {
        match self {
            Op::Dropout { mask: true, .. } => 2,
            Op::LayerNorm { stats: true, .. } => 3,
            Op::Pool {
                kind: PoolKind::Max { indices: true },
                ..
            } => 2,
            Op::Split { sizes, .. } => sizes.len(),
            _ => 1,
        }
    }

    /// True for ops that map each output element from the same-index input elements
    /// (after broadcasting), with no reduction or data movement.
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Identity
                | Op::Dropout { mask: false, .. }
                | Op::Unary(_)
                | Op::Binary(_)
                | Op::Where
                | Op::Clip { .. }
                | Op::Gelu { .. }
                | Op::Cast { .. }
        )
    }
}
