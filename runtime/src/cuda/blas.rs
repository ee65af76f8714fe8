//! Library GEMMs through cuBLAS (`cublasGemmEx` / `cublasGemmStridedBatchedEx`, f32
//! accumulation for f32/f16/bf16).
//!
//! cuBLAS is column-major. A row-major product `C[m,n] = A[m,k]·B[k,n]` is computed as
//! `Cᵀ = Bᵀ·Aᵀ`: a row-major operand with column stride 1 is its own transpose in
//! column-major with leading dimension = its row stride; one with row stride 1 is the
//! untransposed column-major matrix with leading dimension = its column stride.

use std::ffi::c_void;

use cudarc::cublas::{result, sys};
use cudarc::driver::sys::CUdeviceptr;
use tessera_codegen::cuda::{LibraryGemm, LibraryOperand};
use tessera_ir::DType;

use super::driver::{Buffer, Stream};
use crate::RuntimeError;

/// Workspace handed to cuBLAS so that it never allocates (stream capture).
const WORKSPACE_BYTES: usize = 32 << 20;

fn check(what: &str, r: Result<(), result::CublasError>) -> Result<(), RuntimeError> {
    r.map_err(|e| RuntimeError::Cuda(format!("{what} failed: {e}")))
}

/// True if libcublas can be loaded.
pub fn present() -> bool {
    // SAFETY: only tries to open the library.
    unsafe { sys::is_culib_present() }
}

/// A cuBLAS handle bound to a stream, with its workspace.
pub(crate) struct Blas {
    handle: sys::cublasHandle_t,
    _workspace: Buffer,
}

impl Blas {
    pub fn new(stream: &Stream) -> Result<Blas, RuntimeError> {
        if !present() {
            return Err(RuntimeError::Cuda(
                "cuBLAS (libcublas) cannot be loaded".into(),
            ));
        }
        let handle = result::create_handle()
            .map_err(|e| RuntimeError::Cuda(format!("cublasCreate failed: {e}")))?;
        let b = Blas {
            handle,
            _workspace: Buffer::new(WORKSPACE_BYTES, "the cuBLAS workspace")?,
        };
        // SAFETY: live handle and stream.
        check("cublasSetStream", unsafe {
            result::set_stream(handle, stream.0 as _)
        })?;
        // SAFETY: the workspace lives as long as the handle (both in `b`).
        check("cublasSetWorkspace", unsafe {
            sys::cublasSetWorkspace_v2(handle, b._workspace.ptr as *mut c_void, WORKSPACE_BYTES)
                .result()
        })?;
        Ok(b)
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once.
        let _ = unsafe { result::destroy_handle(self.handle) };
    }
}

/// A column-major operand for cuBLAS: transpose flag and leading dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ColMajor {
    trans: bool,
    ld: i64,
}

/// `x` (rows × cols, row-major view) as the column-major `xᵀ` (cols × rows) cuBLAS
/// should read, or `None` if neither stride is 1.
fn as_transposed(x: &LibraryOperand, rows: usize, cols: usize) -> Option<ColMajor> {
    let unit = |s: i64, extent: usize| s == 1 || extent <= 1;
    if unit(x.col_stride, cols) && (x.row_stride >= cols as i64 || rows <= 1) {
        // Row-major: column-major xᵀ with ld = row stride, no transpose.
        Some(ColMajor {
            trans: false,
            ld: x.row_stride.max(cols as i64).max(1),
        })
    } else if unit(x.row_stride, rows) && (x.col_stride >= rows as i64 || cols <= 1) {
        // Column-major x: cuBLAS transposes it.
        Some(ColMajor {
            trans: true,
            ld: x.col_stride.max(rows as i64).max(1),
        })
    } else {
        None
    }
}

/// The common stride of `offsets` (0 for one batch), if they are evenly spaced.
fn uniform_stride(offsets: &[i64]) -> Option<i64> {
    match offsets {
        [] | [_] => Some(0),
        [a, b, ..] => {
            let s = b - a;
            offsets.windows(2).all(|w| w[1] - w[0] == s).then_some(s)
        }
    }
}

/// A GEMM cuBLAS can run, with everything resolved but device addresses.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BlasPlan {
    dtype: DType,
    m: usize,
    n: usize,
    k: usize,
    alpha: f64,
    a: ColMajor,
    b: ColMajor,
    a_offsets: Vec<i64>,
    b_offsets: Vec<i64>,
    batched: Option<(i64, i64)>,
}

impl BlasPlan {
    /// `None` if cuBLAS cannot run `g` (element type, strides, sizes).
    pub fn new(g: &LibraryGemm) -> Option<BlasPlan> {
        if !matches!(g.dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64) {
            return None;
        }
        let fits = |x: usize| x <= i32::MAX as usize;
        if !(fits(g.m) && fits(g.n) && fits(g.k) && fits(g.batch)) || g.m * g.n * g.k == 0 {
            return None;
        }
        let a = as_transposed(&g.a, g.m, g.k)?;
        let b = as_transposed(&g.b, g.k, g.n)?;
        if a.ld > i32::MAX as i64 || b.ld > i32::MAX as i64 {
            return None;
        }
        let batched = match (uniform_stride(&g.a.offsets), uniform_stride(&g.b.offsets)) {
            (Some(sa), Some(sb)) if sa >= 0 && sb >= 0 => Some((sa, sb)),
            _ => None,
        };
        Some(BlasPlan {
            dtype: g.dtype,
            m: g.m,
            n: g.n,
            k: g.k,
            alpha: g.alpha,
            a,
            b,
            a_offsets: g.a.offsets.clone(),
            b_offsets: g.b.offsets.clone(),
            batched,
        })
    }

