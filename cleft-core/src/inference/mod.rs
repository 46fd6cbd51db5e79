//! Inference with a trained run: [`Predictor`] loads a run directory (or a config and weight
//! files) once, then embeds images and texts or classifies images zero-shot against class names.
//! Images come as files, encoded bytes (PNG, JPEG, DICOM), decoded pixels or prepared model
//! input ([`ImageSource`]), in batches; the run's data set component declares how each becomes
//! the model input ([`DatasetConfig::preprocessor`](crate::registry::DatasetConfig::preprocessor)).
//!
//! The pure model computations it shares with evaluation live in [`zero_shot`] (class prompts,
//! ensembled class embeddings, scores) and [`learned`] (the stage-2 learned context).
//!
//! ```no_run
//! use std::path::Path;
//! use cleft_core::device::open_device;
//! use cleft_core::inference::{ImageSource, Predictor, PromptChoice};
//! use cleft_core::{ExperimentConfig, Registry};
//!
//! /// Per-class probabilities of one image file and one PNG in memory; `registry` knows the
//! /// run's components (`cleft_builtins::registry()` for the built-in ones).
//! fn classify(
//!     registry: &Registry,
//!     run: &Path,
//!     image: &Path,
//!     png: &[u8],
//! ) -> cleft_core::Result<Vec<Vec<f32>>> {
//!     let config = ExperimentConfig::load(&run.join("config.toml"), registry)?;
//!     let device = open_device("cpu", config.train.precision)?;
//!     let predictor = Predictor::load(run, registry, &device, PromptChoice::Template)?;
//!     let classes = ["Atelectasis", "Cardiomegaly"].map(String::from);
//!     let images = [ImageSource::File(image), ImageSource::Encoded(png)];
//!     predictor.classify(&images, &classes) // [2][K]
//! }
//! ```

pub mod learned;
mod source;
pub mod zero_shot;

use std::path::Path;

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::config::ExperimentConfig;
use crate::error::{CleftError, Result};
use crate::model::ClipModel;
use crate::preprocess::ImagePreprocessor;
use crate::prompt_model::PromptModel;
use crate::registry::Registry;
use crate::store::load_safetensors;

pub use learned::{learned_class_embeddings, learned_prompt_path, load_learned_prompt};
pub use source::ImageSource;
pub use zero_shot::{configured_class_embeddings, read_back, zero_shot_scores};

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

/// A trained model loaded for inference: its resolved config, the stage-1 weights, the data
/// set's image preprocessing and, optionally, a learned context. Read-only: a run directory is
/// not locked, so a run can be used while nothing or something else (e.g. stage 2) works in it;
/// weights are read once, when loading.
pub struct Predictor {
    config: ExperimentConfig,
    model: ClipModel,
    prompt: Option<PromptModel>,
    preprocessor: Option<Box<dyn ImagePreprocessor>>,
    dataset: String,
    device: Device,
}

impl std::fmt::Debug for Predictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predictor")
            .field("dataset", &self.dataset)
            .field("preprocessor", &self.preprocessor)
            .field("learned_prompt", &self.prompt.is_some())
            .finish()
    }
}

