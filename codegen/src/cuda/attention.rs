//! Fused attention as one kernel, FlashAttention style: no `s × t` score matrix exists.
//!
//! A block of four warps owns `4·RW` query rows of one batch element; each warp owns `RW`
//! of them. The block walks the keys in tiles of `BK` (32 or 64), staging the key and
//! value tiles in shared memory as the accumulation type. For each of its rows a warp
//! computes the tile's scores (lane `j` owns keys `j`, `j + 32`, …), takes the tile
//! maximum with shuffles, and updates the row's running maximum `m`, running sum `l` and
//! output `o` (lane `j` owns output columns `j`, `j + 32`, …) with the online-softmax
//! rescaling `exp(m_old − m_new)`. The output is `o / l`.
//!
//! Sizes are static, so tile shapes are chosen here: the largest `BK` and `RW` whose
//! tiles fit the 48 KiB of static shared memory.

use std::fmt::Write;

use tessera_ir::DType;

use super::c::{self, IndexCx};
use super::{Launch, Step};
use crate::KernelError;
use tessera_lower::kir::{Attention, Kernel, MatView, Var};

const SHARED_LIMIT: usize = 48 * 1024;

fn view_offset(v: &MatView, wide: bool) -> String {
    let var = |x: Var| match x {
        Var::Outer(j) => format!("b{j}"),
        Var::Inner(_) => "0".into(),
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

pub(crate) fn emit(
    out: &mut String,
    k: &Kernel,
    a: &Attention,
    sig: &str,
) -> Result<Vec<Step>, KernelError> {
    let at = match a.dtype {
        DType::F32 | DType::F16 | DType::BF16 => "float",
        DType::F64 => "double",
        d => {
            return Err(KernelError::Unsupported {
                op: "attention",
                dtype: d,
            });
        }
    };
    let (bk, rw) = tiles(a, at)?;
    let nb: usize = a.batch.iter().product();
    let wide = k.params.iter().any(|p| p.len as i64 >= c::NARROW_LIMIT)
        || [&a.q, &a.k, &a.v]
            .into_iter()
            .chain(a.mask.as_ref())
            .any(|v| c::index_bound(&v.batch_offset) >= c::NARROW_LIMIT);
    let it = if wide { "long long" } else { "int" };
    let fl = Flash {
        k,
        a,
        at,
        it,
        bk,
        rw,
        nb,
        wide,
    };
    let mut s = String::new();
    fl.head(&mut s, sig);
    fl.key_tiles(&mut s);
    fl.tail(&mut s);
    out.push_str(&s);
    if nb == 0 || a.s == 0 || a.e == 0 {
        return Ok(Vec::new());
    }
    let qt = a.s.div_ceil(4 * rw);
    Ok(vec![Step::Launch(Launch {
        function: k.name.clone(),
        grid: [qt.clamp(1, 1 << 20) as u32, nb.clamp(1, 65535) as u32, 1],
        block: [128, 1, 1],
        shared_bytes: shared_bytes(a, at, bk, rw) as u32,
    })])
}

/// Static shared memory of the Q, K and V tiles for `bk` keys per tile and `rw` query
/// rows per warp, in accumulation type `at`.
fn shared_bytes(a: &Attention, at: &str, bk: usize, rw: usize) -> usize {
    let esize = if at == "float" { 4 } else { 8 };
    let (d, e) = (a.d, a.e);
    esize * (bk * (d + 1) + bk * e.max(1) + 4 * rw * d.max(1))
}

/// Keys per tile and query rows per warp: the largest that the blocking hints allow and
/// whose tiles fit [`SHARED_LIMIT`].
fn tiles(a: &Attention, at: &str) -> Result<(usize, usize), KernelError> {
    for bk in [64usize, 32] {
        if bk > a.block_k.max(32) {
            continue;
        }
        for rw in [8usize, 4, 2, 1] {
            if 4 * rw > a.block_q.max(4) {
                continue;
            }
            if shared_bytes(a, at, bk, rw) <= SHARED_LIMIT {
                return Ok((bk, rw));
            }
        }
    }
    Err(KernelError::SharedMemory {
        what: "attention",
        needed: shared_bytes(a, at, 32, 1),
        limit: SHARED_LIMIT,
    })
}

/// An attention kernel being printed.
#[derive(Clone, Copy)]
struct Flash<'a> {
    k: &'a Kernel,
    a: &'a Attention,
    /// Accumulation and index C types.
    at: &'static str,
    it: &'static str,
    /// Keys per tile, query rows per warp.
    bk: usize,
    rw: usize,
    /// Flattened batch size.
    nb: usize,
    wide: bool,
}

impl Flash<'_> {
    fn zero(&self) -> &'static str {
        if self.at == "float" { "0.0f" } else { "0.0" }
    }

    fn neg_inf(&self) -> String {
        c::real(f64::NEG_INFINITY, self.at == "double")
    }

    /// Output columns per lane.
    fn epl(&self) -> usize {
        self.a.e.div_ceil(32).max(1)
    }

    /// Element `(r, col)` of matrix `v` at offset `off`, as the accumulation type.
    fn ld(&self, v: &MatView, off: &str, r: &str, col: &str) -> String {
        let Flash { k, at, it, .. } = *self;
        let pd = k.params[v.param.index()].dtype;
        let x = c::load_conv(
            pd,
            &format!(
                "{}[{off} + ({it})({r}) * {} + ({it})({col}) * {}]",
                v.param, v.row_stride, v.col_stride
            ),
        );
        if c::compute(pd) == at {
            x
        } else {
            super::nest::cast(
                pd,
                if at == "float" {
                    DType::F32
                } else {
                    DType::F64
                },
                &x,
            )
        }
    }

    /// The function up to the key loop: shared tiles, the batch and query-block loops,
    /// the block's query rows staged, the running max, sum and output zeroed.
    fn head(&self, s: &mut String, sig: &str) {
        let Flash {
            k,
            a,
            at,
            it,
            bk,
            rw,
            nb,
            wide,
        } = *self;
        let (d, e) = (a.d, a.e);
        let qt = a.s.div_ceil(4 * rw);
        let (zero, neg_inf, epl) = (self.zero(), self.neg_inf(), self.epl());
        let ld = |v: &MatView, off: &str, r: &str, col: &str| self.ld(v, off, r, col);
        let _ = writeln!(
            s,
            "extern \"C\" __global__ void __launch_bounds__(128, 4) {}({sig}) {{",
            k.name
        );
        let _ = writeln!(s, "  __shared__ {at} Qs[4][{rw}][{}];", d.max(1));
        let _ = writeln!(s, "  __shared__ {at} Ks[{bk}][{}];", d + 1);
        let _ = writeln!(s, "  __shared__ {at} Vs[{bk}][{}];", e.max(1));
        let _ = writeln!(
            s,
            "  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;"
        );
        let _ = writeln!(
            s,
            "  for ({it} bz = blockIdx.y; bz < {nb}; bz += gridDim.y) {{"
        );
        let mut stride: usize = nb;
        for (j, &dim) in a.batch.iter().enumerate() {
            stride /= dim.max(1);
            let q = if stride > 1 {
                format!("t_div(bz, {stride})")
            } else {
                "bz".into()
            };
            let v = if j > 0 {
                format!("t_mod({q}, {dim})")
            } else {
                q
            };
            let _ = writeln!(s, "    const {it} b{j} = {v};");
        }
        let _ = writeln!(s, "    const {it} q_off = {};", view_offset(&a.q, wide));
        let _ = writeln!(s, "    const {it} k_off = {};", view_offset(&a.k, wide));
        let _ = writeln!(s, "    const {it} v_off = {};", view_offset(&a.v, wide));
        if let Some(m) = &a.mask {
            let _ = writeln!(s, "    const {it} m_off = {};", view_offset(m, wide));
        }
        let _ = writeln!(
            s,
            "    for ({it} bq = blockIdx.x; bq < {qt}; bq += gridDim.x) {{"
        );
        let _ = writeln!(s, "      const {it} q0 = bq * {} + warp * {rw};", 4 * rw);
        let _ = writeln!(s, "      for (int r = 0; r < {rw}; ++r) {{");
        let _ = writeln!(s, "        for (int c = lane; c < {d}; c += 32) {{");
        let _ = writeln!(
            s,
            "          Qs[warp][r][c] = (q0 + r < {}) ? {} : {zero};",
            a.s,
            ld(&a.q, "q_off", "q0 + r", "c")
        );
        let _ = writeln!(s, "        }}");
        let _ = writeln!(s, "      }}");
        let _ = writeln!(s, "      {at} m_i[{rw}], l_i[{rw}], o_i[{rw}][{epl}];");
        let _ = writeln!(s, "      #pragma unroll");
        let _ = writeln!(s, "      for (int r = 0; r < {rw}; ++r) {{");
        let _ = writeln!(s, "        m_i[r] = {neg_inf};");
        let _ = writeln!(s, "        l_i[r] = {zero};");
        let _ = writeln!(s, "        #pragma unroll");
        let _ = writeln!(
            s,
            "        for (int u = 0; u < {epl}; ++u) o_i[r][u] = {zero};"
        );
        let _ = writeln!(s, "      }}");
    }

    /// The loop over key tiles: stage the key and value tiles, update every row.
    fn key_tiles(&self, s: &mut String) {
        let Flash { a, it, bk, .. } = *self;
        let (d, e) = (a.d, a.e);
        let zero = self.zero();
        let ld = |v: &MatView, off: &str, r: &str, col: &str| self.ld(v, off, r, col);
        let _ = writeln!(s, "      for ({it} t0 = 0; t0 < {}; t0 += {bk}) {{", a.t);
        let _ = writeln!(s, "        __syncthreads();");
        let _ = writeln!(
            s,
            "        for (int x = threadIdx.x; x < {}; x += 128) {{",
            bk * d
        );
        let _ = writeln!(
            s,
            "          const int j = x / {}, c = x % {};",
            d.max(1),
            d.max(1)
        );
        let _ = writeln!(
            s,
            "          Ks[j][c] = (t0 + j < {}) ? {} : {zero};",
            a.t,
            ld(&a.k, "k_off", "t0 + j", "c")
        );
        let _ = writeln!(s, "        }}");
        let _ = writeln!(
            s,
            "        for (int x = threadIdx.x; x < {}; x += 128) {{",
            bk * e
        );
        let _ = writeln!(
            s,
            "          const int j = x / {}, c = x % {};",
            e.max(1),
            e.max(1)
        );
        let _ = writeln!(
            s,
            "          Vs[j][c] = (t0 + j < {}) ? {} : {zero};",
            a.t,
            ld(&a.v, "v_off", "t0 + j", "c")
        );
        let _ = writeln!(s, "        }}");
        let _ = writeln!(s, "        __syncthreads();");
        self.row_update(s);
        let _ = writeln!(s, "      }}");
    }

    /// One key tile for each of the warp's rows: scores, tile maximum, online-softmax
    /// rescaling of the running sum and output, then the output update.
    fn row_update(&self, s: &mut String) {
        let Flash {
            a, at, it, bk, rw, ..
        } = *self;
        let (d, e) = (a.d, a.e);
        let kpl = bk / 32;
        let f = if at == "float" { "f" } else { "" };
        let (zero, neg_inf, epl) = (self.zero(), self.neg_inf(), self.epl());
        let scale = c::real(a.scale, at == "double");
        let ld = |v: &MatView, off: &str, r: &str, col: &str| self.ld(v, off, r, col);
        let _ = writeln!(s, "        #pragma unroll");
        let _ = writeln!(s, "        for (int r = 0; r < {rw}; ++r) {{");
        let _ = writeln!(s, "          const {it} qi = q0 + r;");
        let _ = writeln!(s, "          if (qi >= {}) continue;", a.s);
        let _ = writeln!(s, "          {at} sc[{kpl}];");
        let _ = writeln!(s, "          {at} tmax = {neg_inf};");
        let _ = writeln!(s, "          #pragma unroll");
        let _ = writeln!(s, "          for (int u = 0; u < {kpl}; ++u) {{");
        let _ = writeln!(s, "            const int j = lane + 32 * u;");
        let _ = writeln!(s, "            sc[u] = {neg_inf};");
        let _ = writeln!(s, "            if (t0 + j < {}) {{", a.t);
        let _ = writeln!(s, "              {at} dot = {zero};");
        let _ = writeln!(
            s,
            "              for (int c = 0; c < {d}; ++c) dot += Qs[warp][r][c] * Ks[j][c];"
        );
        let mask = match &a.mask {
            Some(m) => format!(" + {}", ld(m, "m_off", "qi", "t0 + j")),
            None => String::new(),
        };
        let _ = writeln!(s, "              sc[u] = dot * {scale}{mask};");
        let _ = writeln!(s, "            }}");
        let _ = writeln!(s, "            tmax = fmax{f}(tmax, sc[u]);");
        let _ = writeln!(s, "          }}");
        let _ = writeln!(
            s,
            "          for (int k = 16; k > 0; k >>= 1) tmax = fmax{f}(tmax, __shfl_xor_sync(0xffffffffu, tmax, k));"
        );
        let _ = writeln!(s, "          const {at} m_new = fmax{f}(m_i[r], tmax);");
        let _ = writeln!(s, "          const bool none = m_new == {neg_inf};");
        let _ = writeln!(
            s,
            "          const {at} corr = none ? {} : exp{f}(m_i[r] - m_new);",
            c::real(1.0, at == "double")
        );
        let _ = writeln!(s, "          {at} p[{kpl}], psum = {zero};");
        let _ = writeln!(s, "          #pragma unroll");
        let _ = writeln!(s, "          for (int u = 0; u < {kpl}; ++u) {{");
        let _ = writeln!(
            s,
            "            p[u] = none ? {zero} : exp{f}(sc[u] - m_new);"
        );
        let _ = writeln!(s, "            psum += p[u];");
        let _ = writeln!(s, "          }}");
        let _ = writeln!(
            s,
            "          for (int k = 16; k > 0; k >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, k);"
        );
        let _ = writeln!(s, "          l_i[r] = l_i[r] * corr + psum;");
        let _ = writeln!(s, "          #pragma unroll");
        let _ = writeln!(
            s,
            "          for (int u = 0; u < {epl}; ++u) o_i[r][u] *= corr;"
        );
        let _ = writeln!(s, "          #pragma unroll");
        let _ = writeln!(s, "          for (int u = 0; u < {kpl}; ++u) {{");
        let _ = writeln!(s, "            for (int src = 0; src < 32; ++src) {{");
        let _ = writeln!(
            s,
            "              const {at} pv = __shfl_sync(0xffffffffu, p[u], src);"
        );
        let _ = writeln!(s, "              const int j = src + 32 * u;");
        let _ = writeln!(s, "              #pragma unroll");
        let _ = writeln!(s, "              for (int w = 0; w < {epl}; ++w) {{");
        let _ = writeln!(s, "                const int c = lane + 32 * w;");
        let _ = writeln!(
            s,
            "                if (c < {e}) o_i[r][w] += pv * Vs[j][c];"
        );
        let _ = writeln!(s, "              }}");
        let _ = writeln!(s, "            }}");
        let _ = writeln!(s, "          }}");
        let _ = writeln!(s, "          m_i[r] = m_new;");
        let _ = writeln!(s, "        }}");
    }

    /// The output rows `o / l`, and the closing braces.
    fn tail(&self, s: &mut String) {
        let Flash { k, a, it, rw, .. } = *self;
        let e = a.e;
        let epl = self.epl();
        let _ = writeln!(s, "      #pragma unroll");
        let _ = writeln!(s, "      for (int r = 0; r < {rw}; ++r) {{");
        let _ = writeln!(s, "        const {it} qi = q0 + r;");
        let _ = writeln!(s, "        if (qi >= {}) continue;", a.s);
        let _ = writeln!(s, "        #pragma unroll");
        let _ = writeln!(s, "        for (int w = 0; w < {epl}; ++w) {{");
        let _ = writeln!(s, "          const int c = lane + 32 * w;");
        let od = k.params[a.out.index()].dtype;
        let y = c::store_conv(od, &format!("({})(o_i[r][w] / l_i[r])", c::compute(od)));
        let _ = writeln!(
            s,
            "          if (c < {e}) {}[(bz * {} + qi) * {e} + c] = {y};",
            a.out, a.s
        );
        let _ = writeln!(s, "        }}");
        let _ = writeln!(s, "      }}");
        let _ = writeln!(s, "    }}");
        let _ = writeln!(s, "  }}");
        s.push_str("}\n\n");
    }
}
