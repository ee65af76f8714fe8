//! Models with symbolic input dimensions, compiled per concrete shape signature.
//!
//! Kernels are compiled for static shapes. A [`SymbolicModel`] keeps the decoded ONNX
//! model and, per [`Signature`] (the size of every symbol, and the value of every graph
//! input that fixes a shape), the graph specialized to it (imported again, so shape
//! subgraphs fold) and the model compiled for it. A run at a signature seen before reuses
//! its compilation; a new signature compiles, and [`Cache`] says which happened.
//!
//! An input fixes a shape when the importer needs its value (a `Reshape` target, `Slice`
//! bounds fed from a graph input: [`ImportError::NeedsBinding`]). [`SymbolicModel::run`]
//! learns which inputs do on the first run that needs them, binds them to the values it is
//! given, and keys the cache on those values from then on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_ir::{DType, Graph, Shape, Tensor};
use tessera_onnx::proto::ModelProto;
use tessera_onnx::{ImportError, ImportOptions, InputDecl};
use tessera_reference::Reference;

use crate::{CompileError, CompiledModel, Options, compile};

/// What a specialization is compiled for and cached by: the size of every symbol of a
/// model and the value of every graph input that fixes a shape. Displays as
/// `batch=1,seq=128` (and `shape=[2,-1]` for a value; `static` for neither).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signature {
    sizes: BTreeMap<String, usize>,
    values: BTreeMap<String, Value>,
}

/// A bound input's value, compared by type and bytes (tensors themselves are not `Eq`).
#[derive(Clone, Debug)]
struct Value {
    tensor: Tensor,
    key: (DType, Vec<usize>, Vec<u8>),
}

impl Value {
    fn new(tensor: Tensor) -> Value {
        let key = (
            tensor.dtype(),
            tensor.shape().dims().to_vec(),
            tensor.to_le_bytes(),
        );
        Value { tensor, key }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Value {}

impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl Signature {
    /// Each symbol and its size, by name.
    pub fn sizes(&self) -> &BTreeMap<String, usize> {
        &self.sizes
    }

    /// The graph inputs bound to values (they fix a shape), with their values, by name.
    pub fn values(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.values.iter().map(|(n, v)| (n.as_str(), &v.tensor))
    }

    /// True if graph input `name` is bound to a value in this signature.
    pub fn binds(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// This signature with graph input `name` bound to `value`.
    pub fn with_value(mut self, name: &str, value: Tensor) -> Signature {
        self.values.insert(name.to_string(), Value::new(value));
        self
    }

    /// True for the signature of a model without symbols or shape-fixing inputs.
    pub fn is_static(&self) -> bool {
        self.sizes.is_empty() && self.values.is_empty()
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_static() {
            return write!(f, "static");
        }
        let mut parts: Vec<String> = self.sizes.iter().map(|(s, n)| format!("{s}={n}")).collect();
        for (name, v) in &self.values {
            let t = &v.tensor;
            let shown: Vec<String> = if t.dtype().is_float() {
                t.to_f64_vec().iter().take(8).map(f64::to_string).collect()
            } else {
                t.to_i64_vec().iter().take(8).map(i64::to_string).collect()
            };
            let more = if t.numel() > 8 { ",..." } else { "" };
            parts.push(format!("{name}=[{}{more}]", shown.join(",")));
        }
        write!(f, "{}", parts.join(","))
    }
}

/// Whether [`SymbolicModel::specialize`] found the signature compiled already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// Compiled before: nothing was compiled.
    Hit,
    /// A new signature: imported and compiled now.
    Compiled,
}

/// The model specialized to one signature: its static graph and the compiled model.
pub struct Specialization {
    signature: Signature,
    graph: Graph,
    model: CompiledModel,
    compile_time: Duration,
}

impl Specialization {
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The imported graph at this signature's static shapes (before optimization).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn model(&self) -> &CompiledModel {
        &self.model
    }

    /// How long importing and compiling took.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }
}

/// The result of [`SymbolicModel::run`].
pub struct Run {
    pub outputs: Vec<Tensor>,
    /// The specialization that ran.
    pub specialization: Arc<Specialization>,
    /// Whether this run compiled it.
    pub cache: Cache,
}

/// An ONNX model whose graph inputs may have symbolic dimensions, compiled lazily per
/// concrete shape signature (see the [module docs](self)).
pub struct SymbolicModel {
    proto: ModelProto,
    base_dir: Option<PathBuf>,
    bind: HashMap<String, Tensor>,
    inputs: Vec<InputDecl>,
    options: Options,
    cache: Mutex<HashMap<Signature, Arc<Specialization>>>,
    /// The graph inputs [`run`](Self::run) has found to fix a shape.
    shape_inputs: Mutex<BTreeSet<String>>,
}

impl SymbolicModel {
    /// Reads and decodes a model file. `bind` replaces graph inputs by constant values
    /// (by name), as in [`load_onnx`](crate::load_onnx); `options` is how every
    /// specialization is compiled. External data is read from the file's folder.
    pub fn open(
        path: &Path,
        bind: HashMap<String, Tensor>,
        options: Options,
    ) -> Result<SymbolicModel, ImportError> {
        let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path.parent().map(Path::to_path_buf), bind, options)
    }

