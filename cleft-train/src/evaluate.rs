//! [`evaluate_run`]: zero-shot and linear probe of a finished run, written into its directory.

use cleft_core::ErrorKind;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use sha2::{Digest, Sha256};

use cleft_core::config::ExperimentConfig;
use cleft_core::error::{CleftError, Result};
use cleft_core::model::ClipModel;
use cleft_core::registry::{Registry, Split};
use cleft_core::store::write_atomic;

use crate::eval::features::{ImageFeatures, encode_images, single_label, single_label_among};
use crate::eval::plots::{plot_confusion, plot_roc};
use crate::eval::probe::{Summary, linear_probe};
use crate::eval::report::{EvalReport, ProbeReport, PromptReport, SplitSizes, TemplateResult};
use crate::eval::zero_shot::{
    ZeroShotReport, class_prompts, configured_class_embeddings, ensemble_class_embeddings,
    zero_shot_scores,
};
use crate::experiment::Experiment;
pub use cleft_core::inference::learned::{
    learned_class_embeddings, learned_prompt_path, load_learned_prompt,
};

/// Which class embeddings zero-shot scores against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptSource {
    /// The config's `[eval]` templates (ensembled when `ensemble`).
    #[default]
    Template,
    /// The stage-2 learned context of the run (`prompt/prompt.safetensors`) before each
    /// lower-cased class name, as stage 2 evaluates it.
    Learned,
}

/// What [`evaluate_run`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    /// Run the linear probe (encodes the whole training split once).
    pub probe: bool,
    /// Zero-shot class embeddings.
    pub prompt: PromptSource,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            probe: true,
            prompt: PromptSource::Template,
        }
    }
}

/// Evaluates the finished stage-1 run in `run_dir` on its test split and writes `eval.json`,
/// `eval.md`, `roc.png` and `confusion.png` into it (atomically).
///
/// Loads the run's resolved `config.toml` (its `output.dir` replaced by `run_dir`, so a moved
/// run still evaluates), builds the [`Experiment`] (which locks the run directory) on `device`
/// (opened in the config's `train.precision`), loads `model.safetensors`, then scores
/// zero-shot and, with [`EvalOptions::probe`], fits the linear probe of `[eval.probe]` on the
/// vision encoder's pooled features of the training split. Both use the images with exactly one
/// positive label (training images with several findings are left out like the test ones).
pub fn evaluate_run(
    run_dir: &Path,
    registry: &Registry,
    options: &EvalOptions,
    device: &Device,
) -> Result<EvalReport> {
    let config_path = run_dir.join("config.toml");
    let text =
        std::fs::read_to_string(&config_path).map_err(|e| CleftError::io(&config_path, e))?;
    let mut config = ExperimentConfig::parse(&text, &config_path.display().to_string(), registry)?;
    config.output.dir = run_dir.to_path_buf();
    let mut experiment = Experiment::build(&config, device)?;
    experiment.load_stage1()?;
    let model = experiment.model().valid();
    let device = experiment.device().clone().inner();
    let batch_size = config.eval.batch_size;

    let test = experiment.dataset(Split::Test)?;
    let train = experiment.dataset(Split::Train)?;
    let classes = test.label_names();
    let test_selection = single_label(test.as_ref())?;
    let train_selection = single_label_among(train.as_ref(), &classes)?;
    if test_selection.indices.is_empty() {
        return Err(CleftError::Data(
            "evaluation: no test image has exactly one positive label".into(),
        ));
    }
    let test_features = encode_images(
        &model,
        test.as_ref(),
        &test_selection.indices,
        batch_size,
        &device,
    )?;

    let zero_shot = ZeroShotRun {
        model: &model,
        config: &config,
        classes: &classes,
        features: &test_features,
        targets: &test_selection.targets,
        device: &device,
    };
    let (zero_shot_report, prompt, zero_shot_templates) = match options.prompt {
        PromptSource::Template => zero_shot.with_templates()?,
        PromptSource::Learned => zero_shot.with_learned_context(run_dir)?,
    };

    let probe = if options.probe {
        let train_features = encode_images(
            &model,
            train.as_ref(),
            &train_selection.indices,
            batch_size,
            &device,
        )?;
        let fractions = linear_probe(
            (&train_features.pooled_rows(), &train_selection.targets),
            (&test_features.pooled_rows(), &test_selection.targets),
            &classes,
            &config.eval.probe,
        )?;
        Some(ProbeReport {
            features: "pooled vision features, before the projection".into(),
            dim: test_features.pooled_dim,
            steps: config.eval.probe.steps,
            lr: config.eval.probe.lr,
            weight_decay: config.eval.probe.weight_decay,
            fractions,
        })
    } else {
        None
    };

    let mut report = EvalReport {
        run_dir: run_dir.to_path_buf(),
        dataset: data_type(&text),
        task: format!(
            "single-label classification of the images with exactly one of {} findings \
             (zero-shot{})",
            classes.len(),
            if options.probe {
                " and linear probe"
            } else {
                ""
            }
        ),
        splits: SplitSizes {
            train: train.len(),
            train_single_label: train_selection.indices.len(),
            test: test.len(),
            test_single_label: test_selection.indices.len(),
        },
        classes,
        config_sha256: sha256_hex(text.as_bytes()),
        prompt,
        zero_shot: zero_shot_report,
        zero_shot_templates,
        probe,
        files: ["eval.json", "eval.md", "roc.png", "confusion.png"]
            .map(|name| run_dir.join(name))
            .to_vec(),
    };
    write_outputs(&mut report)?;
    Ok(report)
}

