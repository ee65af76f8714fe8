//! The sample format: one directory per model with its inputs and reference outputs.
//!
//! ```text
//! <sample>/model.onnx
//! <sample>/meta.json        name, source, dtype, provenance, inputs[], outputs[]
//! <sample>/inputs/<k>.pb    input k as an ONNX TensorProto (when stored as a file)
//! <sample>/outputs/<k>.pb   reference value of output k
//! ```
//!
//! An input is either a file or a `random` spec regenerated with the SplitMix64-based
//! generator in [`splitmix64_uniform`], so large inputs need not be committed. The format
//! is documented in full in `samples/README.md`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tessera_ir::{DType, Shape, Tensor};
use tessera_onnx::read_tensor_file;

/// Errors reading a sample.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error(transparent)]
    Tensor(#[from] tessera_onnx::ImportError),
}

/// `meta.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct Meta {
    pub name: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub provenance: serde_json::Value,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// One input or output of a sample.
#[derive(Clone, Debug, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    /// numpy name: `float32`, `int64`, `bool`, ...
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Path relative to the sample directory.
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub random: Option<RandomSpec>,
}

/// A generated input: `{"generator": "splitmix64-uniform", "seed", "low", "high"}`.
#[derive(Clone, Debug, Deserialize)]
pub struct RandomSpec {
    pub generator: String,
    pub seed: u64,
    pub low: f64,
    pub high: f64,
}

/// A loaded sample.
#[derive(Clone, Debug)]
pub struct Sample {
    pub dir: PathBuf,
    pub meta: Meta,
}

/// The dtype of a numpy dtype name.
pub fn dtype_from_numpy(name: &str) -> Option<DType> {
    Some(match name {
        "float32" => DType::F32,
        "float64" => DType::F64,
        "float16" => DType::F16,
        "bfloat16" => DType::BF16,
        "int8" => DType::I8,
        "int16" => DType::I16,
        "int32" => DType::I32,
        "int64" => DType::I64,
        "uint8" => DType::U8,
        "uint16" => DType::U16,
        "uint32" => DType::U32,
        "uint64" => DType::U64,
        "bool" => DType::Bool,
        _ => return None,
    })
}

/// SplitMix64 (Steele, Lea, Flood 2014): the generator behind `random` inputs.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The range random inputs of `dtype` are drawn from when nothing says otherwise: floats
/// in `[-1, 1)`, bools either value, integers in `[0, int_high)` (keep it below the
/// smallest dimension an integer input may index).
pub fn default_range(dtype: DType, int_high: f64) -> (f64, f64) {
    match dtype {
        d if d.is_float() => (-1.0, 1.0),
        DType::Bool => (0.0, 1.0),
        _ => (0.0, int_high),
    }
}

/// Random values for every input of `g`: input `k` from seed `seed + k` in
/// [`default_range`].
pub fn random_inputs(g: &tessera_ir::Graph, seed: u64, int_high: f64) -> Vec<Tensor> {
    g.inputs()
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let ty = g.ty(p.value);
            let (lo, hi) = default_range(ty.dtype, int_high);
            splitmix64_uniform(
                ty.dtype,
                ty.shape.clone(),
                seed.wrapping_add(k as u64),
                lo,
                hi,
            )
        })
        .collect()
}

/// A tensor from the `splitmix64-uniform` generator: floats uniform in `[low, high)`,
/// integers `low + next % (high - low)`, bools from the top bit. Row-major order.
pub fn splitmix64_uniform(dtype: DType, shape: Shape, seed: u64, low: f64, high: f64) -> Tensor {
    let mut rng = SplitMix64::new(seed);
    let n = shape.numel();
    if dtype.is_float() {
        let v: Vec<f64> = (0..n)
            .map(|_| low + (high - low) * rng.next_unit())
            .collect();
        let t = Tensor::from_vec(shape, v).expect("one per element");
        // f64 → f32 rounds to nearest even, like the generator's definition.
        t.cast(dtype)
    } else if dtype == DType::Bool {
        let v: Vec<bool> = (0..n).map(|_| rng.next_u64() >> 63 == 1).collect();
        Tensor::from_vec(shape, v).expect("one per element")
    } else {
        let (lo, hi) = (low as i64, high as i64);
        let span = (hi - lo).max(1) as u64;
        let v: Vec<i64> = (0..n)
            .map(|_| lo + (rng.next_u64() % span) as i64)
            .collect();
        Tensor::from_vec(shape, v)
            .expect("one per element")
            .cast(dtype)
    }
}

