//! Line charts as PNG and SVG, with fonts embedded in the binary (no system fonts needed):
//! plotters' `ab_glyph` text with DejaVu Sans registered from the `dejavu` crate's bytes.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

/// Font family name every chart uses.
const FONT: &str = "sans-serif";

/// Distinguishable line colours (matplotlib's tab10); series 10-19 reuse them dashed, so up to
/// twenty configurations stay apart (see [`dashed`]).
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
    /// A shaded band `(x, low, high)` drawn under the line (e.g. mean ± std over seeds).
    pub band: Vec<(f64, f64, f64)>,
}

/// Whether series number `color` is drawn dashed (the second round of [`PALETTE`]).
pub fn dashed(color: usize) -> bool {
    (color / PALETTE.len()) % 2 == 1
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
    /// The x values are integers (layers): pad the range and label whole numbers only.
    pub integer_x: bool,
    /// Logarithmic y axis (needs positive values; used for losses spanning a wide range).
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
    /// A grey horizontal reference line at this y (e.g. 0 in a panel of differences).
    pub hline: Option<f64>,
}

impl Panel {
    /// Whether the positive y values span more than a factor `ratio` (log scale then helps).
    pub fn spans(series: &[Series], ratio: f64) -> bool {
        let ys =
            series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|y| *y > 0.0 && y.is_finite());
        let (lo, hi) = ys.fold((f64::INFINITY, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
        lo.is_finite() && hi / lo > ratio
    }
}

/// Registers the embedded DejaVu Sans (regular, bold) as `sans-serif`, once.
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TTF shipped by the dejavu crate; failure would be a build problem.
        for (style, bytes) in
            [(FontStyle::Normal, dejavu::sans::regular()), (FontStyle::Bold, dejavu::sans::bold())]
        {
            if register_font(FONT, style, bytes).is_err() {
                tracing::error!("could not register the embedded DejaVu font");
            }
        }
    });
}

/// Draws `panels` side by side under `title` into `stem.png` and `stem.svg`; returns both paths.
pub fn line_charts(
    stem: &Path,
    title: &str,
    panels: &[Panel],
    panel_size: (u32, u32),
) -> Result<Vec<PathBuf>> {
    line_grid(stem, title, panels, panel_size, panels.len().max(1))
}

/// Draws `panels` in rows of `cols` under `title`, with one legend strip below that never
/// overlaps a chart, into `stem.png` and `stem.svg`; returns both paths.
pub fn line_grid(
    stem: &Path,
    title: &str,
    panels: &[Panel],
    panel_size: (u32, u32),
    cols: usize,
) -> Result<Vec<PathBuf>> {
    register_fonts();
    let cols = cols.clamp(1, panels.len().max(1));
    let grid_rows = panels.len().div_ceil(cols).max(1) as u32;
    let width = panel_size.0 * cols as u32;
    let entries = legend_entries(panels);
    let (per_row, entry_w) = legend_layout(&entries, width);
    let rows = entries.len().div_ceil(per_row) as u32;
    let size = (width, panel_size.1 * grid_rows + 40 + rows * LEGEND_ROW_H + 16);
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let layout = Layout { cols, per_row, entry_w };
    draw(BitMapBackend::new(&png, size).into_drawing_area(), title, panels, layout)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("drawing {}", png.display()))?;
    draw(SVGBackend::new(&svg, size).into_drawing_area(), title, panels, layout)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("drawing {}", svg.display()))?;
    Ok(vec![png, svg])
}

/// Grid columns and legend layout of one picture.
#[derive(Debug, Clone, Copy)]
struct Layout {
    cols: usize,
    per_row: usize,
    entry_w: u32,
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Panel],
    layout: Layout,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("{e:?}");
    root.fill(&WHITE).map_err(err)?;
    let (w0, _) = root.dim_in_pixel();
    let root = root
        .titled(title, (FONT, fit_font(title, w0, 22.0)).into_font().style(FontStyle::Bold))
        .map_err(err)?;
    let entries = legend_entries(panels);
    let (_, h) = root.dim_in_pixel();
    let rows = entries.len().div_ceil(layout.per_row) as u32;
    let (charts, legend) = root.split_vertically(h - rows * LEGEND_ROW_H - 16);
    let areas = charts.split_evenly((panels.len().div_ceil(layout.cols).max(1), layout.cols));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel).map_err(err)?;
    }
    for (n, (label, color)) in entries.iter().enumerate() {
        let x = 20 + (n % layout.per_row) as i32 * layout.entry_w as i32;
        let y = (n / layout.per_row) as i32 * LEGEND_ROW_H as i32 + LEGEND_ROW_H as i32 / 2;
        let c = PALETTE[color % PALETTE.len()];
        let line = if dashed(*color) {
            vec![vec![(x, y), (x + 9, y)], vec![(x + 15, y), (x + 24, y)]]
        } else {
            vec![vec![(x, y), (x + 24, y)]]
        };
        for seg in line {
            legend.draw(&PathElement::new(seg, c.stroke_width(4))).map_err(err)?;
        }
        let style = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        legend.draw_text(label, &style, (x + 30, y)).map_err(err)?;
    }
    root.present().map_err(err)
}

