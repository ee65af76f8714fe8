//! Owned CUDA driver objects over cudarc's thin `result` layer: every call's result is
//! checked and turned into [`RuntimeError::Cuda`] naming the call; every object is
//! released on drop.

use std::ffi::c_void;

use cudarc::driver::{result, sys};

use crate::RuntimeError;

/// A checked driver call: `call(what)?`.
pub(crate) fn check<T>(what: &str, r: Result<T, result::DriverError>) -> Result<T, RuntimeError> {
    r.map_err(|e| {
        let name = e
            .error_name()
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("{:?}", e.0));
        let text = e
            .error_string()
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        RuntimeError::Cuda(format!("{what} failed: {name} ({text})"))
    })
}

/// True if the driver library (`libcuda.so`) can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the library.
    unsafe { sys::is_culib_present() }
}

/// A device and its primary context, current on the thread that created it.
pub(crate) struct Context {
    dev: sys::CUdevice,
    ctx: sys::CUcontext,
}

/// What `Context::new` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    /// Compute capability, `(major, minor)`.
    pub capability: (i32, i32),
    pub memory_bytes: usize,
    pub multiprocessors: i32,
}

impl Context {
    /// Initializes the driver and retains device `ordinal`'s primary context. Fails
    /// cleanly (never panics) when no driver or device exists.
    pub fn new(ordinal: usize) -> Result<(Context, DeviceInfo), RuntimeError> {
        if !driver_present() {
            return Err(RuntimeError::Cuda(
                "no CUDA driver: libcuda.so cannot be loaded (is this a machine with an NVIDIA GPU and its driver?)"
                    .into(),
            ));
        }
        check("cuInit", result::init())?;
        let count = check("cuDeviceGetCount", result::device::get_count())?;
        if ordinal as i64 >= count as i64 {
            return Err(RuntimeError::Cuda(format!(
                "CUDA device {ordinal} does not exist ({count} device(s) present)"
            )));
        }
        let dev = check("cuDeviceGet", result::device::get(ordinal as i32))?;
        // SAFETY: `dev` is a valid device handle.
        let ctx = check("cuDevicePrimaryCtxRetain", unsafe {
            result::primary_ctx::retain(dev)
        })?;
        let c = Context { dev, ctx };
        c.make_current()?;
        let attr = |a| {
            // SAFETY: valid device, valid attribute.
            check("cuDeviceGetAttribute", unsafe {
                result::device::get_attribute(dev, a)
            })
        };
        let info = DeviceInfo {
            ordinal,
            name: check("cuDeviceGetName", result::device::get_name(dev))?,
            capability: (
                attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
                attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
            ),
            // SAFETY: valid device.
            memory_bytes: check("cuDeviceTotalMem", unsafe {
                result::device::total_mem(dev)
            })?,
            multiprocessors: attr(
                sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )?,
        };
        Ok((c, info))
    }

    /// Makes the context current on the calling thread.
    pub fn make_current(&self) -> Result<(), RuntimeError> {
        // SAFETY: the context is retained for `self`'s lifetime.
        check("cuCtxSetCurrent", unsafe {
            result::ctx::set_current(self.ctx)
        })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: retained in `new`; released once. Errors at teardown cannot be reported.
        let _ = unsafe { result::primary_ctx::release(self.dev) };
    }
}

/// Device memory.
pub(crate) struct Buffer {
    pub ptr: sys::CUdeviceptr,
    pub bytes: usize,
}

impl Buffer {
    pub fn new(bytes: usize, what: &str) -> Result<Buffer, RuntimeError> {
        if bytes == 0 {
            return Ok(Buffer { ptr: 0, bytes });
        }
        // SAFETY: a plain allocation in the current context.
        let ptr = unsafe { result::malloc_sync(bytes) }.map_err(|e| {
            check::<()>(&format!("cuMemAlloc of {bytes} bytes for {what}"), Err(e)).unwrap_err()
        })?;
        Ok(Buffer { ptr, bytes })
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if self.ptr != 0 {
            // SAFETY: allocated by `malloc_sync`, freed once.
            let _ = unsafe { result::free_sync(self.ptr) };
        }
    }
}

/// A non-blocking stream.
pub(crate) struct Stream(pub sys::CUstream);

impl Stream {
    pub fn new() -> Result<Stream, RuntimeError> {
        check(
            "cuStreamCreate",
            result::stream::create(result::stream::StreamKind::NonBlocking),
        )
        .map(Stream)
    }

    pub fn sync(&self) -> Result<(), RuntimeError> {
        // SAFETY: a live stream.
        check("cuStreamSynchronize", unsafe {
            result::stream::synchronize(self.0)
        })
    }

    /// Copies `src` to device address `dst` and waits for the copy.
    pub fn upload(&self, dst: sys::CUdeviceptr, src: &[u8]) -> Result<(), RuntimeError> {
        if src.is_empty() {
            return Ok(());
        }
        // SAFETY: `dst` addresses at least `src.len()` bytes (callers size buffers from the
        // same types); the copy completes before `src` can be dropped (synchronized).
        check("cuMemcpyHtoDAsync", unsafe {
            result::memcpy_htod_async(dst, src, self.0)
        })?;
        self.sync()
    }

    /// Copies `dst.len()` bytes from device address `src` and waits for the copy.
    pub fn download(&self, dst: &mut [u8], src: sys::CUdeviceptr) -> Result<(), RuntimeError> {
        if dst.is_empty() {
            return Ok(());
        }
        // SAFETY: as for `upload`.
        check("cuMemcpyDtoHAsync", unsafe {
            result::memcpy_dtoh_async(dst, src, self.0)
        })?;
        self.sync()
    }

