//! Checkpointing targets on the chain benchmarks, bitwise equality of checkpointed and
//! store-all gradients, and the min-cut policy against brute force.

mod train_support;

use std::collections::HashSet;

use tessera::ir::{DType, Graph, Op, Shape, Tensor, TensorType, UnaryOp, ValueId};
use tessera::passes::train::checkpoint::{self, Policy, banned_from_recompute, min_cut};
use tessera::passes::train::models::{self, Weights};
use tessera::passes::train::schedule::{arena, is_resident, peak_count, value_bytes};
use tessera::passes::train::{self, Loss, ParamSelection, TrainGraph, TrainSpec, revolve};
use tessera::sample::SplitMix64;
use train_support::{run, uniform};

fn train_chain(g: &Graph) -> TrainGraph {
    let spec = TrainSpec {
        loss: Loss::Sum,
        output: None,
        params: ParamSelection::Patterns(vec!["w*".into()]),
        input_grads: vec![],
    };
    train::autodiff(g, &spec).unwrap()
}

/// Bytes of one layer's saved activations: store-all saved bytes over the layer count.
fn layer_unit(t: &TrainGraph, n: usize) -> f64 {
    let p = checkpoint::plan(&t.graph, t.boundary, Policy::StoreAll).unwrap();
    p.saved_bytes as f64 / n as f64
}

#[test]
fn sqrt_peak_is_within_2_sqrt_n_plus_3_layers_with_at_most_one_extra_forward() {
    for n in [16, 64, 256, 1024] {
        for (kind, g) in [
            (
                "mlp",
                models::mlp_chain(n, 8, 8, DType::F32, Weights::Inputs),
            ),
            (
                "residual",
                models::residual_chain(n, 8, 8, DType::F32, Weights::Inputs),
            ),
        ] {
            let t = train_chain(&g);
            let unit = layer_unit(&t, n);
            let all = checkpoint::plan(&t.graph, t.boundary, Policy::StoreAll).unwrap();
            let p = checkpoint::plan(&t.graph, t.boundary, Policy::Sqrt).unwrap();
            let units = p.memory.peak_bytes as f64 / unit;
            let bound = 2.0 * (n as f64).sqrt() + 3.0;
            assert!(
                units <= bound,
                "{kind} n={n}: sqrt peak {units:.2} layer units exceeds 2√n+3 = {bound:.2}"
            );
            assert!(
                p.recompute_flops <= p.forward_flops,
                "{kind} n={n}: recompute {} FLOPs exceeds one forward ({})",
                p.recompute_flops,
                p.forward_flops
            );
            assert!(p.memory.peak_bytes < all.memory.peak_bytes);
        }
    }
}

/// Layers recomputed and states held, measured on the schedule of a plan for the tanh
/// chain (states = outputs of the `act*` nodes).
fn chain_cost(t: &TrainGraph, p: &checkpoint::CheckpointPlan) -> (u64, usize) {
    let g = &t.graph;
    let is_state = |v: ValueId| {
        g.producer(v)
            .is_some_and(|n| matches!(g.node(n).op, Op::Unary(UnaryOp::Tanh)))
    };
    let recomputed = p
        .schedule
        .steps
        .iter()
        .filter(|s| s.recompute && matches!(g.node(s.node).op, Op::Unary(UnaryOp::Tanh)))
        .count() as u64;
    (recomputed, peak_count(g, &p.schedule, is_state))
}

