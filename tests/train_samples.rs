//! Training graphs of the bundled GraphNet models: the tiny BERT (parameters are
//! initializers) and resnet18 (parameters are graph inputs), cast to f64, checked against
//! central finite differences on a handful of coordinates each.

mod train_support;

use std::collections::HashMap;
use std::path::Path;

use tessera::ir::{DType, Graph, Tensor};
use tessera::passes::train::{self, Loss, ParamSelection, TrainGraph, TrainSpec};
use tessera::sample::{Sample, SplitMix64};
use train_support::{Coord, fd_error, i64_tensor, run, uniform, with_input_shape};

fn load(name: &str) -> (Graph, Vec<Tensor>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name);
    let s = Sample::open(&dir).unwrap();
    let g = tessera::load_onnx(&s.model_path(), HashMap::new()).unwrap();
    let g = train::cast_floats(&g, DType::F32, DType::F64).unwrap();
    let inputs = s
        .inputs()
        .unwrap()
        .into_iter()
        .map(|t| {
            if t.dtype() == DType::F32 {
                t.cast(DType::F64)
            } else {
                t
            }
        })
        .collect();
    (g, inputs)
}

/// For `count` parameters picked at random: the element with the largest analytic
/// gradient (so the check is not vacuous), plus one random element each.
fn coordinates(t: &TrainGraph, analytic: &[Tensor], count: usize, seed: u64) -> Vec<Coord> {
    let mut r = SplitMix64::new(seed);
    let mut picked: Vec<usize> = (0..t.grads.len()).collect();
    // Fisher–Yates, then keep `count`.
    for i in (1..picked.len()).rev() {
        picked.swap(i, (r.next_u64() % (i as u64 + 1)) as usize);
    }
    picked.truncate(count);
    let mut coords = Vec::new();
    for k in picked {
        let v = analytic[t.grads[k].output].to_f64_vec();
        let best = (0..v.len())
            .max_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs()))
            .unwrap_or(0);
        coords.push(Coord {
            grad: k,
            element: best,
        });
        coords.push(Coord {
            grad: k,
            element: (r.next_u64() % v.len() as u64) as usize,
        });
    }
    coords
}

#[test]
fn tiny_bert_gradients_pass_finite_differences() {
    let (g, mut inputs) = load("tiny_bert_cls");
    let spec = TrainSpec {
        loss: Loss::SoftmaxCrossEntropy,
        output: Some("tanh".into()),
        params: ParamSelection::FloatConstants,
        input_grads: vec![],
    };
    let t = train::autodiff(&g, &spec).unwrap();
    tessera::ir::verify(&t.graph).unwrap();
    assert!(t.grads.len() >= 30, "{} parameters", t.grads.len());
    inputs.push(i64_tensor(&[1], vec![5]));
    let analytic = run(&t.graph, &inputs);
    let coords = coordinates(&t, &analytic, 10, 1);
    let (err, at) = fd_error(&t, &inputs, &coords, 1e-6, 1e-4);
    assert!(err <= 1e-5, "worst relative error {err:e} at {at}");
}

#[test]
fn resnet18_gradients_pass_finite_differences() {
    // The sample's graph and weights at a 64×64 image (12× less work than 224×224; global
    // pooling keeps the classifier's shapes).
    let (g, mut inputs) = load("resnet18_winputs");
    let image = g.inputs().iter().position(|p| p.name == "L_x_").unwrap();
    let g = with_input_shape(&g, "L_x_", &[1, 3, 64, 64]);
    inputs[image] = uniform(&[1, 3, 64, 64], 0.0, 1.0, 1000);
    let spec = TrainSpec {
        loss: Loss::SoftmaxCrossEntropy,
        output: None,
        params: ParamSelection::Patterns(vec!["*_parameters_*".into()]),
        input_grads: vec![],
    };
    let t = train::autodiff(&g, &spec).unwrap();
    tessera::ir::verify(&t.graph).unwrap();
    // conv, batch-norm scale and bias of every layer, plus the classifier.
    assert_eq!(
        t.grads.len(),
        62,
        "{:?}",
        t.grads.iter().map(|g| &g.name).collect::<Vec<_>>()
    );
    inputs.push(i64_tensor(&[1], vec![7]));
    let analytic = run(&t.graph, &inputs);
    let coords = coordinates(&t, &analytic, 3, 2);
    let (err, at) = fd_error(&t, &inputs, &coords, 1e-6, 1e-4);
    assert!(err <= 1e-5, "worst relative error {err:e} at {at}");
}
