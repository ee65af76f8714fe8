//! The recurrent layers `RNN`, `GRU` and `LSTM`, unrolled at import over the (static)
//! sequence length into the IR ops one step is: a `Gemm` of the whole input sequence with
//! `W` (bias folded in) up front, then per step a `Gemm` of the hidden state with `R`, the
//! gates split off, their activations (the defaults or the `activations` attribute, with
//! `activation_alpha`/`activation_beta` consumed in order) and the state update. Both
//! directions of a bidirectional layer are unrolled separately and their outputs
//! concatenated. A `sequence_lens` input (constant or computed) masks each step with a
//! select: past a batch entry's length the state is kept and `Y` is zero, which is also
//! what makes the reverse direction start at each entry's own last step. The unroll is
//! bounded by [`MAX_STEPS`].

use tessera_ir::{BinaryOp, DType, Op, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator, dims_of, reshape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("RNN", |cx| recurrent(cx, Cell::Rnn)),
    ("GRU", |cx| recurrent(cx, Cell::Gru)),
    ("LSTM", |cx| recurrent(cx, Cell::Lstm)),
];

/// The most time steps a layer is unrolled over (each step is a dozen or so IR nodes).
const MAX_STEPS: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cell {
    Rnn,
    Gru,
    Lstm,
}

impl Cell {
    /// Gate blocks stacked in `W` and `R`.
    fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru => 3,
            Cell::Lstm => 4,
        }
    }

    /// The activation functions per direction and their defaults.
    fn default_activations(self) -> &'static [&'static str] {
        match self {
            Cell::Rnn => &["Tanh"],
            Cell::Gru => &["Sigmoid", "Tanh"],
            Cell::Lstm => &["Sigmoid", "Tanh", "Tanh"],
        }
    }
}

/// One activation function of the `activations` attribute, with its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Relu,
    Tanh,
    Sigmoid,
    Affine(f64, f64),
    LeakyRelu(f64),
    ThresholdedRelu(f64),
    ScaledTanh(f64, f64),
    HardSigmoid(f64, f64),
    Elu(f64),
    Softsign,
    Softplus,
}

/// Parses activation `name` (case-insensitive, as onnxruntime), taking its alpha and beta
/// from the front of `alphas`/`betas` when it has them (else the ONNX op's defaults).
fn parse_act(
    cx: &Ctx,
    name: &str,
    alphas: &mut impl Iterator<Item = f32>,
    betas: &mut impl Iterator<Item = f32>,
) -> R<Act> {
    let mut a = |d: f64| alphas.next().map_or(d, f64::from);
    let lower = name.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "relu" => Act::Relu,
        "tanh" => Act::Tanh,
        "sigmoid" => Act::Sigmoid,
        "softsign" => Act::Softsign,
        "softplus" => Act::Softplus,
        "leakyrelu" => Act::LeakyRelu(a(0.01)),
        "thresholdedrelu" => Act::ThresholdedRelu(a(1.0)),
        "elu" => Act::Elu(a(1.0)),
        "affine" | "scaledtanh" | "hardsigmoid" => {
            let (da, db) = match lower.as_str() {
                "affine" => (1.0, 0.0),
                "scaledtanh" => (1.0, 1.0),
                _ => (0.2, 0.5),
            };
            let al = a(da);
            let be = betas.next().map_or(db, f64::from);
            match lower.as_str() {
                "affine" => Act::Affine(al, be),
                "scaledtanh" => Act::ScaledTanh(al, be),
                _ => Act::HardSigmoid(al, be),
            }
        }
        _ => return Err(cx.err(format!("unknown activation function {name:?}"))),
    })
}

/// What a translator needs while it unrolls: the context, the compute dtype and the
/// layer's sizes.
struct Unroll<'c, 'a, 'b> {
    cx: &'c mut Ctx<'a, 'b>,
    dtype: DType,
    batch: usize,
    hidden: usize,
    clip: Option<f64>,
}

