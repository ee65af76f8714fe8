//! CUDA C from the kernel IR: one self-contained `.cu` translation unit per [`Kernel`],
//! plus the launches that run it ([`Step`]).
//!
//! The printer reads the same kernels the Cranelift backend runs and keeps their meaning;
//! the GPU mapping of a nest's hints is refined from the nest's shape:
//!
//! * Loop nests (`nest.rs`): a nest with only looped stores is elementwise (one thread per
//!   element, grid-stride); a nest with reductions runs one row (outer point) per thread,
//!   per warp or per block, reducing across threads with warp shuffles and, past one
//!   warp, shared memory. Along the last inner loop a thread handles `L` neighbouring
//!   elements with 16-byte loads and stores when every contiguous access is aligned to
//!   `L` elements (`L = 16 / widest element`); other accesses stay scalar. Index math is
//!   32-bit unless a size needs 64 bits.
//! * GEMM and convolution (`gemm.rs`): a tiled shared-memory kernel (implicit GEMM for
//!   convolutions: the im2col nest's load is evaluated while filling the tile, so no
//!   column buffer is written) with the epilogue nest applied to each output element in
//!   registers. For GEMMs a [`Step::Gemm`] also describes the cuBLAS call a runtime may
//!   make instead, followed by the epilogue as its own elementwise kernel.
//! * Attention (`attention.rs`): one kernel, a warp per query row, key/value tiles in
//!   shared memory and an online softmax; no score matrix is stored.
//!
//! f16 and bf16 values compute in f32 and are rounded to their type after every
//! operation, integers compute in 64 bits, bools as `bool`: the same rules as the
//! Cranelift backend and the reference interpreter. Errors a kernel detects (a gathered
//! index out of range, an integer division by zero) are OR-ed into a status word, the
//! last kernel argument.
//!
//! Every kernel function takes the kernel's parameters in order (`p0`, `p1`, …) and then
//! `unsigned long long* status`. Every function loops over its work with grid strides in
//! every grid dimension, so any grid of at least one block computes the same result; the
//! [`Launch`] grid is the one that gives each block one unit of work (capped).

mod attention;
mod c;
mod gemm;
mod nest;
mod prelude;

use std::fmt::Write;

use tessera_ir::{DType, Graph, ValueDef, ValueId};

use crate::{CodegenError, KernelError, KernelRef};
use tessera_lower::kir::{Access, Binding, Body, Kernel, ParamId};

pub use c::storage;
pub use prelude::{STATUS_DIVISION_BY_ZERO, STATUS_INDEX_OUT_OF_RANGE, prelude};

/// One kernel launch.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Launch {
    /// The `extern "C"` function name in the kernel's source.
    pub function: String,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    /// Static shared memory the function declares, in bytes (informational; no dynamic
    /// shared memory is used).
    pub shared_bytes: u32,
}

/// A matrix operand of a library GEMM: element `(batch, r, c)` at
/// `offsets[batch] + r·row_stride + c·col_stride` elements from the parameter's start.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LibraryOperand {
    #[serde(serialize_with = "param_id")]
    pub param: ParamId,
    /// One offset per flattened batch element.
    pub offsets: Vec<i64>,
    pub row_stride: i64,
    pub col_stride: i64,
}

/// `acc[batch, m, n] = alpha · a[batch] · b[batch]` for a BLAS library, `acc` contiguous.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LibraryGemm {
    #[serde(serialize_with = "dtype_name")]
    pub dtype: DType,
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f64,
    pub a: LibraryOperand,
    pub b: LibraryOperand,
    #[serde(serialize_with = "param_id")]
    pub acc: ParamId,
}

/// What a runtime does for one kernel, in order.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// Launch a function of the kernel's module.
    Launch(Launch),
    /// A matrix product: either the `builtin` launches (tessera's tiled kernel, with the
    /// epilogue fused where it fits), or the `library` GEMM followed by `after_library`
    /// (the epilogue as an elementwise kernel).
    Gemm {
        builtin: Vec<Launch>,
        /// Absent for element types the library does not multiply (integers).
        library: Option<LibraryGemm>,
        after_library: Vec<Launch>,
    },
}

/// A kernel printed as CUDA C.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CudaKernel {
    /// The kernel's name (`k<position>_<op>`), also the `.cu` file stem.
    pub name: String,
    /// A complete translation unit: NVRTC compiles it on its own.
    #[serde(skip)]
    pub source: String,
    /// True if the source includes `cuda_fp16.h` / `cuda_bf16.h` (NVRTC then needs the
    /// CUDA include directory).
    pub needs_cuda_headers: bool,
    /// Element type and length of every parameter, in argument order.
    pub params: Vec<ParamInfo>,
    pub steps: Vec<Step>,
}

/// A parameter as the launch manifest describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ParamInfo {
    #[serde(serialize_with = "dtype_name")]
    pub dtype: DType,
    pub len: usize,
    pub access: &'static str,
    /// `%<value id>` or `scratch`.
    pub binding: String,
}

