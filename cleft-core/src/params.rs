//! Parameter budgets computed from the architecture alone (`cleft params`).
//!
//! The model is built with burn's lazy initialisation and never touched: parameter shapes are
//! read with `Param::lazy_shape`, so a 2.6 B-parameter LLM costs no tensor memory. Trainability
//! follows the training contract: vision, projections and the objective train in stage 1; the
//! text encoder trains fully without `[peft]`, and otherwise exactly the parameters for which
//! [`PeftAdapter::is_trainable`](crate::PeftAdapter::is_trainable) holds (the tests in
//! `plugins/peft` check, by stepping an optimizer, that those are the parameters that change).

use std::fmt;

use burn::prelude::*;

use crate::config::ExperimentConfig;
use crate::device::{default_device_name, parse_device};
use crate::error::Result;
use crate::model::ClipModel;
use crate::peft::named_params;

/// Total and trainable parameters of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentBudget {
    /// Field of [`ClipModel`] (`vision`, `text`, `vision_projection`, …).
    pub component: String,
    /// What it is (`vit`, `gpt2 + lora`, `linear`, …).
    pub kind: String,
    /// Number of float parameters.
    pub total: usize,
    /// Of which trainable.
    pub trainable: usize,
}

/// The parameter budget of one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamBudget {
    /// Configuration name (file path).
    pub name: String,
    /// Per component, in model order.
    pub components: Vec<ComponentBudget>,
}

/// The `type` a config trait object serialises with (`?` when it has none).
pub(crate) fn type_name<T: serde::Serialize + ?Sized>(config: &T) -> String {
    serde_json::to_value(config)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_string)))
        .unwrap_or_else(|| "?".into())
}

/// A component's name, kind, parameters and trainability rule.
type Part<'a> = (
    &'a str,
    String,
    Vec<crate::peft::NamedParam>,
    &'a dyn Fn(&str) -> bool,
);

impl ParamBudget {
    /// Counts `config`'s parameters without allocating them.
    pub fn of(config: &ExperimentConfig, name: &str) -> Result<Self> {
        let device: Device = parse_device(default_device_name())?;
        let model = ClipModel::build(config, &device)?;
        let adapter = config.peft.as_ref().map(|peft| peft.build()).transpose()?;
        let count = |params: Vec<crate::peft::NamedParam>, trainable: &dyn Fn(&str) -> bool| {
            let total = params.iter().map(|p| p.numel()).sum();
            let trainable = params
                .iter()
                .filter(|p| trainable(&p.path))
                .map(|p| p.numel())
                .sum();
            (total, trainable)
        };
        let all = |_: &str| true;
        let text_trainable = |path: &str| adapter.as_ref().is_none_or(|a| a.is_trainable(path));
        let text_kind = match &config.peft {
            Some(peft) => format!("{} + {}", type_name(&config.text), type_name(peft)),
            None => type_name(&config.text),
        };
        let parts: [Part<'_>; 5] = [
            (
                "vision",
                type_name(&config.vision),
                named_params(&model.vision),
                &all,
            ),
            (
                "text",
                text_kind,
                named_params(&model.text),
                &text_trainable,
            ),
            (
                "vision_projection",
                "linear".into(),
                named_params(&model.vision_projection),
                &all,
            ),
            (
                "text_projection",
                "linear".into(),
                named_params(&model.text_projection),
                &all,
            ),
            (
                "objective",
                type_name(&config.objective),
                named_params(&model.objective),
                &all,
            ),
        ];
        let components = parts
            .into_iter()
            .map(|(component, kind, params, trainable)| {
                let (total, trainable) = count(params, trainable);
                ComponentBudget {
                    component: component.into(),
                    kind,
                    total,
                    trainable,
                }
            })
            .collect();
        Ok(Self {
            name: name.to_string(),
            components,
        })
    }

    fn component(&self, name: &str) -> Option<&ComponentBudget> {
        self.components.iter().find(|c| c.component == name)
    }

    /// Sum over components: (total, trainable).
    pub fn totals(&self) -> (usize, usize) {
        self.components
            .iter()
            .fold((0, 0), |(t, r), c| (t + c.total, r + c.trainable))
    }

    /// Trainable parameters of the text encoder (the LM, with its adapter).
    pub fn text_trainable(&self) -> usize {
        self.component("text").map_or(0, |c| c.trainable)
    }

    /// Trainable parameters of the two encoders only (no projections, no logit scale).
    pub fn encoders_trainable(&self) -> usize {
        ["vision", "text"]
            .iter()
            .filter_map(|n| self.component(n))
            .map(|c| c.trainable)
            .sum()
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for ParamBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.name)?;
        writeln!(
            f,
            "  {:<18} {:<14} {:>15} {:>15}",
            "component", "type", "total", "trainable"
        )?;
        for c in &self.components {
            writeln!(
                f,
                "  {:<18} {:<14} {:>15} {:>15}",
                c.component,
                c.kind,
                thousands(c.total),
                thousands(c.trainable)
            )?;
        }
        let (total, trainable) = self.totals();
        writeln!(
            f,
            "  {:<18} {:<14} {:>15} {:>15}",
            "total",
            "",
            thousands(total),
            thousands(trainable)
        )
    }
}

fn change(new: usize, old: usize) -> String {
    if old == 0 {
        return "n/a".into();
    }
    format!("{:+.1} %", 100.0 * (new as f64 - old as f64) / old as f64)
}

/// How `candidate` compares with `baseline`: LM-trainable ratio and trainable-parameter change,
/// both with projections + logit scale (everything trainable) and with the encoders only.
pub fn comparison(candidate: &ParamBudget, baseline: &ParamBudget) -> String {
    let ratio = |a: usize, b: usize| {
        if b == 0 {
            "n/a".to_string()
        } else {
            format!("{:.2} %", 100.0 * a as f64 / b as f64)
        }
    };
    let base_text = baseline.component("text").map_or(0, |c| c.total);
    let (_, cand_all) = candidate.totals();
    let (_, base_all) = baseline.totals();
    let (cand_enc, base_enc) = (
        candidate.encoders_trainable(),
        baseline.encoders_trainable(),
    );
    format!(
        "{} vs {}\n  \
         LM trainable: {} = {} of the baseline text encoder's {} parameters ({} of them trainable)\n  \
         trainable, whole model (encoders + projections + logit scale): {} vs {} = {}\n  \
         trainable, encoders only: {} vs {} = {}\n",
        candidate.name,
        baseline.name,
        thousands(candidate.text_trainable()),
        ratio(candidate.text_trainable(), base_text),
        thousands(base_text),
        thousands(baseline.text_trainable()),
        thousands(cand_all),
        thousands(base_all),
        change(cand_all, base_all),
        thousands(cand_enc),
        thousands(base_enc),
        change(cand_enc, base_enc),
    )
}
