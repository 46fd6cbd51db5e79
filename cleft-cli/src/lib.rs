//! `cleft`: CLEFT training, evaluation and inspection from the command line — as a library.
//!
//! The `cleft` binary is [`main_with`] over the built-in registry. A third-party binary gets the
//! same command line with its own components added by passing its registry (this is the
//! `cleft` binary's `src/main.rs`, compiled as such; a doctest binary could not start, as it
//! lacks the binary's run path to Rust's shared `libstd`):
//!
//! ```ignore
//! fn main() {
//!     let registry = cleft_builtins::registry();
//!     // registry.add(…) or a crate whose `register_component!`s are linked in.
//!     cleft_cli::main_with(registry)
//! }
//! ```
//!
//! Shared-library plugins need no new binary: `--plugin PATH` (any command) or
//! `plugins = ["…"]` in a config loads them into the registry first.

mod bench;
mod compare;
mod data;
mod demo;
mod eval;
mod inspect;
mod mpi;
mod predict;
mod train;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use cleft_core::device::{compiled_devices, default_device_name, parse_device};
use cleft_core::{ExperimentConfig, Registry};
use cleft_plugin_host::PluginHost;

// Links cleft-core and burn from `libcleft_dylib.so`, shared with shared-library plugins.
use cleft_dylib as _;

