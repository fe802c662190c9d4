//! Line charts as PNG and SVG, with fonts embedded in the binary (no system fonts needed):
//! plotters' `ab_glyph` text with DejaVu Sans registered from the `dejavu` crate's bytes.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// Font family name every chart uses.
const FONT: &str = "sans-serif";

/// Distinguishable line colours (matplotlib's tab10).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One line of a panel.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend entry; `None` for lines that repeat an entry (other seeds of one group).
    pub label: Option<String>,
    /// Index into [`PALETTE`] (wraps).
    pub color: usize,
    /// Points `(x, y)`; non-finite points are dropped.
    pub points: Vec<(f64, f64)>,
    /// Draw a marker at every point.
    pub markers: bool,
}

/// One chart inside a picture.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Title above the chart.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// Logarithmic y axis (needs positive values; used for losses spanning a wide range).
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

impl Panel {
    /// Whether the positive y values span more than a factor `ratio` (log scale then helps).
    pub fn spans(series: &[Series], ratio: f64) -> bool {
        let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|y| *y > 0.0 && y.is_finite());
        let (lo, hi) = ys.fold((f64::INFINITY, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
        lo.is_finite() && hi / lo > ratio
    }
}

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TTF shipped by the dejavu crate; failure would be a build problem.
        for (style, bytes) in [(FontStyle::Normal, dejavu::sans::regular()), (FontStyle::Bold, dejavu::sans::bold())] {
            if register_font(FONT, style, bytes).is_err() {
                tracing::error!("could not register the embedded DejaVu font");
            }
        }
    });
}

/// Draws `panels` side by side under `title` into `stem.png` and `stem.svg`; returns both paths.
pub fn line_charts(stem: &Path, title: &str, panels: &[Panel], panel_size: (u32, u32)) -> Result<Vec<PathBuf>> {
    register_fonts();
    let size = (panel_size.0 * panels.len().max(1) as u32, panel_size.1 + 40);
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    draw(BitMapBackend::new(&png, size).into_drawing_area(), title, panels)
        .map_err(|e| anyhow!("drawing {}: {e}", png.display()))?;
    draw(SVGBackend::new(&svg, size).into_drawing_area(), title, panels)
        .map_err(|e| anyhow!("drawing {}: {e}", svg.display()))?;
    Ok(vec![png, svg])
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, panels: &[Panel]) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("{e:?}");
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, (FONT, 22).into_font().style(FontStyle::Bold)).map_err(err)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel).map_err(err)?;
    }
    root.present().map_err(err)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let log = panel.log_y;
    let tf = |y: f64| if log { y.log10() } else { y };
    let series: Vec<(&Series, Vec<(f64, f64)>)> = panel
        .series
        .iter()
        .map(|s| {
            let pts = s.points.iter().filter(|(x, y)| x.is_finite() && y.is_finite() && (!log || *y > 0.0));
            (s, pts.map(|&(x, y)| (x, tf(y))).collect())
        })
        .collect();
    let all = || series.iter().flat_map(|(_, p)| p.iter());
    let (x0, x1) = bounds(all().map(|p| p.0), 0.0);
    let (y0, y1) = bounds(all().map(|p| p.1), 0.05);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 17))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let y_fmt = |v: &f64| {
        let y = if log { 10f64.powf(*v) } else { *v };
        crate::stats::fmt_num(y, if y.abs() >= 100.0 { 0 } else { 3 })
    };
    let y_desc = if log { format!("{} (log scale)", panel.y_label) } else { panel.y_label.clone() };
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(y_desc)
        .y_label_formatter(&y_fmt)
        .x_label_formatter(&|v: &f64| crate::stats::fmt_num(*v, if v.abs() >= 100.0 { 0 } else { 2 }))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let mut labelled = false;
    for (s, pts) in &series {
        let color = PALETTE[s.color % PALETTE.len()];
        let drawn = chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?;
        if let Some(label) = &s.label {
            labelled = true;
            drawn.label(label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        }
        if s.markers {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
    }
    if labelled {
        chart
            .configure_series_labels()
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.5))
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    Ok(())
}

/// `(min, max)` of `xs` widened by `pad` of the span (and to a unit span when flat or empty).
fn bounds(xs: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let p = (hi - lo) * pad;
    (lo - p, hi + p)
}
