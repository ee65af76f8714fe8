//! The emitter: verified kernels of the lowering driver → one MLIR module per model.
//!
//! The module has one private `func.func` per kernel, named after it (`@k3_conv`), and
//! the driver `@main`, which calls the kernels in execution order. Everything is on
//! tensors: a kernel takes the flat (`tensor<len x T>`) parameters it reads and returns
//! those it writes; scratch parameters are local (`tensor.empty`), so the module needs
//! no arena. `@main` takes the graph inputs, then the constants the kernels read (in
//! first-use order, [`MlirModule::constants`]), and returns the graph outputs; it
//! carries `llvm.emit_c_interface` for the execution engine.
//!
//! * `nest`: loop nests as `linalg.generic` with `arith`/`math` bodies.
//! * `contraction`: GEMMs as `linalg.matmul`/`batch_matmul`, convolutions as
//!   `linalg.conv_*`/`depthwise_conv_*` on padded inputs, attention as batch matmuls
//!   around a softmax.
//! * `text`: names, types, literals, index arithmetic.
//!
//! The text is deterministic: names are numbered in emission order and nothing depends
//! on hashing order.

mod contraction;
mod nest;
mod text;

use std::collections::HashMap;
use std::fmt::Write;

use tessera_ir::{DType, Graph, ValueId};
use tessera_lower::fusion::Mode;
use tessera_lower::kir::{Access, Binding, Body as KBody, Index, Kernel, ParamId, Var};
use tessera_lower::{KernelRef, Lowering, Target, lower};

use crate::error::{EmitError, MlirError, Result};
use text::{Body, tensor};

/// An emitted module and the calling convention of its driver `@main`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MlirModule {
    /// The module's symbol name (the graph's name, made a valid identifier).
    pub name: String,
    /// The module in MLIR's textual form.
    pub text: String,
    /// `@main`'s trailing arguments after the graph inputs, in order.
    pub constants: Vec<ValueId>,
    /// Kernels emitted (one `func.func` each).
    pub kernels: usize,
}

/// The MLIR emitter as a lowering target: scratch buffers are tensors local to their
/// kernel, so none needs arena memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct MlirTarget;

impl Target for MlirTarget {
    type Code = MlirModule;
    type Error = MlirError;

    fn needs_scratch(&self, _: &Kernel, _: ParamId) -> bool {
        false
    }

    fn emit(&mut self, g: &Graph, kernels: &[Kernel]) -> Result<MlirModule> {
        emit_module(g, kernels)
    }
}

/// Lowers verified graph `g` in `mode` through the shared driver and emits its module
/// (not yet verified by MLIR: see `crate::jit` with the `melior` feature).
pub fn emit(g: &Graph, mode: Mode) -> Result<Lowering<MlirModule>> {
    lower(g, mode, &mut MlirTarget)
}

/// `name` as an MLIR bare identifier.
fn ident(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        s.insert_str(0, "m_");
    }
    s
}

/// The state of one kernel function being written.
pub(crate) struct KernelCx<'a> {
    k: &'a Kernel,
    body: Body,
    /// Per parameter, its current flat value (None: nothing written yet).
    cur: Vec<Option<String>>,
    /// The outer extents of the nest being emitted (accumulator shapes).
    outer_dims: Vec<usize>,
    /// The inner extents of the nest being emitted.
    inner_dims: Vec<usize>,
}

