//! Helpers shared by the `train_*` tests: random tensors, running graphs on the reference
//! interpreter, and central finite-difference gradient checks in f64.
#![allow(dead_code)]

use tessera::ir::{
    BinaryOp, DType, Graph, Op, PoolKind, ReduceOp, Shape, Tensor, UnaryOp, ValueId,
};
use tessera::passes::train::{self, GradKind, Loss, ParamSelection, TrainGraph, TrainSpec};
use tessera::reference;
use tessera::sample::SplitMix64;

/// f64 values uniform in `[lo, hi)`.
pub fn uniform(dims: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor {
    let mut r = SplitMix64::new(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f64> = (0..n).map(|_| lo + (hi - lo) * r.next_unit()).collect();
    Tensor::from_vec(Shape::from_dims(dims), v).unwrap()
}

/// f64 values with magnitude uniform in `[lo, hi)` and a random sign: away from the kinks
/// of `relu`, `abs` and friends.
pub fn away_from_zero(dims: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor {
    let mut r = SplitMix64::new(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| {
            let m = lo + (hi - lo) * r.next_unit();
            if r.next_u64() >> 63 == 1 { m } else { -m }
        })
        .collect();
    Tensor::from_vec(Shape::from_dims(dims), v).unwrap()
}

pub fn i64_tensor(dims: &[usize], v: Vec<i64>) -> Tensor {
    Tensor::from_vec(Shape::from_dims(dims), v).unwrap()
}

pub fn run(g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    reference::run(g, inputs).unwrap_or_else(|e| panic!("{e}\n{}", print(g)))
}

pub fn print(g: &Graph) -> String {
    tessera::ir::text::print(
        g,
        &tessera::ir::text::PrintOptions {
            elide_constants: true,
        },
    )
}

/// Appends `z = Σ_k Σ(y_k ⊙ R_k)` with fixed random `R_k` and makes it the only output, so
/// that every element of every `y_k` gets a distinct gradient seed.
pub fn weighted_sum(g: &mut Graph, ys: &[ValueId], seed: u64) {
    let mut total: Option<ValueId> = None;
    for (k, &y) in ys.iter().enumerate() {
        let dims = g.ty(y).shape.dims().to_vec();
        let r = uniform(&dims, -1.0, 1.0, seed + k as u64).cast(g.ty(y).dtype);
        let rc = g.add_constant(r, format!("weights{k}"));
        let p = g
            .add_node1(Op::Binary(BinaryOp::Mul), &[y, rc], "weigh")
            .unwrap();
        let axes: Vec<usize> = (0..dims.len()).collect();
        let s = g
            .add_node1(
                Op::Reduce {
                    op: ReduceOp::Sum,
                    axes,
                    keep_dims: false,
                },
                &[p],
                "weigh.sum",
            )
            .unwrap();
        total = Some(match total {
            Some(t) => g
                .add_node1(Op::Binary(BinaryOp::Add), &[t, s], "weigh.add")
                .unwrap(),
            None => s,
        });
    }
    g.outputs_mut().clear();
    g.add_output("z", total.unwrap());
}

/// `g` with graph input `name` of shape `dims` instead, every node re-added so that types
/// are inferred again (e.g. a CNN at a smaller image size).
pub fn with_input_shape(g: &Graph, name: &str, dims: &[usize]) -> Graph {
    let mut out = Graph::new(g.name.clone());
    let mut map: Vec<Option<ValueId>> = vec![None; g.num_values()];
    for p in g.inputs() {
        let mut ty = g.ty(p.value).clone();
        if p.name == name {
            ty.shape = Shape::from_dims(dims);
        }
        map[p.value.index()] = Some(out.add_input(p.name.clone(), ty));
    }
    for (_, n) in g.nodes() {
        let ins: Vec<ValueId> = n.inputs.iter().map(|v| map[v.index()].unwrap()).collect();
        let outs = out
            .add_node(n.op.clone(), &ins, n.name.clone())
            .unwrap_or_else(|e| panic!("re-inferring at {dims:?}: {e}"));
        for (a, b) in n.outputs.iter().zip(outs) {
            map[a.index()] = Some(b);
        }
    }
    for p in g.outputs() {
        out.add_output(p.name.clone(), map[p.value.index()].unwrap());
    }
    out
}

/// The training graph's loss alone, pruned (a forward pass plus the loss).
pub fn loss_graph(t: &TrainGraph) -> (Graph, Vec<Option<ValueId>>) {
    let mut g = t.graph.clone();
    g.outputs_mut().truncate(1);
    train::prune(&g)
}

/// `g` (a loss graph) with every branch decision of its forward pass as extra outputs:
/// relu masks, max-pool argmax indices, max/min/clip comparisons, abs signs and every
/// bool or integer value a node computes. Where these agree at two points, the loss is
/// smooth between them (for the ops listed) and a finite difference is meaningful.
pub fn with_decisions(g: &Graph) -> Graph {
    let mut d = g.clone();
    let nodes: Vec<(tessera::ir::NodeId, tessera::ir::Node)> =
        g.nodes().map(|(id, n)| (id, n.clone())).collect();
    let mut k = 0;
    let mut out = |d: &mut Graph, v: ValueId| {
        d.add_output(format!("decision{k}"), v);
        k += 1;
    };
    for (_, n) in nodes {
        let zero = |d: &mut Graph, v: ValueId| {
            let t = Tensor::full(d.ty(v).dtype, Shape::scalar(), 0.0);
            d.add_constant(t, "zero")
        };
        match &n.op {
            Op::Unary(UnaryOp::Relu) => {
                let z = zero(&mut d, n.inputs[0]);
                let m = d
                    .add_node1(
                        Op::Binary(BinaryOp::Greater),
                        &[n.inputs[0], z],
                        "relu.mask",
                    )
                    .unwrap();
                out(&mut d, m);
            }
            Op::Unary(UnaryOp::Abs) => {
                let s = d
                    .add_node1(Op::Unary(UnaryOp::Sign), &n.inputs, "abs.sign")
                    .unwrap();
                out(&mut d, s);
            }
            Op::Pool {
                kind: PoolKind::Max { indices: false },
                attrs,
            } => {
                let p = d
                    .add_node(
                        Op::Pool {
                            kind: PoolKind::Max { indices: true },
                            attrs: attrs.clone(),
                        },
                        &n.inputs,
                        "pool.argmax",
                    )
                    .unwrap();
                out(&mut d, p[1]);
            }
            Op::Binary(BinaryOp::Max | BinaryOp::Min) => {
                let c = d
                    .add_node1(Op::Binary(BinaryOp::GreaterOrEqual), &n.inputs, "cmp")
                    .unwrap();
                out(&mut d, c);
            }
            Op::Clip { min, max } => {
                for (b, v) in [(BinaryOp::Less, *min), (BinaryOp::Greater, *max)] {
                    let t = Tensor::full(d.ty(n.inputs[0]).dtype, Shape::scalar(), v);
                    let c = d.add_constant(t, "bound");
                    let m = d
                        .add_node1(Op::Binary(b), &[n.inputs[0], c], "clip.side")
                        .unwrap();
                    out(&mut d, m);
                }
            }
            _ => {}
        }
        for &v in &n.outputs {
            if !d.ty(v).dtype.is_float() {
                out(&mut d, v);
            }
        }
    }
    d
}

/// The loss and the decision bits at one point.
fn evaluate(g: &Graph, inputs: &[Tensor]) -> (f64, Vec<Vec<u64>>) {
    let outs = run(g, inputs);
    let decisions = outs[1..]
        .iter()
        .map(|t| t.to_f64_vec().into_iter().map(f64::to_bits).collect())
        .collect();
    (outs[0].to_f64_vec()[0], decisions)
}

/// Where a checked coordinate lives.
#[derive(Clone, Copy, Debug)]
pub struct Coord {
    /// Index into `TrainGraph::grads`.
    pub grad: usize,
    pub element: usize,
}

/// Worst disagreement between analytic gradients and central differences
/// `(L(θ+ε) − L(θ−ε)) / 2ε` at `coords`, measured as `|fd − an| / (max(|fd|, |an|) +
/// floor)`. ε starts at `eps` and shrinks tenfold (at most four times) until every branch
/// decision of the forward pass is the same at θ−ε and θ+ε ([`with_decisions`]): across a
/// relu or max-pool kink a difference quotient measures nothing.
pub fn fd_error(
    t: &TrainGraph,
    inputs: &[Tensor],
    coords: &[Coord],
    eps: f64,
    floor: f64,
) -> (f64, String) {
    let analytic = run(&t.graph, inputs);
    let (lg, map) = loss_graph(t);
    let lg = with_decisions(&lg);
    let mut worst = (0.0, String::new());
    for c in coords {
        let gr = &t.grads[c.grad];
        let an = analytic[gr.output].to_f64_vec()[c.element];
        let Some(v) = gr.value else {
            assert_eq!(an, 0.0, "{} does not affect the loss", gr.name);
            continue;
        };
        let nv = map[v.index()].expect("a differentiated value is in the loss graph");
        let eval = |delta: f64| {
            let mut g = lg.clone();
            let mut ins = inputs.to_vec();
            if let Some(pos) = g.inputs().iter().position(|p| p.value == nv) {
                ins[pos] = bump(&ins[pos], c.element, delta);
            } else {
                let node = g.producer(nv).expect("a constant parameter");
                let Op::Constant(old) = &g.node(node).op else {
                    panic!("parameter {} is neither input nor constant", gr.name)
                };
                let new = bump(old, c.element, delta);
                g.node_mut(node).op = Op::Constant(new);
            }
            evaluate(&g, &ins)
        };
        let mut h = eps;
        let fd = loop {
            let ((up, du), (down, dd)) = (eval(h), eval(-h));
            if du == dd {
                break (up - down) / (2.0 * h);
            }
            assert!(
                h > eps * 1e-4,
                "{}[{}]: a branch decision flips within ±{h:e}; no smooth neighbourhood",
                gr.name,
                c.element
            );
            h /= 10.0;
        };
        let err = (fd - an).abs() / (fd.abs().max(an.abs()) + floor);
        if err > worst.0 || worst.1.is_empty() {
            worst = (
                err,
                format!(
                    "{}[{}]: analytic {an:e}, finite difference {fd:e} (ε = {h:e})",
                    gr.name, c.element
                ),
            );
        }
    }
    worst
}

fn bump(t: &Tensor, i: usize, delta: f64) -> Tensor {
    assert_eq!(t.dtype(), DType::F64, "finite differences run in f64");
    let mut v = t.to_f64_vec();
    v[i] += delta;
    Tensor::from_vec(t.shape().clone(), v).unwrap()
}

/// Differentiates `g` (whose one output is a scalar) with respect to every float graph
/// input, and checks every element by central differences.
pub fn check_all_inputs(name: &str, g: &Graph, inputs: &[Tensor]) {
    let names: Vec<String> = g
        .inputs()
        .iter()
        .filter(|p| g.ty(p.value).dtype.is_float())
        .map(|p| p.name.clone())
        .collect();
    let spec = TrainSpec {
        loss: Loss::Sum,
        output: None,
        params: ParamSelection::Patterns(vec![]),
        input_grads: names,
    };
    let t = train::autodiff(g, &spec).unwrap_or_else(|e| panic!("{name}: {e}"));
    tessera::ir::verify(&t.graph).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut coords = Vec::new();
    for (k, gr) in t.grads.iter().enumerate() {
        assert_eq!(gr.kind, GradKind::Input);
        let n = t.graph.ty(gr.grad).shape.numel();
        coords.extend((0..n).map(|element| Coord { grad: k, element }));
    }
    let (err, at) = fd_error(&t, inputs, &coords, 1e-6, 1e-3);
    assert!(
        err <= 1e-6,
        "{name}: gradient disagrees with finite differences by {err:e} at {at}\n{}",
        print(&t.graph)
    );
}
