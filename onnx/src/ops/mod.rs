//! The op table: each supported ONNX op type and its translation into IR ops, with ONNX
//! defaults resolved for opsets 9 and later. Translators live in one module per op family;
//! each family lists its op types with their translators in an `OPS` table, and
//! [`convert`] looks the node's op type up in those tables (and in
//! [`OTHER_DOMAINS`] for the few ops of other operator-set domains).

mod activation;
mod attention;
mod bitcast;
mod common;
mod constant;
mod contraction;
mod control;
mod crop;
mod einsum;
mod elementwise;
mod grid;
mod grid_sample;
mod indexing;
mod loss;
mod ml;
mod movement;
mod normalize;
mod qlinear;
mod quant;
mod recurrent;
mod reduce;
mod resample;
mod select;
mod sequence;
mod signal;
mod spectral;
mod statnorm;
mod tfidf;
mod training;
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
    attention::OPS,
    sequence::OPS,
    signal::OPS,
    crop::OPS,
    grid::OPS,
    statnorm::OPS,
    constant::OPS,
    control::OPS,
];

/// Op families of the other operator-set domains the importer translates.
const OTHER_DOMAINS: &[(&str, &[(&str, Translator)])] = &[
    ("ai.onnx.preview.training", training::OPS),
    ("ai.onnx.ml", ml::OPS),
    ("ai.onnx.preview", attention::PREVIEW_OPS),
];

fn translator(domain: &str, op_type: &str) -> Option<Translator> {
    let tables: Vec<&[(&str, Translator)]> = if domain == "ai.onnx" {
        FAMILIES.to_vec()
    } else {
        OTHER_DOMAINS
            .iter()
            .filter(|(d, _)| *d == domain)
            .map(|&(_, t)| t)
            .collect()
    };
    tables
        .into_iter()
        .flat_map(|family| family.iter())
        .find(|(name, _)| *name == op_type)
        .map(|&(_, translate)| translate)
}

/// True if the importer translates op type `op_type` of operator-set `domain` (`ai.onnx`
/// for the default domain).
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

    use super::{FAMILIES, OTHER_DOMAINS};

    #[test]
    fn each_op_type_has_one_translator() {
        let mut seen = HashSet::new();
        for &(name, _) in FAMILIES.iter().flat_map(|family| family.iter()) {
            assert!(seen.insert(name), "{name} is listed twice");
        }
        for (domain, table) in OTHER_DOMAINS {
            let mut seen = HashSet::new();
            for &(name, _) in *table {
                assert!(seen.insert(name), "{domain}.{name} is listed twice");
            }
        }
    }
}
