//! NVRTC: CUDA C source to PTX or to a cubin, plus the `ptxas -v` report parser.
//!
//! cudarc loads `libnvrtc.so.13` lazily by name (through `LD_LIBRARY_PATH` or the linker
//! cache) and panics if it cannot; every entry point here probes it first and returns
//! [`RuntimeError::Cuda`] instead.

use std::ffi::CString;
use std::path::PathBuf;
use std::time::Instant;

use cudarc::nvrtc::{result, sys};

use crate::RuntimeError;

/// True if the NVRTC library can be loaded.
pub fn available() -> bool {
    // SAFETY: only tries to open the library; no NVRTC function is called.
    unsafe { sys::is_culib_present() }
}

fn unavailable() -> RuntimeError {
    RuntimeError::Cuda(
        "NVRTC (libnvrtc.so.13) cannot be loaded: install it (scripts/install-cuda-wheels.sh \
         puts CUDA 13.0 wheels in .cuda/) and add its directory to LD_LIBRARY_PATH"
            .into(),
    )
}

/// NVRTC's version, `(major, minor)`.
pub fn version() -> Result<(i32, i32), RuntimeError> {
    if !available() {
        return Err(unavailable());
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present; both pointers are valid for writes.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| RuntimeError::Cuda(format!("nvrtcVersion: {e}")))?;
    Ok((major, minor))
}

/// What to compile to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// PTX for a virtual architecture, e.g. `compute_90`.
    Ptx(String),
    /// A cubin for a real architecture, e.g. `sm_90`; the log then holds ptxas's
    /// register and shared-memory report.
    Cubin(String),
}

/// NVRTC options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub target: Target,
    /// Directories holding `cuda_fp16.h` and `cuda_bf16.h` (the CUDA include directory).
    pub include_dirs: Vec<PathBuf>,
    /// Emit line information (for profilers).
    pub line_info: bool,
}

/// A compiled kernel source.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    /// PTX text or cubin bytes, per [`Target`].
    pub image: Vec<u8>,
    /// NVRTC's log (warnings, and for cubins ptxas's `-v` report).
    pub log: String,
    /// Wall time of the compilation, seconds.
    pub seconds: f64,
}

