//! [`Predictor`]: the stable entry for using a trained run — load a run directory once, then
//! embed images and texts or classify images zero-shot against class names.
//!
//! ```no_run
//! use std::path::Path;
//! use cleft_core::device::open_device;
//! use cleft_core::{ExperimentConfig, Registry};
//! use cleft_train::inference::{Predictor, PromptChoice};
//!
//! /// Per-class probabilities of one image file; `registry` knows the run's components
//! /// (`cleft_builtins::registry()` for the built-in ones).
//! fn classify(registry: &Registry, run: &Path, image: &Path) -> cleft_core::error::Result<Vec<f32>> {
//!     let config = ExperimentConfig::load(&run.join("config.toml"), registry)?;
//!     let device = open_device("cpu", config.train.precision)?;
//!     let predictor = Predictor::load(run, registry, &device, PromptChoice::Template)?;
//!     let classes = ["Atelectasis", "Cardiomegaly"].map(String::from);
//!     let pixels = predictor.load_image(image)?; // [C, S, S]
//!     Ok(predictor.classify(&[pixels], &classes)?.remove(0)) // [K]
//! }
//! ```

use std::path::Path;

use burn::prelude::*;
use burn::tensor::TensorData;

use cleft_core::config::ExperimentConfig;
use cleft_core::error::{CleftError, Result};
use cleft_core::model::ClipModel;
use cleft_core::registry::Registry;
use cleft_core::store::load_safetensors;
use cleft_imaging::ImageOptions;

use crate::eval::features::read_back;
use crate::eval::zero_shot::{configured_class_embeddings, zero_shot_scores};
use crate::eval::{learned_class_embeddings, load_learned_prompt};
use crate::prompt_stage::PromptModel;

/// The class prompts [`Predictor::classify`] scores against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptChoice {
    /// The run config's `[eval]` templates with each lower-cased class name (ensembled when
    /// `eval.ensemble`), as `cleft eval` uses them.
    #[default]
    Template,
    /// The stage-2 learned context (`RUN_DIR/prompt/prompt.safetensors`) before each lower-cased
    /// class name; loading fails when the run has none.
    Learned,
}

/// A trained run loaded for inference: its resolved config, the stage-1 weights and, with
/// [`PromptChoice::Learned`], the learned context. Read-only: the run directory is not locked,
/// so a run can be used while nothing or something else (e.g. stage 2) works in it; weights are
/// read once, at [`load`](Self::load).
pub struct Predictor {
    config: ExperimentConfig,
    model: ClipModel,
    prompt: Option<PromptModel>,
    image_options: ImageOptions,
    device: Device,
}

impl std::fmt::Debug for Predictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predictor")
            .field("image_options", &self.image_options)
            .field("learned_prompt", &self.prompt.is_some())
            .finish()
    }
}