    /// [`open`](Self::open) from bytes in memory; external data is read from `base_dir`.
    pub fn from_bytes(
        bytes: &[u8],
        base_dir: Option<PathBuf>,
        bind: HashMap<String, Tensor>,
        options: Options,
    ) -> Result<SymbolicModel, ImportError> {
        let proto = tessera_onnx::decode(bytes)?;
        let inputs = tessera_onnx::input_decls(&proto, &|n| bind.contains_key(n))?;
        Ok(SymbolicModel {
            proto,
            base_dir,
            bind,
            inputs,
            options,
            cache: Mutex::new(HashMap::new()),
            shape_inputs: Mutex::new(BTreeSet::new()),
        })
    }

    /// The graph inputs a run takes values for, in order, as the model declares them.
    pub fn inputs(&self) -> &[InputDecl] {
        &self.inputs
    }

    /// The model's symbols, each once, in order of first appearance.
    pub fn symbols(&self) -> Vec<&str> {
        tessera_onnx::symbols(&self.inputs)
    }

    /// The signature that `explicit` sizes and the shapes of the named inputs in `shapes`
    /// give (see [`tessera_onnx::bind_symbols`]: sources that disagree are an error naming
    /// both). Every symbol must be bound.
    pub fn signature(
        &self,
        explicit: &HashMap<String, usize>,
        shapes: &[(&str, &Shape)],
    ) -> Result<Signature, ImportError> {
        let sizes = tessera_onnx::bind_symbols(&self.inputs, explicit, shapes)?;
        for d in &self.inputs {
            d.shape(&sizes)?; // An unbound symbol, named with its input.
        }
        Ok(Signature {
            sizes,
            values: BTreeMap::new(),
        })
    }

    /// The signature of a run on `inputs` (one value per [`inputs`](Self::inputs), in
    /// order): their sizes, and the values of the inputs found to fix a shape so far.
    pub fn signature_of(&self, inputs: &[Tensor]) -> Result<Signature, CompileError> {
        if inputs.len() != self.inputs.len() {
            return Err(CompileError::InputCount {
                given: inputs.len(),
                expected: self.inputs.len(),
            });
        }
        let shapes: Vec<(&str, &Shape)> = self
            .inputs
            .iter()
            .zip(inputs)
            .map(|(d, t)| (d.name.as_str(), t.shape()))
            .collect();
        let mut sig = self.signature(&HashMap::new(), &shapes)?;
        let known = self.shape_inputs.lock().unwrap_or_else(|e| e.into_inner());
        for (d, t) in self.inputs.iter().zip(inputs) {
            if known.contains(&d.name) {
                sig = sig.with_value(&d.name, t.clone());
            }
        }
        Ok(sig)
    }

