//! Contractions: a shared-memory tiled GEMM with the epilogue fused, for matrix products
//! and (as implicit GEMM) convolutions.
//!
//! A block of 16×16 threads computes a `16·TM × 16·TN` output tile, `TM, TN ∈ {1, 2, 4}`
//! chosen from the problem shape, stepping through `K` in slices of 16 staged in shared
//! memory as the accumulation type (f32 for f32/f16/bf16, f64, or i64). Operands are read
//! through their strides (transposes and broadcast batches are never copied); the
//! convolution's B operand is the im2col nest's load evaluated at each `(k, position)`,
//! with padding handled by its guards, so no column buffer is written.
//!
//! The epilogue nest (bias, activation, residual, …) is applied to each output element
//! while it is in registers when it only reads the accumulator at the element it writes;
//! otherwise the kernel stores the accumulator and the epilogue runs as its own
//! elementwise kernel. Library GEMMs (cuBLAS) always take the second form.

use std::fmt::Write;

use tessera_ir::DType;

use super::c::{self, IndexCx};
use super::nest::{self, ExprEmitter, NestInfo, closure};
use super::{Launch, LibraryGemm, LibraryOperand, Step};
use crate::KernelError;
use tessera_lower::kir::{
    Binding, Conv, ExprId, ExprOp, Gemm, Index, Kernel, MatView, Nest, ParamId, Phase, Var,
};

type Result<T> = std::result::Result<T, KernelError>;

const BK: usize = 16;
const MAX_GRID_YZ: usize = 65535;

fn tile_factor(extent: usize) -> usize {
    if extent >= 64 {
        4
    } else if extent >= 32 {
        2
    } else {
        1
    }
}

/// The accumulation type of contraction `op` (`gemm`, `conv`) of `d`.
fn acc_type(op: &'static str, d: DType) -> Result<&'static str> {
    match d {
        DType::F32 | DType::F16 | DType::BF16 => Ok("float"),
        DType::F64 => Ok("double"),
        DType::Bool | DType::U64 => Err(KernelError::Unsupported { op, dtype: d }),
        _ => Ok("long long"),
    }
}

/// The canonical accumulator index of an epilogue over `rows × cols`.
fn acc_index(rows: usize, cols: usize) -> Index {
    if rows > 1 {
        Index::var(Var::Outer(0), rows)
            .scale(cols as i64)
            .add(&Index::var(Var::Inner(0), cols))
    } else {
        Index::var(Var::Inner(0), cols)
    }
}

/// True if `epi` can run on each output element in registers: only looped stores, and
/// every read of `acc` is at the element's own position.
fn fusable(epi: &Nest, acc: ParamId, rows: usize, cols: usize) -> bool {
    let own = acc_index(rows, cols);
    epi.phases
        .iter()
        .all(|p| matches!(p, Phase::Store { looped: true, .. }))
        && epi.exprs.iter().all(|e| match &e.op {
            ExprOp::Load { param, index } if *param == acc => *index == own,
            ExprOp::LoadIf { param, .. } => *param != acc,
            _ => true,
        })
}

/// True if some store of `epi` writes `acc` at the element's own position.
fn epilogue_writes_acc(epi: &Nest, acc: ParamId, rows: usize, cols: usize) -> bool {
    let own = acc_index(rows, cols);
    epi.phases.iter().any(|p| match p {
        Phase::Store { stores, .. } => stores.iter().any(|s| s.param == acc && s.index == own),
        Phase::Reduce(_) => false,
    })
}

/// How the tiled kernel reads an operand element, writes an output element.
struct Tiled<'a> {
    name: String,
    sig: &'a str,
    /// Flattened batch count (grid z), and the statements deriving per-batch values from
    /// `bz`.
    batches: usize,
    batch_prologue: String,
    m: usize,
    n: usize,
    k: usize,
    acc_t: &'static str,
    /// Statements assigning `a_val` for element `(gr, gk)` (in range).
    load_a: String,
    /// True if consecutive `k` are adjacent in memory for A (choose the tile-fill order).
    a_k_fast: bool,
    load_b: String,
    b_n_fast: bool,
    /// Statements consuming `v` (the accumulator, `acc_t`) at output `(gr, gc)`.
    finish: String,
    wide: bool,
}

