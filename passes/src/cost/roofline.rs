//! The roofline model: `max(flops / peak, bytes / bandwidth) + launch` per kernel.

use tessera_ir::{DType, Op, TensorType};

use super::CostModel;

/// Peak rates of one device, the inputs of the roofline.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceProfile {
    /// Profile name, as in reports and `--device`.
    pub name: &'static str,
    /// Dense float32 (and integer) arithmetic, FLOP/s.
    pub f32_flops: f64,
    /// Dense float16/bfloat16 arithmetic, FLOP/s (tensor cores on GPUs).
    pub f16_flops: f64,
    /// Dense float64 arithmetic, FLOP/s.
    pub f64_flops: f64,
    /// Sustained memory bandwidth (a streaming copy), bytes/s.
    pub bandwidth: f64,
    /// Fixed cost of one kernel (launch, synchronisation), seconds.
    pub launch: f64,
}

impl DeviceProfile {
    /// NVIDIA H200 SXM: ~4.3 TB/s copy bandwidth, ~790 TFLOP/s dense bf16, 67 TFLOP/s
    /// fp32 and fp64 (vendor figures as given in issue #5); 3 µs per kernel launch
    /// (assumed: back-to-back launches without CUDA graphs; to be calibrated).
    pub fn h200() -> DeviceProfile {
        DeviceProfile {
            name: "h200",
            f32_flops: 67e12,
            f16_flops: 790e12,
            f64_flops: 67e12,
            bandwidth: 4.3e12,
            launch: 3e-6,
        }
    }

    /// The 2-core AMD EPYC (AVX2/FMA) development and CI machine, measured with
    /// `cargo bench -p tessera-passes --bench roofline_cpu` (best of 16 runs on a shared
    /// machine; BENCHMARKS.md has the figures): 8-wide FMA chains reach 101 GFLOP/s on one
    /// core, 4-wide (what Cranelift emits on x64) 51 GFLOP/s on both, so 100 GFLOP/s f32;
    /// a two-thread copy moves 19.6 GB/s at best and 8-11 GB/s under load, so 15 GB/s;
    /// handing a kernel to a parked worker thread and waiting for it takes 8-11 µs, so 10 µs
    /// per kernel. f64 at half the f32 rate; f16/bf16 have no native arithmetic here and
    /// run at the f32 rate.
    pub fn cpu_epyc_2core() -> DeviceProfile {
        DeviceProfile {
            name: "cpu",
            f32_flops: 1.0e11,
            f16_flops: 1.0e11,
            f64_flops: 5.0e10,
            bandwidth: 1.5e10,
            launch: 1.0e-5,
        }
    }

    /// The profile with this name (`h200`, `cpu`).
    pub fn named(name: &str) -> Option<DeviceProfile> {
        match name {
            "h200" => Some(DeviceProfile::h200()),
            "cpu" => Some(DeviceProfile::cpu_epyc_2core()),
            _ => None,
        }
    }

    /// Names accepted by [`DeviceProfile::named`].
    pub const NAMES: [&'static str; 2] = ["h200", "cpu"];

    fn peak(&self, dtype: DType) -> f64 {
        match dtype {
            DType::F16 | DType::BF16 => self.f16_flops,
            DType::F64 => self.f64_flops,
            _ => self.f32_flops,
        }
    }
}

/// What one kernel does: arithmetic and memory traffic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelWork {
    pub flops: f64,
    /// Bytes read plus bytes written (each operand read once, each result written once).
    pub bytes: f64,
}

fn bytes(t: &TensorType) -> f64 {
    (t.shape.numel() * t.dtype.size_bytes()) as f64
}

/// Flops ([`super::flops()`]) and bytes of the kernel that computes `op`, or `None` when the
/// op launches no kernel (constants, reshapes, identities: metadata only).
pub fn kernel_work(op: &Op, inputs: &[&TensorType], outputs: &[TensorType]) -> Option<KernelWork> {
    let traffic =
        inputs.iter().map(|t| bytes(t)).sum::<f64>() + outputs.iter().map(bytes).sum::<f64>();
    // Metadata only. Dropout with a mask is a kernel: it writes the (all-true) mask.
    if matches!(
        op,
        Op::Constant(_) | Op::Identity | Op::Reshape { .. } | Op::Dropout { mask: false, .. }
    ) {
        return None;
    }
    let outs: Vec<&TensorType> = outputs.iter().collect();
    let flops = super::flops(op, inputs, &outs) as f64;
    // Slices and gathers read only what they produce.
    let bytes = match op {
        Op::Slice { .. } => 2.0 * outputs.iter().map(bytes).sum::<f64>(),
        Op::Gather { .. } | Op::GatherElements { .. } | Op::GatherNd { .. } => {
            2.0 * outputs.iter().map(bytes).sum::<f64>() + inputs.get(1).map_or(0.0, |t| bytes(t))
        }
        _ => traffic,
    };
    Some(KernelWork { flops, bytes })
}

