//! Contractions as `linalg` named ops on tensors.
//!
//! Operands are views of flat parameters: a contiguous one is a `tensor.expand_shape`,
//! any other (transposed, strided, offset) a `linalg.generic` that gathers it. GEMMs
//! become `linalg.matmul` (no batch) or `linalg.batch_matmul` (batch dimensions
//! collapsed into one); convolutions `linalg.conv_2d_nchw_fchw` and its 1-D / 3-D
//! siblings, `linalg.depthwise_conv_2d_nchw_chw` for one filter per channel and
//! `linalg.conv_2d_ngchw_gfchw` for other groups, on an input padded by `tensor.pad`.
//! The accumulator then holds the flat result, which the kernel's epilogue nest reads.

use tessera_ir::DType;
use tessera_lower::kir::{Attention, Conv, Gemm, Index, MatView, ParamId, Var};

use super::KernelCx;
use super::nest;
use super::text::{elem, float_lit, prefix_map, tensor};
use crate::error::EmitError;

type R<T> = Result<T, EmitError>;

fn float_only(d: DType, op: &'static str) -> R<()> {
    if d.is_float() {
        Ok(())
    } else {
        Err(EmitError::Dtype { op, dtype: d })
    }
}

fn reassociation(groups: &[Vec<usize>]) -> String {
    let g: Vec<String> = groups
        .iter()
        .map(|v| {
            let s: Vec<String> = v.iter().map(|i| i.to_string()).collect();
            format!("[{}]", s.join(", "))
        })
        .collect();
    format!("[{}]", g.join(", "))
}

fn dims_list(d: &[usize]) -> String {
    let s: Vec<String> = d.iter().map(|x| x.to_string()).collect();
    s.join(", ")
}

/// `src` (of `from` dims) expanded to `to` dims by `groups`.
fn expand(
    kx: &mut KernelCx,
    src: &str,
    from: &[usize],
    to: &[usize],
    groups: &[Vec<usize>],
    d: DType,
) -> String {
    kx.body.op(
        "t",
        &format!(
            "tensor.expand_shape {src} {} output_shape [{}] : {} into {}",
            reassociation(groups),
            dims_list(to),
            tensor(from, d),
            tensor(to, d)
        ),
    )
}

fn collapse(
    kx: &mut KernelCx,
    src: &str,
    from: &[usize],
    to: &[usize],
    groups: &[Vec<usize>],
    d: DType,
) -> String {
    kx.body.op(
        "t",
        &format!(
            "tensor.collapse_shape {src} {} : {} into {}",
            reassociation(groups),
            tensor(from, d),
            tensor(to, d)
        ),
    )
}

/// Flat `src` reshaped to `to` (row-major), or collapsed to flat from `to`.
fn unflatten(kx: &mut KernelCx, src: &str, to: &[usize], d: DType) -> String {
    let n: usize = to.iter().product();
    if to.len() == 1 {
        return src.to_string();
    }
    expand(kx, src, &[n], to, &[(0..to.len()).collect()], d)
}

fn flatten(kx: &mut KernelCx, src: &str, from: &[usize], d: DType) -> String {
    let n: usize = from.iter().product();
    if from.len() == 1 {
        return src.to_string();
    }
    collapse(kx, src, from, &[n], &[(0..from.len()).collect()], d)
}

