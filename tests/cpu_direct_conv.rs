//! Depthwise and small-group convolutions on the compiled CPU backend, with the epilogues
//! that exporters put after them (bias, clip/relu, a residual add), against the reference
//! interpreter: every direct-convolution form (channel-blocked, row bands, planes) at
//! widths that leave tile remainders, strides 1 and 2, multipliers, batch 2, and
//! bit-identical results at one and two threads.

use tessera::ir::*;
use tessera::reference::run;
use tessera::sample::{compare, splitmix64_uniform};
use tessera::{Options, compile};

fn f32s(dims: &[usize]) -> TensorType {
    TensorType::new(DType::F32, Shape::from_dims(dims))
}

fn random(dims: &[usize], seed: u64) -> Tensor {
    splitmix64_uniform(DType::F32, Shape::from_dims(dims), seed, -1.0, 1.0)
}

/// The compiled backend at one and two threads against the reference interpreter, and the
/// same bits at both.
fn matches_reference_at_one_and_two_threads(g: &Graph, x: &Tensor, what: &str) {
    let want = run(g, std::slice::from_ref(x)).unwrap();
    let mut first: Option<Vec<u8>> = None;
    for threads in [1, 2] {
        let m = compile(
            g,
            Options {
                threads,
                ..Options::default()
            },
        )
        .unwrap();
        let got = m.run(std::slice::from_ref(x)).unwrap();
        let cmp = compare(&got[0], &want[0], 1e-5, 1.3e-6).unwrap();
        assert!(
            cmp.all_close,
            "{what}, {threads} threads: max abs {:.3e}",
            cmp.max_abs
        );
        let bits = got[0].to_le_bytes();
        match &first {
            None => first = Some(bits),
            Some(b) => assert_eq!(b, &bits, "{what}: the thread count changes bits"),
        }
    }
}

/// `relu6(conv(x, w) + b) (+ x)`: the MobileNet block tail.
fn block(n: usize, c: usize, mult: usize, hw: (usize, usize), k: usize, s: usize) -> Graph {
    let (h, w) = hw;
    let p = k / 2;
    let oc = c * mult;
    let mut g = Graph::new("dw");
    let x = g.add_input("x", f32s(&[n, c, h, w]));
    let wt = g.add_constant(random(&[oc, 1, k, k], 7 + k as u64), "w");
    let b = g.add_constant(random(&[oc], 11), "b");
    let y = g
        .add_node1(
            Op::Conv(ConvAttrs {
                strides: vec![s, s],
                pads: vec![p, p, p, p],
                dilations: vec![1, 1],
                group: c,
            }),
            &[x, wt, b],
            "conv",
        )
        .unwrap();
    let mut y = g
        .add_node1(Op::Clip { min: 0.0, max: 6.0 }, &[y], "clip")
        .unwrap();
    if s == 1 && mult == 1 {
        y = g
            .add_node1(Op::Binary(BinaryOp::Add), &[y, x], "residual")
            .unwrap();
    }
    g.add_output("y", y);
    g
}

#[test]
fn depthwise_blocks_match_the_reference_at_one_and_two_threads() {
    let mut cases = 0;
    for k in [3, 5, 7] {
        for s in [1, 2] {
            // (batch, channels, multiplier, height, width): a 7-wide plane (channel
            // blocked, a ragged block of 11), widths 17 and 40 (row bands with masked
            // remainders), a multiplier of 2, a plane larger than the band threshold.
            for (n, c, mult, h, w) in [
                (2, 11, 1, 7, 7),
                (2, 5, 1, 9, 17),
                (1, 3, 2, 12, 40),
                (1, 2, 1, 64, 70),
            ] {
                let g = block(n, c, mult, (h, w), k, s);
                let x = random(&[n, c, h, w], 3);
                let what = format!("k {k} s {s} {n}×{c}×{mult} {h}×{w}");
                matches_reference_at_one_and_two_threads(&g, &x, &what);
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 24);
}

/// An RGB stem (one group of three input channels, 16 or 20 output channels, stride 2),
/// which two threads split inside its one group: the reference, and the same bits at one
/// and two threads.
#[test]
fn rgb_stems_split_over_threads_match_the_reference() {
    for (oc, hw) in [(16, 64), (20, 33)] {
        let mut g = Graph::new("stem");
        let x = g.add_input("x", f32s(&[1, 3, hw, hw]));
        let wt = g.add_constant(random(&[oc, 3, 3, 3], 5), "w");
        let b = g.add_constant(random(&[oc], 6), "b");
        let y = g
            .add_node1(
                Op::Conv(ConvAttrs {
                    strides: vec![2, 2],
                    pads: vec![1, 1, 1, 1],
                    dilations: vec![1, 1],
                    group: 1,
                }),
                &[x, wt, b],
                "stem",
            )
            .unwrap();
        let y = g.add_node1(Op::Unary(UnaryOp::Relu), &[y], "relu").unwrap();
        g.add_output("y", y);
        let x = random(&[1, 3, hw, hw], 9);
        matches_reference_at_one_and_two_threads(&g, &x, &format!("{oc} channels, {hw}²"));
    }
}
