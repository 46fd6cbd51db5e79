//! `cleft inspect`, `cleft embed-text`, `cleft embed-image`: quick checks of pretrained weights.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cleft_core::burn::prelude::*;
use cleft_core::burn::tensor::TensorData;
use cleft_core::registry::{TextEncoderConfig, VisionEncoderConfig};
use cleft_core::weights::{read_hf_config, summarize_safetensors};

/// ImageNet normalisation (DINOv2 / HF image processors).
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

fn is_gguf(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "gguf")
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints architecture, parameter count and dtypes of a checkpoint directory, a `.safetensors`
/// file or a GGUF file.
pub fn inspect(path: &Path) -> Result<()> {
    let (architecture, parameters, dtypes) = if is_gguf(path) {
        let file = cleft_gguf::GgufFile::open(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut dtypes = std::collections::BTreeMap::<String, usize>::new();
        for tensor in file.tensors() {
            *dtypes
                .entry(format!("{:?}", tensor.ggml_type()))
                .or_default() += 1;
        }
        let architecture = format!("{} (GGUF v{})", file.architecture()?, file.version());
        (architecture, file.parameter_count(), dtypes)
    } else {
        let summary = summarize_safetensors(path)?;
        (summary.architecture, summary.parameters, summary.dtypes)
    };
    println!("path:         {}", path.display());
    println!("architecture: {architecture}");
    println!("parameters:   {} ({parameters})", thousands(parameters));
    let dtypes: Vec<String> = dtypes
        .iter()
        .map(|(dtype, n)| format!("{dtype} ({n} tensors)"))
        .collect();
    println!("dtype:        {}", dtypes.join(", "));
    Ok(())
}

fn model_type(dir: &Path) -> Result<String> {
    let config = read_hf_config(dir)?;
    Ok(config
        .get("model_type")
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .to_string())
}

fn text_config(model: &Path) -> Result<Box<dyn TextEncoderConfig>> {
    let weights = Some(model.to_path_buf());
    if is_gguf(model) {
        return Ok(Box::new(cleft_llama::LlamaConfig {
            weights,
            ..Default::default()
        }));
    }
    Ok(match model_type(model)?.as_str() {
        "bert" => Box::new(cleft_bert::BertConfig {
            weights,
            ..Default::default()
        }),
        "gpt2" => Box::new(cleft_gpt::Gpt2Config {
            weights,
            ..Default::default()
        }),
        "llama" => Box::new(cleft_llama::LlamaConfig {
            weights,
            ..Default::default()
        }),
        other => bail!(
            "{}: model_type {other:?} is not a supported text encoder (bert, gpt2, llama)",
            model.display()
        ),
    })
}

fn print_embeddings(model: &Path, inputs: &[String], embeddings: Tensor<2>) -> Result<()> {
    let [rows, dim] = embeddings.dims();
    let values: Vec<f32> = embeddings
        .into_data()
        .try_to_vec()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let rows: Vec<serde_json::Value> = (0..rows)
        .map(|r| serde_json::json!({ "input": inputs[r], "embedding": &values[r * dim..(r + 1) * dim] }))
        .collect();
    let output =
        serde_json::json!({ "model": model.display().to_string(), "dim": dim, "embeddings": rows });
    println!("{}", serde_json::to_string(&output)?);
    Ok(())
}

/// Encodes `texts` with the text encoder at `model` (BERT/GPT-2/LLaMA directory or GGUF file)
/// and prints the pooled embeddings as JSON.
pub fn embed_text(model: &Path, texts: &[String], device: &Device) -> Result<()> {
    let encoder = text_config(model)?
        .build(device)
        .with_context(|| format!("loading {}", model.display()))?;
    let batch = encoder.tokenizer().encode_batch(texts, encoder.max_len())?;
    let (ids, mask) = batch.to_tensors(device);
    print_embeddings(model, texts, encoder.forward(ids, mask))
}

/// Encodes image files with the DINOv2 checkpoint at `model`, resized to `size` pixels and
/// ImageNet-normalised, and prints the pooled (CLEFT pre-norm mean) embeddings as JSON.
pub fn embed_image(model: &Path, images: &[PathBuf], size: usize, device: &Device) -> Result<()> {
    let kind = model_type(model)?;
    if !kind.starts_with("dinov2") {
        bail!(
            "{}: model_type {kind:?} is not a supported image encoder (dinov2)",
            model.display()
        );
    }
    let config = cleft_vit::VitConfig {
        weights: Some(model.to_path_buf()),
        input_size: Some(size),
        ..Default::default()
    };
    let encoder = config
        .build(device)
        .with_context(|| format!("loading {}", model.display()))?;
    let mut pixels = Vec::with_capacity(images.len() * 3 * size * size);
    for path in images {
        let image = image::open(path).with_context(|| format!("reading {}", path.display()))?;
        let rgb = image
            .resize_exact(
                size as u32,
                size as u32,
                image::imageops::FilterType::CatmullRom,
            )
            .to_rgb8();
        for c in 0..3 {
            pixels.extend(
                rgb.pixels()
                    .map(|p| (f32::from(p[c]) / 255.0 - MEAN[c]) / STD[c]),
            );
        }
    }
    let batch = Tensor::<4>::from_data(
        TensorData::new(pixels, [images.len(), 3, size, size]),
        device,
    );
    let names: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
    print_embeddings(model, &names, encoder.forward(batch).pooled)
}
