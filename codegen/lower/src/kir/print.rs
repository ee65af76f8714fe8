//! The canonical text form of a kernel.
//!
//! ```text
//! kernel k2_matmul (n57, n58)
//!   p0: f32[1440] read %50
//!   p1: f32[1024] read %11
//!   p2: f32[32] read %6
//!   p3: f32[1440] write %58
//!   gemm f32 batch [] m 45 n 32 k 32 alpha 1
//!     a = p0[0] rows*32 cols*1
//!     b = p1[0] rows*32 cols*1
//!     acc = p3
//!     epilogue
//!       nest outer [45] inner [32] vector inner x4 unroll 2 parallel gpu elementwise(256)
//!         e0: f32 = load p3[32*o0 + i0]
//!         e1: f32 = load p2[i0]
//!         e2: f32 = add e0, e1
//!         phase 0: store looped p3[32*o0 + i0] = e2
//! ```

use std::fmt::Write;

use super::{
    Access, Attention, Binding, Body, Conv, Expr, ExprOp, Gemm, GpuMapping, Guard, Kernel, Lit,
    MatView, Nest, Phase, ReduceKind, VectorAxis,
};

fn lit(l: Lit) -> String {
    match l {
        Lit::F(b) => {
            let v = f64::from_bits(b);
            if v.is_nan() {
                "nan".into()
            } else if v.is_infinite() {
                if v > 0.0 { "inf".into() } else { "-inf".into() }
            } else {
                format!("{v:?}")
            }
        }
        Lit::I(i) => i.to_string(),
        Lit::B(b) => b.to_string(),
    }
}

fn guards(gs: &[Guard]) -> String {
    gs.iter()
        .map(|g| format!("{} <= {} < {}", g.lo, g.index, g.hi))
        .collect::<Vec<_>>()
        .join(", ")
}

fn expr(e: &Expr) -> String {
    match &e.op {
        ExprOp::Lit(l) => format!("lit {}", lit(*l)),
        ExprOp::Load { param, index } => format!("load {param}[{index}]"),
        ExprOp::LoadIf {
            param,
            index,
            guards: g,
            default,
        } => format!(
            "load_if {param}[{index}] if {} else {}",
            guards(g),
            lit(*default)
        ),
        ExprOp::InRange(g) => format!("in_range {}", guards(g)),
        ExprOp::Unary(u, a) => format!("{} {a}", u.name()),
        ExprOp::Binary(b, x, y) => format!("{} {x}, {y}", b.name()),
        ExprOp::Select(c, a, b) => format!("select {c}, {a}, {b}"),
        ExprOp::Cast(a) => format!("cast {a}"),
        ExprOp::Acc { phase, slot } => format!("acc {phase}.{slot}"),
        ExprOp::IndexValue(i) => format!("index {i}"),
        ExprOp::CheckIndex { value, dim } => format!("check_index {value} < {dim}"),
    }
}

