//! The pipeline simulator against the closed forms: 1F1B bubble (p−1)/m and ZB-H1 bubble
//! (p−1)(T_F+T_B−T_W)/(m·ΣT), exactly (integer times, compared as fractions); valid
//! dependencies; in-flight limits; the SVG chart.

use tessera::passes::train::pipeline::{self, Kind, StageCosts, Work};

const SHAPES: [(usize, usize); 5] = [(2, 4), (4, 8), (4, 16), (8, 24), (3, 7)];

fn costs(f: u64, b: u64, w: u64) -> StageCosts {
    StageCosts {
        f,
        b,
        w,
        activation_bytes: 100,
        stash_bytes: 40,
    }
}

/// `a/b == c/d` without rounding.
fn same_fraction((a, b): (u64, u64), (c, d): (u64, u64)) -> bool {
    a as u128 * d as u128 == c as u128 * b as u128
}

#[test]
fn one_f_one_b_bubble_is_p_minus_1_over_m() {
    for (p, m) in SHAPES {
        for c in [costs(1, 1, 1), costs(5, 6, 4), costs(2, 3, 1)] {
            let t = pipeline::simulate(Kind::OneFOneB, p, m, c).unwrap();
            t.check().unwrap();
            assert!(
                same_fraction(t.bubble_fraction(), ((p - 1) as u64, m as u64)),
                "p={p} m={m} {c:?}: bubble {:?}",
                t.bubble_fraction()
            );
            assert!(t.peak_in_flight.iter().all(|&k| k <= p));
        }
    }
}

#[test]
fn zb_h1_bubble_matches_the_closed_form_at_1f1b_memory() {
    for (p, m) in SHAPES {
        // Unit costs and T_F=1, T_B=1.2, T_W=0.8 (scaled by 5).
        for c in [costs(1, 1, 1), costs(5, 6, 4)] {
            let t = pipeline::simulate(Kind::ZbH1, p, m, c).unwrap();
            t.check().unwrap();
            let sum = c.f + c.b + c.w;
            let expect = ((p as u64 - 1) * (c.f + c.b - c.w), m as u64 * sum);
            assert!(
                same_fraction(t.bubble_fraction(), expect),
                "p={p} m={m} {c:?}: bubble {:?}, expected {expect:?}",
                t.bubble_fraction()
            );
            assert!(
                t.peak_in_flight.iter().all(|&k| k <= p),
                "p={p} m={m}: {:?} in flight",
                t.peak_in_flight
            );
        }
    }
}

#[test]
fn deferring_every_w_keeps_all_microbatches_in_flight() {
    for (p, m) in SHAPES {
        let t = pipeline::simulate(Kind::OneFOneB2bp, p, m, costs(1, 1, 1)).unwrap();
        t.check().unwrap();
        assert_eq!(t.peak_in_flight.iter().max(), Some(&m), "p={p} m={m}");
        let split = pipeline::simulate(Kind::OneFOneBSplit, p, m, costs(1, 1, 1)).unwrap();
        split.check().unwrap();
        // Same bubble, (p−1)·2/(3m) with unit costs: the split alone helps, deferral does not.
        assert!(same_fraction(t.bubble_fraction(), split.bubble_fraction()));
        assert!(same_fraction(
            t.bubble_fraction(),
            (2 * (p as u64 - 1), 3 * m as u64)
        ));
    }
}

#[test]
fn zb_h1_is_at_least_1_2x_faster_than_1f1b_at_p4_m8() {
    let base = pipeline::simulate(Kind::OneFOneB, 4, 8, costs(1, 1, 1)).unwrap();
    let zb = pipeline::simulate(Kind::ZbH1, 4, 8, costs(1, 1, 1)).unwrap();
    let gain = zb.throughput() / base.throughput();
    assert!(gain >= 1.2, "{gain}");
    assert_eq!((base.makespan, zb.makespan), (33, 27));
}

#[test]
fn every_op_runs_exactly_once() {
    for kind in Kind::ALL {
        let t = pipeline::simulate(kind, 4, 6, costs(2, 3, 1)).unwrap();
        let per_mb = if kind == Kind::OneFOneB { 2 } else { 3 };
        assert_eq!(t.ops.len(), 4 * 6 * per_mb, "{}", kind.name());
        for s in 0..4 {
            for j in 0..6 {
                let n = t
                    .ops
                    .iter()
                    .filter(|o| o.stage == s && o.microbatch == j && o.work == Work::F)
                    .count();
                assert_eq!(n, 1);
            }
        }
    }
}

#[test]
fn empty_and_oversized_pipelines_are_rejected() {
    let err = pipeline::simulate(Kind::ZbH1, 0, 4, costs(1, 1, 1)).unwrap_err();
    assert!(err.to_string().contains("at least one stage"), "{err}");
    let err = pipeline::simulate(Kind::ZbH1, 4096, 4096, costs(1, 1, 1)).unwrap_err();
    assert!(
        err.to_string().contains("exceeds the simulator's limit"),
        "{err}"
    );
}

#[test]
fn svg_gantt_chart_has_one_box_per_op() {
    let ts: Vec<_> = Kind::ALL
        .iter()
        .map(|&k| pipeline::simulate(k, 3, 4, costs(1, 1, 1)).unwrap())
        .collect();
    let svg = pipeline::svg(&ts);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let ops: usize = ts.iter().map(|t| t.ops.len()).sum();
    assert_eq!(svg.matches("<title>").count(), ops);
    for k in Kind::ALL {
        assert!(
            svg.contains(&k.name().replace('&', "&amp;")),
            "{}",
            k.name()
        );
    }
    assert_eq!(svg.matches("<svg").count(), 1);
}
