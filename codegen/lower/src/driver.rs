//! The one lowering driver: plan → build → verify → emit → arena → parameter locations.
//!
//! Every backend (the CPU's Cranelift JIT, the CUDA C printer, later MLIR) lowers a graph
//! through [`lower`] and supplies only what differs, as a [`Target`]: how it turns
//! verified kernels into code, and which scratch buffers it needs memory for. What runs
//! is what [`Lowering`] describes: the fusion plan, the kernels in execution order, the
//! memory plan of the one arena, and where every kernel parameter lives.

use std::collections::HashMap;

use tessera_ir::{Graph, ValueId, verify};

use crate::build::build_kernels;
use crate::fusion::{self, FusionPlan, Mode};
use crate::kir::{self, Access, Binding, Kernel, ParamId};
use crate::memory::{self, MemoryPlan, StepUse, Write};
use crate::{KernelRef, LowerError};

/// What a backend supplies to [`lower`].
pub trait Target {
    /// What the backend makes of the kernels (JIT code, CUDA sources, MLIR modules).
    type Code;
    /// The backend's error; lowering errors convert into it.
    type Error: From<LowerError>;

    /// Whether scratch parameter `param` of `kernel` needs arena memory here. A backend
    /// may leave one unused: CUDA's implicit-GEMM convolution reads its input directly
    /// and never fills the im2col column buffer.
    fn needs_scratch(&self, kernel: &Kernel, param: ParamId) -> bool {
        let _ = (kernel, param);
        true
    }

    /// Turns the verified kernels of `g`, in execution order, into code.
    fn emit(&mut self, g: &Graph, kernels: &[Kernel]) -> Result<Self::Code, Self::Error>;
}

/// Where a kernel parameter lives at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// At this byte offset of the arena.
    Arena(usize),
    /// In graph input `i` (lent by the caller for one run).
    Input(usize),
    /// In constant `i` of [`Lowering::constants`].
    Const(usize),
    /// A value with no elements: never read or written.
    Empty,
    /// Scratch the target does not use ([`Target::needs_scratch`]).
    Unused,
}

/// A lowered graph: everything a runtime needs besides the graph itself.
#[derive(Debug)]
pub struct Lowering<C> {
    pub plan: FusionPlan,
    /// In execution order; kernel `i` computes group `i` of the plan.
    pub kernels: Vec<Kernel>,
    /// The one arena: every stored value and every used scratch buffer, placed.
    pub memory: MemoryPlan,
    /// Per kernel, the location of each parameter.
    pub locations: Vec<Vec<Location>>,
    /// The constants kernels read, each once, in first-use order.
    pub constants: Vec<ValueId>,
    pub code: C,
}

/// Lowers verified graph `g` in `mode` for `target`. Every step checks its output: the
/// graph is verified, the fusion plan checked ([`fusion::check_plan`]), every kernel
/// verified ([`kir::verify`]) before the target sees it.
pub fn lower<T: Target>(
    g: &Graph,
    mode: Mode,
    target: &mut T,
) -> Result<Lowering<T::Code>, T::Error> {
    verify(g).map_err(LowerError::from)?;
    let plan = fusion::plan(g, mode)?;
    fusion::check_plan(g, &plan)?;
    let kernels = build_kernels(g, &plan)?;
    for k in &kernels {
        kir::verify(k).map_err(|errors| LowerError::InvalidKernel {
            kernel: KernelRef::new(g, &k.name, &k.nodes),
            errors,
        })?;
    }
    let code = target.emit(g, &kernels)?;
    let memory = plan_memory(g, &kernels, &|k, p| target.needs_scratch(k, p));
    let (locations, constants) = locate(g, &kernels, &memory)?;
    Ok(Lowering {
        plan,
        kernels,
        memory,
        locations,
        constants,
        code,
    })
}

/// What each kernel reads, writes and needs as scratch, for [`memory::lifetimes`]. A
/// kernel's in-place pair lets the stored value take over its input's buffer when that
/// input dies at this kernel.
pub fn kernel_steps(
    kernels: &[Kernel],
    needs_scratch: &dyn Fn(&Kernel, ParamId) -> bool,
) -> Vec<StepUse> {
    kernels
        .iter()
        .map(|k| {
            let mut step = StepUse::default();
            for (pi, p) in k.params.iter().enumerate() {
                let id = ParamId::new(pi);
                match p.binding {
                    Binding::Value(v) => {
                        if p.access != Access::Write {
                            step.reads.push(v);
                        }
                        if p.access != Access::Read {
                            let in_place_of =
                                k.in_place
                                    .iter()
                                    .find(|&&(_, o)| o == id)
                                    .and_then(|&(i, _)| match k.params[i.index()].binding {
                                        Binding::Value(iv) => Some(iv),
                                        Binding::Scratch => None,
                                    });
                            step.writes.push(Write {
                                value: v,
                                bytes: p.bytes(),
                                in_place_of,
                            });
                        }
                    }
                    Binding::Scratch if needs_scratch(k, id) => step.scratch.push((pi, p.bytes())),
                    Binding::Scratch => {}
                }
            }
            step
        })
        .collect()
}

/// The memory plan of `kernels` run in order: [`kernel_steps`], [`memory::lifetimes`]
/// (graph outputs live past the last kernel), offsets.
pub fn plan_memory(
    g: &Graph,
    kernels: &[Kernel],
    needs_scratch: &dyn Fn(&Kernel, ParamId) -> bool,
) -> MemoryPlan {
    let outputs: Vec<ValueId> = g.outputs().iter().map(|p| p.value).collect();
    let steps = kernel_steps(kernels, needs_scratch);
    MemoryPlan::new(memory::lifetimes(&steps, &outputs))
}

/// Parameter locations and the constants they read.
fn locate(
    g: &Graph,
    kernels: &[Kernel],
    memory: &MemoryPlan,
) -> Result<(Vec<Vec<Location>>, Vec<ValueId>), LowerError> {
    let input_of: HashMap<ValueId, usize> = g
        .inputs()
        .iter()
        .enumerate()
        .map(|(i, p)| (p.value, i))
        .collect();
    let mut constants = Vec::new();
    let mut const_of: HashMap<ValueId, usize> = HashMap::new();
    let mut locations = Vec::with_capacity(kernels.len());
    for (s, k) in kernels.iter().enumerate() {
        let mut locs = Vec::with_capacity(k.params.len());
        for (pi, p) in k.params.iter().enumerate() {
            let loc = match p.binding {
                Binding::Scratch => match memory.scratch_offset(s, pi) {
                    Some(o) => Location::Arena(o),
                    None => Location::Unused,
                },
                Binding::Value(v) => {
                    if let Some(o) = memory.offset(v) {
                        Location::Arena(o)
                    } else if p.len == 0 {
                        Location::Empty
                    } else if let Some(&i) = input_of.get(&v) {
                        Location::Input(i)
                    } else if g.constant(v).is_some() {
                        Location::Const(*const_of.entry(v).or_insert_with(|| {
                            constants.push(v);
                            constants.len() - 1
                        }))
                    } else {
                        return Err(LowerError::Unstored {
                            kernel: KernelRef::new(g, &k.name, &k.nodes),
                            value: v,
                        });
                    }
                }
            };
            locs.push(loc);
        }
        locations.push(locs);
    }
    Ok((locations, constants))
}
