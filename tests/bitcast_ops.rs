//! The importer's expansion of `BitCast` between floats and integers (taken apart and
//! rebuilt in exact f64 and i64 arithmetic) against Rust's `to_bits`/`from_bits` on edge
//! values (signed zeros, the smallest and largest subnormals and normals, infinities,
//! NaN) and pseudo-random words, through the reference interpreter and the compiled CPU
//! backend. NaN payloads are not kept: a NaN must come back as some NaN.

mod onnx_support;

use onnx_support::value;
use prost::Message;
use tessera::ir::{DType, Shape, Tensor};
use tessera::onnx::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto};

/// Runs `BitCast(x: from) → to` on both backends; returns the outputs' bytes.
fn run(from: DType, to: DType, bytes: &[u8]) -> [Vec<u8>; 2] {
    let n = bytes.len() / from.size_bytes();
    let code = tessera::onnx::onnx_dtype_code;
    let m = ModelProto {
        ir_version: Some(9),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(26),
        }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: vec![NodeProto {
                name: Some("b".into()),
                op_type: Some("BitCast".into()),
                input: vec!["x".into()],
                output: vec!["y".into()],
                attribute: vec![AttributeProto {
                    name: Some("to".into()),
                    r#type: Some(2),
                    i: Some(i64::from(code(to))),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            input: vec![value("x", code(from), &[n])],
            output: vec![value("y", code(to), &[n])],
            ..Default::default()
        }),
        ..Default::default()
    };
    let g = tessera::load_onnx_bytes(&m.encode_to_vec(), Default::default()).expect("imports");
    let x = Tensor::from_le_bytes(from, Shape::new(vec![n]).expect("shape"), bytes).expect("x");
    let reference = tessera::reference::run(&g, std::slice::from_ref(&x)).expect("reference");
    let options = tessera::Options {
        threads: 1,
        ..tessera::Options::default()
    };
    let compiled = tessera::compile(&g, options)
        .expect("compiles")
        .run(std::slice::from_ref(&x))
        .expect("runs");
    [reference[0].to_le_bytes(), compiled[0].to_le_bytes()]
}

/// Pseudo-random 64-bit words.
fn words(n: usize) -> Vec<u64> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        })
        .collect()
}

#[test]
fn f32_bits_round_trip() {
    let mut xs: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        -1.5,
        f32::from_bits(1),
        f32::from_bits(0x007f_ffff),
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::EPSILON,
        1.0 - f32::EPSILON / 2.0,
        3.0e-39,
        16_777_216.0,
    ];
    xs.extend(
        words(500)
            .into_iter()
            .map(|w| f32::from_bits(w as u32))
            .filter(|x| !x.is_nan()),
    );
    let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    for out in run(DType::F32, DType::I32, &bytes) {
        assert_eq!(out, bytes, "f32 → i32 keeps the bits");
    }
    for out in run(DType::I32, DType::F32, &bytes) {
        assert_eq!(out, bytes, "i32 → f32 keeps the bits");
    }
    for out in run(DType::U32, DType::F32, &bytes) {
        assert_eq!(out, bytes, "u32 → f32 keeps the bits");
    }
    // NaN words become NaN floats, and NaN floats a NaN word.
    let nans: Vec<u8> = [0x7fc0_0000u32, 0xffc0_0001, 0x7f80_0001]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    for out in run(DType::I32, DType::F32, &nans) {
        for c in out.chunks(4) {
            let v = f32::from_le_bytes(c.try_into().expect("4 bytes"));
            assert!(v.is_nan(), "{v} should be NaN");
        }
    }
    for out in run(DType::F32, DType::U32, &nans) {
        for c in out.chunks(4) {
            let w = u32::from_le_bytes(c.try_into().expect("4 bytes"));
            assert!(f32::from_bits(w).is_nan(), "{w:#x} should be a NaN word");
        }
    }
}

#[test]
fn f64_bits_round_trip() {
    let mut xs: Vec<f64> = vec![
        0.0,
        -0.0,
        1.0,
        -1.5,
        f64::from_bits(1),
        f64::from_bits(0x000f_ffff_ffff_ffff),
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::EPSILON,
        1.0 - f64::EPSILON / 2.0,
        9_007_199_254_740_993.0,
    ];
    xs.extend(
        words(500)
            .into_iter()
            .map(f64::from_bits)
            .filter(|x| !x.is_nan()),
    );
    let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    for out in run(DType::F64, DType::I64, &bytes) {
        assert_eq!(out, bytes, "f64 → i64 keeps the bits");
    }
    for out in run(DType::I64, DType::F64, &bytes) {
        assert_eq!(out, bytes, "i64 → f64 keeps the bits");
    }
    for out in run(DType::F64, DType::U64, &bytes) {
        assert_eq!(out, bytes, "f64 → u64 keeps the bits");
    }
    for out in run(DType::U64, DType::F64, &bytes) {
        assert_eq!(out, bytes, "u64 → f64 keeps the bits");
    }
}

#[test]
fn integers_reinterpret_in_twos_complement() {
    let bytes: Vec<u8> = words(64).iter().flat_map(|w| w.to_le_bytes()).collect();
    for (from, to) in [
        (DType::I8, DType::U8),
        (DType::U8, DType::I8),
        (DType::I16, DType::U16),
        (DType::U16, DType::I16),
        (DType::I32, DType::U32),
        (DType::U32, DType::I32),
        (DType::I64, DType::U64),
        (DType::U64, DType::I64),
    ] {
        for out in run(from, to, &bytes) {
            assert_eq!(out, bytes, "{from} → {to} keeps the bits");
        }
    }
}
