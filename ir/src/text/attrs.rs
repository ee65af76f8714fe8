//! Op attributes in the text form: the one table mapping each op to its `{key=value}`
//! list and back.

use std::collections::BTreeMap;

use crate::{
    BinaryOp, ConvAttrs, DType, GeluApprox, Op, PoolAttrs, PoolKind, ReduceOp, Shape, UnaryOp,
};

/// An attribute value as printed.
pub(crate) enum Attr {
    Int(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Ints(Vec<i64>),
    DType(DType),
    Ident(&'static str),
}

impl std::fmt::Display for Attr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attr::Int(v) => write!(f, "{v}"),
            Attr::F32(v) => f.write_str(&super::float(v)),
            Attr::F64(v) => f.write_str(&super::float(v)),
            Attr::Bool(v) => write!(f, "{v}"),
            Attr::Ints(v) => {
                f.write_str("[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
            Attr::DType(d) => write!(f, "{d}"),
            Attr::Ident(s) => f.write_str(s),
        }
    }
}

fn us(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

/// The attributes of `op`, in their canonical order. Constants have none here (their data
/// is printed separately).
pub(crate) fn attrs_of(op: &Op) -> Vec<(&'static str, Attr)> {
    use Attr::*;
    match op {
        Op::Constant(_) | Op::Identity | Op::Unary(_) | Op::Binary(_) | Op::Where | Op::MatMul => {
            vec![]
        }
        Op::Dropout { ratio, mask } => vec![("ratio", F32(*ratio)), ("mask", Bool(*mask))],
        Op::Clip { min, max } => vec![("min", F64(*min)), ("max", F64(*max))],
        Op::Gelu { approximate } => vec![(
            "approximate",
            Ident(match approximate {
                GeluApprox::None => "none",
                GeluApprox::Tanh => "tanh",
            }),
        )],
        Op::Cast { to } => vec![("to", DType(*to))],
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => vec![
            ("alpha", F32(*alpha)),
            ("beta", F32(*beta)),
            ("trans_a", Bool(*trans_a)),
            ("trans_b", Bool(*trans_b)),
        ],
        Op::Conv(a) => vec![
            ("strides", us(&a.strides)),
            ("pads", us(&a.pads)),
            ("dilations", us(&a.dilations)),
            ("group", Int(a.group as i64)),
        ],
        Op::Pool { kind, attrs: a } => {
            let mut v = vec![
                ("kernel", us(&a.kernel)),
                ("strides", us(&a.strides)),
                ("pads", us(&a.pads)),
                ("dilations", us(&a.dilations)),
                ("ceil_mode", Bool(a.ceil_mode)),
            ];
            match kind {
                PoolKind::Average { count_include_pad } => {
                    v.push(("count_include_pad", Bool(*count_include_pad)))
                }
                PoolKind::Max { indices } => v.push(("indices", Bool(*indices))),
            }
            v
        }
        Op::Reduce {
            op: _,
            axes,
            keep_dims,
        } => vec![("axes", us(axes)), ("keep_dims", Bool(*keep_dims))],
        Op::Softmax { axis } | Op::LogSoftmax { axis } => vec![("axis", Int(*axis as i64))],
        Op::CumSum {
            axis,
            exclusive,
            reverse,
        } => vec![
            ("axis", Int(*axis as i64)),
            ("exclusive", Bool(*exclusive)),
            ("reverse", Bool(*reverse)),
        ],
        Op::LayerNorm {
            axis,
            epsilon,
            stats,
        } => vec![
            ("axis", Int(*axis as i64)),
            ("epsilon", F32(*epsilon)),
            ("stats", Bool(*stats)),
        ],
        Op::BatchNorm { epsilon } => vec![("epsilon", F32(*epsilon))],
        Op::Lrn {
            size,
            alpha,
            beta,
            bias,
        } => vec![
            ("size", Int(*size as i64)),
            ("alpha", F32(*alpha)),
            ("beta", F32(*beta)),
            ("bias", F32(*bias)),
        ],
        Op::Reshape { shape } | Op::Expand { shape } => vec![("shape", us(shape.dims()))],
        Op::Transpose { perm } => vec![("perm", us(perm))],
        Op::Concat { axis } => vec![("axis", Int(*axis as i64))],
        Op::Split { axis, sizes } => vec![("axis", Int(*axis as i64)), ("sizes", us(sizes))],
        Op::Slice {
            axes,
            starts,
            ends,
            steps,
        } => vec![
            ("axes", us(axes)),
            ("starts", Ints(starts.clone())),
            ("ends", Ints(ends.clone())),
            ("steps", Ints(steps.clone())),
        ],
        Op::Gather { axis } | Op::GatherElements { axis } => vec![("axis", Int(*axis as i64))],
        Op::GatherNd { batch_dims } => vec![("batch_dims", Int(*batch_dims as i64))],
        Op::RmsNorm { axis, epsilon } => {
            vec![("axis", Int(*axis as i64)), ("epsilon", F32(*epsilon))]
        }
        Op::Attention { scale } => vec![("scale", F32(*scale))],
    }
}

/// Attribute tokens of one node, as written, keyed by name.
pub(crate) struct RawAttrs {
    pub map: BTreeMap<String, RawAttr>,
}

/// One attribute value as written: a scalar token or a list of scalar tokens.
pub(crate) enum RawAttr {
    Scalar(String),
    List(Vec<String>),
}

impl RawAttrs {
    fn take(&mut self, key: &str) -> Result<RawAttr, String> {
        self.map
            .remove(key)
            .ok_or_else(|| format!("missing attribute `{key}`"))
    }

    fn scalar(&mut self, key: &str) -> Result<String, String> {
        match self.take(key)? {
            RawAttr::Scalar(s) => Ok(s),
            RawAttr::List(_) => Err(format!("attribute `{key}` must be a scalar, not a list")),
        }
    }

    fn list(&mut self, key: &str) -> Result<Vec<String>, String> {
        match self.take(key)? {
            RawAttr::List(v) => Ok(v),
            RawAttr::Scalar(_) => Err(format!("attribute `{key}` must be a list")),
        }
    }

    fn usize(&mut self, key: &str) -> Result<usize, String> {
        let s = self.scalar(key)?;
        s.parse()
            .map_err(|_| format!("attribute `{key}`: `{s}` is not a non-negative integer"))
    }

    fn f32(&mut self, key: &str) -> Result<f32, String> {
        let s = self.scalar(key)?;
        s.parse()
            .map_err(|_| format!("attribute `{key}`: `{s}` is not a number"))
    }

    fn f64(&mut self, key: &str) -> Result<f64, String> {
        let s = self.scalar(key)?;
        s.parse()
            .map_err(|_| format!("attribute `{key}`: `{s}` is not a number"))
    }

    fn bool(&mut self, key: &str) -> Result<bool, String> {
        let s = self.scalar(key)?;
        s.parse()
            .map_err(|_| format!("attribute `{key}`: `{s}` is not true or false"))
    }

    fn usizes(&mut self, key: &str) -> Result<Vec<usize>, String> {
        self.list(key)?
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("attribute `{key}`: `{s}` is not a non-negative integer"))
            })
            .collect()
    }

    fn i64s(&mut self, key: &str) -> Result<Vec<i64>, String> {
        self.list(key)?
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("attribute `{key}`: `{s}` is not an integer"))
            })
            .collect()
    }

    fn shape(&mut self, key: &str) -> Result<Shape, String> {
        Shape::new(self.usizes(key)?).map_err(|e| e.to_string())
    }

    fn finish(self, op: &str) -> Result<(), String> {
        match self.map.keys().next() {
            Some(k) => Err(format!("op `{op}` has no attribute `{k}`")),
            None => Ok(()),
        }
    }
}