#[test]
fn budget_mode_is_within_1_2x_of_the_revolve_optimum() {
    for n in [8, 16, 32, 64, 100] {
        let g = models::mlp_chain(n, 8, 8, DType::F32, Weights::Inputs);
        let t = train_chain(&g);
        let unit = layer_unit(&t, n) as u64;
        let sqrt = checkpoint::plan(&t.graph, t.boundary, Policy::Sqrt).unwrap();
        let all = checkpoint::plan(&t.graph, t.boundary, Policy::StoreAll).unwrap();
        let mut budget = sqrt.memory.peak_bytes;
        let mut checked = 0;
        while budget <= all.memory.peak_bytes {
            let p = checkpoint::plan(&t.graph, t.boundary, Policy::Budget(budget)).unwrap();
            assert!(p.memory.peak_bytes <= budget);
            let (recomputed, slots) = chain_cost(&t, &p);
            let opt = revolve::optimal_recompute(n, slots).unwrap();
            assert!(
                recomputed as f64 <= 1.2 * opt as f64,
                "n={n} budget={budget}: {recomputed} recomputed layers holding {slots} states; optimum {opt}"
            );
            checked += 1;
            // Every layer step for short chains; the bench sweeps every step for all n.
            budget += if n >= 64 { 4 * unit } else { unit };
        }
        assert!(checked >= 2, "n={n}: only {checked} budgets checked");
    }
}

#[test]
fn budget_below_the_reachable_peak_is_an_error_that_says_so() {
    let g = models::mlp_chain(16, 8, 8, DType::F32, Weights::Inputs);
    let t = train_chain(&g);
    let err = checkpoint::plan(&t.graph, t.boundary, Policy::Budget(1000)).unwrap_err();
    assert!(
        err.to_string()
            .contains("no checkpoint plan fits a budget of 1000 bytes"),
        "{err}"
    );
}

fn run_policy(t: &TrainGraph, policy: Policy, inputs: &[Tensor]) -> Vec<Tensor> {
    let p = checkpoint::plan(&t.graph, t.boundary, policy).unwrap();
    let g = p.schedule.to_graph(&t.graph);
    tessera::ir::verify(&g).unwrap();
    run(&g, inputs)
}

fn bits(ts: &[Tensor]) -> Vec<Vec<u64>> {
    ts.iter()
        .map(|t| t.to_f64_vec().into_iter().map(f64::to_bits).collect())
        .collect()
}

#[test]
fn checkpointed_gradients_are_bitwise_equal_to_store_all() {
    for (kind, g) in [
        (
            "mlp",
            models::mlp_chain(24, 4, 6, DType::F64, Weights::Random(1)),
        ),
        (
            "residual",
            models::residual_chain(24, 4, 6, DType::F64, Weights::Random(2)),
        ),
        (
            "mlp_block",
            models::transformer_mlp_block(6, 4, 8, DType::F64, Weights::Random(3)),
        ),
    ] {
        let spec = TrainSpec {
            loss: Loss::Mse,
            output: None,
            params: ParamSelection::FloatConstants,
            input_grads: vec!["x".into()],
        };
        let t = train::autodiff(&g, &spec).unwrap();
        let inputs: Vec<Tensor> = t
            .graph
            .inputs()
            .iter()
            .enumerate()
            .map(|(k, p)| uniform(t.graph.ty(p.value).shape.dims(), -1.0, 1.0, 10 + k as u64))
            .collect();
        let reference = run(&t.graph, &inputs);
        let store_all = run_policy(&t, Policy::StoreAll, &inputs);
        assert_eq!(bits(&store_all), bits(&reference), "{kind}");
        for policy in [Policy::Sqrt, Policy::MinCut, Policy::Budget(u64::MAX)] {
            let out = run_policy(&t, policy, &inputs);
            assert_eq!(bits(&out), bits(&reference), "{kind} {}", policy.name());
        }
        let sqrt = checkpoint::plan(&t.graph, t.boundary, Policy::Sqrt).unwrap();
        if kind != "mlp_block" {
            assert!(sqrt.recompute_nodes > 0, "{kind}: sqrt recomputes nothing");
        }
    }
}

/// Saved bytes that are not parameters or inputs.
fn activation_bytes(g: &Graph, saved: &[ValueId]) -> u64 {
    saved.iter().map(|&v| value_bytes(g, v)).sum()
}

