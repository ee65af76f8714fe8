//! What role each op plays in a fusion group.
//!
//! * **Pure** ops ([`OpClass::Pointwise`], [`OpClass::Gather`], materialized views) compute
//!   each output element from input elements at known indices, so a kernel may evaluate
//!   them at any index, recomputing instead of loading.
//! * **Roots** ([`OpClass::Reduction`], [`OpClass::Window`], [`OpClass::Contraction`],
//!   [`OpClass::Attention`], [`OpClass::Concat`]) give a kernel its loop structure; a group
//!   has at most one kind of root.
//!
//! Which ops are library contractions (GEMM calls) and which become loop nests is the CPU
//! backend's choice, made here so that the planner and the kernel builder agree.

use tessera_ir::{DType, Graph, NodeId, Op};

use super::view::is_view;

/// The role of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpClass {
    /// A constant: a kernel parameter (or an inline literal), never a kernel.
    Constant,
    /// A re-indexing of one input; read through by consumers unless materialized.
    View,
    /// Elementwise compute with numpy broadcasting (unary, binary, where, clip, gelu, cast,
    /// batch norm, dropout with a mask, a reduction over no axes).
    Pointwise,
    /// Data-dependent indexing: gather, gather_elements, gather_nd.
    Gather,
    /// Concatenation: its kernel writes one input's region at a time.
    Concat,
    /// A reduction over axes of its (first) input, with pointwise prologue and epilogue:
    /// reduce, softmax, log_softmax, layer_norm, rms_norm.
    Reduction,
    /// A loop nest with its own inner loops over a window or a contraction dimension:
    /// pooling, LRN, running sums (a window over the whole axis), direct (grouped, depthwise or non-float) convolution, and matmul/gemm
    /// of dtypes the GEMM library does not take.
    Window,
    /// A GEMM library call (f32/f64 matmul, gemm, and convolution by im2col + GEMM) with a
    /// pointwise epilogue applied per output tile.
    Contraction,
    /// Fused attention, one kernel.
    Attention,
}

impl OpClass {
    /// True for classes that define a kernel's loop structure.
    pub fn is_root(self) -> bool {
        matches!(
            self,
            OpClass::Concat
                | OpClass::Reduction
                | OpClass::Window
                | OpClass::Contraction
                | OpClass::Attention
        )
    }
}

fn gemm_dtype(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64)
}

/// Channels per group from which a grouped convolution runs as one GEMM per group rather
/// than as a direct loop nest.
pub const GEMM_MIN_GROUP_CHANNELS: usize = 8;

/// The class of node `n`.
pub fn classify(g: &Graph, n: NodeId) -> OpClass {
    let node = g.node(n);
    let dtype = |slot: usize| g.ty(node.inputs[slot]).dtype;
    match &node.op {
        Op::Constant(_) => OpClass::Constant,
        op if is_view(op) => OpClass::View,
        Op::Reduce { axes, .. } if axes.is_empty() => OpClass::Pointwise,
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Where
        | Op::Clip { .. }
        | Op::Gelu { .. }
        | Op::Cast { .. }
        | Op::BatchNorm { .. }
        | Op::Dropout { .. } => OpClass::Pointwise,
        Op::Gather { .. } | Op::GatherElements { .. } | Op::GatherNd { .. } => OpClass::Gather,
        Op::Concat { .. } => OpClass::Concat,
        Op::Reduce { .. }
        | Op::Softmax { .. }
        | Op::LogSoftmax { .. }
        | Op::LayerNorm { .. }
        | Op::RmsNorm { .. } => OpClass::Reduction,
        Op::Pool { .. } | Op::Lrn { .. } | Op::CumSum { .. } => OpClass::Window,
        Op::MatMul | Op::Gemm { .. } => {
            if gemm_dtype(dtype(0)) {
                OpClass::Contraction
            } else {
                OpClass::Window
            }
        }
        Op::Conv(a) => {
            let x = g.ty(node.inputs[0]).shape.dims();
            let c = x[1];
            // Grouped 2-D f32 convolutions (depthwise included) have a native direct CPU
            // kernel behind the same body.
            let grouped_2d = dtype(0) == DType::F32 && x.len() == 4 && a.group > 1;
            if gemm_dtype(dtype(0))
                && (a.group == 1 || c / a.group >= GEMM_MIN_GROUP_CHANNELS || grouped_2d)
            {
                OpClass::Contraction
            } else {
                OpClass::Window
            }
        }
        Op::Attention { .. } => OpClass::Attention,
        Op::Identity
        | Op::Split { .. }
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Expand { .. }
        | Op::Slice { .. } => OpClass::View,
    }
}

/// For a reduction-class node: the axes of its first input it reduces over.
pub fn reduced_axes(g: &Graph, n: NodeId) -> Vec<usize> {
    let node = g.node(n);
    let rank = g.ty(node.inputs[0]).shape.rank();
    match &node.op {
        Op::Reduce { axes, .. } => axes.clone(),
        Op::Softmax { axis } | Op::LogSoftmax { axis } => vec![*axis],
        Op::LayerNorm { axis, .. } | Op::RmsNorm { axis, .. } => (*axis..rank).collect(),
        _ => Vec::new(),
    }
}
