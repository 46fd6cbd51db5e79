//! `cleft data synth`: the synthetic radiographs written as a CheXpert-format tree (CSV + PNG),
//! with report texts, a validation CSV and a 5x200-style test CSV, so the `chexpert` loader
//! reads them unchanged.

use cleft_core::ErrorKind;
use std::path::{Path, PathBuf};

use cleft_core::CleftError;
use cleft_core::data::ImageTextDataset;
use cleft_core::registry::Split;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{FINDINGS, SyntheticCxr, SyntheticCxrConfig, report};

/// What to write.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthTreeOptions {
    /// Training images.
    pub train: usize,
    /// Validation images.
    pub valid: usize,
    /// Test images per class (five classes, one finding each).
    pub test_per_class: usize,
    /// Image side in pixels.
    pub size: usize,
    /// Generator seed.
    pub seed: u64,
}

impl Default for SynthTreeOptions {
    fn default() -> Self {
        Self {
            train: 1200,
            valid: 100,
            test_per_class: 200,
            size: 256,
            seed: 7,
        }
    }
}

/// The files written.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthTree {
    /// The folder the CSVs' `Path` column is relative to (`image_root` in configs).
    pub root: PathBuf,
    /// `CheXpert-v1.0-small/train.csv`.
    pub train_csv: PathBuf,
    /// `CheXpert-v1.0-small/valid.csv`.
    pub valid_csv: PathBuf,
    /// `CheXpert-v1.0-small/test-5x200.csv`.
    pub test_csv: PathBuf,
    /// Images written.
    pub images: usize,
}

/// The CheXpert header as shipped; a `Report` column (read through `report_column`) follows the
/// 14 finding columns.
const HEADER: [&str; 5] = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"];
const COLUMNS: [&str; 14] = cleft_datasets::CHEXPERT_CSV_FINDINGS;

fn io(path: &Path, source: std::io::Error) -> CleftError {
    CleftError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the tree under `out` (created); `progress(done, total)` after each image. Files are
/// written to temporary names and renamed, so an interrupted run leaves no half-written CSV.
pub fn write_chexpert_tree(
    out: &Path,
    options: &SynthTreeOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<SynthTree, CleftError> {
    if options.size < 16 || options.train == 0 || options.test_per_class == 0 {
        return Err(CleftError::Invalid(format!(
            "synth: need size >= 16, train >= 1 and test per class >= 1 (got {options:?})"
        )));
    }
    let base = out.join("CheXpert-v1.0-small");
    let total = options.train + options.valid + 5 * options.test_per_class;
    let config = SyntheticCxrConfig {
        image_size: options.size,
        channels: 1,
        train_size: options.train,
        valid_size: options.valid,
        test_size: 5 * options.test_per_class,
        seed: options.seed,
        ..SyntheticCxrConfig::default()
    };
    let mut done = 0;
    let mut paths = Vec::new();
    for (split, folder, file) in [
        (Split::Train, "train", "train.csv"),
        (Split::Valid, "valid", "valid.csv"),
        (Split::Test, "test", "test-5x200.csv"),
    ] {
        let data = SyntheticCxr::new(config.clone(), split);
        let csv_path = base.join(file);
        std::fs::create_dir_all(base.join(folder)).map_err(|e| io(&base.join(folder), e))?;
        let temp = csv_path.with_extension("csv.tmp");
        let mut writer = csv::Writer::from_path(&temp)
            .map_err(|e| CleftError::caused(ErrorKind::Data, temp.display().to_string(), e))?;
        let header: Vec<&str> = HEADER
            .iter()
            .chain(COLUMNS.iter())
            .copied()
            .chain(["Report"])
            .collect();
        let csv_error = |e: csv::Error| CleftError::Data(format!("{}: {e}", temp.display()));
        writer.write_record(&header).map_err(csv_error)?;
        for index in 0..data.len() {
            let findings = data.findings(index);
            let sample = data.get(index)?;
            let relative = format!(
                "CheXpert-v1.0-small/{folder}/patient{:05}/study1/view1_frontal.png",
                index + 1
            );
            let image_path = out.join(&relative);
            write_png(&image_path, &sample.image, options.size)?;
            let mut rng = StdRng::seed_from_u64(
                options.seed ^ 0x5EED_0000 ^ ((index as u64) << 8) ^ split_code(split),
            );
            let mut row = vec![
                relative,
                if rng.random_bool(0.5) {
                    "Male"
                } else {
                    "Female"
                }
                .to_string(),
                rng.random_range(20..90).to_string(),
                "Frontal".to_string(),
                if rng.random_bool(0.5) { "AP" } else { "PA" }.to_string(),
            ];
            let text = report(&findings, &mut rng);
            for column in COLUMNS {
                let finding = FINDINGS.iter().position(|f| *f == column);
                let value = match finding {
                    Some(k) if findings.contains(&k) => "1.0",
                    // Absent findings: negative, unmentioned or (rarely) uncertain, as in CheXpert.
                    Some(_) => ["0.0", "", "", "-1.0"][rng.random_range(0..4)],
                    None => "",
                };
                row.push(value.to_string());
            }
            row.push(text);
            writer.write_record(&row).map_err(csv_error)?;
            done += 1;
            progress(done, total);
        }
        writer.flush().map_err(|e| io(&temp, e))?;
        drop(writer);
        std::fs::rename(&temp, &csv_path).map_err(|e| io(&csv_path, e))?;
        paths.push(csv_path);
    }
    Ok(SynthTree {
        root: out.to_path_buf(),
        train_csv: paths[0].clone(),
        valid_csv: paths[1].clone(),
        test_csv: paths[2].clone(),
        images: total,
    })
}

fn split_code(split: Split) -> u64 {
    match split {
        Split::Train => 1 << 40,
        Split::Valid => 2 << 40,
        Split::Test => 3 << 40,
    }
}

/// Writes a `[size, size]` image normalised to −1..1 as an 8-bit grey PNG (temp + rename).
fn write_png(path: &Path, pixels: &[f32], size: usize) -> Result<(), CleftError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    let bytes: Vec<u8> = pixels
        .iter()
        .map(|v| ((v * 0.5 + 0.5) * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    let side =
        u32::try_from(size).map_err(|_| CleftError::Invalid(format!("synth: size {size}")))?;
    let image = image::GrayImage::from_raw(side, side, bytes).ok_or_else(|| {
        CleftError::Invalid(format!(
            "synth: {} values for a {size}x{size} image",
            pixels.len()
        ))
    })?;
    let temp = path.with_extension("png.tmp");
    image
        .save_with_format(&temp, image::ImageFormat::Png)
        .map_err(|e| {
            CleftError::caused(
                ErrorKind::Data,
                format!("{}: cannot write PNG", temp.display()),
                e,
            )
        })?;
    std::fs::rename(&temp, path).map_err(|e| io(path, e))
}
