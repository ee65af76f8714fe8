//! The CUDA backend (cargo feature `cuda`): compiles a graph's kernels with NVRTC and runs
//! them on a GPU through the driver API.
//!
//! * [`compile`] lowers the graph through [`tessera_lower::lower`] (fusion plan, `Fused`
//!   or `Eager`; kernels; one arena from [`tessera_lower::memory`]) with the CUDA C
//!   printer as its target ([`tessera_codegen::cuda`]), compiles each distinct source
//!   (kernels differing only in name share one) once per process with NVRTC, in
//!   parallel, to a cubin for the device, and allocates the device arena and one buffer
//!   for the constants.
//! * [`CudaModel::run`] uploads the inputs, runs every launch (or cuBLAS call) on one
//!   stream, checks each kernel's status word and downloads the outputs. After the first
//!   run the launches are captured as a CUDA graph and replayed. [`CudaModel::time`]
//!   measures device time with CUDA events.
//!
//! cudarc loads every CUDA library at run time (`dynamic-loading`), so this module builds
//! on machines without CUDA. Without a driver, [`compile`] and [`probe`] return
//! [`crate::RuntimeError::Cuda`]; nothing here panics for a missing library, because every
//! entry point probes the library before its first call into it.

mod blas;
mod driver;
mod model;
pub mod nvrtc;

pub use driver::{DeviceInfo, driver_present};
pub use model::{
    CompileStats, CudaModel, CudaOptions, GemmBackend, StepTime, Timing, compile, probe,
    standard_include_dirs,
};

/// True if cuBLAS can be loaded.
pub fn cublas_present() -> bool {
    blas::present()
}
