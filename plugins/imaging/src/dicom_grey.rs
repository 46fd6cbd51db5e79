//! [`DicomFrame::to_grey`]: modality values → grey 0..=255.

// Parses user files: no `unwrap`, `expect` or unchecked indexing on what a file holds (every bad
// byte must become a named error, never a panic).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use crate::dicom::{DicomFrame, DicomOptions, VoiFunction, VoiWindow};
use crate::grey::{GreyImage, luminance};

impl DicomFrame {
    /// The frame as grey 0..=255, shape `[rows, columns]`.
    ///
    /// Monochrome: modality values `m = stored * RescaleSlope + RescaleIntercept`; with
    /// `voi_window` and a window in the file, `y = window(m)` in 0..=255 (LINEAR, LINEAR_EXACT or
    /// SIGMOID per PS3.3 C.11.2.1.2–3), otherwise min-max scaling
    /// `y = 255 (m - min) / (max - min)` over the frame (a constant frame gives 0). Upstream CLEFT
    /// divides by the maximum; min-max is the same when the minimum is 0 and keeps images with a
    /// negative or large minimum (CT, offset radiographs) in range. MONOCHROME1 is then inverted,
    /// `255 - y`, so that high values are bright.
    ///
    /// Colour (RGB, or YBR_FULL whose Y is the luminance): Rec. 601 luminance of the stored
    /// samples times `255 / (2^BitsStored - 1)`; rescale and window do not apply.
    pub fn to_grey(&self, options: &DicomOptions) -> GreyImage {
        let pixels = if self.samples_per_pixel == 3 {
            self.colour_to_grey()
        } else {
            self.monochrome_to_grey(options)
        };
        GreyImage {
            width: self.columns,
            height: self.rows,
            pixels,
        }
    }

    fn monochrome_to_grey(&self, options: &DicomOptions) -> Vec<f32> {
        let modality: Vec<f64> = self
            .stored
            .iter()
            .map(|&v| f64::from(v) * self.rescale_slope + self.rescale_intercept)
            .collect();
        let grey: Vec<f64> = match self.window {
            Some(window) if options.voi_window => {
                modality.iter().map(|&m| apply_window(window, m)).collect()
            }
            _ => min_max_to_255(&modality),
        };
        let invert = self.photometric_interpretation == "MONOCHROME1";
        grey.into_iter()
            .map(|y| if invert { 255.0 - y } else { y } as f32)
            .collect()
    }

    fn colour_to_grey(&self) -> Vec<f32> {
        let scale = 255.0 / ((1u64 << self.bits_stored) - 1) as f32;
        let ybr = self.photometric_interpretation == "YBR_FULL";
        self.stored
            .as_chunks::<3>()
            .0
            .iter()
            .map(|&[a, b, c]| {
                let (a, b, c) = (a as f32, b as f32, c as f32);
                let y = if ybr { a } else { luminance(a, b, c) };
                (y * scale).clamp(0.0, 255.0)
            })
            .collect()
    }
}

fn min_max_to_255(values: &[f64]) -> Vec<f64> {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max > min {
        values
            .iter()
            .map(|&v| 255.0 * (v - min) / (max - min))
            .collect()
    } else {
        vec![0.0; values.len()]
    }
}

/// The VOI window of PS3.3 C.11.2.1.2 (LINEAR), C.11.2.1.3.2 (LINEAR_EXACT) and C.11.2.1.3.1
/// (SIGMOID) with output range 0..=255. A LINEAR width below 1 is served as LINEAR_EXACT and a
/// non-positive width as a step at the center, where the formulas are undefined.
fn apply_window(window: VoiWindow, value: f64) -> f64 {
    let VoiWindow {
        center,
        width,
        function,
    } = window;
    if width <= 0.0 {
        return if value > center { 255.0 } else { 0.0 };
    }
    match function {
        VoiFunction::Linear if width >= 1.0 => {
            let low = center - 0.5 - (width - 1.0) / 2.0;
            let high = center - 0.5 + (width - 1.0) / 2.0;
            if value <= low {
                0.0
            } else if value > high {
                255.0
            } else {
                ((value - (center - 0.5)) / (width - 1.0) + 0.5) * 255.0
            }
        }
        VoiFunction::Linear | VoiFunction::LinearExact => {
            (((value - center) / width + 0.5) * 255.0).clamp(0.0, 255.0)
        }
        VoiFunction::Sigmoid => 255.0 / (1.0 + (-4.0 * (value - center) / width).exp()),
    }
}
