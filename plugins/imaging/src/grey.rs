//! [`GreyImage`], the decoded form every reader produces.

/// A grey image, row-major `[height, width]`, intensities in 0..=255 as f32.
#[derive(Debug, Clone, PartialEq)]
pub struct GreyImage {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `height * width` intensities, row after row, each in 0..=255.
    pub pixels: Vec<f32>,
}

/// Luminance of an RGB sample with the Rec. 601 weights (what PIL's `convert("L")` uses).
pub(crate) fn luminance(red: f32, green: f32, blue: f32) -> f32 {
    0.299 * red + 0.587 * green + 0.114 * blue
}