#[test]
fn min_cut_halves_the_transformer_mlp_block_saved_activations_without_recomputing_matmuls() {
    // T = 4096 tokens, d = 1024, d_ff = 4096, fp16.
    let g = models::transformer_mlp_block(4096, 1024, 4096, DType::F16, Weights::Inputs);
    let spec = TrainSpec {
        loss: Loss::Sum,
        output: None,
        params: ParamSelection::Patterns(vec!["fc*".into(), "ln.*".into()]),
        input_grads: vec![],
    };
    let t = train::autodiff(&g, &spec).unwrap();
    let all = checkpoint::plan(&t.graph, t.boundary, Policy::StoreAll).unwrap();
    let cut = checkpoint::plan(&t.graph, t.boundary, Policy::MinCut).unwrap();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let (before, after) = (
        activation_bytes(&t.graph, &all.saved),
        activation_bytes(&t.graph, &cut.saved),
    );
    assert_eq!(mib(before), 72.0, "store-all saves ln, fc1 + bias, gelu");
    assert!(mib(after) <= 32.0, "min-cut saves {} MiB", mib(after));
    assert!(after * 2 <= before);
    for s in &cut.schedule.steps {
        if s.recompute {
            let op = &t.graph.node(s.node).op;
            assert!(
                !banned_from_recompute(op),
                "min-cut recomputes {}",
                op.name()
            );
        }
    }
    assert!(cut.recompute_nodes > 0);
}

/// A random DAG of 1-d values: tanh, concat, slice and (banned) matmul by a constant.
fn random_dag(seed: u64, n: usize) -> (Graph, Vec<ValueId>) {
    let mut r = SplitMix64::new(seed);
    let mut pick = |k: usize| (r.next_u64() % k as u64) as usize;
    let mut g = Graph::new("dag");
    let x = g.add_input("x", TensorType::new(DType::F32, Shape::from_dims(&[3])));
    let mut vals = vec![x];
    for i in 0..n {
        let a = vals[pick(vals.len())];
        let len = g.ty(a).shape.dims()[0];
        let op_kind = pick(4);
        let v = match op_kind {
            0 => g.add_node1(Op::Unary(UnaryOp::Tanh), &[a], format!("t{i}")),
            1 => {
                let b = vals[pick(vals.len())];
                g.add_node1(Op::Concat { axis: 0 }, &[a, b], format!("c{i}"))
            }
            2 => {
                let end = 1 + pick(len) as i64;
                g.add_node1(
                    Op::Slice {
                        axes: vec![0],
                        starts: vec![0],
                        ends: vec![end],
                        steps: vec![1],
                    },
                    &[a],
                    format!("s{i}"),
                )
            }
            _ => {
                let m = 1 + pick(5);
                let w = g.add_constant(
                    Tensor::full(DType::F32, Shape::from_dims(&[len, m]), 0.5),
                    format!("w{i}"),
                );
                g.add_node1(Op::MatMul, &[a, w], format!("m{i}"))
            }
        }
        .unwrap();
        vals.push(v);
    }
    let out = *vals.last().unwrap();
    g.add_output("y", out);
    let candidates: Vec<ValueId> = g
        .nodes()
        .filter(|(_, n)| !matches!(n.op, Op::Constant(_)))
        .map(|(_, n)| n.outputs[0])
        .collect();
    (g, candidates)
}

