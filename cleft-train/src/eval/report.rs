//! The evaluation report of a run: what `eval.json` holds and its markdown rendering (`eval.md`,
//! also what `cleft eval` prints).

use std::fmt::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::metrics::ClassificationMetrics;
use super::probe::{ProbeFraction, Summary};
use super::zero_shot::ZeroShotReport;

/// Images per split: all of them and the single-label ones evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SplitSizes {
    /// Training split (the probe's data).
    pub train: usize,
    /// Of which exactly one positive label (`None`-free only when the probe ran: 0 otherwise).
    pub train_single_label: usize,
    /// Test split.
    pub test: usize,
    /// Of which exactly one positive label (the evaluated images).
    pub test_single_label: usize,
}

/// Where the zero-shot class embeddings came from.
#[derive(Debug, Clone, Serialize)]
pub struct PromptReport {
    /// `template` or `learned`.
    pub source: String,
    /// Templates (source `template`), or the learned context file (source `learned`).
    pub templates: Vec<String>,
    /// Whether several templates were ensembled.
    pub ensemble: bool,
}

/// One template scored on its own (reported when several are configured).
#[derive(Debug, Clone, Serialize)]
pub struct TemplateResult {
    /// The template.
    pub template: String,
    /// Its headline metrics.
    pub metrics: Summary,
}

/// The linear probe's settings and results.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// Which features the probe reads.
    pub features: String,
    /// Feature dimension.
    pub dim: usize,
    /// Full-batch Adam steps.
    pub steps: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// L2 penalty on the weights.
    pub weight_decay: f64,
    /// One entry per training fraction.
    pub fractions: Vec<ProbeFraction>,
}

/// Everything `evaluate_run` measured; serialised as `eval.json`.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The evaluated run directory.
    pub run_dir: PathBuf,
    /// `[data] type`.
    pub dataset: String,
    /// What is evaluated.
    pub task: String,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Split sizes.
    pub splits: SplitSizes,
    /// SHA-256 of the run's resolved `config.toml` as stored.
    pub config_sha256: String,
    /// Zero-shot prompts.
    pub prompt: PromptReport,
    /// Zero-shot results (every metric in `zero_shot.metrics`).
    pub zero_shot: ZeroShotReport,
    /// Each template on its own, when several are configured.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub zero_shot_templates: Vec<TemplateResult>,
    /// Linear probe (absent with `--no-probe`).
    pub probe: Option<ProbeReport>,
    /// Files written into the run directory.
    pub files: Vec<PathBuf>,
}

fn percent(value: f64) -> String {
    format!("{:.1}", 100.0 * value)
}

fn summary_row(label: &str, metrics: &Summary) -> String {
    format!(
        "| {label} | {} | {} | {:.3} | {:.3} |\n",
        percent(metrics.accuracy),
        percent(metrics.balanced_accuracy),
        metrics.macro_auc,
        metrics.macro_f1
    )
}

const SUMMARY_HEADER: &str =
    "| | accuracy % | balanced accuracy % | macro AUC | macro F1 |\n|---|---:|---:|---:|---:|\n";

/// Per-class table and confusion matrix of one classifier, as markdown.
pub fn class_tables(metrics: &ClassificationMetrics) -> String {
    let mut out = String::from(
        "| class | precision | recall | F1 | AUC | support |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for c in &metrics.per_class {
        let auc = c.auc.map_or("–".to_string(), |a| format!("{a:.3}"));
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3} | {:.3} | {auc} | {} |",
            c.class, c.precision, c.recall, c.f1, c.support
        );
    }
    out.push_str("\nConfusion matrix (rows: true class, columns: predicted class)\n\n| |");
    for c in &metrics.per_class {
        let _ = write!(out, " {} |", c.class);
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(metrics.per_class.len()));
    out.push('\n');
    for (c, row) in metrics.per_class.iter().zip(&metrics.confusion) {
        let cells: Vec<String> = row.iter().map(usize::to_string).collect();
        let _ = writeln!(out, "| {} | {} |", c.class, cells.join(" | "));
    }
    out
}

impl EvalReport {
    /// The report as markdown (`eval.md`).
    pub fn to_markdown(&self) -> String {
        let mut out = format!("# Evaluation of `{}`\n\n", self.run_dir.display());
        let s = &self.splits;
        let _ = writeln!(
            out,
            "Data set `{}`: {}. Test split {} images ({} single-label); training split {} \
             ({} single-label). {} classes: {}. Config SHA-256 `{}`.\n",
            self.dataset,
            self.task,
            s.test,
            s.test_single_label,
            s.train,
            s.train_single_label,
            self.classes.len(),
            self.classes.join(", "),
            self.config_sha256
        );
        let z = &self.zero_shot;
        let _ = writeln!(
            out,
            "## Zero-shot ({} prompts{})\n\n{}: {}. Chance {}%.\n",
            self.prompt.source,
            if self.prompt.ensemble {
                ", ensembled"
            } else {
                ""
            },
            if self.prompt.source == "learned" {
                "Learned context"
            } else {
                "Templates"
            },
            self.prompt
                .templates
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", "),
            percent(z.chance)
        );
        out.push_str(SUMMARY_HEADER);
        out.push_str(&summary_row("zero-shot", &Summary::of(&z.metrics)));
        for template in &self.zero_shot_templates {
            out.push_str(&summary_row(
                &format!("`{}`", template.template),
                &template.metrics,
            ));
        }
        out.push('\n');
        out.push_str(&class_tables(&z.metrics));
        if let Some(probe) = &self.probe {
            let _ = writeln!(
                out,
                "\n## Linear probe ({}, D = {}; {} Adam steps, lr {}, weight decay {})\n\n\
                 Mean ± sample std over the seeds.\n\n\
                 | training fraction | images | seeds | accuracy % | balanced accuracy % | macro AUC | macro F1 |\n\
                 |---:|---:|---|---:|---:|---:|---:|",
                probe.features, probe.dim, probe.steps, probe.lr, probe.weight_decay
            );
            for f in &probe.fractions {
                let images: Vec<String> = f.train_samples.iter().map(usize::to_string).collect();
                let seeds: Vec<String> = f.seeds.iter().map(u64::to_string).collect();
                let _ = writeln!(
                    out,
                    "| {}% | {} | {} | {} ± {} | {} ± {} | {:.3} ± {:.3} | {:.3} ± {:.3} |",
                    100.0 * f.fraction,
                    images.join("/"),
                    seeds.join(", "),
                    percent(f.mean.accuracy),
                    percent(f.std.accuracy),
                    percent(f.mean.balanced_accuracy),
                    percent(f.std.balanced_accuracy),
                    f.mean.macro_auc,
                    f.std.macro_auc,
                    f.mean.macro_f1,
                    f.std.macro_f1
                );
            }
        }
        out
    }
}