fn log_of(prog: sys::nvrtcProgram) -> String {
    // SAFETY: `prog` is a live program.
    match unsafe { result::get_program_log(prog) } {
        Ok(v) => {
            let bytes: Vec<u8> = v
                .into_iter()
                .map(|c| c as u8)
                .take_while(|&b| b != 0)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Err(e) => format!("(no log: {e})"),
    }
}

/// Compiles `source` (named `name` in messages) with `opts`.
pub fn compile(name: &str, source: &str, opts: &Options) -> Result<Compiled, RuntimeError> {
    if !available() {
        return Err(unavailable());
    }
    let err =
        |what: &str, e: result::NvrtcError| RuntimeError::Cuda(format!("{name}: {what}: {e}"));
    let src = CString::new(source)
        .map_err(|_| RuntimeError::Cuda(format!("{name}: the source contains a NUL byte")))?;
    let cname = CString::new(format!("{name}.cu"))
        .map_err(|_| RuntimeError::Cuda(format!("{name}: the name contains a NUL byte")))?;
    let mut options = vec!["-std=c++17".to_string()];
    match &opts.target {
        Target::Ptx(arch) => options.push(format!("--gpu-architecture={arch}")),
        Target::Cubin(arch) => {
            options.push(format!("--gpu-architecture={arch}"));
            options.push("--ptxas-options=-v".into());
        }
    }
    for d in &opts.include_dirs {
        let d = d.to_string_lossy();
        if d.contains('\0') {
            return Err(RuntimeError::Cuda(format!(
                "include directory {d:?} contains a NUL byte"
            )));
        }
        options.push(format!("--include-path={d}"));
    }
    if opts.line_info {
        options.push("-lineinfo".into());
    }
    let start = Instant::now();
    let prog =
        result::create_program(&src, Some(&cname)).map_err(|e| err("nvrtcCreateProgram", e))?;
    // SAFETY: `prog` is live; options contain no NUL bytes (checked above).
    let compiled = unsafe { result::compile_program(prog, &options) };
    let log = log_of(prog);
    let image = match compiled {
        Err(e) => Err(RuntimeError::Cuda(format!(
            "NVRTC could not compile {name} ({e}):\n{}",
            log.trim_end()
        ))),
        Ok(()) => match &opts.target {
            // SAFETY: compiled successfully for a virtual architecture.
            Target::Ptx(_) => unsafe { result::get_ptx(prog) }
                .map(|v| {
                    v.into_iter()
                        .map(|c| c as u8)
                        .take_while(|&b| b != 0)
                        .collect()
                })
                .map_err(|e| err("nvrtcGetPTX", e)),
            Target::Cubin(_) => cubin(prog).map_err(|e| err("nvrtcGetCUBIN", e)),
        },
    };
    // SAFETY: `prog` is live and not used after this.
    let destroyed = unsafe { result::destroy_program(prog) };
    let image = image?;
    destroyed.map_err(|e| err("nvrtcDestroyProgram", e))?;
    Ok(Compiled {
        image,
        log,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn cubin(prog: sys::nvrtcProgram) -> Result<Vec<u8>, result::NvrtcError> {
    let mut size = 0usize;
    // SAFETY: `prog` is a live, successfully compiled program; `size` is writable.
    unsafe { sys::nvrtcGetCUBINSize(prog, &mut size) }.result()?;
    let mut buf = vec![0u8; size];
    // SAFETY: `buf` holds `size` bytes, as NVRTC reported.
    unsafe { sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut std::ffi::c_char) }.result()?;
    Ok(buf)
}

/// Resources of one compiled function, from a `ptxas -v` report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionStats {
    pub function: String,
    pub registers: u32,
    pub spill_stores: u32,
    pub spill_loads: u32,
    pub stack_bytes: u32,
    pub shared_bytes: u32,
}

fn number_before(line: &str, unit: &str) -> Option<u32> {
    let end = line.find(unit)?;
    line[..end].split_whitespace().last()?.parse().ok()
}

/// Parses the `-v` report of ptxas (or of NVRTC compiling to a cubin): one entry per
/// entry function, in report order.
pub fn parse_ptxas_report(log: &str) -> Vec<FunctionStats> {
    let mut out: Vec<FunctionStats> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or_default();
            out.push(FunctionStats {
                function: name.to_string(),
                ..FunctionStats::default()
            });
            continue;
        }
        let Some(cur) = out.last_mut() else { continue };
        if line.contains("bytes stack frame") {
            cur.stack_bytes = number_before(line, "bytes stack frame").unwrap_or(0);
            cur.spill_stores = number_before(line, "bytes spill stores").unwrap_or(0);
            cur.spill_loads = number_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.contains("Used") && line.contains("registers") {
            cur.registers = number_before(line, "registers").unwrap_or(0);
            cur.shared_bytes = number_before(line, "bytes smem").unwrap_or(0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_ptxas_report() {
        let log = "ptxas info    : 0 bytes gmem\n\
ptxas info    : Compiling entry function 'k1_matmul' for 'sm_90'\n\
ptxas info    : Function properties for k1_matmul\n\
    16 bytes stack frame, 28 bytes spill stores, 24 bytes spill loads\n\
ptxas info    : Used 48 registers, used 1 barriers, 16 bytes cumulative stack size, 8320 bytes smem\n\
ptxas info    : Compiling entry function 'k2_add' for 'sm_90'\n\
ptxas info    : Function properties for k2_add\n\
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
ptxas info    : Used 12 registers, used 0 barriers, 384 bytes cmem[0]\n";
        let s = parse_ptxas_report(log);
        assert_eq!(
            s,
            vec![
                FunctionStats {
                    function: "k1_matmul".into(),
                    registers: 48,
                    spill_stores: 28,
                    spill_loads: 24,
                    stack_bytes: 16,
                    shared_bytes: 8320,
                },
                FunctionStats {
                    function: "k2_add".into(),
                    registers: 12,
                    ..FunctionStats::default()
                },
            ]
        );
    }
}
