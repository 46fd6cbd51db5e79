//! Loss and learning-rate curves as PNG images in the run directory.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::metrics::StepMetrics;
use cleft_core::error::{CleftError, Result};

pub(crate) const FONT: &str = "sans-serif";

pub(crate) fn ensure_font() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    // The embedded DejaVu Sans keeps plots independent of the fonts installed on the machine.
    REGISTERED.call_once(|| {
        let _ = register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

/// Writes `loss.png` and `lr.png` for `history` into `dir`.
pub fn plot_history(history: &[StepMetrics], dir: &Path) -> Result<()> {
    let loss: Vec<(f64, f64)> = history.iter().map(|m| (m.step as f64, m.loss)).collect();
    let lr: Vec<(f64, f64)> = history.iter().map(|m| (m.step as f64, m.lr)).collect();
    line_plot(&dir.join("loss.png"), "training loss", "loss", &loss)?;
    line_plot(&dir.join("lr.png"), "learning rate", "lr", &lr)
}

/// Draws one series as a line chart (800×500 PNG).
pub fn line_plot(path: &Path, title: &str, y_label: &str, points: &[(f64, f64)]) -> Result<()> {
    if points.is_empty() {
        return Ok(());
    }
    ensure_font();
    let error = |e: &dyn std::fmt::Display| CleftError::Plot {
        path: path.to_path_buf(),
        source: e.to_string().into(),
    };
    let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let (y_min, y_max) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let pad = ((y_max - y_min) * 0.05).max(y_max.abs() * 1e-3).max(1e-12);
    let temp = path.with_extension("png.tmp.png");
    {
        let root = BitMapBackend::new(&temp, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| error(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 24))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_max, (y_min - pad)..(y_max + pad))
            .map_err(|e| error(&e))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(y_label)
            .label_style((FONT, 14))
            .draw()
            .map_err(|e| error(&e))?;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), &BLUE))
            .map_err(|e| error(&e))?;
        root.present().map_err(|e| error(&e))?;
    }
    std::fs::rename(&temp, path).map_err(|e| CleftError::io(path, e))
}