/// Height of one legend row, pixels.
const LEGEND_ROW_H: u32 = 26;
/// Width of a character of the 14-pixel legend font, pixels (DejaVu Sans averages about 0.6 em;
/// a little more keeps wide labels clear of the next entry).
const LEGEND_CHAR_W: f64 = 8.6;

/// Entries per legend row and the width of each: wide enough for the longest label, so that
/// no label runs into the next.
fn legend_layout(entries: &[(String, usize)], width: u32) -> (usize, u32) {
    let longest = entries.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
    let entry_w = (30.0 + longest as f64 * LEGEND_CHAR_W + 24.0).max(120.0) as u32;
    (((width.saturating_sub(20)) / entry_w).max(1) as usize, entry_w)
}

/// The largest font size up to `max` at which `text` fits in `width` pixels (at least 10).
fn fit_font(text: &str, width: u32, max: f64) -> f64 {
    let chars = text.chars().count().max(1) as f64;
    (f64::from(width) * 0.92 / (0.62 * chars)).floor().clamp(10.0, max)
}

/// The labelled series of all panels, first appearance of each label.
fn legend_entries(panels: &[Panel]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for s in panels.iter().flat_map(|p| &p.series) {
        if let Some(l) = &s.label
            && !out.iter().any(|(o, _)| o == l)
        {
            out.push((l.clone(), s.color));
        }
    }
    out
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
    let bands: Vec<Vec<(f64, f64, f64)>> = panel
        .series
        .iter()
        .map(|s| {
            let ok = |&&(x, lo, hi): &&(f64, f64, f64)| {
                x.is_finite() && lo.is_finite() && hi.is_finite() && (!log || lo > 0.0)
            };
            s.band.iter().filter(ok).map(|&(x, lo, hi)| (x, tf(lo), tf(hi))).collect()
        })
        .collect();
    let band_pts = bands.iter().flatten().flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]);
    let hline: Vec<(f64, f64)> = panel.hline.map(tf).into_iter().map(|y| (f64::NAN, y)).collect();
    let all_pts: Vec<(f64, f64)> =
        series.iter().flat_map(|(_, p)| p.iter().copied()).chain(band_pts).chain(hline).collect();
    let all = || all_pts.iter().filter(|p| p.0.is_finite() || p.1.is_finite());
    let (x0, x1) = if panel.integer_x {
        let (lo, hi) = bounds(all().map(|p| p.0).filter(|x| x.is_finite()), 0.0);
        (lo - 0.3, hi + 0.3)
    } else {
        bounds(all().map(|p| p.0).filter(|x| x.is_finite()), 0.0)
    };
    let (y0, y1) = bounds(all().map(|p| p.1), 0.05);
    let x_digits = digits_for(x1 - x0);
    let (area_w, _) = area.dim_in_pixel();
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, fit_font(&panel.title, area_w, 17.0)))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let y_fmt = |v: &f64| y_tick(*v, log, y0, y1);
    // Steps, layers: every x a whole number, so ticks between them are left unlabelled and
    // whole ticks read `3`, not `3.0`.
    let integer_x = panel.integer_x || whole_numbers(series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)));
    let x_fmt = |v: &f64| {
        if integer_x {
            if (v - v.round()).abs() < 1e-6 { format!("{}", v.round() as i64) } else { String::new() }
        } else {
            crate::stats::fmt_num(snap_zero(*v, x1 - x0), x_digits)
        }
    };
    let y_desc = if log { format!("{} (log scale)", panel.y_label) } else { panel.y_label.clone() };
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(y_desc)
        .y_label_formatter(&y_fmt)
        .x_label_formatter(&x_fmt)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for ((s, _), band) in series.iter().zip(&bands).filter(|(_, b)| b.len() > 1) {
        let color = PALETTE[s.color % PALETTE.len()];
        let outline: Vec<(f64, f64)> =
            band.iter().map(|p| (p.0, p.2)).chain(band.iter().rev().map(|p| (p.0, p.1))).collect();
        chart.draw_series(std::iter::once(Polygon::new(outline, color.mix(0.18).filled())))?;
    }
    if let Some(y) = panel.hline {
        let grey = RGBColor(110, 110, 110);
        chart.draw_series(LineSeries::new([(x0, tf(y)), (x1, tf(y))], grey.stroke_width(1)))?;
    }
    for (s, pts) in &series {
        let color = PALETTE[s.color % PALETTE.len()];
        if dashed(s.color) {
            let style = color.stroke_width(2);
            chart.draw_series(DashedLineSeries::new(pts.iter().copied(), 8, 5, style))?;
        } else {
            chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?;
        }
        // A series of one point has no line to draw: it gets its marker.
        if s.markers || pts.len() == 1 {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
    }
    Ok(())
}

/// Whether there are values and every one is a whole number.
fn whole_numbers(mut xs: impl Iterator<Item = f64>) -> bool {
    let mut any = false;
    let all = xs.all(|x| {
        any = true;
        x.fract() == 0.0
    });
    any && all
}

