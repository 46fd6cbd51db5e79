//! Data-parallel training in one process: two CPU replicas with half the batch each train what
//! one device with the whole batch trains (the objective sees the gathered global batch); a
//! failing replica stops the group with its rank and error named; a run resumes only with its
//! own number of replicas.

use cleft_core::burn::prelude::*;
use cleft_core::contract::ImageShape;
use cleft_core::data::{ImageTextDataset, ImageTextSample};
use cleft_core::registry::{DatasetConfig, Split};
use cleft_core::{CleftError, ExperimentConfig};
use cleft_synthetic::SyntheticCxrConfig;
use cleft_tests::{TINY_CONFIG, Trained, fast_config_from, params, train_replicas, train_stage1};
use cleft_train::state::BatchOrder;
use cleft_train::{TrainEnd, TrainOptions};
use serde::{Deserialize, Serialize};

/// The stated tolerance: the two runs add the same products in another order (a gradient is a
/// sum over two half batches instead of one), a few float32 roundings apart per step; 1e-5
/// bounds the difference after the few AdamW steps here (updates are at most `lr` = 1e-3).
const TOLERANCE: f32 = 1e-5;

/// The `[objective]` bodies the data-parallel and accumulation tests run each objective with.
const OBJECTIVES: [&str; 3] = [
    "type = \"clip\"\nreduction = \"sum\"",
    "type = \"medclip\"",
    "type = \"convirt\"",
];

fn run_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cleft-replicas-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config_with_objective(objective: &str, dir: &std::path::Path, steps: usize) -> ExperimentConfig {
    let section = "[objective]\ntype = \"clip\"\nreduction = \"sum\"";
    assert!(
        TINY_CONFIG.contains(section),
        "the tiny config's [objective] section changed"
    );
    let text = TINY_CONFIG.replace(section, &format!("[objective]\n{objective}"));
    let mut config = fast_config_from(&text, dir, steps);
    // Clipping acts on the norm of the summed gradients: the replicas must clip alike.
    config.train.grad_clip_norm = Some(1.0);
    config
}

/// Two replicas with 8 samples each against one device with 16: the same losses and the same
/// weights after every step, for each objective (soft targets included).
#[test]
fn two_replicas_with_half_batches_train_what_one_device_with_the_whole_batch_trains() {
    for objective in OBJECTIVES {
        let name = objective.split('"').nth(1).unwrap();
        let steps = 3;
        let single_config = config_with_objective(objective, &run_dir(&format!("{name}-1")), steps);
        let single =
            train_stage1(&single_config, &Device::flex(), &TrainOptions::default()).unwrap();
        let pair_config = config_with_objective(objective, &run_dir(&format!("{name}-2")), steps);
        let pair = train_replicas(
            &pair_config,
            &[Device::flex(), Device::flex()],
            &TrainOptions::default(),
        )
        .unwrap();

        assert_same_training(name, &single, &pair, steps);
        assert!(
            pair.history
                .iter()
                .all(|m| m.extra.iter().any(|(key, _)| key == "comm_s"))
        );
        // Rank 0 alone wrote the run: its files are those of a single-device run.
        for file in [
            "config.toml",
            "metrics.jsonl",
            "model.safetensors",
            "loss.png",
        ] {
            assert!(
                pair_config.output.dir.join(file).is_file(),
                "{name}: {file}"
            );
        }

        // The checkpoint records two replicas: resuming on one is refused by name.
        drop(pair);
        let resume = TrainOptions {
            resume: true,
            ..TrainOptions::default()
        };
        let error = train_stage1(&pair_config, &Device::flex(), &resume)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("2 replica") && error.contains("same number"),
            "{error}"
        );
        for dir in [&single_config.output.dir, &pair_config.output.dir] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}

/// `other` trained what `single` trained: the same losses at every step and the same weights
/// after the last, within [`TOLERANCE`].
fn assert_same_training(name: &str, single: &Trained, other: &Trained, steps: usize) {
    assert_eq!(other.history.len(), steps, "{name}: rank 0 logs every step");
    for (one, two) in single.history.iter().zip(&other.history) {
        let scale = one.loss.abs().max(1.0);
        assert!(
            (one.loss - two.loss).abs() <= f64::from(TOLERANCE) * scale,
            "{name} step {}: loss {} in one batch, {} split",
            one.step,
            one.loss,
            two.loss
        );
    }
    let (expected, actual) = (params(&single.model), params(&other.model));
    assert_eq!(expected.len(), actual.len());
    let mut trained = 0;
    for ((path, want), (_, got)) in expected.iter().zip(&actual) {
        let worst = want
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        // An attention key bias adds `q·b` to every score of a query, which softmax
        // ignores: its gradient is zero in exact arithmetic and rounding noise in float32,
        // and AdamW turns noise into steps of up to `lr`: `lr · steps` bounds it.
        let bound = match path.ends_with("key.bias") {
            true => 1e-3 * steps as f32,
            false => TOLERANCE,
        };
        assert!(worst <= bound, "{name}: {path} differs by {worst}");
        trained += usize::from(path.contains("lora_") || path.starts_with("vision."));
    }
    assert!(trained > 0);
}

