//! Verification, lowering and execution of emitted modules through melior.
//!
//! [`verify`] parses a module's text with MLIR and runs MLIR's verifier. [`compile`]
//! also lowers it, by one pass pipeline ([`PIPELINE`]: one-shot bufferization with
//! results as out-parameters, linalg to loops, everything to the LLVM dialect), and
//! JIT-compiles it with MLIR's `ExecutionEngine`; [`MlirModel::run`] calls `@main` through
//! its C interface with one memref descriptor per input, constant and output.
//!
//! Invariant: nothing here is given a module the emitter did not write, and MLIR checks
//! every one ([`MlirError::Invalid`] carries MLIR's diagnostics).

use std::cell::RefCell;
use std::rc::Rc;

use melior::dialect::DialectRegistry;
use melior::ir::Module;
use melior::ir::operation::OperationLike;
use melior::pass::PassManager;
use melior::utility::{
    parse_pass_pipeline, register_all_dialects, register_all_llvm_translations, register_all_passes,
};
use melior::{Context, ExecutionEngine};
use tessera_ir::{Graph, Tensor, TensorType};
use tessera_lower::fusion::Mode;

use crate::emit::{MlirModule, emit};
use crate::error::{MlirError, Result};

/// The lowering pipeline, in MLIR's textual pass-pipeline syntax.
pub const PIPELINE: &str = "builtin.module(\
canonicalize, cse, \
empty-tensor-to-alloc-tensor, \
one-shot-bufferize{bufferize-function-boundaries=1 function-boundary-type-conversion=identity-layout-map}, \
buffer-results-to-out-params{modify-public-functions=1}, \
buffer-deallocation-pipeline, \
func.func(convert-linalg-to-loops), \
canonicalize, \
convert-scf-to-cf, \
expand-strided-metadata, \
lower-affine, \
finalize-memref-to-llvm, \
convert-math-to-llvm, \
convert-math-to-libm, \
convert-arith-to-llvm, \
convert-index-to-llvm, \
convert-cf-to-llvm, \
convert-func-to-llvm, \
reconcile-unrealized-casts)";

/// A context with every dialect and translation registered, and a sink for its
/// diagnostics.
fn context() -> (Context, Rc<RefCell<Vec<String>>>) {
    static PASSES: std::sync::Once = std::sync::Once::new();
    PASSES.call_once(register_all_passes);
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    let context = Context::new();
    context.append_dialect_registry(&registry);
    context.load_all_available_dialects();
    register_all_llvm_translations(&context);
    let sink = Rc::new(RefCell::new(Vec::new()));
    let s = sink.clone();
    context.attach_diagnostic_handler(move |d| {
        s.borrow_mut().push(format!("{}: {d}", d.location()));
        true
    });
    (context, sink)
}

fn drain(sink: &Rc<RefCell<Vec<String>>>) -> String {
    let v = std::mem::take(&mut *sink.borrow_mut());
    if v.is_empty() {
        "no diagnostics".into()
    } else {
        v.join("; ")
    }
}

fn parse<'c>(
    context: &'c Context,
    sink: &Rc<RefCell<Vec<String>>>,
    m: &MlirModule,
) -> Result<Module<'c>> {
    let module = Module::parse(context, &m.text).ok_or_else(|| MlirError::Invalid {
        module: m.name.clone(),
        diagnostics: drain(sink),
    })?;
    if !module.as_operation().verify() {
        return Err(MlirError::Invalid {
            module: m.name.clone(),
            diagnostics: drain(sink),
        });
    }
    Ok(module)
}

/// Parses `m` with MLIR and runs MLIR's verifier on it.
pub fn verify(m: &MlirModule) -> Result<()> {
    let (context, sink) = context();
    parse(&context, &sink, m).map(|_| ())
}

/// `m` after [`PIPELINE`], printed (for inspection and tests).
pub fn lower_to_llvm_dialect(m: &MlirModule) -> Result<String> {
    let (context, sink) = context();
    let mut module = parse(&context, &sink, m)?;
    run_pipeline(&context, &sink, &mut module, &m.name)?;
    Ok(module.as_operation().to_string())
}

fn run_pipeline(
    context: &Context,
    sink: &Rc<RefCell<Vec<String>>>,
    module: &mut Module,
    name: &str,
) -> Result<()> {
    let pm = PassManager::new(context);
    parse_pass_pipeline(pm.as_operation_pass_manager(), PIPELINE).map_err(|e| {
        MlirError::Pipeline {
            module: name.into(),
            diagnostics: format!("{e}; {}", drain(sink)),
        }
    })?;
    pm.run(module).map_err(|e| MlirError::Pipeline {
        module: name.into(),
        diagnostics: format!("{e}; {}", drain(sink)),
    })
}

/// A rank-1 memref descriptor, as MLIR's C interface passes it.
#[repr(C)]
struct Descriptor {
    allocated: *mut u8,
    aligned: *mut u8,
    offset: i64,
    size: i64,
    stride: i64,
}

