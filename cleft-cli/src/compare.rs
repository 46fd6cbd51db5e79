//! `cleft compare A.toml B.toml …`: train (or reuse) and evaluate every config, one table.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cleft_core::device::open_device;
use cleft_core::params::{ParamBudget, thousands};
use cleft_core::store::write_atomic;
use cleft_core::{ExperimentConfig, Registry};
use cleft_train::{EvalOptions, EvalReport, Experiment, Stage, TrainEnd, TrainOptions};

/// One compared configuration.
struct Row {
    config: String,
    method: String,
    trainable: usize,
    report: EvalReport,
}

/// Whether `run_dir` holds a finished stage-1 run of exactly `resolved` (the trainer writes
/// `model.safetensors` only after the last step, and `config.toml` when it starts).
pub fn finished_run(run_dir: &Path, resolved: &str) -> bool {
    run_dir.join("model.safetensors").is_file()
        && std::fs::read_to_string(run_dir.join("config.toml")).is_ok_and(|text| text == resolved)
}

/// `text + peft + objective` from a resolved config, e.g. `gpt2 + lora / clip`.
fn method_label(resolved: &str) -> String {
    let table: toml::Table = resolved.parse().unwrap_or_default();
    let kind = |section: &str| {
        table
            .get(section)
            .and_then(|s| s.get("type"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
    };
    let text = kind("text").unwrap_or_else(|| "?".into());
    let peft = kind("peft").unwrap_or_else(|| "full".into());
    let objective = kind("objective").unwrap_or_else(|| "?".into());
    format!("{text} + {peft} / {objective}")
}

/// Trains (unless `reuse` finds the finished run) and evaluates each config, then prints and
/// writes `compare.md` and `compare.csv` into `output`.
pub fn run(
    registry: &Registry,
    configs: &[PathBuf],
    output: &Path,
    reuse: bool,
    device: &str,
) -> Result<()> {
    let mut rows = Vec::new();
    let mut run_dirs = Vec::new();
    for path in configs {
        let config = ExperimentConfig::load(path, registry)?;
        let run_dir = config.output.dir.clone();
        if run_dirs.contains(&run_dir) {
            bail!(
                "{}: run directory {} is shared with an earlier config; give each its own output.dir",
                path.display(),
                run_dir.display()
            );
        }
        run_dirs.push(run_dir.clone());
        let resolved = config.to_toml()?;
        if reuse && finished_run(&run_dir, &resolved) {
            eprintln!(
                "{}: reusing the finished run in {}",
                path.display(),
                run_dir.display()
            );
        } else {
            eprintln!("{}: training into {}", path.display(), run_dir.display());
            train(&config, device).with_context(|| format!("training {}", path.display()))?;
        }
        let report = crate::eval::evaluate(registry, &run_dir, device, &EvalOptions::default())?;
        let budget = ParamBudget::of(&config, &path.display().to_string())?;
        rows.push(Row {
            config: path.display().to_string(),
            method: method_label(&resolved),
            trainable: budget.totals().1,
            report,
        });
    }
    let fractions = probe_fractions(&rows);
    let markdown = markdown_table(&rows, &fractions);
    println!("{markdown}");
    std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
    let (md_path, csv_path) = (output.join("compare.md"), output.join("compare.csv"));
    write_atomic(&md_path, markdown.as_bytes())?;
    write_atomic(&csv_path, csv_table(&rows, &fractions).as_bytes())?;
    println!("wrote {}\nwrote {}", md_path.display(), csv_path.display());
    Ok(())
}

fn train(config: &ExperimentConfig, device: &str) -> Result<()> {
    let device = open_device(device, config.train.precision)?;
    let mut experiment = Experiment::build(config, &device)?;
    let options = TrainOptions {
        progress: true,
        ..Default::default()
    };
    match experiment.train(Stage::Contrastive, &options)?.end {
        TrainEnd::Completed => Ok(()),
        TrainEnd::Interrupted { checkpoint } => {
            bail!("interrupted at {}", checkpoint.display())
        }
    }
}

/// Every probe fraction any row has, ascending.
fn probe_fractions(rows: &[Row]) -> Vec<f64> {
    let mut fractions: Vec<f64> = rows
        .iter()
        .filter_map(|row| row.report.probe.as_ref())
        .flat_map(|probe| probe.fractions.iter().map(|f| f.fraction))
        .collect();
    fractions.sort_by(f64::total_cmp);
    fractions.dedup();
    fractions
}

/// Mean and std probe accuracy (%) of `row` at `fraction`.
fn probe_accuracy(row: &Row, fraction: f64) -> Option<(f64, f64)> {
    let probe = row.report.probe.as_ref()?;
    let entry = probe.fractions.iter().find(|f| f.fraction == fraction)?;
    Some((100.0 * entry.mean.accuracy, 100.0 * entry.std.accuracy))
}

fn markdown_table(rows: &[Row], fractions: &[f64]) -> String {
    let mut out =
        String::from("| config | method | trainable params | zero-shot ACC % | zero-shot AUC |");
    for f in fractions {
        let _ = write!(out, " linear probe {}% ACC % |", 100.0 * f);
    }
    out.push_str("\n|---|---|---:|---:|---:|");
    out.push_str(&"---:|".repeat(fractions.len()));
    out.push('\n');
    for row in rows {
        let z = &row.report.zero_shot;
        let _ = write!(
            out,
            "| {} | {} | {} | {:.1} | {:.3} |",
            row.config,
            row.method,
            thousands(row.trainable),
            100.0 * z.accuracy,
            z.macro_auc
        );
        for &f in fractions {
            match probe_accuracy(row, f) {
                Some((mean, std)) => write!(out, " {mean:.1} ± {std:.1} |"),
                None => write!(out, " – |"),
            }
            .expect("writing to a String");
        }
        out.push('\n');
    }
    out
}

fn csv_table(rows: &[Row], fractions: &[f64]) -> String {
    let mut out =
        String::from("config,method,trainable_params,zero_shot_accuracy,zero_shot_macro_auc");
    for f in fractions {
        let _ = write!(out, ",probe_{f}_accuracy_mean,probe_{f}_accuracy_std");
    }
    out.push('\n');
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for row in rows {
        let z = &row.report.zero_shot;
        let _ = write!(
            out,
            "{},{},{},{},{}",
            quote(&row.config),
            quote(&row.method),
            row.trainable,
            z.accuracy,
            z.macro_auc
        );
        for &f in fractions {
            match probe_accuracy(row, f) {
                Some((mean, std)) => write!(out, ",{},{}", mean / 100.0, std / 100.0),
                None => write!(out, ",,"),
            }
            .expect("writing to a String");
        }
        out.push('\n');
    }
    out
}