#[derive(Parser)]
#[command(
    name = "cleft",
    version,
    about = "CLEFT: language-image contrastive learning with a PEFT-adapted LLM"
)]
struct Cli {
    /// Shared-library plugin to load before anything else (repeatable); configs can also list
    /// theirs under `plugins = […]`.
    #[arg(long = "plugin", global = true, value_name = "PATH")]
    plugins: Vec<PathBuf>,
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
    ///
    /// Ctrl-C writes a checkpoint and exits; `--resume RUN_DIR` continues from the newest
    /// checkpoint with the run's own resolved config.
    Train {
        /// Experiment configuration (TOML).
        #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
        config: Option<PathBuf>,
        /// Continue the run in this directory from its newest checkpoint.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// `contrastive` (stage 1) or `prompt` (stage 2: learn the context prompt on the stage-1
        /// model saved in the run directory).
        #[arg(long, value_enum, default_value_t = Stage::Contrastive)]
        stage: Stage,
        /// Device (`flex`/`cpu`, `tch`, `tch-cuda:N`, `cuda:N`); see `cleft devices`.
        #[arg(long, default_value_t = default_device_name().to_string())]
        device: String,
        /// Override the run directory of the config.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Data-parallel replicas in this process (either stage): one thread per replica, on GPUs
        /// `N, N+1, …` of a `cuda:N` / `tch-cuda:N` device, or sharing the CPU. The global batch
        /// `train.batch_size` is split over them; a run resumes with the same number.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        replicas: u16,
        /// `mpi`: this process is one rank of an MPI job (`mpirun -np N cleft train … --distributed
        /// mpi`), on GPU `K + local rank` of a `cuda:K` / `tch-cuda:K` device or on the CPU; the
        /// global batch is split over the ranks (a build with the `mpi` feature).
        #[arg(long, value_enum, conflicts_with = "replicas")]
        distributed: Option<Distributed>,
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
    /// Evaluate a finished run: zero-shot and linear probe on its test split; prints every
    /// metric and writes eval.json, eval.md, roc.png and confusion.png into the run directory.
    Eval {
        /// Run directory (holds config.toml and model.safetensors).
        #[arg(long)]
        run: PathBuf,
        /// Device to run on.
        #[arg(long, default_value_t = default_device_name().to_string())]
        device: String,
        /// Skip the linear probe (zero-shot only).
        #[arg(long)]
        no_probe: bool,
        /// Zero-shot class embeddings: the config's templates or the stage-2 learned context.
        #[arg(long, value_enum, default_value_t = eval::Prompt::Template)]
        prompt: eval::Prompt,
    },
    /// Zero-shot class probabilities of image files (PNG, JPEG, DICOM) with a trained run: per
    /// image, the classes by probability, top first.
    Predict {
        /// Run directory (holds config.toml and model.safetensors).
        #[arg(long)]
        run: PathBuf,
        /// Class names, comma-separated ("Atelectasis,Cardiomegaly,…").
        #[arg(long)]
        classes: String,
        /// Class prompts: the config's templates or the stage-2 learned context.
        #[arg(long, value_enum, default_value_t = eval::Prompt::Template)]
        prompt: eval::Prompt,
        /// Device to run on.
        #[arg(long, default_value_t = default_device_name().to_string())]
        device: String,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
        /// Image files.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Train (or with --reuse, reuse finished runs) and evaluate several configs; one table of
    /// trainable parameters, zero-shot and linear-probe results, also as compare.md / .csv.
    Compare {
        /// Experiment configurations (TOML), each with its own output.dir.
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        /// Where compare.md and compare.csv go.
        #[arg(long, default_value = "runs/compare")]
        output: PathBuf,
        /// Reuse a run directory that already holds a finished run of the same resolved config.
        #[arg(long)]
        reuse: bool,
        /// Device to run on.
        #[arg(long, default_value_t = default_device_name().to_string())]
        device: String,
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
    /// Time a stage-1 step, zero-shot inference or text encoding of a config on random inputs
    /// (the cleft side of `tools/bench/compare.py`); prints one JSON line.
    Bench {
        /// Experiment configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// `train`, `zeroshot` or `text`.
        #[arg(long, value_enum, default_value_t = bench::What::Train)]
        what: bench::What,
        /// Batch size (default: train.batch_size for train, eval.batch_size otherwise).
        #[arg(long)]
        batch: Option<usize>,
        /// Token positions per text, the pooled pad included.
        #[arg(long, default_value_t = 15)]
        text_len: usize,
        /// Timed steps.
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Untimed steps first.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Device.
        #[arg(long, default_value_t = default_device_name().to_string())]
        device: String,
    },
    /// List the devices compiled into this build.
    Devices,
    /// Data set tools: `cleft data synth` (the synthetic benchmark on disk), `cleft data check`.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// Total and trainable parameters per component, from the architecture alone (no weights,
    /// no allocation). With several configs, each is compared with the last one (the baseline).
    Params {
        /// Experiment configurations (TOML).
        #[arg(required = true)]
        configs: Vec<PathBuf>,
    },
}

/// Multi-process launchers `cleft train` can run under.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Distributed {
    /// One rank of an MPI job (Open MPI, MPICH).
    Mpi,
}

/// How a stage runs: replicas in this process (1: a plain run), or one rank of an MPI job.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Launch {
    Replicas(usize),
    Mpi,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Stage {
    Contrastive,
    Prompt,
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

/// Runs the `cleft` command line (from `std::env::args`) with `registry`'s components and
/// exits: status 0 on success, 1 with the error on stderr otherwise.
pub fn main_with(registry: Registry) -> ! {
    match run_with(registry, std::env::args_os()) {
        Ok(()) => std::process::exit(0),
        Err(error) => {
            eprintln!("error: {}", error_chain(&error));
            std::process::exit(1);
        }
    }
}

/// `error` and its sources joined by `: `, leaving out a source whose text its parent's message
/// already ends with (cleft's errors name their source in their own message).
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if text.ends_with(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

/// Runs the `cleft` command line given as `args` (the program name first) with `registry`'s
/// components. `--help` and usage errors print and exit as clap does.
pub fn run_with<I, T>(registry: Registry, args: I) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    run(registry, Cli::parse_from(args))
}

impl Command {
    /// The config files this command reads (their `plugins` are loaded before it runs).
    fn config_files(&self) -> Vec<PathBuf> {
        match self {
            Command::Config {
                command: ConfigCommand::Check { file },
            } => vec![file.clone()],
            Command::Train { config, resume, .. } => match (config, resume) {
                (Some(path), _) => vec![path.clone()],
                (None, Some(run_dir)) => vec![run_dir.join("config.toml")],
                (None, None) => Vec::new(),
            },
            Command::Eval { run, .. } | Command::Predict { run, .. } => {
                vec![run.join("config.toml")]
            }
            Command::Compare { configs, .. } | Command::Params { configs } => configs.clone(),
            Command::Bench { config, .. } => vec![config.clone()],
            Command::Data {
                command: data::DataCommand::Check { config, .. },
            } => vec![config.clone()],
            _ => Vec::new(),
        }
    }
}

/// Loads `--plugin` libraries, then those listed by the command's config files.
fn load_plugins(registry: &mut Registry, cli: &Cli) -> Result<()> {
    for path in &cli.plugins {
        registry.load_plugin(path)?;
    }
    for file in cli.command.config_files() {
        if file.exists() {
            registry.load_config_plugins(&file)?;
        }
    }
    Ok(())
}

fn run(mut registry: Registry, cli: Cli) -> Result<()> {
    load_plugins(&mut registry, &cli)?;
    match cli.command {
        Command::Plugins {
            command: PluginsCommand::List,
        } => list_plugins(&registry),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let config = ExperimentConfig::load(&file, &registry)?;
            print!("{}", config.to_toml()?);
            eprintln!("{}: ok", file.display());
            Ok(())
        }
        Command::Train {
            config,
            resume,
            stage,
            device,
            output,
            replicas,
            distributed,
        } => train::train(
            &registry,
            config,
            resume,
            stage,
            &device,
            output,
            match distributed {
                Some(Distributed::Mpi) => Launch::Mpi,
                None => Launch::Replicas(usize::from(replicas)),
            },
        ),
        Command::Demo {
            device,
            steps,
            output,
        } => demo::run(&registry, &device, steps, output),
        Command::Eval {
            run,
            device,
            no_probe,
            prompt,
        } => eval::run(&registry, &run, &device, !no_probe, prompt),
        Command::Predict {
            run,
            classes,
            prompt,
            device,
            json,
            images,
        } => predict::run(
            &registry,
            &predict::PredictArgs {
                run: &run,
                classes: &classes,
                prompt,
                device: &device,
                json,
                images: &images,
            },
        ),
        Command::Compare {
            configs,
            output,
            reuse,
            device,
        } => compare::run(&registry, &configs, &output, reuse, &device),
        Command::Inspect { path } => inspect::inspect(&path),
        Command::EmbedText {
            model,
            device,
            texts,
        } => inspect::embed_text(&registry, &model, &texts, &parse_device(&device)?),
        Command::EmbedImage {
            model,
            size,
            device,
            images,
        } => inspect::embed_image(&registry, &model, &images, size, &parse_device(&device)?),
        Command::Params { configs } => print_params(&registry, &configs),
        Command::Bench {
            config,
            what,
            batch,
            text_len,
            steps,
            warmup,
            device,
        } => bench::run(
            &registry,
            &bench::BenchOptions {
                config: &config,
                what,
                batch,
                text_len,
                steps,
                warmup,
                device: &device,
            },
        ),
        Command::Data { command } => data::run(&registry, command),
        Command::Devices => {
            for (name, summary) in compiled_devices() {
                println!("{name:<12} {summary}");
            }
            println!("data parallel:");
            println!(
                "  --replicas N          in-process replicas on any device above (gradients \
                 through the host; on cuda:N, on the GPUs with NCCL)"
            );
            if cfg!(feature = "mpi") {
                println!(
                    "  --distributed mpi     one process per rank under mpirun (MPI compiled in)"
                );
            } else {
                println!("  --distributed mpi     not in this build (cargo feature `mpi`)");
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
        println!(
            "{:<10} {:<15} {:<18} {}",
            entry.kind().to_string(),
            entry.name,
            entry.origin,
            entry.summary
        );
    }
    for plugin in registry.plugins() {
        eprintln!(
            "loaded {}: {}",
            plugin.path.display(),
            plugin.components.join(", ")
        );
    }
    Ok(())
}