#[test]
fn min_cut_equals_brute_force_on_random_dags() {
    for seed in 0..40 {
        let n = 4 + (seed as usize % 9);
        let (g, values) = random_dag(seed, n);
        let mut r = SplitMix64::new(seed + 1000);
        let needed: Vec<ValueId> = values
            .iter()
            .copied()
            .filter(|_| r.next_u64().is_multiple_of(3))
            .collect();
        let banned = |v: ValueId| {
            g.producer(v)
                .is_some_and(|n| banned_from_recompute(&g.node(n).op))
        };
        let cut = min_cut(&g, &values, &needed, banned).unwrap();
        let cut_bytes: u64 = cut.iter().map(|&v| value_bytes(&g, v)).sum();
        let feasible = |saved: &HashSet<ValueId>| {
            // Recomputable: saved, resident, or not banned with recomputable inputs.
            let mut ok: Vec<bool> = vec![false; g.num_values()];
            for p in g.inputs() {
                ok[p.value.index()] = true;
            }
            for (_, node) in g.nodes() {
                for &o in &node.outputs {
                    ok[o.index()] = saved.contains(&o)
                        || is_resident(&g, o)
                        || (!banned(o) && node.inputs.iter().all(|u| ok[u.index()]));
                }
            }
            needed.iter().all(|v| ok[v.index()])
        };
        assert!(
            feasible(&cut.iter().copied().collect()),
            "seed {seed}: infeasible cut"
        );
        let mut best = u64::MAX;
        for mask in 0u32..(1 << values.len()) {
            let s: HashSet<ValueId> = values
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, &v)| v)
                .collect();
            let bytes: u64 = s.iter().map(|&v| value_bytes(&g, v)).sum();
            if bytes < best && feasible(&s) {
                best = bytes;
            }
        }
        assert_eq!(
            cut_bytes, best,
            "seed {seed}: min-cut {cut_bytes} vs brute force {best}"
        );
    }
}

#[test]
fn policies_parse_and_reject_garbage() {
    assert_eq!(Policy::parse("sqrt"), Ok(Policy::Sqrt));
    assert_eq!(Policy::parse("budget=64M"), Ok(Policy::Budget(64 << 20)));
    assert_eq!(Policy::parse("budget=1000"), Ok(Policy::Budget(1000)));
    assert!(
        Policy::parse("budget=lots")
            .unwrap_err()
            .contains("not a byte count")
    );
    assert!(
        Policy::parse("magic")
            .unwrap_err()
            .contains("unknown checkpoint policy")
    );
}

#[test]
fn simulated_peak_equals_the_memory_planners_liveness_bound() {
    let g = models::residual_chain(32, 4, 8, DType::F32, Weights::Inputs);
    let t = train_chain(&g);
    for policy in [Policy::StoreAll, Policy::Sqrt, Policy::MinCut] {
        let p = checkpoint::plan(&t.graph, t.boundary, policy).unwrap();
        let a = arena(&t.graph, &p.schedule);
        assert_eq!(
            a.lower_bound_bytes as u64,
            p.memory.peak_bytes,
            "{}",
            policy.name()
        );
        assert!(a.peak_bytes as u64 >= p.memory.peak_bytes);
    }
}

#[test]
fn sqrt_segments_a_chain_whose_layers_all_read_one_side_input() {
    // a_i = tanh(a_{i-1}·W_i + s) with s = relu(x) computed once and as large as a layer:
    // no cut has a single live value, but s outlives every layer and is carried.
    let n = 64;
    let mut g = Graph::new("side");
    let ty = TensorType::new(DType::F32, Shape::from_dims(&[8, 8]));
    let x = g.add_input("x", ty.clone());
    let side = g.add_node1(Op::Unary(UnaryOp::Relu), &[x], "side").unwrap();
    let mut a = x;
    for i in 1..=n {
        let w = g.add_input(format!("w{i}"), ty.clone());
        let h = g.add_node1(Op::MatMul, &[a, w], format!("fc{i}")).unwrap();
        let hs = g
            .add_node1(
                Op::Binary(tessera::ir::BinaryOp::Add),
                &[h, side],
                format!("add{i}"),
            )
            .unwrap();
        a = g
            .add_node1(Op::Unary(UnaryOp::Tanh), &[hs], format!("act{i}"))
            .unwrap();
    }
    g.add_output("y", a);
    let t = train_chain(&g);
    let unit = layer_unit(&t, n);
    let p = checkpoint::plan(&t.graph, t.boundary, Policy::Sqrt).unwrap();
    let units = p.memory.peak_bytes as f64 / unit;
    assert!(
        units <= 2.0 * (n as f64).sqrt() + 3.0,
        "{units:.2} layer units"
    );
    assert!(p.recompute_flops <= p.forward_flops);
}
