//! Sliding-window kernels: convolution (im2col + GEMM) and pooling, for any number of
//! spatial axes.

use tessera_ir::{ConvAttrs, PoolAttrs, PoolKind, Tensor, TensorType};

use super::contract::gemm_acc;
use super::from_f64;
use crate::index::strides;

/// Where one kernel tap of one output position lands in the input.
#[derive(Clone, Copy)]
enum Tap {
    /// Inside the input, at this spatial offset.
    Valid(usize),
    /// In the padding.
    Pad,
    /// Beyond the padding (only with ceil-mode pooling).
    Outside,
}

/// For every kernel position (outer) and output position (inner), the tap it reads.
fn taps(
    input: &[usize],
    kernel: &[usize],
    output: &[usize],
    stride: &[usize],
    dilation: &[usize],
    pads: &[usize],
) -> Vec<Tap> {
    let d = input.len();
    let in_strides = strides(input);
    let nk: usize = kernel.iter().product();
    let no: usize = output.iter().product();
    let mut out = Vec::with_capacity(nk * no);
    let mut k = vec![0usize; d];
    for _ in 0..nk {
        let mut o = vec![0usize; d];
        for _ in 0..no {
            let mut tap = Tap::Valid(0);
            let mut off = 0isize;
            for i in 0..d {
                let c = (o[i] * stride[i] + k[i] * dilation[i]) as isize - pads[i] as isize;
                if c < 0 || c >= input[i] as isize {
                    let in_padding =
                        c >= -(pads[i] as isize) && c < (input[i] + pads[d + i]) as isize;
                    tap = match (tap, in_padding) {
                        (Tap::Outside, _) | (_, false) => Tap::Outside,
                        _ => Tap::Pad,
                    };
                } else {
                    off += c * in_strides[i];
                }
            }
            out.push(match tap {
                Tap::Valid(_) => Tap::Valid(off as usize),
                t => t,
            });
            step(&mut o, output);
        }
        step(&mut k, kernel);
    }
    out
}

/// Row-major odometer increment.
fn step(idx: &mut [usize], dims: &[usize]) {
    for i in (0..idx.len()).rev() {
        idx[i] += 1;
        if idx[i] < dims[i] {
            return;
        }
        idx[i] = 0;
    }
}

pub(super) fn conv(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    a: &ConvAttrs,
    out: &TensorType,
) -> Tensor {
    let (xd, wd, od) = (x.shape().dims(), w.shape().dims(), out.shape.dims());
    let (n, c, m) = (xd[0], xd[1], wd[0]);
    let (cg, mg) = (c / a.group, m / a.group);
    let (sp_in, sp_k, sp_out) = (&xd[2..], &wd[2..], &od[2..]);
    let (s_in, nk, p) = (
        sp_in.iter().product::<usize>(),
        sp_k.iter().product::<usize>(),
        sp_out.iter().product::<usize>(),
    );
    let table = taps(sp_in, sp_k, sp_out, &a.strides, &a.dilations, &a.pads);
    let (xv, wv) = (x.to_f64_vec(), w.to_f64_vec());
    let r = cg * nk;
    let mut y = vec![0.0; n * m * p];
    let mut col = vec![0.0; r * p];
    for ni in 0..n {
        for g in 0..a.group {
            for ci in 0..cg {
                let base = (ni * c + g * cg + ci) * s_in;
                for kp in 0..nk {
                    let row = &mut col[(ci * nk + kp) * p..(ci * nk + kp + 1) * p];
                    for (dst, tap) in row.iter_mut().zip(&table[kp * p..(kp + 1) * p]) {
                        *dst = match tap {
                            Tap::Valid(o) => xv[base + o],
                            _ => 0.0,
                        };
                    }
                }
            }
            let wg = &wv[g * mg * r..(g + 1) * mg * r];
            let yo = (ni * m + g * mg) * p;
            gemm_acc(mg, p, r, wg, &col, &mut y[yo..yo + mg * p]);
        }
    }
    if let Some(b) = b {
        let bv = b.to_f64_vec();
        for (i, chunk) in y.chunks_mut(p).enumerate() {
            let bias = bv[i % m];
            for v in chunk {
                *v += bias;
            }
        }
    }
    from_f64(out.dtype, out.shape.clone(), y)
}

/// Pooling; for max pooling with indices, also the i64 offset of each maximum in the
/// whole input (the first one on ties).
pub(super) fn pool(x: &Tensor, kind: PoolKind, a: &PoolAttrs, out: &[TensorType]) -> Vec<Tensor> {
    let (xd, od) = (x.shape().dims(), out[0].shape.dims());
    let (sp_in, sp_out) = (&xd[2..], &od[2..]);
    let s_in: usize = sp_in.iter().product();
    let p: usize = sp_out.iter().product();
    let nk: usize = a.kernel.iter().product();
    let table = taps(sp_in, &a.kernel, sp_out, &a.strides, &a.dilations, &a.pads);
    let xv = x.to_f64_vec();
    let planes = xd[0] * xd[1];
    let mut y = Vec::with_capacity(planes * p);
    let mut argmax = Vec::new();
    for plane in 0..planes {
        let base = plane * s_in;
        for o in 0..p {
            let column = (0..nk).map(|kp| table[kp * p + o]);
            y.push(match kind {
                PoolKind::Max { .. } => {
                    let (mut best, mut at) = (f64::NEG_INFINITY, None);
                    for t in column {
                        if let Tap::Valid(off) = t {
                            let v = xv[base + off];
                            if at.is_none() || v > best || (v.is_nan() && !best.is_nan()) {
                                (best, at) = (v, Some(base + off));
                            }
                        }
                    }
                    argmax.push(at.unwrap_or(0) as i64);
                    best
                }
                PoolKind::Average { count_include_pad } => {
                    let (mut sum, mut count) = (0.0, 0usize);
                    for t in column {
                        match t {
                            Tap::Valid(off) => {
                                sum += xv[base + off];
                                count += 1;
                            }
                            Tap::Pad if count_include_pad => count += 1,
                            _ => {}
                        }
                    }
                    if count == 0 {
                        f64::NAN
                    } else {
                        sum / count as f64
                    }
                }
            });
        }
    }
    let mut result = vec![from_f64(out[0].dtype, out[0].shape.clone(), y)];
    if let PoolKind::Max { indices: true } = kind {
        result
            .push(Tensor::from_vec(out[1].shape.clone(), argmax).expect("one per output element"));
    }
    result
}
