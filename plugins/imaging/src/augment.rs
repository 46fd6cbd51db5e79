//! Train-time augmentation of a square plane in 0..=1, drawn from a seeded `StdRng`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::options::AugmentOptions;
use crate::resize::Plane;

/// Flip, affine, jitter, blur, in that order. Every parameter is drawn up front in a fixed order
/// whether or not its step applies, so a seed fixes all of them.
pub(crate) fn augment(plane: Plane, options: &AugmentOptions, seed: u64) -> Plane {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut uniform = |low: f32, high: f32| low + (high - low) * rng.random::<f32>();
    let flip = uniform(0.0, 1.0) < options.flip_p;
    let angle = uniform(-options.degrees, options.degrees).to_radians();
    let shift_x = uniform(-options.translate, options.translate) * plane.width as f32;
    let shift_y = uniform(-options.translate, options.translate) * plane.height as f32;
    let zoom = uniform(options.scale[0], options.scale[1]);
    let jitter = uniform(0.0, 1.0) < options.jitter_p;
    let brightness = uniform(1.0 - options.brightness, 1.0 + options.brightness);
    let contrast = uniform(1.0 - options.contrast, 1.0 + options.contrast);
    let blur = uniform(0.0, 1.0) < options.blur_p;
    let sigma = uniform(options.blur_sigma[0], options.blur_sigma[1]);

    let mut plane = if flip { flipped(&plane) } else { plane };
    plane = affine(&plane, angle, (shift_x, shift_y), zoom);
    if jitter {
        jittered(&mut plane, brightness, contrast);
    }
    if blur {
        plane = blurred(&plane, options.blur_kernel / 2, sigma);
    }
    plane
}

/// Mirrored left to right.
fn flipped(plane: &Plane) -> Plane {
    let pixels = plane
        .pixels
        .chunks_exact(plane.width)
        .flat_map(|row| row.iter().rev().copied())
        .collect();
    Plane { pixels, ..*plane }
}

/// Rotated by `angle` (radians, counter-clockwise as displayed) and zoomed by `zoom` about the
/// centre, then shifted by `shift` pixels; bilinear sampling, zeros outside.
fn affine(plane: &Plane, angle: f32, shift: (f32, f32), zoom: f32) -> Plane {
    let (cx, cy) = (
        (plane.width as f32 - 1.0) / 2.0,
        (plane.height as f32 - 1.0) / 2.0,
    );
    let (sin, cos) = angle.sin_cos();
    let mut pixels = Vec::with_capacity(plane.pixels.len());
    for y in 0..plane.height {
        for x in 0..plane.width {
            let dx = x as f32 - cx - shift.0;
            let dy = y as f32 - cy - shift.1;
            let source_x = cx + (cos * dx - sin * dy) / zoom;
            let source_y = cy + (sin * dx + cos * dy) / zoom;
            pixels.push(bilinear(plane, source_x, source_y));
        }
    }
    Plane { pixels, ..*plane }
}

fn bilinear(plane: &Plane, x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: f32, yi: f32| {
        let inside = xi >= 0.0 && yi >= 0.0 && xi < plane.width as f32 && yi < plane.height as f32;
        if inside {
            plane.pixels[yi as usize * plane.width + xi as usize]
        } else {
            0.0
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + if fx > 0.0 { at(x0 + 1.0, y0) * fx } else { 0.0 };
    if fy == 0.0 {
        return top;
    }
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx)
        + if fx > 0.0 {
            at(x0 + 1.0, y0 + 1.0) * fx
        } else {
            0.0
        };
    top * (1.0 - fy) + bottom * fy
}

/// Brightness (`v * brightness`), then contrast (blend with the mean, torchvision's
/// `adjust_contrast`), each clamped to 0..=1.
fn jittered(plane: &mut Plane, brightness: f32, contrast: f32) {
    for v in &mut plane.pixels {
        *v = (*v * brightness).clamp(0.0, 1.0);
    }
    let mean = plane.pixels.iter().sum::<f32>() / plane.pixels.len() as f32;
    for v in &mut plane.pixels {
        *v = ((*v - mean) * contrast + mean).clamp(0.0, 1.0);
    }
}

/// Separable Gaussian blur with a `2 * radius + 1` kernel, reflected borders (like
/// torchvision's `GaussianBlur`).
fn blurred(plane: &Plane, radius: usize, sigma: f32) -> Plane {
    let weights: Vec<f32> = (0..=2 * radius)
        .map(|i| (-((i as f32 - radius as f32).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let weights: Vec<f32> = weights.iter().map(|w| w / total).collect();
    let (width, height) = (plane.width, plane.height);
    let convolve = |get: &dyn Fn(usize) -> f32, at: usize, length: usize| -> f32 {
        weights
            .iter()
            .enumerate()
            .map(|(k, w)| w * get(reflect(at as isize + k as isize - radius as isize, length)))
            .sum()
    };
    let mut rows = vec![0.0; width * height];
    for y in 0..height {
        let row = &plane.pixels[y * width..(y + 1) * width];
        for x in 0..width {
            rows[y * width + x] = convolve(&|i| row[i], x, width);
        }
    }
    let mut pixels = vec![0.0; width * height];
    for x in 0..width {
        for y in 0..height {
            pixels[y * width + x] = convolve(&|i| rows[i * width + x], y, height);
        }
    }
    Plane { pixels, ..*plane }
}

/// `index` reflected into `0..length` (`-1 → 1`, `length → length - 2`), clamped for kernels
/// wider than the image.
fn reflect(index: isize, length: usize) -> usize {
    let last = length as isize - 1;
    let reflected = if index < 0 {
        -index
    } else if index > last {
        2 * last - index
    } else {
        index
    };
    reflected.clamp(0, last.max(0)) as usize
}
