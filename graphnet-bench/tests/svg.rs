//! The SVG plot is well-formed XML and holds exactly one polyline per curve: S(t) and ES(t)
//! for every result set, in that set's colour (the remaining polylines are black axes).

use std::collections::BTreeMap;

use tessera_graphnet_bench::plot::series_color_hex;
use tessera_graphnet_bench::{
    Interpretation, ScoreConfig, ScoreReport, ScoredSample, Status, passing_from, render_svg, score,
};

fn report(label: &str, speedup: f64, interpretation: Interpretation) -> ScoreReport {
    let samples = vec![
        ScoredSample::new("a", Status::Correct, Some(speedup), &passing_from(-6)).expect("sample"),
        ScoredSample::new("b", Status::Accuracy, Some(0.8), &passing_from(2)).expect("sample"),
        ScoredSample::new("c", Status::CompileFail, None, &BTreeMap::new()).expect("sample"),
    ];
    let config = ScoreConfig {
        interpretation,
        ..ScoreConfig::default()
    };
    score(label, &samples, &config).expect("score")
}

fn polylines_by_stroke(svg: &str) -> BTreeMap<String, usize> {
    let doc = roxmltree::Document::parse(svg).expect("SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let mut counts = BTreeMap::new();
    for node in doc.descendants().filter(|n| n.has_tag_name("polyline")) {
        let stroke = node.attribute("stroke").unwrap_or("").to_string();
        *counts.entry(stroke).or_insert(0) += 1;
    }
    counts
}

#[test]
fn one_polyline_per_curve() {
    for n in 1..=3 {
        let reports: Vec<ScoreReport> = (0..n)
            .map(|i| {
                report(
                    &format!("set-{i} <&>"),
                    1.5 + f64::from(i),
                    Interpretation::Default,
                )
            })
            .collect();
        let svg = render_svg(&reports, "test plot").expect("render");
        let mut counts = polylines_by_stroke(&svg);
        // Everything that is not a curve is a black axis line or tick mark.
        counts.remove("#000000");
        let total: usize = counts.values().sum();
        assert_eq!(total, 2 * reports.len(), "{counts:?}");
        for i in 0..reports.len() {
            assert_eq!(
                counts.get(&series_color_hex(i)),
                Some(&2),
                "set {i}: S(t) and ES(t) in its colour; {counts:?}"
            );
        }
        for i in 0..n {
            assert!(svg.contains(&format!("set-{i} &lt;&amp;&gt; S(t)")));
            assert!(svg.contains(&format!("set-{i} &lt;&amp;&gt; ES(t)")));
        }
    }
}

#[test]
fn curves_have_one_point_per_level() {
    let reports = vec![
        report("default", 2.0, Interpretation::Default),
        report("extended", 2.0, Interpretation::MismatchExtended),
    ];
    let svg = render_svg(&reports, "levels").expect("render");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed");
    let points: Vec<usize> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") != Some("#000000"))
        .map(|n| {
            n.attribute("points")
                .unwrap_or("")
                .split_whitespace()
                .count()
        })
        .collect();
    assert_eq!(points, vec![15, 15, 16, 16]);
}

#[test]
fn empty_input_is_an_error() {
    assert!(render_svg(&[], "nothing").is_err());
}