/// A `[batch…, rows, cols]` tensor of view `m`.
fn view(
    kx: &mut KernelCx,
    m: &MatView,
    batch: &[usize],
    rows: usize,
    cols: usize,
    d: DType,
) -> R<String> {
    let mut shape = batch.to_vec();
    shape.extend([rows, cols]);
    let (src, _) = kx.current(m.param)?;
    let len = kx.k.params[m.param.index()].len;
    let bvars: Vec<Var> = (0..batch.len()).map(|i| Var::Outer(i as u8)).collect();
    let contiguous = m.batch_offset == nest::row_major(batch, &bvars).scale((rows * cols) as i64)
        && (rows <= 1 || m.row_stride == cols as i64)
        && (cols <= 1 || m.col_stride == 1)
        && len == shape.iter().product::<usize>();
    if contiguous {
        return Ok(unflatten(kx, &src, &shape, d));
    }
    let ty = tensor(&shape, d);
    let flat = tensor(&[len], d);
    let e = kx.body.op("t", &format!("tensor.empty() : {ty}"));
    let r = kx.body.fresh("g");
    let o = kx.body.fresh("o");
    let dims = shape.len();
    kx.body.line(&format!(
        "{r} = linalg.generic {{indexing_maps = [{}], iterator_types = [{}]}} outs({e} : {ty}) {{",
        prefix_map(dims, dims),
        super::text::iterators(dims, 0)
    ));
    kx.body.line(&format!("^bb0({o}: {}):", elem(d)));
    let saved = kx.body.open();
    let idx: Vec<String> = (0..dims)
        .map(|k| kx.body.op("i", &format!("linalg.index {k} : index")))
        .collect();
    let ix = m
        .batch_offset
        .add(&Index::var(Var::Inner(0), rows).scale(m.row_stride))
        .add(&Index::var(Var::Inner(1), cols).scale(m.col_stride));
    let nb = batch.len();
    let var = |v: Var| match v {
        Var::Outer(k) => idx.get(k as usize).cloned(),
        Var::Inner(k) => idx.get(nb + k as usize).cloned(),
    };
    let i = kx.body.index(&ix, &var, &|_| None)?;
    let x = kx
        .body
        .op("l", &format!("tensor.extract {src}[{i}] : {flat}"));
    kx.body.line(&format!("linalg.yield {x} : {}", elem(d)));
    kx.body.close(saved);
    kx.body.line(&format!("}} -> {ty}"));
    Ok(r)
}

fn zeros(kx: &mut KernelCx, shape: &[usize], d: DType) -> String {
    let ty = tensor(shape, d);
    let e = kx.body.op("t", &format!("tensor.empty() : {ty}"));
    let z = kx.body.constant(&float_lit(0.0, d), elem(d));
    kx.body.op(
        "t",
        &format!(
            "linalg.fill ins({z} : {}) outs({e} : {ty}) -> {ty}",
            elem(d)
        ),
    )
}

/// `a[batch…, m, k] · b[batch…, k, n]` as a `[batch…, m, n]` → `[B, m, n]` or `[m, n]`
/// result; returns the result and its shape.
fn matmul(
    kx: &mut KernelCx,
    a: &str,
    b: &str,
    batch: &[usize],
    (m, n, k): (usize, usize, usize),
    d: DType,
) -> (String, Vec<usize>) {
    let nb = batch.len();
    if nb == 0 {
        let z = zeros(kx, &[m, n], d);
        let r = kx.body.op(
            "t",
            &format!(
                "linalg.matmul ins({a}, {b} : {}, {}) outs({z} : {}) -> {}",
                tensor(&[m, k], d),
                tensor(&[k, n], d),
                tensor(&[m, n], d),
                tensor(&[m, n], d)
            ),
        );
        return (r, vec![m, n]);
    }
    let bt: usize = batch.iter().product();
    let fold = |kx: &mut KernelCx, x: &str, r: usize, c: usize| {
        if nb == 1 {
            return x.to_string();
        }
        let mut from = batch.to_vec();
        from.extend([r, c]);
        collapse(
            kx,
            x,
            &from,
            &[bt, r, c],
            &[(0..nb).collect(), vec![nb], vec![nb + 1]],
            d,
        )
    };
    let (a3, b3) = (fold(kx, a, m, k), fold(kx, b, k, n));
    let z = zeros(kx, &[bt, m, n], d);
    let r = kx.body.op(
        "t",
        &format!(
            "linalg.batch_matmul ins({a3}, {b3} : {}, {}) outs({z} : {}) -> {}",
            tensor(&[bt, m, k], d),
            tensor(&[bt, k, n], d),
            tensor(&[bt, m, n], d),
            tensor(&[bt, m, n], d)
        ),
    );
    (r, vec![bt, m, n])
}

