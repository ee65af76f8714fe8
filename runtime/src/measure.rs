//! Timing work in isolation, the way the latency search compares alternatives.
//!
//! [`interleaved`] times several subjects (the alternatives of one choice) in rounds: each
//! round runs every subject once, in turn, and a fixed reference workload once. Every
//! sample is scaled by `median(reference) / reference(this round)`, so a machine that
//! slows down for a round (another process, frequency) slows the reference too and the
//! drift cancels; the alternatives of a round ran within the same few milliseconds, so
//! they are compared under the same conditions. Before each timed run a `prepare` hook
//! runs untimed: the CPU search evicts the caches there by streaming a buffer larger than
//! the private caches ([`Evict`]) and then touches the activation inputs, so weights come
//! from memory and activations from cache, as inside a model (a weight is read once per
//! run, an activation right after its producer wrote it).
//!
//! Results are medians with their quartiles; nothing here depends on the subjects'
//! values, only on their time.

use std::time::Instant;

/// How a subject is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocol {
    /// Untimed rounds first (code and buffers paged in, thread pool awake).
    pub warmup: usize,
    /// Timed rounds; each subject's median is over this many samples.
    pub rounds: usize,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            warmup: 2,
            rounds: 9,
        }
    }
}

/// One subject's time: the median and quartiles of its drift-corrected samples, seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub median: f64,
    pub p25: f64,
    pub p75: f64,
    pub runs: usize,
}

impl Timing {
    /// The interquartile range relative to the median (0 when the median is 0).
    pub fn spread(&self) -> f64 {
        if self.median > 0.0 {
            (self.p75 - self.p25) / self.median
        } else {
            0.0
        }
    }
}

/// The reference workload: a fixed chain of dependent multiply-adds over a small array
/// (compute-bound, cache-resident, about 20 µs on a 3 GHz core), whose time tracks the
/// core's speed and nothing else.
pub fn reference() -> f64 {
    let mut acc = [1.0f64; 8];
    for i in 0..8192 {
        let x = std::hint::black_box(1.0 + (i & 7) as f64 * 1e-9);
        for a in acc.iter_mut() {
            *a = a.mul_add(x, 1e-12);
        }
    }
    std::hint::black_box(acc.iter().sum())
}

/// Times `subjects` subjects in interleaved rounds ([module docs](self)): `run(i)` runs
/// subject `i` once, `prepare(i)` readies it, untimed.
pub fn interleaved(
    protocol: Protocol,
    subjects: usize,
    prepare: &mut dyn FnMut(usize),
    run: &mut dyn FnMut(usize),
) -> Vec<Timing> {
    let rounds = protocol.rounds.max(1);
    let mut samples = vec![Vec::with_capacity(rounds); subjects];
    let mut refs = Vec::with_capacity(rounds);
    for round in 0..protocol.warmup + rounds {
        let timed = round >= protocol.warmup;
        for (i, s) in samples.iter_mut().enumerate() {
            prepare(i);
            let start = Instant::now();
            run(i);
            let t = start.elapsed().as_secs_f64();
            if timed {
                s.push(t);
            }
        }
        let start = Instant::now();
        reference();
        if timed {
            refs.push(start.elapsed().as_secs_f64());
        }
    }
    let ref_median = quantile(&mut refs.clone(), 0.5);
    samples
        .into_iter()
        .map(|s| {
            let mut scaled: Vec<f64> = s
                .iter()
                .zip(&refs)
                .map(|(&t, &r)| if r > 0.0 { t * ref_median / r } else { t })
                .collect();
            Timing {
                median: quantile(&mut scaled, 0.5),
                p25: quantile(&mut scaled, 0.25),
                p75: quantile(&mut scaled, 0.75),
                runs: scaled.len(),
            }
        })
        .collect()
}

/// The `q`-quantile of `v` (linear between the closest ranks); 0 for an empty slice.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// A buffer streamed through to push earlier data out of the calling core's caches.
pub struct Evict {
    buf: Vec<u64>,
    pass: u64,
}

impl Evict {
    /// A buffer of `bytes` (the CPU search uses 8 MiB: several times a core's L2 and a
    /// large part of a shared L3).
    pub fn new(bytes: usize) -> Evict {
        Evict {
            buf: vec![0; bytes / 8],
            pass: 0,
        }
    }

    /// Writes every cache line of the buffer.
    pub fn run(&mut self) {
        self.pass += 1;
        for x in self.buf.iter_mut().step_by(8) {
            *x = self.pass;
        }
        std::hint::black_box(&mut self.buf);
    }
}

/// Reads every cache line of `bytes` bytes at `ptr` (brings an input into cache).
///
/// # Safety
/// `ptr` addresses `bytes` readable bytes.
pub unsafe fn touch(ptr: *const u8, bytes: usize) {
    let mut sum = 0u8;
    for off in (0..bytes).step_by(64) {
        // SAFETY: off < bytes.
        sum ^= unsafe { std::ptr::read_volatile(ptr.add(off)) };
    }
    std::hint::black_box(sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&mut v, 0.0), 1.0);
        assert_eq!(quantile(&mut v, 1.0), 4.0);
        assert_eq!(quantile(&mut v, 0.5), 2.5);
        assert_eq!(quantile(&mut [], 0.5), 0.0);
    }

    #[test]
    fn interleaving_orders_subjects_by_their_work() {
        // Subject 1 does about ten times subject 0's work; the medians must say so.
        let mut sink = 0.0;
        let t = interleaved(
            Protocol {
                warmup: 1,
                rounds: 5,
            },
            2,
            &mut |_| {},
            &mut |i| {
                for _ in 0..(1 + 9 * i) * 4 {
                    sink += reference();
                }
            },
        );
        std::hint::black_box(sink);
        assert_eq!(t.len(), 2);
        assert!(
            t.iter()
                .all(|x| x.runs == 5 && x.p25 <= x.median && x.median <= x.p75)
        );
        assert!(
            t[1].median > 3.0 * t[0].median,
            "10× the work measured {:.3e} s against {:.3e} s",
            t[1].median,
            t[0].median
        );
    }
}