/// Builds the op named `name` from its attributes (not `constant`, which the parser
/// handles itself). Every attribute must be present and none may be unknown.
pub(crate) fn op_from(name: &str, mut a: RawAttrs) -> Result<Op, String> {
    let op = if let Some(u) = UnaryOp::ALL.into_iter().find(|u| u.name() == name) {
        Op::Unary(u)
    } else if let Some(b) = BinaryOp::ALL.into_iter().find(|b| b.name() == name) {
        Op::Binary(b)
    } else if let Some(r) = ReduceOp::ALL.into_iter().find(|r| r.name() == name) {
        Op::Reduce {
            op: r,
            axes: a.usizes("axes")?,
            keep_dims: a.bool("keep_dims")?,
        }
    } else {
        match name {
            "identity" => Op::Identity,
            "where" => Op::Where,
            "matmul" => Op::MatMul,
            "dropout" => Op::Dropout {
                ratio: a.f32("ratio")?,
                mask: a.bool("mask")?,
            },
            "clip" => Op::Clip {
                min: a.f64("min")?,
                max: a.f64("max")?,
            },
            "gelu" => Op::Gelu {
                approximate: match a.scalar("approximate")?.as_str() {
                    "none" => GeluApprox::None,
                    "tanh" => GeluApprox::Tanh,
                    other => return Err(format!("unknown gelu approximation `{other}`")),
                },
            },
            "cast" => {
                let s = a.scalar("to")?;
                Op::Cast {
                    to: s.parse().map_err(|_| format!("unknown dtype `{s}`"))?,
                }
            }
            "gemm" => Op::Gemm {
                alpha: a.f32("alpha")?,
                beta: a.f32("beta")?,
                trans_a: a.bool("trans_a")?,
                trans_b: a.bool("trans_b")?,
            },
            "conv" => Op::Conv(ConvAttrs {
                strides: a.usizes("strides")?,
                pads: a.usizes("pads")?,
                dilations: a.usizes("dilations")?,
                group: a.usize("group")?,
            }),
            "max_pool" | "avg_pool" => {
                let attrs = PoolAttrs {
                    kernel: a.usizes("kernel")?,
                    strides: a.usizes("strides")?,
                    pads: a.usizes("pads")?,
                    dilations: a.usizes("dilations")?,
                    ceil_mode: a.bool("ceil_mode")?,
                };
                let kind = if name == "max_pool" {
                    PoolKind::Max {
                        indices: a.bool("indices")?,
                    }
                } else {
                    PoolKind::Average {
                        count_include_pad: a.bool("count_include_pad")?,
                    }
                };
                Op::Pool { kind, attrs }
            }
            "softmax" => Op::Softmax {
                axis: a.usize("axis")?,
            },
            "log_softmax" => Op::LogSoftmax {
                axis: a.usize("axis")?,
            },
            "cumsum" => Op::CumSum {
                axis: a.usize("axis")?,
                exclusive: a.bool("exclusive")?,
                reverse: a.bool("reverse")?,
            },
            "layer_norm" => Op::LayerNorm {
                axis: a.usize("axis")?,
                epsilon: a.f32("epsilon")?,
                stats: a.bool("stats")?,
            },
            "batch_norm" => Op::BatchNorm {
                epsilon: a.f32("epsilon")?,
            },
            "lrn" => Op::Lrn {
                size: a.usize("size")?,
                alpha: a.f32("alpha")?,
                beta: a.f32("beta")?,
                bias: a.f32("bias")?,
            },
            "reshape" => Op::Reshape {
                shape: a.shape("shape")?,
            },
            "expand" => Op::Expand {
                shape: a.shape("shape")?,
            },
            "transpose" => Op::Transpose {
                perm: a.usizes("perm")?,
            },
            "concat" => Op::Concat {
                axis: a.usize("axis")?,
            },
            "split" => Op::Split {
                axis: a.usize("axis")?,
                sizes: a.usizes("sizes")?,
            },
            "slice" => Op::Slice {
                axes: a.usizes("axes")?,
                starts: a.i64s("starts")?,
                ends: a.i64s("ends")?,
                steps: a.i64s("steps")?,
            },
            "gather" => Op::Gather {
                axis: a.usize("axis")?,
            },
            "gather_elements" => Op::GatherElements {
                axis: a.usize("axis")?,
            },
            "rms_norm" => Op::RmsNorm {
                axis: a.usize("axis")?,
                epsilon: a.f32("epsilon")?,
            },
            "attention" => Op::Attention {
                scale: a.f32("scale")?,
            },
            "gather_nd" => Op::GatherNd {
                batch_dims: a.usize("batch_dims")?,
            },
            other => return Err(format!("unknown op `{other}`")),
        }
    };
    a.finish(name)?;
    Ok(op)
}