/// `x · c` elementwise over a tensor of `shape`.
fn scale(kx: &mut KernelCx, x: &str, shape: &[usize], c: f64, d: DType) -> String {
    let ty = tensor(shape, d);
    let dims = shape.len();
    let e = kx.body.op("t", &format!("tensor.empty() : {ty}"));
    let r = kx.body.fresh("g");
    let (i, o) = (kx.body.fresh("a"), kx.body.fresh("o"));
    let map = prefix_map(dims, dims);
    kx.body.line(&format!(
        "{r} = linalg.generic {{indexing_maps = [{map}, {map}], iterator_types = [{}]}} ins({x} : {ty}) outs({e} : {ty}) {{",
        super::text::iterators(dims, 0)
    ));
    kx.body
        .line(&format!("^bb0({i}: {t}, {o}: {t}):", t = elem(d)));
    let saved = kx.body.open();
    let c = kx.body.constant(&float_lit(c, d), elem(d));
    let m = kx
        .body
        .op("v", &format!("arith.mulf {i}, {c} : {}", elem(d)));
    kx.body.line(&format!("linalg.yield {m} : {}", elem(d)));
    kx.body.close(saved);
    kx.body.line(&format!("}} -> {ty}"));
    r
}

pub(super) fn gemm(kx: &mut KernelCx, g: &Gemm) -> R<()> {
    float_only(g.dtype, "gemm")?;
    let d = g.dtype;
    let a = view(kx, &g.a, &g.batch, g.m, g.k, d)?;
    let b = view(kx, &g.b, &g.batch, g.k, g.n, d)?;
    let (mut r, shape) = matmul(kx, &a, &b, &g.batch, (g.m, g.n, g.k), d);
    if g.alpha != 1.0 {
        r = scale(kx, &r, &shape, g.alpha, d);
    }
    let flat = flatten(kx, &r, &shape, d);
    set(kx, g.acc, flat);
    if let Some(e) = &g.epilogue {
        nest::nest(kx, e)?;
    }
    Ok(())
}

fn set(kx: &mut KernelCx, p: ParamId, v: String) {
    kx.cur[p.index()] = Some(v);
}

pub(super) fn conv(kx: &mut KernelCx, c: &Conv) -> R<()> {
    float_only(c.dtype, "conv")?;
    let d = c.dtype;
    let sp = c.in_spatial.len();
    let (n, ch, m, g) = (c.batch, c.channels, c.out_channels, c.group);
    let unsupported = |what: &str| EmitError::Construct(format!("{sp}-d convolution {what}"));
    if g == 0 || ch % g != 0 || m % g != 0 {
        return Err(unsupported("with inconsistent groups"));
    }
    let cg = ch / g;
    let mut xshape = vec![n, ch];
    xshape.extend(&c.in_spatial);
    let mut wshape = vec![m, cg];
    wshape.extend(&c.kernel);
    let mut oshape = vec![n, m];
    oshape.extend(&c.out_spatial);
    let (xs, _) = kx.current(c.x)?;
    let (ws, _) = kx.current(c.w)?;
    let mut x = unflatten(kx, &xs, &xshape, d);
    let w = unflatten(kx, &ws, &wshape, d);
    // Pad: begin pads as given, end pads to what the last output reads (extra input
    // rows past it are never read).
    let mut low = vec![0usize; 2];
    let mut high = vec![0usize; 2];
    let mut padded = vec![n, ch];
    for i in 0..sp {
        let need = (c.out_spatial[i].saturating_sub(1)) * c.strides[i]
            + c.dilations[i] * (c.kernel[i].saturating_sub(1))
            + 1;
        let have = c.in_spatial[i] + c.pads_begin[i];
        low.push(c.pads_begin[i]);
        let end = need.saturating_sub(have);
        high.push(end);
        padded.push(have + end);
    }
    if low.iter().chain(&high).any(|&p| p > 0) {
        x = pad(kx, &x, &xshape, &low, &padded, d)?;
    }
    let attrs = format!(
        "{{dilations = dense<[{}]> : tensor<{sp}xi64>, strides = dense<[{}]> : tensor<{sp}xi64>}}",
        dims_list(&c.dilations),
        dims_list(&c.strides)
    );
    let named = |sp: usize, grouped: bool| match (sp, grouped) {
        (1, false) => Some("conv_1d_ncw_fcw"),
        (2, false) => Some("conv_2d_nchw_fchw"),
        (3, false) => Some("conv_3d_ncdhw_fcdhw"),
        (2, true) => Some("conv_2d_ngchw_gfchw"),
        _ => None,
    };
    let out = if g == 1 {
        let op = named(sp, false).ok_or_else(|| unsupported("has no linalg op"))?;
        let z = zeros(kx, &oshape, d);
        kx.body.op(
            "t",
            &format!(
                "linalg.{op} {attrs} ins({x}, {w} : {}, {}) outs({z} : {}) -> {}",
                tensor(&padded, d),
                tensor(&wshape, d),
                tensor(&oshape, d),
                tensor(&oshape, d)
            ),
        )
    } else if sp == 2 && g == ch && m == ch {
        // One filter per channel: [c, 1, kh, kw] → [c, kh, kw].
        let wd = [m, c.kernel[0], c.kernel[1]];
        let w3 = collapse(kx, &w, &wshape, &wd, &[vec![0, 1], vec![2], vec![3]], d);
        let z = zeros(kx, &oshape, d);
        kx.body.op(
            "t",
            &format!(
                "linalg.depthwise_conv_2d_nchw_chw {attrs} ins({x}, {w3} : {}, {}) outs({z} : {}) -> {}",
                tensor(&padded, d),
                tensor(&wd, d),
                tensor(&oshape, d),
                tensor(&oshape, d)
            ),
        )
    } else if sp == 2 {
        let op = named(sp, true).ok_or_else(|| unsupported("has no linalg op"))?;
        let xg = [n, g, cg, padded[2], padded[3]];
        let x5 = expand(
            kx,
            &x,
            &padded,
            &xg,
            &[vec![0], vec![1, 2], vec![3], vec![4]],
            d,
        );
        let wg = [g, m / g, cg, c.kernel[0], c.kernel[1]];
        let w5 = expand(
            kx,
            &w,
            &wshape,
            &wg,
            &[vec![0, 1], vec![2], vec![3], vec![4]],
            d,
        );
        let og = [n, g, m / g, c.out_spatial[0], c.out_spatial[1]];
        let z = zeros(kx, &og, d);
        let r = kx.body.op(
            "t",
            &format!(
                "linalg.{op} {attrs} ins({x5}, {w5} : {}, {}) outs({z} : {}) -> {}",
                tensor(&xg, d),
                tensor(&wg, d),
                tensor(&og, d),
                tensor(&og, d)
            ),
        );
        collapse(
            kx,
            &r,
            &og,
            &oshape,
            &[vec![0], vec![1, 2], vec![3], vec![4]],
            d,
        )
    } else {
        return Err(unsupported(&format!("with {g} groups")));
    };
    let flat = flatten(kx, &out, &oshape, d);
    set(kx, c.acc, flat);
    if let Some(e) = &c.epilogue {
        nest::nest(kx, e)?;
    }
    Ok(())
}