    pub fn memset(
        &self,
        dst: sys::CUdeviceptr,
        byte: u8,
        bytes: usize,
    ) -> Result<(), RuntimeError> {
        if bytes == 0 {
            return Ok(());
        }
        // SAFETY: `dst` addresses `bytes` bytes of a live buffer.
        check("cuMemsetD8Async", unsafe {
            result::memset_d8_async(dst, byte, bytes, self.0)
        })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once.
        let _ = unsafe { result::stream::destroy(self.0) };
    }
}

/// A loaded module (cubin or PTX image).
pub(crate) struct Module(sys::CUmodule);

impl Module {
    pub fn load(image: &[u8], what: &str) -> Result<Module, RuntimeError> {
        // cuModuleLoadData reads PTX as a NUL-terminated string; cubins carry their size.
        let mut data = image.to_vec();
        data.push(0);
        // SAFETY: `data` is a complete cubin or NUL-terminated PTX and outlives the call.
        let m = unsafe { result::module::load_data(data.as_ptr() as *const c_void) };
        check(&format!("cuModuleLoadData ({what})"), m).map(Module)
    }

    pub fn function(&self, name: &str) -> Result<sys::CUfunction, RuntimeError> {
        let c = std::ffi::CString::new(name)
            .map_err(|_| RuntimeError::Cuda(format!("function name {name:?} contains NUL")))?;
        // SAFETY: a live module; the function lives as long as the module.
        check(&format!("cuModuleGetFunction ({name})"), unsafe {
            result::module::get_function(self.0, c)
        })
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        // SAFETY: loaded in `load`, unloaded once.
        let _ = unsafe { result::module::unload(self.0) };
    }
}

/// A CUDA event (timing enabled).
pub(crate) struct Event(pub sys::CUevent);

impl Event {
    pub fn new() -> Result<Event, RuntimeError> {
        check(
            "cuEventCreate",
            result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT),
        )
        .map(Event)
    }

    pub fn record(&self, s: &Stream) -> Result<(), RuntimeError> {
        // SAFETY: live event and stream.
        check("cuEventRecord", unsafe {
            result::event::record(self.0, s.0)
        })
    }

    /// Milliseconds from `self` to `end` (both recorded and complete).
    pub fn elapsed_ms(&self, end: &Event) -> Result<f32, RuntimeError> {
        // SAFETY: live events.
        check("cuEventSynchronize", unsafe {
            result::event::synchronize(end.0)
        })?;
        // SAFETY: live, completed events.
        check("cuEventElapsedTime", unsafe {
            result::event::elapsed(self.0, end.0)
        })
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once.
        let _ = unsafe { result::event::destroy(self.0) };
    }
}

/// An instantiated CUDA graph.
pub(crate) struct GraphExec {
    graph: sys::CUgraph,
    exec: sys::CUgraphExec,
}

impl GraphExec {
    /// Starts capturing `s`.
    pub fn begin(s: &Stream) -> Result<(), RuntimeError> {
        // SAFETY: a live stream not already capturing.
        check("cuStreamBeginCapture", unsafe {
            result::stream::begin_capture(
                s.0,
                sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
            )
        })
    }

    /// Ends the capture of `s` and instantiates the graph.
    pub fn end(s: &Stream) -> Result<GraphExec, RuntimeError> {
        // SAFETY: `s` is capturing (begun by `begin`).
        let graph = check("cuStreamEndCapture", unsafe {
            result::stream::end_capture(s.0)
        })?;
        // SAFETY: a complete captured graph.
        let exec = unsafe { result::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0)) };
        match check("cuGraphInstantiate", exec) {
            Ok(exec) => Ok(GraphExec { graph, exec }),
            Err(e) => {
                // SAFETY: the graph was created above and is not used again.
                let _ = unsafe { result::graph::destroy(graph) };
                Err(e)
            }
        }
    }

    pub fn launch(&self, s: &Stream) -> Result<(), RuntimeError> {
        // SAFETY: a live instantiated graph and stream.
        check("cuGraphLaunch", unsafe {
            result::graph::launch(self.exec, s.0)
        })
    }
}

impl Drop for GraphExec {
    fn drop(&mut self) {
        // SAFETY: created in `end`, destroyed once.
        unsafe {
            let _ = result::graph::exec_destroy(self.exec);
            let _ = result::graph::destroy(self.graph);
        }
    }
}

/// Launches `f` on `s` with `args` (one 8-byte value per kernel parameter).
pub(crate) fn launch(
    f: sys::CUfunction,
    name: &str,
    grid: [u32; 3],
    block: [u32; 3],
    s: &Stream,
    args: &mut [u64],
) -> Result<(), RuntimeError> {
    let mut ptrs: Vec<*mut c_void> = args
        .iter_mut()
        .map(|a| a as *mut u64 as *mut c_void)
        .collect();
    // SAFETY: `f` takes exactly `args.len()` 8-byte parameters (device pointers), as the
    // printer declared it; the pointed-to values outlive the call (the driver copies them).
    let r = unsafe {
        result::launch_kernel(
            f,
            (grid[0], grid[1], grid[2]),
            (block[0], block[1], block[2]),
            0,
            s.0,
            &mut ptrs,
        )
    };
    check(&format!("cuLaunchKernel ({name})"), r)
}