/// Bytes in 8-byte-aligned storage (every element type's alignment).
fn words(bytes: &[u8]) -> Vec<u64> {
    let mut w = vec![0u64; bytes.len().div_ceil(8).max(1)];
    for (i, b) in bytes.iter().enumerate() {
        w[i / 8] |= (*b as u64) << (8 * (i % 8));
    }
    w
}

fn bytes_of(w: &[u64], len: usize) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).take(len).collect()
}

fn byte_len(t: &TensorType) -> usize {
    t.shape.numel() * t.dtype.size_bytes()
}

/// A model compiled by MLIR: the execution engine and the buffers `@main` takes.
pub struct MlirModel {
    engine: ExecutionEngine,
    inputs: Vec<TensorType>,
    constants: Vec<Vec<u64>>,
    constant_lens: Vec<usize>,
    outputs: Vec<TensorType>,
    /// The emitted module (before lowering).
    pub module: MlirModule,
}

/// Emits `g` (in fused mode), verifies, lowers and JIT-compiles it.
pub fn compile(g: &Graph) -> Result<MlirModel> {
    let lowering = emit(g, Mode::Fused)?;
    let m = lowering.code;
    let (context, sink) = context();
    let mut module = parse(&context, &sink, &m)?;
    run_pipeline(&context, &sink, &mut module, &m.name)?;
    let engine = ExecutionEngine::new(&module, 2, &[], false, false);
    if engine.lookup("_mlir__mlir_ciface_main").is_null() {
        return Err(MlirError::Engine(format!(
            "module {} has no C interface for @main: {}",
            m.name,
            drain(&sink)
        )));
    }
    let mut constants = Vec::new();
    let mut constant_lens = Vec::new();
    for &v in &m.constants {
        let t = g
            .constant(v)
            .ok_or_else(|| MlirError::Engine(format!("{v} is no constant")))?;
        let b = t.to_le_bytes();
        constant_lens.push(t.numel());
        constants.push(words(&b));
    }
    Ok(MlirModel {
        engine,
        inputs: g.inputs().iter().map(|p| g.ty(p.value).clone()).collect(),
        constants,
        constant_lens,
        outputs: g.outputs().iter().map(|p| g.ty(p.value).clone()).collect(),
        module: m,
    })
}

impl MlirModel {
    /// Runs `@main` on `args` (one per graph input, of its type).
    pub fn run(&self, args: &[Tensor]) -> Result<Vec<Tensor>> {
        if args.len() != self.inputs.len() {
            return Err(MlirError::InputCount {
                given: args.len(),
                expected: self.inputs.len(),
            });
        }
        let mut ins: Vec<Vec<u64>> = Vec::new();
        let mut in_lens = Vec::new();
        for (i, (a, t)) in args.iter().zip(&self.inputs).enumerate() {
            if a.ty() != *t {
                return Err(MlirError::Input {
                    index: i,
                    got: a.ty().to_string(),
                    want: t.to_string(),
                });
            }
            let b = a.to_le_bytes();
            in_lens.push(b.len());
            ins.push(words(&b));
        }
        let mut outs: Vec<Vec<u64>> = self
            .outputs
            .iter()
            .map(|t| vec![0u64; byte_len(t).div_ceil(8).max(1)])
            .collect();
        let elems = |t: &TensorType| t.shape.numel() as i64;
        let mut descs: Vec<Descriptor> = Vec::new();
        let desc = |w: &mut Vec<u64>, n: i64| Descriptor {
            allocated: w.as_mut_ptr() as *mut u8,
            aligned: w.as_mut_ptr() as *mut u8,
            offset: 0,
            size: n,
            stride: 1,
        };
        for (w, t) in ins.iter_mut().zip(&self.inputs) {
            descs.push(desc(w, elems(t)));
        }
        // The module never writes its constants (their arguments are not writable), so
        // lending them through a mutable pointer is sound.
        for (w, &len) in self.constants.iter().zip(&self.constant_lens) {
            let p = w.as_ptr() as *mut u8;
            descs.push(Descriptor {
                allocated: p,
                aligned: p,
                offset: 0,
                size: len as i64,
                stride: 1,
            });
        }
        for (w, t) in outs.iter_mut().zip(&self.outputs) {
            descs.push(desc(w, elems(t)));
        }
        let mut ptrs: Vec<*mut Descriptor> = descs.iter_mut().map(|d| d as *mut _).collect();
        let mut packed: Vec<*mut ()> = ptrs
            .iter_mut()
            .map(|p| p as *mut *mut Descriptor as *mut ())
            .collect();
        // MLIR's C API calls the packed wrapper of `_mlir_ciface_main`.
        // SAFETY: `@main`'s C interface takes one pointer to a rank-1 descriptor per
        // argument, in the order built above; every descriptor points to live storage
        // of its argument's size, aligned to 8 bytes.
        unsafe { self.engine.invoke_packed("main", &mut packed) }
            .map_err(|e| MlirError::Engine(e.to_string()))?;
        drop(descs);
        self.outputs
            .iter()
            .zip(&outs)
            .map(|(t, w)| {
                Tensor::from_le_bytes(t.dtype, t.shape.clone(), &bytes_of(w, byte_len(t)))
                    .map_err(|e| MlirError::Engine(e.to_string()))
            })
            .collect()
    }
}
