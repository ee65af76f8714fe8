//! What one input must do: the checks each target runs on it.
//!
//! * ONNX: decode; size every symbolic input dimension (1, 2 or 3, from the symbol's
//!   name); import with the reference interpreter folding constants, as the CLI does,
//!   binding graph inputs that fix a shape (to ones, when the importer asks); for a graph
//!   it accepts, verify it and check the text round trip on it.
//! * Text: parse; for a graph that parses and verifies, check the round trip
//!   `print(parse(print(g))) == print(g)`.
//!
//! An error is a clean rejection; a broken invariant is returned as `Err`. Panics, time and
//! memory are the campaign's to watch.

use std::collections::{BTreeMap, HashMap};

use tessera_ir::text::{PrintOptions, parse, print};
use tessera_ir::{Graph, Tensor, verify};
use tessera_onnx::{ImportError, ImportOptions, InputDecl};
use tessera_reference::Reference;

/// How an input that broke no invariant ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Imported (or parsed) and verified.
    Accepted,
    /// Refused with an error.
    Rejected,
}

/// Bound inputs get values only up to this many elements (a binding is a real tensor).
const BIND_ELEMENTS: usize = 1 << 12;

/// The size given to symbol `s`: 1, 2 or 3, fixed by its name.
fn symbol_size(s: &str) -> usize {
    1 + s
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31) ^ b as usize)
        % 3
}

/// Runs the ONNX checks on a serialized model.
pub fn onnx(bytes: &[u8]) -> Result<Verdict, String> {
    match import(bytes) {
        Some(g) => accepted(&g).map(|()| Verdict::Accepted),
        None => Ok(Verdict::Rejected),
    }
}

/// Imports a serialized model as [`onnx`] does; `None` if the importer refuses it.
pub fn import(bytes: &[u8]) -> Option<Graph> {
    let model = tessera_onnx::decode(bytes).ok()?;
    let decls = tessera_onnx::input_decls(&model, &|_| false).ok()?;
    let shapes: BTreeMap<String, usize> = tessera_onnx::symbols(&decls)
        .into_iter()
        .map(|s| (s.to_string(), symbol_size(s)))
        .collect();
    let mut bind: HashMap<String, Tensor> = HashMap::new();
    for _ in 0..4 {
        let opts = ImportOptions {
            evaluator: Some(&Reference),
            bind: bind.clone(),
            shapes: shapes.clone(),
            ..ImportOptions::default()
        };
        match tessera_onnx::import_model(&model, &opts) {
            Ok(g) => return Some(g),
            Err(ImportError::NeedsBinding { graph_inputs, .. }) => {
                let before = bind.len();
                for name in graph_inputs {
                    if let Some(t) = ones(&decls, &name, &shapes) {
                        bind.entry(name).or_insert(t);
                    }
                }
                if bind.len() == before {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
    None
}

/// A small all-ones value for graph input `name`, if it is declared and small.
fn ones(decls: &[InputDecl], name: &str, shapes: &BTreeMap<String, usize>) -> Option<Tensor> {
    let d = decls.iter().find(|d| d.name == name)?;
    let shape = d.shape(shapes).ok()?;
    (shape.numel() <= BIND_ELEMENTS).then(|| Tensor::full(d.dtype, shape, 1.0))
}

/// Runs the text checks on printed IR.
pub fn text(src: &str) -> Result<Verdict, String> {
    match parse(src) {
        Ok(g) if verify(&g).is_ok() => accepted(&g).map(|()| Verdict::Accepted),
        _ => Ok(Verdict::Rejected),
    }
}

/// The invariants of an accepted graph: it verifies and its text round-trips.
pub fn accepted(g: &Graph) -> Result<(), String> {
    verify(g).map_err(|e| format!("an accepted graph does not verify: {e}"))?;
    let once = print(g, &PrintOptions::default());
    let back = parse(&once).map_err(|e| format!("printed graph does not parse back: {e}"))?;
    let twice = print(&back, &PrintOptions::default());
    if once != twice {
        return Err(format!(
            "print(parse(print(g))) != print(g):\n{once}\n---\n{twice}"
        ));
    }
    Ok(())
}
