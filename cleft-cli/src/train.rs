//! `cleft train`: stage 1 alone, on in-process replicas or as an MPI rank, or stage 2; then the
//! zero-shot report.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use cleft_collectives::Interconnect;
use cleft_core::device::open_replica_devices;
use cleft_core::registry::Split;
use cleft_core::{ExperimentConfig, Registry};
use cleft_train::{Experiment, Launcher, TrainEnd, TrainOptions};

use crate::{Launch, Stage, demo, mpi};

pub(crate) fn train(
    registry: &Registry,
    config: Option<PathBuf>,
    resume: Option<PathBuf>,
    stage: Stage,
    device: &str,
    output: Option<PathBuf>,
    launch: Launch,
) -> Result<()> {
    let config_path = match (&config, &resume) {
        (Some(path), _) => path.clone(),
        (None, Some(run_dir)) => run_dir.join("config.toml"),
        (None, None) => unreachable!("clap requires --config or --resume"),
    };
    let mut config = ExperimentConfig::load(&config_path, registry)?;
    if let Some(run_dir) = &resume {
        config.output.dir = run_dir.clone();
    } else if let Some(output) = output {
        config.output.dir = output;
    }
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: writing a checkpoint after the current step (Ctrl-C again to abort)"
        );
    })
    .context("installing the Ctrl-C handler")?;
    let options = TrainOptions {
        progress: true,
        resume: resume.is_some(),
        interrupt: Some(interrupt),
    };
    let stage = match stage {
        Stage::Contrastive => cleft_train::Stage::Contrastive,
        Stage::Prompt => cleft_train::Stage::Prompt,
    };
    let device_name = device;
    let mut experiment = match launch {
        Launch::Replicas(n) => {
            let devices = open_replica_devices(device_name, n, config.train.precision)?;
            match n {
                1 => Experiment::build(&config, &devices[0])?,
                _ => Experiment::build(
                    &config,
                    Launcher::Replicas {
                        devices,
                        interconnect: Interconnect::for_device_name(device_name),
                    },
                )?,
            }
        }
        // Each rank opens its own device (its GPU follows its node-local rank).
        Launch::Mpi => mpi::rank_experiment(&config, device_name)?,
    };
    if stage == cleft_train::Stage::Prompt {
        experiment
            .load_stage1()
            .with_context(|| format!("stage 2 of {}", config_path.display()))?;
    }
    let what = match stage {
        cleft_train::Stage::Contrastive => "training",
        cleft_train::Stage::Prompt => "stage 2 of",
    };
    let replicas = match launch {
        Launch::Replicas(1) => String::new(),
        Launch::Replicas(n) => format!(" on {n} replicas"),
        Launch::Mpi => " as an MPI rank".into(),
    };
    let report = experiment
        .train(stage, &options)
        .with_context(|| format!("{what} {}{replicas}", config_path.display()))?;
    if let TrainEnd::Interrupted { checkpoint } = &report.end {
        eprintln!(
            "stopped at {}; continue with `cleft train{} --resume {}{}`",
            checkpoint.display(),
            match stage {
                cleft_train::Stage::Contrastive => "",
                cleft_train::Stage::Prompt => " --stage prompt",
            },
            config.output.dir.display(),
            match launch {
                Launch::Replicas(1) => String::new(),
                Launch::Replicas(n) => format!(" --replicas {n}"),
                Launch::Mpi => " --distributed mpi (under mpirun with the same -np)".into(),
            }
        );
        std::process::exit(130);
    }
    if experiment.rank() != 0 {
        // Rank 0 reports; the other ranks are done.
        return Ok(());
    }
    if let Some(outcome) = &report.prompt {
        demo::print_report(&outcome.report);
        eprintln!(
            "learned prompts: {}",
            outcome.run_dir.join("prompt.safetensors").display()
        );
        return Ok(());
    }
    let report = demo::evaluate(&experiment, Split::Test)?;
    demo::print_report(&report);
    eprintln!("run directory: {}", config.output.dir.display());
    Ok(())
}
