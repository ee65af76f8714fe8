//! Two-stage backprop: B/W partition invariants, bitwise-equal gradients after the
//! reorder, the BERT-large layer's FLOP ratios and stash, and the memory price of
//! deferring W.

mod train_support;

use std::collections::HashSet;

use tessera::ir::{DType, Graph, NodeId, Op, Tensor};
use tessera::passes::train::models::{self, Weights};
use tessera::passes::train::pipeline::{self, Kind, StageCosts};
use tessera::passes::train::split::{self, Partition};
use tessera::passes::train::{self, Loss, ParamSelection, TrainGraph, TrainSpec};
use train_support::{run, uniform};

fn train(g: &Graph, params: &[&str], loss: Loss) -> TrainGraph {
    let spec = TrainSpec {
        loss,
        output: None,
        params: ParamSelection::Patterns(params.iter().map(|s| s.to_string()).collect()),
        input_grads: vec!["x".into()],
    };
    train::autodiff(g, &spec).unwrap()
}

/// Backward nodes some input gradient depends on, found independently of `split`.
fn input_grad_ancestors(g: &Graph, boundary: usize) -> HashSet<NodeId> {
    let mut seen = HashSet::new();
    let mut stack: Vec<_> = g
        .outputs()
        .iter()
        .filter(|p| p.name.starts_with("input_grad:"))
        .map(|p| p.value)
        .collect();
    while let Some(v) = stack.pop() {
        if let Some(n) = g.producer(v)
            && n.index() >= boundary
            && seen.insert(n)
        {
            stack.extend(g.node(n).inputs.iter().copied());
        }
    }
    seen
}

fn check_partition(name: &str, t: &TrainGraph) -> Partition {
    let g = &t.graph;
    let p = split::partition(g, t.boundary);
    let b: HashSet<NodeId> = p.b.iter().copied().collect();
    let w: HashSet<NodeId> = p.w.iter().copied().collect();
    assert!(b.is_disjoint(&w), "{name}: B and W overlap");
    let backward: HashSet<NodeId> = g.nodes().skip(t.boundary).map(|(id, _)| id).collect();
    let union: HashSet<NodeId> = b.union(&w).copied().collect();
    assert_eq!(union, backward, "{name}: B ∪ W is not the backward region");
    let anc = input_grad_ancestors(g, t.boundary);
    assert!(
        anc.is_disjoint(&w),
        "{name}: a W node feeds an input gradient"
    );
    assert_eq!(
        anc, b,
        "{name}: B is not exactly the input-gradient ancestors"
    );
    p
}

#[test]
fn partitions_are_exact_and_reordering_keeps_gradients_bitwise() {
    let cases = [
        (
            "mlp",
            models::mlp_chain(6, 3, 4, DType::F64, Weights::Random(5)),
            vec!["w*"],
        ),
        (
            "mlp_block",
            models::transformer_mlp_block(5, 4, 8, DType::F64, Weights::Random(6)),
            vec!["fc*", "ln.*"],
        ),
        (
            "bert_layer",
            models::bert_layer(2, 3, 2, 2, 8, DType::F64, Weights::Random(7)),
            vec!["*.w", "*.b", "ln*"],
        ),
    ];
    for (name, g, params) in cases {
        let t = train(&g, &params, Loss::Mse);
        let p = check_partition(name, &t);
        assert!(
            !p.b.is_empty() && !p.w.is_empty(),
            "{name}: degenerate split"
        );
        assert!(
            !p.split_ops.is_empty(),
            "{name}: no op was split into B and W"
        );
        let reordered = split::reorder(&t.graph, &p);
        tessera::ir::verify(&reordered).unwrap();
        let inputs: Vec<Tensor> = t
            .graph
            .inputs()
            .iter()
            .enumerate()
            .map(|(k, port)| {
                uniform(
                    t.graph.ty(port.value).shape.dims(),
                    -1.0,
                    1.0,
                    40 + k as u64,
                )
            })
            .collect();
        let before = run(&t.graph, &inputs);
        let after = run(&reordered, &inputs);
        for (a, b) in before.iter().zip(&after) {
            let bits = |t: &Tensor| {
                t.to_f64_vec()
                    .into_iter()
                    .map(f64::to_bits)
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(a), bits(b), "{name}: reordering changed a result");
        }
        // In the reordered graph every W node comes after every B node.
        let p2 = split::partition(&reordered, t.boundary);
        let last_b = p2.b.iter().map(|id| id.index()).max().unwrap();
        let first_w = p2.w.iter().map(|id| id.index()).min().unwrap();
        assert!(
            last_b < first_w,
            "{name}: W interleaved with B after reordering"
        );
    }
}

