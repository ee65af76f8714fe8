//! The seed corpus: committed ONNX seeds (`fuzz/seeds/onnx/*.onnx`), the text-IR test
//! cases (`*.tir`) and the printed IR of every ONNX seed that imports; and [`cut`], which
//! turns a real model into a small seed by making its large initializers graph inputs.

use std::fs;
use std::path::{Path, PathBuf};

use prost::Message;
use tessera_onnx::proto::{ModelProto, TypeProto, ValueInfoProto, type_proto};

use crate::FuzzError;
use crate::onnx::Dictionary;

/// Everything the mutators start from.
pub struct Corpus {
    /// ONNX seeds as bytes, in file-name order.
    pub onnx: Vec<Vec<u8>>,
    /// The same seeds decoded (those that decode).
    pub models: Vec<ModelProto>,
    pub dict: Dictionary,
    /// Text-IR seeds.
    pub texts: Vec<String>,
    /// The op names the text seeds use.
    pub ops: Vec<String>,
}

/// Files under `dir` (recursively) whose name ends with `ext`, sorted by path.
fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> Result<(), FuzzError> {
    let entries = fs::read_dir(dir).map_err(|source| FuzzError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            files(&p, ext, out)?;
        } else if p.to_string_lossy().ends_with(ext) {
            out.push(p);
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, FuzzError> {
    fs::read(path).map_err(|source| FuzzError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl Corpus {
    /// Loads the ONNX seeds under `onnx_dir` and the text seeds under `text_dirs`, and
    /// adds the printed IR of every ONNX seed that imports to the text seeds.
    pub fn load(onnx_dir: &Path, text_dirs: &[&Path]) -> Result<Corpus, FuzzError> {
        let mut paths = Vec::new();
        files(onnx_dir, ".onnx", &mut paths)?;
        let onnx = paths
            .iter()
            .map(|p| read(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut texts = Vec::new();
        for dir in text_dirs {
            let mut paths = Vec::new();
            files(dir, ".tir", &mut paths)?;
            for p in paths {
                texts.push(String::from_utf8_lossy(&read(&p)?).into_owned());
            }
        }
        Corpus::new(onnx, texts)
    }

    /// A corpus of the given seeds (printed IR of the importable ONNX seeds added to the
    /// texts).
    pub fn new(onnx: Vec<Vec<u8>>, mut texts: Vec<String>) -> Result<Corpus, FuzzError> {
        if onnx.is_empty() {
            return Err(FuzzError::NoSeeds("ONNX"));
        }
        let models: Vec<ModelProto> = onnx
            .iter()
            .filter_map(|b| tessera_onnx::decode(b).ok())
            .collect();
        for m in &models {
            let opts = tessera_onnx::ImportOptions {
                evaluator: Some(&tessera_reference::Reference),
                ..Default::default()
            };
            if let Ok(g) = tessera_onnx::import_model(m, &opts) {
                texts.push(tessera_ir::text::print(&g, &Default::default()));
            }
        }
        if texts.is_empty() {
            return Err(FuzzError::NoSeeds("text"));
        }
        let dict = Dictionary::from_models(&models);
        let ops = crate::text::op_names(texts.iter().map(String::as_str));
        Ok(Corpus {
            onnx,
            models,
            dict,
            texts,
            ops,
        })
    }
}

/// A small seed cut from `model`: every initializer of more than `keep` elements becomes
/// a graph input of the same type (the graph's structure, shapes and small constants,
/// which are what the importer reads, stay; the weights go). Returns the encoded model.
pub fn cut(model: &ModelProto, keep: usize) -> Vec<u8> {
    let mut m = model.clone();
    if let Some(g) = &mut m.graph {
        let mut kept = Vec::new();
        for t in std::mem::take(&mut g.initializer) {
            let numel = t
                .dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?));
            if numel.is_some_and(|n| n <= keep as u64) {
                kept.push(t);
                continue;
            }
            let name = t.name.clone().unwrap_or_default();
            g.input
                .retain(|vi| vi.name.as_deref() != Some(name.as_str()));
            g.input.push(ValueInfoProto {
                name: Some(name),
                r#type: Some(TypeProto {
                    value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                        elem_type: t.data_type,
                        shape: Some(tessera_onnx::proto::TensorShapeProto {
                            dim: t
                                .dims
                                .iter()
                                .map(|&d| tessera_onnx::proto::tensor_shape_proto::Dimension {
                                    denotation: None,
                                    value: Some(
                                        tessera_onnx::proto::tensor_shape_proto::dimension::Value::DimValue(d),
                                    ),
                                })
                                .collect(),
                        }),
                    })),
                    denotation: None,
                }),
                ..Default::default()
            });
        }
        g.initializer = kept;
    }
    m.encode_to_vec()
}