    /// Imports at `signature`, first binding to `value(name)` each graph input the importer
    /// needs the value of (an [`ImportError::NeedsBinding`] for inputs `value` provides):
    /// returns the completed signature and its graph. An input `value` does not provide
    /// returns that error.
    pub fn resolve(
        &self,
        mut signature: Signature,
        value: &dyn Fn(&str) -> Option<Tensor>,
    ) -> Result<(Signature, Graph), ImportError> {
        loop {
            match self.import(&signature) {
                Ok(g) => return Ok((signature, g)),
                Err(ImportError::NeedsBinding {
                    node,
                    input,
                    graph_inputs,
                }) => {
                    // Each needed input: supplied and not bound already (else the importer
                    // would ask again).
                    let fresh: Option<Vec<(String, Tensor)>> = graph_inputs
                        .iter()
                        .map(|n| {
                            let t = value(n)?;
                            (!signature.binds(n)).then(|| (n.clone(), t))
                        })
                        .collect();
                    match fresh {
                        Some(v) => {
                            for (n, t) in v {
                                signature = signature.with_value(&n, t);
                            }
                        }
                        None => {
                            return Err(ImportError::NeedsBinding {
                                node,
                                input,
                                graph_inputs,
                            });
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Imports the model at `signature`'s static shapes (and bound values), folding shape
    /// subgraphs with the reference interpreter. Not cached.
    pub fn import(&self, signature: &Signature) -> Result<Graph, ImportError> {
        let mut bind = self.bind.clone();
        for (n, t) in signature.values() {
            bind.insert(n.to_string(), t.clone());
        }
        tessera_onnx::import_model(
            &self.proto,
            &ImportOptions {
                evaluator: Some(&Reference),
                bind,
                shapes: signature.sizes.clone(),
                base_dir: self.base_dir.clone(),
                ..ImportOptions::default()
            },
        )
    }

    /// The model compiled for `signature`: from the cache, or imported and compiled now.
    pub fn specialize(
        &self,
        signature: &Signature,
    ) -> Result<(Arc<Specialization>, Cache), CompileError> {
        self.specialize_with(signature, &|_| None)
    }

    /// [`specialize`](Self::specialize), completing a signature the cache lacks with
    /// [`resolve`](Self::resolve) (`value` gives the inputs that fix a shape).
    fn specialize_with(
        &self,
        signature: &Signature,
        value: &dyn Fn(&str) -> Option<Tensor>,
    ) -> Result<(Arc<Specialization>, Cache), CompileError> {
        // Held while compiling, so two callers never compile one signature twice.
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache.get(signature) {
            return Ok((Arc::clone(s), Cache::Hit));
        }
        let start = Instant::now();
        let (signature, graph) = self.resolve(signature.clone(), value)?;
        if let Some(s) = cache.get(&signature) {
            return Ok((Arc::clone(s), Cache::Hit));
        }
        let model = compile(&graph, self.options.clone())?;
        let s = Arc::new(Specialization {
            signature: signature.clone(),
            graph,
            model,
            compile_time: start.elapsed(),
        });
        cache.insert(signature, Arc::clone(&s));
        Ok((s, Cache::Compiled))
    }

    /// Runs the model on `inputs` (one value per [`inputs`](Self::inputs), in order),
    /// compiled for their shapes and for the values of the inputs that fix a shape.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Run, CompileError> {
        let signature = self.signature_of(inputs)?;
        let value = |name: &str| {
            let k = self.inputs.iter().position(|d| d.name == name)?;
            inputs.get(k).cloned()
        };
        let (specialization, cache) = self.specialize_with(&signature, &value)?;
        {
            let mut known = self.shape_inputs.lock().unwrap_or_else(|e| e.into_inner());
            for (n, _) in specialization.signature.values() {
                known.insert(n.to_string());
            }
        }
        // The bound inputs are constants of the specialized graph.
        let rest: Vec<Tensor> = self
            .inputs
            .iter()
            .zip(inputs)
            .filter(|(d, _)| !specialization.signature.binds(&d.name))
            .map(|(_, t)| t.clone())
            .collect();
        let outputs = specialization.model.run(&rest)?;
        Ok(Run {
            outputs,
            specialization,
            cache,
        })
    }

    /// How many signatures have been compiled.
    pub fn compilations(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
