//! FLOP counts per node, from static shapes: the recompute-cost and B/W-cost model.
//!
//! A multiply-add counts 2. Elementwise ops count one per output element, reductions one
//! per input element, normalizations a small constant per element (softmax 5, layer norm
//! 8, RMS norm 4, batch norm 2). Pure data movement (reshape, transpose, expand, slice,
//! concat, split, gathers, casts) and constants count 0: they cost bytes, not FLOPs.

use tessera_ir::{Graph, NodeId, Op, TensorType};

fn numel(t: &TensorType) -> u64 {
    t.shape.numel() as u64
}

/// FLOPs of `op` on inputs of types `ins` producing `outs`.
pub fn flops(op: &Op, ins: &[&TensorType], outs: &[&TensorType]) -> u64 {
    let out0 = outs.first().map_or(0, |t| numel(t));
    let in0 = ins.first().map_or(0, |t| numel(t));
    match op {
        Op::Constant(_)
        | Op::Identity
        | Op::Dropout { .. }
        | Op::Cast { .. }
        | Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Expand { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Slice { .. }
        | Op::Gather { .. }
        | Op::GatherElements { .. }
        | Op::GatherNd { .. } => 0,
        Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Clip { .. } | Op::Gelu { .. } => out0,
        Op::MatMul => {
            // out [.., M, N] (promoted axes removed); K is the left operand's last dim.
            let k = ins[0].shape.dims().last().copied().unwrap_or(1) as u64;
            2 * out0 * k
        }
        Op::Gemm { trans_a, .. } => {
            let a = ins[0].shape.dims();
            let k = if *trans_a { a[0] } else { a[1] } as u64;
            2 * out0 * k + if ins.len() == 3 { out0 } else { 0 }
        }
        Op::Conv(_) => {
            let w = ins[1].shape.dims();
            let per_out: u64 = w[1..].iter().map(|&d| d as u64).product();
            2 * out0 * per_out + if ins.len() == 3 { out0 } else { 0 }
        }
        Op::Pool { attrs, .. } => out0 * attrs.kernel.iter().map(|&k| k as u64).product::<u64>(),
        Op::Reduce { .. } => in0,
        Op::Softmax { .. } | Op::LogSoftmax { .. } => 5 * in0,
        Op::LayerNorm { .. } => 8 * in0,
        Op::BatchNorm { .. } => 2 * in0,
        Op::RmsNorm { .. } => 4 * in0,
        Op::Lrn { size, .. } => (*size as u64 + 4) * in0,
        Op::Attention { .. } => {
            let q = ins[0].shape.dims();
            let v = ins[2].shape.dims();
            let r = q.len();
            let batch: u64 = q[..r - 2].iter().map(|&d| d as u64).product();
            let (s, d) = (q[r - 2] as u64, q[r - 1] as u64);
            let (t, e) = (ins[1].shape.dims()[r - 2] as u64, v[r - 1] as u64);
            batch * s * t * (2 * d + 2 * e + 5)
        }
    }
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
    fn contractions_count_multiply_adds_twice() {
        let (a, b, c) = (t(&[2, 3, 4]), t(&[4, 5]), t(&[2, 3, 5]));
        assert_eq!(flops(&Op::MatMul, &[&a, &b], &[&c]), 2 * 2 * 3 * 5 * 4);
        let conv = Op::Conv(ConvAttrs {
            strides: vec![1, 1],
            pads: vec![0; 4],
            dilations: vec![1, 1],
            group: 1,
        });
        let (x, w, y) = (t(&[1, 3, 8, 8]), t(&[4, 3, 3, 3]), t(&[1, 4, 6, 6]));
        assert_eq!(flops(&conv, &[&x, &w], &[&y]), 2 * 4 * 36 * 27);
    }
}
