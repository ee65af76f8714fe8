//! The static arena both compiled runtimes (`cpu`, `cuda`) place their buffers in.
//!
//! Every value a kernel stores lives from the step that first writes it to the last step
//! that reads it (graph outputs past the last step, so nothing reuses them); scratch
//! buffers live for their one step. A kernel's in-place pair may share its input's buffer
//! when that input dies at this step (the kernel reads every element before writing the
//! same position). `passes::memory::plan_buffers` then assigns offsets.

use std::collections::HashMap;

use tessera_codegen::kir::{Access, Binding, Kernel};
use tessera_ir::{Graph, ValueId};
use tessera_passes::memory::{ArenaPlan, Buffer, plan_buffers};

/// Where everything lives.
pub(crate) struct KernelArena {
    pub memory: ArenaPlan,
    /// Offset of each stored value.
    pub value: HashMap<ValueId, usize>,
    /// Offset of each scratch parameter, keyed by (step, parameter index).
    pub scratch: HashMap<(usize, usize), usize>,
}

/// Plans the arena for `kernels` run in order; `wants_scratch(kernel, param)` says whether
/// a scratch parameter needs memory (a backend may not use one, like the CUDA implicit
/// GEMM and the im2col column buffer).
pub(crate) fn plan(
    g: &Graph,
    kernels: &[Kernel],
    wants_scratch: &dyn Fn(&Kernel, usize) -> bool,
) -> KernelArena {
    let steps = kernels.len();
    let mut last: HashMap<ValueId, usize> = HashMap::new();
    for (s, k) in kernels.iter().enumerate() {
        for p in &k.params {
            if let Binding::Value(v) = p.binding {
                let e = last.entry(v).or_insert(s);
                *e = (*e).max(s);
            }
        }
    }
    for p in g.outputs() {
        last.insert(p.value, steps);
    }
    let mut bufs: Vec<Buffer> = Vec::new();
    let mut buf_of: HashMap<ValueId, usize> = HashMap::new();
    let mut scratch_buf: HashMap<(usize, usize), usize> = HashMap::new();
    for (s, k) in kernels.iter().enumerate() {
        for (pi, p) in k.params.iter().enumerate() {
            let bytes = p.len * p.dtype.size_bytes();
            match p.binding {
                Binding::Value(v) if p.access != Access::Read && !buf_of.contains_key(&v) => {
                    let reuse = k
                        .in_place
                        .iter()
                        .find(|&&(_, o)| o as usize == pi)
                        .and_then(|&(i, _)| match k.params[i as usize].binding {
                            Binding::Value(iv) => buf_of.get(&iv).copied(),
                            Binding::Scratch => None,
                        })
                        .filter(|&b| bufs[b].last == s);
                    buf_of.insert(v, bufs.len());
                    bufs.push(Buffer {
                        bytes,
                        first: s,
                        last: last.get(&v).copied().unwrap_or(s).max(s),
                        reuse,
                    });
                }
                Binding::Scratch if wants_scratch(k, pi) => {
                    scratch_buf.insert((s, pi), bufs.len());
                    bufs.push(Buffer {
                        bytes,
                        first: s,
                        last: s,
                        reuse: None,
                    });
                }
                _ => {}
            }
        }
    }
    let memory = plan_buffers(&bufs);
    let value = buf_of
        .into_iter()
        .map(|(v, b)| (v, memory.offsets[b]))
        .collect();
    let scratch = scratch_buf
        .into_iter()
        .map(|(k, b)| (k, memory.offsets[b]))
        .collect();
    KernelArena {
        memory,
        value,
        scratch,
    }
}
