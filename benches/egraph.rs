//! The e-graph optimizer on the bundled GraphNet samples: per sample, the e-graph size,
//! iterations, optimization time (median of several runs) and the modeled cost before and
//! after, for each device profile. Not a timed test; it prints the table of BENCHMARKS.md:
//!
//! ```sh
//! cargo bench --bench egraph            # all samples, 5 runs each
//! cargo bench --bench egraph -- 3 tiny_bert_cls   # 3 runs, one sample
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::time::{Duration, Instant};

use tessera::passes::cost::{DeviceProfile, Roofline, graph_cost, kernel_count};
use tessera::passes::egraph::{EGraphConfig, optimize};
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

fn us(s: f64) -> String {
    format!("{:.1}", s * 1e6)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; the other arguments are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let runs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let only: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    for device in DeviceProfile::NAMES {
        let profile = DeviceProfile::named(device).expect("invariant: listed profile");
        let model = Roofline::new(profile.clone());
        let config = EGraphConfig::default();
        let cx = tessera::pass_context(&profile);
        println!("\ndevice profile `{device}`, median of {runs} runs\n");
        println!(
            "| sample | nodes | kernels | e-nodes | e-classes | iterations | stop | time (s) | modeled cost (us) | change |"
        );
        println!("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|");
        let mut times = Vec::new();
        for name in SAMPLES {
            if !only.is_empty() && !only.contains(&name) {
                continue;
            }
            let sample = Sample::open(&root.join(name)).expect("bundled sample opens");
            let g = tessera::load_onnx(&sample.model_path(), Default::default())
                .expect("bundled sample imports");
            let mut walls = Vec::new();
            let mut last = None;
            for _ in 0..runs.max(1) {
                let t = Instant::now();
                let r = optimize(&g, &cx, &config).expect("optimizes");
                walls.push(t.elapsed());
                last = Some(r);
            }
            let (out, outcome) = last.expect("invariant: at least one run");
            let wall = median(walls);
            times.push(wall);
            let s = &outcome.stats;
            let (before, after) = (graph_cost(&model, &g), graph_cost(&model, &out));
            println!(
                "| {name} | {} → {} | {} → {} | {} | {} | {} | {} | {:.3} | {} → {} | {:+.1}% |",
                g.num_nodes(),
                out.num_nodes(),
                kernel_count(&g),
                kernel_count(&out),
                s.enodes,
                s.eclasses,
                s.iterations,
                s.stop_reason,
                wall.as_secs_f64(),
                us(before),
                us(after),
                100.0 * (after / before - 1.0),
            );
        }
        if !times.is_empty() {
            let max = times.iter().max().copied().unwrap_or_default();
            println!(
                "\noptimization time over samples: median {:.3} s, max {:.3} s",
                median(times).as_secs_f64(),
                max.as_secs_f64()
            );
        }
    }
}