fn emit_tiled(out: &mut String, t: &Tiled) -> Launch {
    let (tm, tn) = (tile_factor(t.m), tile_factor(t.n));
    let (bm, bn) = (16 * tm, 16 * tn);
    let it = if t.wide { "long long" } else { "int" };
    let at = t.acc_t;
    let zero = match at {
        "float" => "0.0f",
        "double" => "0.0",
        _ => "0LL",
    };
    let fma = match at {
        "long long" => "acc[i][j] = t_wadd(acc[i][j], t_wmul(a[i], b[j]));",
        _ => "acc[i][j] += a[i] * b[j];",
    };
    let mt = t.m.div_ceil(bm);
    let nt = t.n.div_ceil(bn);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "extern \"C\" __global__ void __launch_bounds__(256, 2) {}({}) {{",
        t.name, t.sig
    );
    let _ = writeln!(s, "  __shared__ {at} As[{BK}][{}];", bm + 1);
    let _ = writeln!(s, "  __shared__ {at} Bs[{BK}][{}];", bn + 1);
    let _ = writeln!(
        s,
        "  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;"
    );
    let _ = writeln!(
        s,
        "  for ({it} bz = blockIdx.z; bz < {}; bz += gridDim.z) {{",
        t.batches
    );
    s.push_str(&t.batch_prologue);
    // Output tiles, row-major (m tile, n tile), grid-stride like every kernel: correct
    // for any grid.
    let _ = writeln!(
        s,
        "    for ({it} tile = ({it})blockIdx.y * gridDim.x + blockIdx.x; tile < {}; tile += ({it})gridDim.x * gridDim.y) {{",
        mt * nt
    );
    let _ = writeln!(
        s,
        "      const {it} m0 = t_div(tile, {nt}) * {bm}, n0 = t_mod(tile, {nt}) * {bn};"
    );
    let _ = writeln!(s, "      {at} acc[{tm}][{tn}];");
    let _ = writeln!(s, "      #pragma unroll");
    let _ = writeln!(s, "      for (int i = 0; i < {tm}; ++i) {{");
    let _ = writeln!(s, "        #pragma unroll");
    let _ = writeln!(
        s,
        "        for (int j = 0; j < {tn}; ++j) acc[i][j] = {zero};"
    );
    let _ = writeln!(s, "      }}");
    let _ = writeln!(s, "      for ({it} k0 = 0; k0 < {}; k0 += {BK}) {{", t.k);
    // A tile.
    let (ar, ak) = if t.a_k_fast {
        (format!("e / {BK}"), format!("e % {BK}"))
    } else {
        (format!("e % {bm}"), format!("e / {bm}"))
    };
    let _ = writeln!(
        s,
        "        for (int e = threadIdx.x; e < {}; e += 256) {{",
        bm * BK
    );
    let _ = writeln!(s, "          const int r = {ar}, kk = {ak};");
    let _ = writeln!(s, "          const {it} gr = m0 + r, gk = k0 + kk;");
    let _ = writeln!(s, "          {at} a_val = {zero};");
    let _ = writeln!(s, "          if (gr < {} && gk < {}) {{", t.m, t.k);
    s.push_str(&t.load_a);
    let _ = writeln!(s, "          }}");
    let _ = writeln!(s, "          As[kk][r] = a_val;");
    let _ = writeln!(s, "        }}");
    // B tile.
    let (bk, bc) = if t.b_n_fast {
        (format!("e / {bn}"), format!("e % {bn}"))
    } else {
        (format!("e % {BK}"), format!("e / {BK}"))
    };
    let _ = writeln!(
        s,
        "        for (int e = threadIdx.x; e < {}; e += 256) {{",
        bn * BK
    );
    let _ = writeln!(s, "          const int kk = {bk}, cc = {bc};");
    let _ = writeln!(s, "          const {it} gk = k0 + kk, gc = n0 + cc;");
    let _ = writeln!(s, "          {at} b_val = {zero};");
    let _ = writeln!(s, "          if (gk < {} && gc < {}) {{", t.k, t.n);
    s.push_str(&t.load_b);
    let _ = writeln!(s, "          }}");
    let _ = writeln!(s, "          Bs[kk][cc] = b_val;");
    let _ = writeln!(s, "        }}");
    let _ = writeln!(s, "        __syncthreads();");
    let _ = writeln!(s, "        #pragma unroll");
    let _ = writeln!(s, "        for (int kk = 0; kk < {BK}; ++kk) {{");
    let _ = writeln!(s, "          {at} a[{tm}], b[{tn}];");
    let _ = writeln!(s, "          #pragma unroll");
    let _ = writeln!(
        s,
        "          for (int i = 0; i < {tm}; ++i) a[i] = As[kk][ty + 16 * i];"
    );
    let _ = writeln!(s, "          #pragma unroll");
    let _ = writeln!(
        s,
        "          for (int j = 0; j < {tn}; ++j) b[j] = Bs[kk][tx + 16 * j];"
    );
    let _ = writeln!(s, "          #pragma unroll");
    let _ = writeln!(s, "          for (int i = 0; i < {tm}; ++i) {{");
    let _ = writeln!(s, "            #pragma unroll");
    let _ = writeln!(s, "            for (int j = 0; j < {tn}; ++j) {fma}");
    let _ = writeln!(s, "          }}");
    let _ = writeln!(s, "        }}");
    let _ = writeln!(s, "        __syncthreads();");
    let _ = writeln!(s, "      }}");
    let _ = writeln!(s, "      #pragma unroll");
    let _ = writeln!(s, "      for (int i = 0; i < {tm}; ++i) {{");
    let _ = writeln!(s, "        #pragma unroll");
    let _ = writeln!(s, "        for (int j = 0; j < {tn}; ++j) {{");
    let _ = writeln!(
        s,
        "          const {it} gr = m0 + ty + 16 * i, gc = n0 + tx + 16 * j;"
    );
    let _ = writeln!(s, "          if (gr >= {} || gc >= {}) continue;", t.m, t.n);
    let _ = writeln!(s, "          const {at} v = acc[i][j];");
    s.push_str(&t.finish);
    let _ = writeln!(s, "        }}");
    let _ = writeln!(s, "      }}");
    let _ = writeln!(s, "    }}");
    let _ = writeln!(s, "  }}");
    s.push_str("}\n\n");
    out.push_str(&s);
    let elem = match at {
        "float" => 4,
        _ => 8,
    };
    Launch {
        function: t.name.clone(),
        grid: [
            nt.clamp(1, i32::MAX as usize) as u32,
            mt.clamp(1, MAX_GRID_YZ) as u32,
            t.batches.clamp(1, MAX_GRID_YZ) as u32,
        ],
        block: [256, 1, 1],
        shared_bytes: (BK * (bm + 1 + bn + 1) * elem) as u32,
    }
}

