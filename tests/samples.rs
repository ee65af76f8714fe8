//! The bundled GraphNet samples (`samples/`): each imports, verifies, round-trips the
//! text form and, on the reference interpreter, matches onnxruntime's outputs at GraphNet
//! tolerance level t = −5 for float32 (atol 1e-5, rtol 1.30e-6).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use tessera::ir::{Op, text, verify};
use tessera::sample::{Sample, compare};

const SAMPLES: [&str; 7] = [
    "mlp_iris",
    "resnet18_winputs",
    "shufflenet_v2_x0_5",
    "squeezenet1_1",
    "tiny_bert_cls",
    "tiny_gptj_cls",
    "tiny_vit",
];

/// GraphNet float32 tolerances at t = −5: atol 10^-5, rtol 10^(−5·5.886/5), both rounded to
/// three significant digits.
const ATOL: f64 = 1e-5;
const RTOL: f64 = 1.30e-6;

#[test]
fn samples_match_onnxruntime_at_t_minus_5() {
    let mut summary = String::new();
    for name in SAMPLES {
        let sample = Sample::open(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("samples")
                .join(name),
        )
        .unwrap();
        let g = tessera::load_onnx(&sample.model_path(), Default::default()).unwrap();
        verify(&g).unwrap();

        let opts = text::PrintOptions::default();
        let once = text::print(&g, &opts);
        let back = text::parse(&once).unwrap();
        verify(&back).unwrap();
        assert_eq!(text::print(&back, &opts), once, "{name}: text round trip");

        let outs = tessera::reference::run(&g, &sample.inputs().unwrap()).unwrap();
        let expected = sample.reference_outputs().unwrap();
        assert_eq!(outs.len(), expected.len(), "{name}: output count");
        assert_eq!(outs.len(), expected.len(), "output counts differ");
        for (k, (a, e)) in outs.iter().zip(&expected).enumerate() {
            let c = compare(a, e, ATOL, RTOL)
                .unwrap_or_else(|| panic!("{name} output {k}: {} vs {}", a.ty(), e.ty()));
            assert!(
                c.all_close,
                "{name} output {k} ({}): max abs {:.3e}, max rel {:.3e} outside atol {ATOL} / rtol {RTOL}",
                g.outputs()[k].name,
                c.max_abs,
                c.max_rel
            );
        }

        let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, n) in g.nodes() {
            if !matches!(n.op, Op::Constant(_)) {
                *ops.entry(n.op.name()).or_default() += 1;
            }
        }
        let _ = writeln!(
            summary,
            "{name}: {} nodes, {} inputs, {} outputs; {ops:?}",
            g.num_nodes(),
            g.inputs().len(),
            g.outputs().len()
        );
    }
    insta::assert_snapshot!(summary);
}
