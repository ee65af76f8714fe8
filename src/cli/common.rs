//! Helpers shared by the verbs: loading models (specialized to static shapes) and tensor
//! files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tessera::ir::{Graph, Shape, Tensor};
use tessera::sample::{Sample, default_range, splitmix64_uniform};
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
    /// The sample's inputs by name, when they were read to size the model.
    pub sample_inputs: Option<HashMap<String, Tensor>>,
    /// The model, for compiling it at `signature` (with the options `load_for` got).
    pub model: SymbolicModel,
    /// Symbol sizes, and the values of the inputs that fix a shape (no longer inputs of
    /// `graph`).
    pub signature: Signature,
}

pub fn load(model: &Path, bind: &Bind) -> Result<(Graph, Option<Sample>)> {
    let l = load_for(model, bind, &HashMap::new(), false, Options::default())?;
    Ok((l.graph, l.sample))
}

/// Imports `model` specialized to the sizes `--shape` gives and those of the input values
/// in `given` (by name) and, with `sample_inputs` and no `given`, the sample's inputs; an
/// input that fixes a shape is bound to its value there. `options` are the compile
/// options of its specializations.
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
    let from_sample: Option<HashMap<String, Tensor>> = match &sample {
        Some(s) if sample_inputs && given.is_empty() => Some(
            sm.inputs()
                .iter()
                .map(|d| d.name.clone())
                .zip(s.inputs()?)
                .collect(),
        ),
        _ => None,
    };
    let values = from_sample.as_ref().unwrap_or(given);
    let shapes: Vec<(&str, &Shape)> = values
        .iter()
        .map(|(n, t)| (n.as_str(), t.shape()))
        .collect();
    let signature = sm
        .signature(&parse_shapes(&bind.shape)?, &shapes)
        .with_context(importing)?;
    let (signature, graph) = sm
        .resolve(signature, &|name| values.get(name).cloned())
        .with_context(importing)?;
    if !signature.is_static() {
        eprintln!("shapes: {signature}");
    }
    Ok(Loaded {
        graph,
        sample,
        sample_inputs: from_sample,
        model: sm,
        signature,
    })
}

/// The values of `g`'s inputs, in order: from `given` (by name; every entry must be used,
/// except inputs `signature` binds to constants), else from the sample's inputs, else
/// seeded random values (said on stderr when `verbose`).
pub fn graph_inputs(
    g: &Graph,
    mut given: HashMap<String, Tensor>,
    sample: Option<&HashMap<String, Tensor>>,
    signature: &Signature,
    seed: u64,
    verbose: bool,
) -> Result<Vec<Tensor>> {
    given.retain(|name, _| !signature.binds(name));
    let mut args = Vec::new();
    for (i, p) in g.inputs().iter().enumerate() {
        let ty = g.ty(p.value);
        let t = if let Some(t) = given.remove(&p.name) {
            t
        } else if let Some(s) = sample {
            s.get(&p.name)
                .cloned()
                .with_context(|| format!("the sample has no input {:?}", p.name))?
        } else {
            let (lo, hi) = default_range(ty.dtype, 10.0);
            let seed = seed.wrapping_add(i as u64);
            if verbose {
                eprintln!(
                    "input {:?}: random {ty} in [{lo}, {hi}) (seed {seed})",
                    p.name
                );
            }
            splitmix64_uniform(ty.dtype, ty.shape.clone(), seed, lo, hi)
        };
        args.push(t);
    }
    if let Some(name) = given.keys().next() {
        bail!("--input {name:?} is not a graph input");
    }
    Ok(args)
}

/// The latency search's warnings and decisions table on stderr (nothing when it was off).
pub fn print_search(r: &tessera::SearchReport) {
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if r.mode != tessera::Search::Off {
        eprint!("{}", r.table());
        let (same, of) = r.agreement();
        if r.mode == tessera::Search::Measure && of > 0 {
            eprintln!("the calibrated model alone picks the same way for {same} of {of} kernels");
        }
    }
}

/// The latency search as JSON: mode, counts, and one object per decision.
pub fn search_json(r: &tessera::SearchReport) -> serde_json::Value {
    let decisions: Vec<serde_json::Value> = r
        .decisions
        .iter()
        .map(|d| {
            serde_json::json!({
                "kernel": d.kernel,
                "choice": d.choice,
                "heuristic": d.default,
                "model_choice": d.model_choice,
                "alternatives": d.alternatives.iter().map(|a| serde_json::json!({
                    "name": a.name,
                    "seconds": a.seconds,
                    "spread": a.spread,
                    "cached": a.cached,
                    "predicted": a.predicted,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "mode": r.mode.name(),
        "seconds": r.seconds,
        "measured": r.measured,
        "cached": r.cached,
        "over_budget": r.over_budget,
        "changed": r.changed(),
        "agreement": [r.agreement().0, r.agreement().1],
        "fingerprint": r.fingerprint,
        "decisions": decisions,
    })
}
