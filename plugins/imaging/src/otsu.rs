//! Otsu's threshold and the foreground bounding box it gives.

/// Otsu's threshold of 0..=255 intensities over a 256-bin histogram (values rounded to their
/// bin, out-of-range values clamped): the bin `t` maximising the between-class variance of
/// `{bin <= t}` and `{bin > t}`; the foreground is `value > t`. A flat maximum (two spikes: every
/// `t` between them separates them equally) gives the middle of its range; an empty or constant
/// input gives 0.
pub fn otsu_threshold(pixels: &[f32]) -> f32 {
    otsu_bin(pixels, 1.0) as f32
}

fn bin(value: f32, scale: f32) -> usize {
    (value * scale).round().clamp(0.0, 255.0) as usize
}

/// Otsu's threshold bin of `pixels * scale`.
pub(crate) fn otsu_bin(pixels: &[f32], scale: f32) -> usize {
    let mut histogram = [0u64; 256];
    for &v in pixels {
        histogram[bin(v, scale)] += 1;
    }
    let total = pixels.len() as f64;
    let sum_all: f64 = histogram
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * n as f64)
        .sum();
    let mut variances = [0.0f64; 255];
    let (mut weight_low, mut sum_low) = (0.0, 0.0);
    for (t, &n) in histogram.iter().enumerate().take(255) {
        weight_low += n as f64;
        sum_low += t as f64 * n as f64;
        let weight_high = total - weight_low;
        if weight_low == 0.0 || weight_high == 0.0 {
            continue;
        }
        let mean_low = sum_low / weight_low;
        let mean_high = (sum_all - sum_low) / weight_high;
        variances[t] = weight_low * weight_high * (mean_low - mean_high).powi(2);
    }
    let best = variances.iter().copied().fold(0.0, f64::max);
    if best == 0.0 {
        return 0;
    }
    let tied = |&(_, &v): &(usize, &f64)| v >= best * (1.0 - 1e-12);
    let first = variances
        .iter()
        .enumerate()
        .find(tied)
        .map_or(0, |(t, _)| t);
    let last = variances
        .iter()
        .enumerate()
        .rev()
        .find(tied)
        .map_or(0, |(t, _)| t);
    (first + last) / 2
}

/// The bounding box `(x0, y0, x1, y1)` (exclusive ends) of the pixels of a row-major
/// `[height, width]` image whose bin of `value * scale` is above `threshold`; `None` when none is.
pub(crate) fn foreground_box(
    pixels: &[f32],
    width: usize,
    scale: f32,
    threshold: usize,
) -> Option<(usize, usize, usize, usize)> {
    let mut bounds: Option<(usize, usize, usize, usize)> = None;
    for (i, &v) in pixels.iter().enumerate() {
        if bin(v, scale) > threshold {
            let (x, y) = (i % width, i / width);
            bounds = Some(match bounds {
                None => (x, y, x + 1, y + 1),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)),
            });
        }
    }
    bounds
}
