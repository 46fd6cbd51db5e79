//! [`Experiment`]: everything a config describes, built once and used by training, evaluation,
//! stage 2 and export.

use std::path::Path;

use burn::prelude::*;

use cleft_collectives::Collective;
use cleft_core::config::ExperimentConfig;
use cleft_core::data::ImageTextDataset;
use cleft_core::error::{CleftError, Result};
use cleft_core::model::ClipModel;
use cleft_core::peft::PeftAdapter;
use cleft_core::registry::Split;
use cleft_core::store::load_safetensors;

use crate::eval::zero_shot::configured_class_embeddings;
use crate::eval::{ZeroShotReport, zero_shot_with};
use crate::lock::RunLock;
use crate::metrics::StepMetrics;
use crate::prompt_stage::{PromptOutcome, train_prompt_on};
use crate::trainer::{TrainEnd, TrainOptions, train_stage1};

/// One experiment: its config, the training device (autodiff), the PEFT adapter (built once,
/// the tuner that injected itself into the text encoder and later exports it), and the model.
///
/// Stage 1 trains the model in place; stage 2 continues from it without a rebuild; evaluation
/// and adapter export use the same objects.
pub struct Experiment<'a> {
    /// The run directory belongs to this experiment while it exists (one process per run; the
    /// rank-0 replica's of a data-parallel group).
    _lock: Option<RunLock>,
    /// The data-parallel group this experiment is a replica of, until training takes it.
    collective: Option<Box<dyn Collective>>,
    rank: usize,
    config: &'a ExperimentConfig,
    device: Device,
    adapter: Option<Box<dyn PeftAdapter>>,
    model: ClipModel,
}

impl std::fmt::Debug for Experiment<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Experiment")
            .field("run_dir", &self.config.output.dir)
            .field("rank", &self.rank)
            .field(
                "adapter",
                &self.adapter.as_ref().map(|a| a.method().to_string()),
            )
            .finish()
    }
}

impl<'a> Experiment<'a> {
    /// Locks the run directory (`output.dir`, refused while another process or experiment holds
    /// it) and builds the model of `config` on `device` (made autodiff), every parameter
    /// initialised from `derive_seed(train.seed, path)`. The config's contracts were checked
    /// when it loaded; the device must compute in `train.precision`.
    pub fn build(config: &'a ExperimentConfig, device: &Device) -> Result<Self> {
        Self::build_as(config, device, 0)
    }

    /// Builds rank `collective.rank()` of a data-parallel group (see [`Experiment::build`]):
    /// stage-1 training then runs on its shard of every batch and averages gradients with the
    /// other replicas; rank 0 alone locks and writes the run directory. A failure to build is
    /// reported to the other replicas.
    pub fn build_replica(
        config: &'a ExperimentConfig,
        device: &Device,
        mut collective: Box<dyn Collective>,
    ) -> Result<Self> {
        match Self::build_as(config, device, collective.rank()) {
            Ok(mut experiment) => {
                experiment.collective = Some(collective);
                Ok(experiment)
            }
            Err(error) => {
                collective.abort(&error.to_string());
                Err(error)
            }
        }
    }

    fn build_as(config: &'a ExperimentConfig, device: &Device, rank: usize) -> Result<Self> {
        if cleft_core::device::precision_of(device) != Some(config.train.precision) {
            return Err(CleftError::Device(format!(
                "train.precision = {:?} but the device computes in {:?}; open it with \
                 cleft_core::device::open_device(name, precision)",
                config.train.precision,
                device.settings().float_dtype
            )));
        }
        let lock = match rank {
            0 => Some(RunLock::acquire(&config.output.dir)?),
            _ => None,
        };
        let device = device.clone().autodiff();
        let adapter = config.peft.as_ref().map(|peft| peft.build()).transpose()?;
        let model = ClipModel::build_with_adapter(config, adapter.as_deref(), &device)?;
        cleft_core::random::initialize_seeded(&model, config.train.seed);
        Ok(Self {
            _lock: lock,
            collective: None,
            rank,
            config,
            device,
            adapter,
            model,
        })
    }

