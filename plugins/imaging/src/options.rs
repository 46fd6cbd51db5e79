//! [`ImageOptions`] and [`AugmentOptions`]: the `[data.image]` settings and their checks.

use cleft_core::CleftError;

use crate::dicom::DicomOptions;

/// CLEFT's image pipeline settings (a `[data.image]` TOML table in configs; defaults are
/// upstream CLEFT's).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageOptions {
    /// The final side: outputs are `[channels, image_size, image_size]` (224).
    pub image_size: usize,
    /// The longest side is resized to this, then the image is zero-padded to a square (256).
    pub load_size: usize,
    /// 3 (grey repeated) or 1.
    pub channels: usize,
    /// Crop to the bounding box of the Otsu foreground (true).
    pub otsu_crop: bool,
    /// Normalisation mean, applied to 0..1 intensities (0.5).
    pub mean: f32,
    /// Normalisation standard deviation (0.5).
    pub std: f32,
    /// How DICOM files become grey.
    pub dicom: DicomOptions,
    /// Train-time augmentation.
    pub augment: AugmentOptions,
}

impl Default for ImageOptions {
    fn default() -> Self {
        Self {
            image_size: 224,
            load_size: 256,
            channels: 3,
            otsu_crop: true,
            mean: 0.5,
            std: 0.5,
            dicom: DicomOptions::default(),
            augment: AugmentOptions::default(),
        }
    }
}

/// Train-time augmentation, applied in this order: horizontal flip, affine, colour jitter,
/// Gaussian blur (see [`ImageOptions::prepare`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentOptions {
    /// Augment training reads at all (true); evaluation reads never are.
    pub enabled: bool,
    /// Probability of the colour jitter (0.4).
    pub jitter_p: f32,
    /// Brightness factor drawn from `[1 - brightness, 1 + brightness]` (0.2).
    pub brightness: f32,
    /// Contrast factor drawn from `[1 - contrast, 1 + contrast]` (0.2).
    pub contrast: f32,
    /// Probability of the Gaussian blur (0.4).
    pub blur_p: f32,
    /// Odd Gaussian kernel side (7).
    pub blur_kernel: usize,
    /// Blur sigma drawn uniformly from `[blur_sigma[0], blur_sigma[1]]` ([0.1, 2.0]).
    pub blur_sigma: [f32; 2],
    /// Rotation drawn uniformly from `[-degrees, degrees]` (10).
    pub degrees: f32,
    /// Translation drawn uniformly from `[-translate, translate]` times the side, each axis
    /// (0.0625).
    pub translate: f32,
    /// Zoom drawn uniformly from `[scale[0], scale[1]]` ([0.8, 1.1]).
    pub scale: [f32; 2],
    /// Probability of the horizontal flip (0.5).
    pub flip_p: f32,
}

impl Default for AugmentOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            jitter_p: 0.4,
            brightness: 0.2,
            contrast: 0.2,
            blur_p: 0.4,
            blur_kernel: 7,
            blur_sigma: [0.1, 2.0],
            degrees: 10.0,
            translate: 0.0625,
            scale: [0.8, 1.1],
            flip_p: 0.5,
        }
    }
}

impl ImageOptions {
    /// Refuses inconsistent settings naming the key, e.g. `data.image.channels = 2 must be 1 or
    /// 3`. `section` is the dotted prefix keys are named with (`data.image`).
    pub fn validate(&self, section: &str) -> Result<(), CleftError> {
        let refuse = |key: &str, value: String, rule: &str| {
            Err(CleftError::Config(format!(
                "{section}.{key} = {value} {rule}"
            )))
        };
        if self.image_size == 0 {
            return refuse("image_size", "0".into(), "must be at least 1");
        }
        if self.load_size < self.image_size {
            return refuse(
                "load_size",
                self.load_size.to_string(),
                &format!("must be at least image_size = {}", self.image_size),
            );
        }
        if self.channels != 1 && self.channels != 3 {
            return refuse("channels", self.channels.to_string(), "must be 1 or 3");
        }
        if !self.mean.is_finite() {
            return refuse("mean", self.mean.to_string(), "must be finite");
        }
        if !(self.std.is_finite() && self.std > 0.0) {
            return refuse("std", self.std.to_string(), "must be positive and finite");
        }
        self.augment.validate(&format!("{section}.augment"))
    }
}

impl AugmentOptions {
    fn validate(&self, section: &str) -> Result<(), CleftError> {
        let refuse = |key: &str, value: String, rule: &str| {
            Err(CleftError::Config(format!(
                "{section}.{key} = {value} {rule}"
            )))
        };
        let probabilities = [
            ("jitter_p", self.jitter_p),
            ("blur_p", self.blur_p),
            ("flip_p", self.flip_p),
        ];
        for (key, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return refuse(key, p.to_string(), "must be in [0, 1]");
            }
        }
        let fractions = [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("translate", self.translate),
        ];
        for (key, x) in fractions {
            if !(0.0..=1.0).contains(&x) {
                return refuse(key, x.to_string(), "must be in [0, 1]");
            }
        }
        if self.blur_kernel.is_multiple_of(2) {
            return refuse("blur_kernel", self.blur_kernel.to_string(), "must be odd");
        }
        let [low, high] = self.blur_sigma;
        if !(low > 0.0 && low <= high && high.is_finite()) {
            return refuse(
                "blur_sigma",
                format!("[{low}, {high}]"),
                "must be 0 < low <= high",
            );
        }
        if !(0.0..=180.0).contains(&self.degrees) {
            return refuse("degrees", self.degrees.to_string(), "must be in [0, 180]");
        }
        let [low, high] = self.scale;
        if !(low > 0.0 && low <= high && high.is_finite()) {
            return refuse(
                "scale",
                format!("[{low}, {high}]"),
                "must be 0 < low <= high",
            );
        }
        Ok(())
    }
}
