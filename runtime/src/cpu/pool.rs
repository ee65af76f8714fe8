//! A small thread pool for fork-join over task indices.
//!
//! [`Pool::run`] publishes a job (a closure and a task count), works on it from the calling
//! thread too, and returns when every task is done. Workers spin briefly for the next job
//! (kernels follow each other within microseconds) and then sleep on a condition variable.
//! Each job has its own counters, so a worker that wakes up late can never run a task of
//! the wrong job.
//!
//! Models share one pool per thread count ([`Pool::shared`]): with a pool per model, the
//! spinning workers of one model (an eager baseline, another shape specialization) took
//! the cores from the next one's (measured: a 1×1 convolution of MNASNet, 104 µs on one
//! thread, took 609 µs on two while the eager model's worker spun). A pool runs one job at
//! a time; a caller that finds it busy runs its tasks itself, in order, which gives the
//! same results (no kernel's result depends on how its tasks are split).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;

type TaskFn = dyn Fn(usize) + Sync;

struct Job {
    /// The caller's closure, lifetime-erased; valid while `done < tasks`.
    f: *const TaskFn,
    tasks: usize,
    next: AtomicUsize,
    done: AtomicUsize,
}

// SAFETY: `f` points to a `Sync` closure that outlives every call made through it (the
// publishing thread waits for all tasks before returning).
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

impl Job {
    /// Runs tasks until none are left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.tasks {
                return;
            }
            // SAFETY: a task index below `tasks` was claimed, so the publisher is still
            // waiting in `Pool::run` and the closure is alive.
            unsafe { (*self.f)(i) };
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

struct Shared {
    epoch: AtomicU64,
    job: Mutex<Option<Arc<Job>>>,
    sleepers: AtomicUsize,
    wake: Mutex<()>,
    cv: Condvar,
    shutdown: AtomicBool,
}

/// Worker threads plus the caller.
pub struct Pool {
    threads: usize,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Held while a job is published: one job at a time.
    busy: Mutex<()>,
}

/// How long an idle worker spins before sleeping.
const SPIN: u32 = 20_000;

impl Pool {
    /// A pool running jobs on `threads` threads (the caller counts as one).
    pub fn new(threads: usize) -> Pool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: Mutex::new(None),
            sleepers: AtomicUsize::new(0),
            wake: Mutex::new(()),
            cv: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let workers = (1..threads)
            .map(|k| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("tessera-cpu-{k}"))
                    .spawn(move || worker(&s))
                    .expect("invariant: the OS can start a worker thread")
            })
            .collect();
        Pool {
            threads,
            shared,
            workers,
            busy: Mutex::new(()),
        }
    }

    /// The process-wide pool of `threads` threads, started on first use and kept for the
    /// life of the process (idle workers sleep).
    pub fn shared(threads: usize) -> Arc<Pool> {
        static POOLS: OnceLock<Mutex<HashMap<usize, Arc<Pool>>>> = OnceLock::new();
        let threads = threads.max(1);
        let mut pools = POOLS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            pools
                .entry(threads)
                .or_insert_with(|| Arc::new(Pool::new(threads))),
        )
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Calls `f(i)` for every `i < tasks`, in parallel, and returns when all are done.
    pub fn run<'a>(&self, tasks: usize, f: &'a (dyn Fn(usize) + Sync + 'a)) {
        if tasks == 0 {
            return;
        }
        // Busy (another model's job, or a task of this pool's own job): run inline.
        let busy = match self.busy.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if self.threads == 1 || tasks == 1 || busy.is_none() {
            for i in 0..tasks {
                f(i);
            }
            return;
        }
        // SAFETY (lifetime erasure): we wait below until every task has finished.
        let f: *const (dyn Fn(usize) + Sync + 'a) = f;
        let f: *const TaskFn =
            unsafe { std::mem::transmute::<*const (dyn Fn(usize) + Sync + 'a), *const TaskFn>(f) };
        let job = Arc::new(Job {
            f,
            tasks,
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        });
        *self.shared.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&job));
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        if self.shared.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = self.shared.wake.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.cv.notify_all();
        }
        job.work();
        while job.done.load(Ordering::Acquire) < tasks {
            std::hint::spin_loop();
        }
    }
}

fn worker(s: &Shared) {
    let mut seen = 0u64;
    loop {
        let mut spins = 0u32;
        loop {
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            if s.epoch.load(Ordering::Acquire) != seen {
                break;
            }
            if spins < SPIN {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let g = s.wake.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            if s.epoch.load(Ordering::SeqCst) == seen && !s.shutdown.load(Ordering::Acquire) {
                let _g = s.cv.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            s.sleepers.fetch_sub(1, Ordering::AcqRel);
            spins = 0;
        }
        seen = s.epoch.load(Ordering::Acquire);
        let job = s.job.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(job) = job {
            job.work();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        {
            let _g = self.shared.wake.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.cv.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two callers at once (two models sharing the pool): each job's tasks all run once,
    /// the second caller's inline while the first holds the pool.
    #[test]
    fn concurrent_callers_each_run_every_task() {
        let pool = Pool::shared(2);
        std::thread::scope(|s| {
            for _ in 0..2 {
                let pool = Arc::clone(&pool);
                s.spawn(move || {
                    for round in 0..200 {
                        runs_every_task_once(&pool, 1 + round % 13);
                    }
                });
            }
        });
        assert!(
            Arc::ptr_eq(&pool, &Pool::shared(2)),
            "one pool per thread count"
        );
    }

    #[test]
    fn every_task_runs_once() {
        let pool = Pool::new(3);
        for round in 0..200 {
            runs_every_task_once(&pool, 1 + round % 17);
        }
    }

    /// Runs a job of `n` tasks on `pool` and checks each ran exactly once.
    fn runs_every_task_once(pool: &Pool, n: usize) {
        let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        pool.run(n, &|i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }
}
