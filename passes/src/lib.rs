//! Graph-to-graph passes over [`tessera_ir::Graph`].
//!
//! This crate will hold the `Pass` trait and its single registry, the e-graph optimizer
//! (egg language, rule families, DAG-aware extraction, cost models), the fusion planner,
//! the memory planner, autodiff, checkpointing and two-stage backprop. Each pass leaves a
//! graph that passes [`tessera_ir::verify`]; the pipeline runner checks that, passes do not
//! trust each other.
//!
//! It is created empty by the foundation; the optimizer issue fills it.
