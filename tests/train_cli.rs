//! `tessera train-plan`: the JSON report, emitted files, and errors on bad arguments.

mod cli_support;
use cli_support::tessera;

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-train-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn json_report_has_the_documented_keys_and_consistent_numbers() {
    let (ok, out, err) = tessera(&[
        "train-plan",
        "samples/tiny_bert_cls",
        "--loss",
        "xent",
        "--output",
        "tanh",
        "--checkpoint",
        "sqrt",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for key in [
        "peak_bytes",
        "saved_bytes",
        "recompute_flops",
        "forward_flops",
    ] {
        assert!(v[key].is_u64(), "{key} missing in {out}");
    }
    assert!(v["peak_bytes"].as_u64() <= v["store_all_peak_bytes"].as_u64());
    assert!(v["recompute_flops"].as_u64().unwrap() > 0);
    assert!(v["recompute_flops"].as_u64() <= v["forward_flops"].as_u64());
    assert_eq!(v["policy"], "sqrt");
}

#[test]
fn two_stage_pipeline_prints_the_schedule_and_writes_the_chart_and_graph() {
    let dir = scratch("emit");
    let (svg, graph) = (dir.join("gantt.svg"), dir.join("train.txt"));
    let (ok, out, err) = tessera(&[
        "train-plan",
        "samples/mlp_iris",
        "--loss",
        "mse",
        "--input-grads",
        "L_x_",
        "--checkpoint",
        "mincut",
        "--two-stage",
        "--pipeline",
        "p=4,m=8",
        "--emit",
        &format!("svg={}", svg.display()),
        "--emit",
        &format!("graph={}", graph.display()),
    ]);
    assert!(ok, "{err}");
    for needle in [
        "checkpoint mincut",
        "two-stage: B",
        "B->W stash",
        "1F1B",
        "ZB-H1",
        "saved tensors",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("ZB-H1"));
    let text = std::fs::read_to_string(&graph).unwrap();
    let g = tessera::ir::text::parse(&text).unwrap();
    tessera::ir::verify(&g).unwrap();
    let names: Vec<&str> = g.outputs().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names[0], "loss");
    assert!(names.contains(&"input_grad:L_x_"), "{names:?}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn parameters_can_be_graph_inputs_selected_by_pattern() {
    let (ok, out, err) = tessera(&[
        "train-plan",
        "samples/resnet18_winputs",
        "--params",
        "*_parameters_*",
        "--loss",
        "xent",
        "--checkpoint",
        "budget=64M",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["gradients"], 62);
    assert!(v["peak_bytes"].as_u64().unwrap() <= 64 << 20);
}

#[test]
fn bad_arguments_are_errors_that_say_what_is_wrong() {
    let cases: [(&[&str], &str); 6] = [
        (&["--checkpoint", "magic"], "unknown checkpoint policy"),
        (&["--loss", "hinge"], "unknown loss"),
        (&["--pipeline", "p=0,m=8"], "positive p and m"),
        (
            &["--params", "nothing*"],
            "matches no float constant or graph input",
        ),
        (&["--output", "nope"], "has no output \"nope\""),
        (&["--emit", "svg=x.svg"], "needs --pipeline"),
    ];
    for (extra, message) in cases {
        let mut args = vec!["train-plan", "samples/mlp_iris"];
        args.extend_from_slice(extra);
        let (ok, _, err) = tessera(&args);
        assert!(!ok, "{extra:?} succeeded");
        assert!(err.contains(message), "{extra:?}: {err}");
    }
}

#[test]
fn compile_runs_the_registry_training_passes_end_to_end() {
    let cases = [
        (
            "samples/mlp_iris",
            "train",
            &["autodiff", "checkpoint", "two-stage"][..],
        ),
        (
            "samples/tiny_bert_cls",
            "autodiff,checkpoint",
            &["autodiff", "checkpoint"],
        ),
    ];
    for (model, pipeline, passes) in cases {
        let (ok, out, err) = tessera(&["compile", model, "--pipeline", pipeline]);
        assert!(ok, "{model} --pipeline {pipeline}: {err}");
        let g = tessera::ir::text::parse(&out).expect("stdout is the text IR");
        tessera::ir::verify(&g).unwrap();
        let names: Vec<&str> = g.outputs().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names[0], "loss", "{names:?}");
        assert!(
            names.len() > 1 && names[1..].iter().all(|n| n.starts_with("grad:")),
            "{names:?}"
        );
        assert!(
            g.nodes().any(|(_, n)| n.name == "grad:seed"),
            "{model}: no backward region"
        );
        let ran: Vec<&str> = err
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|p| ["autodiff", "checkpoint", "two-stage"].contains(p))
            .collect();
        assert_eq!(ran, passes, "{err}");
    }
}
