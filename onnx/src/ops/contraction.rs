//! Matrix products: `MatMul` and `Gemm`. (`Conv` is with the other window ops.)

use tessera_ir::{Op, ValueId};

use super::common::{R, Translator};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[("MatMul", matmul), ("Gemm", gemm)];

fn matmul(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    Ok(vec![cx.emit1(Op::MatMul, &[a, b])?])
}

fn gemm(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let op = Op::Gemm {
        alpha: cx.attr_float("alpha")?.unwrap_or(1.0),
        beta: cx.attr_float("beta")?.unwrap_or(1.0),
        trans_a: cx.attr_int("transA")?.unwrap_or(0) != 0,
        trans_b: cx.attr_int("transB")?.unwrap_or(0) != 0,
    };
    let inputs = cx.all_inputs();
    Ok(vec![cx.emit1(op, &inputs)?])
}
