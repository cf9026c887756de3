//! `bench.svg`, drawn with plotters' SVG backend (no fonts or system libraries: text is left
//! to the viewer): p50 latency and throughput against threads, on log scales.

use plotters::prelude::*;

use crate::BoxError;
use crate::stats::{Sample, at};

/// How one series is drawn. Baselines are dashed and thinner, so that a library line lying
/// on top of its baseline stays visible.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Look {
    pub(crate) colour: RGBColor,
    pub(crate) dashed: bool,
}

/// One line of the chart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub(crate) name: &'a str,
    pub(crate) samples: &'a [Sample],
    pub(crate) look: Look,
}

/// A panel: title and plotted value.
type Panel = (&'static str, fn(&Sample) -> f64);

/// The two panels.
const PANELS: [Panel; 2] = [
    ("p50 latency (µs)", |s| s.p50_us),
    ("throughput (calls/s)", Sample::rate),
];

/// Draws the chart as an SVG document.
pub(crate) fn svg(
    title: &str,
    footer: &str,
    threads: &[usize],
    lines: &[Line<'_>],
) -> Result<String, BoxError> {
    let mut out = String::new();
    draw(&mut out, title, footer, threads, lines).map_err(|e| e.to_string())?;
    Ok(out)
}

fn draw(
    out: &mut String,
    title: &str,
    footer: &str,
    threads: &[usize],
    lines: &[Line<'_>],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(out, (1040, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 17))?;
    let (plots, notes) = root.split_vertically(470);
    legend(&notes, lines)?;
    let grey = ("sans-serif", 12).into_font().color(&RGBColor(85, 85, 85));
    notes.draw_text(footer, &grey, (40, 80))?;
    let panels = plots.split_evenly((1, 2));
    let last = threads.len().saturating_sub(1) as f64;
    for (panel, (caption, value)) in panels.iter().zip(PANELS) {
        let points: Vec<f64> = lines
            .iter()
            .flat_map(|l| l.samples.iter().map(value))
            .filter(|v| *v > 0.0)
            .collect();
        let lo = points
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .max(0.1);
        let hi = points.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, ("sans-serif", 14))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.2..last + 0.2, (lo / 1.5..hi * 1.5).log_scale())?;
        chart
            .configure_mesh()
            .x_labels(threads.len())
            .x_label_formatter(&|x| {
                let index = x.round();
                if (x - index).abs() > 0.01 || index < 0.0 {
                    return String::new();
                }
                threads
                    .get(index as usize)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            })
            .x_desc("threads sharing one Jobs")
            .y_label_formatter(&|v| human(*v))
            .draw()?;
        for line in lines {
            let coords: Vec<(f64, f64)> = threads
                .iter()
                .enumerate()
                .filter_map(|(i, &t)| at(line.samples, t).map(|s| (i as f64, value(s).max(lo))))
                .collect();
            // The legend below the panels is drawn by `legend`, entry by entry as here.
            let colour = line.look.colour;
            if line.look.dashed {
                let style = colour.stroke_width(2);
                chart.draw_series(DashedLineSeries::new(coords.clone(), 6, 4, style))?;
                chart.draw_series(
                    coords
                        .iter()
                        .map(|&c| TriangleMarker::new(c, 5, colour.filled())),
                )?;
            } else {
                chart.draw_series(LineSeries::new(coords.clone(), colour.stroke_width(3)))?;
                chart.draw_series(coords.iter().map(|&c| Circle::new(c, 3, colour.filled())))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

/// The legend, below both panels: four entries per row, each drawn as its line is.
fn legend(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    lines: &[Line<'_>],
) -> Result<(), Box<dyn std::error::Error>> {
    let font: TextStyle<'_> = ("sans-serif", 12).into();
    for (i, line) in lines.iter().enumerate() {
        let (column, row) = (i32::try_from(i % 4)?, i32::try_from(i / 4)?);
        let (x, y) = (40 + column * 250, 12 + row * 22);
        let colour = line.look.colour;
        if line.look.dashed {
            for dash in 0..3 {
                let start = x + dash * 9;
                area.draw(&PathElement::new(
                    [(start, y), (start + 6, y)],
                    colour.stroke_width(2),
                ))?;
            }
            area.draw(&TriangleMarker::new((x + 12, y), 5, colour.filled()))?;
        } else {
            area.draw(&PathElement::new(
                [(x, y), (x + 24, y)],
                colour.stroke_width(3),
            ))?;
            area.draw(&Circle::new((x + 12, y), 3, colour.filled()))?;
        }
        area.draw_text(line.name, &font, (x + 32, y - 7))?;
    }
    Ok(())
}

/// 1500 → "1.5k", 2000000 → "2M".
fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_chart_draws_each_series_and_keeps_a_baseline_apart_from_its_library_line() {
        let samples = |scale: u64| {
            [1usize, 2]
                .iter()
                .map(|&t| {
                    Sample::from_latencies(t, vec![100 * scale; 10], Duration::from_millis(1))
                })
                .collect::<Vec<_>>()
        };
        let (library, raw) = (samples(1), samples(1));
        let lines = [
            Line {
                name: "library",
                samples: &library,
                look: Look {
                    colour: RGBColor(31, 119, 180),
                    dashed: false,
                },
            },
            Line {
                name: "raw baseline",
                samples: &raw,
                look: Look {
                    colour: RGBColor(0, 0, 0),
                    dashed: true,
                },
            },
        ];
        let svg = svg("title", "footer", &[1, 2], &lines).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("library") && svg.contains("raw baseline"));
        assert!(svg.contains("footer"));
        // The library line is solid (a polyline), the baseline dashed (many short segments).
        assert!(svg.contains("#1F77B4") || svg.contains("#1f77b4"), "{svg}");
    }

    #[test]
    fn large_values_are_abbreviated() {
        assert_eq!(human(1500.0), "1.5k");
        assert_eq!(human(2e6), "2M");
        assert_eq!(human(12.0), "12");
    }
}
