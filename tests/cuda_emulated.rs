//! The emitted CUDA C computes the right values, checked without a GPU: every kernel of a
//! model is compiled for the host CPU with `tests/cuda_support/cuda_host.h`, a header that
//! emulates CUDA's execution model (blocks one after another, a block's threads as OS
//! threads, barriers for `__syncthreads` and the warp shuffles), and the model's launches
//! run in order on host buffers poisoned with 0xFF bytes, with at most two blocks per grid
//! dimension (every kernel is grid-stride, so this checks that too). The outputs must match the
//! reference interpreter at GraphNet's tolerance (f32 t = −5; f16, bf16 t = −3; integers
//! and bools exactly).
//!
//! This covers the printer (indexing, vector lanes, reductions across threads, the tiled
//! and implicit GEMMs with fused epilogues, attention's online softmax, f16/bf16
//! rounding, status words), not the CUDA runtime (arena, cuBLAS, graphs): that needs a GPU
//! (`tests/cuda_run.rs`). Library GEMM steps run their built-in launches here.
//!
//! Needs a C++20 compiler (`g++`, or `$CXX`); without one the test fails with that reason.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

mod cuda_support;

use tessera::codegen::cuda::{CudaKernel, Launch, Step, storage};
use tessera::ir::{Graph, Tensor, ValueId};
use tessera::lower::fusion::Mode;
use tessera::lower::kir::{Access, Binding, Kernel};
use tessera::passes::cost::DeviceProfile;
use tessera::sample::{compare, random_inputs};

fn launches(k: &CudaKernel) -> Vec<&Launch> {
    k.steps
        .iter()
        .flat_map(|s| match s {
            Step::Launch(l) => vec![l],
            Step::Gemm { builtin, .. } => builtin.iter().collect(),
        })
        .collect()
}

/// One C++ translation unit with every kernel of a model (each in its own namespace, so
/// their preludes do not collide) and one C launcher per function.
fn translation_unit(kernels: &[CudaKernel]) -> String {
    let mut s = String::new();
    for (i, k) in kernels.iter().enumerate() {
        let _ = writeln!(
            s,
            "namespace tk{i} {{\n{}\n}}  // namespace tk{i}",
            k.source
        );
        let synchronizes = k.source.contains("__syncthreads") || k.source.contains("__shfl");
        for l in launches(k) {
            let mut args: Vec<String> = k
                .params
                .iter()
                .enumerate()
                .map(|(p, info)| format!("({}*)a[{p}]", storage(info.dtype)))
                .collect();
            args.push(format!("(unsigned long long*)a[{}]", k.params.len()));
            let _ = writeln!(
                s,
                "extern \"C\" __attribute__((visibility(\"default\"))) void launch_{f}(void** a, const unsigned* g, const unsigned* b) {{\n  \
                 th::launch(dim3{{g[0], g[1], g[2]}}, dim3{{b[0], b[1], b[2]}}, {synchronizes}, [&] {{ tk{i}::{f}({}); }});\n}}",
                args.join(", "),
                f = l.function
            );
        }
    }
    s
}

fn compiler() -> String {
    std::env::var("CXX").unwrap_or_else(|_| "g++".into())
}