#[test]
fn without_input_gradients_everything_is_deferrable() {
    let g = models::mlp_chain(3, 2, 2, DType::F32, Weights::Random(1));
    let spec = TrainSpec::new(Loss::Sum);
    let t = train::autodiff(&g, &spec).unwrap();
    let p = split::partition(&t.graph, t.boundary);
    assert!(p.b.is_empty());
    assert_eq!(p.w.len(), t.graph.num_nodes() - t.boundary);
    assert_eq!(p.input_grads, 0);
}

#[test]
fn bert_large_layer_splits_into_dx_and_the_four_weight_gemms() {
    // BERT-large: batch 8, sequence 512, 16 heads of 64, FFN 4096, fp16.
    let g = models::bert_layer(8, 512, 16, 64, 4096, DType::F16, Weights::Inputs);
    let t = train(&g, &["*.w", "*.b", "ln*"], Loss::Sum);
    let p = split::partition(&t.graph, t.boundary);
    let contractions = |ids: &[NodeId]| {
        ids.iter()
            .filter(|&&id| matches!(t.graph.node(id).op, Op::MatMul))
            .count()
    };
    assert_eq!(
        contractions(&p.w),
        4,
        "W holds exactly the QKV, out, FFN1, FFN2 weight GEMMs"
    );
    let f = p.forward_flops as f64;
    let (bf, wf) = (p.b_flops as f64 / f, p.w_flops as f64 / f);
    assert!((1.0..=1.2).contains(&bf), "B/F = {bf:.3}");
    assert!((0.8..=1.0).contains(&wf), "W/F = {wf:.3}");
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let (labels_b, labels_w) = split::labels(&t.graph, &p);
    let stash: Vec<String> = p
        .stash
        .iter()
        .map(|&v| {
            let n = t.graph.producer(v).unwrap();
            format!("{} {}", t.graph.node(n).name, t.graph.ty(v))
        })
        .collect();
    insta::assert_snapshot!(
        "bert_large_layer_partition",
        format!(
            "F = {} GFLOP, B = {} GFLOP (B/F = {bf:.3}), W = {} GFLOP (W/F = {wf:.3})\n\
             B→W stash: {:.1} MiB in {} tensors\n{}\n\
             split ops: {}\nB labels: {}\nW labels: {}\n",
            p.forward_flops / 1_000_000_000,
            p.b_flops / 1_000_000_000,
            p.w_flops / 1_000_000_000,
            mib(p.stash_bytes),
            p.stash.len(),
            stash.join("\n"),
            p.split_ops.join(", "),
            labels_b.join(", "),
            labels_w.join(", "),
        )
    );
}

#[test]
fn deferring_w_holds_one_stash_per_deferred_microbatch() {
    // One stage: W right after B holds one microbatch's activations at a time; deferring
    // every W to the end holds all m stashes at once.
    let costs = StageCosts {
        f: 3,
        b: 3,
        w: 2,
        activation_bytes: 1000,
        stash_bytes: 400,
    };
    for m in [1, 4, 8] {
        let now = pipeline::simulate(Kind::OneFOneBSplit, 1, m, costs).unwrap();
        let deferred = pipeline::simulate(Kind::OneFOneB2bp, 1, m, costs).unwrap();
        assert_eq!(now.peak_bytes, vec![1000]);
        let expect = (costs.activation_bytes + (m as u64 - 1) * costs.stash_bytes)
            .max(m as u64 * costs.stash_bytes);
        assert_eq!(deferred.peak_bytes, vec![expect], "m={m}");
        assert_eq!(deferred.peak_in_flight, vec![m]);
    }
}
