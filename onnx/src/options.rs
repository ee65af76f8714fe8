//! [`ImportOptions`]: what the caller tells the importer.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use tessera_ir::{Evaluator, Tensor};

/// The default [`ImportOptions::max_constant_elements`]: 2^24 elements, 128 MiB at
/// 8 bytes each.
pub const MAX_CONSTANT_ELEMENTS: usize = 1 << 24;

/// How to import.
pub struct ImportOptions<'a> {
    /// Evaluates ops on constants; without one, shape operands must be literal constants.
    pub evaluator: Option<&'a dyn Evaluator>,
    /// Graph inputs to replace by these constant values (by input name). A shape operand
    /// fed from a graph input can only be imported this way, since shapes are static.
    pub bind: HashMap<String, Tensor>,
    /// Sizes of the symbolic input dimensions (`dim_param` names, `<input>.<axis>` for
    /// unknown ones; see [`InputDecl`](crate::InputDecl)): the import specializes the
    /// model to these static shapes. A symbol an input needs but this lacks is an
    /// [`ImportError::UnboundSymbol`](crate::ImportError::UnboundSymbol).
    pub shapes: BTreeMap<String, usize>,
    /// Constant subgraphs are folded at import when their result has at most this many
    /// elements (shape arithmetic); bigger constant work is left to the optimizer.
    pub fold_limit: usize,
    /// The most elements of one constant the importer builds itself from sizes the model
    /// states (index grids, `ConstantOfShape`, `Range`, fill values in an input's shape),
    /// checked before it is allocated; a bigger one is an
    /// [`ImportError::Node`](crate::ImportError::Node). With `fold_limit` and the data
    /// the model carries (which is bounded by its bytes), this bounds what an import
    /// allocates: declared shapes are only checked against
    /// [`MAX_ELEMENTS`](tessera_ir::MAX_ELEMENTS), never allocated.
    pub max_constant_elements: usize,
    /// The model's folder, for tensors stored as external data.
    pub base_dir: Option<PathBuf>,
}

impl Default for ImportOptions<'_> {
    fn default() -> Self {
        ImportOptions {
            evaluator: None,
            bind: HashMap::new(),
            shapes: BTreeMap::new(),
            fold_limit: 1 << 16,
            max_constant_elements: MAX_CONSTANT_ELEMENTS,
            base_dir: None,
        }
    }
}