impl KernelCx<'_> {
    fn param_dtype(&self, p: ParamId) -> Result<DType, EmitError> {
        self.k
            .params
            .get(p.index())
            .map(|x| x.dtype)
            .ok_or_else(|| EmitError::Construct(format!("parameter {p} out of range")))
    }

    fn flat_ty(&self, p: ParamId) -> Result<String, EmitError> {
        let q = self
            .k
            .params
            .get(p.index())
            .ok_or_else(|| EmitError::Construct(format!("parameter {p} out of range")))?;
        Ok(tensor(&[q.len], q.dtype))
    }

    /// The current value of `p` and its type.
    fn current(&self, p: ParamId) -> Result<(String, String), EmitError> {
        let v = self
            .cur
            .get(p.index())
            .cloned()
            .flatten()
            .ok_or_else(|| EmitError::Construct(format!("{p} is read before it is written")))?;
        Ok((v, self.flat_ty(p)?))
    }

    /// Writes `v` (a tensor of `shape`, element `(vars…)`) to `p` at `index`.
    fn write(
        &mut self,
        p: ParamId,
        v: &str,
        shape: &[usize],
        vars: &[Var],
        index: &Index,
        d: DType,
    ) -> Result<(), EmitError> {
        let len = self.k.params[p.index()].len;
        let flat = self.flat_ty(p)?;
        let vty = tensor(shape, d);
        let points: usize = shape.iter().product();
        if points == len && *index == nest::row_major(shape, vars) {
            let new = match shape.len() {
                0 => self.body.op(
                    "t",
                    &format!("tensor.expand_shape {v} [] output_shape [1] : {vty} into {flat}"),
                ),
                1 => v.to_string(),
                r => {
                    let all: Vec<String> = (0..r).map(|i| i.to_string()).collect();
                    self.body.op(
                        "t",
                        &format!(
                            "tensor.collapse_shape {v} [[{}]] : {vty} into {flat}",
                            all.join(", ")
                        ),
                    )
                }
            };
            self.cur[p.index()] = Some(new);
            return Ok(());
        }
        let dest = match self.cur[p.index()].clone() {
            Some(t) => t,
            None => self.body.op("t", &format!("tensor.empty() : {flat}")),
        };
        let zero = self.body.index_const(0);
        let one = self.body.index_const(1);
        let hi = self.body.index_const(points as i64);
        let iv = self.body.fresh("s");
        let acc = self.body.fresh("s");
        let res = self.body.fresh("s");
        self.body.line(&format!(
            "{res} = scf.for {iv} = {zero} to {hi} step {one} iter_args({acc} = {dest}) -> ({flat}) {{"
        ));
        let saved = self.body.open();
        let mut coords = Vec::new();
        let mut stride = 1i64;
        let mut rev = Vec::new();
        for &e in shape.iter().rev() {
            let s = self.body.index_const(stride);
            let q = self.body.op("x", &format!("arith.divui {iv}, {s} : index"));
            let ec = self.body.index_const(e as i64);
            rev.push(self.body.op("x", &format!("arith.remui {q}, {ec} : index")));
            stride *= e as i64;
        }
        coords.extend(rev.into_iter().rev());
        let x = self.body.op(
            "x",
            &format!("tensor.extract {v}[{}] : {vty}", coords.join(", ")),
        );
        let var = |w: Var| vars.iter().position(|&u| u == w).map(|k| coords[k].clone());
        let ix = self.body.index(index, &var, &|_| None)?;
        let ins = self
            .body
            .op("x", &format!("tensor.insert {x} into {acc}[{ix}] : {flat}"));
        self.body.line(&format!("scf.yield {ins} : {flat}"));
        self.body.close(saved);
        self.body.line("}");
        self.cur[p.index()] = Some(res);
        Ok(())
    }
}

/// Whether the kernel takes parameter `p`'s value in: it reads it, or the value exists
/// already and the kernel may write only part of it.
fn takes(k: &Kernel, pi: usize, defined: &dyn Fn(ValueId) -> bool) -> Option<ValueId> {
    let p = &k.params[pi];
    match p.binding {
        Binding::Value(v) if p.len > 0 && (p.access == Access::Read || defined(v)) => Some(v),
        _ => None,
    }
}

fn returns(k: &Kernel, pi: usize) -> Option<ValueId> {
    let p = &k.params[pi];
    match p.binding {
        Binding::Value(v) if p.access != Access::Read => Some(v),
        _ => None,
    }
}

