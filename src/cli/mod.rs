//! The verbs of the `tessera` CLI, one module each.

pub mod common;
pub mod inspect;
pub mod run;
