//! Native compute kernels for the CPU backend.
//!
//! Cranelift's x86-64 backend emits at most 128-bit vectors, half of what an AVX2+FMA
//! core can do; compute-bound routines live here instead, written with `std::arch`
//! intrinsics behind runtime feature detection, each with a portable fallback that
//! computes the same tiling in plain Rust (tested on every machine, and the path taken
//! where AVX2 and FMA are missing).
//!
//! * [`gemm`]: single-precision GEMM with B packed into 16-column panels (once, at compile
//!   time, for constant weights) and register-tiled microkernels (6×16 AVX2, 6×64
//!   AVX-512).
//! * [`pointwise`]: elementwise f32 loop nests (GEMM and convolution epilogues, activations)
//!   8 lanes wide, with native exp/log/erf/tanh/sigmoid.
//! * [`direct`]: direct 2-D convolution in NCHW for depthwise and small-group convolutions,
//!   every tap one long vector multiply-add over a padded, stride-split input plane,
//!   eight channels per vector on narrow planes, or bands of output rows in registers
//!   (depthwise), handing finished output to the caller's epilogue while it is in cache.
//! * [`transpose`]: out-of-place matrix transposes in 8×8 AVX2 blocks.
//!
//! Invariant: tiling depends on problem shapes only and every output element is summed
//! in one fixed order, so results do not depend on how callers split work into tiles
//! across threads (callers split outputs, never a reduction).
//! Invariant: this crate depends on nothing; it knows no graphs, only pointers and shapes.

pub mod direct;
pub mod gemm;
pub mod pointwise;
pub mod transpose;

/// The instruction set a kernel runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// x86-64 with AVX-512F and AVX-512VL besides AVX2 and FMA. The GEMM tiles and the
    /// 16-channel depthwise blocks use 16-wide vectors (twice the FMA throughput on cores
    /// with two 512-bit FMA units, such as the Xeon of BENCHMARKS.md; no loss on
    /// cores that split them); other kernels keep 8-wide vectors with 32 registers, or
    /// run their AVX2 code. Every lane sums in the AVX2 kernels' order: same results.
    Avx512,
    /// x86-64 with AVX2 and FMA: 8-wide f32 vectors, fused multiply-add.
    Avx2Fma,
    /// Plain Rust (what the compiler auto-vectorizes for the baseline target).
    Portable,
}

impl Isa {
    /// The best instruction set this machine supports.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                {
                    return Isa::Avx512;
                }
                return Isa::Avx2Fma;
            }
        }
        Isa::Portable
    }

    /// `self` if this machine supports it, else [`Isa::Portable`].
    pub fn or_portable(self) -> Isa {
        match (self, Isa::detect()) {
            (Isa::Avx512, Isa::Avx512) => Isa::Avx512,
            (Isa::Avx2Fma, Isa::Avx512 | Isa::Avx2Fma) => Isa::Avx2Fma,
            _ => Isa::Portable,
        }
    }

    /// Whether the AVX2+FMA kernels run under `self` (which [`Isa::or_portable`] has
    /// checked against this machine).
    pub fn avx2(self) -> bool {
        cfg!(target_arch = "x86_64") && matches!(self, Isa::Avx2Fma | Isa::Avx512)
    }

    /// Every instruction set this machine runs, the portable one first: what tests
    /// compare, so each fallback is exercised wherever a better ISA is detected.
    pub fn available() -> Vec<Isa> {
        [Isa::Portable, Isa::Avx2Fma, Isa::Avx512]
            .into_iter()
            .filter(|&isa| isa.or_portable() == isa)
            .collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx2+fma+avx512vl",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Portable => "portable",
        }
    }
}
