//! Rules for sliding-window ops: convolution and pooling, any number of spatial axes.

use tessera_ir::{BinaryOp, ConvAttrs, Op, PoolAttrs, PoolKind, Shape, Tensor, UnaryOp, ValueId};

use crate::PassError;
use crate::train::emit::Emitter;

type Grads = Result<Vec<Option<ValueId>>, PassError>;

/// Convolution. With `s` strides, `d` dilations, `p` pads per spatial axis:
///
/// * `dX` is a stride-1 convolution (dilation `d`, group `G`) of `dY`, dilated by `s`
///   (zeros between elements) and padded by `(k−1)·d − p_begin` in front, with the kernel
///   flipped spatially and its in/out channels swapped within each group.
/// * `dW[m, c, κ] = Σ_{n,o} X[n, c, κ·d + o·s − p] · dY[n, m, o]` is a convolution of X
///   (channels and batch swapped, grouped) with `dY` as the kernel: stride `d`, dilation
///   `s`, the forward pads; cropped to the kernel size.
/// * `dB` sums `dY` over batch and spatial axes.
pub(super) fn conv(
    e: &mut Emitter,
    a: &ConvAttrs,
    x: &[ValueId],
    g: ValueId,
    need: &[bool],
) -> Grads {
    let (xv, wv) = (x[0], x[1]);
    let (xd, wd, gd) = (e.dims(xv), e.dims(wv), e.dims(g));
    let sp = xd.len() - 2;
    let groups = a.group;
    let (n, c, m) = (xd[0], xd[1], wd[0]);
    let (cg, mg) = (c / groups, m / groups);
    let k = &wd[2..];
    let o = &gd[2..];

    let gx = if need[0] {
        let mut gt = g;
        let mut pads = vec![0usize; 2 * sp];
        for i in 0..sp {
            let before = ((k[i] - 1) * a.dilations[i]) as i64 - a.pads[i] as i64;
            let after =
                xd[2 + i] as i64 + a.pads[i] as i64 - 1 - ((o[i] - 1) * a.strides[i]) as i64;
            gt = e.pad(
                gt,
                2 + i,
                before.min(0),
                after.min(0),
                a.strides[i] - 1,
                0.0,
            )?;
            pads[i] = before.max(0) as usize;
            pads[sp + i] = after.max(0) as usize;
        }
        // W [M, C/G, k..] → flip → [G, M/G, C/G, k..] → [G, C/G, M/G, k..] → [C, M/G, k..]
        let mut wf = wv;
        for i in 0..sp {
            wf = e.flip(wf, 2 + i)?;
        }
        let mut split = vec![groups, mg, cg];
        split.extend_from_slice(k);
        let w5 = e.reshape(wf, &split)?;
        let mut perm = vec![0, 2, 1];
        perm.extend(3..3 + sp);
        let wt = e.transpose(w5, &perm)?;
        let mut merged = vec![c, mg];
        merged.extend_from_slice(k);
        let w2 = e.reshape(wt, &merged)?;
        let attrs = ConvAttrs {
            strides: vec![1; sp],
            pads,
            dilations: a.dilations.clone(),
            group: groups,
        };
        Some(e.op(Op::Conv(attrs), &[gt, w2])?)
    } else {
        None
    };

    let gw = if need[1] {
        // X [N, C, sp..] → [N, G, C/G, sp..] → [C/G, G, N, sp..] → [C/G, G·N, sp..]
        let mut split = vec![n, groups, cg];
        split.extend_from_slice(&xd[2..]);
        let x5 = e.reshape(xv, &split)?;
        let mut perm = vec![2, 1, 0];
        perm.extend(3..3 + sp);
        let xt = e.transpose(x5, &perm)?;
        let mut merged = vec![cg, groups * n];
        merged.extend_from_slice(&xd[2..]);
        let input = e.reshape(xt, &merged)?;
        let mut perm = vec![1, 0];
        perm.extend(2..2 + sp);
        let kernel = e.transpose(g, &perm)?;
        let attrs = ConvAttrs {
            strides: a.dilations.clone(),
            pads: a.pads.clone(),
            dilations: a.strides.clone(),
            group: groups,
        };
        let mut r = e.op(Op::Conv(attrs), &[input, kernel])?;
        for (i, &ki) in k.iter().enumerate() {
            r = e.slice(r, 2 + i, 0, ki as i64, 1)?;
        }
        Some(e.transpose(r, &perm)?)
    } else {
        None
    };

    let mut out = vec![gx, gw];
    if x.len() == 3 {
        out.push(if need[2] {
            let mut axes = vec![0];
            axes.extend(2..2 + sp);
            Some(e.sum(g, &axes, false)?)
        } else {
            None
        });
    }
    Ok(out)
}