/// One kernel as a function: (text, argument values, result values).
fn kernel_fn(
    g: &Graph,
    k: &Kernel,
    defined: &dyn Fn(ValueId) -> bool,
) -> Result<(String, Vec<ValueId>, Vec<ValueId>), EmitError> {
    let mut cx = KernelCx {
        k,
        body: Body::new(2),
        cur: vec![None; k.params.len()],
        outer_dims: Vec::new(),
        inner_dims: Vec::new(),
    };
    let (mut args, mut arg_vals) = (Vec::new(), Vec::new());
    for (pi, p) in k.params.iter().enumerate() {
        let ty = tensor(&[p.len], p.dtype);
        if let Some(v) = takes(k, pi, defined) {
            args.push(format!("%p{pi}: {ty}"));
            arg_vals.push(v);
            cx.cur[pi] = Some(format!("%p{pi}"));
        } else if p.len == 0 {
            cx.cur[pi] = Some(cx.body.op("t", &format!("tensor.empty() : {ty}")));
        }
    }
    match &k.body {
        KBody::Loops(nests) => {
            for n in nests {
                nest::nest(&mut cx, n)?;
            }
        }
        KBody::Gemm(gm) => contraction::gemm(&mut cx, gm)?,
        KBody::Conv(c) => contraction::conv(&mut cx, c)?,
        KBody::Attention(a) => contraction::attention(&mut cx, a)?,
    }
    let (mut rets, mut ret_tys, mut ret_vals) = (Vec::new(), Vec::new(), Vec::new());
    for (pi, p) in k.params.iter().enumerate() {
        if let Some(v) = returns(k, pi) {
            let t = cx.cur[pi]
                .clone()
                .ok_or_else(|| EmitError::Construct(format!("p{pi} is never written")))?;
            rets.push(t);
            ret_tys.push(tensor(&[p.len], p.dtype));
            ret_vals.push(v);
        }
    }
    let mut s = String::new();
    let nodes: Vec<String> = k.nodes.iter().map(|&n| g.node_ref(n).to_string()).collect();
    let _ = writeln!(s, "  // {}: {}", k.name, nodes.join(", "));
    let _ = writeln!(
        s,
        "  func.func private @{}({}) -> ({}) {{",
        k.name,
        args.join(", "),
        ret_tys.join(", ")
    );
    s.push_str(&cx.body.text);
    let _ = writeln!(s, "    {}", ret_line(&rets, &ret_tys));
    let _ = writeln!(s, "  }}");
    Ok((s, arg_vals, ret_vals))
}

/// `return %a, %b : t, u`, or `return` for no values.
fn ret_line(values: &[String], tys: &[String]) -> String {
    if values.is_empty() {
        "return".into()
    } else {
        format!("return {} : {}", values.join(", "), tys.join(", "))
    }
}

fn flat_value_ty(g: &Graph, v: ValueId) -> String {
    let t = g.ty(v);
    tensor(&[t.shape.numel()], t.dtype)
}

