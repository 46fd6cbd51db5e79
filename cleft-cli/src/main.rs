//! `cleft`: CLEFT training, evaluation and inspection from the command line.

mod demo;
mod inspect;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use cleft_core::device::{compiled_devices, default_device_name, parse_device};
use cleft_core::registry::Split;
use cleft_core::train::{TrainOptions, train_contrastive};
use cleft_core::{ExperimentConfig, Registry};

#[derive(Parser)]
#[command(name = "cleft", version, about = "CLEFT: language-image contrastive learning with a PEFT-adapted LLM")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List or inspect registered plugins.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Validate configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Train a configuration (stage 1, contrastive) and evaluate zero-shot on its test split.
    Train {
        /// Experiment configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Device (`flex`/`cpu`, `tch`, `tch-cuda:N`, `cuda:N`); see `cleft devices`.
        #[arg(long, default_value_t = default_device_name().to_string())]
        device: String,
        /// Override the run directory of the config.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Train the tiny default configuration on synthetic data and report zero-shot accuracy.
    Demo {
        /// Device to run on.
        #[arg(long, default_value_t = default_device_name().to_string())]
        device: String,
        /// Override the number of training steps.
        #[arg(long)]
        steps: Option<usize>,
        /// Run directory.
        #[arg(long, default_value = "runs/demo")]
        output: PathBuf,
    },
    /// Architecture, parameter count and dtype of a checkpoint directory or GGUF file.
    Inspect {
        /// HF checkpoint directory, `.safetensors` or `.gguf` file.
        path: PathBuf,
    },
    /// Print text embeddings (JSON) of a pretrained text encoder.
    EmbedText {
        /// BERT / GPT-2 / LLaMA checkpoint directory or LLaMA `.gguf` file.
        #[arg(long)]
        model: PathBuf,
        /// Device to run on.
        #[arg(long, default_value_t = default_device_name().to_string())]
        device: String,
        /// Texts to encode.
        #[arg(required = true)]
        texts: Vec<String>,
    },
    /// Print image embeddings (JSON) of a pretrained DINOv2 checkpoint.
    EmbedImage {
        /// HF `Dinov2Model` directory.
        #[arg(long)]
        model: PathBuf,
        /// Input side in pixels (a multiple of the patch size).
        #[arg(long, default_value_t = 224)]
        size: usize,
        /// Device to run on.
        #[arg(long, default_value_t = default_device_name().to_string())]
        device: String,
        /// Image files (PNG, JPEG).
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// List the devices compiled into this build.
    Devices,
    /// Total and trainable parameters per component, from the architecture alone (no weights,
    /// no allocation). With several configs, each is compared with the last one (the baseline).
    Params {
        /// Experiment configurations (TOML).
        #[arg(required = true)]
        configs: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// Every registered component: kind, name, summary, origin.
    List,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Parse a config, resolve every component and print the resolved config.
    Check {
        /// Configuration file.
        file: PathBuf,
    },
}

fn main() {
    if let Err(error) = run(Cli::parse()) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let registry = cleft_builtins::registry();
    match cli.command {
        Command::Plugins { command: PluginsCommand::List } => list_plugins(&registry),
        Command::Config { command: ConfigCommand::Check { file } } => {
            let config = ExperimentConfig::load(&file, &registry)?;
            print!("{}", config.to_toml()?);
            eprintln!("{}: ok", file.display());
            Ok(())
        }
        Command::Train { config, device, output } => {
            let mut experiment = ExperimentConfig::load(&config, &registry)?;
            if let Some(output) = output {
                experiment.output.dir = output;
            }
            let device = parse_device(&device)?;
            let outcome = train_contrastive(&experiment, &device, &TrainOptions { progress: true })
                .with_context(|| format!("training {}", config.display()))?;
            let report = demo::evaluate(&experiment, &outcome.model, &device, Split::Test)?;
            demo::print_report(&report);
            eprintln!("run directory: {}", outcome.run_dir.display());
            Ok(())
        }
        Command::Demo { device, steps, output } => demo::run(&registry, &device, steps, output),
        Command::Params { configs } => print_params(&registry, &configs),
        Command::Inspect { path } => inspect::inspect(&path),
        Command::EmbedText { model, device, texts } => inspect::embed_text(&model, &texts, &parse_device(&device)?),
        Command::EmbedImage { model, size, device, images } => {
            inspect::embed_image(&model, &images, size, &parse_device(&device)?)
        }
        Command::Devices => {
            for (name, summary) in compiled_devices() {
                println!("{name:<12} {summary}");
            }
            Ok(())
        }
    }
}

fn print_params(registry: &Registry, files: &[PathBuf]) -> Result<()> {
    use cleft_core::params::{ParamBudget, comparison};
    let mut budgets = Vec::new();
    for file in files {
        let config = ExperimentConfig::load(file, registry)?;
        let budget = ParamBudget::of(&config, &file.display().to_string())
            .with_context(|| format!("counting the parameters of {}", file.display()))?;
        println!("{budget}");
        budgets.push(budget);
    }
    if let Some((baseline, candidates)) = budgets.split_last() {
        for candidate in candidates {
            println!("{}", comparison(candidate, baseline));
        }
    }
    Ok(())
}

fn list_plugins(registry: &Registry) -> Result<()> {
    println!("{:<10} {:<15} {:<18} SUMMARY", "KIND", "NAME", "ORIGIN");
    for entry in registry.iter() {
        println!("{:<10} {:<15} {:<18} {}", entry.kind().to_string(), entry.name, entry.origin, entry.summary);
    }
    Ok(())
}
