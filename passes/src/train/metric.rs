//! Names of the metrics the training passes report ([`crate::PassReport::metrics`]):
//! plain numbers a caller reads back (`tessera train-plan` builds its report from them).
//! A name means the same in every pass that reports it; each constant lists those passes.
//! Bytes are counted by [`super::schedule`], FLOPs by [`crate::cost::flops()`].

/// Gradient outputs (`grad:*` and `input_grad:*`). Autodiff.
pub const GRADIENTS: &str = "gradients";
/// Nodes before the seed (forward pass and loss). Autodiff.
pub const FORWARD_NODES: &str = "forward_nodes";
/// Nodes from the seed on. Autodiff.
pub const BACKWARD_NODES: &str = "backward_nodes";
/// How many of the report's notes, at its end, are diagnostics about the training spec
/// (a parameter that is not trained, a gradient that is zero). Autodiff.
pub const DIAGNOSTICS: &str = "diagnostics";
/// Peak transient bytes of the graph the pass leaves, in program order. Autodiff (the
/// store-all peak), Checkpoint (the checkpointed schedule's).
pub const PEAK_BYTES: &str = "peak_bytes";
/// Forward values the backward region reads (saved for backward). Autodiff (all of
/// them), Checkpoint (the ones the policy keeps).
pub const SAVED_TENSORS: &str = "saved_tensors";
/// Bytes of [`SAVED_TENSORS`]. Autodiff, Checkpoint.
pub const SAVED_BYTES: &str = "saved_bytes";
/// Peak transient bytes of the input graph, in program order. Checkpoint.
pub const PEAK_BYTES_BEFORE: &str = "peak_bytes_before";
/// Bytes of graph inputs and constants. Checkpoint.
pub const RESIDENT_BYTES: &str = "resident_bytes";
/// Bytes of graph outputs (loss, gradients). Checkpoint.
pub const OUTPUT_BYTES: &str = "output_bytes";
/// The static memory planner's arena for the checkpointed schedule. Checkpoint.
pub const ARENA_BYTES: &str = "arena_bytes";
/// Recomputation steps in the backward region. Checkpoint.
pub const RECOMPUTE_NODES: &str = "recompute_nodes";
/// FLOPs of [`RECOMPUTE_NODES`]. Checkpoint.
pub const RECOMPUTE_FLOPS: &str = "recompute_flops";
/// FLOPs of the nodes before the seed. Checkpoint, TwoStage.
pub const FORWARD_FLOPS: &str = "forward_flops";
/// FLOPs of the backward region without recomputation. Checkpoint.
pub const BACKWARD_FLOPS: &str = "backward_flops";
/// Backward nodes in B (those the input gradients depend on). TwoStage.
pub const B_NODES: &str = "b_nodes";
/// Backward nodes in W (the rest: weight gradients only). TwoStage.
pub const W_NODES: &str = "w_nodes";
/// FLOPs of [`B_NODES`]. TwoStage.
pub const B_FLOPS: &str = "b_flops";
/// FLOPs of [`W_NODES`]. TwoStage.
pub const W_FLOPS: &str = "w_flops";
/// Values W reads that exist before W starts (the B->W stash). TwoStage.
pub const STASH_TENSORS: &str = "stash_tensors";
/// Bytes of [`STASH_TENSORS`]. TwoStage.
pub const STASH_BYTES: &str = "stash_bytes";
/// Forward ops whose backward nodes fall into both B and W. TwoStage.
pub const SPLIT_OPS: &str = "split_ops";
/// `input_grad:` outputs (0: B is empty). TwoStage.
pub const INPUT_GRADS: &str = "input_grads";
/// Peak transient bytes in the input graph's order. TwoStage.
pub const PEAK_BYTES_IN_ORDER: &str = "peak_bytes_in_order";
/// Peak transient bytes with the backward region ordered B then W. TwoStage.
pub const PEAK_BYTES_W_AFTER_B: &str = "peak_bytes_w_after_b";
