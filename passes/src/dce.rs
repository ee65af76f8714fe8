//! Dead-code elimination.

use tessera_ir::Graph;

use crate::{Pass, PassContext, PassError, PassReport};

/// Removes nodes no graph output depends on, renumbering ids densely.
pub struct DeadCodeElimination;

impl Pass for DeadCodeElimination {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn description(&self) -> &'static str {
        "remove nodes that no graph output depends on"
    }

    fn run(&self, g: &mut Graph, _: &PassContext) -> Result<PassReport, PassError> {
        let out = g.without_dead_nodes();
        let changed = out.num_nodes() != g.num_nodes();
        *g = out;
        Ok(PassReport {
            changed,
            ..PassReport::default()
        })
    }
}