/// The shape facts of a pooling window: per spatial axis the input size, the padded size
/// every window fits in, begin pad, kernel, stride, dilation and output size.
struct Window {
    input: Vec<usize>,
    padded: Vec<usize>,
    begin: Vec<usize>,
    kernel: Vec<usize>,
    stride: Vec<usize>,
    dilation: Vec<usize>,
    output: Vec<usize>,
}

impl Window {
    fn new(a: &PoolAttrs, xd: &[usize], yd: &[usize]) -> Window {
        let sp = xd.len() - 2;
        let input = xd[2..].to_vec();
        let output = yd[2..].to_vec();
        let padded = (0..sp)
            .map(|i| {
                let need = (output[i] - 1) * a.strides[i] + (a.kernel[i] - 1) * a.dilations[i] + 1;
                (input[i] + a.pads[i] + a.pads[sp + i]).max(need)
            })
            .collect();
        Window {
            input,
            padded,
            begin: a.pads[..sp].to_vec(),
            kernel: a.kernel.clone(),
            stride: a.strides.clone(),
            dilation: a.dilations.clone(),
            output,
        }
    }

    /// Every kernel position, row-major (the order the reference kernel scans).
    fn taps(&self) -> Vec<Vec<usize>> {
        let mut out = vec![vec![]];
        for &k in &self.kernel {
            out = out
                .into_iter()
                .flat_map(|p| {
                    (0..k).map(move |i| {
                        let mut q = p.clone();
                        q.push(i);
                        q
                    })
                })
                .collect();
        }
        out
    }

    /// `x` padded with `value` to the padded extent.
    fn pad(&self, e: &mut Emitter, x: ValueId, value: f64) -> Result<ValueId, PassError> {
        let mut v = x;
        for i in 0..self.input.len() {
            let after = (self.padded[i] - self.input[i] - self.begin[i]) as i64;
            v = e.pad(v, 2 + i, self.begin[i] as i64, after, 0, value)?;
        }
        Ok(v)
    }

    /// The elements of a padded tensor that tap `t` reads, one per output position.
    fn gather_tap(&self, e: &mut Emitter, xp: ValueId, t: &[usize]) -> Result<ValueId, PassError> {
        let mut v = xp;
        for (i, &ti) in t.iter().enumerate() {
            let start = (ti * self.dilation[i]) as i64;
            let end = start + ((self.output[i] - 1) * self.stride[i]) as i64 + 1;
            v = e.slice(v, 2 + i, start, end, self.stride[i] as i64)?;
        }
        Ok(v)
    }

    /// The adjoint of [`Window::gather_tap`]: places one value per output position back
    /// at the padded positions tap `t` read, zeros elsewhere.
    fn scatter_tap(&self, e: &mut Emitter, v: ValueId, t: &[usize]) -> Result<ValueId, PassError> {
        let mut r = v;
        for (i, &ti) in t.iter().enumerate() {
            let start = ti * self.dilation[i];
            let span = (self.output[i] - 1) * self.stride[i] + 1;
            let after = (self.padded[i] - start - span) as i64;
            r = e.pad(r, 2 + i, start as i64, after, self.stride[i] - 1, 0.0)?;
        }
        Ok(r)
    }

