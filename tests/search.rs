//! The latency search from the library and the CLI: `--search model` follows the
//! calibrated cost model and measures nothing, refuses to run without one, calibration
//! files round-trip and are refused when foreign or corrupt, and `--search measure` fills
//! the cache that a second run reads back.

mod cli_support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use cli_support::tessera;
use tessera::calibrate::{self, kernel_work};
use tessera::ir::{ConvAttrs, DType, Graph, Op, Shape, Tensor, TensorType, UnaryOp};
use tessera::passes::cost::calibrated::{Calibration, Coeffs, FamilyFit};
use tessera::runtime::cpu::{ConvAlgo, Way};
use tessera::{Options, Search, SearchOptions};

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-search-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A depthwise 3×3 convolution + ReLU at 28×28: several ways to run.
fn depthwise() -> Graph {
    let mut g = Graph::new("dw");
    let x = g.add_input(
        "x",
        TensorType::new(DType::F32, Shape::from_dims(&[1, 32, 28, 28])),
    );
    let w = g.add_constant(
        Tensor::full(DType::F32, Shape::from_dims(&[32, 1, 3, 3]), 0.1),
        "w",
    );
    let y = g
        .add_node1(
            Op::Conv(ConvAttrs {
                strides: vec![1, 1],
                pads: vec![1; 4],
                dilations: vec![1, 1],
                group: 32,
            }),
            &[x, w],
            "conv",
        )
        .unwrap();
    let r = g.add_node1(Op::Unary(UnaryOp::Relu), &[y], "relu").unwrap();
    g.add_output("y", r);
    g
}

/// A calibration where every convolution family takes `slow` seconds per kernel but
/// `fast_family`, which takes a microsecond.
fn calibration(fast_family: &str, slow: f64) -> Calibration {
    let fam = |fixed_s: f64| FamilyFit {
        coeffs: Coeffs {
            s_per_flop: 0.0,
            s_per_byte: 0.0,
            s_per_tile: 0.0,
            fixed_s,
        },
        samples: 2,
        median_rel_err: 0.0,
        p90_rel_err: 0.0,
    };
    let mut families = BTreeMap::new();
    for a in [
        "im2col-gemm",
        "transposed",
        "direct-planes",
        "direct-blocked",
        "direct-rows",
    ] {
        let name = format!("conv/{a}");
        let t = if name == fast_family { 1e-6 } else { slow };
        families.insert(name, fam(t));
    }
    Calibration {
        fingerprint: "test".into(),
        families,
    }
}

fn model_options(cal: Calibration) -> Options {
    Options {
        threads: 1,
        search: SearchOptions {
            mode: Search::Model,
            ..SearchOptions::default()
        },
        calibration: Some(cal),
        ..Options::default()
    }
}

#[test]
fn model_search_follows_the_calibration_and_measures_nothing() {
    let g = depthwise();
    let m = tessera::compile(&g, model_options(calibration("conv/direct-planes", 1e-3))).unwrap();
    let r = m.search();
    assert_eq!((r.measured, r.cached), (0, 0), "{}", r.table());
    assert_eq!(r.decisions.len(), 1, "{}", r.table());
    assert_eq!(r.decisions[0].choice, "direct-planes", "{}", r.table());
    assert!(
        r.decisions[0]
            .alternatives
            .iter()
            .all(|a| a.seconds.is_none() && a.predicted.is_some()),
        "{}",
        r.table()
    );
    let k = m.conv_algos().iter().position(Option::is_some).unwrap();
    assert_eq!(
        m.conv_algos()[k],
        Some(ConvAlgo::Direct(tessera::runtime::cpu::Form::Planes))
    );
    // Where the heuristic's way is predicted fastest, nothing changes.
    let off = tessera::compile(
        &g,
        Options {
            threads: 1,
            ..Options::default()
        },
    )
    .unwrap();
    let default = off.conv_algos()[k].unwrap();
    let family = format!("conv/{}", default.name());
    let m = tessera::compile(&g, model_options(calibration(&family, 1e-3))).unwrap();
    assert_eq!(m.search().changed(), 0, "{}", m.search().table());
    assert_eq!(m.conv_algos(), off.conv_algos());
    // Predictions see the kernel's work: the family and the convolution's arithmetic.
    let (fam, work) = kernel_work(
        m.cpu(),
        k,
        Way {
            conv: Some(default),
            serial: false,
        },
    )
    .unwrap();
    assert_eq!(fam, family);
    assert_eq!(
        work.flops,
        (2 * 32 * 28 * 28 * 9 + 32 * 28 * 28) as f64,
        "conv and relu"
    );
}

