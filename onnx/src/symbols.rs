//! Symbolic input dimensions: what a model declares for each graph input, and the
//! binding of its symbols to sizes that specializes the model to static shapes.
//!
//! A declared dimension is a size, a named symbol (`dim_param`), or unknown; an unknown
//! dimension gets the fresh symbol `<input>.<axis>` so that it can be bound like a named
//! one. [`bind_symbols`] derives a binding from explicit values and from the shapes of the
//! inputs a caller has, and reports two sources that disagree on a symbol.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use tessera_ir::{DType, Shape};

use crate::error::{ImportError, SymbolSource};
use crate::proto::{GraphProto, ValueInfoProto, type_proto};
use crate::tensor::dtype_from_onnx;

/// One declared dimension of a graph input.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A fixed size.
    Static(usize),
    /// A size given when the model is specialized: a `dim_param`, or `<input>.<axis>` for
    /// a dimension the model leaves unknown.
    Symbol(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Static(n) => write!(f, "{n}"),
            Dim::Symbol(s) => write!(f, "{s}"),
        }
    }
}

/// A graph input as the model declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputDecl {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<Dim>,
}

impl fmt::Display for InputDecl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.dims.iter().map(Dim::to_string).collect();
        write!(f, "{}[{}]", self.dtype, dims.join(","))
    }
}

impl InputDecl {
    /// The static shape of this input under `symbols`; an unbound symbol is an
    /// [`ImportError::UnboundSymbol`].
    pub fn shape(&self, symbols: &BTreeMap<String, usize>) -> Result<Shape, ImportError> {
        let mut dims = Vec::with_capacity(self.dims.len());
        for (axis, d) in self.dims.iter().enumerate() {
            dims.push(match d {
                Dim::Static(n) => *n,
                Dim::Symbol(s) => *symbols.get(s).ok_or_else(|| ImportError::UnboundSymbol {
                    symbol: s.clone(),
                    input: self.name.clone(),
                    axis,
                })?,
            });
        }
        Shape::new(dims).map_err(|e| ImportError::Input {
            name: self.name.clone(),
            message: e.to_string(),
        })
    }
}

/// The declared type of graph input `vi`: its element type and dimensions.
pub(crate) fn declared(vi: &ValueInfoProto) -> Result<InputDecl, ImportError> {
    let name = vi.name.clone().unwrap_or_default();
    let err = |message: String| ImportError::Input {
        name: name.clone(),
        message,
    };
    let Some(type_proto::Value::TensorType(t)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(err(
            "only tensor inputs are supported (not sequences, maps or optionals)".into(),
        ));
    };
    let dtype = dtype_from_onnx(t.elem_type.unwrap_or(0)).map_err(&err)?;
    let shape = t
        .shape
        .as_ref()
        .ok_or_else(|| err("the input declares no shape (not even its rank)".into()))?;
    let mut dims = Vec::with_capacity(shape.dim.len());
    for (axis, d) in shape.dim.iter().enumerate() {
        use crate::proto::tensor_shape_proto::dimension::Value;
        dims.push(match &d.value {
            Some(Value::DimValue(n)) => Dim::Static(
                usize::try_from(*n)
                    .map_err(|_| err(format!("dimension {axis} is negative ({n})")))?,
            ),
            Some(Value::DimParam(p)) if !p.is_empty() => Dim::Symbol(p.clone()),
            _ => Dim::Symbol(format!("{name}.{axis}")),
        });
    }
    Ok(InputDecl { name, dtype, dims })
}

/// The declarations of `g`'s graph inputs that the caller supplies: initializers and the
/// inputs in `bound` (replaced by constants) left out.
pub(crate) fn declared_inputs(
    g: &GraphProto,
    bound: &dyn Fn(&str) -> bool,
) -> Result<Vec<InputDecl>, ImportError> {
    let inits: std::collections::HashSet<&str> = g
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    g.input
        .iter()
        .filter(|vi| {
            let n = vi.name.as_deref().unwrap_or("");
            !inits.contains(n) && !bound(n)
        })
        .map(declared)
        .collect()
}

/// The symbols of `decls`, each once, in order of first appearance.
pub fn symbols(decls: &[InputDecl]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for d in decls.iter().flat_map(|d| &d.dims) {
        if let Dim::Symbol(s) = d
            && !out.contains(&s.as_str())
        {
            out.push(s);
        }
    }
    out
}

