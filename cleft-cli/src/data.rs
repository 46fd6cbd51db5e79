//! `cleft data …`: data set tools.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use cleft_core::registry::Split;
use cleft_core::{CleftError, ExperimentConfig, Registry};
use cleft_synthetic::{SynthTreeOptions, write_chexpert_tree};
use indicatif::{ProgressBar, ProgressStyle};

/// `cleft data` subcommands.
#[derive(Subcommand)]
pub enum DataCommand {
    /// Write the synthetic radiographs as a CheXpert-format tree (CSV + PNG, with report texts)
    /// plus a 5x200-style test CSV, readable by `[data] type = "chexpert"`.
    Synth {
        /// Output folder (the `image_root` of configs reading it).
        #[arg(long)]
        out: PathBuf,
        /// Training images.
        #[arg(long, default_value_t = 1200)]
        n: usize,
        /// Validation images.
        #[arg(long, default_value_t = 100)]
        valid: usize,
        /// Test images per class (five classes).
        #[arg(long, default_value_t = 200)]
        test_per_class: usize,
        /// Image side in pixels.
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// Generator seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Open every split of a config's data set and report its size and labels, reading every
    /// image with `--read-images` (bad samples fail or are counted as `on_bad_sample` says).
    Check {
        /// Experiment configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Also decode and preprocess every image (slow on large sets).
        #[arg(long)]
        read_images: bool,
    },
}

/// Runs a `cleft data` subcommand.
pub fn run(registry: &Registry, command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Check {
            config,
            read_images,
        } => check(registry, &config, read_images),
        DataCommand::Synth {
            out,
            n,
            valid,
            test_per_class,
            size,
            seed,
        } => {
            let options = SynthTreeOptions {
                train: n,
                valid,
                test_per_class,
                size,
                seed,
            };
            let total = (n + valid + 5 * test_per_class) as u64;
            let bar = ProgressBar::new(total).with_style(
                ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} images ({eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message("writing");
            let tree =
                write_chexpert_tree(&out, &options, &|done, _| bar.set_position(done as u64))
                    .with_context(|| {
                        format!("writing the synthetic benchmark to {}", out.display())
                    })?;
            bar.finish_and_clear();
            println!(
                "{} images under {}\n  train: {}\n  valid: {}\n  test (5x200-style): {}",
                tree.images,
                tree.root.display(),
                tree.train_csv.display(),
                tree.valid_csv.display(),
                tree.test_csv.display()
            );
            println!(
                "read it with [data] type = \"chexpert\", csv = \"{}\", valid_csv = \"{}\", \
                 image_root = \"{}\", report_column = \"Report\", test.csv = \"{}\"",
                tree.train_csv.display(),
                tree.valid_csv.display(),
                tree.root.display(),
                tree.test_csv.display()
            );
            Ok(())
        }
    }
}

/// `cleft data check`: each split's size, labels (positives per class) and bad samples.
fn check(registry: &Registry, path: &std::path::Path, read_images: bool) -> Result<()> {
    let config = ExperimentConfig::load(path, registry)?;
    for split in [Split::Train, Split::Valid, Split::Test] {
        // A split the config does not set up is reported; bad data is an error.
        let dataset = match config.data.build(split) {
            Ok(dataset) => dataset,
            Err(CleftError::Invalid(reason)) => {
                println!("{split:?}: not available ({reason})");
                continue;
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("{split:?} split of {}", path.display()));
            }
        };
        let names = dataset.label_names();
        let mut positives = vec![0usize; names.len()];
        for index in 0..dataset.len() {
            for (count, label) in positives.iter_mut().zip(dataset.labels(index)?) {
                *count += usize::from(label > 0.5);
            }
        }
        if read_images {
            let bar = ProgressBar::new(dataset.len() as u64);
            for index in 0..dataset.len() {
                dataset
                    .get(index)
                    .with_context(|| format!("{split:?} sample {index}"))?;
                bar.inc(1);
            }
            bar.finish_and_clear();
        }
        let [c, h, w] = dataset.image_shape();
        println!("{split:?}: {} samples, images {c}x{h}x{w}", dataset.len());
        for (name, count) in names.iter().zip(&positives) {
            println!("  {name:<28} {count:>7} positive");
        }
        for file in dataset.run_files() {
            let rows = file
                .contents
                .lines()
                .filter(|l| !l.starts_with('#'))
                .count();
            println!("  records {} ({} lines)", file.name, rows.saturating_sub(1));
        }
    }
    Ok(())
}