    /// The config.
    pub fn config(&self) -> &'a ExperimentConfig {
        self.config
    }

    /// This experiment's rank in its data-parallel group (0 when it trains alone).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The data-parallel group, taken by stage-1 training.
    pub(crate) fn take_collective(&mut self) -> Option<Box<dyn Collective>> {
        self.collective.take()
    }

    /// The training device (autodiff).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The model (on the training device).
    pub fn model(&self) -> &ClipModel {
        &self.model
    }

    /// Replaces the model (e.g. after training).
    pub fn set_model(&mut self, model: ClipModel) {
        self.model = model;
    }

    /// The model, consuming the experiment.
    pub fn into_model(self) -> ClipModel {
        self.model
    }

    /// The PEFT adapter that tunes the text encoder, if any.
    pub fn adapter(&self) -> Option<&dyn PeftAdapter> {
        self.adapter.as_deref()
    }

    /// One split of the data set; the files it asks to keep (e.g. a drawn test selection) are
    /// written into the run directory.
    pub fn dataset(&self, split: Split) -> Result<Box<dyn ImageTextDataset>> {
        let dataset = self.config.data.build(split)?;
        if self.rank == 0 {
            crate::run_files::write_run_files(dataset.as_ref(), &self.config.output.dir)?;
        }
        Ok(dataset)
    }

    /// Loads the stage-1 weights of the run directory (`model.safetensors`) into the model.
    pub fn load_stage1(&mut self) -> Result<()> {
        let path = self.config.output.dir.join("model.safetensors");
        if !path.is_file() {
            return Err(CleftError::Training(format!(
                "{}: no stage-1 model; run `cleft train --config …` (stage contrastive) first",
                path.display()
            )));
        }
        load_safetensors(&mut self.model, &path)
    }

    /// Stage 1 (contrastive), in place; see [`train_contrastive`](crate::train_contrastive).
    pub fn train(&mut self, options: &TrainOptions) -> Result<(Vec<StepMetrics>, TrainEnd)> {
        train_stage1(self, options)
    }

    /// Stage 2 (the learned context prompt) on the current model, without rebuilding it; see
    /// [`train_prompt`](crate::train_prompt).
    pub fn train_prompt(&self, options: &TrainOptions) -> Result<PromptOutcome> {
        train_prompt_on(self.model.clone(), self.config, &self.device, options)
    }

    /// Zero-shot evaluation of the current model on `split` with the config's prompt templates
    /// (`[eval] templates`, ensembled when `ensemble`, or `prompt_template`).
    pub fn evaluate(&self, split: Split) -> Result<ZeroShotReport> {
        let dataset = self.dataset(split)?;
        let model = self.model.valid();
        let device = self.device.clone().inner();
        let (class_embeddings, prompts) = configured_class_embeddings(
            &model,
            &dataset.label_names(),
            &self.config.eval,
            &device,
        )?;
        zero_shot_with(
            &model,
            dataset.as_ref(),
            class_embeddings,
            prompts,
            self.config.eval.batch_size,
            &device,
        )
    }

    /// Writes the text encoder's adapter alone, in HF PEFT layout, to `dir` (via a temp
    /// directory renamed when complete); an error when the experiment has no `[peft]`.
    pub fn export_adapter(&self, dir: &Path) -> Result<()> {
        let adapter = self
            .adapter
            .as_deref()
            .ok_or_else(|| CleftError::Config("the experiment has no [peft] adapter".into()))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "adapter".into());
        let temp = dir.with_file_name(format!(".{name}.tmp"));
        for stale in [&temp, &dir.to_path_buf()] {
            if stale.exists() {
                std::fs::remove_dir_all(stale).map_err(|e| CleftError::io(stale, e))?;
            }
        }
        std::fs::create_dir_all(&temp).map_err(|e| CleftError::io(&temp, e))?;
        adapter.save(&self.model.text, &temp)?;
        std::fs::rename(&temp, dir).map_err(|e| CleftError::io(dir, e))
    }
}