/// Statements defining the batch variables `b0…` from `bz` (row-major over `batch`).
fn batch_vars(batch: &[usize], it: &str) -> String {
    let mut s = String::new();
    let n = batch.len();
    let mut stride: usize = batch.iter().product();
    for (j, &d) in batch.iter().enumerate() {
        stride /= d.max(1);
        let q = if stride > 1 {
            format!("t_div(bz, {stride})")
        } else {
            "bz".to_string()
        };
        let v = if j > 0 { format!("t_mod({q}, {d})") } else { q };
        let _ = writeln!(s, "    const {it} b{j} = {v};");
    }
    let _ = n;
    s
}

fn view_offset(v: &MatView, wide: bool) -> String {
    let var = |x: Var| match x {
        Var::Outer(j) => format!("b{j}"),
        Var::Inner(j) => format!("/*inner {j}*/0"),
    };
    let value = |_: tessera_lower::kir::ExprId| "0".to_string();
    c::index(
        &v.batch_offset,
        &IndexCx {
            wide,
            var: &var,
            value: &value,
        },
    )
}

/// Offsets of a view for every flattened batch element.
fn batch_offsets(view: &Index, batch: &[usize]) -> Vec<i64> {
    let n: usize = batch.iter().product();
    (0..n)
        .map(|b| {
            let mut rest = b;
            let mut coords = vec![0i64; batch.len()];
            for j in (0..batch.len()).rev() {
                coords[j] = (rest % batch[j].max(1)) as i64;
                rest /= batch[j].max(1);
            }
            view.eval(&|v| match v {
                Var::Outer(j) => coords.get(j as usize).copied().unwrap_or(0),
                Var::Inner(_) => 0,
            })
        })
        .collect()
}

