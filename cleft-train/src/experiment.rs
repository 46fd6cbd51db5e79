//! [`Experiment`]: everything a config describes, built once and used by training, evaluation,
//! stage 2 and export.

use std::path::Path;
use std::sync::Arc;

use burn::prelude::*;

use cleft_collectives::Collective;
use cleft_collectives::Interconnect;
use cleft_core::config::ExperimentConfig;
use cleft_core::data::ImageTextDataset;
use cleft_core::error::{CleftError, Result};
use cleft_core::model::ClipModel;
use cleft_core::peft::PeftAdapter;
use cleft_core::registry::Split;
use cleft_core::store::{load_safetensors, save_safetensors};

use crate::contrastive::train_stage1;
use crate::eval::zero_shot::configured_class_embeddings;
use crate::eval::zero_shot::{ZeroShotReport, zero_shot_with};
use crate::launch::{Launcher, run_replicas};
use crate::lock::RunLock;
use crate::metrics::StepMetrics;
use crate::options::{Stage, TrainEnd, TrainOptions};
use crate::plots::plot_history;
use crate::prompt_stage::{PromptModel, PromptOutcome, finish_stage2, train_stage2};
use crate::replication::Replication;

/// What [`Experiment::train`] reports (rank 0's view on replicas).
#[derive(Debug)]
pub struct TrainReport {
    /// Per-step metrics of the stage's whole run, including steps before a resume (rank 0 logs
    /// them; `comm_s` is its time in collective operations). Empty on ranks other than 0.
    pub history: Vec<StepMetrics>,
    /// Completed or interrupted.
    pub end: TrainEnd,
    /// Stage 2, completed, on rank 0: the learned prompts' directory and their zero-shot report.
    pub prompt: Option<PromptOutcome>,
}

