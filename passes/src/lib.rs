//! Graph-to-graph passes over [`tessera_ir::Graph`].
//!
//! * [`Pass`]: one type per pass, listed once in [`registry`]; named pipelines are lists
//!   of registry names ([`pipeline`]).
//! * [`run_pipeline`]: runs passes in order, verifies the graph after each one (passes do
//!   not trust each other), records a [`PassReport`] per pass and can stop after pass N to
//!   bisect a bad rewrite.
//!
//! Later issues add the e-graph optimizer, the fusion and memory planners, autodiff,
//! checkpointing and two-stage backprop here, each as passes or analyses over the IR.

pub mod cost;
mod dce;
pub mod egraph;
mod pass;
pub mod train;

pub use dce::DeadCodeElimination;
pub use egraph::EGraphOptimizer;
pub use pass::{
    EGraphStats, PIPELINES, Pass, PassContext, PassError, PassReport, pipeline, registry,
    run_pipeline,
};
