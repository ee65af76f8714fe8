//! Benchmark graphs for the training passes, built through the IR API: uniform chains
//! (the checkpointing targets are stated on them), a transformer MLP block (the min-cut
//! target) and a BERT encoder layer (the B/W-split target).
//!
//! Weights are either constants with deterministic pseudo-random values (so the graphs run
//! and gradients can be checked) or graph inputs (for shape-only analysis of large models,
//! where materializing the weights would only cost memory).
//!
//! These builders are for benchmarks and tests: they panic if a size exceeds the IR's
//! limits ([`tessera_ir::MAX_ELEMENTS`]) rather than returning an error.

use tessera_ir::{
    BinaryOp, DType, GeluApprox, Graph, Op, Shape, Tensor, TensorType, UnaryOp, ValueId,
};

/// How a model's weights appear in the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// Constants, uniform in `±1/√fan_in`, from this seed.
    Random(u64),
    /// Graph inputs (named like the constants would be).
    Inputs,
}

struct Builder {
    g: Graph,
    dtype: DType,
    weights: Weights,
    counter: u64,
}

impl Builder {
    fn new(name: &str, dtype: DType, weights: Weights) -> Builder {
        Builder {
            g: Graph::new(name),
            dtype,
            weights,
            counter: 0,
        }
    }

    fn ty(&self, dims: &[usize]) -> TensorType {
        TensorType::new(self.dtype, Shape::from_dims(dims))
    }

    fn weight(&mut self, name: &str, dims: &[usize], fan_in: usize) -> ValueId {
        match self.weights {
            Weights::Inputs => self.g.add_input(name, self.ty(dims)),
            Weights::Random(seed) => {
                self.counter += 1;
                let n: usize = dims.iter().product();
                let a = 1.0 / (fan_in.max(1) as f64).sqrt();
                let mut state = seed ^ self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let v: Vec<f64> = (0..n)
                    .map(|_| {
                        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                        let mut z = state;
                        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                        z ^= z >> 31;
                        let u = (z >> 11) as f64 / (1u64 << 53) as f64;
                        a * (2.0 * u - 1.0)
                    })
                    .collect();
                let t = Tensor::from_vec(Shape::from_dims(dims), v)
                    .expect("invariant: one value per element")
                    .cast(self.dtype);
                self.g.add_constant(t, name)
            }
        }
    }

    fn ones(&mut self, name: &str, dims: &[usize], value: f64) -> ValueId {
        match self.weights {
            Weights::Inputs => self.g.add_input(name, self.ty(dims)),
            Weights::Random(_) => self.g.add_constant(
                Tensor::full(self.dtype, Shape::from_dims(dims), value),
                name,
            ),
        }
    }

    fn node(&mut self, op: Op, inputs: &[ValueId], name: &str) -> ValueId {
        self.g
            .add_node1(op, inputs, name)
            .expect("invariant: benchmark models are well typed")
    }

    fn reshape(&mut self, x: ValueId, dims: &[usize], name: &str) -> ValueId {
        self.node(
            Op::Reshape {
                shape: Shape::from_dims(dims),
            },
            &[x],
            name,
        )
    }
}

/// `a_i = tanh(a_{i−1} · W_i)`, `n` layers on `x: [batch, width]`; output `y = a_n`.
/// Layer `i`'s nodes are `fc{i}` and `act{i}`, its weight `w{i}`.
pub fn mlp_chain(n: usize, batch: usize, width: usize, dtype: DType, weights: Weights) -> Graph {
    let mut b = Builder::new(&format!("mlp{n}"), dtype, weights);
    let mut a = b.g.add_input("x", b.ty(&[batch, width]));
    for i in 1..=n {
        let w = b.weight(&format!("w{i}"), &[width, width], width);
        let h = b.node(Op::MatMul, &[a, w], &format!("fc{i}"));
        a = b.node(Op::Unary(UnaryOp::Tanh), &[h], &format!("act{i}"));
    }
    b.g.add_output("y", a);
    b.g
}

/// `x_{i+1} = x_i + relu(x_i · W_i)`, `n` residual layers on `x: [batch, width]`.
pub fn residual_chain(
    n: usize,
    batch: usize,
    width: usize,
    dtype: DType,
    weights: Weights,
) -> Graph {
    let mut b = Builder::new(&format!("residual{n}"), dtype, weights);
    let mut x = b.g.add_input("x", b.ty(&[batch, width]));
    for i in 1..=n {
        let w = b.weight(&format!("w{i}"), &[width, width], width);
        let h = b.node(Op::MatMul, &[x, w], &format!("fc{i}"));
        let r = b.node(Op::Unary(UnaryOp::Relu), &[h], &format!("relu{i}"));
        x = b.node(Op::Binary(BinaryOp::Add), &[x, r], &format!("res{i}"));
    }
    b.g.add_output("y", x);
    b.g
}

