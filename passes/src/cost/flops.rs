//! FLOP counts per op, from static shapes: the one table the roofline
//! ([`super::kernel_work`]) and the training passes (recompute cost, B/W balance) share.
//!
//! The convention, per element of the result unless said otherwise:
//!
//! * A multiply-add counts 2: a contraction (matmul, gemm, conv, attention's two
//!   products) counts `2 · outputs · K`. A bias operand (gemm's `C`, conv's `B`) adds 1
//!   per output element; gemm's `alpha` and `beta` are folded into those.
//! * Elementwise arithmetic, comparisons, logic, rounding, `where` and casts count 1
//!   ([`ELEMENTWISE`]); `clip` counts 2 (a max and a min).
//! * Transcendental and special functions (exp, log, erf, tanh, sigmoid, softplus, sin,
//!   cos, sqrt, reciprocal, pow) count [`TRANSCENDENTAL`] = 4: a polynomial or
//!   special-function-unit evaluation is several arithmetic operations. The figure is a
//!   convention, not a measurement.
//! * Composite ops count the elementwise steps of their decomposition: GELU 8 (erf form:
//!   scale, erf, add, two multiplies) or 12 (tanh form: the cubic, three scales, tanh,
//!   add, multiply); softmax and log-softmax [`SOFTMAX`] = 8 (max, subtract, exp, sum,
//!   divide or log-subtract); layer norm 7 (sum, subtract, square, sum, scale, weight,
//!   bias); RMS norm 4 (square, sum, scale, weight); batch norm 2 (one multiply-add, the
//!   statistics folded per channel); LRN `size + 8` (square, window sum, scale and bias,
//!   pow, divide).
//! * Reductions and running sums count 1 per input element, pooling 1 per window element
//!   of each output.
//! * Data movement (reshape, transpose, expand, concat, split, slice, gathers), constants,
//!   identity and dropout (inference: identity) count 0: they cost bytes, not FLOPs.

use tessera_ir::{BinaryOp, GeluApprox, Graph, NodeId, Op, TensorType, UnaryOp};

/// FLOPs of one elementwise arithmetic operation.
pub const ELEMENTWISE: u64 = 1;

/// FLOPs of one transcendental or special function (exp, tanh, sqrt, pow, ...).
pub const TRANSCENDENTAL: u64 = 4;

/// FLOPs per element of softmax: max, subtract, exp, sum, divide.
pub const SOFTMAX: u64 = 4 * ELEMENTWISE + TRANSCENDENTAL;

fn numel(t: &TensorType) -> u64 {
    t.shape.numel() as u64
}

/// FLOPs per element of a unary op.
fn unary(u: UnaryOp) -> u64 {
    match u {
        UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Erf
        | UnaryOp::Tanh
        | UnaryOp::Sigmoid
        | UnaryOp::Softplus
        | UnaryOp::Sin
        | UnaryOp::Cos
        | UnaryOp::Sqrt
        | UnaryOp::Reciprocal => TRANSCENDENTAL,
        UnaryOp::Neg
        | UnaryOp::Abs
        | UnaryOp::Sign
        | UnaryOp::Relu
        | UnaryOp::Floor
        | UnaryOp::Ceil
        | UnaryOp::Round
        | UnaryOp::Not
        | UnaryOp::IsNaN
        | UnaryOp::IsInf => ELEMENTWISE,
    }
}

