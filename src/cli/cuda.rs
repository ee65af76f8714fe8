//! The CUDA parts of the CLI: `compile --emit cuda --out DIR` (sources, manifest and,
//! when NVRTC loads, PTX) and `run --backend cuda`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;
use tessera::ir::{Graph, Tensor};
use tessera::lower::fusion::Mode;

/// The virtual architecture PTX is written for (H100/H200).
pub const PTX_ARCH: &str = "compute_90";

/// Directories holding `cuda_fp16.h`: `$CUDA_INCLUDE_DIR`, `$CUDA_HOME/include`,
/// `$CUDA_PATH/include`, `.cuda/nvidia/cu13/include` (the wheels) and
/// `/usr/local/cuda/include`, those that exist.
pub fn include_dirs() -> Vec<PathBuf> {
    let mut c: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("CUDA_INCLUDE_DIR") {
        c.push(d.into());
    }
    for v in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(d) = std::env::var_os(v) {
            c.push(PathBuf::from(d).join("include"));
        }
    }
    c.push(PathBuf::from(".cuda/nvidia/cu13/include"));
    c.push(PathBuf::from("/usr/local/cuda/include"));
    c.into_iter()
        .filter(|d| d.join("cuda_fp16.h").exists())
        .collect()
}

fn port_json(g: &Graph, p: &tessera::ir::Port) -> serde_json::Value {
    let ty = g.ty(p.value);
    json!({
        "name": p.name,
        "value": p.value.to_string(),
        "dtype": ty.dtype.name(),
        "shape": ty.shape.dims(),
    })
}

/// PTX of `source`, or why there is none.
#[cfg(feature = "cuda")]
fn ptx(name: &str, source: &str, include: &[PathBuf]) -> std::result::Result<Vec<u8>, String> {
    use tessera::runtime::cuda::nvrtc;
    if !nvrtc::available() {
        return Err("NVRTC (libnvrtc.so.13) is not loadable".into());
    }
    let opts = nvrtc::Options {
        target: nvrtc::Target::Ptx(PTX_ARCH.into()),
        include_dirs: include.to_vec(),
        line_info: false,
    };
    nvrtc::compile(name, source, &opts)
        .map(|c| c.image)
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "cuda"))]
fn ptx(_: &str, _: &str, _: &[PathBuf]) -> std::result::Result<Vec<u8>, String> {
    Err("this tessera was built without the `cuda` feature (no NVRTC)".into())
}

/// Writes every kernel of `g` (already optimized) as `DIR/<kernel>.cu`, its PTX as
/// `DIR/<kernel>.ptx` when NVRTC is available, and `DIR/manifest.json` with the launch
/// parameters. NVRTC errors are errors; a missing NVRTC is reported on stderr.
pub fn emit(g: &Graph, dir: &Path) -> Result<()> {
    let none = tessera::passes::cost::DeviceProfile::h200();
    let (g, kernels, cuda) = tessera::cuda_kernels(g, "none", &none, Mode::Fused)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let include = include_dirs();
    let mut entries = Vec::new();
    let mut no_ptx = None;
    let mut ptx_files = 0;
    for (k, c) in kernels.iter().zip(&cuda) {
        let file = format!("{}.cu", c.name);
        let path = dir.join(&file);
        std::fs::write(&path, &c.source).with_context(|| format!("writing {}", path.display()))?;
        let ptx_file = match ptx(&c.name, &c.source, &include) {
            Ok(bytes) => {
                let f = format!("{}.ptx", c.name);
                let p = dir.join(&f);
                std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
                ptx_files += 1;
                Some(f)
            }
            Err(why) if why.starts_with("NVRTC could not compile") => {
                anyhow::bail!("kernel {}: {why}", c.name)
            }
            Err(why) => {
                no_ptx = Some(why);
                None
            }
        };
        let nodes: Vec<String> = k.nodes.iter().map(|&n| g.node_ref(n).to_string()).collect();
        entries.push(json!({
            "name": c.name,
            "file": file,
            "ptx": ptx_file,
            "nodes": nodes,
            "params": c.params,
            "steps": c.steps,
        }));
    }
    let manifest = json!({
        "graph": g.name,
        "ptx_arch": PTX_ARCH,
        "arguments": "every function takes the kernel's parameters in order (device pointers), then a pointer to a u64 status word",
        "inputs": g.inputs().iter().map(|p| port_json(&g, p)).collect::<Vec<_>>(),
        "outputs": g.outputs().iter().map(|p| port_json(&g, p)).collect::<Vec<_>>(),
        "kernels": entries,
    });
    let mpath = dir.join("manifest.json");
    std::fs::write(&mpath, serde_json::to_string_pretty(&manifest)? + "\n")
        .with_context(|| format!("writing {}", mpath.display()))?;
    eprintln!(
        "wrote {} kernels ({} .cu, {ptx_files} .ptx for {PTX_ARCH}) and manifest.json to {}",
        cuda.len(),
        cuda.len(),
        dir.display()
    );
    if let Some(why) = no_ptx {
        eprintln!("PTX not written: {why}");
    }
    Ok(())
}

/// Runs `g` on GPU 0 (feature `cuda`).
#[cfg(feature = "cuda")]
pub fn run(g: &Graph, args: &[Tensor]) -> Result<Vec<Tensor>> {
    use tessera::runtime::cuda::{CudaOptions, probe};
    let info = probe(0)?;
    eprintln!(
        "CUDA device 0: {} (sm_{}{}, {:.1} GiB)",
        info.name,
        info.capability.0,
        info.capability.1,
        info.memory_bytes as f64 / (1u64 << 30) as f64
    );
    let opts = CudaOptions {
        include_dirs: include_dirs(),
        ..CudaOptions::default()
    };
    let start = std::time::Instant::now();
    let h200 = tessera::passes::cost::DeviceProfile::h200();
    let mut m = tessera::compile_cuda(g, "none", &h200, &opts)?;
    let s = m.stats();
    eprintln!(
        "compiled {} kernels in {:.2} s ({} NVRTC compiles, {:.2} s; {} cuBLAS and {} built-in GEMMs)",
        s.kernels,
        start.elapsed().as_secs_f64(),
        s.nvrtc_compiles,
        s.nvrtc_seconds,
        s.library_gemms,
        s.builtin_gemms
    );
    Ok(m.run(args)?)
}

#[cfg(not(feature = "cuda"))]
pub fn run(_: &Graph, _: &[Tensor]) -> Result<Vec<Tensor>> {
    anyhow::bail!(
        "this tessera was built without CUDA support; rebuild with `cargo build --release --features cuda`"
    )
}
