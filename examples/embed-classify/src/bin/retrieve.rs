//! Text-to-image retrieval over a folder with a trained cleft run, on the library alone:
//!
//! ```text
//! retrieve RUN_DIR IMAGE_FOLDER "query text" [TOP_K]
//! ```
//!
//! Embeds every PNG, JPEG and DICOM file of the folder once, embeds the query as written, and
//! prints the `TOP_K` (default 5) images by cosine similarity, best first: `similarity path`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cleft_core::ExperimentConfig;
use cleft_core::burn::tensor::Tensor;
use cleft_core::device::open_device;
use cleft_core::inference::{ImageSource, Predictor, PromptChoice};

const EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "dcm", "dicom"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [run, folder, query, rest @ ..] = args.as_slice() else {
        bail!("usage: retrieve RUN_DIR IMAGE_FOLDER QUERY [TOP_K]");
    };
    let top_k: usize = rest.first().map_or(Ok(5), |k| k.parse()).context("TOP_K")?;
    let run = PathBuf::from(run);
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("reading the folder {folder}"))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| {
        path.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
    });
    files.sort();
    if files.is_empty() {
        bail!("{folder}: no PNG, JPEG or DICOM files");
    }

    let registry = cleft_builtins::registry();
    let config = ExperimentConfig::load(&run.join("config.toml"), &registry)?;
    let device = open_device("cpu", config.train.precision)?;
    let predictor = Predictor::load(&run, &registry, &device, PromptChoice::Template)
        .with_context(|| format!("loading the run {}", run.display()))?;
    let sources: Vec<ImageSource<'_>> = files.iter().map(|path| ImageSource::File(path)).collect();
    // Both embeddings are L2-normalised: the product is the cosine similarity, [N, 1].
    let images: Tensor<2> = predictor.embed_images(&sources)?;
    let text: Tensor<2> = predictor.embed_texts(std::slice::from_ref(query))?;
    let similarity: Vec<f32> = images
        .matmul(text.transpose())
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading similarities back: {e:?}"))?;
    let mut ranked: Vec<(f32, &PathBuf)> = similarity.into_iter().zip(&files).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (score, path) in ranked.into_iter().take(top_k) {
        println!("{score:.4} {}", path.display());
    }
    Ok(())
}
