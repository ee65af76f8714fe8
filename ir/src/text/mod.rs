//! The canonical text form: one printer, one parser.
//!
//! ```text
//! graph "mlp" {
//!   input "x" %0: f32[1,4]
//!   %1: f32[8,4] = constant $0
//!   %2: f32[8] = constant [0.5, 0, 0, 0, 0, 0, 0, -1]
//!   %3: f32[1,8] = gemm(%0, %1, %2) {alpha=1, beta=1, trans_a=false, trans_b=true} "fc1"
//!   %4: f32[1,8] = relu(%3)
//!   output "y" %4
//! }
//! $0 = hex"0000803f…"
//! ```
//!
//! * Values are numbered densely: graph inputs first, then node outputs in program order.
//!   Printing renumbers, so two equal graphs print identically whatever their arena ids.
//! * Every node line states its result types; the parser re-infers them and rejects a
//!   mismatch, so a text file cannot smuggle in an ill-typed graph.
//! * Constants of at most [`INLINE_ELEMENTS`] elements are written inline in decimal
//!   (floats in their shortest round-trip form). Larger ones refer to a `$k` entry of the
//!   data section after the graph: little-endian bytes in hex. With
//!   [`PrintOptions::elide_constants`], the data section shows only a content fingerprint
//!   (`$0 = elided fnv1a=…`), which is what snapshots use; such text does not parse back.
//! * The trailing string of a node line is the node's source name; graph ports are named.
//!
//! Round trip: `print(parse(print(g))) == print(g)` for every graph that verifies.

mod attrs;
mod parse;
mod print;

pub use parse::parse;
pub use print::{PrintOptions, print};

/// Constants with at most this many elements are printed inline.
pub const INLINE_ELEMENTS: usize = 8;

/// Escapes a name for a quoted string: `"` and `\` are escaped, control characters
/// become `\u{..}`; everything else is kept as is.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Shortest round-trip decimal for a float, with an exponent for very small or large
/// magnitudes (`1e-12`, not thirty zeros) and no trailing `.0` (`1`, not `1.0`).
pub(crate) fn float(x: impl std::fmt::Debug) -> String {
    let s = format!("{x:?}");
    match s.strip_suffix(".0") {
        Some(t) => t.to_string(),
        None => s,
    }
}