fn dims(d: &[usize]) -> String {
    format!(
        "[{}]",
        d.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// Appends `nest` at indentation `ind`.
pub fn print_nest(out: &mut String, nest: &Nest, ind: &str) {
    let s = &nest.hints;
    let vector = match s.vector {
        VectorAxis::None => "scalar".to_string(),
        VectorAxis::Inner => format!("vector inner x{}", s.width),
        VectorAxis::Outer => format!("vector outer x{}", s.width),
    };
    let gpu = match s.gpu {
        GpuMapping::Elementwise { block } => format!("elementwise({block})"),
        GpuMapping::RowPerBlock { block } => format!("row_per_block({block})"),
        GpuMapping::ThreadPerRow { block } => format!("thread_per_row({block})"),
    };
    let _ = writeln!(
        out,
        "{ind}nest outer {} inner {} {vector} unroll {}{} gpu {gpu}",
        dims(&nest.outer),
        dims(&nest.inner),
        s.unroll,
        if s.parallel { " parallel" } else { "" },
    );
    for (i, e) in nest.exprs.iter().enumerate() {
        let _ = writeln!(out, "{ind}  e{i}: {} = {}", e.dtype, expr(e));
    }
    for (p, phase) in nest.phases.iter().enumerate() {
        match phase {
            Phase::Reduce(rs) => {
                let accs: Vec<String> = rs
                    .iter()
                    .map(|r| {
                        let k = match r.kind {
                            ReduceKind::Sum => "sum".to_string(),
                            ReduceKind::Prod => "prod".to_string(),
                            ReduceKind::Max => "max".to_string(),
                            ReduceKind::Min => "min".to_string(),
                            ReduceKind::ArgMax { arg } => format!("argmax[{arg}]"),
                        };
                        let m = r.mask.map(|m| format!(" if {m}")).unwrap_or_default();
                        format!("{k}({}){m}: {}", r.value, r.dtype)
                    })
                    .collect();
                let _ = writeln!(out, "{ind}  phase {p}: reduce {}", accs.join(", "));
            }
            Phase::Store { looped, stores } => {
                for st in stores {
                    let _ = writeln!(
                        out,
                        "{ind}  phase {p}: store{} {}[{}] = {}",
                        if *looped { " looped" } else { "" },
                        st.param,
                        st.index,
                        st.value
                    );
                }
            }
        }
    }
}

fn mat(name: &str, v: &MatView) -> String {
    format!(
        "{name} = {}[{}] rows*{} cols*{}",
        v.param, v.batch_offset, v.row_stride, v.col_stride
    )
}

fn gemm(out: &mut String, g: &Gemm) {
    let _ = writeln!(
        out,
        "  gemm {} batch {} m {} n {} k {} alpha {:?}",
        g.dtype,
        dims(&g.batch),
        g.m,
        g.n,
        g.k,
        g.alpha
    );
    let _ = writeln!(out, "    {}", mat("a", &g.a));
    let _ = writeln!(out, "    {}", mat("b", &g.b));
    let _ = writeln!(out, "    acc = {}", g.acc);
    if let Some(e) = &g.epilogue {
        let _ = writeln!(out, "    epilogue");
        print_nest(out, e, "      ");
    }
}

fn conv(out: &mut String, c: &Conv) {
    let _ = writeln!(
        out,
        "  conv {} n {} c {} m {} group {} in {} kernel {} out {} stride {} dilation {} pad {}",
        c.dtype,
        c.batch,
        c.channels,
        c.out_channels,
        c.group,
        dims(&c.in_spatial),
        dims(&c.kernel),
        dims(&c.out_spatial),
        dims(&c.strides),
        dims(&c.dilations),
        dims(&c.pads_begin)
    );
    let col = c
        .col
        .map(|p| format!("{p}"))
        .unwrap_or_else(|| "none".into());
    let _ = writeln!(
        out,
        "    x = {} w = {} acc = {} col = {col}",
        c.x, c.w, c.acc
    );
    if let Some(n) = &c.im2col {
        let _ = writeln!(out, "    im2col");
        print_nest(out, n, "      ");
    }
    if let Some(e) = &c.epilogue {
        let _ = writeln!(out, "    epilogue");
        print_nest(out, e, "      ");
    }
}

fn attention(out: &mut String, a: &Attention) {
    let _ = writeln!(
        out,
        "  attention {} batch {} s {} t {} d {} e {} scale {:?} online_softmax blocks {}x{}",
        a.dtype,
        dims(&a.batch),
        a.s,
        a.t,
        a.d,
        a.e,
        a.scale,
        a.block_q,
        a.block_k
    );
    let _ = writeln!(out, "    {}", mat("q", &a.q));
    let _ = writeln!(out, "    {}", mat("k", &a.k));
    let _ = writeln!(out, "    {}", mat("v", &a.v));
    if let Some(m) = &a.mask {
        let _ = writeln!(out, "    {}", mat("mask", m));
    }
    let _ = writeln!(out, "    out = {}", a.out);
}

/// The canonical text of one kernel.
pub fn print_kernel(k: &Kernel) -> String {
    let mut out = String::new();
    let nodes: Vec<String> = k.nodes.iter().map(|n| n.to_string()).collect();
    let _ = writeln!(out, "kernel {} ({})", k.name, nodes.join(", "));
    for (i, p) in k.params.iter().enumerate() {
        let access = match p.access {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "read_write",
        };
        let binding = match p.binding {
            Binding::Value(v) => v.to_string(),
            Binding::Scratch => "scratch".to_string(),
        };
        let _ = writeln!(out, "  p{i}: {}[{}] {access} {binding}", p.dtype, p.len);
    }
    for (a, b) in &k.in_place {
        let _ = writeln!(out, "  in_place {a} -> {b}");
    }
    match &k.body {
        Body::Loops(nests) => {
            for n in nests {
                print_nest(&mut out, n, "  ");
            }
        }
        Body::Gemm(g) => gemm(&mut out, g),
        Body::Conv(c) => conv(&mut out, c),
        Body::Attention(a) => attention(&mut out, a),
    }
    out
}