/// Where an output element of a contraction goes.
struct Finish<'a> {
    params: &'a [tessera_lower::kir::Param],
    /// The epilogue to fuse, if any.
    epi: Option<&'a Nest>,
    acc: ParamId,
    dtype: DType,
    /// The accumulation type ([`acc_type`]).
    acc_t: &'static str,
    /// The epilogue's `rows × cols` space.
    rows: usize,
    cols: usize,
    /// C expressions of the element's epilogue row and column.
    row: &'a str,
    col: &'a str,
    alpha: f64,
    wide: bool,
}

/// The code applying `epi` to the value `v` at epilogue position `(row, col)` (or a
/// plain store of `v` into `acc` when there is no epilogue), plus the accumulator store
/// when the epilogue does not overwrite it.
fn finish_code(f: &Finish) -> Result<String> {
    let Finish {
        params,
        epi,
        acc,
        dtype,
        acc_t: at,
        rows,
        cols,
        row,
        col,
        alpha,
        wide,
    } = *f;
    let it = if wide { "long long" } else { "int" };
    let mut s = String::new();
    let scaled = if alpha == 1.0 {
        "v".to_string()
    } else if at == "long long" {
        format!("t_wmul(v, {}LL)", alpha as i64)
    } else {
        format!("v * {}", c::real(alpha, at == "double"))
    };
    let value = if at == "long long" {
        super::nest::cast(DType::I64, dtype, &scaled)
    } else {
        c::round(dtype, &format!("({})({scaled})", c::compute(dtype)))
    };
    let _ = writeln!(s, "          const {} y = {value};", c::compute(dtype));
    let raw_store = |s: &mut String| {
        let _ = writeln!(
            s,
            "          {acc}[({it})({row}) * {cols} + {col}] = {};",
            c::store_conv(dtype, "y")
        );
    };
    let Some(epi) = epi else {
        raw_store(&mut s);
        return Ok(s);
    };
    if params[acc.index()].binding != Binding::Scratch && !epilogue_writes_acc(epi, acc, rows, cols)
    {
        raw_store(&mut s);
    }
    let info = NestInfo::new(epi, params, false);
    let mut em = ExprEmitter::new(&info, 5);
    em.prefix = "ep_".into();
    em.replace_load = Some((acc, "y".into()));
    if rows > 1 {
        em.line(&format!("const {it} ep_o0 = {row};"));
    }
    em.line(&format!("const {it} ep_i0 = {col};"));
    let roots: Vec<ExprId> = epi
        .phases
        .iter()
        .flat_map(|p| match p {
            Phase::Store { stores, .. } => stores.iter().map(|s| s.value).collect(),
            Phase::Reduce(_) => Vec::new(),
        })
        .collect();
    em.emit_all(&closure(epi, &roots))?;
    for p in &epi.phases {
        if let Phase::Store { stores, .. } = p {
            em.stores(stores);
        }
    }
    if info.wide && !wide {
        return Err(KernelError::Invariant(
            "the epilogue needs 64-bit indices but the contraction does not".into(),
        ));
    }
    s.push_str(&em.out);
    Ok(s)
}

/// A matrix operand element load: `p[off + r·rs + c·cs]` converted to the accumulation
/// type, as a statement assigning `dst`.
fn operand_load(
    v: &MatView,
    params: &[tessera_lower::kir::Param],
    at: &str,
    dst: &str,
    r: &str,
    cc: &str,
    it: &str,
) -> String {
    let pd = params[v.param.index()].dtype;
    let idx = format!(
        "{dst}_off + ({it})({r}) * {} + ({it})({cc}) * {}",
        v.row_stride, v.col_stride
    );
    let val = c::load_conv(pd, &format!("{}[{idx}]", v.param));
    let val = match at {
        "long long" if pd == DType::U64 || pd.is_float() => format!("(long long)({val})"),
        "float" if !c::is_f32_compute(pd) => format!("(float)({val})"),
        "double" if pd != DType::F64 => format!("(double)({val})"),
        _ => val,
    };
    format!("            {dst}_val = {val};\n")
}

fn gemm_wide(k: &Kernel, extra: &[i64]) -> bool {
    k.params.iter().any(|p| p.len as i64 >= c::NARROW_LIMIT)
        || extra.iter().any(|&x| x.saturating_abs() >= c::NARROW_LIMIT)
}

