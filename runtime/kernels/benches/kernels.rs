//! Kernel throughput on one thread: tessera's SGEMM (packed B, 6×16 AVX2/FMA or 6×64 AVX-512 tile) against
//! the `gemm` crate per shape class, direct (depthwise, grouped) convolutions against a plain loop and the
//! copy bandwidth, and the machine's 8- and 16-wide FMA peaks measured in the same run (GEMM
//! efficiency is against the higher).
//!
//! `cargo bench -p tessera-kernels --bench kernels` prints a Markdown table; best of 7
//! rounds per figure (this shared VM's timings move by ±30% between runs).
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use tessera_kernels::Isa;
use tessera_kernels::direct::{self, Geometry};
use tessera_kernels::gemm::{BSource, PackedB, View, sgemm};

fn best(mut f: impl FnMut(), work: f64) -> f64 {
    f();
    let mut once = Instant::now();
    f();
    let t1 = once.elapsed().as_secs_f64().max(1e-7);
    let reps = ((0.05 / t1) as usize).clamp(1, 10_000);
    let mut best = f64::INFINITY;
    for _ in 0..7 {
        once = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(once.elapsed().as_secs_f64() / reps as f64);
    }
    work / best
}

#[cfg(target_arch = "x86_64")]
fn fma_peak() -> f64 {
    #[target_feature(enable = "avx2,fma")]
    unsafe fn chains(n: usize) -> f32 {
        use std::arch::x86_64::*;
        let mut acc = [_mm256_set1_ps(0.0); 12];
        let (a, b) = (_mm256_set1_ps(0.999), _mm256_set1_ps(0.001));
        for _ in 0..n {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut s = [0f32; 8];
        let mut t = acc[0];
        for x in &acc[1..] {
            t = _mm256_add_ps(t, *x);
        }
        // SAFETY: s holds 8 floats.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), t) };
        s.iter().sum()
    }
    if !Isa::detect().avx2() {
        return f64::NAN;
    }
    // SAFETY: AVX2 and FMA were detected.
    peak_of(8, |n| unsafe { chains(n) })
}

/// FLOP/s of `chains(n)`: twelve independent chains of `n` fused multiply-adds of
/// `lanes` lanes each.
#[cfg(target_arch = "x86_64")]
fn peak_of(lanes: usize, chains: impl Fn(usize) -> f32) -> f64 {
    let n = 1 << 20;
    best(
        || {
            black_box(chains(black_box(n)));
        },
        (n * 12 * lanes * 2) as f64,
    )
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_peak() -> f64 {
    f64::NAN
}

/// The 16-wide (AVX-512F) FMA peak: twice the 8-wide one on cores with two 512-bit FMA
/// units, the same on cores that split 512-bit operations.
#[cfg(target_arch = "x86_64")]
fn fma_peak16() -> f64 {
    #[target_feature(enable = "avx512f")]
    unsafe fn chains(n: usize) -> f32 {
        use std::arch::x86_64::*;
        let mut acc = [_mm512_set1_ps(0.0); 12];
        let (a, b) = (_mm512_set1_ps(0.999), _mm512_set1_ps(0.001));
        for _ in 0..n {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let mut t = acc[0];
        for x in &acc[1..] {
            t = _mm512_add_ps(t, *x);
        }
        _mm512_reduce_add_ps(t)
    }
    if Isa::detect() != Isa::Avx512 {
        return f64::NAN;
    }
    // SAFETY: AVX-512F was detected.
    peak_of(16, |n| unsafe { chains(n) })
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_peak16() -> f64 {
    f64::NAN
}

fn main() {
    let isa = Isa::detect();
    let peak = fma_peak();
    let peak16 = fma_peak16();
    println!(
        "ISA {}, 8-wide FMA peak {:.1} GFLOP/s, 16-wide {:.1} (1 thread)\n",
        isa.name(),
        peak / 1e9,
        peak16 / 1e9
    );
    // `cargo bench --bench kernels -- TABLE…` runs only the named tables.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |t: &str| only.is_empty() || only.iter().any(|o| o == t);
    if wanted("pointwise") {
        pointwise_table(isa);
    }
    if wanted("gemm") {
        // Against the widest vectors this machine runs (`f64::max` skips a NaN).
        gemm_table(isa, peak.max(peak16));
    }
    if wanted("direct") {
        direct_table(isa);
    }
}

/// SGEMM per shape class: packed B, per-call packing, the `gemm` crate, % of peak.
fn gemm_table(isa: Isa, peak: f64) {
    println!(
        "\n| m×n×k | class | tessera packed | tessera per-call pack | gemm crate | tessera % peak |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    let shapes = [
        (128, 256, 1024, "BERT-block (ffn down)"),
        (128, 768, 3072, "BERT-base ffn down"),
        (128, 1024, 256, "BERT-block (ffn up)"),
        (128, 256, 256, "BERT-block (projection)"),
        (196, 96, 384, "conv as GEMM"),
        (3136, 32, 128, "ConvNeXt pointwise"),
        (1, 768, 768, "m = 1 (decode)"),
        (4, 768, 768, "m = 4"),
        (16, 3072, 768, "m = 16"),
        (24, 12544, 27, "first conv (k = 27)"),
        (256, 3000, 240, "Conv1d stem as GEMM (k = 3·80)"),
        (1500, 1024, 256, "long sequence ffn up"),
    ];
    for (m, n, k, class) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0f32; m * n];
        let av = View {
            ptr: a.as_ptr(),
            rs: k as isize,
            cs: 1,
        };
        let bv = View {
            ptr: b.as_ptr(),
            rs: n as isize,
            cs: 1,
        };
        // SAFETY: b is k × n.
        let packed = unsafe { PackedB::pack(bv, k, n) };
        let flop = (2 * m * n * k) as f64;
        let cp = c.as_mut_ptr();
        // SAFETY (all three): a is m × k, b k × n, c m × n.
        let ours = best(
            || unsafe {
                sgemm(
                    isa,
                    m,
                    n,
                    k,
                    1.0,
                    av,
                    BSource::Packed {
                        b: &packed,
                        col0: 0,
                    },
                    cp,
                    n,
                )
            },
            flop,
        );
        let per_call = best(
            || unsafe { sgemm(isa, m, n, k, 1.0, av, BSource::View(bv), cp, n) },
            flop,
        );
        let theirs = best(
            || unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    cp,
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            },
            flop,
        );
        println!(
            "| {m}×{n}×{k} | {class} | {:.1} GFLOP/s | {:.1} | {:.1} | {:.0}% |",
            ours / 1e9,
            per_call / 1e9,
            theirs / 1e9,
            100.0 * ours / peak
        );
    }
}

/// Direct convolutions in both forms against a plain loop.
fn direct_table(isa: Isa) {
    println!(
        "\n| direct conv (c, h×w, k, stride, in→out channels per group) | planes | channel-blocked | rows | naive loop | chosen GB/s (in + out) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    // (output channels, input size, kernel, stride, input and output channels per group)
    for (c, h, k, s, cg, m) in [
        (16, 112, 3, 1, 1, 1),
        (48, 56, 3, 1, 1, 1),
        (144, 28, 3, 1, 1, 1),
        (96, 14, 3, 1, 1, 1),
        (576, 7, 3, 1, 1, 1),
        (32, 56, 7, 1, 1, 1),
        (64, 28, 7, 1, 1, 1),
        (48, 56, 3, 2, 1, 1),
        (16, 112, 3, 2, 1, 1),
        (64, 112, 3, 2, 1, 1),
        // Strided onto small planes (MNASNet's stage entries).
        (144, 28, 5, 2, 1, 1),
        (288, 14, 3, 2, 1, 1),
        (576, 7, 5, 1, 1, 1),
        (240, 14, 5, 1, 1, 1),
        (440, 7, 3, 1, 8, 8),
        (208, 14, 3, 1, 8, 8),
        // An RGB stem: one group of three input channels.
        (16, 224, 3, 2, 3, 16),
        (32, 224, 3, 2, 3, 32),
    ] {
        let p = k / 2;
        let o = (h + 2 * p - k) / s + 1;
        let g = Geometry {
            h,
            w: h,
            kh: k,
            kw: k,
            oh: o,
            ow: o,
            stride: (s, s),
            dilation: (1, 1),
            pad: (p, p),
            group_channels: cg,
            multiplier: m,
        };
        let x = vec![0.5f32; c / m * cg * h * h];
        let w = vec![0.25f32; c * cg * k * k];
        let mut out = vec![0f32; c * o * o];
        let flop = (2 * c * cg * o * o * k * k) as f64;
        let op = out.as_mut_ptr();
        // SAFETY: buffers as declared (c channels in c / cg groups of cg).
        let form = |f: direct::Form| {
            best(
                || unsafe {
                    direct::run_form(
                        isa,
                        f,
                        &g,
                        x.as_ptr(),
                        w.as_ptr(),
                        op,
                        0,
                        c,
                        &mut |_, _, _, _| {},
                    )
                },
                flop,
            )
        };
        let planes = form(direct::Form::Planes);
        let blocked = if cg == 1 && m == 1 {
            form(direct::Form::Blocked)
        } else {
            f64::NAN
        };
        let rows = if cg <= 8 && k % 2 == 1 && k > 1 {
            form(direct::Form::Rows)
        } else {
            f64::NAN
        };
        let ours = match direct::form(isa, &g) {
            direct::Form::Planes => planes,
            direct::Form::Blocked => blocked,
            direct::Form::Rows => rows,
        };
        let naive = best(
            || {
                for ch in 0..c {
                    for y in 0..o {
                        for xo in 0..o {
                            let mut acc = 0f32;
                            for ci in 0..cg {
                                let xc = (ch / m) * cg + ci;
                                for ky in 0..k {
                                    for kx in 0..k {
                                        let (iy, ix) = (
                                            (y * s + ky) as isize - p as isize,
                                            (xo * s + kx) as isize - p as isize,
                                        );
                                        if iy >= 0
                                            && ix >= 0
                                            && (iy as usize) < h
                                            && (ix as usize) < h
                                        {
                                            acc += w[((ch * cg + ci) * k + ky) * k + kx]
                                                * x[(xc * h + iy as usize) * h + ix as usize];
                                        }
                                    }
                                }
                            }
                            out[(ch * o + y) * o + xo] = acc;
                        }
                    }
                }
                black_box(&mut out);
            },
            flop,
        );
        let bytes = ((c / m * cg * h * h + c * o * o) * 4) as f64;
        println!(
            "| {c}, {h}×{h}, {k}×{k}, {s}, {cg}→{m} | {:.1} GFLOP/s | {:.1} | {:.1} | {:.1} | {:.1} |",
            planes / 1e9,
            blocked / 1e9,
            rows / 1e9,
            naive / 1e9,
            ours / flop * bytes / 1e9
        );
    }
}

/// Pointwise programs: one function over 128×1024 floats (in L2), ns per element.
fn pointwise_table(isa: Isa) {
    use tessera_kernels::pointwise::{Affine, BinOp, Inst, Program, Store, UnOp, run};
    println!(
        "\n| pointwise over 128×1024 f32 | ns per element ({}) | portable |",
        isa.name()
    );
    println!("|---|---:|---:|");
    let (rows, cols) = (128usize, 1024usize);
    let at = Affine {
        offset: 0,
        outer: vec![cols as i64],
        inner: 1,
    };
    let load = Inst::Load {
        param: 0,
        at: at.clone(),
    };
    let gelu = vec![
        load.clone(),
        Inst::Const(0.707_106_77),
        Inst::Binary(BinOp::Mul, 0, 1),
        Inst::Unary(UnOp::Erf, 2),
        Inst::Const(1.0),
        Inst::Binary(BinOp::Add, 3, 4),
        Inst::Const(0.5),
        Inst::Binary(BinOp::Mul, 0, 6),
        Inst::Binary(BinOp::Mul, 7, 5),
    ];
    let hardswish = vec![
        load.clone(),
        Inst::Const(1.0 / 6.0),
        Inst::Binary(BinOp::Mul, 0, 1),
        Inst::Const(0.5),
        Inst::Binary(BinOp::Add, 2, 3),
        Inst::Const(0.0),
        Inst::Binary(BinOp::Max, 4, 5),
        Inst::Const(1.0),
        Inst::Binary(BinOp::Min, 6, 7),
        Inst::Binary(BinOp::Mul, 0, 8),
    ];
    let progs: Vec<(&str, Vec<Inst>, bool)> = vec![
        (
            "relu",
            vec![load.clone(), Inst::Unary(UnOp::Relu, 0)],
            false,
        ),
        ("exp", vec![load.clone(), Inst::Unary(UnOp::Exp, 0)], false),
        (
            "tanh",
            vec![load.clone(), Inst::Unary(UnOp::Tanh, 0)],
            false,
        ),
        ("erf", vec![load.clone(), Inst::Unary(UnOp::Erf, 0)], false),
        (
            "sigmoid",
            vec![load.clone(), Inst::Unary(UnOp::Sigmoid, 0)],
            false,
        ),
        (
            "silu (x · sigmoid x)",
            vec![
                load.clone(),
                Inst::Unary(UnOp::Sigmoid, 0),
                Inst::Binary(BinOp::Mul, 0, 1),
            ],
            false,
        ),
        ("hardswish, 5 instructions", hardswish.clone(), false),
        ("hardswish, clamp fused", hardswish, true),
        ("gelu (erf), 5 instructions", gelu.clone(), false),
        ("gelu (erf), fused", gelu, true),
    ];
    let x: Vec<f32> = (0..rows * cols)
        .map(|i| (i % 977) as f32 / 100.0 - 4.8)
        .collect();
    let mut y = vec![0f32; rows * cols];
    for (name, insts, fuse) in progs {
        let value = (insts.len() - 1) as u32;
        let mut prog = Program {
            outer: vec![rows],
            inner: cols,
            insts,
            stores: vec![Store {
                param: 1,
                at: at.clone(),
                value,
            }],
        };
        if fuse {
            prog.fuse();
        }
        let ptrs = [x.as_ptr() as *mut u8, y.as_mut_ptr() as *mut u8];
        let n = (rows * cols) as f64;
        // SAFETY: both buffers hold rows × cols floats.
        let per_s = |isa| {
            best(
                || unsafe { run(isa, &prog, ptrs.as_ptr(), 0, rows, 0, cols) },
                n,
            )
        };
        let (ours, port) = (per_s(isa), per_s(Isa::Portable));
        println!("| {name} | {:.3} | {:.3} |", 1e9 / ours, 1e9 / port);
    }
}