/// `x` (of `shape`) zero-padded to `padded`, `low` elements before each axis: a
/// gathering `linalg.generic` (a `tensor.pad` would bufferize to a strided copy, which
/// needs MLIR's runner library at run time).
fn pad(
    kx: &mut KernelCx,
    x: &str,
    shape: &[usize],
    low: &[usize],
    padded: &[usize],
    d: DType,
) -> R<String> {
    let ty = tensor(padded, d);
    let xty = tensor(shape, d);
    let dims = padded.len();
    let e = kx.body.op("t", &format!("tensor.empty() : {ty}"));
    let r = kx.body.fresh("g");
    let o = kx.body.fresh("o");
    kx.body.line(&format!(
        "{r} = linalg.generic {{indexing_maps = [{}], iterator_types = [{}]}} outs({e} : {ty}) {{",
        prefix_map(dims, dims),
        super::text::iterators(dims, 0)
    ));
    kx.body.line(&format!("^bb0({o}: {}):", elem(d)));
    let saved = kx.body.open();
    let mut ok: Option<String> = None;
    let mut at = Vec::new();
    for k in 0..dims {
        let i = kx.body.op("i", &format!("linalg.index {k} : index"));
        if low[k] == 0 && padded[k] == shape[k] {
            at.push(i);
            continue;
        }
        let lo = kx.body.index_const(low[k] as i64);
        let hi = kx.body.index_const((low[k] + shape[k]) as i64);
        let a = kx
            .body
            .op("b", &format!("arith.cmpi sge, {i}, {lo} : index"));
        let b = kx
            .body
            .op("b", &format!("arith.cmpi slt, {i}, {hi} : index"));
        let ab = kx.body.op("b", &format!("arith.andi {a}, {b} : i1"));
        let s = kx.body.op("x", &format!("arith.subi {i}, {lo} : index"));
        let zero = kx.body.index_const(0);
        at.push(
            kx.body
                .op("x", &format!("arith.select {ab}, {s}, {zero} : index")),
        );
        ok = Some(match ok {
            None => ab,
            Some(c) => kx.body.op("b", &format!("arith.andi {c}, {ab} : i1")),
        });
    }
    let v = kx.body.op(
        "l",
        &format!("tensor.extract {x}[{}] : {xty}", at.join(", ")),
    );
    let v = match ok {
        Some(c) => {
            let z = kx.body.constant(&float_lit(0.0, d), elem(d));
            kx.body
                .op("l", &format!("arith.select {c}, {v}, {z} : {}", elem(d)))
        }
        None => v,
    };
    kx.body.line(&format!("linalg.yield {v} : {}", elem(d)));
    kx.body.close(saved);
    kx.body.line(&format!("}} -> {ty}"));
    Ok(r)
}

