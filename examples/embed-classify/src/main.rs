//! Zero-shot classification of image files with a trained cleft run, from a program that uses
//! the library only (no `cleft` command):
//!
//! ```text
//! embed-classify RUN_DIR "Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion" a.png b.dcm …
//! ```
//!
//! Prints, per image, `path: class probability, …` sorted by probability, top first.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cleft_core::ExperimentConfig;
use cleft_core::device::open_device;
use cleft_core::inference::{ImageSource, Predictor, PromptChoice};

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(run), Some(classes)) = (args.next(), args.next()) else {
        bail!("usage: embed-classify RUN_DIR CLASS[,CLASS…] IMAGE…");
    };
    let run = PathBuf::from(run);
    let classes: Vec<String> = classes
        .to_string_lossy()
        .split(',')
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect();
    let images: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if images.is_empty() {
        bail!("no image files given");
    }

    // The run's components are built-ins here; a program with its own plugins adds them first.
    let registry = cleft_builtins::registry();
    let config = ExperimentConfig::load(&run.join("config.toml"), &registry)?;
    let device = open_device("cpu", config.train.precision)?;
    let predictor = Predictor::load(&run, &registry, &device, PromptChoice::Template)
        .with_context(|| format!("loading the run {}", run.display()))?;
    let sources: Vec<ImageSource<'_>> = images.iter().map(|path| ImageSource::File(path)).collect();
    let probabilities = predictor.classify(&sources, &classes)?;
    for (path, row) in images.iter().zip(probabilities) {
        let mut ranked: Vec<(&String, f32)> = classes.iter().zip(row).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let ranked: Vec<String> = ranked
            .iter()
            .map(|(class, p)| format!("{class} {p:.4}"))
            .collect();
        println!("{}: {}", path.display(), ranked.join(", "));
    }
    Ok(())
}