impl Unroll<'_, '_, '_> {
    fn c(&mut self, v: f64) -> ValueId {
        self.cx
            .constant(Tensor::full(self.dtype, Shape::scalar(), v))
    }

    fn zeros(&mut self, dims: Vec<usize>) -> R<ValueId> {
        let s = Shape::new(dims).map_err(|e| self.cx.err(e.to_string()))?;
        self.cx.check_built("the initial state", s.numel())?;
        Ok(self.cx.constant(Tensor::full(self.dtype, s, 0.0)))
    }

    fn bin(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> R<ValueId> {
        self.cx.emit1(Op::Binary(op), &[a, b])
    }

    fn bin_c(&mut self, op: BinaryOp, a: ValueId, c: f64) -> R<ValueId> {
        let c = self.c(c);
        self.bin(op, a, c)
    }

    fn un(&mut self, op: UnaryOp, a: ValueId) -> R<ValueId> {
        self.cx.emit1(Op::Unary(op), &[a])
    }

    /// `v` split along `axis` into `sizes` (no node for one piece).
    fn split(&mut self, v: ValueId, axis: usize, sizes: Vec<usize>) -> R<Vec<ValueId>> {
        if sizes.len() == 1 {
            return Ok(vec![v]);
        }
        self.cx.emit(Op::Split { axis, sizes }, &[v])
    }

    /// `a · bᵀ (+ c)` for rank-2 `a` and `b`.
    fn gemm_t(&mut self, a: ValueId, b: ValueId, c: Option<ValueId>) -> R<ValueId> {
        let op = Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: true,
        };
        match c {
            Some(c) => self.cx.emit1(op, &[a, b, c]),
            None => self.cx.emit1(op, &[a, b]),
        }
    }

    /// Activation `f` of gate pre-activation `x`, clipped first when the layer clips.
    fn act(&mut self, f: Act, x: ValueId) -> R<ValueId> {
        let x = match self.clip {
            Some(t) => self.cx.emit1(Op::Clip { min: -t, max: t }, &[x])?,
            None => x,
        };
        match f {
            Act::Relu => self.un(UnaryOp::Relu, x),
            Act::Tanh => self.un(UnaryOp::Tanh, x),
            Act::Sigmoid => self.un(UnaryOp::Sigmoid, x),
            Act::Softplus => self.un(UnaryOp::Softplus, x),
            Act::Affine(a, b) => {
                let ax = self.bin_c(BinaryOp::Mul, x, a)?;
                self.bin_c(BinaryOp::Add, ax, b)
            }
            Act::LeakyRelu(a) => {
                let neg = self.bin_c(BinaryOp::Less, x, 0.0)?;
                let ax = self.bin_c(BinaryOp::Mul, x, a)?;
                self.cx.emit1(Op::Where, &[neg, ax, x])
            }
            Act::ThresholdedRelu(a) => {
                let keep = self.bin_c(BinaryOp::GreaterOrEqual, x, a)?;
                let zero = self.c(0.0);
                self.cx.emit1(Op::Where, &[keep, x, zero])
            }
            Act::ScaledTanh(a, b) => {
                let bx = self.bin_c(BinaryOp::Mul, x, b)?;
                let t = self.un(UnaryOp::Tanh, bx)?;
                self.bin_c(BinaryOp::Mul, t, a)
            }
            Act::HardSigmoid(a, b) => {
                let ax = self.bin_c(BinaryOp::Mul, x, a)?;
                let axb = self.bin_c(BinaryOp::Add, ax, b)?;
                self.cx.emit1(Op::Clip { min: 0.0, max: 1.0 }, &[axb])
            }
            Act::Elu(a) => {
                let neg = self.bin_c(BinaryOp::Less, x, 0.0)?;
                let ex = self.un(UnaryOp::Exp, x)?;
                let em1 = self.bin_c(BinaryOp::Sub, ex, 1.0)?;
                let s = self.bin_c(BinaryOp::Mul, em1, a)?;
                self.cx.emit1(Op::Where, &[neg, s, x])
            }
            Act::Softsign => {
                let ax = self.un(UnaryOp::Abs, x)?;
                let d = self.bin_c(BinaryOp::Add, ax, 1.0)?;
                self.bin(BinaryOp::Div, x, d)
            }
        }
    }

    /// `mask ? new : old` (no node without a mask).
    fn keep(&mut self, mask: Option<ValueId>, new: ValueId, old: ValueId) -> R<ValueId> {
        match mask {
            Some(m) => self.cx.emit1(Op::Where, &[m, new, old]),
            None => Ok(new),
        }
    }
}

