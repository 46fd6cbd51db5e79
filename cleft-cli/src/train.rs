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
use cleft_train::{Experiment, TrainEnd, TrainOptions, train_prompt, train_replicas_with};

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
    if launch != Launch::Replicas(1) && stage == Stage::Prompt {
        anyhow::bail!(
            "--replicas / --distributed apply to stage 1 (contrastive); stage 2 trains the prompt \
             on one device"
        );
    }
    let device_name = device;
    let devices = match launch {
        Launch::Replicas(n) => open_replica_devices(device_name, n, config.train.precision)?,
        // Each rank opens its own device (its GPU follows its node-local rank).
        Launch::Mpi => Vec::new(),
    };
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
    if stage == Stage::Prompt {
        let outcome = train_prompt(&config, &devices[0], &options)
            .with_context(|| format!("stage 2 of {}", config_path.display()))?;
        if let TrainEnd::Interrupted { checkpoint } = &outcome.end {
            eprintln!(
                "stopped at {}; continue with `cleft train --stage prompt --resume {}`",
                checkpoint.display(),
                config.output.dir.display()
            );
            std::process::exit(130);
        }
        if let Some(report) = &outcome.report {
            demo::print_report(report);
        }
        eprintln!(
            "learned prompts: {}",
            outcome.run_dir.join("prompt.safetensors").display()
        );
        return Ok(());
    }
    let training = || format!("training {}", config_path.display());
    let (experiment, end) = match launch {
        Launch::Replicas(1) => {
            let mut experiment = Experiment::build(&config, &devices[0])?;
            let (_, end) = experiment.train(&options).with_context(training)?;
            (experiment, end)
        }
        Launch::Replicas(n) => {
            let interconnect = Interconnect::for_device_name(device_name);
            let run = train_replicas_with(&config, &devices, interconnect, &options)
                .with_context(|| format!("{} on {n} replicas", training()))?;
            (run.experiment, run.end)
        }
        Launch::Mpi => {
            match mpi::train_rank(&config, device_name, &options).with_context(training)? {
                Some(leader) => leader,
                // Rank 0 reports; the other ranks are done.
                None => return Ok(()),
            }
        }
    };
    if let TrainEnd::Interrupted { checkpoint } = &end {
        eprintln!(
            "stopped at {}; continue with `cleft train --resume {}{}`",
            checkpoint.display(),
            config.output.dir.display(),
            match launch {
                Launch::Replicas(1) => String::new(),
                Launch::Replicas(n) => format!(" --replicas {n}"),
                Launch::Mpi => " --distributed mpi (under mpirun with the same -np)".into(),
            }
        );
        std::process::exit(130);
    }
    let report = demo::evaluate(&experiment, Split::Test)?;
    demo::print_report(&report);
    eprintln!("run directory: {}", config.output.dir.display());
    Ok(())
}
