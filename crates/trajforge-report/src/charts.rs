//! SVG charts drawn with plotters: horizontal bars for categories (tools, repos, reasons) and
//! histograms for length distributions. Text stays SVG `<text>`, so a browser renders it with its
//! own fonts and no font files are needed here.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::ReportError;
use crate::stats::Distribution;

const WIDTH: u32 = 640;
const BAR: RGBColor = RGBColor(46, 110, 180);
const LABEL_CHARS: usize = 42;

fn chart_error(e: impl std::fmt::Display) -> ReportError {
    ReportError::Internal(format!("drawing a chart: {e}"))
}

/// Horizontal bars, one per `(label, value)`, first on top.
pub fn bars(title: &str, x_label: &str, items: &[(String, u64)]) -> Result<String, ReportError> {
    let labels: Vec<String> = items.iter().map(|(l, _)| shorten(l)).collect();
    let n = items.len().max(1);
    let height = 70 + 22 * n as u32;
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let label_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(4) as u32 * 7 + 12;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(label_width.min(WIDTH / 2))
            .build_cartesian_2d(0u64..max + max / 10 + 1, (0..n).into_segmented())
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => n
                    .checked_sub(i + 1)
                    .and_then(|k| labels.get(k).cloned())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc(x_label)
            .draw()
            .map_err(chart_error)?;
        chart
            .draw_series(items.iter().enumerate().map(|(i, (_, v))| {
                let row = n - 1 - i;
                let mut bar = Rectangle::new(
                    [
                        (0, SegmentValue::Exact(row)),
                        (*v, SegmentValue::Exact(row + 1)),
                    ],
                    BAR.filled(),
                );
                bar.set_margin(3, 3, 0, 0);
                bar
            }))
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// The histogram of a distribution, with its median and p90 marked.
pub fn histogram(dist: &Distribution, x_label: &str) -> Result<String, ReportError> {
    let lo = dist.bins.first().map(|b| b.lo).unwrap_or(0.0);
    let hi = dist.bins.last().map(|b| b.hi).unwrap_or(1.0);
    let top = dist.bins.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    let title = format!(
        "{} (n={}, median {}, p90 {})",
        dist.name,
        dist.count,
        number(dist.p50),
        number(dist.p90)
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(48)
            .build_cartesian_2d(lo..hi, 0u64..top + top / 10 + 1)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_label)
            .y_desc("trajectories")
            .x_label_formatter(&|v| number(*v))
            .draw()
            .map_err(chart_error)?;
        chart
            .draw_series(dist.bins.iter().map(|b| {
                let mut bar = Rectangle::new([(b.lo, 0), (b.hi, b.count)], BAR.filled());
                bar.set_margin(0, 0, 1, 1);
                bar
            }))
            .map_err(chart_error)?;
        for (q, color) in [(dist.p50, RED), (dist.p90, BLACK)] {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(q, 0), (q, top)],
                    color.stroke_width(2),
                )))
                .map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

fn shorten(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        return label.to_string();
    }
    let head: String = label.chars().take(LABEL_CHARS - 1).collect();
    format!("{head}…")
}

/// `1234567` → `1.23M`, `31500` → `31.5k`, small values as they are.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

const PALETTE: [RGBColor; 4] = [
    BAR,
    RGBColor(214, 96, 40),
    RGBColor(60, 150, 80),
    RGBColor(140, 80, 170),
];

/// Lines over a numeric x axis, one per `(name, points)`, with a legend.
pub fn lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<String, ReportError> {
    let all = || series.iter().flat_map(|(_, p)| p.iter());
    let (x0, x1) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if x0 > x1 {
        return Err(ReportError::Internal(format!("{title}: no points")));
    }
    let pad = ((y1 - y0) * 0.05).max(y1.abs() * 1e-3).max(1e-12);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1.max(x0 + 1.0), (y0 - pad)..(y1 + pad))
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .y_label_formatter(&|v| number(*v))
            .draw()
            .map_err(chart_error)?;
        for (i, (name, points)) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(chart_error)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Bin;

    #[test]
    fn bars_draw_one_rectangle_per_item_with_its_label() {
        let items = vec![
            ("execute_bash".to_string(), 469),
            ("finish".to_string(), 37),
        ];
        let svg = bars("tools", "calls", &items).expect("chart");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("execute_bash") && svg.contains("finish"));
        // The background plus one filled bar per item.
        let filled = svg.matches("fill=\"#2E6EB4\"").count();
        assert_eq!(filled, 2, "{svg}");
    }

    #[test]
    fn histogram_draws_every_bin() {
        let dist = Distribution {
            name: "messages".into(),
            count: 6,
            mean: 3.0,
            min: 1.0,
            p50: 3.0,
            p90: 5.0,
            p99: 5.0,
            max: 5.0,
            sum: 18.0,
            bins: (0..5)
                .map(|i| Bin {
                    lo: 1.0 + i as f64,
                    hi: 2.0 + i as f64,
                    count: i + 1,
                })
                .collect(),
        };
        let svg = histogram(&dist, "messages per trajectory").expect("chart");
        assert_eq!(svg.matches("fill=\"#2E6EB4\"").count(), 5);
        assert!(svg.contains("median 3"));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(1_234_567.0), "1.23M");
        assert_eq!(number(31_500.0), "31.5k");
        assert_eq!(number(42.0), "42");
        assert_eq!(number(0.5), "0.50");
    }
}