pub(super) fn attention(kx: &mut KernelCx, a: &Attention) -> R<()> {
    float_only(a.dtype, "attention")?;
    let d = a.dtype;
    if let Some(m) = &a.mask
        && kx.param_dtype(m.param)? != d
    {
        return Err(EmitError::Dtype {
            op: "attention mask",
            dtype: kx.param_dtype(m.param)?,
        });
    }
    let q = view(kx, &a.q, &a.batch, a.s, a.d, d)?;
    // Kᵀ: the key view with its strides swapped, [d, t].
    let kt = MatView {
        param: a.k.param,
        batch_offset: a.k.batch_offset.clone(),
        row_stride: a.k.col_stride,
        col_stride: a.k.row_stride,
    };
    let kt = view(kx, &kt, &a.batch, a.d, a.t, d)?;
    let v = view(kx, &a.v, &a.batch, a.t, a.e, d)?;
    let (scores, sshape) = matmul(kx, &q, &kt, &a.batch, (a.s, a.t, a.d), d);
    let rows: usize = sshape[..sshape.len() - 1].iter().product();
    let s2 = if sshape.len() == 2 {
        scores
    } else {
        collapse(
            kx,
            &scores,
            &sshape,
            &[rows, a.t],
            &[vec![0, 1], vec![2]],
            d,
        )
    };
    let mask = match &a.mask {
        Some(m) => {
            let mv = view(kx, m, &a.batch, a.s, a.t, d)?;
            let mut mshape = a.batch.clone();
            mshape.extend([a.s, a.t]);
            Some(if mshape.len() == 2 {
                mv
            } else {
                let nb = a.batch.len();
                collapse(
                    kx,
                    &mv,
                    &mshape,
                    &[rows, a.t],
                    &[(0..=nb).collect(), vec![nb + 1]],
                    d,
                )
            })
        }
        None => None,
    };
    let p = softmax_rows(kx, &s2, mask.as_deref(), rows, a.t, a.scale, d);
    // Back to `[batch…, s, t]`, the shape `matmul` takes its operands in.
    let nb = a.batch.len();
    let mut pshape = a.batch.clone();
    pshape.extend([a.s, a.t]);
    let p3 = if nb == 0 {
        p
    } else {
        expand(
            kx,
            &p,
            &[rows, a.t],
            &pshape,
            &[(0..=nb).collect(), vec![nb + 1]],
            d,
        )
    };
    let (out, oshape) = matmul(kx, &p3, &v, &a.batch, (a.s, a.e, a.t), d);
    let flat = flatten(kx, &out, &oshape, d);
    set(kx, a.out, flat);
    Ok(())
}

