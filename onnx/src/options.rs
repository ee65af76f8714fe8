//! [`ImportOptions`]: what the caller tells the importer.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use tessera_ir::{Evaluator, Tensor};

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
            base_dir: None,
        }
    }
}