/// One direction's parameters, each already sliced out of the stacked inputs.
struct Dir {
    /// `[G·H, I]`.
    w: ValueId,
    /// `[G·H, H]`.
    r: ValueId,
    /// `Wb + Rb`, `[G·H]` (for GRU with `linear_before_reset`, without `Rbh`).
    bias: Option<ValueId>,
    /// GRU's `Rbh` `[H]` when `linear_before_reset` keeps it inside the reset product.
    rbh: Option<ValueId>,
    /// LSTM peepholes `Pi`, `Po`, `Pf`, each `[H]`.
    peep: Option<[ValueId; 3]>,
    h0: ValueId,
    c0: Option<ValueId>,
    acts: Vec<Act>,
    reverse: bool,
    /// GRU's `linear_before_reset`: `Rh` applies before the reset gate multiplies in.
    lbr: bool,
}

/// What one direction produces: `Y` per step (`[B, H]`, in time order) and the final
/// hidden and cell states.
struct DirOut {
    ys: Vec<ValueId>,
    h: ValueId,
    c: Option<ValueId>,
}

/// Piece `d` of `v` along axis 0 (of `pieces` equal pieces), with that axis dropped.
fn take(cx: &mut Ctx, v: ValueId, d: usize, pieces: usize, axis: usize) -> R<ValueId> {
    let dims = dims_of(cx, v);
    let mut one = dims.clone();
    one.remove(axis);
    let part = if pieces == 1 {
        v
    } else {
        let sizes = vec![dims[axis] / pieces; pieces];
        cx.emit(Op::Split { axis, sizes }, &[v])?[d]
    };
    reshape(cx, part, one)
}

