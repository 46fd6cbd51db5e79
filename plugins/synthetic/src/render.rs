//! Drawing of the synthetic radiographs (pixel values in 0..1, then normalised to -1..1).

use rand::Rng;
use rand::rngs::StdRng;

/// Gaussian noise via Box–Muller (keeps the dependency set to `rand`).
fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

struct Canvas {
    size: usize,
    pixels: Vec<f32>,
}

impl Canvas {
    /// Applies `f(x, y, value) -> value` to every pixel, with `x, y` in 0..1.
    fn paint(&mut self, f: impl Fn(f32, f32, f32) -> f32) {
        let n = self.size as f32;
        for row in 0..self.size {
            for col in 0..self.size {
                let (x, y) = ((col as f32 + 0.5) / n, (row as f32 + 0.5) / n);
                let value = &mut self.pixels[row * self.size + col];
                *value = f(x, y, *value);
            }
        }
    }
}

fn inside_ellipse(x: f32, y: f32, cx: f32, cy: f32, rx: f32, ry: f32) -> bool {
    ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2) <= 1.0
}

/// Renders one image with the given findings (indices into `FINDINGS`).
pub fn render(findings: &[usize], size: usize, noise: f32, rng: &mut StdRng) -> Vec<f32> {
    let mut canvas = Canvas {
        size,
        pixels: vec![0.55; size * size],
    };
    let jitter = |rng: &mut StdRng, amount: f32| rng.random_range(-amount..amount);
    let (shift_x, shift_y) = (jitter(rng, 0.03), jitter(rng, 0.03));
    let lungs = [
        (0.30 + shift_x, 0.48 + shift_y),
        (0.70 + shift_x, 0.48 + shift_y),
    ];
    let (lung_rx, lung_ry) = (0.16, 0.30);
    for &(cx, cy) in &lungs {
        canvas.paint(|x, y, v| {
            if inside_ellipse(x, y, cx, cy, lung_rx, lung_ry) {
                0.18
            } else {
                v
            }
        });
    }
    let has = |k: usize| findings.contains(&k);

    // 1: cardiomegaly — the heart shadow is much larger.
    let heart_scale = if has(1) { 1.7 } else { 1.0 };
    let (heart_x, heart_y) = (0.52 + shift_x, 0.66 + shift_y);
    canvas.paint(|x, y, v| {
        if inside_ellipse(
            x,
            y,
            heart_x,
            heart_y,
            0.11 * heart_scale,
            0.09 * heart_scale,
        ) {
            0.8
        } else {
            v
        }
    });
    // 4: pleural effusion — fluid fills the base of one or both lungs.
    if has(4) {
        let level = lungs[0].1 + rng.random_range(0.08..0.16);
        let both = rng.random_bool(0.5);
        let side = rng.random_range(0..2);
        for (i, &(cx, cy)) in lungs.iter().enumerate() {
            if both || i == side {
                canvas.paint(|x, y, v| {
                    if y > level && inside_ellipse(x, y, cx, cy, lung_rx, lung_ry) {
                        0.85
                    } else {
                        v
                    }
                });
            }
        }
    }
    // 2: consolidation — a dense blob in one lung.
    if has(2) {
        let (cx, cy) = lungs[rng.random_range(0..2)];
        let (bx, by) = (cx + jitter(rng, 0.05), cy - rng.random_range(0.0..0.15));
        canvas.paint(|x, y, v| {
            if inside_ellipse(x, y, bx, by, 0.08, 0.08) {
                0.9
            } else {
                v
            }
        });
    }
    // 3: edema — bilateral streaky haziness across both lungs.
    if has(3) {
        let phase = rng.random_range(0.0..std::f32::consts::TAU);
        for &(cx, cy) in &lungs {
            canvas.paint(|x, y, v| {
                if inside_ellipse(x, y, cx, cy, lung_rx, lung_ry) {
                    let streak = (0.5 + 0.5 * ((y * 40.0 + phase).sin())) * 0.45;
                    v + streak
                } else {
                    v
                }
            });
        }
    }
    // 0: atelectasis — a thin horizontal plate-like band in one lung.
    if has(0) {
        let (cx, cy) = lungs[rng.random_range(0..2)];
        let band_y = cy + jitter(rng, 0.12);
        canvas.paint(|x, y, v| {
            if (y - band_y).abs() < 0.035 && (x - cx).abs() < lung_rx * 0.9 {
                0.95
            } else {
                v
            }
        });
    }
    canvas
        .pixels
        .into_iter()
        .map(|v| ((v + noise * gaussian(rng)).clamp(0.0, 1.0) - 0.5) / 0.5)
        .collect()
}
