//! `cleft data …`: data set tools.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
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
}

/// Runs a `cleft data` subcommand.
pub fn run(command: DataCommand) -> Result<()> {
    match command {
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