impl Sample {
    /// Reads `dir/meta.json`.
    pub fn open(dir: &Path) -> Result<Sample, SampleError> {
        let path = dir.join("meta.json");
        let invalid = |message: String| SampleError::Invalid {
            path: path.clone(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| invalid(e.to_string()))?;
        let meta: Meta = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        Ok(Sample {
            dir: dir.to_path_buf(),
            meta,
        })
    }

    pub fn model_path(&self) -> PathBuf {
        self.dir.join("model.onnx")
    }

    fn load(&self, spec: &TensorSpec) -> Result<Tensor, SampleError> {
        let invalid = |message: String| SampleError::Invalid {
            path: self.dir.join("meta.json"),
            message: format!("{}: {message}", spec.name),
        };
        let dtype = dtype_from_numpy(&spec.dtype)
            .ok_or_else(|| invalid(format!("unknown dtype {:?}", spec.dtype)))?;
        let shape = Shape::new(spec.shape.clone()).map_err(|e| invalid(e.to_string()))?;
        let t = match (&spec.file, &spec.random) {
            (Some(f), None) => read_tensor_file(&self.dir.join(f))?.1,
            (None, Some(r)) if r.generator == "splitmix64-uniform" => {
                splitmix64_uniform(dtype, shape.clone(), r.seed, r.low, r.high)
            }
            (None, Some(r)) => return Err(invalid(format!("unknown generator {:?}", r.generator))),
            _ => return Err(invalid("needs exactly one of `file` and `random`".into())),
        };
        if t.dtype() != dtype || t.shape() != &shape {
            return Err(invalid(format!(
                "holds {} but meta.json says {dtype}{shape}",
                t.ty()
            )));
        }
        Ok(t)
    }

    /// The inputs, in graph order.
    pub fn inputs(&self) -> Result<Vec<Tensor>, SampleError> {
        self.meta.inputs.iter().map(|s| self.load(s)).collect()
    }

    /// The reference outputs, in graph order.
    pub fn reference_outputs(&self) -> Result<Vec<Tensor>, SampleError> {
        self.meta.outputs.iter().map(|s| self.load(s)).collect()
    }
}

/// How far `actual` is from `expected` (same dtype and shape required).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Closeness {
    pub max_abs: f64,
    /// max |a − e| / |e| over elements with e ≠ 0.
    pub max_rel: f64,
    /// True if every element satisfies |a − e| ≤ atol + rtol·|e| (NaN never does, except
    /// NaN against NaN, which counts as equal).
    pub all_close: bool,
}

/// Compares elementwise with numpy/torch `allclose` semantics. `None` if the dtypes or
/// shapes differ.
pub fn compare(actual: &Tensor, expected: &Tensor, atol: f64, rtol: f64) -> Option<Closeness> {
    if actual.ty() != expected.ty() {
        return None;
    }
    let (a, e) = (actual.to_f64_vec(), expected.to_f64_vec());
    let mut c = Closeness {
        max_abs: 0.0,
        max_rel: 0.0,
        all_close: true,
    };
    for (&x, &y) in a.iter().zip(&e) {
        // Equal values (infinities included) and NaN against NaN are close.
        if x == y || (x.is_nan() && y.is_nan()) {
            continue;
        }
        let d = (x - y).abs();
        if d.is_nan() || d > atol + rtol * y.abs() {
            c.all_close = false;
        }
        c.max_abs = c.max_abs.max(if d.is_nan() { f64::INFINITY } else { d });
        if y != 0.0 {
            c.max_rel = c.max_rel.max(d / y.abs());
        }
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vectors of `samples/README.md`.
    #[test]
    fn generator_matches_published_vectors() {
        let mut r = SplitMix64::new(1000);
        assert_eq!(
            [r.next_u64(), r.next_u64(), r.next_u64()],
            [0x3c1eba8b4dccc148, 0xd07a9d82d4f4bbaf, 0xc5fe6a1c2fc9b651]
        );
        let f = splitmix64_uniform(DType::F32, Shape::from_dims(&[3]), 1000, -1.0, 1.0);
        let bits: Vec<u32> = f
            .as_slice::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        assert_eq!(bits, [0xbf07c28b, 0x3f20f53b, 0x3f0bfcd4]);
        let i = splitmix64_uniform(DType::I64, Shape::from_dims(&[3]), 1000, 0.0, 1124.0);
        assert_eq!(i.to_i64_vec(), [932, 227, 821]);
        let b = splitmix64_uniform(DType::Bool, Shape::from_dims(&[8]), 1000, 0.0, 1.0);
        assert_eq!(b.to_i64_vec(), [0, 1, 1, 0, 1, 1, 0, 1]);
    }
}
