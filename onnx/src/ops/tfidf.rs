//! `TfIdfVectorizer` over integer token sequences: the n-gram pool is an attribute, so
//! each pool n-gram `g` (of a size within `min_gram_length..=max_gram_length`) and each
//! skip distance `d` is a chain of comparisons of shifted slices of the input with `g`'s
//! tokens, and-ed, counted along the sequence and summed over the distances, which is how
//! the ONNX reference counts (unigrams once, longer n-grams at every distance
//! `1..=max_skip_count + 1`). The counts land in the output columns `ngram_indexes` names
//! and are weighted per `mode` (TF, IDF, TFIDF). String pools are not supported.

use tessera_ir::{BinaryOp, DType, Op, ReduceOp, Shape, Tensor, ValueId};

use super::common::{R, Translator, dims_of, reshape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[("TfIdfVectorizer", tfidf)];

/// The most (n-gram, skip distance) pairs one node expands into.
const MAX_PATTERNS: usize = 1 << 14;

fn tfidf(cx: &mut Ctx) -> R<Vec<ValueId>> {
    let x = cx.input(0)?;
    let dt = cx.ty(x).dtype;
    if !matches!(dt, DType::I32 | DType::I64) {
        return Err(cx.err(format!(
            "input is {dt}, expected int32 or int64 tokens (string pools are not supported)"
        )));
    }
    let d = dims_of(cx, x);
    let (batch, len) = match d.as_slice() {
        [l] => (None, *l),
        [b, l] => (Some(*b), *l),
        _ => {
            return Err(cx.err(format!(
                "input has shape {}, expected [N] or [B, N]",
                cx.ty(x).shape
            )));
        }
    };
    let pool = cx
        .attr_ints("pool_int64s")?
        .ok_or_else(|| cx.err("pool_int64s is missing (string pools are not supported)"))?;
    let counts = cx.attr_ints("ngram_counts")?.unwrap_or_default();
    let indexes = cx.attr_ints("ngram_indexes")?.unwrap_or_default();
    let min_n = cx.attr_int("min_gram_length")?.unwrap_or(1).max(1) as usize;
    let max_n = cx.attr_int("max_gram_length")?.unwrap_or(1).max(1) as usize;
    let max_skip = cx.attr_int("max_skip_count")?.unwrap_or(0).max(0) as usize;
    let mode = cx.attr_string("mode")?.unwrap_or_else(|| "TF".into());
    let weights = cx.attr_floats("weights")?.unwrap_or_default();
    if !matches!(mode.as_str(), "TF" | "IDF" | "TFIDF") {
        return Err(cx.err(format!("unknown mode {mode:?}")));
    }
    if indexes.iter().any(|&i| i < 0) {
        return Err(cx.err("ngram_indexes must be non-negative"));
    }
    let out = indexes.iter().max().map_or(0, |&m| m as usize + 1);
    // One expression (or zeros) per output column, built here.
    cx.check_built(
        "the output's columns",
        out.saturating_mul(batch.unwrap_or(1)),
    )?;
    // The pool's n-grams in id order: (size, tokens).
    let mut grams: Vec<(usize, Vec<i64>)> = Vec::new();
    for (i, &start) in counts.iter().enumerate() {
        let n = i + 1;
        let end = counts.get(i + 1).copied().unwrap_or(pool.len() as i64);
        if start < 0 || end < start || end as usize > pool.len() {
            return Err(cx.err(format!("ngram_counts {counts:?} do not index the pool")));
        }
        let items = &pool[start as usize..end as usize];
        for g in items.chunks(n) {
            if g.len() == n {
                grams.push((n, g.to_vec()));
            }
        }
    }
    if indexes.len() < grams.len() {
        return Err(cx.err(format!(
            "{} ngram_indexes for {} pool n-grams",
            indexes.len(),
            grams.len()
        )));
    }
    if !weights.is_empty() && weights.len() < out {
        return Err(cx.err(format!("{} weights for {out} outputs", weights.len())));
    }
    // Saturating: a huge `max_skip_count` is refused below, not an overflow.
    let patterns: usize = grams
        .iter()
        .map(|(n, _)| {
            if *n == 1 {
                1
            } else {
                max_skip.saturating_add(1)
            }
        })
        .fold(0usize, usize::saturating_add);
    if patterns > MAX_PATTERNS {
        return Err(cx.err(format!(
            "{patterns} (n-gram, skip) patterns, more than the {MAX_PATTERNS} the importer expands"
        )));
    }
    let axis = d.len() - 1;
    let rows = batch.unwrap_or(1);
    let x2 = reshape(cx, x, vec![rows, len])?;
    // Per output column, the count expressions that land there.
    let mut cols: Vec<Vec<ValueId>> = vec![Vec::new(); out];
    for (id, (n, g)) in grams.iter().enumerate() {
        if *n < min_n || *n > max_n {
            continue;
        }
        let dists = if *n == 1 { 1 } else { max_skip + 1 };
        for dist in 1..=dists {
            let span = (n - 1) * dist;
            if span >= len {
                continue;
            }
            let starts = len - span;
            let mut hit: Option<ValueId> = None;
            for (j, &tok) in g.iter().enumerate() {
                let lo = (j * dist) as i64;
                let part = cx.emit1(
                    Op::Slice {
                        axes: vec![1],
                        starts: vec![lo],
                        ends: vec![lo + starts as i64],
                        steps: vec![1],
                    },
                    &[x2],
                )?;
                let t = cx.constant(Tensor::full(dt, Shape::scalar(), tok as f64));
                let eq = cx.emit1(Op::Binary(BinaryOp::Equal), &[part, t])?;
                hit = Some(match hit {
                    None => eq,
                    Some(h) => cx.emit1(Op::Binary(BinaryOp::And), &[h, eq])?,
                });
            }
            let Some(hit) = hit else { continue };
            let f = cx.emit1(Op::Cast { to: DType::F32 }, &[hit])?;
            let cnt = cx.emit1(
                Op::Reduce {
                    op: ReduceOp::Sum,
                    axes: vec![1],
                    keep_dims: true,
                },
                &[f],
            )?;
            cols[indexes[id] as usize].push(cnt);
        }
    }
    let zero_shape = Shape::new(vec![rows, 1]).map_err(|e| cx.err(e.to_string()))?;
    let mut parts = Vec::with_capacity(out);
    for (o, terms) in cols.into_iter().enumerate() {
        let mut v = match terms.split_first() {
            None => cx.constant(Tensor::full(DType::F32, zero_shape.clone(), 0.0)),
            Some((&first, rest)) => {
                let mut a = first;
                for &t in rest {
                    a = cx.emit1(Op::Binary(BinaryOp::Add), &[a, t])?;
                }
                a
            }
        };
        let w = weights.get(o).map(|&w| f64::from(w));
        v = match (mode.as_str(), w) {
            ("TF", _) | ("TFIDF", None) => v,
            ("TFIDF", Some(w)) => {
                let c = cx.constant(Tensor::full(DType::F32, Shape::scalar(), w));
                cx.emit1(Op::Binary(BinaryOp::Mul), &[v, c])?
            }
            _ => {
                // IDF: the weight (or 1) where the n-gram occurs.
                let zero = cx.constant(Tensor::full(DType::F32, Shape::scalar(), 0.0));
                let seen = cx.emit1(Op::Binary(BinaryOp::Greater), &[v, zero])?;
                let c = cx.constant(Tensor::full(DType::F32, Shape::scalar(), w.unwrap_or(1.0)));
                cx.emit1(Op::Where, &[seen, c, zero])?
            }
        };
        parts.push(v);
    }
    let y = match parts.len() {
        0 => return Err(cx.err("ngram_indexes is empty: the output has no columns")),
        1 => parts[0],
        _ => cx.emit1(Op::Concat { axis: 1 }, &parts)?,
    };
    let mut od = d[..axis].to_vec();
    od.push(out);
    Ok(vec![reshape(cx, y, od)?])
}