/// Binds the symbols of `decls` from `explicit` values and from the shapes of the inputs
/// in `shapes` (by input name; names that are not inputs of `decls` are left to run-time
/// checks). Every explicit symbol must be one of the model's; an
/// input's rank and static dimensions must match its declaration; two sources that give
/// one symbol different sizes are an [`ImportError::SymbolConflict`] naming both. Symbols
/// no source binds are left out (importing then reports them).
pub fn bind_symbols(
    decls: &[InputDecl],
    explicit: &HashMap<String, usize>,
    shapes: &[(&str, &Shape)],
) -> Result<BTreeMap<String, usize>, ImportError> {
    let known = symbols(decls);
    let mut source: BTreeMap<String, SymbolSource> = BTreeMap::new();
    let mut names: Vec<&String> = explicit.keys().collect();
    names.sort();
    for s in names {
        if !known.contains(&s.as_str()) {
            return Err(ImportError::UnknownSymbol {
                symbol: s.clone(),
                known: known.iter().map(|k| k.to_string()).collect(),
            });
        }
        source.insert(
            s.clone(),
            SymbolSource {
                input: None,
                axis: 0,
                value: explicit[s],
            },
        );
    }
    // In declaration order, whatever order the caller lists the shapes in, so that which
    // of two disagreeing inputs is named first does not depend on the caller.
    for decl in decls {
        let Some(&(name, shape)) = shapes.iter().find(|(n, _)| *n == decl.name) else {
            continue;
        };
        let dims = shape.dims();
        if dims.len() != decl.dims.len() {
            return Err(ImportError::Input {
                name: name.to_string(),
                message: format!("the value has shape {shape} but the model declares {decl}"),
            });
        }
        for (axis, (d, &n)) in decl.dims.iter().zip(dims).enumerate() {
            match d {
                Dim::Static(want) if *want != n => {
                    return Err(ImportError::Input {
                        name: name.to_string(),
                        message: format!(
                            "the value has shape {shape} but the model declares {decl} (axis {axis})"
                        ),
                    });
                }
                Dim::Static(_) => {}
                Dim::Symbol(s) => {
                    let here = SymbolSource {
                        input: Some(name.to_string()),
                        axis,
                        value: n,
                    };
                    match source.get(s) {
                        Some(first) if first.value != n => {
                            return Err(ImportError::SymbolConflict {
                                symbol: s.clone(),
                                first: first.clone(),
                                second: here,
                            });
                        }
                        Some(_) => {}
                        None => {
                            source.insert(s.clone(), here);
                        }
                    }
                }
            }
        }
    }
    Ok(source.into_iter().map(|(s, src)| (s, src.value)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(name: &str, dims: &[Dim]) -> InputDecl {
        InputDecl {
            name: name.into(),
            dtype: DType::F32,
            dims: dims.to_vec(),
        }
    }

    fn sym(s: &str) -> Dim {
        Dim::Symbol(s.into())
    }

    #[test]
    fn inputs_and_explicit_values_bind_symbols() {
        let decls = [
            decl("a", &[sym("batch"), Dim::Static(4)]),
            decl("b", &[sym("batch"), sym("seq")]),
        ];
        let a = Shape::new(vec![3, 4]).unwrap();
        let explicit = HashMap::from([("seq".to_string(), 7)]);
        let b = bind_symbols(&decls, &explicit, &[("a", &a)]).unwrap();
        assert_eq!(b, BTreeMap::from([("batch".into(), 3), ("seq".into(), 7)]));
        assert_eq!(decls[1].shape(&b).unwrap().dims(), &[3, 7]);
    }

    #[test]
    fn disagreeing_inputs_name_both_inputs_the_axis_and_both_values() {
        let decls = [
            decl("a", &[sym("batch"), Dim::Static(4)]),
            decl("b", &[Dim::Static(1), sym("batch")]),
        ];
        let (a, b) = (
            Shape::new(vec![2, 4]).unwrap(),
            Shape::new(vec![1, 5]).unwrap(),
        );
        let e = bind_symbols(&decls, &HashMap::new(), &[("a", &a), ("b", &b)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "symbol \"batch\" is 2 in graph input \"a\" (axis 0) but 5 in graph input \"b\" (axis 1)"
        );
        let explicit = HashMap::from([("batch".to_string(), 3)]);
        let e = bind_symbols(&decls, &explicit, &[("a", &a)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "symbol \"batch\" is 3 by the given shape binding but 2 in graph input \"a\" (axis 0)"
        );
    }

    #[test]
    fn unknown_and_unbound_symbols_are_errors() {
        let decls = [decl("x", &[sym("N"), Dim::Static(16)])];
        let explicit = HashMap::from([("M".to_string(), 3)]);
        let e = bind_symbols(&decls, &explicit, &[]).unwrap_err();
        assert!(matches!(e, ImportError::UnknownSymbol { .. }), "{e}");
        let e = decls[0].shape(&BTreeMap::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "graph input \"x\": dimension 0 is the symbol \"N\", which has no value; \
             bind it (`--shape N=<size>`) or pass an input of that shape"
        );
        let wrong = Shape::new(vec![2, 8]).unwrap();
        let e = bind_symbols(&decls, &HashMap::new(), &[("x", &wrong)]).unwrap_err();
        assert!(e.to_string().contains("declares f32[N,16] (axis 1)"), "{e}");
    }
}
