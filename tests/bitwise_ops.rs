//! The importer's expansions of `BitwiseAnd`, `BitwiseOr`, `BitwiseXor` (bits peeled
//! with comparisons and selects) and `BitwiseNot` on every integer dtype, compared bit for
//! bit with Rust's operators over all pairs of edge patterns (0, 1, all ones, the sign bit
//! alone, the maximum, alternating bits, pseudo-random words), through the reference
//! interpreter and the compiled CPU backend.

mod onnx_support;

use onnx_support::value;
use prost::Message;
use tessera::ir::{DType, Shape, Tensor};
use tessera::onnx::proto::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto};

/// `y = op(a[n, 1], b[1, n])`, or `y = op(a[n, 1])` for `BitwiseNot`.
fn model(op: &str, dtype: DType, n: usize) -> Vec<u8> {
    let elem = tessera::onnx::onnx_dtype_code(dtype);
    let unary = op == "BitwiseNot";
    let (inputs, out) = if unary {
        (vec![value("a", elem, &[n, 1])], vec![n, 1])
    } else {
        (
            vec![value("a", elem, &[n, 1]), value("b", elem, &[1, n])],
            vec![n, n],
        )
    };
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
                input: if unary {
                    vec!["a".into()]
                } else {
                    vec!["a".into(), "b".into()]
                },
                output: vec!["y".into()],
                ..Default::default()
            }],
            input: inputs,
            output: vec![value("y", elem, &out)],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Edge bit patterns of a `bits`-wide word (as the low bits of a u64).
fn patterns(bits: u32) -> Vec<u64> {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let sign = 1u64 << (bits - 1);
    let mut v = vec![
        0,
        1,
        2,
        mask,
        sign,
        sign - 1,
        sign + 1,
        mask - 1,
        0x5555_5555_5555_5555 & mask,
        0xaaaa_aaaa_aaaa_aaaa & mask,
    ];
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..6 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.push(s & mask);
    }
    v
}

fn tensor(dtype: DType, dims: Vec<usize>, words: &[u64]) -> Tensor {
    let size = dtype.size_bytes();
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| w.to_le_bytes()[..size].to_vec())
        .collect();
    Tensor::from_le_bytes(dtype, Shape::new(dims).expect("shape"), &bytes).expect("tensor")
}

fn check(op: &str, f: fn(u64, u64) -> u64) {
    let ints = [
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
    ];
    for dtype in ints {
        let bits = dtype.size_bytes() as u32 * 8;
        let w = patterns(bits);
        let n = w.len();
        let g =
            tessera::load_onnx_bytes(&model(op, dtype, n), Default::default()).expect("imports");
        let mut args = vec![tensor(dtype, vec![n, 1], &w)];
        let want: Vec<u64> = if op == "BitwiseNot" {
            w.iter().map(|&a| f(a, 0)).collect()
        } else {
            args.push(tensor(dtype, vec![1, n], &w));
            w.iter()
                .flat_map(|&a| w.iter().map(move |&b| f(a, b)))
                .collect()
        };
        let size = dtype.size_bytes();
        let expected: Vec<u8> = want
            .iter()
            .flat_map(|r| r.to_le_bytes()[..size].to_vec())
            .collect();
        let reference = tessera::reference::run(&g, &args).expect("reference runs");
        let options = tessera::Options {
            threads: 1,
            ..tessera::Options::default()
        };
        let compiled = tessera::compile(&g, options)
            .expect("compiles")
            .run(&args)
            .expect("runs");
        for (backend, out) in [("reference", &reference[0]), ("cpu", &compiled[0])] {
            assert!(
                out.to_le_bytes() == expected,
                "{op} on {dtype} ({backend}) differs from Rust's operator"
            );
        }
    }
}

#[test]
fn bitwise_and() {
    check("BitwiseAnd", |a, b| a & b);
}

#[test]
fn bitwise_or() {
    check("BitwiseOr", |a, b| a | b);
}

#[test]
fn bitwise_xor() {
    check("BitwiseXor", |a, b| a ^ b);
}

#[test]
fn bitwise_not() {
    check("BitwiseNot", |a, _| !a);
}
