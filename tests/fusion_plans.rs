//! Fusion plans, data movement and memory of the bundled GraphNet samples (imported
//! graphs, no optimizer passes, so the figures describe the planner alone).
//!
//! For every sample: the plan is a partition (each computing node in exactly one kernel,
//! kernels in a topological order), fusion never moves more bytes than the eager plan,
//! and the compiled arena's peak stays within 1.10 × the liveness lower bound in both
//! modes. The figures are snapshotted, and so are two whole plans.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use tessera::ir::Graph;
use tessera::lower::fusion::metric::data_movement;
use tessera::lower::fusion::report::print_plan;
use tessera::lower::fusion::{FusionPlan, Mode, plan};
use tessera::runtime::cpu::{CpuOptions, compile};
use tessera::sample::Sample;

const SAMPLES: [&str; 7] = [
    "mlp_iris",
    "resnet18_winputs",
    "shufflenet_v2_x0_5",
    "squeezenet1_1",
    "tiny_bert_cls",
    "tiny_gptj_cls",
    "tiny_vit",
];

fn load(name: &str) -> Graph {
    let s = Sample::open(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("samples")
            .join(name),
    )
    .expect("sample opens");
    tessera::load_onnx(&s.model_path(), Default::default()).expect("imports")
}

/// Every computing node in exactly one group; every group after the groups it reads
/// (the driver's own check, asserted here so a planner change fails by name).
fn check_partition(g: &Graph, p: &FusionPlan, name: &str) {
    if let Err(e) = tessera::lower::fusion::check_plan(g, p) {
        panic!("{name}: {e}");
    }
}

#[test]
fn plans_bytes_and_memory_of_every_sample() {
    let mut table = String::new();
    for name in SAMPLES {
        let g = load(name);
        let fused = plan(&g, Mode::Fused).expect("plans");
        let eager = plan(&g, Mode::Eager).expect("plans");
        check_partition(&g, &fused, name);
        check_partition(&g, &eager, name);
        let dm = data_movement(&g, &fused).expect("eager plan");
        assert!(
            dm.fused_bytes <= dm.unfused_bytes,
            "{name}: fusion moved more bytes"
        );
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for grp in &fused.groups {
            *kinds.entry(grp.kind().name()).or_default() += 1;
        }
        let _ = writeln!(
            table,
            "{name}: kernels {} -> {} {kinds:?}; bytes {} -> {} (-{:.1}%); merges refused for peak memory {}",
            dm.unfused_kernels,
            dm.fused_kernels,
            dm.unfused_bytes,
            dm.fused_bytes,
            100.0 * dm.reduction(),
            fused.rejected_for_memory
        );
        for mode in [Mode::Eager, Mode::Fused] {
            let m = compile(
                &g,
                &CpuOptions {
                    mode,
                    threads: 1,
                    ..CpuOptions::default()
                },
            )
            .expect("compiles");
            let mem = &m.memory().arena;
            let ratio = mem.peak_bytes as f64 / mem.lower_bound_bytes.max(1) as f64;
            let _ = writeln!(
                table,
                "    {mode:?} arena: peak {} B, liveness lower bound {} B, {ratio:.3}x, {} in place",
                mem.peak_bytes, mem.lower_bound_bytes, mem.in_place
            );
            assert!(
                ratio <= 1.10,
                "{name} {mode:?}: peak {} B is {ratio:.3}x the lower bound {} B",
                mem.peak_bytes,
                mem.lower_bound_bytes
            );
        }
    }
    insta::assert_snapshot!("samples", table);
}

#[test]
fn whole_plans_of_the_small_samples() {
    for name in ["mlp_iris", "tiny_bert_cls"] {
        let g = load(name);
        let p = plan(&g, Mode::Fused).expect("plans");
        insta::assert_snapshot!(format!("plan_{name}"), print_plan(&g, &p));
    }
}