/// The roofline cost model for one device profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Roofline {
    pub profile: DeviceProfile,
}

impl Roofline {
    pub fn new(profile: DeviceProfile) -> Roofline {
        Roofline { profile }
    }
}

impl CostModel for Roofline {
    fn name(&self) -> String {
        format!("roofline/{}", self.profile.name)
    }

    fn node_cost(&self, op: &Op, inputs: &[&TensorType], outputs: &[TensorType]) -> f64 {
        let Some(w) = kernel_work(op, inputs, outputs) else {
            return 0.0;
        };
        let dtype = outputs
            .first()
            .or(inputs.first().copied())
            .map_or(DType::F32, |t| t.dtype);
        let p = &self.profile;
        (w.flops / p.peak(dtype)).max(w.bytes / p.bandwidth) + p.launch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_ir::{PoolKind, Shape, UnaryOp};

    fn f32s(d: &[usize]) -> TensorType {
        TensorType::new(DType::F32, Shape::from_dims(d))
    }

    #[test]
    fn matmul_is_compute_bound_when_large_and_launch_bound_when_tiny() {
        let m = Roofline::new(DeviceProfile::h200());
        let (a, b, c) = (
            f32s(&[4096, 4096]),
            f32s(&[4096, 4096]),
            f32s(&[4096, 4096]),
        );
        let t = m.node_cost(&Op::MatMul, &[&a, &b], std::slice::from_ref(&c));
        let flops = 2.0 * 4096f64.powi(3);
        assert!((t - (flops / 67e12 + 3e-6)).abs() < 1e-12, "{t}");
        let (a, b, c) = (f32s(&[2, 2]), f32s(&[2, 2]), f32s(&[2, 2]));
        let t = m.node_cost(&Op::MatMul, &[&a, &b], std::slice::from_ref(&c));
        assert!((t - 3e-6) < 1e-9 && t > 3e-6, "{t}");
    }

    #[test]
    fn elementwise_is_bandwidth_bound() {
        let m = Roofline::new(DeviceProfile::h200());
        let x = f32s(&[1 << 20]);
        let t = m.node_cost(&Op::Unary(UnaryOp::Relu), &[&x], std::slice::from_ref(&x));
        let expect = 8.0 * (1 << 20) as f64 / 4.3e12 + 3e-6;
        assert!((t - expect).abs() < 1e-15, "{t} vs {expect}");
    }

    #[test]
    fn metadata_ops_are_free() {
        let m = Roofline::new(DeviceProfile::cpu_epyc_2core());
        let x = f32s(&[4, 6]);
        let y = f32s(&[24]);
        let op = Op::Reshape {
            shape: Shape::from_dims(&[24]),
        };
        assert_eq!(m.node_cost(&op, &[&x], &[y]), 0.0);
        assert_eq!(
            m.node_cost(&Op::Identity, &[&x], std::slice::from_ref(&x)),
            0.0
        );
    }

    #[test]
    fn attention_is_cheaper_than_its_parts() {
        let m = Roofline::new(DeviceProfile::h200());
        let (q, k, v) = (
            f32s(&[1, 4, 45, 8]),
            f32s(&[1, 4, 45, 8]),
            f32s(&[1, 4, 45, 8]),
        );
        let s = f32s(&[1, 4, 45, 45]);
        let fused = m.node_cost(
            &Op::Attention { scale: 0.5 },
            &[&q, &k, &v],
            std::slice::from_ref(&q),
        );
        let kt = f32s(&[1, 4, 8, 45]);
        let parts = m.node_cost(&Op::MatMul, &[&q, &kt], std::slice::from_ref(&s))
            + m.node_cost(&Op::Softmax { axis: 3 }, &[&s], std::slice::from_ref(&s))
            + m.node_cost(&Op::MatMul, &[&s, &v], std::slice::from_ref(&q));
        assert!(fused < parts, "{fused} vs {parts}");
    }

    #[test]
    fn pool_kind_does_not_change_window_work() {
        let attrs = tessera_ir::PoolAttrs {
            kernel: vec![3, 3],
            strides: vec![1, 1],
            pads: vec![0; 4],
            dilations: vec![1, 1],
            ceil_mode: false,
        };
        let x = f32s(&[1, 1, 5, 5]);
        let y = f32s(&[1, 1, 3, 3]);
        let w = kernel_work(
            &Op::Pool {
                kind: PoolKind::Max { indices: false },
                attrs,
            },
            &[&x],
            &[y],
        )
        .expect("pooling is a kernel");
        assert_eq!(w.flops, 81.0);
        assert_eq!(w.bytes, (25.0 + 9.0) * 4.0);
    }
}
