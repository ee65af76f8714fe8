//! Models with symbolic input dimensions, compiled per concrete shape signature.
//!
//! Kernels are compiled for static shapes. A [`SymbolicModel`] keeps the decoded ONNX
//! model and, per [`Signature`] (the size of every symbol), the graph specialized to those
//! shapes (imported again, so shape subgraphs fold) and the model compiled for it. A run
//! at a signature seen before reuses its compilation; a new signature compiles, and
//! [`Cache`] says which happened.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_ir::{Graph, Shape, Tensor};
use tessera_onnx::proto::ModelProto;
use tessera_onnx::{ImportError, ImportOptions, InputDecl};
use tessera_reference::Reference;

use crate::{CompileError, CompiledModel, Options, compile};

/// The size of every symbol of a model: what a specialization is compiled for and
/// cached by. Displays as `batch=1,seq=128` (`static` for a model without symbols).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signature(BTreeMap<String, usize>);

impl Signature {
    /// Each symbol and its size, by name.
    pub fn sizes(&self) -> &BTreeMap<String, usize> {
        &self.0
    }

    /// True for the signature of a model without symbols.
    pub fn is_static(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "static");
        }
        let parts: Vec<String> = self.0.iter().map(|(s, n)| format!("{s}={n}")).collect();
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
        Ok(Signature(sizes))
    }

    /// The signature of a run on `inputs` (one value per [`inputs`](Self::inputs), in
    /// order).
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
        Ok(self.signature(&HashMap::new(), &shapes)?)
    }

    /// Imports the model at `signature`'s static shapes, folding shape subgraphs with the
    /// reference interpreter. Not cached.
    pub fn import(&self, signature: &Signature) -> Result<Graph, ImportError> {
        tessera_onnx::import_model(
            &self.proto,
            &ImportOptions {
                evaluator: Some(&Reference),
                bind: self.bind.clone(),
                shapes: signature.0.clone(),
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
        // Held while compiling, so two callers never compile one signature twice.
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache.get(signature) {
            return Ok((Arc::clone(s), Cache::Hit));
        }
        let start = Instant::now();
        let graph = self.import(signature)?;
        let model = compile(&graph, self.options.clone())?;
        let s = Arc::new(Specialization {
            signature: signature.clone(),
            graph,
            model,
            compile_time: start.elapsed(),
        });
        cache.insert(signature.clone(), Arc::clone(&s));
        Ok((s, Cache::Compiled))
    }

    /// Runs the model on `inputs` (one value per [`inputs`](Self::inputs), in order),
    /// compiled for their shapes.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Run, CompileError> {
        let signature = self.signature_of(inputs)?;
        let (specialization, cache) = self.specialize(&signature)?;
        let outputs = specialization.model.run(inputs)?;
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
