//! `cleft predict --run DIR --classes A,B,… IMAGE…`: zero-shot class probabilities of image
//! files (PNG, JPEG, DICOM) with a trained run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cleft_core::device::open_device;
use cleft_core::inference::{ImageSource, Predictor, PromptChoice};
use cleft_core::{ExperimentConfig, Registry};

use crate::eval::Prompt;

/// What `cleft predict` was asked.
pub struct PredictArgs<'a> {
    /// Run directory.
    pub run: &'a Path,
    /// Comma-separated class names.
    pub classes: &'a str,
    /// Class prompts.
    pub prompt: Prompt,
    /// Device name.
    pub device: &'a str,
    /// One JSON document instead of lines.
    pub json: bool,
    /// Image files.
    pub images: &'a [PathBuf],
}

/// Classifies every image and prints, per image, the classes by probability, top first.
pub fn run(registry: &Registry, args: &PredictArgs<'_>) -> Result<()> {
    let classes: Vec<String> = args
        .classes
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(String::from)
        .collect();
    anyhow::ensure!(!classes.is_empty(), "--classes names no class");
    anyhow::ensure!(!args.images.is_empty(), "no image files given");
    let config = ExperimentConfig::load(&args.run.join("config.toml"), registry)
        .with_context(|| format!("{} is not a run directory", args.run.display()))?;
    let device = open_device(args.device, config.train.precision)?;
    let prompt = match args.prompt {
        Prompt::Template => PromptChoice::Template,
        Prompt::Learned => PromptChoice::Learned,
    };
    let predictor = Predictor::load(args.run, registry, &device, prompt)
        .with_context(|| format!("loading {}", args.run.display()))?;
    let sources: Vec<ImageSource<'_>> = args
        .images
        .iter()
        .map(|path| ImageSource::File(path))
        .collect();
    let probabilities = predictor.classify(&sources, &classes)?;
    let ranked: Vec<Vec<(&str, f32)>> = probabilities
        .iter()
        .map(|row| {
            let mut pairs: Vec<(&str, f32)> = classes
                .iter()
                .map(String::as_str)
                .zip(row.iter().copied())
                .collect();
            pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
            pairs
        })
        .collect();
    if args.json {
        let images: Vec<serde_json::Value> = args
            .images
            .iter()
            .zip(&ranked)
            .map(|(path, pairs)| {
                let classes: Vec<serde_json::Value> = pairs
                    .iter()
                    .map(|(class, p)| serde_json::json!({ "class": class, "probability": p }))
                    .collect();
                serde_json::json!({ "image": path.display().to_string(), "classes": classes })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&images)?);
    } else {
        for (path, pairs) in args.images.iter().zip(&ranked) {
            let cells: Vec<String> = pairs
                .iter()
                .map(|(class, p)| format!("{class} {p:.3}"))
                .collect();
            println!("{}: {}", path.display(), cells.join("  "));
        }
    }
    Ok(())
}
