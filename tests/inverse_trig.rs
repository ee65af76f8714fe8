//! The importer's expansions of `Atan`, `Asin` and `Acos` (range reduction and a
//! polynomial in f64) against Rust's f64 functions over dense grids, through the
//! reference interpreter and the compiled CPU backend: within 1 ulp for f32 inputs (0.5
//! measured: f64 leaves only the final rounding) and 4 for f64 ones (3 measured), with
//! the special values (±1, ±∞, NaN, out of domain) exact.

mod onnx_support;

use onnx_support::value;
use prost::Message;
use tessera::ir::{DType, Shape, Tensor};
use tessera::onnx::proto::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto};

/// A one-node model `y = op(x)` over `n` elements of ONNX dtype `elem`.
fn model(op: &str, elem: i32, n: usize) -> Vec<u8> {
    ModelProto {
        ir_version: Some(9),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(18),
        }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: vec![NodeProto {
                name: Some("f".into()),
                op_type: Some(op.into()),
                input: vec!["x".into()],
                output: vec!["y".into()],
                ..Default::default()
            }],
            input: vec![value("x", elem, &[n])],
            output: vec![value("y", elem, &[n])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Runs `op` on `xs` (as f32 or f64) through the reference interpreter and the compiled
/// CPU backend; returns both results as f64.
fn run(op: &str, xs: &[f64], dtype: DType) -> [Vec<f64>; 2] {
    let elem = tessera::onnx::onnx_dtype_code(dtype);
    let g =
        tessera::load_onnx_bytes(&model(op, elem, xs.len()), Default::default()).expect("imports");
    let shape = Shape::new(vec![xs.len()]).expect("shape");
    let x = match dtype {
        DType::F32 => Tensor::from_vec(shape, xs.iter().map(|&v| v as f32).collect()),
        _ => Tensor::from_vec(shape, xs.to_vec()),
    }
    .expect("tensor");
    let reference = tessera::reference::run(&g, std::slice::from_ref(&x)).expect("reference runs");
    let options = tessera::Options {
        threads: 1,
        ..tessera::Options::default()
    };
    let compiled = tessera::compile(&g, options)
        .expect("compiles")
        .run(std::slice::from_ref(&x))
        .expect("runs");
    [reference[0].to_f64_vec(), compiled[0].to_f64_vec()]
}

/// The spacing of `dtype` values at `v`.
fn ulp(v: f64, dtype: DType) -> f64 {
    match dtype {
        DType::F32 => {
            let f = (v as f32).abs();
            let next = f32::from_bits(f.to_bits() + 1);
            f64::from(next - f)
        }
        _ => {
            let a = v.abs();
            f64::from_bits(a.to_bits() + 1) - a
        }
    }
}

/// The worst error in ulps of `dtype` over `xs`, and where it is; special values must
/// match exactly (NaN for NaN).
fn worst(op: &str, f: fn(f64) -> f64, xs: &[f64], dtype: DType) -> [(f64, f64); 2] {
    let outs = run(op, xs, dtype);
    outs.map(|got| {
        let mut worst = (0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&got) {
            // The input as the graph saw it.
            let x = if dtype == DType::F32 {
                f64::from(x as f32)
            } else {
                x
            };
            let want = f(x);
            if want.is_nan() || y.is_nan() {
                assert!(
                    want.is_nan() && y.is_nan(),
                    "{op}({x}) = {y}, expected {want}"
                );
                continue;
            }
            let e = (y - want).abs() / ulp(want, dtype);
            if e > worst.0 {
                worst = (e, x);
            }
        }
        worst
    })
}

/// A dense grid over `[lo, hi]` plus `extra`.
fn grid(lo: f64, hi: f64, n: usize, extra: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = (0..=n)
        .map(|i| lo + (hi - lo) * i as f64 / n as f64)
        .collect();
    v.extend_from_slice(extra);
    v
}

/// Points that stress the ends of `[-1, 1]`: `±(1 − k·2⁻²⁴)` and `±k·2⁻³⁰`.
fn near_ends() -> Vec<f64> {
    let mut v = Vec::new();
    for k in 0..2000 {
        let d = k as f64 * 2f64.powi(-24);
        v.extend([
            1.0 - d,
            d - 1.0,
            k as f64 * 2f64.powi(-30),
            -(k as f64) * 2f64.powi(-30),
        ]);
    }
    v.extend([
        1.5,
        -1.5,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
    ]);
    v
}

fn check(op: &str, f: fn(f64) -> f64, xs: &[f64]) {
    for (dtype, bound) in [(DType::F32, 1.0), (DType::F64, 4.0)] {
        let [reference, compiled] = worst(op, f, xs, dtype);
        for (backend, (e, at)) in [("reference", reference), ("cpu", compiled)] {
            assert!(
                e <= bound,
                "{op} on {dtype} ({backend}): max error {e:.3} ulp at x = {at:e} (bound {bound})"
            );
        }
    }
}

#[test]
fn atan_is_within_an_ulp() {
    let mut xs = grid(-8.0, 8.0, 200_000, &near_ends());
    xs.extend((0..400).map(|i| 10f64.powf(-20.0 + i as f64 * 0.1)));
    xs.extend((0..400).map(|i| -(10f64.powf(-20.0 + i as f64 * 0.1))));
    xs.extend([f32::MAX as f64, 1e300]);
    check("Atan", f64::atan, &xs);
}

#[test]
fn asin_is_within_an_ulp() {
    check("Asin", f64::asin, &grid(-1.0, 1.0, 200_000, &near_ends()));
}

#[test]
fn acos_is_within_an_ulp() {
    check("Acos", f64::acos, &grid(-1.0, 1.0, 200_000, &near_ends()));
}
