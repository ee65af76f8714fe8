//! SVG plot of S(t) and ES(t): one colour per result set, S(t) drawn opaque, ES(t)
//! half-transparent and thicker. Each curve is exactly one `<polyline>` in its set's colour;
//! the legend uses filled rectangles, and the only other polylines are black: plotters' axis
//! lines and tick marks, and a faint line at score 1 (parity with eager).

use std::path::Path;

use plotters::prelude::*;

use crate::error::{BenchError, Result};
use crate::record::write_atomic;
use crate::score::ScoreReport;

/// Colours cycled over result sets: the Okabe–Ito palette (colour-blind safe) without its
/// black, which plotters uses for axes and tick marks, and its hard-to-see yellow, plus two
/// darker hues.
pub const PALETTE: [(u8, u8, u8); 8] = [
    (0, 114, 178),
    (213, 94, 0),
    (0, 158, 115),
    (204, 121, 167),
    (86, 180, 233),
    (230, 159, 0),
    (117, 112, 179),
    (166, 118, 29),
];

/// The SVG stroke colour (`#rrggbb`) of result set `i`.
pub fn series_color_hex(i: usize) -> String {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    format!("#{r:02X}{g:02X}{b:02X}")
}

fn plot_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Plot(e.to_string())
}

/// Renders the S(t)/ES(t) curves of `reports` as an SVG document (1000×600). Fails when
/// `reports` is empty.
pub fn render_svg(reports: &[ScoreReport], title: &str) -> Result<String> {
    if reports.is_empty() {
        return Err(BenchError::Plot("nothing to plot".into()));
    }
    let t_min = reports
        .iter()
        .flat_map(|r| r.levels.iter().map(|l| l.t))
        .min()
        .unwrap_or(-10);
    let t_max = reports
        .iter()
        .flat_map(|r| r.levels.iter().map(|l| l.t))
        .max()
        .unwrap_or(4);
    let y_max = reports
        .iter()
        .flat_map(|r| r.levels.iter().flat_map(|l| [l.s, l.es]))
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max)
        * 1.1;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(f64::from(t_min)..f64::from(t_max), 0.0..y_max)
            .map_err(plot_err)?;
        let x_labels = usize::try_from(t_max - t_min + 1).unwrap_or(16);
        chart
            .configure_mesh()
            .x_desc("tolerance level t")
            .y_desc("score")
            .x_labels(x_labels)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(plot_err)?;
        // Parity with eager (score 1), in axis black so it is never taken for a curve.
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(f64::from(t_min), 1.0), (f64::from(t_max), 1.0)],
                BLACK.mix(0.4),
            )))
            .map_err(plot_err)?;
        for (i, r) in reports.iter().enumerate() {
            let (red, green, blue) = PALETTE[i % PALETTE.len()];
            let color = RGBColor(red, green, blue);
            let s_points: Vec<(f64, f64)> =
                r.levels.iter().map(|l| (f64::from(l.t), l.s)).collect();
            let es_points: Vec<(f64, f64)> =
                r.levels.iter().map(|l| (f64::from(l.t), l.es)).collect();
            chart
                .draw_series(LineSeries::new(s_points, color.stroke_width(2)))
                .map_err(plot_err)?
                .label(format!("{} S(t)", r.label))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 2), (x + 18, y + 2)], color.filled())
                });
            let faded = color.mix(0.5);
            chart
                .draw_series(LineSeries::new(es_points, faded.stroke_width(4)))
                .map_err(plot_err)?
                .label(format!("{} ES(t)", r.label))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 4), (x + 18, y + 4)], faded.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Renders with [`render_svg`] and writes the file atomically.
pub fn write_svg(path: &Path, reports: &[ScoreReport], title: &str) -> Result<()> {
    let svg = render_svg(reports, title)?;
    write_atomic(path, svg.as_bytes())
}
