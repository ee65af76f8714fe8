//! The verbs of the `tessera` CLI, one module each.

pub mod bench;
pub mod calibrate;
pub mod common;
pub mod compile;
pub mod cpu;
pub mod cuda;
pub mod inspect;
pub mod mlir;
pub mod run;
pub mod train_plan;
