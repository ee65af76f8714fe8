//! The op table: each supported ONNX op type and its translation into IR ops, with ONNX
//! defaults resolved for opsets 9 and later. Translators live in one module per op family;
//! each family lists its op types with their translators in an `OPS` table, and
//! [`convert`] looks the node's op type up in those tables.

mod activation;
mod bitcast;
mod common;
mod constant;
mod contraction;
mod einsum;
mod elementwise;
mod grid_sample;
mod indexing;
mod loss;
mod movement;
mod normalize;
mod qlinear;
mod quant;
mod recurrent;
mod reduce;
mod resample;
mod select;
mod spectral;
mod tfidf;
mod window;

use tessera_ir::ValueId;

use self::common::{R, Translator};
use crate::context::Ctx;

/// Every op family's table of ONNX op types (default domain) and their translators.
const FAMILIES: &[&[(&str, Translator)]] = &[
    elementwise::OPS,
    bitcast::OPS,
    activation::OPS,
    contraction::OPS,
    window::OPS,
    reduce::OPS,
    normalize::OPS,
    movement::OPS,
    indexing::OPS,
    resample::OPS,
    grid_sample::OPS,
    select::OPS,
    spectral::OPS,
    tfidf::OPS,
    loss::OPS,
    quant::OPS,
    qlinear::OPS,
    recurrent::OPS,
    einsum::OPS,
    constant::OPS,
];

fn translator(op_type: &str) -> Option<Translator> {
    FAMILIES
        .iter()
        .flat_map(|family| family.iter())
        .find(|(name, _)| *name == op_type)
        .map(|&(_, translate)| translate)
}

/// True if the importer translates ONNX op type `op_type` (default domain).
pub(crate) fn is_supported(op_type: &str) -> bool {
    translator(op_type).is_some()
}

/// Translates the current node; returns one value per node output it supports.
pub(crate) fn convert(cx: &mut Ctx) -> R<Vec<ValueId>> {
    match translator(cx.op_type()) {
        Some(translate) => translate(cx),
        None => Err(cx.err(format!(
            "{} has no translation (importer bug: listed as supported)",
            cx.op_type()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::FAMILIES;

    #[test]
    fn each_op_type_has_one_translator() {
        let mut seen = HashSet::new();
        for &(name, _) in FAMILIES.iter().flat_map(|family| family.iter()) {
            assert!(seen.insert(name), "{name} is listed twice");
        }
    }
}