/// Gradient accumulation in open_clip's `accum_freq` form: 2 micro-batches of 8 train what one
/// batch of 16 trains — every sample sees all 16 as negatives — on one device and on two
/// replicas (4 rows each per micro-batch, gathered), for each objective.
#[test]
fn two_accumulated_micro_batches_of_8_train_what_one_batch_of_16_trains() {
    for objective in OBJECTIVES {
        let name = objective.split('"').nth(1).unwrap();
        let steps = 3;
        let single_config =
            config_with_objective(objective, &run_dir(&format!("accum-{name}-1")), steps);
        assert_eq!(single_config.train.batch_size, 16);
        let single =
            train_stage1(&single_config, &Device::flex(), &TrainOptions::default()).unwrap();
        let mut accumulated =
            config_with_objective(objective, &run_dir(&format!("accum-{name}-2x8")), steps);
        accumulated.train.batch_size = 8;
        accumulated.train.grad_accumulation = 2;
        let two = train_stage1(&accumulated, &Device::flex(), &TrainOptions::default()).unwrap();
        assert_same_training(&format!("{name}, 2 x 8"), &single, &two, steps);
        drop(two);
        std::fs::remove_dir_all(&accumulated.output.dir).unwrap();
        let replicas = train_replicas(
            &accumulated,
            &[Device::flex(), Device::flex()],
            &TrainOptions::default(),
        )
        .unwrap();
        assert_same_training(
            &format!("{name}, 2 x 8 on 2 replicas"),
            &single,
            &replicas,
            steps,
        );
        drop(replicas);
        for dir in [&single_config.output.dir, &accumulated.output.dir] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}

/// The synthetic data, with one training sample that cannot be read.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FlakyConfig {
    synthetic: SyntheticCxrConfig,
    unreadable: usize,
}

#[typetag::serde(name = "flaky-test")]
impl DatasetConfig for FlakyConfig {
    fn build(&self, split: Split) -> cleft_core::Result<Box<dyn ImageTextDataset>> {
        Ok(Box::new(Flaky {
            inner: self.synthetic.build(split)?,
            unreadable: (split == Split::Train).then_some(self.unreadable),
        }))
    }
    fn image_shape(&self) -> cleft_core::Result<Option<ImageShape>> {
        self.synthetic.image_shape()
    }
}

#[derive(Debug)]
struct Flaky {
    inner: Box<dyn ImageTextDataset>,
    unreadable: Option<usize>,
}

impl ImageTextDataset for Flaky {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn get(&self, index: usize) -> cleft_core::Result<ImageTextSample> {
        self.inner.get(index)
    }
    fn get_for_training(&self, index: usize, seed: u64) -> cleft_core::Result<ImageTextSample> {
        if Some(index) == self.unreadable {
            return Err(CleftError::Data(format!(
                "images/{index:05}.png: truncated PNG"
            )));
        }
        self.inner.get_for_training(index, seed)
    }
    fn image_shape(&self) -> [usize; 3] {
        self.inner.image_shape()
    }
    fn label_names(&self) -> Vec<String> {
        self.inner.label_names()
    }
}