    /// Enqueues the GEMM: `a`, `b` and `acc` are the parameters' device addresses.
    pub fn run(
        &self,
        blas: &Blas,
        a: CUdeviceptr,
        b: CUdeviceptr,
        acc: CUdeviceptr,
    ) -> Result<(), RuntimeError> {
        use sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        let (ty, compute) = match self.dtype {
            DType::F32 => (
                sys::cudaDataType::CUDA_R_32F,
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ),
            DType::F16 => (
                sys::cudaDataType::CUDA_R_16F,
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ),
            DType::BF16 => (
                sys::cudaDataType::CUDA_R_16BF,
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            ),
            _ => (
                sys::cudaDataType::CUDA_R_64F,
                sys::cublasComputeType_t::CUBLAS_COMPUTE_64F,
            ),
        };
        let esize = self.dtype.size_bytes() as u64;
        let (alpha32, beta32) = (self.alpha as f32, 0f32);
        let (alpha64, beta64) = (self.alpha, 0f64);
        let (alpha, beta): (*const c_void, *const c_void) = if self.dtype == DType::F64 {
            (&alpha64 as *const f64 as _, &beta64 as *const f64 as _)
        } else {
            (&alpha32 as *const f32 as _, &beta32 as *const f32 as _)
        };
        // Cᵀ (n × m, ld n) = op(B) · op(A): first operand B's column-major view.
        let op = |t: bool| if t { CUBLAS_OP_T } else { CUBLAS_OP_N };
        let (m, n, k) = (self.n as i32, self.m as i32, self.k as i32);
        let ldc = self.n as i32;
        let addr =
            |base: CUdeviceptr, off: i64| base.wrapping_add((off as u64).wrapping_mul(esize));
        let algo = sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT;
        match self.batched {
            Some((sa, sb)) => {
                let count = self.a_offsets.len().max(1) as i32;
                let (a0, b0) = (
                    addr(a, self.a_offsets.first().copied().unwrap_or(0)),
                    addr(b, self.b_offsets.first().copied().unwrap_or(0)),
                );
                // SAFETY: the addresses, leading dimensions and strides describe the
                // operands' elements as the kernel IR's views do; alpha/beta live across
                // the call (host pointer mode).
                let r = unsafe {
                    sys::cublasGemmStridedBatchedEx(
                        blas.handle,
                        op(self.b.trans),
                        op(self.a.trans),
                        m,
                        n,
                        k,
                        alpha,
                        b0 as *const c_void,
                        ty,
                        self.b.ld as i32,
                        sb,
                        a0 as *const c_void,
                        ty,
                        self.a.ld as i32,
                        sa,
                        beta,
                        acc as *mut c_void,
                        ty,
                        ldc,
                        (self.m * self.n) as i64,
                        count,
                        compute,
                        algo,
                    )
                    .result()
                };
                check("cublasGemmStridedBatchedEx", r)
            }
            None => {
                for (i, (&oa, &ob)) in self.a_offsets.iter().zip(&self.b_offsets).enumerate() {
                    let c = acc.wrapping_add((i * self.m * self.n) as u64 * esize);
                    // SAFETY: as above, one batch element at a time.
                    let r = unsafe {
                        sys::cublasGemmEx(
                            blas.handle,
                            op(self.b.trans),
                            op(self.a.trans),
                            m,
                            n,
                            k,
                            alpha,
                            addr(b, ob) as *const c_void,
                            ty,
                            self.b.ld as i32,
                            addr(a, oa) as *const c_void,
                            ty,
                            self.a.ld as i32,
                            beta,
                            c as *mut c_void,
                            ty,
                            ldc,
                            compute,
                            algo,
                        )
                        .result()
                    };
                    check("cublasGemmEx", r)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(rs: i64, cs: i64) -> LibraryOperand {
        LibraryOperand {
            param: tessera_lower::kir::ParamId(0),
            offsets: vec![0],
            row_stride: rs,
            col_stride: cs,
        }
    }

    #[test]
    fn row_and_column_major_views() {
        // Row-major 4×3: cuBLAS reads its transpose untransposed, ld 3.
        assert_eq!(
            as_transposed(&op(3, 1), 4, 3),
            Some(ColMajor {
                trans: false,
                ld: 3
            })
        );
        // A transposed view (column-major 4×3, ld 4): cuBLAS transposes it.
        assert_eq!(
            as_transposed(&op(1, 4), 4, 3),
            Some(ColMajor { trans: true, ld: 4 })
        );
        // A single row has a free row stride.
        assert_eq!(
            as_transposed(&op(0, 1), 1, 8),
            Some(ColMajor {
                trans: false,
                ld: 8
            })
        );
        // Neither stride is 1.
        assert_eq!(as_transposed(&op(6, 2), 4, 3), None);
    }

    #[test]
    fn batch_strides() {
        assert_eq!(uniform_stride(&[0, 12, 24]), Some(12));
        assert_eq!(uniform_stride(&[0, 0, 0]), Some(0));
        assert_eq!(uniform_stride(&[0, 12, 30]), None);
        assert_eq!(uniform_stride(&[5]), Some(0));
    }
}
