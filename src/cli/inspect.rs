//! `tessera inspect`: op histogram, ports, parameter count.

use std::collections::BTreeMap;

use tessera::ir::{Graph, Op};

pub fn inspect(g: &Graph) -> anyhow::Result<()> {
    outln!(
        "graph {:?}: {} nodes, {} values",
        g.name,
        g.num_nodes(),
        g.num_values()
    )?;
    outln!("inputs:")?;
    for p in g.inputs() {
        outln!("  {:<40} {}", p.name, g.ty(p.value))?;
    }
    outln!("outputs:")?;
    for p in g.outputs() {
        outln!("  {:<40} {}", p.name, g.ty(p.value))?;
    }
    let mut hist: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut params, mut bytes) = (0usize, 0usize);
    for (_, n) in g.nodes() {
        *hist.entry(n.op.name()).or_default() += 1;
        if let Op::Constant(t) = &n.op {
            params += t.numel();
            bytes += t.numel() * t.dtype().size_bytes();
        }
    }
    let mut hist: Vec<_> = hist.into_iter().collect();
    hist.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    outln!("ops:")?;
    for (op, n) in hist {
        outln!("  {op:<20} {n}")?;
    }
    outln!("constants: {params} elements ({bytes} bytes)")?;
    Ok(())
}