/// FLOPs of `op` applied to operands of types `inputs`, producing `outputs`. See the
/// module documentation for the convention.
pub fn flops(op: &Op, inputs: &[&TensorType], outputs: &[&TensorType]) -> u64 {
    let out0 = outputs.first().map_or(0, |t| numel(t));
    let in0 = inputs.first().map_or(0, |t| numel(t));
    let dims = |i: usize| inputs.get(i).map_or(&[][..], |t| t.shape.dims());
    let bias = |i: usize| if inputs.len() > i { out0 } else { 0 };
    match op {
        Op::Constant(_)
        | Op::Identity
        | Op::Dropout { .. }
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Expand { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Slice { .. }
        | Op::Gather { .. }
        | Op::GatherElements { .. }
        | Op::GatherNd { .. } => 0,
        Op::Unary(u) => unary(*u) * out0,
        Op::Binary(BinaryOp::Pow) => TRANSCENDENTAL * out0,
        Op::Binary(_) | Op::Where | Op::Cast { .. } => ELEMENTWISE * out0,
        Op::Clip { .. } => 2 * ELEMENTWISE * out0,
        Op::Gelu { approximate } => {
            let per = match approximate {
                GeluApprox::None => 4 * ELEMENTWISE + TRANSCENDENTAL,
                GeluApprox::Tanh => 8 * ELEMENTWISE + TRANSCENDENTAL,
            };
            per * out0
        }
        Op::MatMul => {
            // out [.., M, N]; K is the left operand's last dim.
            let k = dims(0).last().copied().unwrap_or(1) as u64;
            2 * out0 * k
        }
        Op::Gemm { trans_a, .. } => {
            let a = dims(0);
            let k = if *trans_a { a.first() } else { a.last() }
                .copied()
                .unwrap_or(1) as u64;
            2 * out0 * k + bias(2)
        }
        Op::Conv(_) => {
            // Each output reads C/group · kernel weights.
            let per_out: u64 = dims(1).iter().skip(1).map(|&d| d as u64).product();
            2 * out0 * per_out + bias(2)
        }
        Op::Pool { attrs, .. } => out0 * attrs.kernel.iter().map(|&k| k as u64).product::<u64>(),
        Op::Reduce { .. } | Op::CumSum { .. } => ELEMENTWISE * in0,
        Op::Softmax { .. } | Op::LogSoftmax { .. } => SOFTMAX * in0,
        Op::LayerNorm { .. } => 7 * ELEMENTWISE * in0,
        Op::RmsNorm { .. } => 4 * ELEMENTWISE * in0,
        Op::BatchNorm { .. } => 2 * in0,
        Op::Lrn { size, .. } => (*size as u64 + 4 * ELEMENTWISE + TRANSCENDENTAL) * in0,
        Op::Attention { .. } => {
            // Q [.., S, D], K [.., T, D], V [.., T, E]: scores (S·T·D multiply-adds), the
            // scale, softmax over T, the weighted sum (S·T·E multiply-adds).
            let (q, v) = (dims(0), dims(2));
            let last2 = |d: &[usize]| match d.len() {
                r if r >= 2 => (d[r - 2] as u64, d[r - 1] as u64),
                _ => (1, 1),
            };
            let ((s, d), (t, _), (_, e)) = (last2(q), last2(dims(1)), last2(v));
            let batch: u64 = q
                .iter()
                .take(q.len().saturating_sub(2))
                .map(|&x| x as u64)
                .product();
            batch * s * t * (2 * d + 2 * e + ELEMENTWISE + SOFTMAX)
        }
    }
}

/// How many of [`flops`]' operations are transcendental evaluations (each counted there
/// as [`TRANSCENDENTAL`]): a cost model for a machine where they cost more than four
/// elementwise operations reweighs them (the CPU calibration does).
pub fn transcendentals(op: &Op, inputs: &[&TensorType], outputs: &[&TensorType]) -> u64 {
    let out0 = outputs.first().map_or(0, |t| numel(t));
    let in0 = inputs.first().map_or(0, |t| numel(t));
    match op {
        Op::Unary(u) if unary(*u) == TRANSCENDENTAL => out0,
        Op::Binary(BinaryOp::Pow) | Op::Gelu { .. } => out0,
        Op::Softmax { .. } | Op::LogSoftmax { .. } | Op::Lrn { .. } => in0,
        // One exponential per score.
        Op::Attention { .. } => {
            let t = inputs
                .get(1)
                .and_then(|k| k.shape.dims().iter().rev().nth(1).copied())
                .unwrap_or(1) as u64;
            let e = outputs
                .first()
                .and_then(|o| o.shape.dims().last().copied())
                .unwrap_or(1)
                .max(1) as u64;
            out0 / e * t
        }
        _ => 0,
    }
}

/// [`transcendentals`] of node `id` of `g`.
pub fn node_transcendentals(g: &Graph, id: NodeId) -> u64 {
    let n = g.node(id);
    let ins: Vec<&TensorType> = n.inputs.iter().map(|&v| g.ty(v)).collect();
    let outs: Vec<&TensorType> = n.outputs.iter().map(|&v| g.ty(v)).collect();
    transcendentals(&n.op, &ins, &outs)
}

/// FLOPs of node `id` of `g`.
pub fn node_flops(g: &Graph, id: NodeId) -> u64 {
    let n = g.node(id);
    let ins: Vec<&TensorType> = n.inputs.iter().map(|&v| g.ty(v)).collect();
    let outs: Vec<&TensorType> = n.outputs.iter().map(|&v| g.ty(v)).collect();
    flops(&n.op, &ins, &outs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_ir::{ConvAttrs, DType, Shape};

    fn t(d: &[usize]) -> TensorType {
        TensorType::new(DType::F32, Shape::from_dims(d))
    }

    #[test]
    fn contractions_count_multiply_adds_twice_and_a_bias_once() {
        let (a, b, c) = (t(&[2, 3, 4]), t(&[4, 5]), t(&[2, 3, 5]));
        assert_eq!(flops(&Op::MatMul, &[&a, &b], &[&c]), 2 * 2 * 3 * 5 * 4);
        let gemm = Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: false,
        };
        let (a, b, bias, y) = (t(&[2, 4]), t(&[4, 5]), t(&[5]), t(&[2, 5]));
        assert_eq!(flops(&gemm, &[&a, &b], &[&y]), 2 * 10 * 4);
        assert_eq!(flops(&gemm, &[&a, &b, &bias], &[&y]), 2 * 10 * 4 + 10);
        let conv = Op::Conv(ConvAttrs {
            strides: vec![1, 1],
            pads: vec![0; 4],
            dilations: vec![1, 1],
            group: 1,
        });
        let (x, w, bias, y) = (
            t(&[1, 3, 8, 8]),
            t(&[4, 3, 3, 3]),
            t(&[4]),
            t(&[1, 4, 6, 6]),
        );
        assert_eq!(flops(&conv, &[&x, &w], &[&y]), 2 * 4 * 36 * 27);
        assert_eq!(
            flops(&conv, &[&x, &w, &bias], &[&y]),
            2 * 4 * 36 * 27 + 4 * 36
        );
    }

    #[test]
    fn elementwise_ops_count_per_element_by_kind() {
        let x = t(&[3, 4]);
        let one = |op: Op| flops(&op, &[&x, &x], &[&x]) / 12;
        assert_eq!(one(Op::Binary(BinaryOp::Add)), 1);
        assert_eq!(one(Op::Binary(BinaryOp::Div)), 1);
        assert_eq!(one(Op::Unary(UnaryOp::Relu)), 1);
        assert_eq!(one(Op::Cast { to: DType::F16 }), 1);
        assert_eq!(one(Op::Unary(UnaryOp::Exp)), TRANSCENDENTAL);
        assert_eq!(one(Op::Unary(UnaryOp::Tanh)), TRANSCENDENTAL);
        assert_eq!(one(Op::Binary(BinaryOp::Pow)), TRANSCENDENTAL);
        let gelu = |approximate| Op::Gelu { approximate };
        assert_eq!(one(gelu(GeluApprox::None)), 8);
        assert_eq!(one(gelu(GeluApprox::Tanh)), 12);
        assert_eq!(one(Op::Softmax { axis: 1 }), 8);
        let norm = Op::RmsNorm {
            axis: 1,
            epsilon: 1e-5,
        };
        assert_eq!(one(norm), 4);
        let layer_norm = Op::LayerNorm {
            axis: 1,
            epsilon: 1e-5,
            stats: false,
        };
        assert_eq!(one(layer_norm), 7);
    }

    #[test]
    fn data_movement_is_free() {
        let (x, y) = (t(&[3, 4]), t(&[4, 3]));
        let transpose = Op::Transpose { perm: vec![1, 0] };
        assert_eq!(flops(&transpose, &[&x], &[&y]), 0);
        let reshape = Op::Reshape {
            shape: Shape::from_dims(&[4, 3]),
        };
        assert_eq!(flops(&reshape, &[&x], &[&y]), 0);
    }
}