#[test]
fn model_search_without_a_calibration_is_an_error() {
    let mut o = model_options(calibration("conv/direct-planes", 1e-3));
    o.calibration = None;
    let e = tessera::compile(&depthwise(), o).err().expect("refused");
    assert!(e.to_string().contains("tessera calibrate"), "{e}");
}

#[test]
fn calibration_files_round_trip_and_foreign_ones_are_refused() {
    let d = temp("file");
    let path = d.join("calibration.json");
    let c = calibration("conv/direct-rows", 2e-4);
    calibrate::save(&path, &c).unwrap();
    assert_eq!(calibrate::load(&path).unwrap(), c);
    let text = std::fs::read_to_string(&path).unwrap();
    let old = text.replace(env!("CARGO_PKG_VERSION"), "0.0.0-old");
    std::fs::write(&path, old).unwrap();
    let e = calibrate::load(&path).unwrap_err();
    assert!(
        e.contains("0.0.0-old") && e.contains("tessera calibrate"),
        "{e}"
    );
    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    let e = calibrate::load(&path).unwrap_err();
    assert!(e.contains("not a calibration file"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn cli_measure_fills_the_cache_and_model_needs_a_calibration() {
    let d = temp("cli");
    let cache = d.join("measurements.json");
    let sample = "samples/squeezenet1_1";
    let args = |mode: &'static str| {
        vec![
            "run".to_string(),
            sample.to_string(),
            "--runs".into(),
            "1".into(),
            "--search".into(),
            mode.into(),
            "--cache".into(),
            cache.display().to_string(),
            "--calibration".into(),
            d.join("none.json").display().to_string(),
        ]
    };
    let run = |mode| {
        let a = args(mode);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        tessera(&a)
    };
    let (ok, out, err) = run("measure");
    assert!(ok, "{err}");
    assert!(
        err.contains("search measure:") && !err.contains(" 0 timed"),
        "{err}"
    );
    assert!(
        out.contains("within atol") && !out.contains("OUTSIDE"),
        "the searched model still matches: {out}"
    );
    assert!(cache.exists());
    let (ok, _, err) = run("measure");
    assert!(ok, "{err}");
    assert!(
        err.contains(" 0 timed"),
        "the second search reads the cache: {err}"
    );
    let (ok, _, err) = run("model");
    assert!(!ok);
    assert!(err.contains("run `tessera calibrate`"), "{err}");
    // A corrupt cache is a warning, not a failure.
    std::fs::write(&cache, b"not json").unwrap();
    let (ok, _, err) = run("measure");
    assert!(ok, "{err}");
    assert!(
        err.contains("warning: ignoring the measurement cache"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn calibrate_writes_a_calibration_that_search_model_reads() {
    let d = temp("calibrate");
    let cal = d.join("calibration.json");
    let (ok, out, err) = tessera(&[
        "calibrate",
        "--threads",
        "1",
        "--rounds",
        "1",
        "--out",
        cal.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("contraction") && out.contains("conv/im2col-gemm"),
        "{out}"
    );
    let c = calibrate::load(&cal).expect("loads");
    assert!(c.families.len() >= 8, "{:?}", c.families.keys());
    let (ok, _, err) = tessera(&[
        "run",
        "samples/squeezenet1_1",
        "--runs",
        "1",
        "--search",
        "model",
        "--calibration",
        cal.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("search model:") && err.contains("(model "),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
