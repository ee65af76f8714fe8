//! The compiled CPU backend on the bundled GraphNet samples: fused and eager, one and two
//! threads, against onnxruntime's reference outputs at GraphNet tolerance t = −5 (float32:
//! atol 1e-5, rtol 1.30e-6), and bit-identical across thread counts.

use std::path::Path;

use tessera::ir::Tensor;
use tessera::runtime::cpu::Mode;
use tessera::sample::{Sample, compare};
use tessera::{Options, compile};

const SAMPLES: [&str; 7] = [
    "mlp_iris",
    "resnet18_winputs",
    "shufflenet_v2_x0_5",
    "squeezenet1_1",
    "tiny_bert_cls",
    "tiny_gptj_cls",
    "tiny_vit",
];

const ATOL: f64 = 1e-5;
const RTOL: f64 = 1.30e-6;

fn bits(ts: &[Tensor]) -> Vec<Vec<u8>> {
    ts.iter().map(|t| t.to_le_bytes()).collect()
}

#[test]
fn samples_match_onnxruntime_on_the_cpu_backend() {
    let mut failures = Vec::new();
    for name in SAMPLES {
        let sample = Sample::open(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("samples")
                .join(name),
        )
        .expect("sample opens");
        let g = tessera::load_onnx(&sample.model_path(), Default::default()).expect("imports");
        let inputs = sample.inputs().expect("inputs");
        let expected = sample.reference_outputs().expect("outputs");
        for (label, base) in [("fused", Options::default()), ("eager", Options::eager())] {
            let mut first: Option<Vec<Vec<u8>>> = None;
            for threads in [1, 2] {
                let opts = Options {
                    threads,
                    ..base.clone()
                };
                let m = compile(&g, opts).unwrap_or_else(|e| panic!("{name} {label}: {e}"));
                let outs = m
                    .run(&inputs)
                    .unwrap_or_else(|e| panic!("{name} {label}: {e}"));
                assert_eq!(outs.len(), expected.len(), "output counts differ");
                for (k, (a, e)) in outs.iter().zip(&expected).enumerate() {
                    let c = compare(a, e, ATOL, RTOL).unwrap_or_else(|| {
                        panic!("{name} {label} output {k}: {} vs {}", a.ty(), e.ty())
                    });
                    if !c.all_close {
                        failures.push(format!(
                            "{name} {label} threads {threads} output {k}: max abs {:.3e}, max rel {:.3e}",
                            c.max_abs, c.max_rel
                        ));
                    }
                }
                match &first {
                    None => first = Some(bits(&outs)),
                    Some(b) => assert_eq!(
                        b,
                        &bits(&outs),
                        "{name} {label}: results depend on the thread count"
                    ),
                }
                let _ = Mode::Fused;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "outside tolerance:\n{}",
        failures.join("\n")
    );
}