/// A pre-norm transformer MLP block on `x: [tokens, d]`:
/// `y = x + (gelu(LN(x)·W1 + b1)·W2 + b2)`.
pub fn transformer_mlp_block(
    tokens: usize,
    d: usize,
    d_ff: usize,
    dtype: DType,
    weights: Weights,
) -> Graph {
    let mut b = Builder::new("mlp_block", dtype, weights);
    let x = b.g.add_input("x", b.ty(&[tokens, d]));
    let gamma = b.ones("ln.gamma", &[d], 1.0);
    let beta = b.ones("ln.beta", &[d], 0.0);
    let ln = b.node(
        Op::LayerNorm {
            axis: 1,
            epsilon: 1e-5,
            stats: false,
        },
        &[x, gamma, beta],
        "ln",
    );
    let w1 = b.weight("fc1.w", &[d, d_ff], d);
    let b1 = b.weight("fc1.b", &[d_ff], d);
    let h1 = b.node(Op::MatMul, &[ln, w1], "fc1");
    let h2 = b.node(Op::Binary(BinaryOp::Add), &[h1, b1], "fc1.bias");
    let h3 = b.node(
        Op::Gelu {
            approximate: GeluApprox::None,
        },
        &[h2],
        "gelu",
    );
    let w2 = b.weight("fc2.w", &[d_ff, d], d_ff);
    let b2 = b.weight("fc2.b", &[d], d_ff);
    let h4 = b.node(Op::MatMul, &[h3, w2], "fc2");
    let h5 = b.node(Op::Binary(BinaryOp::Add), &[h4, b2], "fc2.bias");
    let y = b.node(Op::Binary(BinaryOp::Add), &[x, h5], "residual");
    b.g.add_output("y", y);
    b.g
}

/// A post-norm BERT encoder layer on `x: [batch, seq, heads·head_dim]`: fused QKV
/// projection, scaled-dot-product attention, output projection, residual + layer norm,
/// GELU feed-forward of width `ffn`, residual + layer norm.
pub fn bert_layer(
    batch: usize,
    seq: usize,
    heads: usize,
    head_dim: usize,
    ffn: usize,
    dtype: DType,
    weights: Weights,
) -> Graph {
    let h = heads * head_dim;
    let mut b = Builder::new("bert_layer", dtype, weights);
    let x = b.g.add_input("x", b.ty(&[batch, seq, h]));
    let wqkv = b.weight("qkv.w", &[h, 3 * h], h);
    let bqkv = b.weight("qkv.b", &[3 * h], h);
    let qkv0 = b.node(Op::MatMul, &[x, wqkv], "qkv");
    let qkv = b.node(Op::Binary(BinaryOp::Add), &[qkv0, bqkv], "qkv.bias");
    let parts =
        b.g.add_node(
            Op::Split {
                axis: 2,
                sizes: vec![h; 3],
            },
            &[qkv],
            "qkv.split",
        )
        .expect("invariant: benchmark models are well typed");
    let heads_of = |b: &mut Builder, v: ValueId, name: &str| {
        let r = b.reshape(v, &[batch, seq, heads, head_dim], &format!("{name}.heads"));
        b.node(
            Op::Transpose {
                perm: vec![0, 2, 1, 3],
            },
            &[r],
            &format!("{name}.t"),
        )
    };
    let q = heads_of(&mut b, parts[0], "q");
    let k = heads_of(&mut b, parts[1], "k");
    let v = heads_of(&mut b, parts[2], "v");
    let kt = b.node(
        Op::Transpose {
            perm: vec![0, 1, 3, 2],
        },
        &[k],
        "k.tt",
    );
    let s0 = b.node(Op::MatMul, &[q, kt], "scores");
    let scale = b.g.add_constant(
        Tensor::full(dtype, Shape::scalar(), 1.0 / (head_dim as f64).sqrt()),
        "scale",
    );
    let s = b.node(Op::Binary(BinaryOp::Mul), &[s0, scale], "scores.scale");
    let p = b.node(Op::Softmax { axis: 3 }, &[s], "probs");
    let ctx = b.node(Op::MatMul, &[p, v], "context");
    let ct = b.node(
        Op::Transpose {
            perm: vec![0, 2, 1, 3],
        },
        &[ctx],
        "context.t",
    );
    let cm = b.reshape(ct, &[batch, seq, h], "context.merge");
    let wo = b.weight("out.w", &[h, h], h);
    let bo = b.weight("out.b", &[h], h);
    let o0 = b.node(Op::MatMul, &[cm, wo], "out");
    let o = b.node(Op::Binary(BinaryOp::Add), &[o0, bo], "out.bias");
    let r1 = b.node(Op::Binary(BinaryOp::Add), &[o, x], "residual1");
    let g1 = b.ones("ln1.gamma", &[h], 1.0);
    let be1 = b.ones("ln1.beta", &[h], 0.0);
    let ln = |axis| Op::LayerNorm {
        axis,
        epsilon: 1e-12,
        stats: false,
    };
    let l1 = b.node(ln(2), &[r1, g1, be1], "ln1");
    let w1 = b.weight("ffn1.w", &[h, ffn], h);
    let b1 = b.weight("ffn1.b", &[ffn], h);
    let f0 = b.node(Op::MatMul, &[l1, w1], "ffn1");
    let f1 = b.node(Op::Binary(BinaryOp::Add), &[f0, b1], "ffn1.bias");
    let f2 = b.node(
        Op::Gelu {
            approximate: GeluApprox::None,
        },
        &[f1],
        "gelu",
    );
    let w2 = b.weight("ffn2.w", &[ffn, h], ffn);
    let b2 = b.weight("ffn2.b", &[h], ffn);
    let f3 = b.node(Op::MatMul, &[f2, w2], "ffn2");
    let f4 = b.node(Op::Binary(BinaryOp::Add), &[f3, b2], "ffn2.bias");
    let r2 = b.node(Op::Binary(BinaryOp::Add), &[f4, l1], "residual2");
    let g2 = b.ones("ln2.gamma", &[h], 1.0);
    let be2 = b.ones("ln2.beta", &[h], 0.0);
    let y = b.node(ln(2), &[r2, g2, be2], "ln2");
    b.g.add_output("y", y);
    b.g
}