impl Predictor {
    /// Loads the run in `run_dir`: `config.toml` (resolved with `registry`, which must know its
    /// components), `model.safetensors` and, with [`PromptChoice::Learned`],
    /// `prompt/prompt.safetensors`. `device` must compute in the run's `train.precision` (open
    /// it with `cleft_core::device::open_device(name, config.train.precision)`); it is used
    /// without autodiff.
    pub fn load(
        run_dir: &Path,
        registry: &Registry,
        device: &Device,
        prompt: PromptChoice,
    ) -> Result<Self> {
        let config = ExperimentConfig::load(&run_dir.join("config.toml"), registry)?;
        if cleft_core::device::precision_of(device) != Some(config.train.precision) {
            return Err(CleftError::Device(format!(
                "the run was trained with train.precision = {:?} but the device computes in \
                 {:?}; open it with cleft_core::device::open_device(name, precision)",
                config.train.precision,
                device.settings().float_dtype
            )));
        }
        let weights = run_dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(CleftError::Training(format!(
                "{}: no stage-1 model; {} is not a finished run",
                weights.display(),
                run_dir.display()
            )));
        }
        let adapter = config.peft.as_ref().map(|peft| peft.build()).transpose()?;
        let mut model = ClipModel::build_with_adapter(&config, adapter.as_deref(), device)?;
        // Seeded like the Experiment, so anything the file does not hold matches training.
        cleft_core::random::initialize_seeded(&model, config.train.seed);
        load_safetensors(&mut model, &weights)?;
        let prompt = match prompt {
            PromptChoice::Template => None,
            PromptChoice::Learned => Some(load_learned_prompt(&config, &model, run_dir, device)?),
        };
        let image_options = image_options_of(&config, &model)?;
        Ok(Self {
            config,
            model,
            prompt,
            image_options,
            device: device.clone(),
        })
    }

    /// The run's resolved config.
    pub fn config(&self) -> &ExperimentConfig {
        &self.config
    }

    /// The model (stage-1 weights, no autodiff).
    pub fn model(&self) -> &ClipModel {
        &self.model
    }

    /// How an image file becomes the model input `[C, S, S]`: the run's `[data.image]` settings
    /// when its data set reads files (CheXpert, MIMIC-CXR, …; augmentation is never applied),
    /// else — data sets generated in memory such as `synthetic-cxr`, whose images are grey
    /// values `v` in 0..1 normalised as `(v − 0.5) / 0.5` — the vision encoder's input (its
    /// side `S` and channels `C`) with that normalisation, no Otsu crop and `load_size = S`, so
    /// an `S × S` grey PNG holding `(x · 0.5 + 0.5) · 255` loads back to `x` (to 8-bit rounding).
    ///
    /// The settings are read from the resolved config rather than asked of the data set's
    /// config object: `cleft-core`'s `DatasetConfig` knows nothing of image files.
    pub fn image_options(&self) -> &ImageOptions {
        &self.image_options
    }

    /// Reads an image file (PNG, JPEG or DICOM) into the model input `[C, S, S]`, row-major,
    /// with [`image_options`](Self::image_options) and no augmentation.
    pub fn load_image(&self, path: &Path) -> Result<Vec<f32>> {
        Ok(self.image_options.load(path, None)?)
    }

    /// Image embeddings `[N, P]`, L2-normalised, of `images` (each `[C, S, S]` row-major as
    /// [`load_image`](Self::load_image) gives it), encoded in batches of `eval.batch_size`.
    pub fn embed_images(&self, images: &[Vec<f32>]) -> Result<Tensor<2>> {
        let (channels, side) = (self.model.vision.channels(), self.model.vision.image_size());
        let size = channels * side * side;
        if let Some((i, image)) = images.iter().enumerate().find(|(_, v)| v.len() != size) {
            return Err(CleftError::Invalid(format!(
                "image {i} has {} values; the model takes [{channels}, {side}, {side}] = {size}",
                image.len()
            )));
        }
        if images.is_empty() {
            return Err(CleftError::Invalid("no images to embed".into()));
        }
        let batches = images
            .chunks(self.config.eval.batch_size.max(1))
            .map(|batch| {
                let data: Vec<f32> = batch.concat();
                let shape = [batch.len(), channels, side, side];
                let pixels = Tensor::<4>::from_data(TensorData::new(data, shape), &self.device);
                self.model.encode_images(pixels)
            })
            .collect();
        Ok(Tensor::cat(batches, 0))
    }

    /// Text embeddings `[N, P]`, L2-normalised, of `texts` as written (no template), tokenised
    /// with the text encoder's tokenizer and `max_len`.
    pub fn embed_texts(&self, texts: &[String]) -> Result<Tensor<2>> {
        self.model.encode_texts(texts, &self.device)
    }

    /// Class embeddings `[K, P]`, L2-normalised, of `class_names` under the prompt choice given
    /// to [`load`](Self::load).
    pub fn class_embeddings(&self, class_names: &[String]) -> Result<Tensor<2>> {
        match &self.prompt {
            Some(prompt) => learned_class_embeddings(prompt, class_names, &self.device),
            None => Ok(configured_class_embeddings(
                &self.model,
                class_names,
                &self.config.eval,
                &self.device,
            )?
            .0),
        }
    }

    /// Zero-shot probabilities `[N][K]`: per image, the softmax over `class_names` of
    /// `exp(logit_scale) · cosine(image, class)` (see
    /// [`class_embeddings`](Self::class_embeddings)), in the order of `class_names`.
    pub fn classify(&self, images: &[Vec<f32>], class_names: &[String]) -> Result<Vec<Vec<f32>>> {
        if class_names.is_empty() {
            return Err(CleftError::Invalid("classify needs class names".into()));
        }
        let embeddings = self.embed_images(images)?;
        let dim = embeddings.dims()[1];
        zero_shot_scores(
            &self.model,
            &read_back(embeddings)?,
            dim,
            self.class_embeddings(class_names)?,
            &self.device,
        )
    }
}

/// See [`Predictor::image_options`].
fn image_options_of(config: &ExperimentConfig, model: &ClipModel) -> Result<ImageOptions> {
    let resolved: toml::Table = config
        .to_toml()?
        .parse()
        .map_err(|e| CleftError::Config(format!("resolved config: {e}")))?;
    let table = resolved.get("data").and_then(|data| data.get("image"));
    let mut options = match table {
        Some(table) => table
            .clone()
            .try_into::<ImageOptions>()
            .map_err(|e| CleftError::Config(format!("[data.image]: {e}")))?,
        None => {
            let side = model.vision.image_size();
            ImageOptions {
                image_size: side,
                load_size: side,
                channels: model.vision.channels(),
                otsu_crop: false,
                mean: 0.5,
                std: 0.5,
                ..ImageOptions::default()
            }
        }
    };
    options.augment.enabled = false;
    Ok(options)
}
