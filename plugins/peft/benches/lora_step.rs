//! Training-step cost of LoRA on the activation path vs burn's weight-reparameterised LoRA vs full
//! fine-tuning of the same layers (`c_attn` of every block), on a mid-size GPT-2 (flex CPU backend);
//! also full fine-tuning of the whole model (`whole`) for scale.
//!
//! ```sh
//! cargo bench -p cleft-peft --bench lora_step              # all three, ratios printed at the end
//! cargo bench -p cleft-peft --bench lora_step -- --steps 20 --layers 4 --embd 512 --batch 8 --len 64
//! ```
//! Each variant runs in its own child process so that its peak resident memory (Linux `VmHWM`)
//! is its own; "step memory" is that peak minus the resident memory after building the model.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use burn::module::{Module, ParamGroup};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use cleft_core::registry::PeftConfig;
use cleft_core::{CleftError, Component, TextEncoder, TextTokenizer, TokenBatch};
use cleft_gpt::{Gpt2Config, Gpt2Model};
use cleft_peft::{LoraConfig, LoraImplementation};

#[derive(Debug)]
struct Ids;

impl TextTokenizer for Ids {
    fn encode_batch(&self, _: &[String], _: usize) -> Result<TokenBatch, CleftError> {
        Err(CleftError::Invalid(
            "the benchmark feeds ids directly".into(),
        ))
    }
    fn vocab_size(&self) -> usize {
        1000
    }
}

#[derive(Clone, Copy)]
struct Setup {
    steps: usize,
    layers: usize,
    embd: usize,
    batch: usize,
    len: usize,
}

fn rss(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<usize>().ok());
    kb.unwrap_or(0) * 1024
}

fn encoder(setup: Setup, device: &Device) -> Component<dyn TextEncoder> {
    let config = Gpt2Config {
        vocab_size: 1000,
        n_positions: setup.len + 2,
        n_embd: setup.embd,
        n_layer: setup.layers,
        n_head: setup.embd / 64,
        max_len: setup.len,
        ..Gpt2Config::default()
    };
    Component::<dyn TextEncoder>::new(Gpt2Model::init(&config, Arc::new(Ids), device))
}

fn prepare(variant: &str, setup: Setup, device: &Device) -> Component<dyn TextEncoder> {
    let base = encoder(setup, device);
    let lora = |implementation| LoraConfig {
        r: 8,
        lora_alpha: 32.0,
        implementation,
        ..LoraConfig::default()
    };
    match variant {
        "activation" => lora(LoraImplementation::Activation)
            .build()
            .unwrap()
            .apply(base)
            .unwrap(),
        "reparameterized" => lora(LoraImplementation::Reparameterized)
            .build()
            .unwrap()
            .apply(base)
            .unwrap(),
        "whole" => base,
        _ => {
            let targets: Vec<String> = (0..setup.layers)
                .map(|i| format!("h.{i}.attn.c_attn.weight"))
                .collect();
            base.no_grad()
                .set_require_grad_group(ParamGroup::from_paths(targets), true)
        }
    }
}

/// Runs one variant; prints `variant seconds_per_step step_bytes`.
fn child(variant: &str, setup: Setup) {
    let device = Device::flex().autodiff();
    device.seed(0);
    let mut model = prepare(variant, setup, &device);
    let n = setup.batch * setup.len;
    let ids = Tensor::<2, Int>::from_data(
        burn::tensor::TensorData::new(
            (0..n as i64).map(|i| (i * 7919) % 1000).collect::<Vec<_>>(),
            [setup.batch, setup.len],
        ),
        &device,
    );
    let mut mask_data = vec![1i64; n];
    for row in 0..setup.batch {
        mask_data[row * setup.len + setup.len - 1] = 0;
    }
    let mask = Tensor::<2, Int>::from_data(
        burn::tensor::TensorData::new(mask_data, [setup.batch, setup.len]),
        &device,
    );
    let mut optim = AdamWConfig::new().init();
    let mut step = |model: Component<dyn TextEncoder>| {
        let loss = model
            .forward(ids.clone(), mask.clone())
            .powi_scalar(2)
            .mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optim.step(1e-4, model, grads)
    };
    model = step(model); // warm-up: optimizer state, lazy init
    let resident = rss("VmRSS:");
    let start = Instant::now();
    for _ in 0..setup.steps {
        model = step(model);
    }
    let _ = model.num_params();
    let seconds = start.elapsed().as_secs_f64() / setup.steps as f64;
    println!(
        "{variant} {seconds} {}",
        rss("VmHWM:").saturating_sub(resident.min(rss("VmHWM:")))
    );
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let setup = Setup {
        steps: arg(&args, "--steps", 10),
        layers: arg(&args, "--layers", 4),
        embd: arg(&args, "--embd", 512),
        batch: arg(&args, "--batch", 8),
        len: arg(&args, "--len", 64),
    };
    if let Some(i) = args.iter().position(|a| a == "--variant") {
        return child(&args[i + 1], setup);
    }
    println!(
        "GPT-2 {} layers × {} dim, batch {} × {} tokens, {} steps, LoRA r = 8 on c_attn (flex CPU)",
        setup.layers, setup.embd, setup.batch, setup.len, setup.steps
    );
    let mut results = Vec::new();
    for variant in ["full", "whole", "reparameterized", "activation"] {
        let output = Command::new(&args[0])
            .args(&args[1..])
            .args(["--variant", variant])
            .output()
            .expect("child run");
        let line = String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(seconds), Some(bytes)) = (
            fields.get(1).and_then(|s| s.parse::<f64>().ok()),
            fields.get(2).and_then(|s| s.parse::<f64>().ok()),
        ) else {
            eprintln!(
                "{variant}: no result ({})",
                String::from_utf8_lossy(&output.stderr)
            );
            continue;
        };
        results.push((variant, seconds, bytes));
    }
    let Some(&(_, full_s, full_b)) = results.iter().find(|r| r.0 == "full") else {
        return;
    };
    println!(
        "{:<22} {:>12} {:>14} {:>12} {:>12}",
        "variant", "ms/step", "step MiB", "time/full", "mem/full"
    );
    for (variant, seconds, bytes) in &results {
        let mem_ratio = if full_b > 0.0 {
            format!("{:.2}", bytes / full_b)
        } else {
            "n/a".into()
        };
        println!(
            "{:<22} {:>12.1} {:>14.1} {:>12.2} {:>12}",
            variant,
            seconds * 1e3,
            bytes / (1 << 20) as f64,
            seconds / full_s,
            mem_ratio
        );
    }
}