/// One experiment: its config, where it trains ([`Launcher`]), the training device (autodiff),
/// the PEFT adapter (built once, the tuner that injected itself into the text encoder and later
/// exports it), and the model.
///
/// [`Experiment::train`] is the one way to train: stage 1 trains the model in place; stage 2
/// continues from it without a rebuild (or from the run directory's weights after
/// [`Experiment::load_stage1`]); evaluation and adapter export use the same objects.
pub struct Experiment<'a> {
    /// The run directory belongs to this experiment while it exists (one process per run; the
    /// rank-0 replica's of a data-parallel group).
    _lock: Option<RunLock>,
    /// The group this experiment is a rank of ([`Launcher::Rank`]), until training takes it.
    collective: Option<Box<dyn Collective>>,
    /// The other replicas' devices and interconnect ([`Launcher::Replicas`]).
    replicas: Option<(Vec<Device>, Interconnect)>,
    rank: usize,
    config: &'a ExperimentConfig,
    device: Device,
    adapter: Option<Box<dyn PeftAdapter>>,
    model: ClipModel,
    prompt: Option<PromptModel>,
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
    /// Builds the model of `config` where `launcher` says (a `&Device` converts into
    /// [`Launcher::Device`]), made autodiff, every parameter initialised from
    /// `derive_seed(train.seed, path)`; rank 0 locks the run directory (`output.dir`, refused
    /// while another process or experiment holds it). The config's contracts were checked when it
    /// loaded; every device must compute in `train.precision`. A rank that fails to build reports
    /// it to its group.
    pub fn build(config: &'a ExperimentConfig, launcher: impl Into<Launcher>) -> Result<Self> {
        let launcher = launcher.into();
        let built = launcher
            .device()
            .cloned()
            .and_then(|device| Self::build_on(config, &device, launcher.rank()));
        match (built, launcher) {
            (Ok(experiment), Launcher::Device(_)) => Ok(experiment),
            (Ok(mut experiment), Launcher::Rank { collective, .. }) => {
                experiment.collective = Some(collective);
                Ok(experiment)
            }
            (
                Ok(mut experiment),
                Launcher::Replicas {
                    devices,
                    interconnect,
                },
            ) => {
                for device in &devices[1..] {
                    check_precision(config, device)?;
                }
                experiment.replicas = Some((devices, interconnect));
                Ok(experiment)
            }
            (Err(error), Launcher::Rank { mut collective, .. }) => {
                collective.abort(&error.to_string());
                Err(error)
            }
            (Err(error), _) => Err(error),
        }
    }

    fn build_on(config: &'a ExperimentConfig, device: &Device, rank: usize) -> Result<Self> {
        check_precision(config, device)?;
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
            replicas: None,
            rank,
            config,
            device,
            adapter,
            model,
            prompt: None,
        })
    }

    /// Trains `stage` where the experiment was built ([`Launcher`]), through the one training
    /// driver: checkpoints every `checkpoint_every` steps (newest `train.keep_checkpoints`
    /// kept), per-step `metrics.jsonl` / `metrics.csv`, `loss.png` / `lr.png`; with
    /// [`TrainOptions::resume`] it continues from the stage's newest checkpoint with exactly the
    /// losses an uninterrupted run gives (same machine and build); an interrupt checkpoints and
    /// returns [`TrainEnd::Interrupted`]. A non-finite loss or gradient norm stops training with
    /// an error naming the step; checkpoints already written stay valid.
    ///
    /// - [`Stage::Contrastive`] writes into the run directory the resolved `config.toml`, the
    ///   final `model.safetensors` and the PEFT adapter alone in HF PEFT layout (`adapter/`).
    /// - [`Stage::Prompt`] trains the `[prompt]` learner on the current model (train stage 1 or
    ///   [`load_stage1`](Self::load_stage1) first) and writes `prompt/`: checkpoints, metrics,
    ///   `prompt.safetensors` and `zero_shot.json` (the test split with the learned prompts).
    ///
    /// On replicas the error of a failed rank names it; every replica stops.
    pub fn train(&mut self, stage: Stage, options: &TrainOptions) -> Result<TrainReport> {
        if stage == Stage::Prompt && self.config.prompt.is_none() {
            // Fail before any replica starts.
            return Err(CleftError::Config(
                "stage 2 needs a `[prompt]` section (e.g. `type = \"context\"`)".into(),
            ));
        }
        let Some((devices, interconnect)) = self.replicas.clone() else {
            let collective = self.collective.take();
            return self.train_rank(stage, collective, options);
        };
        let config = self.config;
        run_replicas(
            &devices,
            interconnect,
            |collective| self.train_rank(stage, Some(collective), options),
            |device, collective| {
                let mut replica = Experiment::build(
                    config,
                    Launcher::Rank {
                        device: device.clone(),
                        collective,
                    },
                )?;
                if stage == Stage::Prompt {
                    replica.load_stage1()?;
                }
                replica.train(stage, options).map(|_| ())
            },
        )
    }

    /// `stage` on this experiment's model, alone or as one rank of `collective`'s group (which
    /// hears of a failure).
    fn train_rank(
        &mut self,
        stage: Stage,
        mut collective: Option<Box<dyn Collective>>,
        options: &TrainOptions,
    ) -> Result<TrainReport> {
        let replication = collective.as_mut().map(|collective| {
            let gather = self
                .config
                .objective
                .gather()
                .unwrap_or(collective.world_size() > 1);
            Replication::new(collective.as_mut(), gather)
        });
        let result = match stage {
            Stage::Contrastive => self.train_contrastive(replication, options),
            Stage::Prompt => self.train_prompt(replication, options),
        };
        if let Some(collective) = collective.as_mut() {
            match &result {
                Ok(_) => collective.finish(),
                Err(error) => collective.abort(&error.to_string()),
            }
        }
        result
    }

    fn train_contrastive(
        &mut self,
        replication: Option<Replication<'_>>,
        options: &TrainOptions,
    ) -> Result<TrainReport> {
        let dataset: Arc<dyn ImageTextDataset> = Arc::from(self.dataset(Split::Train)?);
        let finished = train_stage1(
            self.model.clone(),
            self.config,
            dataset,
            &self.device,
            replication,
            options,
        )?;
        self.model = finished.model;
        if finished.end == TrainEnd::Completed && self.rank == 0 {
            let run_dir = &self.config.output.dir;
            save_safetensors(&self.model, &run_dir.join("model.safetensors"))?;
            if self.adapter.is_some() {
                self.export_adapter(&run_dir.join("adapter"))?;
            }
            plot_history(&finished.history, run_dir)?;
        }
        Ok(TrainReport {
            history: finished.history,
            end: finished.end,
            prompt: None,
        })
    }

    fn train_prompt(
        &mut self,
        replication: Option<Replication<'_>>,
        options: &TrainOptions,
    ) -> Result<TrainReport> {
        let finished = train_stage2(
            self.model.clone(),
            self.config,
            &self.device,
            replication,
            options,
        )?;
        let prompt = match (&finished.end, self.rank) {
            (TrainEnd::Completed, 0) => Some(finish_stage2(
                &finished.model,
                &finished.history,
                self.config,
                &self.device,
            )?),
            _ => None,
        };
        self.prompt = Some(finished.model);
        Ok(TrainReport {
            history: finished.history,
            end: finished.end,
            prompt,
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

    /// The training device (autodiff).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The model (on the training device).
    pub fn model(&self) -> &ClipModel {
        &self.model
    }

    /// The stage-2 model (stage-1 model and learned context) after [`Experiment::train`] ran
    /// [`Stage::Prompt`].
    pub fn prompt_model(&self) -> Option<&PromptModel> {
        self.prompt.as_ref()
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

fn check_precision(config: &ExperimentConfig, device: &Device) -> Result<()> {
    if cleft_core::device::precision_of(device) != Some(config.train.precision) {
        return Err(CleftError::Device(format!(
            "train.precision = {:?} but the device computes in {:?}; open it with \
             cleft_core::device::open_device(name, precision)",
            config.train.precision,
            device.settings().float_dtype
        )));
    }
    Ok(())
}