/// `softmax(x · scale + mask)` along the rows of `[rows, cols]` tensors: a max and a sum
/// of exponentials (`reduction` generics), then the normalized exponentials.
fn softmax_rows(
    kx: &mut KernelCx,
    x: &str,
    mask: Option<&str>,
    rows: usize,
    cols: usize,
    scale: f64,
    d: DType,
) -> String {
    let t = elem(d);
    let full = tensor(&[rows, cols], d);
    let row = tensor(&[rows], d);
    let m2 = "affine_map<(d0, d1) -> (d0, d1)>";
    let m1 = "affine_map<(d0, d1) -> (d0)>";
    let mut ins = vec![x.to_string()];
    let mut tys = vec![full.clone()];
    let mut maps = vec![m2];
    if let Some(m) = mask {
        ins.push(m.to_string());
        tys.push(full.clone());
        maps.push(m2);
    }
    // Body prefix: the scaled, masked score from the block arguments.
    let score = |kx: &mut KernelCx, args: &[String]| {
        let c = kx.body.constant(&float_lit(scale, d), t);
        let v = kx
            .body
            .op("v", &format!("arith.mulf {}, {c} : {t}", args[0]));
        match mask {
            Some(_) => kx
                .body
                .op("v", &format!("arith.addf {v}, {} : {t}", args[1])),
            None => v,
        }
    };
    let generic = |kx: &mut KernelCx,
                   ins: &[String],
                   tys: &[String],
                   maps: &[&str],
                   out: &str,
                   out_map: &str,
                   out_ty: &str,
                   reduce: bool,
                   body: &dyn Fn(&mut KernelCx, &[String], &str) -> String| {
        let r = kx.body.fresh("g");
        let args: Vec<String> = ins.iter().map(|_| kx.body.fresh("a")).collect();
        let o = kx.body.fresh("o");
        let mut all = maps.to_vec();
        all.push(out_map);
        kx.body.line(&format!(
            "{r} = linalg.generic {{indexing_maps = [{}], iterator_types = [{}]}} ins({} : {}) outs({out} : {out_ty}) {{",
            all.join(", "),
            if reduce { "\"parallel\", \"reduction\"" } else { "\"parallel\", \"parallel\"" },
            ins.join(", "),
            tys.join(", ")
        ));
        let mut decl: Vec<String> = args.iter().map(|a| format!("{a}: {t}")).collect();
        decl.push(format!("{o}: {t}"));
        kx.body.line(&format!("^bb0({}):", decl.join(", ")));
        let saved = kx.body.open();
        let y = body(kx, &args, &o);
        kx.body.line(&format!("linalg.yield {y} : {t}"));
        kx.body.close(saved);
        kx.body.line(&format!("}} -> {out_ty}"));
        r
    };
    let e = kx.body.op("t", &format!("tensor.empty() : {row}"));
    let ninf = kx.body.constant(&float_lit(f64::NEG_INFINITY, d), t);
    let init = kx.body.op(
        "t",
        &format!("linalg.fill ins({ninf} : {t}) outs({e} : {row}) -> {row}"),
    );
    let max = generic(kx, &ins, &tys, &maps, &init, m1, &row, true, &|kx, a, o| {
        let v = score(kx, a);
        kx.body.op("r", &format!("arith.maximumf {o}, {v} : {t}"))
    });
    let n = ins.len();
    let mut ins2 = ins.clone();
    ins2.push(max.clone());
    let mut tys2 = tys.clone();
    tys2.push(row.clone());
    let mut maps2 = maps.clone();
    maps2.push(m1);
    let e = kx.body.op("t", &format!("tensor.empty() : {row}"));
    let zero = kx.body.constant(&float_lit(0.0, d), t);
    let init = kx.body.op(
        "t",
        &format!("linalg.fill ins({zero} : {t}) outs({e} : {row}) -> {row}"),
    );
    let sum = generic(
        kx,
        &ins2,
        &tys2,
        &maps2,
        &init,
        m1,
        &row,
        true,
        &|kx, a, o| {
            let v = score(kx, a);
            let x = kx.body.op("v", &format!("arith.subf {v}, {} : {t}", a[n]));
            let x = kx.body.op("v", &format!("math.exp {x} : {t}"));
            kx.body.op("r", &format!("arith.addf {o}, {x} : {t}"))
        },
    );
    ins2.push(sum);
    tys2.push(row.clone());
    maps2.push(m1);
    let e = kx.body.op("t", &format!("tensor.empty() : {full}"));
    generic(
        kx,
        &ins2,
        &tys2,
        &maps2,
        &e,
        m2,
        &full,
        false,
        &|kx, a, _| {
            let v = score(kx, a);
            let x = kx.body.op("v", &format!("arith.subf {v}, {} : {t}", a[n]));
            let x = kx.body.op("v", &format!("math.exp {x} : {t}"));
            kx.body
                .op("v", &format!("arith.divf {x}, {} : {t}", a[n + 1]))
        },
    )
}