/// Writes the report's files (listed in `report.files`).
fn write_outputs(report: &mut EvalReport) -> Result<()> {
    let [json, markdown, roc, confusion]: [PathBuf; 4] = report
        .files
        .clone()
        .try_into()
        .map_err(|_| CleftError::Invalid("evaluation: four output files expected".into()))?;
    let z = &report.zero_shot;
    let title = format!("zero-shot ({} prompts)", report.prompt.source);
    plot_roc(
        &roc,
        &format!("ROC, {title}"),
        &z.classes,
        &z.scores,
        &z.targets,
    )?;
    plot_confusion(
        &confusion,
        &format!("confusion, {title}"),
        &z.classes,
        &z.metrics.confusion,
    )?;
    write_atomic(&markdown, report.to_markdown().as_bytes())?;
    let text = serde_json::to_string_pretty(report).map_err(|e| {
        CleftError::caused(
            ErrorKind::Invalid,
            "evaluation: cannot serialise the report",
            e,
        )
    })?;
    write_atomic(&json, text.as_bytes())
}

/// The zero-shot half of an evaluation: test features computed once, class embeddings per
/// prompt source.
struct ZeroShotRun<'a> {
    model: &'a ClipModel,
    config: &'a ExperimentConfig,
    classes: &'a [String],
    features: &'a ImageFeatures,
    targets: &'a [usize],
    device: &'a Device,
}

type ZeroShotOutcome = (ZeroShotReport, PromptReport, Vec<TemplateResult>);

impl ZeroShotRun<'_> {
    fn report(&self, class_embeddings: Tensor<2>, prompts: Vec<String>) -> Result<ZeroShotReport> {
        let scores = zero_shot_scores(
            self.model,
            &self.features.projected,
            self.features.projected_dim,
            class_embeddings,
            self.device,
        )?;
        Ok(ZeroShotReport::from_scores(
            self.classes.to_vec(),
            prompts,
            scores,
            self.targets.to_vec(),
        ))
    }

    fn with_templates(&self) -> Result<ZeroShotOutcome> {
        let eval = &self.config.eval;
        let templates = eval.effective_templates();
        let (embeddings, prompts) =
            configured_class_embeddings(self.model, self.classes, eval, self.device)?;
        let report = self.report(embeddings, prompts)?;
        let mut each = Vec::new();
        if templates.len() > 1 {
            for template in &templates {
                let embeddings = ensemble_class_embeddings(
                    self.model,
                    self.classes,
                    std::slice::from_ref(template),
                    self.device,
                )?;
                let single = self.report(embeddings, class_prompts(template, self.classes)?)?;
                each.push(TemplateResult {
                    template: template.clone(),
                    metrics: Summary::of(&single.metrics),
                });
            }
        }
        let prompt = PromptReport {
            source: "template".into(),
            ensemble: eval.ensemble && templates.len() > 1,
            templates: if eval.ensemble {
                templates
            } else {
                templates[..1].to_vec()
            },
        };
        Ok((report, prompt, each))
    }

    fn with_learned_context(&self, run_dir: &Path) -> Result<ZeroShotOutcome> {
        let prompt_model = load_learned_prompt(self.config, self.model, run_dir, self.device)?;
        let path = learned_prompt_path(run_dir);
        let names: Vec<String> = self.classes.iter().map(|c| c.to_lowercase()).collect();
        let embeddings = learned_class_embeddings(&prompt_model, self.classes, self.device)?;
        let tokens = prompt_model.prompt.num_context_tokens();
        let prompts = names
            .iter()
            .map(|name| format!("<{tokens} learned tokens> {name}"))
            .collect();
        let report = self.report(embeddings, prompts)?;
        let prompt = PromptReport {
            source: "learned".into(),
            templates: vec![path.display().to_string()],
            ensemble: false,
        };
        Ok((report, prompt, Vec::new()))
    }
}

/// `[data] type` of a resolved config text.
fn data_type(text: &str) -> String {
    text.parse::<toml::Table>()
        .ok()
        .and_then(|table| table.get("data")?.get("type")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
