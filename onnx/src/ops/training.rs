//! The optimizer update rules of the `ai.onnx.preview.training` domain, `Adagrad`,
//! `Momentum` (standard and Nesterov) and `Adam`, as the pointwise chains they are, for
//! one or several tensors at once (inputs `R, T, X₁..Xₙ, G₁..Gₙ, state₁..stateₙ…`,
//! outputs the new tensors, then each new state family). The step count `T` is a run-time
//! scalar: its uses (`t > 0`, `α^t`, `β^t`) are comparisons, selects and `pow`.

use tessera_ir::{BinaryOp, DType, Op, Shape, Tensor, UnaryOp, ValueId};

use super::common::{R, Translator, reshape};
use crate::context::Ctx;

pub(super) const OPS: &[(&str, Translator)] = &[
    ("Adagrad", |cx| optimizer(cx, Rule::Adagrad)),
    ("Momentum", |cx| optimizer(cx, Rule::Momentum)),
    ("Adam", |cx| optimizer(cx, Rule::Adam)),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    Adagrad,
    Momentum,
    Adam,
}

impl Rule {
    /// State tensors per optimized tensor (Adagrad's H, Momentum's V, Adam's V and H).
    fn states(self) -> usize {
        match self {
            Rule::Adam => 2,
            _ => 1,
        }
    }
}

/// Pointwise helpers in the tensors' dtype.
struct P<'c, 'a, 'b> {
    cx: &'c mut Ctx<'a, 'b>,
    dtype: DType,
}

impl P<'_, '_, '_> {
    fn c(&mut self, v: f64) -> ValueId {
        self.cx
            .constant(Tensor::full(self.dtype, Shape::scalar(), v))
    }

    fn bin(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> R<ValueId> {
        self.cx.emit1(Op::Binary(op), &[a, b])
    }

    fn bin_c(&mut self, op: BinaryOp, a: ValueId, v: f64) -> R<ValueId> {
        let c = self.c(v);
        self.bin(op, a, c)
    }

    /// `c · a`, or `a` itself for `c = 1`.
    fn scale(&mut self, a: ValueId, c: f64) -> R<ValueId> {
        if c == 1.0 {
            return Ok(a);
        }
        self.bin_c(BinaryOp::Mul, a, c)
    }
}