pub(crate) fn emit_gemm(out: &mut String, k: &Kernel, gm: &Gemm, sig: &str) -> Result<Vec<Step>> {
    let at = acc_type("gemm", gm.dtype)?;
    let nb: usize = gm.batch.iter().product();
    let rows = nb * gm.m;
    let wide = gemm_wide(
        k,
        &[
            (rows as i64).saturating_mul(gm.n as i64),
            c::index_bound(&gm.a.batch_offset),
            c::index_bound(&gm.b.batch_offset),
        ],
    ) || gm
        .epilogue
        .as_ref()
        .is_some_and(|e| NestInfo::new(e, &k.params, false).wide);
    let it = if wide { "long long" } else { "int" };
    let mut prologue = batch_vars(&gm.batch, it);
    let _ = writeln!(
        prologue,
        "    const {it} a_off = {};",
        view_offset(&gm.a, wide)
    );
    let _ = writeln!(
        prologue,
        "    const {it} b_off = {};",
        view_offset(&gm.b, wide)
    );
    let fused = gm
        .epilogue
        .as_ref()
        .is_some_and(|e| fusable(e, gm.acc, rows, gm.n));
    let row = format!("bz * {} + gr", gm.m);
    let finish = finish_code(&Finish {
        params: &k.params,
        epi: if fused { gm.epilogue.as_ref() } else { None },
        acc: gm.acc,
        dtype: gm.dtype,
        acc_t: at,
        rows,
        cols: gm.n,
        row: &row,
        col: "gc",
        alpha: gm.alpha,
        wide,
    })?;
    let tiled = Tiled {
        name: k.name.clone(),
        sig,
        batches: nb,
        batch_prologue: prologue,
        m: gm.m,
        n: gm.n,
        k: gm.k,
        acc_t: at,
        load_a: operand_load(&gm.a, &k.params, at, "a", "gr", "gk", it),
        a_k_fast: gm.a.col_stride.abs() == 1,
        load_b: operand_load(&gm.b, &k.params, at, "b", "gk", "gc", it),
        b_n_fast: gm.b.col_stride.abs() == 1 || gm.b.row_stride.abs() != 1,
        finish,
        wide,
    };
    let mut builtin = vec![emit_tiled(out, &tiled)];
    let epilogue = match &gm.epilogue {
        Some(e) => nest::emit(out, &format!("{}_epilogue", k.name), sig, e, &k.params)?,
        None => None,
    };
    if !fused && let Some(l) = &epilogue {
        builtin.push(l.clone());
    }
    if rows == 0 || gm.n == 0 {
        return Ok(Vec::new());
    }
    let library =
        matches!(gm.dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64).then(|| {
            LibraryGemm {
                dtype: gm.dtype,
                batch: nb,
                m: gm.m,
                n: gm.n,
                k: gm.k,
                alpha: gm.alpha,
                a: LibraryOperand {
                    param: gm.a.param,
                    offsets: batch_offsets(&gm.a.batch_offset, &gm.batch),
                    row_stride: gm.a.row_stride,
                    col_stride: gm.a.col_stride,
                },
                b: LibraryOperand {
                    param: gm.b.param,
                    offsets: batch_offsets(&gm.b.batch_offset, &gm.batch),
                    row_stride: gm.b.row_stride,
                    col_stride: gm.b.col_stride,
                },
                acc: gm.acc,
            }
        });
    Ok(vec![Step::Gemm {
        builtin,
        library,
        after_library: epilogue.into_iter().collect(),
    }])
}

