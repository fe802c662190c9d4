//! Map pictures of 2-D tasks: coloured cells (decision regions, error maps) with points on top.
//! PNG and SVG, fonts embedded like [`crate::plot`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::plot::register_fonts;

const FONT: &str = "sans-serif";
/// Narrowest picture, pixels (room for the title and legend).
const MIN_WIDTH: u32 = 1000;
/// Height of a legend row, pixels.
const LEGEND_ROW_H: u32 = 26;

/// Where each legend entry goes: `(x in pixels, row)`, wrapping at `width`.
fn legend_positions(legend: &[LegendEntry], width: u32) -> Vec<(i32, usize)> {
    let mut out = Vec::new();
    let (mut x, mut row) = (20i32, 0usize);
    for (label, _, _) in legend {
        let w = 34 + 8 * label.chars().count() as i32;
        if x + w > width as i32 && x > 20 {
            (x, row) = (20, row + 1);
        }
        out.push((x, row));
        x += w;
    }
    out
}

/// Maps per row.
const MAX_COLS: usize = 4;

/// How a point is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Marker {
    /// Small filled circle (data).
    Dot,
    /// Large cross with a white halo (keys, nodes).
    Cross,
}

/// One map: cells `(x0, y0, x1, y1, colour)` under points `(x, y, colour, marker)`.
#[derive(Debug, Clone, Default)]
pub struct MapPanel {
    /// Title above the map.
    pub title: String,
    /// x range shown.
    pub x: (f64, f64),
    /// y range shown.
    pub y: (f64, f64),
    /// Background cells.
    pub cells: Vec<(f64, f64, f64, f64, RGBColor)>,
    /// Points on top.
    pub points: Vec<(f64, f64, RGBColor, Marker)>,
}

/// A legend entry below the maps: text, colour, marker (`None`: a filled square, for cells).
pub type LegendEntry = (String, RGBColor, Option<Marker>);

/// Draws the panels side by side into `stem.png` and `stem.svg`; returns both paths.
pub fn map_charts(
    stem: &Path,
    title: &str,
    panels: &[MapPanel],
    legend: &[LegendEntry],
    side: u32,
) -> Result<Vec<PathBuf>> {
    register_fonts();
    let cols = panels.len().clamp(1, MAX_COLS) as u32;
    let rows = panels.len().div_ceil(MAX_COLS).max(1) as u32;
    let width = (side * cols).max(MIN_WIDTH);
    let legend_rows = legend_positions(legend, width).last().map_or(1, |p| p.1 + 1) as u32;
    let size = (width, side * rows + 40 + legend_rows * LEGEND_ROW_H + 10);
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    draw(BitMapBackend::new(&png, size).into_drawing_area(), title, panels, legend)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("drawing {}", png.display()))?;
    draw(SVGBackend::new(&svg, size).into_drawing_area(), title, panels, legend)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("drawing {}", svg.display()))?;
    Ok(vec![png, svg])
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    panels: &[MapPanel],
    legend: &[LegendEntry],
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("{e:?}");
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, (FONT, 20).into_font().style(FontStyle::Bold)).map_err(err)?;
    let (w, h) = root.dim_in_pixel();
    let positions = legend_positions(legend, w);
    let legend_rows = positions.last().map_or(1, |p| p.1 + 1) as u32;
    let (maps, strip) = root.split_vertically(h - legend_rows * LEGEND_ROW_H - 10);
    let cols = panels.len().clamp(1, MAX_COLS);
    let rows = panels.len().div_ceil(MAX_COLS).max(1);
    for (area, panel) in maps.split_evenly((rows, cols)).iter().zip(panels) {
        draw_panel(area, panel).map_err(err)?;
    }
    for ((label, color, marker), (x, row)) in legend.iter().zip(positions) {
        let y = row as i32 * LEGEND_ROW_H as i32 + 17;
        match marker {
            None => strip.draw(&Rectangle::new([(x, y - 7), (x + 14, y + 7)], color.filled())),
            Some(Marker::Dot) => strip.draw(&Circle::new((x + 7, y), 4, color.filled())),
            Some(Marker::Cross) => strip.draw(&Cross::new((x + 7, y), 6, color.stroke_width(3))),
        }
        .map_err(err)?;
        let style = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        strip.draw_text(label, &style, (x + 22, y)).map_err(err)?;
    }
    root.present().map_err(err)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &MapPanel,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, (FONT, 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(p.x.0..p.x.1, p.y.0..p.y.1)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style((FONT, 12))
        .x_label_formatter(&|v: &f64| format!("{v:.1}"))
        .y_label_formatter(&|v: &f64| format!("{v:.1}"))
        .draw()?;
    chart.draw_series(
        p.cells.iter().map(|&(x0, y0, x1, y1, c)| Rectangle::new([(x0, y0), (x1, y1)], c.filled())),
    )?;
    for &(x, y, c, m) in &p.points {
        match m {
            Marker::Dot => {
                chart.draw_series(std::iter::once(Circle::new((x, y), 3, c.filled())))?;
            }
            Marker::Cross => {
                chart.draw_series(std::iter::once(Cross::new((x, y), 7, WHITE.stroke_width(5))))?;
                chart.draw_series(std::iter::once(Cross::new((x, y), 6, c.stroke_width(3))))?;
            }
        }
    }
    Ok(())
}

/// Viridis-like colour for `t` in `[0, 1]` (linear between five anchor colours).
pub fn viridis(t: f64) -> RGBColor {
    const ANCHORS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 } * (ANCHORS.len() - 1) as f64;
    let i = (t.floor() as usize).min(ANCHORS.len() - 2);
    let f = t - i as f64;
    let (a, b) = (ANCHORS[i], ANCHORS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}