fn optimizer(cx: &mut Ctx, rule: Rule) -> R<Vec<ValueId>> {
    let inputs: Vec<ValueId> = cx.all_inputs();
    let per = 2 + rule.states();
    if inputs.len() < 2 + per || !(inputs.len() - 2).is_multiple_of(per) {
        return Err(cx.err(format!(
            "{} inputs, expected R, T and groups of {per} (X, G and the state) per tensor",
            inputs.len()
        )));
    }
    let n = (inputs.len() - 2) / per;
    let (r, t) = (inputs[0], inputs[1]);
    let dtype = cx.ty(inputs[2]).dtype;
    if !dtype.is_float() || cx.ty(r).dtype != dtype {
        return Err(cx.err(format!(
            "R is {} and X {dtype}, expected one float dtype",
            cx.ty(r).dtype
        )));
    }
    for &v in &inputs[2..] {
        if cx.ty(v).dtype != dtype {
            return Err(cx.err(format!(
                "the tensors, gradients and states are {} and {dtype}, expected one dtype",
                cx.ty(v).dtype
            )));
        }
    }
    if cx.ty(r).shape.numel() != 1 || cx.ty(t).shape.numel() != 1 || !cx.ty(t).dtype.is_int() {
        return Err(cx.err("R must be one float and T one integer"));
    }
    let attr = |cx: &Ctx, name: &str, d: f32| -> R<f64> {
        Ok(f64::from(cx.attr_float(name)?.unwrap_or(d)))
    };
    let norm = attr(cx, "norm_coefficient", 0.0)?;
    let r = reshape(cx, r, vec![])?;
    let t = reshape(cx, t, vec![])?;
    let tf = cx.emit1(Op::Cast { to: dtype }, &[t])?;
    let mut p = P { cx, dtype };
    let zero = p.c(0.0);
    let positive = p.bin(BinaryOp::Greater, tf, zero)?;
    let mut news: Vec<ValueId> = Vec::with_capacity(n);
    let mut states: Vec<Vec<ValueId>> = vec![Vec::with_capacity(n); rule.states()];
    for i in 0..n {
        let x = inputs[2 + i];
        let g = inputs[2 + n + i];
        let nx = p.scale(x, norm)?;
        let gr = if norm == 0.0 {
            g
        } else {
            p.bin(BinaryOp::Add, nx, g)?
        };
        match rule {
            Rule::Adagrad => {
                let decay = attr(p.cx, "decay_factor", 0.0)?;
                let eps = attr(p.cx, "epsilon", 0.0)?;
                let h = inputs[2 + 2 * n + i];
                // r / (1 + t·decay); h' = h + g²; x' = x − r'·g / (√h' + ε).
                let td = p.bin_c(BinaryOp::Mul, tf, decay)?;
                let den = p.bin_c(BinaryOp::Add, td, 1.0)?;
                let rr = p.bin(BinaryOp::Div, r, den)?;
                let g2 = p.bin(BinaryOp::Mul, gr, gr)?;
                let hn = p.bin(BinaryOp::Add, h, g2)?;
                let sq = p.cx.emit1(Op::Unary(UnaryOp::Sqrt), &[hn])?;
                let sq = p.bin_c(BinaryOp::Add, sq, eps)?;
                let step = p.bin(BinaryOp::Mul, rr, gr)?;
                let step = p.bin(BinaryOp::Div, step, sq)?;
                news.push(p.bin(BinaryOp::Sub, x, step)?);
                states[0].push(hn);
            }
            Rule::Momentum => {
                let alpha = attr(p.cx, "alpha", 0.0)?;
                let beta = attr(p.cx, "beta", 0.0)?;
                let nesterov = match p.cx.attr_string("mode")?.as_deref() {
                    None | Some("standard") => false,
                    Some("nesterov") => true,
                    Some(other) => return Err(p.cx.err(format!("unknown mode {other:?}"))),
                };
                let v = inputs[2 + 2 * n + i];
                // v' = α·v + (t > 0 ? β : 1)·g; x' = x − r·v' (Nesterov: r·(g + α·v')).
                let b = p.c(beta);
                let one = p.c(1.0);
                let bt = p.cx.emit1(Op::Where, &[positive, b, one])?;
                let av = p.scale(v, alpha)?;
                let bg = p.bin(BinaryOp::Mul, bt, gr)?;
                let vn = p.bin(BinaryOp::Add, av, bg)?;
                let dir = if nesterov {
                    let avn = p.scale(vn, alpha)?;
                    p.bin(BinaryOp::Add, gr, avn)?
                } else {
                    vn
                };
                let step = p.bin(BinaryOp::Mul, r, dir)?;
                news.push(p.bin(BinaryOp::Sub, x, step)?);
                states[0].push(vn);
            }
            Rule::Adam => {
                let alpha = attr(p.cx, "alpha", 0.9)?;
                let beta = attr(p.cx, "beta", 0.999)?;
                let eps = attr(p.cx, "epsilon", 0.0)?;
                let post = attr(p.cx, "norm_coefficient_post", 0.0)?;
                let (v, h) = (inputs[2 + 2 * n + i], inputs[2 + 3 * n + i]);
                // v' = α·v + (1 − α)·g; h' = β·h + (1 − β)·g²;
                // r' = t > 0 ? r·√(1 − β^t)/(1 − α^t) : r; x' = (1 − post)·(x − r'·v'/(√h' + ε)).
                let av = p.scale(v, alpha)?;
                let ag = p.scale(gr, 1.0 - alpha)?;
                let vn = p.bin(BinaryOp::Add, av, ag)?;
                let g2 = p.bin(BinaryOp::Mul, gr, gr)?;
                let bh = p.scale(h, beta)?;
                let bg = p.scale(g2, 1.0 - beta)?;
                let hn = p.bin(BinaryOp::Add, bh, bg)?;
                let sq = p.cx.emit1(Op::Unary(UnaryOp::Sqrt), &[hn])?;
                let sq = p.bin_c(BinaryOp::Add, sq, eps)?;
                let (ac, bc) = (p.c(alpha), p.c(beta));
                let at = p.bin(BinaryOp::Pow, ac, tf)?;
                let btp = p.bin(BinaryOp::Pow, bc, tf)?;
                let one = p.c(1.0);
                let omb = p.bin(BinaryOp::Sub, one, btp)?;
                let oma = p.bin(BinaryOp::Sub, one, at)?;
                let num = p.cx.emit1(Op::Unary(UnaryOp::Sqrt), &[omb])?;
                let adj = p.bin(BinaryOp::Mul, r, num)?;
                let adj = p.bin(BinaryOp::Div, adj, oma)?;
                let ra = p.cx.emit1(Op::Where, &[positive, adj, r])?;
                let q = p.bin(BinaryOp::Div, vn, sq)?;
                let step = p.bin(BinaryOp::Mul, ra, q)?;
                let xn = p.bin(BinaryOp::Sub, x, step)?;
                news.push(p.scale(xn, 1.0 - post)?);
                states[0].push(vn);
                states[1].push(hn);
            }
        }
    }
    news.extend(states.into_iter().flatten());
    Ok(news)
}
