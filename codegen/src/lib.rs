//! Kernel IR and the printers that lower it: Cranelift for the CPU, CUDA C for NVIDIA GPUs.
//!
//! The fusion planner in `tessera-passes` decides which graph nodes form one kernel; this
//! crate turns each kernel into a small loop-level IR (iteration space, index expressions,
//! loads, a scalar-op DAG, reductions, stores) and prints it for a backend. It never runs
//! anything on a device: that is `tessera-runtime`'s job.
//!
//! It is created empty by the foundation; the fusion/CPU-backend issue fills it.