/// Decimals that tell tick labels apart on an axis spanning `span` (about ten ticks).
fn digits_for(span: f64) -> usize {
    if !(span.is_finite() && span > 0.0) {
        return 2;
    }
    (-(span / 10.0).log10()).ceil().clamp(0.0, 6.0) as usize
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

/// A log-axis tick label with at most two significant digits: `0.032`, `3.2`, `1e-4`, `3.2e-5`.
/// The label of a y tick at axis position `v` on an axis from `y0` to `y1` (log10 values on a
/// log axis). A log axis spanning less than a factor 3 gets exact tick values: two significant
/// digits would label the tick at 1.778 "1.8", and the axis would read wrong between its ends.
fn y_tick(v: f64, log: bool, y0: f64, y1: f64) -> String {
    if !log {
        return crate::stats::fmt_num(snap_zero(v, y1 - y0), digits_for(y1 - y0));
    }
    let (lo, hi) = (10f64.powf(y0), 10f64.powf(y1));
    if hi / lo < 3.0 {
        crate::stats::fmt_num(10f64.powf(v), digits_for(hi - lo) + 1)
    } else {
        log_tick(10f64.powf(v))
    }
}

fn log_tick(y: f64) -> String {
    if !(y.is_finite() && y > 0.0) {
        return format!("{y}");
    }
    if (1e-3..1e4).contains(&y) {
        let digits = (1.0 - y.log10().floor()).max(0.0) as usize;
        let s = format!("{y:.digits$}");
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    } else {
        let s = format!("{y:.1e}");
        s.replace(".0e", "e")
    }
}

/// `v`, or 0 where it is within rounding of 0 on an axis spanning `span` (tick positions such
/// as `-2.2e-16` are 0 computed in floating point).
fn snap_zero(v: f64, span: f64) -> f64 {
    if v.abs() <= span.abs() * 1e-9 { 0.0 } else { v }
}

#[cfg(test)]
mod tests {
    use super::{Panel, Series, line_charts, log_tick, snap_zero, y_tick};

    /// Case 27: a run with one logged training point beside a 10-step run.
    #[test]
    fn a_one_point_series_is_a_marker_and_steps_are_labelled_as_integers() {
        let tmp = tempfile::tempdir().expect("tmp");
        let series = |label: &str, color, points: Vec<(f64, f64)>| Series {
            label: Some(label.into()),
            color,
            points,
            markers: false,
            band: Vec::new(),
        };
        // Losses far from whole numbers, so that whole tick labels can only be steps.
        let ten: Vec<(f64, f64)> = (1..=10).map(|s| (s as f64, 0.4 - 0.01 * s as f64)).collect();
        let panel = Panel {
            title: "train loss".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            integer_x: false,
            log_y: false,
            series: vec![series("one", 0, vec![(1.0, 0.42)]), series("ten", 1, ten)],
            hline: None,
        };
        let paths = line_charts(&tmp.path().join("loss"), "t", &[panel], (400, 300)).expect("draw");
        let svg = std::fs::read_to_string(&paths[1]).expect("svg");
        assert_eq!(svg.matches("<circle").count(), 1, "one marker, for the one-point series");
        // plotters' SVG puts each label's text on a line of its own.
        let whole = (1..=10).filter(|k| svg.contains(&format!(">\n{k}\n</text>"))).count();
        let decimal = (1..=10).filter(|k| svg.contains(&format!(">\n{k}.0\n</text>"))).count();
        assert!(whole >= 2 && decimal == 0, "integer step ticks: {whole} whole, {decimal} with .0");
        // With markers off and two points, no marker is drawn: the count above is the one point's.
    }

    #[test]
    fn log_ticks_are_short() {
        assert_eq!(log_tick(1e-4), "1e-4");
        assert_eq!(log_tick(3.16228e-4), "3.2e-4");
        assert_eq!(log_tick(0.0316228), "0.032");
        assert_eq!(log_tick(1.0), "1");
        assert_eq!(log_tick(3.16228), "3.2");
        assert_eq!(log_tick(100.0), "100");
    }

    #[test]
    fn a_narrow_log_axis_labels_each_tick_with_its_own_value() {
        let (y0, y1) = (1.7f64.log10(), 2.5f64.log10());
        assert_eq!(y_tick(1.778f64.log10(), true, y0, y1), "1.778");
        // A wide log axis keeps the short labels.
        assert_eq!(y_tick(3.16228f64.log10(), true, -2.0, 1.0), "3.2");
        assert_eq!(y_tick(0.2, false, 0.0, 1.0), "0.2", "a linear axis as before");
    }

    #[test]
    fn tick_positions_within_rounding_of_zero_read_zero() {
        assert_eq!(snap_zero(-2.2e-16, 1.4), 0.0);
        assert_eq!(snap_zero(-2.7e-20, 0.05), 0.0);
        assert_eq!(snap_zero(0.2, 1.4), 0.2);
        assert_eq!(snap_zero(-1e-12, 1e-10), -1e-12, "small values on a small axis are kept");
    }
}