/// Rank 1's shard of the second step holds an unreadable image: both replicas stop, the error
/// names rank 1 and the file, and the run directory holds only the complete checkpoint of
/// step 1 — nothing half-written, no final model.
#[test]
fn a_failing_replica_stops_the_group_with_its_rank_and_error() {
    let dir = run_dir("flaky");
    let mut config = fast_config_from(TINY_CONFIG, &dir, 4);
    config.train.checkpoint_every = 1;
    let synthetic = SyntheticCxrConfig {
        train_size: 64,
        ..SyntheticCxrConfig::default()
    };
    // The global batch of step 1 is positions 16..32 of epoch 0's order; rank 1 reads 24..32.
    let mut order = BatchOrder::new(synthetic.train_size, config.train.seed);
    let mut state = cleft_train::TrainState::fresh(2);
    order.next_batch(&mut state, 16);
    let unreadable = order.next_batch(&mut state, 16)[10];
    config.data = Box::new(FlakyConfig {
        synthetic,
        unreadable,
    });

    let error = train_replicas(
        &config,
        &[Device::flex(), Device::flex()],
        &TrainOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("replica rank 1 of 2")
            && error.contains(&format!("images/{unreadable:05}.png: truncated PNG")),
        "{error}"
    );
    let checkpoints: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(checkpoints, ["step-00000001"], "{checkpoints:?}");
    assert!(dir.join("checkpoints/step-00000001/state.json").is_file());
    assert!(!dir.join("model.safetensors").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ctrl-C reaches the replicas at different moments; the flag travels with a step's gradients,
/// so both stop after the same step, rank 0 checkpoints, and `--resume` with the same replicas
/// gives the uninterrupted run's losses bit for bit.
#[test]
fn interrupted_replicas_stop_together_and_resume_exactly() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let devices = [Device::flex(), Device::flex()];
    let straight_config = fast_config_from(TINY_CONFIG, &run_dir("straight"), 3);
    let straight = train_replicas(&straight_config, &devices, &TrainOptions::default()).unwrap();
    let straight_losses: Vec<u64> = straight.history.iter().map(|m| m.loss.to_bits()).collect();
    drop(straight);

    let config = fast_config_from(TINY_CONFIG, &run_dir("interrupted"), 3);
    let interrupted = TrainOptions {
        interrupt: Some(Arc::new(AtomicBool::new(true))),
        ..TrainOptions::default()
    };
    let first = train_replicas(&config, &devices, &interrupted).unwrap();
    assert_eq!(
        first.end,
        TrainEnd::Interrupted {
            checkpoint: config.output.dir.join("checkpoints/step-00000001")
        }
    );
    assert_eq!(first.history.len(), 1);
    drop(first);
    let resume = TrainOptions {
        resume: true,
        ..TrainOptions::default()
    };
    let resumed = train_replicas(&config, &devices, &resume).unwrap();
    assert_eq!(resumed.end, TrainEnd::Completed);
    let losses: Vec<u64> = resumed.history.iter().map(|m| m.loss.to_bits()).collect();
    assert_eq!(losses, straight_losses);
    drop(resumed);
    for dir in [&straight_config.output.dir, &config.output.dir] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Stage 2 on two replicas (each reading half of every batch) trains what one device trains:
/// the paper recipe's per-image cross-entropy averaged over the replicas' shards is the mean
/// over the whole batch.
#[test]
fn stage_two_on_two_replicas_trains_what_one_device_trains() {
    let steps = 3;
    let single_config = fast_config_from(TINY_CONFIG, &run_dir("stage2-1"), 4);
    train_stage1(&single_config, &Device::flex(), &TrainOptions::default()).unwrap();
    let pair_config = fast_config_from(TINY_CONFIG, &run_dir("stage2-2"), 4);
    std::fs::create_dir_all(&pair_config.output.dir).unwrap();
    std::fs::copy(
        single_config.output.dir.join("model.safetensors"),
        pair_config.output.dir.join("model.safetensors"),
    )
    .unwrap();
    let with_stage2 = |mut config: ExperimentConfig| {
        config.prompt_train.steps = steps;
        config.prompt_train.batch_size = 16;
        config.prompt_train.warmup_steps = 1;
        config
    };
    let (single_config, pair_config) = (with_stage2(single_config), with_stage2(pair_config));
    let single =
        cleft_tests::train_stage2(&single_config, &Device::flex(), &TrainOptions::default())
            .unwrap();
    let launcher = cleft_train::Launcher::replicas(vec![Device::flex(), Device::flex()]);
    let pair = cleft_tests::train(
        &pair_config,
        launcher,
        cleft_train::Stage::Prompt,
        &TrainOptions::default(),
    )
    .unwrap();
    assert_eq!(pair.history.len(), steps);
    assert_ne!(
        single.history[0].loss,
        single.history[steps - 1].loss,
        "the context trains"
    );
    for (one, two) in single.history.iter().zip(&pair.history) {
        assert!(
            (one.loss - two.loss).abs() <= f64::from(TOLERANCE) * one.loss.abs().max(1.0),
            "stage 2 step {}: loss {} on one device, {} on two replicas",
            one.step,
            one.loss,
            two.loss
        );
    }
    let context = |model: &cleft_train::PromptModel| -> Vec<f32> {
        cleft_testing::param_values(&model.prompt)
            .into_iter()
            .flat_map(|(_, values)| values)
            .collect()
    };
    let (want, got) = (
        context(single.prompt.as_ref().unwrap()),
        context(pair.prompt.as_ref().unwrap()),
    );
    assert!(!want.is_empty());
    let worst = want
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= TOLERANCE, "the learned context differs by {worst}");
    assert!(
        pair.prompt.is_some(),
        "rank 0 evaluates the learned prompts"
    );
    for dir in [&single_config.output.dir, &pair_config.output.dir] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}
