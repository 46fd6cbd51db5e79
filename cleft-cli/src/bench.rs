//! `cleft bench`: the cleft side of the PyTorch comparison (`tools/bench/compare.py` runs both).
//!
//! The same workloads as `tools/bench/reference.py`, on random inputs of the same shapes:
//! - `train`: one stage-1 step — forward of both towers, CLIP loss, backward, gradient norm read
//!   back, AdamW step, loss and the objective's metrics read back, as the reference does (the
//!   trainer itself reads them once per `train.log_every`; the data loader is not part of it);
//! - `zeroshot`: images → ViT → projection → logits against 5 class embeddings → softmax, read
//!   back;
//! - `text`: texts → text tower (+ PEFT) → projection, read back.

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use cleft_core::burn::module::Module;
use cleft_core::burn::optim::GradientsParams;
use cleft_core::burn::prelude::*;
use cleft_core::burn::tensor::{Distribution, Int, TensorData};
use cleft_core::model::{ClipModel, l2_normalize};
use cleft_core::params::ParamBudget;
use cleft_core::{ExperimentConfig, Registry};
use cleft_train::{gradient_norm, optimizer_for};

/// What to time.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum What {
    /// Stage-1 training step.
    Train,
    /// Zero-shot inference.
    Zeroshot,
    /// Text encoding.
    Text,
}

/// Options of `cleft bench`.
pub struct BenchOptions<'a> {
    pub config: &'a Path,
    pub what: What,
    pub batch: Option<usize>,
    pub text_len: usize,
    pub steps: usize,
    pub warmup: usize,
    pub device: &'a str,
}

fn images(config: &ExperimentConfig, batch: usize, device: &Device) -> Result<Tensor<4>> {
    let input = config
        .vision
        .input()?
        .ok_or_else(|| anyhow::anyhow!("the vision encoder does not state its input shape"))?;
    let side = input.size.map(|s| s.value).unwrap_or(224);
    Ok(Tensor::random(
        [batch, input.channels.value, side, side],
        Distribution::Normal(0.0, 1.0),
        device,
    ))
}

/// Right-padded token ids `[B, L]` with real lengths `L - 1 - (b % 4)`, so every row keeps a pad.
fn tokens(
    batch: usize,
    len: usize,
    vocab: usize,
    device: &Device,
) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let mut ids = Vec::with_capacity(batch * len);
    let mut mask = Vec::with_capacity(batch * len);
    for b in 0..batch {
        let real = (len - 1).saturating_sub(b % 4).max(1);
        for t in 0..len {
            let is_real = t < real;
            ids.push(if is_real {
                ((b * 31 + t * 7) % (vocab - 1) + 1) as i64
            } else {
                0
            });
            mask.push(i64::from(is_real));
        }
    }
    (
        Tensor::from_data(TensorData::new(ids, [batch, len]), device),
        Tensor::from_data(TensorData::new(mask, [batch, len]), device),
    )
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Peak resident set of this process (`VmHWM`), MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Runs the benchmark and prints a summary and one JSON line.
pub fn run(registry: &Registry, options: &BenchOptions) -> Result<()> {
    let config = ExperimentConfig::load(options.config, registry)?;
    if options.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let device = cleft_core::device::parse_device(options.device)?;
    let batch = options.batch.unwrap_or(match options.what {
        What::Train => config.train.batch_size,
        _ => config.eval.batch_size,
    });
    let (total, trainable) =
        ParamBudget::of(&config, &options.config.display().to_string())?.totals();
    let train_device = device.clone().autodiff();
    let model = ClipModel::build_seeded(&config, &train_device, config.train.seed)?;
    let vocab = model.text.tokenizer().vocab_size();
    let mut times = Vec::with_capacity(options.steps);
    let mut extra = String::new();
    match options.what {
        What::Train => {
            let mut model = model;
            let mut optimizer = optimizer_for(&model, &config.train);
            let x = images(&config, batch, &train_device)?;
            let (ids, mask) = tokens(batch, options.text_len, vocab, &train_device);
            let (mut loss_value, mut norm) = (0.0, 0.0);
            for step in 0..options.warmup + options.steps {
                let started = Instant::now();
                let output = model.forward(x.clone(), ids.clone(), mask.clone(), None);
                let grads = GradientsParams::from_grads(output.loss.clone().backward(), &model);
                norm = gradient_norm(&model, &grads, &train_device);
                model = optimizer.step(config.train.lr, model, grads);
                loss_value = output.loss.into_scalar::<f64>();
                // The reference reads the objective's metrics back every step too.
                for (_, metric) in output.metrics {
                    let _ = metric.into_scalar::<f64>();
                }
                if step >= options.warmup {
                    times.push(started.elapsed().as_secs_f64());
                }
            }
            extra = format!(", \"loss\": {loss_value}, \"grad_norm\": {norm}");
        }
        What::Zeroshot => {
            let model = model.valid();
            let x = images(&config, batch, &device)?;
            let prompts: Vec<String> = [
                "atelectasis",
                "cardiomegaly",
                "consolidation",
                "edema",
                "pleural effusion",
            ]
            .iter()
            .map(|c| config.eval.prompt_template.replace("{}", c))
            .collect();
            let classes = model.encode_texts(&prompts, &device)?;
            let scale = model.objective.logit_scale();
            for step in 0..options.warmup + options.steps {
                let started = Instant::now();
                let image = model.encode_images(x.clone());
                let logits = image.matmul(classes.clone().transpose()) * scale.clone().unsqueeze();
                let probabilities = cleft_core::burn::tensor::activation::softmax(logits, 1);
                let _ = probabilities.into_data().convert::<f32>();
                if step >= options.warmup {
                    times.push(started.elapsed().as_secs_f64());
                }
            }
        }
        What::Text => {
            let model = model.valid();
            let (ids, mask) = tokens(batch, options.text_len, vocab, &device);
            for step in 0..options.warmup + options.steps {
                let started = Instant::now();
                let features = model.text.forward(ids.clone(), mask.clone());
                let embedded = l2_normalize(model.text_projection.forward(features));
                let _ = embedded.into_data().convert::<f32>();
                if step >= options.warmup {
                    times.push(started.elapsed().as_secs_f64());
                }
            }
        }
    }
    let all = times.clone();
    let median_s = median(&mut times);
    let rate = batch as f64 / median_s;
    let (name, label, unit) = match options.what {
        What::Train => ("train", "samples_per_sec", "samples/s"),
        What::Zeroshot => ("zeroshot", "images_per_sec", "images/s"),
        What::Text => ("text", "texts_per_sec", "texts/s"),
    };
    let peak = peak_rss_mib();
    eprintln!(
        "cleft bench {name} {}: batch {batch}, median {median_s:.4} s over {} steps → {rate:.2} {unit}; peak RSS {peak:.0} MiB; params {total} ({trainable} trainable)",
        options.config.display(),
        options.steps
    );
    println!(
        "{{\"side\": \"cleft\", \"what\": \"{name}\", \"config\": {:?}, \"batch\": {batch}, \"{label}\": {rate}, \"median_s\": {median_s}, \"steps\": {}, \"step_times_s\": {:?}, \"peak_rss_mib\": {peak}, \"params_total\": {total}, \"params_trainable\": {trainable}, \"text_len\": {}{extra}}}",
        options.config.display().to_string(),
        options.steps,
        all,
        options.text_len
    );
    Ok(())
}