pub(crate) fn emit_conv(out: &mut String, k: &Kernel, cv: &Conv, sig: &str) -> Result<Vec<Step>> {
    let at = acc_type("conv", cv.dtype)?;
    if cv.group == 0
        || !cv.channels.is_multiple_of(cv.group)
        || !cv.out_channels.is_multiple_of(cv.group)
    {
        return Err(KernelError::Invariant(format!(
            "convolution groups ({}) do not divide channels {} and {}",
            cv.group, cv.channels, cv.out_channels
        )));
    }
    let cg = cv.channels / cv.group;
    let mg = cv.out_channels / cv.group;
    let p: usize = cv.out_spatial.iter().product();
    let kk: usize = cg * cv.kernel.iter().product::<usize>();
    let s_in: usize = cv.in_spatial.iter().product();
    let ow = cv.out_spatial.last().copied().unwrap_or(1).max(1);
    let rows = cv.batch * cv.out_channels;
    let wide = gemm_wide(k, &[(rows as i64).saturating_mul(p as i64)])
        || cv
            .im2col
            .as_ref()
            .is_some_and(|n| NestInfo::new(n, &k.params, false).wide)
        || cv
            .epilogue
            .as_ref()
            .is_some_and(|e| NestInfo::new(e, &k.params, false).wide);
    let it = if wide { "long long" } else { "int" };
    let mut prologue = String::new();
    let _ = writeln!(
        prologue,
        "    const {it} img = t_div(bz, {}), grp = t_mod(bz, {});",
        cv.group, cv.group
    );
    let _ = writeln!(
        prologue,
        "    const {it} x_off = (img * {} + grp * {cg}) * {s_in};",
        cv.channels
    );
    let _ = writeln!(prologue, "    const {it} w_off = grp * {} * {kk};", mg);
    // A = weights of the group: [mg, kk] row-major.
    let wd = k.params[cv.w.index()].dtype;
    let wv = c::load_conv(wd, &format!("{}[w_off + ({it})gr * {kk} + gk]", cv.w));
    let wv = if c::compute(wd) == at {
        wv
    } else {
        format!("({at})({wv})")
    };
    let load_a = format!("            a_val = {wv};\n");
    // B = columns: the im2col nest's value at (row = pos / ow, k, col = pos % ow).
    let xd = k.params[cv.x.index()].dtype;
    let load_b = match &cv.im2col {
        Some(n) => {
            let st = n
                .phases
                .iter()
                .find_map(|p| match p {
                    Phase::Store { stores, .. } => stores.first(),
                    Phase::Reduce(_) => None,
                })
                .ok_or_else(|| KernelError::Invariant("the im2col nest stores nothing".into()))?;
            let info = NestInfo::new(n, &k.params, false);
            let mut em = ExprEmitter::new(&info, 6);
            em.prefix = "ic_".into();
            em.param_offset[cv.x.index()] = Some("x_off".into());
            em.line(&format!(
                "const {it} ic_o0 = t_div(gc, {ow}), ic_o1 = gk, ic_i0 = t_mod(gc, {ow});"
            ));
            em.open();
            em.emit_all(&closure(n, &[st.value]))?;
            let v = em.name(st.value, 0);
            em.close();
            let vdt = n.exprs[st.value.index()].dtype;
            let v = if c::compute(vdt) == at {
                v
            } else {
                format!("({at})({v})")
            };
            em.line(&format!("b_val = {v};"));
            let _ = writeln!(em.out);
            em.out.trim_end().to_string() + "\n"
        }
        None => {
            let v = c::load_conv(xd, &format!("{}[x_off + ({it})gk * {p} + gc]", cv.x));
            let v = if c::compute(xd) == at {
                v
            } else {
                format!("({at})({v})")
            };
            format!("            b_val = {v};\n")
        }
    };
    let fused = cv
        .epilogue
        .as_ref()
        .is_some_and(|e| fusable(e, cv.acc, rows, p));
    let row = format!("img * {} + grp * {mg} + gr", cv.out_channels);
    let finish = finish_code(&Finish {
        params: &k.params,
        epi: if fused { cv.epilogue.as_ref() } else { None },
        acc: cv.acc,
        dtype: cv.dtype,
        acc_t: at,
        rows,
        cols: p,
        row: &row,
        col: "gc",
        alpha: 1.0,
        wide,
    })?;
    let tiled = Tiled {
        name: k.name.clone(),
        sig,
        batches: cv.batch * cv.group,
        batch_prologue: prologue,
        m: mg,
        n: p,
        k: kk,
        acc_t: at,
        load_a,
        a_k_fast: true,
        load_b,
        b_n_fast: true,
        finish,
        wide,
    };
    let mut launches = vec![emit_tiled(out, &tiled)];
    if !fused && let Some(e) = &cv.epilogue {
        launches.extend(nest::emit(
            out,
            &format!("{}_epilogue", k.name),
            sig,
            e,
            &k.params,
        )?);
    }
    if rows == 0 || p == 0 {
        return Ok(Vec::new());
    }
    Ok(launches.into_iter().map(Step::Launch).collect())
}