/// The module of `kernels` (in execution order) computing `g`.
pub fn emit_module(g: &Graph, kernels: &[Kernel]) -> Result<MlirModule> {
    let name = ident(if g.name.is_empty() { "model" } else { &g.name });
    let mut values: HashMap<ValueId, String> = HashMap::new();
    let mut header = String::new();
    let mut main = Body::new(2);
    let mut main_args = Vec::new();
    for (i, p) in g.inputs().iter().enumerate() {
        let n = format!("%in{i}");
        let ty = flat_value_ty(g, p.value);
        main_args.push(format!("{n}: {ty} {{bufferization.writable = false}}"));
        let _ = writeln!(header, "//   {n}: input {:?} {}", p.name, g.ty(p.value));
        values.insert(p.value, n);
    }
    // Constants in first-use order, as arguments after the inputs.
    let mut constants = Vec::new();
    for k in kernels {
        for p in &k.params {
            if let Binding::Value(v) = p.binding
                && p.len > 0
                && !values.contains_key(&v)
                && g.constant(v).is_some()
            {
                let n = format!("%cst{}", constants.len());
                main_args.push(format!(
                    "{n}: {} {{bufferization.writable = false}}",
                    flat_value_ty(g, v)
                ));
                let _ = writeln!(header, "//   {n}: constant {v} {}", g.ty(v));
                values.insert(v, n);
                constants.push(v);
            }
        }
    }
    let mut funcs = String::new();
    for k in kernels {
        let (text, args, rets) =
            kernel_fn(g, k, &|v| values.contains_key(&v)).map_err(|e| MlirError::Unsupported {
                kernel: KernelRef::new(g, &k.name, &k.nodes),
                what: e.to_string(),
            })?;
        funcs.push_str(&text);
        let mut arg_names = Vec::new();
        let mut arg_tys = Vec::new();
        for v in &args {
            let n = values
                .get(v)
                .cloned()
                .ok_or_else(|| MlirError::Unsupported {
                    kernel: KernelRef::new(g, &k.name, &k.nodes),
                    what: format!("reads {v}, which no earlier kernel stores"),
                })?;
            arg_names.push(n);
            arg_tys.push(flat_value_ty(g, *v));
        }
        let ret_tys: Vec<String> = rets.iter().map(|&v| flat_value_ty(g, v)).collect();
        let call = format!(
            "func.call @{}({}) : ({}) -> ({})",
            k.name,
            arg_names.join(", "),
            arg_tys.join(", "),
            ret_tys.join(", ")
        );
        match rets.len() {
            0 => main.line(&call),
            1 => {
                let n = main.op("v", &call);
                values.insert(rets[0], n);
            }
            r => {
                let n = main.fresh("v");
                main.line(&format!("{n}:{r} = {call}"));
                for (i, v) in rets.iter().enumerate() {
                    values.insert(*v, format!("{n}#{i}"));
                }
            }
        }
    }
    let (mut outs, mut out_tys) = (Vec::new(), Vec::new());
    for p in g.outputs() {
        let ty = flat_value_ty(g, p.value);
        let n = match values.get(&p.value) {
            Some(n) => n.clone(),
            // A constant output no kernel reads: one more constant argument.
            None if g.constant(p.value).is_some() && g.ty(p.value).shape.numel() > 0 => {
                let n = format!("%cst{}", constants.len());
                main_args.push(format!("{n}: {ty} {{bufferization.writable = false}}"));
                let _ = writeln!(header, "//   {n}: constant {} {}", p.value, g.ty(p.value));
                values.insert(p.value, n.clone());
                constants.push(p.value);
                n
            }
            None if g.ty(p.value).shape.numel() == 0 => {
                main.op("v", &format!("tensor.empty() : {ty}"))
            }
            None => {
                return Err(MlirError::Unsupported {
                    kernel: KernelRef {
                        name: "@main".into(),
                        nodes: Vec::new(),
                    },
                    what: format!("graph output {:?} ({}) is never stored", p.name, p.value),
                });
            }
        };
        let _ = writeln!(header, "//   result: output {:?} {}", p.name, g.ty(p.value));
        outs.push(n);
        out_tys.push(ty);
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// tessera: model {:?}, {} kernels; @main takes:",
        g.name,
        kernels.len()
    );
    s.push_str(&header);
    let _ = writeln!(s, "module @{name} {{");
    s.push_str(&funcs);
    let _ = writeln!(
        s,
        "  func.func @main({}) -> ({}) attributes {{llvm.emit_c_interface}} {{",
        main_args.join(", "),
        out_tys.join(", ")
    );
    s.push_str(&main.text);
    let _ = writeln!(s, "    {}", ret_line(&outs, &out_tys));
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    Ok(MlirModule {
        name,
        text: s,
        constants,
        kernels: kernels.len(),
    })
}
