//! Helpers shared by the verbs: loading models (specialized to static shapes) and tensor
//! files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tessera::ir::{Graph, Shape, Tensor};
use tessera::sample::Sample;
use tessera::{Options, Signature, SymbolicModel};

use crate::Bind;

pub fn parse_pairs(pairs: &[String]) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for p in pairs {
        let (name, file) = p
            .split_once('=')
            .with_context(|| format!("expected NAME=FILE.pb, got {p:?}"))?;
        let (_, t) = tessera::onnx::read_tensor_file(Path::new(file))?;
        out.insert(name.to_string(), t);
    }
    Ok(out)
}

/// `--shape` values: `SYMBOL=SIZE` pairs, comma-separated, in one or more flags.
pub fn parse_shapes(flags: &[String]) -> Result<HashMap<String, usize>> {
    let mut out = HashMap::new();
    for item in flags.iter().flat_map(|f| f.split(',')).map(str::trim) {
        if item.is_empty() {
            continue;
        }
        let (name, size) = item
            .split_once('=')
            .with_context(|| format!("--shape: expected SYMBOL=SIZE, got {item:?}"))?;
        let size: usize = size
            .trim()
            .parse()
            .with_context(|| format!("--shape: {size:?} is not a size (in {item:?})"))?;
        if let Some(old) = out.insert(name.trim().to_string(), size)
            && old != size
        {
            bail!("--shape gives {name} twice: {old} and {size}");
        }
    }
    Ok(out)
}

/// The model file and, for a sample directory, the sample.
pub fn resolve(model: &Path) -> Result<(PathBuf, Option<Sample>)> {
    if model.is_dir() {
        let s = Sample::open(model)?;
        Ok((s.model_path(), Some(s)))
    } else {
        Ok((model.to_path_buf(), None))
    }
}

/// A model imported at static shapes.
pub struct Loaded {
    /// The graph at `signature`'s shapes.
    pub graph: Graph,
    pub sample: Option<Sample>,
    /// The sample's inputs, when they were read to size the model.
    pub sample_inputs: Option<Vec<Tensor>>,
    /// The model, for compiling it at `signature` (with the options `load_for` got).
    pub model: SymbolicModel,
    pub signature: Signature,
}

pub fn load(model: &Path, bind: &Bind) -> Result<(Graph, Option<Sample>)> {
    let l = load_for(model, bind, &HashMap::new(), false, Options::default())?;
    Ok((l.graph, l.sample))
}

/// Imports `model` specialized to the sizes `--shape` gives and those of the input values
/// in `given` (by name) and, with `sample_inputs` and no `given`, the sample's inputs;
/// `options` are the compile options of its specializations.
pub fn load_for(
    model: &Path,
    bind: &Bind,
    given: &HashMap<String, Tensor>,
    sample_inputs: bool,
    options: Options,
) -> Result<Loaded> {
    let (path, sample) = resolve(model)?;
    let importing = || format!("importing {}", path.display());
    let sm =
        SymbolicModel::open(&path, parse_pairs(&bind.bind)?, options).with_context(importing)?;
    let from_sample = match &sample {
        Some(s) if sample_inputs && given.is_empty() => Some(s.inputs()?),
        _ => None,
    };
    let mut shapes: Vec<(&str, &Shape)> =
        given.iter().map(|(n, t)| (n.as_str(), t.shape())).collect();
    if let Some(v) = &from_sample {
        shapes.extend(
            sm.inputs()
                .iter()
                .zip(v)
                .map(|(d, t)| (d.name.as_str(), t.shape())),
        );
    }
    let signature = sm
        .signature(&parse_shapes(&bind.shape)?, &shapes)
        .with_context(importing)?;
    if !signature.is_static() {
        eprintln!("shapes: {signature}");
    }
    let graph = sm.import(&signature).with_context(importing)?;
    Ok(Loaded {
        graph,
        sample,
        sample_inputs: from_sample,
        model: sm,
        signature,
    })
}
