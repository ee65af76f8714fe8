//! JIT compilation of loop nests with Cranelift.
//!
//! [`Jit`] collects nests into one JIT module; [`Jit::finish`] links them and returns
//! [`JitCode`], which owns the executable memory and hands out function pointers of type
//! [`NestFn`]. See [`lower`] for the calling convention.

mod helpers;
pub mod lower;
mod math;

use std::collections::HashMap;

use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{AbiParam, UserFuncName};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};

use crate::{CodegenError, KernelError, KernelRef};
use tessera_lower::kir::{Nest, Param, VectorAxis};

pub use lower::{STATUS_DIVISION_BY_ZERO, STATUS_INDEX_OUT_OF_RANGE};

/// A compiled nest: `(params, status, begin, end, col_begin, col_end)`.
///
/// # Safety
/// `params` must point to one pointer per kernel parameter, each valid for the
/// parameter's length and dtype; `status` to a writable u64; `begin <= end <=`
/// [`parallel_units`]; `col_begin <= col_end <=` the last inner extent, and for
/// outer-vectorized nests exactly the whole extent (their small windows are unrolled).
pub type NestFn = unsafe extern "C" fn(*const *mut u8, *mut u64, u64, u64, u64, u64);

/// How many independent units `[begin, end)` ranges over for `nest`.
pub fn parallel_units(nest: &Nest) -> usize {
    match nest.hints.vector {
        VectorAxis::Outer => nest.outer[..nest.outer.len() - 1].iter().product(),
        _ => nest.outer_points(),
    }
}

/// A module being built.
pub struct Jit {
    module: JITModule,
    ctx: cranelift_codegen::Context,
    fctx: FunctionBuilderContext,
    helpers: Vec<(&'static str, FuncId)>,
    funcs: Vec<FuncId>,
    fma: bool,
}

/// `error` in `kernel`, as the Cranelift backend reports it.
fn kernel_err(kernel: &KernelRef, error: KernelError) -> CodegenError {
    CodegenError::kernel("cranelift", kernel.clone(), error)
}

impl Jit {
    /// A module for the host CPU, optimizing for speed.
    pub fn new() -> Result<Jit, CodegenError> {
        let mut flags = settings::builder();
        let host = |e: &dyn std::fmt::Display| CodegenError::Host(e.to_string());
        flags.set("opt_level", "speed").map_err(|e| host(&e))?;
        flags
            .set("use_colocated_libcalls", "false")
            .map_err(|e| host(&e))?;
        flags.set("is_pic", "false").map_err(|e| host(&e))?;
        // The IR verifier runs in debug builds (tests); release builds skip its cost.
        let verify = if cfg!(debug_assertions) {
            "true"
        } else {
            "false"
        };
        flags.set("enable_verifier", verify).map_err(|e| host(&e))?;
        let isa = cranelift_native::builder()
            .map_err(|e| host(&e))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| host(&e))?;
        let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
        let all = helpers::all();
        for h in &all {
            jb.symbol(h.name, h.ptr);
        }
        let mut module = JITModule::new(jb);
        let mut ids = Vec::new();
        for h in &all {
            let mut sig = module.make_signature();
            for &p in h.params {
                sig.params.push(AbiParam::new(p));
            }
            sig.returns.push(AbiParam::new(h.ret));
            let id = module
                .declare_function(h.name, Linkage::Import, &sig)
                .map_err(|e| CodegenError::Module(format!("helper {}: {e}", h.name)))?;
            ids.push((h.name, id));
        }
        #[cfg(target_arch = "x86_64")]
        let fma = std::arch::is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        let fma = false;
        let ctx = module.make_context();
        Ok(Jit {
            module,
            ctx,
            fctx: FunctionBuilderContext::new(),
            helpers: ids,
            funcs: Vec::new(),
            fma,
        })
    }

    /// Compiles `nest` of `kernel` (whose parameters are `params`); returns its index in
    /// the module.
    pub fn add_nest(
        &mut self,
        kernel: &KernelRef,
        nest: &Nest,
        params: &[Param],
    ) -> Result<usize, CodegenError> {
        let mut sig = self.module.make_signature();
        for _ in 0..6 {
            sig.params.push(AbiParam::new(I64));
        }
        let sym = format!("{}_{}", kernel.name, self.funcs.len());
        let id = self
            .module
            .declare_function(&sym, Linkage::Local, &sig)
            .map_err(|e| kernel_err(kernel, KernelError::Cranelift(e.to_string())))?;
        self.ctx.func.signature = sig;
        self.ctx.func.name = UserFuncName::user(0, id.as_u32());
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let mut refs = HashMap::new();
            for (n, fid) in &self.helpers {
                refs.insert(*n, self.module.declare_func_in_func(*fid, b.func));
            }
            lower::lower_nest(&mut b, nest, params, &refs, self.fma)
                .map_err(|e| kernel_err(kernel, e))?;
            b.finalize(self.module.target_config());
        }
        self.module
            .define_function(id, &mut self.ctx)
            .map_err(|e| kernel_err(kernel, KernelError::Cranelift(format!("{e:?}"))))?;
        self.module.clear_context(&mut self.ctx);
        self.funcs.push(id);
        Ok(self.funcs.len() - 1)
    }

    /// Links everything; function `i` is the `i`-th added nest.
    pub fn finish(mut self) -> Result<JitCode, CodegenError> {
        self.module
            .finalize_definitions()
            .map_err(|e| CodegenError::Module(format!("linking: {e}")))?;
        let fns = self
            .funcs
            .iter()
            .map(|&id| {
                let p = self.module.get_finalized_function(id);
                // SAFETY: every function was declared with the `NestFn` signature (six i64
                // parameters, no results) in the host's default calling convention.
                unsafe { std::mem::transmute::<*const u8, NestFn>(p) }
            })
            .collect();
        Ok(JitCode {
            module: Some(self.module),
            fns,
        })
    }
}

/// Executable code of a finished module.
pub struct JitCode {
    module: Option<JITModule>,
    fns: Vec<NestFn>,
}

// SAFETY: the code is immutable once finalized and the functions only touch memory their
// callers pass in; the module is only used again to free the memory on drop.
unsafe impl Send for JitCode {}
unsafe impl Sync for JitCode {}

impl JitCode {
    /// Function `i`.
    pub fn get(&self, i: usize) -> NestFn {
        self.fns[i]
    }

    pub fn len(&self) -> usize {
        self.fns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fns.is_empty()
    }
}

impl Drop for JitCode {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: the function pointers die with `self`; callers hold `&JitCode` while
            // calling them, so none can run after this point.
            unsafe { m.free_memory() };
        }
    }
}

#[cfg(test)]
mod tests;