impl CudaKernel {
    /// The source without its header comment and with the kernel's name replaced by
    /// `kernel`: kernels that differ only in name and provenance share it, so a compiler
    /// cache keyed by it compiles each distinct kernel once. Its functions are named by
    /// [`CudaKernel::canonical_function`].
    pub fn canonical_source(&self) -> String {
        let body = self
            .source
            .lines()
            .skip_while(|l| l.starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        format!("{}\n", body.replace(&self.name, "kernel"))
    }

    /// The name function `f` of this kernel has in [`CudaKernel::canonical_source`].
    pub fn canonical_function(&self, f: &str) -> String {
        f.replacen(&self.name, "kernel", 1)
    }

    /// Every function name the steps launch (the builtin and the epilogue of GEMMs).
    pub fn functions(&self) -> Vec<&str> {
        let mut v = Vec::new();
        for s in &self.steps {
            match s {
                Step::Launch(l) => v.push(l.function.as_str()),
                Step::Gemm {
                    builtin,
                    after_library,
                    ..
                } => {
                    for l in builtin.iter().chain(after_library) {
                        if !v.contains(&l.function.as_str()) {
                            v.push(l.function.as_str());
                        }
                    }
                }
            }
        }
        v
    }
}

fn param_id<S: serde::Serializer>(p: &ParamId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u32(p.0)
}

fn dtype_name<S: serde::Serializer>(d: &DType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.name())
}

/// The CUDA C printer as a lowering target ([`tessera_lower::lower`]). The implicit-GEMM
/// convolution reads its input directly, so convolutions' column buffers get no memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct CudaTarget;

impl tessera_lower::Target for CudaTarget {
    type Code = Vec<CudaKernel>;
    type Error = CodegenError;

    fn needs_scratch(&self, kernel: &Kernel, param: ParamId) -> bool {
        match &kernel.body {
            Body::Conv(c) => c.col != Some(param),
            _ => true,
        }
    }

    fn emit(&mut self, g: &Graph, kernels: &[Kernel]) -> Result<Vec<CudaKernel>, CodegenError> {
        emit_kernels(g, kernels)
    }
}

/// Prints every kernel of a model.
pub fn emit_kernels(g: &Graph, kernels: &[Kernel]) -> Result<Vec<CudaKernel>, CodegenError> {
    kernels.iter().map(|k| emit_kernel(g, k)).collect()
}

/// Prints one kernel of graph `g`.
pub fn emit_kernel(g: &Graph, k: &Kernel) -> Result<CudaKernel, CodegenError> {
    let err =
        |e: KernelError| CodegenError::kernel("cuda", KernelRef::new(g, &k.name, &k.nodes), e);
    let mut body = String::new();
    let mut steps = Vec::new();
    let sig = c::signature(&k.params, &k.in_place);
    match &k.body {
        Body::Loops(nests) => {
            for (i, n) in nests.iter().enumerate() {
                let f = if nests.len() == 1 {
                    k.name.clone()
                } else {
                    format!("{}_{i}", k.name)
                };
                if let Some(l) = nest::emit(&mut body, &f, &sig, n, &k.params).map_err(err)? {
                    steps.push(Step::Launch(l));
                }
            }
        }
        Body::Gemm(gm) => steps.extend(gemm::emit_gemm(&mut body, k, gm, &sig).map_err(err)?),
        Body::Conv(cv) => steps.extend(gemm::emit_conv(&mut body, k, cv, &sig).map_err(err)?),
        Body::Attention(a) => steps.extend(attention::emit(&mut body, k, a, &sig).map_err(err)?),
    }
    let needs_cuda_headers = k
        .params
        .iter()
        .any(|p| matches!(p.dtype, DType::F16 | DType::BF16))
        || body.contains("__half")
        || body.contains("__nv_bfloat16");
    let mut source = String::new();
    header(&mut source, g, k);
    source.push_str(&prelude::prelude(needs_cuda_headers));
    source.push_str(&body);
    Ok(CudaKernel {
        name: k.name.clone(),
        source,
        needs_cuda_headers,
        params: k
            .params
            .iter()
            .map(|p| ParamInfo {
                dtype: p.dtype,
                len: p.len,
                access: match p.access {
                    Access::Read => "read",
                    Access::Write => "write",
                    Access::ReadWrite => "read_write",
                },
                binding: match p.binding {
                    Binding::Value(v) => v.to_string(),
                    Binding::Scratch => "scratch".into(),
                },
            })
            .collect(),
        steps,
    })
}

/// What a value is, for comments: a graph input or output name, or its producer.
fn describe_value(g: &Graph, v: ValueId) -> String {
    if let Some(p) = g.outputs().iter().find(|p| p.value == v) {
        return format!("output {:?}", p.name);
    }
    match g.value(v).def {
        ValueDef::Input(i) => format!("input {:?}", g.inputs()[i].name),
        ValueDef::Node(n, _) => {
            let node = g.node(n);
            if g.constant(v).is_some() {
                format!("constant {n} {:?}", node.name)
            } else {
                format!("{n} {:?} ({})", node.name, node.op.name())
            }
        }
    }
}

fn header(out: &mut String, g: &Graph, k: &Kernel) {
    let _ = writeln!(out, "// tessera kernel {}", k.name);
    for &n in &k.nodes {
        let node = g.node(n);
        let _ = writeln!(out, "//   {n} {:?} ({})", node.name, node.op.name());
    }
    for (i, p) in k.params.iter().enumerate() {
        let what = match p.binding {
            Binding::Value(v) => format!("{v} {}", describe_value(g, v)),
            Binding::Scratch => "scratch".into(),
        };
        let access = match p.access {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "read_write",
        };
        let _ = writeln!(out, "// p{i}: {}[{}] {access} {what}", p.dtype, p.len);
    }
}
