//! `cleft inspect`, `cleft embed-text`, `cleft embed-image`: quick checks of pretrained weights.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cleft_core::Registry;
use cleft_core::burn::prelude::*;
use cleft_core::burn::tensor::TensorData;
use cleft_core::registry::{
    ComponentKind, FieldError, ParseFn, TextEncoderConfig, VisionEncoderConfig,
};
use cleft_core::weights::{read_hf_config, summarize_checkpoint};

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
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints architecture, parameter count and dtypes of a checkpoint directory (safetensors or
/// `pytorch_model.bin`, single or sharded), a `.safetensors`, PyTorch `.bin` or GGUF file.
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
        let summary = summarize_checkpoint(path)?;
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

/// The checkpoint's claim key: `gguf:<architecture>` or the HF `model_type`.
fn claim_key(model: &Path) -> Result<String> {
    if is_gguf(model) {
        let file = cleft_gguf::GgufFile::open(model)
            .with_context(|| format!("reading {}", model.display()))?;
        return Ok(format!("gguf:{}", file.architecture()?));
    }
    model_type(model)
}

/// The section `{ weights = "<model>", …extra }` for the component of `kind` that claims the
/// checkpoint (see `Registration::claims`).
fn claimed_section(
    registry: &Registry,
    kind: ComponentKind,
    model: &Path,
    extra: &[(&str, toml::Value)],
) -> Result<(ParseFn, toml::Value)> {
    let key = claim_key(model)?;
    let registration = registry
        .claimant(kind, &key)
        .with_context(|| format!("{}", model.display()))?;
    let mut table = toml::Table::new();
    table.insert(
        "weights".to_string(),
        toml::Value::String(model.display().to_string()),
    );
    for (name, value) in extra {
        table.insert(name.to_string(), value.clone());
    }
    Ok((registration.parse, toml::Value::Table(table)))
}

fn field_error(component: &str, model: &Path, error: FieldError) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: the {component} claiming it rejects {}: {}",
        model.display(),
        if error.path.is_empty() {
            "its section".to_string()
        } else {
            format!("`{}`", error.path)
        },
        error.message
    )
}

fn text_config(registry: &Registry, model: &Path) -> Result<Box<dyn TextEncoderConfig>> {
    let (parse, section) = claimed_section(registry, ComponentKind::Text, model, &[])?;
    let ParseFn::Text(parse) = parse else {
        bail!("registry invariant: a text claimant parses text configs");
    };
    parse(section).map_err(|error| field_error("text encoder", model, error))
}

fn vision_config(
    registry: &Registry,
    model: &Path,
    size: usize,
) -> Result<Box<dyn VisionEncoderConfig>> {
    let size = toml::Value::Integer(i64::try_from(size)?);
    let (parse, section) = claimed_section(
        registry,
        ComponentKind::Vision,
        model,
        &[("input_size", size)],
    )?;
    let ParseFn::Vision(parse) = parse else {
        bail!("registry invariant: a vision claimant parses vision configs");
    };
    parse(section).map_err(|error| field_error("vision encoder", model, error))
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

/// Encodes `texts` with the text encoder at `model` (BERT/GPT-2/LLaMA directory or GGUF file,
/// or what a plugin claims; chosen through the registry)
/// and prints the pooled embeddings as JSON.
pub fn embed_text(
    registry: &Registry,
    model: &Path,
    texts: &[String],
    device: &Device,
) -> Result<()> {
    let encoder = text_config(registry, model)?
        .build(device)
        .with_context(|| format!("loading {}", model.display()))?;
    let batch = encoder.tokenizer().encode_batch(texts, encoder.max_len())?;
    let (ids, mask) = batch.to_tensors(device);
    print_embeddings(model, texts, encoder.forward(ids, mask))
}

/// Encodes image files with the vision checkpoint at `model` (DINOv2, ViT, or what a plugin
/// claims), resized to `size` pixels and
/// ImageNet-normalised, and prints the pooled (CLEFT pre-norm mean) embeddings as JSON.
pub fn embed_image(
    registry: &Registry,
    model: &Path,
    images: &[PathBuf],
    size: usize,
    device: &Device,
) -> Result<()> {
    let config = vision_config(registry, model, size)?;
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