impl Predictor {
    /// Loads the run in `run_dir`: `config.toml` (resolved with `registry`, which must know its
    /// components), `model.safetensors` and, with [`PromptChoice::Learned`],
    /// `prompt/prompt.safetensors`. `device` must compute in the run's `train.precision` (open
    /// it with [`open_device(name, config.train.precision)`](crate::device::open_device)); it is
    /// used without autodiff.
    pub fn load(
        run_dir: &Path,
        registry: &Registry,
        device: &Device,
        prompt: PromptChoice,
    ) -> Result<Self> {
        let config = ExperimentConfig::load(&run_dir.join("config.toml"), registry)?;
        let weights = run_dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(CleftError::Training(format!(
                "{}: no stage-1 model; {} is not a finished run",
                weights.display(),
                run_dir.display()
            )));
        }
        let mut predictor = Self::from_weights(config, &weights, device)?;
        if prompt == PromptChoice::Learned {
            let learned = load_learned_prompt(
                &predictor.config,
                &predictor.model,
                run_dir,
                &predictor.device,
            )?;
            predictor.prompt = Some(learned);
        }
        Ok(predictor)
    }

    /// A predictor from a resolved `config` and its stage-1 `weights` (a `model.safetensors`),
    /// scoring with template prompts (see [`with_learned_prompt`](Self::with_learned_prompt)).
    /// `device` must compute in `config.train.precision`.
    pub fn from_weights(config: ExperimentConfig, weights: &Path, device: &Device) -> Result<Self> {
        if crate::device::precision_of(device) != Some(config.train.precision) {
            return Err(CleftError::Device(format!(
                "the run was trained with train.precision = {:?} but the device computes in \
                 {:?}; open it with cleft_core::device::open_device(name, precision)",
                config.train.precision,
                device.settings().float_dtype
            )));
        }
        let adapter = config.peft.as_ref().map(|peft| peft.build()).transpose()?;
        let mut model = ClipModel::build_with_adapter(&config, adapter.as_deref(), device)?;
        // Seeded like the Experiment, so anything the file does not hold matches training.
        crate::random::initialize_seeded(&model, config.train.seed);
        load_safetensors(&mut model, weights)?;
        let preprocessor = config.data.preprocessor()?;
        Ok(Self {
            dataset: crate::params::type_name(&*config.data),
            config,
            model,
            prompt: None,
            preprocessor,
            device: device.clone(),
        })
    }

    /// Scores [`classify`](Self::classify) with the learned context saved in `path` (a stage-2
    /// `prompt.safetensors`) instead of template prompts.
    pub fn with_learned_prompt(mut self, path: &Path) -> Result<Self> {
        let learned = learned::load_prompt_file(&self.config, &self.model, path, &self.device)?;
        self.prompt = Some(learned);
        Ok(self)
    }

    /// The run's resolved config.
    pub fn config(&self) -> &ExperimentConfig {
        &self.config
    }

    /// The model (stage-1 weights, no autodiff).
    pub fn model(&self) -> &ClipModel {
        &self.model
    }

    /// How the run's data set turns an image into the model input (no augmentation); `None`
    /// when it declares none, and then only [`ImageSource::Prepared`] inputs are accepted.
    pub fn preprocessor(&self) -> Option<&dyn ImagePreprocessor> {
        self.preprocessor.as_deref()
    }

    /// The model input `[C, S, S]`, `C` and `S` those of the vision encoder.
    pub fn input_shape(&self) -> [usize; 3] {
        let side = self.model.vision.image_size();
        [self.model.vision.channels(), side, side]
    }

    /// One image as the model input `[C, S, S]`, row-major; errors name the image (index 0).
    pub fn prepare(&self, image: ImageSource<'_>) -> Result<Vec<f32>> {
        self.prepare_at(0, &image)
    }

    /// Reads an image file (PNG, JPEG or DICOM) into the model input `[C, S, S]`.
    pub fn load_image(&self, path: &Path) -> Result<Vec<f32>> {
        self.prepare(ImageSource::File(path))
    }

    fn prepare_at(&self, index: usize, image: &ImageSource<'_>) -> Result<Vec<f32>> {
        image.prepare(
            index,
            self.preprocessor.as_deref(),
            &self.dataset,
            self.input_shape(),
        )
    }

    /// Image embeddings `[N, P]`, L2-normalised, of `images`, prepared and encoded in chunks of
    /// `eval.batch_size` (so at most one chunk of decoded images is held at a time). An image
    /// that cannot be used fails the call with [`CleftError::Image`] naming its index.
    ///
    /// # Shapes
    /// - `images`: `N` images; output `[N, P]` with `P` the projection dimension.
    pub fn embed_images(&self, images: &[ImageSource<'_>]) -> Result<Tensor<2>> {
        if images.is_empty() {
            return Err(CleftError::Invalid("no images to embed".into()));
        }
        let [channels, side, _] = self.input_shape();
        let chunk = self.config.eval.batch_size.max(1);
        let mut batches = Vec::with_capacity(images.len().div_ceil(chunk));
        for (start, batch) in (0..).step_by(chunk).zip(images.chunks(chunk)) {
            let mut data = Vec::with_capacity(batch.len() * channels * side * side);
            for (offset, image) in batch.iter().enumerate() {
                data.extend(self.prepare_at(start + offset, image)?);
            }
            let shape = [batch.len(), channels, side, side];
            let pixels = Tensor::<4>::from_data(TensorData::new(data, shape), &self.device);
            batches.push(self.model.encode_images(pixels));
        }
        Ok(Tensor::cat(batches, 0))
    }

    /// Text embeddings `[N, P]`, L2-normalised, of `texts` as written (no template), tokenised
    /// with the text encoder's tokenizer and `max_len`.
    pub fn embed_texts(&self, texts: &[String]) -> Result<Tensor<2>> {
        self.model.encode_texts(texts, &self.device)
    }

    /// Class embeddings `[K, P]`, L2-normalised, of `class_names` under the prompt choice
    /// loaded ([`PromptChoice`]).
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
    pub fn classify(
        &self,
        images: &[ImageSource<'_>],
        class_names: &[String],
    ) -> Result<Vec<Vec<f32>>> {
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