    /// Crops a padded tensor back to the input extent.
    fn crop(&self, e: &mut Emitter, v: ValueId) -> Result<ValueId, PassError> {
        let mut r = v;
        for i in 0..self.input.len() {
            let b = self.begin[i] as i64;
            r = e.slice(r, 2 + i, b, b + self.input[i] as i64, 1)?;
        }
        Ok(r)
    }

    /// How many taps of each output position count in an average (the reference's
    /// divisor): taps inside the input, plus those in the declared padding with
    /// `count_include_pad`.
    fn divisor(&self, pads_end: &[usize], include_pad: bool) -> Vec<f64> {
        let taps = self.taps();
        let mut out = vec![vec![]];
        for &o in &self.output {
            out = out
                .into_iter()
                .flat_map(|p| {
                    (0..o).map(move |i| {
                        let mut q: Vec<usize> = p.clone();
                        q.push(i);
                        q
                    })
                })
                .collect();
        }
        out.iter()
            .map(|pos| {
                taps.iter()
                    .filter(|t| {
                        (0..pos.len()).all(|i| {
                            let c = (pos[i] * self.stride[i] + t[i] * self.dilation[i]) as i64
                                - self.begin[i] as i64;
                            let lo = if include_pad {
                                -(self.begin[i] as i64)
                            } else {
                                0
                            };
                            let hi = if include_pad {
                                (self.input[i] + pads_end[i]) as i64
                            } else {
                                self.input[i] as i64
                            };
                            c >= lo && c < hi
                        })
                    })
                    .count() as f64
            })
            .collect()
    }
}

/// Pooling. Max pooling sends each output's gradient to the first maximum of its window
/// in kernel order (the reference's tie rule), found tap by tap with an `equal` mask and a
/// running "already taken" mask; average pooling spreads `dY / divisor` over each window.
/// Each tap's contribution is scattered back with a strided-slice adjoint.
pub(super) fn pool(
    e: &mut Emitter,
    kind: PoolKind,
    a: &PoolAttrs,
    x: ValueId,
    y: ValueId,
    g: ValueId,
) -> Grads {
    let (xd, yd) = (e.dims(x), e.dims(y));
    let sp = xd.len() - 2;
    let w = Window::new(a, &xd, &yd);
    let mut acc: Option<ValueId> = None;
    let mut add = |e: &mut Emitter, v: ValueId| -> Result<(), PassError> {
        acc = Some(match acc {
            Some(a) => e.add(a, v)?,
            None => v,
        });
        Ok(())
    };
    match kind {
        PoolKind::Max { .. } => {
            let xp = w.pad(e, x, f64::NEG_INFINITY)?;
            let mut taken: Option<ValueId> = None;
            for t in w.taps() {
                let xk = w.gather_tap(e, xp, &t)?;
                let eq = e.binary(BinaryOp::Equal, xk, y)?;
                let sel = match taken {
                    Some(tk) => {
                        let free = e.unary(UnaryOp::Not, tk)?;
                        let s = e.binary(BinaryOp::And, eq, free)?;
                        taken = Some(e.binary(BinaryOp::Or, tk, eq)?);
                        s
                    }
                    None => {
                        taken = Some(eq);
                        eq
                    }
                };
                let gk = e.mask(sel, g)?;
                let s = w.scatter_tap(e, gk, &t)?;
                add(e, s)?;
            }
        }
        PoolKind::Average { count_include_pad } => {
            let div = w.divisor(&a.pads[sp..], count_include_pad);
            let shape = Shape::new(w.output.clone()).map_err(|er| e.error(er.to_string()))?;
            let t = Tensor::from_vec(shape, div)
                .map_err(|er| e.error(er.to_string()))?
                .cast(e.dtype(x));
            let dv = e.constant(t);
            let gs = e.div(g, dv)?;
            for t in w.taps() {
                let s = w.scatter_tap(e, gs, &t)?;
                add(e, s)?;
            }
        }
    }
    let acc = acc.ok_or_else(|| e.error("pooling window has no taps"))?;
    Ok(vec![Some(w.crop(e, acc)?)])
}
