//! Fuzzing of the ONNX importer and the text-IR parser with an in-tree, structure-aware
//! mutator driven by a seed (cargo-fuzz and cargo-afl need a nightly toolchain and
//! sanitizer runtimes; tessera builds on stable).
//!
//! A campaign ([`campaign::run`]) draws input `i` from `(seed, i)` alone, so every input
//! of a run can be regenerated from its index. ONNX inputs are seeds from
//! `fuzz/seeds/onnx` mutated as decoded protobufs ([`onnx`]: dims, dtypes, attributes,
//! initializer sizes and values, graph edges, op types, opsets) or as bytes ([`bytes`]:
//! flips, truncation, splices); text inputs are printed IR mutated by lines and tokens
//! ([`text`]). Each input runs [`check`]: an error is a clean rejection; a panic, an
//! input slower than the hang limit (1 s), one whose peak memory exceeds the memory limit
//! (256 MiB), and an accepted graph that does not verify or round-trip are failures.
//! [`alloc::CountingAlloc`] is the allocator that measures memory.

pub mod alloc;
pub mod bytes;
pub mod campaign;
pub mod check;
pub mod onnx;
pub mod rng;
pub mod seeds;
pub mod text;

use std::path::PathBuf;

pub use campaign::{Config, Failure, FailureKind, Report};
pub use seeds::Corpus;

/// What a campaign fuzzes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `tessera_onnx::import` (then the verifier and the text round trip).
    Onnx,
    /// `tessera_ir::text::parse` (then the verifier and the text round trip).
    Text,
}

/// Errors of the harness itself (never of an input).
#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no {0} seeds")]
    NoSeeds(&'static str),
}
