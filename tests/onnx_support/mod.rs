//! Helpers shared by the tests that build one-node ONNX models by hand.

// Each test file uses its own subset.
#![allow(dead_code)]

use tessera::onnx::proto::{
    TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};

/// A graph input or output `name` of ONNX element type `elem` and static shape `dims`.
pub fn value(name: &str, elem: i32, dims: &[usize]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(d as i64)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
