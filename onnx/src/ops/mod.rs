//! The op table: each supported ONNX op type and its translation into IR ops, with ONNX
//! defaults resolved for opsets 9 and later. Translators live in one module per op family;
//! each family lists its op types with their translators in an `OPS` table, and
//! [`convert`] looks the node's op type up in those tables (the default domain's, or the
//! few `ai.onnx.preview` ones).

mod activation;
mod attention;
mod common;
mod constant;
mod contraction;
mod crop;
mod einsum;
mod elementwise;
mod grid;
mod indexing;
mod loss;
mod movement;
mod normalize;
mod quant;
mod reduce;
mod resample;
mod select;
mod sequence;
mod signal;
mod statnorm;
mod window;

use tessera_ir::ValueId;

use self::common::{R, Translator};
use crate::context::Ctx;

/// Every op family's table of ONNX op types (default domain) and their translators.
const FAMILIES: &[&[(&str, Translator)]] = &[
    elementwise::OPS,
    activation::OPS,
    contraction::OPS,
    window::OPS,
    reduce::OPS,
    normalize::OPS,
    movement::OPS,
    indexing::OPS,
    resample::OPS,
    select::OPS,
    loss::OPS,
    quant::OPS,
    einsum::OPS,
    attention::OPS,
    sequence::OPS,
    signal::OPS,
    crop::OPS,
    grid::OPS,
    statnorm::OPS,
    constant::OPS,
];

/// The `ai.onnx.preview` op types and their translators.
const PREVIEW: &[&[(&str, Translator)]] = &[attention::PREVIEW_OPS];

fn translator(domain: &str, op_type: &str) -> Option<Translator> {
    let tables = match domain {
        "ai.onnx" => FAMILIES,
        "ai.onnx.preview" => PREVIEW,
        _ => &[],
    };
    tables
        .iter()
        .flat_map(|family| family.iter())
        .find(|(name, _)| *name == op_type)
        .map(|&(_, translate)| translate)
}

/// True if the importer translates ONNX op type `op_type` of `domain` (`ai.onnx` for
/// the default one).
pub(crate) fn is_supported(domain: &str, op_type: &str) -> bool {
    translator(domain, op_type).is_some()
}

/// Translates the current node; returns one value per node output it supports.
pub(crate) fn convert(cx: &mut Ctx) -> R<Vec<ValueId>> {
    match translator(cx.domain(), cx.op_type()) {
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

    use super::{FAMILIES, PREVIEW};

    #[test]
    fn each_op_type_has_one_translator() {
        for tables in [FAMILIES, PREVIEW] {
            let mut seen = HashSet::new();
            for &(name, _) in tables.iter().flat_map(|family| family.iter()) {
                assert!(seen.insert(name), "{name} is listed twice");
            }
        }
    }
}
