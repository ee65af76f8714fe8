//! Helpers shared by the verbs: loading models and tensor files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tessera::ir::{Graph, Tensor};
use tessera::sample::Sample;

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

/// The model file and, for a sample directory, the sample.
pub fn resolve(model: &Path) -> Result<(PathBuf, Option<Sample>)> {
    if model.is_dir() {
        let s = Sample::open(model)?;
        Ok((s.model_path(), Some(s)))
    } else {
        Ok((model.to_path_buf(), None))
    }
}

pub fn load(model: &Path, bind: &Bind) -> Result<(Graph, Option<Sample>)> {
    let (path, sample) = resolve(model)?;
    let g = tessera::load_onnx(&path, parse_pairs(&bind.bind)?)
        .with_context(|| format!("importing {}", path.display()))?;
    Ok((g, sample))
}
