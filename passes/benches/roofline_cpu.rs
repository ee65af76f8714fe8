//! Measures the numbers of the CPU roofline profile (`cost::DeviceProfile::cpu_epyc_2core`)
//! on this machine: the f32 FMA peak (8 wide on one thread and on all; 4 wide, Cranelift's
//! vector width, on all), streaming-copy bandwidth and the overhead of handing a kernel to
//! a parked worker thread and waiting for it. Not a timed test: it prints the figures
//! that `passes/src/cost/roofline.rs` records, with this command:
//!
//! ```sh
//! cargo bench -p tessera-passes --bench roofline_cpu
//! ```
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Best of `reps` wall times of `f`.
fn best(reps: usize, mut f: impl FnMut()) -> Duration {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .expect("invariant: reps > 0")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_loop(iters: usize, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    // Ten independent accumulators hide the FMA latency (4-5 cycles, 2 ports).
    let a = _mm256_set1_ps(0.999_999);
    let b = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_set1_ps(seed); 10];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let mut s = _mm256_setzero_ps();
    for x in acc {
        s = _mm256_add_ps(s, x);
    }
    let mut out = [0f32; 8];
    // SAFETY: `out` holds exactly 8 f32, the width of the store.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
    out.iter().sum()
}

/// The same chains 4 wide: the widest vectors Cranelift emits on x86-64 (SSE), so the
/// ceiling of a Cranelift-compiled kernel.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_loop4(iters: usize, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let a = _mm_set1_ps(0.999_999);
    let b = _mm_set1_ps(1e-7);
    let mut acc = [_mm_set1_ps(seed); 10];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm_fmadd_ps(*x, a, b);
        }
    }
    let mut s = _mm_setzero_ps();
    for x in acc {
        s = _mm_add_ps(s, x);
    }
    let mut out = [0f32; 4];
    // SAFETY: `out` holds exactly 4 f32, the width of the store.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), s) };
    out.iter().sum()
}

#[cfg(target_arch = "x86_64")]
fn peak_flops4(n: usize) -> Option<f64> {
    if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
    {
        return None;
    }
    let iters = 50_000_000;
    let t = best(5, || {
        std::thread::scope(|s| {
            for i in 0..n {
                // SAFETY: the CPU supports avx2 and fma (checked above).
                s.spawn(move || black_box(unsafe { fma_loop4(iters, i as f32) }));
            }
        })
    });
    Some((iters * 10 * 4 * 2 * n) as f64 / t.as_secs_f64())
}

fn peak_flops(n: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        let iters = 50_000_000;
        let t = best(5, || {
            std::thread::scope(|s| {
                for i in 0..n {
                    // SAFETY: the CPU supports avx2 and fma (checked above).
                    s.spawn(move || black_box(unsafe { fma_loop(iters, i as f32) }));
                }
            })
        });
        return (iters * 10 * 8 * 2 * n) as f64 / t.as_secs_f64();
    }
    // Portable fallback: scalar mul-add chains.
    let iters = 100_000_000usize;
    let t = best(3, || {
        let mut acc = [1f32; 8];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = x.mul_add(0.999_999, 1e-7);
            }
        }
        black_box(acc);
    });
    (iters * 8 * 2) as f64 / t.as_secs_f64()
}

fn copy_bandwidth() -> f64 {
    let len = 64 << 20; // 64 Mi f32 = 256 MiB per buffer, far beyond the caches
    let src = vec![1.5f32; len];
    let mut dst = vec![0f32; len];
    let n = threads();
    let chunk = len.div_ceil(n);
    let t = best(5, || {
        std::thread::scope(|s| {
            for (d, sr) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                s.spawn(move || d.copy_from_slice(sr));
            }
        });
    });
    black_box(&dst);
    // Read plus write.
    (2 * len * 4) as f64 / t.as_secs_f64()
}

/// Median round trip of handing a tiny job to a parked worker thread and waiting for its
/// completion: the per-kernel overhead of a thread-pool backend.
fn dispatch_overhead() -> f64 {
    let (job_tx, job_rx) = mpsc::channel::<u64>();
    let (done_tx, done_rx) = mpsc::channel::<u64>();
    let worker = std::thread::spawn(move || {
        while let Ok(x) = job_rx.recv() {
            if done_tx.send(x.wrapping_mul(3)).is_err() {
                break;
            }
        }
    });
    let mut times = Vec::with_capacity(20_000);
    for i in 0..20_000u64 {
        let t = Instant::now();
        job_tx.send(i).expect("worker alive");
        black_box(done_rx.recv().expect("worker alive"));
        times.push(t.elapsed());
    }
    drop(job_tx);
    let _ = worker.join();
    times.sort();
    times[times.len() / 2].as_secs_f64()
}

fn main() {
    println!("threads: {}", threads());
    let f1 = peak_flops(1);
    println!("f32 FMA peak, 1 thread:  {:.1} GFLOP/s", f1 / 1e9);
    let f = peak_flops(threads());
    println!("f32 FMA peak, all:       {:.1} GFLOP/s", f / 1e9);
    #[cfg(target_arch = "x86_64")]
    if let Some(f4) = peak_flops4(threads()) {
        println!("f32x4 FMA peak, all:     {:.1} GFLOP/s", f4 / 1e9);
    }
    let b = copy_bandwidth();
    println!(
        "copy bandwidth, all:     {:.2} GB/s (read + write)",
        b / 1e9
    );
    let d = dispatch_overhead();
    println!("dispatch round trip:     {:.2} us (median)", d * 1e6);
}