fn expect_dims(cx: &Ctx, what: &str, v: ValueId, want: &[usize]) -> R<()> {
    let got = dims_of(cx, v);
    if got != want {
        return Err(cx.err(format!(
            "{what} has shape {}, expected [{}]",
            cx.ty(v).shape,
            want.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

fn recurrent(cx: &mut Ctx, cell: Cell) -> R<Vec<ValueId>> {
    let (x, w, r) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let dtype = cx.ty(x).dtype;
    if !dtype.is_float() {
        return Err(cx.err(format!("X is {dtype}, expected a float dtype")));
    }
    for (what, v) in [("W", w), ("R", r)] {
        if cx.ty(v).dtype != dtype {
            return Err(cx.err(format!("{what} is {}, X is {dtype}", cx.ty(v).dtype)));
        }
    }
    let layout = cx.attr_int("layout")?.unwrap_or(0);
    if layout != 0 && layout != 1 {
        return Err(cx.err(format!("layout {layout} must be 0 or 1")));
    }
    let batch_first = layout == 1;
    let direction = cx
        .attr_string("direction")?
        .unwrap_or_else(|| "forward".into());
    let dirs: &[bool] = match direction.as_str() {
        "forward" => &[false],
        "reverse" => &[true],
        "bidirectional" => &[false, true],
        other => {
            return Err(cx.err(format!(
                "direction {other:?} must be forward, reverse or bidirectional"
            )));
        }
    };
    let nd = dirs.len();
    let xd = dims_of(cx, x);
    if xd.len() != 3 {
        return Err(cx.err(format!(
            "X has shape {}, expected rank 3 ({})",
            cx.ty(x).shape,
            if batch_first {
                "[batch, seq, input]"
            } else {
                "[seq, batch, input]"
            }
        )));
    }
    let (steps, batch, input) = if batch_first {
        (xd[1], xd[0], xd[2])
    } else {
        (xd[0], xd[1], xd[2])
    };
    if steps == 0 || batch == 0 {
        return Err(cx.err(format!(
            "X has shape {}: the sequence and the batch must not be empty",
            cx.ty(x).shape
        )));
    }
    if steps > MAX_STEPS {
        return Err(cx.err(format!(
            "sequence length {steps} is more than the {MAX_STEPS} steps the importer unrolls"
        )));
    }
    let g = cell.gates();
    let rd = dims_of(cx, r);
    let hidden = match cx.attr_int("hidden_size")? {
        Some(h) if h > 0 && h as u64 <= tessera_ir::MAX_ELEMENTS => h as usize,
        Some(h) => {
            return Err(cx.err(format!(
                "hidden_size {h} must be positive and at most {}",
                tessera_ir::MAX_ELEMENTS
            )));
        }
        None => match rd.as_slice() {
            [_, _, h] => *h,
            _ => return Err(cx.err(format!("R has shape {}, expected rank 3", cx.ty(r).shape))),
        },
    };
    expect_dims(cx, "W", w, &[nd, g * hidden, input])?;
    expect_dims(cx, "R", r, &[nd, g * hidden, hidden])?;
    let state_dims = if batch_first {
        vec![batch, nd, hidden]
    } else {
        vec![nd, batch, hidden]
    };
    let bias = cx.opt_input(3);
    if let Some(b) = bias {
        expect_dims(cx, "B", b, &[nd, 2 * g * hidden])?;
    }
    let init_h = cx.opt_input(5);
    if let Some(h) = init_h {
        expect_dims(cx, "initial_h", h, &state_dims)?;
    }
    let (init_c, peep) = if cell == Cell::Lstm {
        (cx.opt_input(6), cx.opt_input(7))
    } else {
        (None, None)
    };
    if let Some(c) = init_c {
        expect_dims(cx, "initial_c", c, &state_dims)?;
    }
    if let Some(p) = peep {
        expect_dims(cx, "P", p, &[nd, 3 * hidden])?;
    }
    for (what, v) in [
        ("B", bias),
        ("initial_h", init_h),
        ("initial_c", init_c),
        ("P", peep),
    ] {
        if let Some(v) = v
            && cx.ty(v).dtype != dtype
        {
            return Err(cx.err(format!("{what} is {}, X is {dtype}", cx.ty(v).dtype)));
        }
    }
    let lbr = cell == Cell::Gru && cx.attr_int("linear_before_reset")?.unwrap_or(0) != 0;
    let input_forget = cell == Cell::Lstm && cx.attr_int("input_forget")?.unwrap_or(0) != 0;
    let clip = match cx.attr_float("clip")? {
        Some(t) if t > 0.0 => Some(f64::from(t)),
        Some(t) => return Err(cx.err(format!("clip {t} must be positive"))),
        None => None,
    };

    // The activations: per direction, as many as the cell takes.
    let per = cell.default_activations().len();
    let names: Vec<String> = match cx.attr_strings("activations")? {
        Some(v) => v,
        None => cell
            .default_activations()
            .iter()
            .cycle()
            .take(per * nd)
            .map(|s| s.to_string())
            .collect(),
    };
    if names.len() != per * nd {
        return Err(cx.err(format!(
            "activations lists {} functions, expected {} ({per} per direction)",
            names.len(),
            per * nd
        )));
    }
    let alphas = cx.attr_floats("activation_alpha")?.unwrap_or_default();
    let betas = cx.attr_floats("activation_beta")?.unwrap_or_default();
    let (mut ai, mut bi) = (alphas.into_iter(), betas.into_iter());
    let acts = names
        .iter()
        .map(|n| parse_act(cx, n, &mut ai, &mut bi))
        .collect::<R<Vec<_>>>()?;

    // The step mask from sequence_lens, unless every length is the whole sequence.
    let mut masks: Vec<Option<ValueId>> = vec![None; steps];
    if let Some(lens) = cx.opt_input(4) {
        let ldt = cx.ty(lens).dtype;
        if !matches!(ldt, DType::I32 | DType::I64) {
            return Err(cx.err(format!("sequence_lens is {ldt}, expected int32")));
        }
        expect_dims(cx, "sequence_lens", lens, &[batch])?;
        let full = match cx.const_value(4) {
            Some(t) => {
                let v = t.to_i64_vec();
                if let Some(bad) = v.iter().find(|&&l| l < 0 || l as usize > steps) {
                    return Err(cx.err(format!(
                        "sequence_lens has {bad}, outside 0..={steps} (the sequence length)"
                    )));
                }
                v.iter().all(|&l| l as usize == steps)
            }
            None => false,
        };
        if !full {
            let lens = reshape(cx, lens, vec![batch, 1])?;
            for (t, m) in masks.iter_mut().enumerate() {
                let tc = cx.constant(Tensor::full(ldt, Shape::scalar(), t as f64));
                *m = Some(cx.emit1(Op::Binary(BinaryOp::Less), &[tc, lens])?);
            }
        }
    }

    // X as [T·B, I], time-major.
    let x_tm = if batch_first {
        cx.emit1(
            Op::Transpose {
                perm: vec![1, 0, 2],
            },
            &[x],
        )?
    } else {
        x
    };
    let x2 = reshape(cx, x_tm, vec![steps * batch, input])?;

    let mut u = Unroll {
        cx,
        dtype,
        batch,
        hidden,
        clip,
    };
    let mut outs = Vec::with_capacity(nd);
    for (d, &reverse) in dirs.iter().enumerate() {
        let state_axis = usize::from(batch_first);
        let wd = take(u.cx, w, d, nd, 0)?;
        let rdv = take(u.cx, r, d, nd, 0)?;
        let (bias_d, rbh) = match bias {
            None => (None, None),
            Some(b) => {
                let bd = take(u.cx, b, d, nd, 0)?;
                let halves = u.split(bd, 0, vec![g * hidden; 2])?;
                let (wb, rb) = (halves[0], halves[1]);
                if lbr {
                    let rparts = u.split(rb, 0, vec![2 * hidden, hidden])?;
                    let zeros = u.zeros(vec![hidden])?;
                    let rzr = u.cx.emit1(Op::Concat { axis: 0 }, &[rparts[0], zeros])?;
                    (Some(u.bin(BinaryOp::Add, wb, rzr)?), Some(rparts[1]))
                } else {
                    (Some(u.bin(BinaryOp::Add, wb, rb)?), None)
                }
            }
        };
        let peep_d = match peep {
            None => None,
            Some(p) => {
                let pd = take(u.cx, p, d, nd, 0)?;
                let ps = u.split(pd, 0, vec![hidden; 3])?;
                Some([ps[0], ps[1], ps[2]])
            }
        };
        let h0 = match init_h {
            Some(h) => take(u.cx, h, d, nd, state_axis)?,
            None => u.zeros(vec![batch, hidden])?,
        };
        let c0 = match (cell, init_c) {
            (Cell::Lstm, Some(c)) => Some(take(u.cx, c, d, nd, state_axis)?),
            (Cell::Lstm, None) => Some(u.zeros(vec![batch, hidden])?),
            _ => None,
        };
        let dir = Dir {
            w: wd,
            r: rdv,
            bias: bias_d,
            rbh,
            peep: peep_d,
            h0,
            c0,
            acts: acts[d * per..(d + 1) * per].to_vec(),
            reverse,
            lbr,
        };
        outs.push(unroll(&mut u, cell, &dir, x2, steps, &masks, input_forget)?);
    }
    let cx = u.cx;

    // Y [T, D, B, H] (layout 1: [B, T, D, H]); Y_h and Y_c [D, B, H] (layout 1: [B, D, H]).
    let y_h = stack_states(cx, outs.iter().map(|o| o.h).collect(), batch_first)?;
    let y = if cx.output_used(0) {
        let mut per_dir = Vec::with_capacity(nd);
        for o in &outs {
            let ys =
                o.ys.iter()
                    .map(|&v| reshape(cx, v, vec![1, 1, batch, hidden]))
                    .collect::<R<Vec<_>>>()?;
            per_dir.push(if ys.len() == 1 {
                ys[0]
            } else {
                cx.emit1(Op::Concat { axis: 0 }, &ys)?
            });
        }
        let y = if nd == 1 {
            per_dir[0]
        } else {
            cx.emit1(Op::Concat { axis: 1 }, &per_dir)?
        };
        if batch_first {
            cx.emit1(
                Op::Transpose {
                    perm: vec![2, 0, 1, 3],
                },
                &[y],
            )?
        } else {
            y
        }
    } else {
        // Never read: the driver binds only named outputs. Keeps the output positions.
        y_h
    };
    let mut result = vec![y, y_h];
    if cell == Cell::Lstm {
        let cs = outs.iter().filter_map(|o| o.c).collect();
        result.push(stack_states(cx, cs, batch_first)?);
    }
    Ok(result)
}

/// Final states `[B, H]`, one per direction, as `[D, B, H]` (`[B, D, H]` batch-first).
fn stack_states(cx: &mut Ctx, states: Vec<ValueId>, batch_first: bool) -> R<ValueId> {
    let mut parts = Vec::with_capacity(states.len());
    for s in states {
        let mut d = dims_of(cx, s);
        d.insert(usize::from(batch_first), 1);
        parts.push(reshape(cx, s, d)?);
    }
    if parts.len() == 1 {
        return Ok(parts[0]);
    }
    let axis = usize::from(batch_first);
    cx.emit1(Op::Concat { axis }, &parts)
}

/// Unrolls one direction over `steps` steps of `x2` (`[T·B, I]`, time-major).
fn unroll(
    u: &mut Unroll,
    cell: Cell,
    dir: &Dir,
    x2: ValueId,
    steps: usize,
    masks: &[Option<ValueId>],
    input_forget: bool,
) -> R<DirOut> {
    let (batch, hidden) = (u.batch, u.hidden);
    let g = cell.gates();
    // The input contributions of every step at once, bias included: [T, B, G·H].
    let xw = u.gemm_t(x2, dir.w, dir.bias)?;
    let xw = reshape(u.cx, xw, vec![steps, batch, g * hidden])?;
    let xs = u.split(xw, 0, vec![1; steps])?;
    let xs = xs
        .into_iter()
        .map(|v| reshape(u.cx, v, vec![batch, g * hidden]))
        .collect::<R<Vec<_>>>()?;
    // GRU without linear_before_reset multiplies the reset gate in before Rh.
    let r_parts = if cell == Cell::Gru {
        u.split(dir.r, 0, vec![2 * hidden, hidden])?
    } else {
        vec![dir.r]
    };
    let mut h = dir.h0;
    let mut c = dir.c0;
    let mut ys = vec![h; steps];
    let order: Vec<usize> = if dir.reverse {
        (0..steps).rev().collect()
    } else {
        (0..steps).collect()
    };
    let zero = if masks.iter().any(Option::is_some) {
        Some(u.zeros(vec![batch, hidden])?)
    } else {
        None
    };
    for t in order {
        let xt = xs[t];
        let mask = masks[t];
        let (h_new, c_new) = match cell {
            Cell::Rnn => {
                let pre = u.gemm_t(h, dir.r, Some(xt))?;
                (u.act(dir.acts[0], pre)?, None)
            }
            Cell::Gru => {
                let xp = u.split(xt, 1, vec![2 * hidden, hidden])?;
                let zr = u.gemm_t(h, r_parts[0], Some(xp[0]))?;
                let zr = u.act(dir.acts[0], zr)?;
                let zr = u.split(zr, 1, vec![hidden, hidden])?;
                let (z, rg) = (zr[0], zr[1]);
                let pre = if dir.lbr {
                    let hr = u.gemm_t(h, r_parts[1], dir.rbh)?;
                    let rh = u.bin(BinaryOp::Mul, rg, hr)?;
                    u.bin(BinaryOp::Add, xp[1], rh)?
                } else {
                    let rh = u.bin(BinaryOp::Mul, rg, h)?;
                    u.gemm_t(rh, r_parts[1], Some(xp[1]))?
                };
                let hh = u.act(dir.acts[1], pre)?;
                // (1 − z) ⊙ h̃ + z ⊙ H
                let one = u.c(1.0);
                let omz = u.bin(BinaryOp::Sub, one, z)?;
                let a = u.bin(BinaryOp::Mul, omz, hh)?;
                let b = u.bin(BinaryOp::Mul, z, h)?;
                (u.bin(BinaryOp::Add, a, b)?, None)
            }
            Cell::Lstm => {
                let c_prev =
                    c.ok_or_else(|| u.cx.err("LSTM without a cell state (importer bug)"))?;
                let pre = u.gemm_t(h, dir.r, Some(xt))?;
                let gs = u.split(pre, 1, vec![hidden; 4])?;
                let (gi, go, gf, gc) = (gs[0], gs[1], gs[2], gs[3]);
                let (gi, gf) = match dir.peep {
                    Some([pi, _, pf]) => {
                        let a = u.bin(BinaryOp::Mul, pi, c_prev)?;
                        let b = u.bin(BinaryOp::Mul, pf, c_prev)?;
                        (u.bin(BinaryOp::Add, gi, a)?, u.bin(BinaryOp::Add, gf, b)?)
                    }
                    None => (gi, gf),
                };
                let i = u.act(dir.acts[0], gi)?;
                let f = if input_forget {
                    let one = u.c(1.0);
                    u.bin(BinaryOp::Sub, one, i)?
                } else {
                    u.act(dir.acts[0], gf)?
                };
                let cc = u.act(dir.acts[1], gc)?;
                let fc = u.bin(BinaryOp::Mul, f, c_prev)?;
                let ic = u.bin(BinaryOp::Mul, i, cc)?;
                let c_new = u.bin(BinaryOp::Add, fc, ic)?;
                let go = match dir.peep {
                    Some([_, po, _]) => {
                        let a = u.bin(BinaryOp::Mul, po, c_new)?;
                        u.bin(BinaryOp::Add, go, a)?
                    }
                    None => go,
                };
                let o = u.act(dir.acts[0], go)?;
                // h(Ct) is not clipped: clip bounds the gate inputs only.
                let saved = u.clip.take();
                let hc = u.act(dir.acts[2], c_new);
                u.clip = saved;
                let hc = hc?;
                (u.bin(BinaryOp::Mul, o, hc)?, Some(c_new))
            }
        };
        ys[t] = match (mask, zero) {
            (Some(m), Some(z)) => u.cx.emit1(Op::Where, &[m, h_new, z])?,
            _ => h_new,
        };
        h = u.keep(mask, h_new, h)?;
        if let (Some(cn), Some(cp)) = (c_new, c) {
            c = Some(u.keep(mask, cn, cp)?);
        }
    }
    Ok(DirOut { ys, h, c })
}
