//! Evaluation figures: ROC curves per class and the confusion matrix as a heat map (PNG, with
//! the embedded font of [`crate::plots`]).

use std::path::Path;

use plotters::prelude::*;

use cleft_core::error::{CleftError, Result};

use super::metrics::roc_curve;
use crate::plots::{FONT, ensure_font};

fn plot_error(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> CleftError + '_ {
    move |e| CleftError::Plot {
        path: path.to_path_buf(),
        source: e.to_string().into(),
    }
}

/// Draws into a temporary file beside `path` and renames it into place when complete.
fn draw_atomic(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    ensure_font();
    let error = plot_error(path);
    let temp = path.with_extension("png.tmp.png");
    {
        let root = BitMapBackend::new(&temp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| error(&e))?;
        draw(&root)?;
        root.present().map_err(|e| error(&e))?;
    }
    std::fs::rename(&temp, path).map_err(|e| CleftError::io(path, e))
}

/// One-vs-rest ROC curve of every class (`scores[n][k]`, `targets[n]`), AUC in the legend;
/// classes absent from the targets are left out.
pub fn plot_roc(
    path: &Path,
    title: &str,
    classes: &[String],
    scores: &[Vec<f32>],
    targets: &[usize],
) -> Result<()> {
    let error = plot_error(path);
    draw_atomic(path, (700, 600), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..1f64, 0f64..1.0f64)
            .map_err(|e| error(&e))?;
        chart
            .configure_mesh()
            .x_desc("false positive rate")
            .y_desc("true positive rate")
            .label_style((FONT, 14))
            .draw()
            .map_err(|e| error(&e))?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], &BLACK.mix(0.3)))
            .map_err(|e| error(&e))?;
        for (k, class) in classes.iter().enumerate() {
            let column: Vec<f32> = scores.iter().map(|row| row[k]).collect();
            let positive: Vec<bool> = targets.iter().map(|&t| t == k).collect();
            let (Some(curve), Some(auc)) = (
                roc_curve(&column, &positive),
                super::metrics::roc_auc(&column, &positive),
            ) else {
                continue;
            };
            let color = Palette99::pick(k).to_rgba();
            chart
                .draw_series(LineSeries::new(curve, color.stroke_width(2)))
                .map_err(|e| error(&e))?
                .label(format!("{class} (AUC {auc:.3})"))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(|e| error(&e))
    })
}

/// The confusion matrix (`confusion[true][predicted]`) as a heat map with the counts written in
/// each cell; colour is the share of the true class's row.
pub fn plot_confusion(
    path: &Path,
    title: &str,
    classes: &[String],
    confusion: &[Vec<usize>],
) -> Result<()> {
    let error = plot_error(path);
    let k = classes.len();
    let cell = 90u32;
    let size = (200 + cell * k as u32, 140 + cell * k as u32);
    draw_atomic(path, size, |root| {
        let root = root
            .titled(title, (FONT, 22))
            .map_err(|e| error(&e))?
            .margin(10, 10, 10, 10);
        let (label_w, label_h) = (170i32, 30i32);
        let text = |s: &str, x: i32, y: i32, color: &RGBColor| {
            Text::new(
                s.to_string(),
                (x, y),
                (FONT, 14)
                    .into_font()
                    .color(color)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Center,
                    )),
            )
        };
        let cell = cell as i32;
        for (t, row) in confusion.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            let y = label_h + t as i32 * cell;
            root.draw(&text(&classes[t], label_w / 2, y + cell / 2, &BLACK))
                .map_err(|e| error(&e))?;
            for (p, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let x = label_w + p as i32 * cell;
                let shade = (255.0 * (1.0 - 0.85 * share)) as u8;
                let fill = RGBColor(shade, shade, 255);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    fill.filled(),
                ))
                .map_err(|e| error(&e))?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    BLACK.mix(0.3),
                ))
                .map_err(|e| error(&e))?;
                let ink = if share > 0.6 { WHITE } else { BLACK };
                root.draw(&text(&count.to_string(), x + cell / 2, y + cell / 2, &ink))
                    .map_err(|e| error(&e))?;
            }
        }
        for (p, class) in classes.iter().enumerate() {
            let x = label_w + p as i32 * cell + cell / 2;
            let y = label_h + k as i32 * cell + 15;
            root.draw(&text(class, x, y, &BLACK))
                .map_err(|e| error(&e))?;
        }
        root.draw(&text("true \\ predicted", label_w / 2, label_h / 2, &BLACK))
            .map_err(|e| error(&e))
    })
}