/// Compiles the model's kernels into a shared library.
fn build(name: &str, kernels: &[CudaKernel]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-cuda-emulated-{}", std::process::id()));
    let stubs = dir.join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    for h in ["cuda_fp16.h", "cuda_bf16.h"] {
        std::fs::write(stubs.join(h), "// provided by cuda_host.h\n").unwrap();
    }
    let src = dir.join(format!("{name}.cpp"));
    std::fs::write(&src, translation_unit(kernels)).unwrap();
    let lib = dir.join(format!("lib{name}.so"));
    let header = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cuda_support/cuda_host.h");
    let out = Command::new(compiler())
        .args([
            "-std=c++20",
            "-O1",
            "-shared",
            "-fPIC",
            "-pthread",
            "-w",
            "-fvisibility=hidden",
        ])
        .arg("-I")
        .arg(&stubs)
        .arg("-include")
        .arg(&header)
        .arg("-o")
        .arg(&lib)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{name}: the C++ compiler {:?} does not run ({e}); install g++ or set CXX",
                compiler()
            )
        });
    assert!(
        out.status.success(),
        "{name}: the emulated kernels do not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

/// A host buffer aligned to 16 bytes (vector loads are `uint4`).
struct Buf(Vec<u128>);

impl Buf {
    fn new(bytes: usize, fill: u8) -> Buf {
        let mut v = vec![0u128; bytes.div_ceil(16).max(1)];
        let p = v.as_mut_ptr() as *mut u8;
        // SAFETY: the vector holds at least `bytes` bytes.
        unsafe { std::ptr::write_bytes(p, fill, bytes) };
        Buf(v)
    }

    fn from(bytes: &[u8]) -> Buf {
        let mut b = Buf::new(bytes.len(), 0);
        // SAFETY: `b` holds at least `bytes.len()` bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), b.ptr() as *mut u8, bytes.len()) };
        b
    }

    fn ptr(&mut self) -> *mut std::ffi::c_void {
        self.0.as_mut_ptr() as *mut std::ffi::c_void
    }

    fn bytes(&self, n: usize) -> &[u8] {
        // SAFETY: callers read at most the size they allocated.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr() as *const u8, n) }
    }
}

static LAUNCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

type LaunchFn = unsafe extern "C" fn(*mut *mut std::ffi::c_void, *const u32, *const u32);

/// Runs the kernels on `inputs` with every stored value poisoned first; the outputs, or
/// the first kernel that reported an error.
fn run(
    g: &Graph,
    kernels: &[Kernel],
    cuda: &[CudaKernel],
    lib: &libloading::Library,
    inputs: &[Tensor],
) -> Result<Vec<Tensor>, String> {
    let mut values: HashMap<ValueId, Buf> = HashMap::new();
    for (p, t) in g.inputs().iter().zip(inputs) {
        values.insert(p.value, Buf::from(&t.to_le_bytes()));
    }
    for (k, c) in kernels.iter().zip(cuda) {
        let mut scratch: Vec<Buf> = Vec::new();
        let mut ptrs: Vec<*mut std::ffi::c_void> = Vec::new();
        for p in &k.params {
            let bytes = p.len * p.dtype.size_bytes();
            match p.binding {
                Binding::Scratch => {
                    scratch.push(Buf::new(bytes, 0xff));
                    ptrs.push(scratch.last_mut().unwrap().ptr());
                }
                Binding::Value(v) => {
                    let buf = match values.entry(v) {
                        Entry::Occupied(e) => e.into_mut(),
                        Entry::Vacant(e) => e.insert(match g.constant(v) {
                            Some(t) => Buf::from(&t.to_le_bytes()),
                            None if p.access == Access::Read => {
                                return Err(format!("{}: reads {v}, which nothing stored", k.name));
                            }
                            None => Buf::new(bytes, 0xff),
                        }),
                    };
                    ptrs.push(buf.ptr());
                }
            }
        }
        let mut status = Buf::new(8, 0);
        ptrs.push(status.ptr());
        for l in launches(c) {
            // SAFETY: the symbol is the launcher `translation_unit` generated for `l`.
            let f: libloading::Symbol<LaunchFn> =
                unsafe { lib.get(format!("launch_{}", l.function).as_bytes()) }
                    .map_err(|e| e.to_string())?;
            // Every kernel is grid-stride in every dimension: two blocks per dimension
            // exercise that, and keep the emulation fast.
            let grid = l.grid.map(|g| g.min(2));
            // The emulator keeps the launch's dimensions in globals: one launch at a time
            // in this process (the tests run in parallel).
            let _one = LAUNCH.lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY: one pointer per parameter (each buffer sized for the parameter) and
            // the status word, as the kernel's signature expects.
            unsafe { f(ptrs.as_mut_ptr(), grid.as_ptr(), l.block.as_ptr()) };
        }
        let code = u64::from_le_bytes(status.bytes(8).try_into().unwrap());
        if code != 0 {
            return Err(format!("kernel {} reported status {code}", k.name));
        }
    }
    g.outputs()
        .iter()
        .map(|p| {
            let ty = g.ty(p.value);
            if let Some(t) = g.constant(p.value) {
                return Ok(t.clone());
            }
            let b = values
                .get(&p.value)
                .ok_or(format!("output {:?} was never written", p.name))?;
            Tensor::from_le_bytes(ty.dtype, ty.shape.clone(), b.bytes(ty.size_bytes()))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Emits, builds, runs and compares one model; the problems found.
fn check(name: &str, g: &Graph, inputs: &[Tensor], mode: Mode) -> Vec<String> {
    let (g, kernels, cuda) = tessera::cuda_kernels(g, "none", &DeviceProfile::h200(), mode)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let lib_path = build(name, &cuda);
    // SAFETY: a library this test just compiled; its initializers only set up statics.
    let lib = unsafe { libloading::Library::new(&lib_path) }.unwrap();
    let expected = tessera::reference::run(&g, inputs).unwrap();
    let outs = match run(&g, &kernels, &cuda, &lib, inputs) {
        Ok(o) => o,
        Err(e) => return vec![format!("{name}: {e}")],
    };
    let mut problems = Vec::new();
    assert_eq!(outs.len(), expected.len(), "output counts differ");
    for (k, (a, e)) in outs.iter().zip(&expected).enumerate() {
        let (atol, rtol) = cuda_support::tolerance(e.dtype());
        match compare(a, e, atol, rtol) {
            Some(c) if c.all_close => {}
            Some(c) => problems.push(format!(
                "{name} output {k} ({}): max abs {:.3e}, max rel {:.3e} outside atol {atol:e} / rtol {rtol:e}",
                g.outputs()[k].name,
                c.max_abs,
                c.max_rel
            )),
            None => problems.push(format!("{name} output {k}: {} vs {}", a.ty(), e.ty())),
        }
    }
    problems
}

#[test]
fn cuda_cases_compute_the_reference_results() {
    let mut problems = Vec::new();
    for (name, g) in cuda_support::cases() {
        let inputs = random_inputs(&g, 77, 8.0);
        for mode in [Mode::Fused, Mode::Eager] {
            problems.extend(check(&format!("{name}_{mode:?}"), &g, &inputs, mode));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn transformer_samples_compute_the_reference_results() {
    let mut problems = Vec::new();
    for name in ["mlp_iris", "tiny_bert_cls", "tiny_gptj_cls", "tiny_vit"] {
        let (g, inputs) = cuda_support::sample(name);
        let (opt, _) = tessera::optimize(&g, "default", &DeviceProfile::h200(), None).unwrap();
        problems.extend(check(&format!("{name}_fused"), &g, &inputs, Mode::Fused));
        problems.extend(check(
            &format!("{name}_optimized"),
            &opt,
            &inputs,
            Mode::Fused,
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
